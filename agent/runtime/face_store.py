"""Faces kept for naming, waiting in the state directory until the broker has them (enrolment).

One SQLite file (`faces.sqlite3`, WAL, synchronous FULL: kill -9 or a power cut loses none that
were added) with three bounds from `[enrolment]`: a count, megabytes and an age. Adding past a
bound, or opening a file with faces older than the age, drops the oldest first and counts them
(`dropped_total`, kept in the file, shown in status). The faces never share a file, a queue or a
bound with the events: a full face store never costs an event.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from agent.runtime.outbox_store import OutboxError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS faces (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    payload BLOB NOT NULL
);
"""
_DROPPED = "dropped_total"


class FaceStoreError(OutboxError):
    """The face store's file cannot be used; one line for the user (reported at start like an
    unusable outbox: exit 2)."""


@dataclass(frozen=True, slots=True)
class FaceBounds:
    max_faces: int
    max_bytes: int
    max_age_s: float


class FaceStore:
    """Bounded FIFO of face messages (bytes) on disk; use from one thread (the event loop)."""

    def __init__(self, path: Path, bounds: FaceBounds, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.bounds = bounds
        self._clock = clock
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, isolation_level=None)
            self.db.execute("PRAGMA busy_timeout = 5000")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = FULL")
            self.db.executescript(_SCHEMA)
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (_DROPPED,)).fetchone()
            self._dropped = int(row[0]) if row is not None else 0
            self._depth, self._bytes = self.db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM faces"
            ).fetchone()
        except (OSError, sqlite3.Error) as exc:
            raise FaceStoreError(f"face store {path} cannot be used: {exc}") from None
        with self._transaction() as db:
            self._enforce(db, 0)

    def _now(self) -> float:
        return float(self._clock())

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def add(self, payload: bytes) -> int:
        """Store one face message; returns how many old ones were dropped to make room (a message
        larger than the byte bound on its own is dropped itself, and counted)."""
        return self.add_many([payload])

    def add_many(self, payloads: list[bytes]) -> int:
        """Store the faces of the tracks that just ended in one transaction: one fsync for all
        (a track hands over up to `faces_per_track` at once, and each commit is an fsync on the
        event loop). Returns how many faces were dropped, as `add` does."""
        if not payloads:
            return 0
        dropped = 0
        with self._transaction() as db:
            for payload in payloads:
                if len(payload) > self.bounds.max_bytes:
                    self._count_dropped(db, 1)
                    dropped += 1
                    continue
                dropped += self._enforce(db, len(payload))
                db.execute("INSERT INTO faces (created, payload) VALUES (?, ?)", (self._now(), payload))
                self._depth += 1
                self._bytes += len(payload)
        return dropped

    def _enforce(self, db: sqlite3.Connection, incoming: int) -> int:
        """Drop the oldest faces until one of `incoming` bytes fits every bound; returns the count."""
        b = self.bounds
        dropped = 0
        cutoff = self._now() - b.max_age_s
        extra = 1 if incoming else 0
        while True:
            # The oldest face only: the bounds are checked on every add, and reading every row (and
            # every payload's length) each time cost a scan of the whole backlog during an outage.
            row = db.execute("SELECT id, created, LENGTH(payload) FROM faces ORDER BY id LIMIT 1").fetchone()
            if row is None:
                break
            face_id, created, size = row
            too_old = created < cutoff
            too_many = self._depth + extra > b.max_faces
            too_big = self._bytes + incoming > b.max_bytes
            if not (too_old or too_many or too_big):
                break
            db.execute("DELETE FROM faces WHERE id = ?", (face_id,))
            self._depth -= 1
            self._bytes -= int(size)
            dropped += 1
        if dropped:
            self._count_dropped(db, dropped)
        return dropped

    def _count_dropped(self, db: sqlite3.Connection, count: int) -> None:
        self._dropped += count
        db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
            (_DROPPED, self._dropped, self._dropped),
        )

    def oldest(self, limit: int) -> list[tuple[int, bytes]]:
        """Up to `limit` faces, oldest first, that are still within the age bound."""
        with self._transaction() as db:
            self._enforce(db, 0)
        rows = self.db.execute("SELECT id, payload FROM faces ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [(int(face_id), bytes(payload)) for face_id, payload in rows]

    def delete(self, face_id: int) -> None:
        """The broker has it (PUBACK)."""
        with self._transaction() as db:
            row = db.execute("SELECT LENGTH(payload) FROM faces WHERE id = ?", (face_id,)).fetchone()
            if row is None:
                return
            db.execute("DELETE FROM faces WHERE id = ?", (face_id,))
        self._depth -= 1
        self._bytes -= int(row[0])

    @property
    def depth(self) -> int:
        return int(self._depth)

    @property
    def bytes(self) -> int:
        return int(self._bytes)

    @property
    def dropped_total(self) -> int:
        return self._dropped

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.close()
