"""The outbox's SQLite file: schema, integrity, who it belongs to, and the transactions on it.

The queue's policy (bounds accounting, the in-memory spill, the seq reserve, logging) lives in
`outbox`; this file owns every SQL statement so the on-disk format is defined in one place.
"""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from agent.runtime.outbox_spill import SpilledRow

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    seq     INTEGER PRIMARY KEY,
    topic   TEXT,
    payload BLOB NOT NULL
);
"""
_LAST_SEQ = "last_seq"
_DROPPED = "dropped_total"
# Who the queued events and the seq counter belong to (the events topic); SQLite stores the text
# as is in the INTEGER-affinity column.
_OWNER = "owner"
# Outboxes before issue 24 kept one epoch for their life; it is now made at every start (`new_epoch`)
# and never stored, but an old file still has this key, which is text, not a counter.
_EPOCH = "epoch"
_TEXT_KEYS = (_OWNER, _EPOCH)
_SCHEMA_VERSION = 1


def new_epoch() -> str:
    """A fresh epoch: the start time and 64 random bits (a repeat is as likely as guessing a key)."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(8)}"


class OutboxError(Exception):
    """The outbox file cannot be used; phrased as one line for the user."""


class OutboxStore:
    """One open outbox database; not thread-safe, like the `Outbox` that owns it.

    The counters read at open (`last_seq`, `dropped`, `depth`, `bytes`) are a snapshot: the owner
    keeps the live values, since some of its events and acks may not have reached the disk.
    """

    def __init__(self, path: Path, owner: str | None) -> None:
        """Open (creating if needed) and check the file; raises `OutboxError` for the user."""
        self.path = path
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxError(f"outbox directory {self.path.parent} cannot be created: {exc}") from None
        self.db = self._open()
        try:
            self.last_seq, self.dropped, self.depth, self.bytes = self._load_state()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise OutboxError(f"outbox {self.path} is unusable: {exc}") from None
        if owner is not None:
            self._claim(owner)

    def _open(self) -> sqlite3.Connection:
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves so every transaction is explicit.
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path} cannot be opened: {exc}") from None
        try:
            db.execute("PRAGMA busy_timeout = 5000")
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise OutboxError(f"outbox {self.path}: filesystem does not support WAL (got {mode})")
            # FULL: a power cut right after append() returns must not lose the event.
            db.execute("PRAGMA synchronous = FULL")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise OutboxError(f"outbox {self.path} failed its integrity check: {check}")
            db.executescript(_SCHEMA)
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            elif version != _SCHEMA_VERSION:
                raise OutboxError(
                    f"outbox {self.path} has schema version {version}, expected {_SCHEMA_VERSION}"
                )
        except sqlite3.OperationalError as exc:
            # The file may be fine; its disk is not (full, read-only, I/O error).
            db.close()
            raise OutboxError(f"outbox {self.path} cannot be written: {exc}") from None
        except sqlite3.DatabaseError as exc:
            db.close()
            raise OutboxError(f"outbox {self.path} is not a usable SQLite database: {exc}") from None
        except OutboxError:
            db.close()
            raise
        return db

    def _claim(self, owner: str) -> None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (_OWNER,)).fetchone()
        if row is None:
            try:
                self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (_OWNER, owner))
            except sqlite3.DatabaseError as exc:
                # At start, with nothing running yet, a state directory that takes no write is
                # reported (exit 2) rather than run around; mid-run the outbox degrades instead.
                self.db.close()
                raise OutboxError(f"outbox {self.path} cannot be written: {exc}") from None
        elif str(row[0]) != owner:
            self.db.close()
            raise OutboxError(
                f"outbox {self.path} belongs to {row[0]} (its seq counter and {self.depth} queued "
                f"events), not {owner}: give this device its own state_dir"
            )

    def _load_state(self) -> tuple[int, int, int, int]:
        marks = ",".join("?" * len(_TEXT_KEYS))
        meta = dict(
            self.db.execute(f"SELECT key, value FROM meta WHERE key NOT IN ({marks})", _TEXT_KEYS).fetchall()
        )
        depth, total_bytes, max_seq = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0), COALESCE(MAX(seq), 0) FROM events"
        ).fetchone()
        # The counter and the rows are written in one transaction, so they always agree; the max()
        # only guards against a hand-edited file.
        last_seq = max(int(meta.get(_LAST_SEQ, 0)), int(max_seq))
        return last_seq, int(meta.get(_DROPPED, 0)), int(depth), int(total_bytes)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            # SQLite asks for an explicit ROLLBACK after a full disk or an I/O error.
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise

    def commit(
        self,
        seq: int,
        topic: str | None,
        payload: bytes,
        *,
        spilled: list[SpilledRow],
        acked: Iterable[int],
        depth: int,
        total: int,
        max_rows: int,
        max_bytes: int,
        dropped: int,
        dropped_changed: bool,
    ) -> tuple[int, int, int, int]:
        """One transaction: what waited in memory, the new row, the seq counter, the bounds.

        `depth` and `total` are the queue's size including this row and `spilled`; returns them
        after the oldest rows were dropped to fit, with the count dropped and the first seq."""
        with self._transaction() as db:
            for row in spilled:
                db.execute(
                    "INSERT OR IGNORE INTO events (seq, topic, payload) VALUES (?, ?, ?)",
                    (row.seq, row.topic, row.payload),
                )
            for seq_acked in acked:
                db.execute("DELETE FROM events WHERE seq = ?", (seq_acked,))
            db.execute("INSERT INTO events (seq, topic, payload) VALUES (?, ?, ?)", (seq, topic, payload))
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (_LAST_SEQ, seq))
            dropped_now, first_dropped = 0, 0
            if depth > max_rows or total > max_bytes:
                dropped_now, dropped_bytes, first_dropped = self._drop_oldest(
                    max(0, depth - max_rows), max(0, total - max_bytes)
                )
                depth -= dropped_now
                total -= dropped_bytes
            if dropped_now or dropped_changed:
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    (_DROPPED, dropped + dropped_now),
                )
        return depth, total, dropped_now, first_dropped

    def _drop_oldest(self, need_rows: int, need_bytes: int) -> tuple[int, int, int]:
        """Choose the fewest oldest rows that free enough; delete them."""
        count, freed, first, last = 0, 0, 0, 0
        for seq, size in self.db.execute("SELECT seq, LENGTH(payload) FROM events ORDER BY seq"):
            if count >= need_rows and freed >= need_bytes:
                break
            if count == 0:
                first = int(seq)
            last = int(seq)
            count += 1
            freed += int(size)
        if count:
            self.db.execute("DELETE FROM events WHERE seq <= ?", (last,))
        return count, freed, first

    def delete(self, seqs: list[int]) -> tuple[int, int]:
        """Delete acknowledged rows; returns how many were there and their bytes."""
        db = self.db
        # An ack lost to a power cut only means the event is sent again (consumers dedupe by seq),
        # so acks skip the fsync; the next append's FULL commit makes them durable anyway. WAL
        # with synchronous=NORMAL never corrupts the database.
        db.execute("PRAGMA synchronous = NORMAL")
        try:
            removed, freed = 0, 0
            with self._transaction():
                for seq in seqs:
                    row = db.execute(
                        "DELETE FROM events WHERE seq = ? RETURNING LENGTH(payload)", (seq,)
                    ).fetchone()
                    if row is not None:
                        removed += 1
                        freed += int(row[0])
        finally:
            db.execute("PRAGMA synchronous = FULL")
        return removed, freed

    def payload_size(self, seq: int) -> int | None:
        row = self.db.execute("SELECT LENGTH(payload) FROM events WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else int(row[0])

    def rows_after(self, after_seq: int, limit: int) -> list[tuple[int, str | None, bytes]]:
        """Up to `limit` stored rows with seq > after_seq, oldest first."""
        rows = self.db.execute(
            "SELECT seq, topic, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ).fetchall()
        return [(int(seq), topic, bytes(payload)) for seq, topic, payload in rows]

    def close(self) -> None:
        # Fold the WAL back so the file on disk is self-contained after a clean stop.
        with contextlib.suppress(sqlite3.Error):
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.close()
