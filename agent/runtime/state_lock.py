"""One agent per state directory: an exclusive `flock` on `<state_dir>/agent.lock`.

Two agents on one state directory would share one seq counter and one outbox, publish the same
seqs with different contents and fight over its rows. The lock is held for the whole run and
released by the kernel when the process exits, however it exits (kill -9 included), so a stale
lock file never blocks a restart. The file names the holder (pid, host, start time) so the
second agent can say who has it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from agent.runtime.outbox import OutboxError

LOCK_NAME = "agent.lock"


class StateLockError(OutboxError):
    """The state directory is in use by another agent (or the lock cannot be taken)."""


class StateLock:
    """Held from `acquire` until `release` (or the process ends)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, state_dir: Path) -> StateLock:
        path = Path(state_dir) / LOCK_NAME
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise StateLockError(f"state directory {path.parent} cannot be created: {why}") from None
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise StateLockError(f"state directory lock {path} cannot be opened: {why}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(_read(fd))
            os.close(fd)
            raise StateLockError(
                f"state directory {path.parent} is in use by another agent ({holder}): "
                "give each agent its own --state-dir"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StateLockError(f"state directory lock {path} cannot be taken: {exc.strerror}") from None
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        # Best effort: the lock itself is what excludes; on a full disk the holder stays unnamed.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            # The file stays: removing it would let a third agent lock a new inode while a second
            # one still waits on the old.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 4096, 0).decode("utf-8", "replace")
    except OSError:
        return ""


def _describe(text: str) -> str:
    try:
        holder = json.loads(text)
        return f"pid {int(holder['pid'])} on {holder['host']}, started {holder['started']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"
