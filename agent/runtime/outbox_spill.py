"""What the outbox does while its disk refuses writes (a full SD card, an I/O error).

The agent keeps running: events that cannot be committed wait in a bounded in-memory spill, are
published in seq order like stored ones while the broker is up, and are written to SQLite as soon
as a write succeeds again. Their seqs must never be handed out twice, even if the process dies
before the disk recovers, so the highest seq given to a spilled event is recorded in a small file
created at start (the agent refuses to start without it) and then only overwritten in place:
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

# Fixed width ("<seq> <dropped>\n"), so every store overwrites the same bytes and never grows the file.
_WIDTH = 20
_SIZE = 2 * _WIDTH + 2


@dataclass(frozen=True)
class SpilledRow:
    seq: int
    topic: str | None
    payload: bytes


class SeqReserve:
    """The highest seq handed out to an event that is not on disk (0 when none), and the count of
    events dropped while the disk refused writes (so a restart still reports them)."""

    def __init__(self, fd: int, value: int, dropped: int = 0) -> None:
        self._fd = fd
        self.value = value
        self.dropped = dropped

    @classmethod
    def open(cls, path: Path) -> SeqReserve:
        """Open or create the file; raises OSError (or ValueError for garbage in it)."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            text = os.pread(fd, _SIZE, 0)
            if len(text) != _SIZE:
                # New (or cut short by a crash while created): allocate its bytes now, while the
                # disk has room, so later stores only overwrite.
                os.pwrite(fd, _encode(0, 0), 0)
                os.fsync(fd)
                return cls(fd, 0)
            seq, dropped = text.decode("ascii").split()
            return cls(fd, int(seq), int(dropped))
        except BaseException:
            os.close(fd)
            raise

    def store(self, seq: int, dropped: int) -> bool:
        """Record both durably; False when even an in-place write fails."""
        try:
            os.pwrite(self._fd, _encode(seq, dropped), 0)
            os.fsync(self._fd)
        except OSError:
            return False
        self.value, self.dropped = seq, dropped
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


def _encode(seq: int, dropped: int) -> bytes:
    return f"{seq:0{_WIDTH}d} {dropped:0{_WIDTH}d}\n".encode("ascii")


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
