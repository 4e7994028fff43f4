"""Count what asyncio and the interpreter report only on stderr while a benchmark round runs.

An exception in a loop callback (`Exception in callback ...`), a future nobody awaited, an error in
a `__del__`: none of them fails the round, and all of them used to scroll past. bench.fleet once
logged 500 "Bad file descriptor" errors that way and the traceback was lost, so each round now
counts them and keeps the first few in full.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any

KEEP = 3


class LoopErrors:
    """Context manager: while inside, the running loop's exception handler and sys.unraisablehook count."""

    def __init__(self, label: str, write: Callable[[str], object] = sys.stderr.write) -> None:
        self.label = label
        self.count = 0
        self.first: list[str] = []
        self._write = write
        self._loop: asyncio.AbstractEventLoop | None = None
        self._old_handler: Any = None
        self._old_hook: Callable[[Any], object] = sys.unraisablehook

    def _record(self, text: str) -> None:
        self.count += 1
        if len(self.first) < KEEP:
            self.first.append(text)
            self._write(f"[{self.label}] loop error {self.count}: {text}\n")

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        detail = "".join(traceback.format_exception(error)) if isinstance(error, BaseException) else ""
        self._record(f"{context.get('message', '')}\n{detail}".rstrip())

    def _on_unraisable(self, unraisable: Any) -> None:
        error = unraisable.exc_value
        detail = "".join(traceback.format_exception(error)) if isinstance(error, BaseException) else ""
        self._record(f"unraisable in {unraisable.object!r}: {unraisable.err_msg or ''}\n{detail}".rstrip())

    def __enter__(self) -> LoopErrors:
        self._loop = asyncio.get_running_loop()
        self._old_handler = self._loop.get_exception_handler()
        self._loop.set_exception_handler(self._on_loop_error)
        self._old_hook = sys.unraisablehook
        sys.unraisablehook = self._on_unraisable
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        # What the round left behind (an unawaited future, a client's __del__) reports when collected.
        gc.collect()
        assert self._loop is not None
        self._loop.set_exception_handler(self._old_handler)
        sys.unraisablehook = self._old_hook
