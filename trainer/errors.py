"""The trainer's one error type: every user-facing failure is a TrainerError with its exit code."""

from __future__ import annotations


class TrainerError(Exception):
    """A failure the user can act on: one line on stderr, and the exit code the CLI returns."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
