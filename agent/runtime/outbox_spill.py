"""What the outbox does while its disk refuses writes (a full SD card, an I/O error).

The agent keeps running: events that cannot be committed wait in a bounded in-memory spill, are
published in seq order like stored ones while the broker is up, and are written to SQLite as soon
as a write succeeds again. Their seqs must not be handed out again, and their loss must be counted
if the process dies before the disk recovers, so the highest seq handed out (written before each
commit too) and how many events above the stored counter are held in memory are recorded in a
small file created at start (the agent refuses to start without it) and then only overwritten in
place:
rewriting allocated blocks needs no free space on tmpfs, ext4 or vfat (a copy-on-write filesystem
may still refuse, and then the event is dropped and counted rather than given a seq that could
repeat).
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# Fixed width ("<seq> <dropped> <held> <settled>\n"), so every store overwrites the same bytes and
# never grows the file. The two-field file of earlier versions is read and widened at open.
_WIDTH = 20
_FIELDS = 4
_SIZE = _FIELDS * _WIDTH + _FIELDS
_LEGACY_SIZE = 2 * _WIDTH + 2


@dataclass(frozen=True)
class SpilledRow:
    seq: int
    topic: str | None
    payload: bytes


@dataclass(frozen=True)
class Reservation:
    """What the reserve says about the seqs above the outbox's stored counter.

    `seq` is the highest seq handed out (written before the SQLite commit that stores it), so a
    database that lost committed rows (a WAL cut short by a card that lies about fsync) is seen
    behind it. Of the seqs above the stored counter, `held` were only in memory (lost if the
    process died) and `settled` are already accounted for (delivered from memory, or counted in
    `dropped`); the rest are missing and are counted as lost at the next open.
    """

    seq: int = 0
    dropped: int = 0
    held: int = 0
    settled: int = 0


class SeqReserve:
    """The reserve file next to the outbox: see `Reservation`. `created` is True when the file was
    missing or cut short at open (what it recorded, if anything, is gone)."""

    def __init__(self, fd: int, value: Reservation, *, created: bool = False) -> None:
        self._fd = fd
        self.current = value
        self.created = created

    @property
    def value(self) -> int:
        return self.current.seq

    @property
    def dropped(self) -> int:
        return self.current.dropped

    @classmethod
    def open(cls, path: Path) -> SeqReserve:
        """Open or create the file; raises OSError (or ValueError for garbage in it)."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            text = os.pread(fd, _SIZE + 1, 0)
            if len(text) not in (_SIZE, _LEGACY_SIZE):
                # New (or cut short by a crash while created): allocate its bytes now, while the
                # disk has room, so later stores only overwrite.
                os.pwrite(fd, _encode(Reservation()), 0)
                os.fsync(fd)
                return cls(fd, Reservation(), created=True)
            fields = [int(part) for part in text.decode("ascii").split()]
            if len(fields) not in (2, _FIELDS) or min(fields) < 0:
                raise ValueError("not a seq reserve")
            value = Reservation(*fields)
            if len(text) == _LEGACY_SIZE:
                os.pwrite(fd, _encode(value), 0)
                os.fsync(fd)
            return cls(fd, value)
        except BaseException:
            os.close(fd)
            raise

    def store(self, value: Reservation) -> bool:
        """Record `value` durably; False when even an in-place write fails."""
        try:
            os.pwrite(self._fd, _encode(value), 0)
            os.fsync(self._fd)
        except OSError:
            return False
        self.current = value
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


def _encode(value: Reservation) -> bytes:
    fields = (value.seq, value.dropped, value.held, value.settled)
    return (" ".join(f"{field:0{_WIDTH}d}" for field in fields) + "\n").encode("ascii")


class Spill:
    """Events waiting in memory for the disk, oldest first, bounded in rows and bytes."""

    def __init__(self, max_rows: int, max_bytes: int) -> None:
        self.max_rows = max(1, max_rows)
        self.max_bytes = max(1, max_bytes)
        self._rows: deque[SpilledRow] = deque()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self) -> list[SpilledRow]:
        return list(self._rows)

    def would_drop(self, row: SpilledRow) -> int:
        """How many of the oldest rows `add(row)` will drop to stay within bounds."""
        rows, total, dropped = len(self._rows) + 1, self.bytes + len(row.payload), 0
        for old in self._rows:
            if not (rows > 1 and (rows > self.max_rows or total > self.max_bytes)):
                break
            rows -= 1
            total -= len(old.payload)
            dropped += 1
        return dropped

    def add(self, row: SpilledRow) -> list[SpilledRow]:
        """Keep `row`; return the oldest rows dropped to stay within bounds."""
        self._rows.append(row)
        self.bytes += len(row.payload)
        dropped: list[SpilledRow] = []
        while len(self._rows) > 1 and (len(self._rows) > self.max_rows or self.bytes > self.max_bytes):
            old = self._rows.popleft()
            self.bytes -= len(old.payload)
            dropped.append(old)
        return dropped

    def after(self, after_seq: int, limit: int) -> list[SpilledRow]:
        return [row for row in self._rows if row.seq > after_seq][: max(0, limit)]

    def remove(self, seqs: Iterable[int]) -> tuple[set[int], int]:
        """Forget the given seqs; return those that were here and the bytes freed."""
        wanted = set(seqs)
        kept: deque[SpilledRow] = deque()
        found: set[int] = set()
        freed = 0
        for row in self._rows:
            if row.seq in wanted:
                found.add(row.seq)
                freed += len(row.payload)
            else:
                kept.append(row)
        self._rows = kept
        self.bytes -= freed
        return found, freed

    def clear(self) -> None:
        self._rows.clear()
        self.bytes = 0
