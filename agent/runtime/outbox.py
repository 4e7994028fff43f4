"""Durable, bounded store-and-forward queue of events between the pipeline and MQTT.

Every event is committed to SQLite (WAL, synchronous=FULL) before anyone may publish it and is
deleted only after the broker's PUBACK. The sequence counter lives in the same database and is
advanced in the same transaction as the insert, so a kill -9 at any instant leaves either the
whole event (with its seq) or nothing, and seq never repeats or skips across restarts, even when
the queue was empty.
"""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import structlog
from structlog.typing import FilteringBoundLogger

from agent.events.schema import EventBase

E = TypeVar("E", bound=EventBase)

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
# The outbox's id, made with it and stamped on every event: seq restarts at 1 only in a new outbox,
# so consumers dedupe on (device, epoch, seq) and tell a reset from a duplicate. Text, like owner.
_EPOCH = "epoch"
_TEXT_KEYS = (_OWNER, _EPOCH)
_SCHEMA_VERSION = 1


class OutboxError(Exception):
    """The outbox file cannot be used; phrased as one line for the user."""


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    # None means "the device's events topic"; set only for events addressed elsewhere.
    topic: str | None
    payload: bytes


class Outbox:
    """SQLite outbox; not thread-safe: use it from the event loop thread only.

    Appends are synchronous: one small fsync'd transaction (well under a millisecond on an SSD,
    a few on an SD card), rare next to frame processing, and far simpler to reason about than a
    writer thread that could die with events in memory.
    """

    def __init__(
        self,
        path: Path,
        max_rows: int,
        max_bytes: int,
        logger: FilteringBoundLogger | None = None,
        *,
        owner: str | None = None,
    ) -> None:
        """`owner` (the events topic) binds the file to one device: its queued events carry that
        device's topic and seq counter, so reopening it as another device is refused rather
        than publishing one device's history under another's name."""
        if max_rows < 1 or max_bytes < 1:
            raise ValueError("outbox max_rows and max_bytes must be positive")
        self.path = Path(path)
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self._log: FilteringBoundLogger = logger or structlog.get_logger("facetrack.outbox")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxError(f"outbox directory {self.path.parent} cannot be created: {exc}") from None
        self._db = self._open()
        try:
            self._last_seq, self._dropped, self._depth, self._bytes = self._load_state()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise OutboxError(f"outbox {self.path} is unusable: {exc}") from None
        if owner is not None:
            self._claim(owner)
        self.epoch = self._load_epoch()
        if self._depth:
            self._log.info("outbox_reopened", path=str(self.path), depth=self._depth, last_seq=self._last_seq)

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
        except sqlite3.DatabaseError as exc:
            db.close()
            raise OutboxError(f"outbox {self.path} is not a usable SQLite database: {exc}") from None
        except OutboxError:
            db.close()
            raise
        return db

    def _claim(self, owner: str) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (_OWNER,)).fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (_OWNER, owner))
        elif str(row[0]) != owner:
            self._db.close()
            raise OutboxError(
                f"outbox {self.path} belongs to {row[0]} (its seq counter and {self._depth} queued "
                f"events), not {owner}: give this device its own state_dir"
            )

    def _load_epoch(self) -> str:
        """This outbox's epoch; made on first use (an outbox from before epochs gets one too)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (_EPOCH,)).fetchone()
        if row is not None:
            return str(row[0])
        epoch = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
        # OR IGNORE + re-read: a second process opening the same new file keeps the first's epoch.
        self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (_EPOCH, epoch))
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (_EPOCH,)).fetchone()
        return str(row[0])

    def _load_state(self) -> tuple[int, int, int, int]:
        marks = ",".join("?" * len(_TEXT_KEYS))
        meta = dict(
            self._db.execute(f"SELECT key, value FROM meta WHERE key NOT IN ({marks})", _TEXT_KEYS).fetchall()
        )
        depth, total_bytes, max_seq = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0), COALESCE(MAX(seq), 0) FROM events"
        ).fetchone()
        # The counter and the rows are written in one transaction, so they always agree; the max()
        # only guards against a hand-edited file.
        last_seq = max(int(meta.get(_LAST_SEQ, 0)), int(max_seq))
        return last_seq, int(meta.get(_DROPPED, 0)), int(depth), int(total_bytes)

    # -- writing -------------------------------------------------------------------------------

    def append(self, draft: E, topic: str | None = None) -> E:
        """Assign the next seq, persist the event, and return it with that seq.

        When the bounds are exceeded the oldest queued events are deleted in the same transaction
        and counted in `dropped_total` (and logged), so a full outbox never blocks the pipeline.
        """
        if draft.seq != 0:
            raise ValueError(f"event already has seq {draft.seq}; only drafts with seq=0 can be appended")
        seq = self._last_seq + 1
        event = draft.model_copy(update={"seq": seq, "epoch": self.epoch})
        payload = event.model_dump_json().encode()
        if len(payload) > self.max_bytes:
            raise ValueError(f"event of {len(payload)} bytes exceeds the outbox max_bytes={self.max_bytes}")
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT INTO events (seq, topic, payload) VALUES (?, ?, ?)", (seq, topic, payload))
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (_LAST_SEQ, seq))
            depth, total = self._depth + 1, self._bytes + len(payload)
            dropped_now, dropped_bytes, first_dropped = 0, 0, 0
            if depth > self.max_rows or total > self.max_bytes:
                dropped_now, dropped_bytes, first_dropped = self._drop_oldest(depth, total)
                depth -= dropped_now
                total -= dropped_bytes
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    (_DROPPED, self._dropped + dropped_now),
                )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._last_seq, self._depth, self._bytes = seq, depth, total
        if dropped_now:
            self._dropped += dropped_now
            self._log.warning(
                "outbox_full_dropped_oldest",
                dropped=dropped_now,
                first_seq=first_dropped,
                last_seq=first_dropped + dropped_now - 1 if dropped_now else None,
                dropped_total=self._dropped,
                max_rows=self.max_rows,
                max_bytes=self.max_bytes,
            )
        return event

    def _drop_oldest(self, depth: int, total: int) -> tuple[int, int, int]:
        """Choose the fewest oldest rows that bring the queue within bounds; delete them."""
        need_rows = max(0, depth - self.max_rows)
        need_bytes = max(0, total - self.max_bytes)
        count, freed, first, last = 0, 0, 0, 0
        for seq, size in self._db.execute("SELECT seq, LENGTH(payload) FROM events ORDER BY seq"):
            if count >= need_rows and freed >= need_bytes:
                break
            if count == 0:
                first = int(seq)
            last = int(seq)
            count += 1
            freed += int(size)
        if count:
            self._db.execute("DELETE FROM events WHERE seq <= ?", (last,))
        return count, freed, first

    def ack(self, seq: int) -> None:
        """Forget one event after the broker acknowledged it (PUBACK)."""
        self.ack_many((seq,))

    def ack_many(self, seqs: Iterable[int]) -> None:
        """Forget several acknowledged events in one transaction (one fsync for a whole window)."""
        wanted = [(int(s),) for s in seqs]
        if not wanted:
            return
        db = self._db
        # An ack lost to a power cut only means the event is sent again (consumers dedupe by seq),
        # so acks skip the fsync; the next append's FULL commit makes them durable anyway. WAL
        # with synchronous=NORMAL never corrupts the database.
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            removed, freed = 0, 0
            for (seq,) in wanted:
                row = db.execute(
                    "DELETE FROM events WHERE seq = ? RETURNING LENGTH(payload)", (seq,)
                ).fetchone()
                if row is not None:
                    removed += 1
                    freed += int(row[0])
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.execute("PRAGMA synchronous = FULL")
        self._depth -= removed
        self._bytes -= freed

    # -- reading -------------------------------------------------------------------------------

    def peek(self, limit: int, after_seq: int = 0) -> list[OutboxRow]:
        """Up to `limit` queued events with seq > after_seq, oldest first, without removing them."""
        rows = self._db.execute(
            "SELECT seq, topic, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, max(0, int(limit))),
        ).fetchall()
        return [OutboxRow(int(seq), topic, bytes(payload)) for seq, topic, payload in rows]

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def last_seq(self) -> int:
        """The seq given to the latest event (0 when none was ever appended)."""
        return self._last_seq

    @property
    def dropped_total(self) -> int:
        """Events deleted unsent because the outbox was full, over the outbox's whole life."""
        return self._dropped

    def close(self) -> None:
        # Fold the WAL back so the file on disk is self-contained after a clean stop.
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
