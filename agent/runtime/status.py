"""Rolling performance numbers for the retained status message (fps, per-stage latency).

Pure book-keeping; the app's status task publishes `StatusMonitor.snapshot(...)`.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any


def run_state(*, finished: bool, stopping: bool) -> str:
    """Status `state`: "running" while frames flow; "stopping" once any stop began (a signal, end
    of input, --max-frames) while the outbox flushes; "stopped" on the last status of every stop,
    so the retained status agrees with availability `stopped`."""
    if finished:
        return "stopped"
    return "stopping" if stopping else "running"


def rss_mb() -> float | None:
    """The process's resident set now, in MB (None where /proc is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def peak_rss_mb() -> float:
    """The process's largest resident set so far, in MB (ru_maxrss: kB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


class StatusMonitor:
    """Keeps the last `window` frames: completion times and per-stage latencies in milliseconds."""

    def __init__(self, window: int = 120, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started = clock()
        self._done: deque[float] = deque(maxlen=window)
        self._stages: dict[str, deque[float]] = {}
        self._window = window
        self.frames_processed = 0

    @property
    def uptime_s(self) -> float:
        return self._clock() - self._started

    def frame_done(self, timings_ms: Mapping[str, float]) -> None:
        self._done.append(self._clock())
        self.frames_processed += 1
        for stage, value in timings_ms.items():
            self._stages.setdefault(stage, deque(maxlen=self._window)).append(float(value))

    def fps(self) -> float:
        """Frames per second over the window (0 until two frames are done)."""
        if len(self._done) < 2:
            return 0.0
        span = self._done[-1] - self._done[0]
        return (len(self._done) - 1) / span if span > 0 else 0.0

    def latency_ms(self) -> dict[str, float]:
        """Mean latency per stage over the frames in the window that ran it."""
        return {k: round(sum(v) / len(v), 2) for k, v in sorted(self._stages.items()) if v}

    def snapshot(self, **fields: Any) -> dict[str, Any]:
        status: dict[str, Any] = {
            "ts": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "uptime_s": round(self.uptime_s, 1),
            "frames_processed": self.frames_processed,
            "fps": round(self.fps(), 2),
            "latency_ms": self.latency_ms(),
        }
        status.update(fields)
        return status
