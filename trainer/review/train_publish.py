"""The review page's "train and publish": the `train` and `publish` commands' own code, one line back.

Each step is parsed by the CLI's parser and run by the command's `run`, exactly as
`facetrack-trainer train ...` / `publish ...` would be; their printed output goes to the terminal
the page was started from, and the page gets one line: what was done, or the one error that
stopped it (a TrainerError's message, as the CLI would print it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainer.errors import TrainerError

# publish's exit codes (trainer/commands/publish.py): 1 a device rejected it, 2 no device answered.
REJECTED = 1
NO_ANSWER = 2


@dataclass(frozen=True)
class TrainAndPublish:
    photos: Path
    out: Path
    key: Path | None
    # None: train only.
    device: str | None = None
    config: Path | None = None
    broker: str | None = None
    public_key: Path | None = None
    wait_s: float = 2.0

    def train_argv(self) -> list[str]:
        assert self.key is not None
        argv = ["train", str(self.photos), "--out", str(self.out), "--key", str(self.key), "--quiet"]
        return argv + (["--config", str(self.config)] if self.config else [])

    def publish_argv(self) -> list[str]:
        assert self.device is not None
        argv = ["publish", str(self.out), "--device", self.device, "--wait", f"{self.wait_s:g}"]
        if self.config:
            argv += ["--config", str(self.config)]
        if self.broker:
            argv += ["--broker", self.broker]
        if self.public_key:
            argv += ["--public-key", str(self.public_key)]
        return argv

    def __call__(self) -> str:
        if self.key is None:
            return "error: no signing key: start review with --key FILE (or set FACETRACK_SIGNING_KEY)"
        code, error = _run(self.train_argv())
        if error or code != 0:
            return f"error: train: {error or f'exited {code} (its output is in the terminal)'}"
        if not self.device:
            return f"trained {self.out} (not published: start review with --device to publish)"
        code, error = _run(self.publish_argv())
        if error:
            return f"error: trained {self.out}, not published: {error}"
        if code == REJECTED:
            return f"error: trained {self.out} and published it to {self.device}: a device rejected it"
        if code == NO_ANSWER:
            return (
                f"trained {self.out} and published it to {self.device}: retained on the broker; no "
                f"device answered within {self.wait_s:g} s (devices take it when they connect)"
            )
        return f"trained {self.out} and published it to {self.device}: every device that answered runs it"


def _run(argv: list[str]) -> tuple[int, str]:
    """(exit code, the TrainerError's message or "") of one command, as `facetrack-trainer` runs it."""
    # trainer.cli imports the review command to register it: its parser is imported when used.
    from trainer.cli import build_parser

    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args)), ""
    except TrainerError as exc:
        return exc.exit_code, exc.message
    except SystemExit as exc:  # argparse refused a value given to review (its message is on stderr)
        return int(exc.code or 2), f"bad arguments for {argv[0]} (see the terminal)"
    except Exception as exc:  # a bug, not the user's error: the page still gets its one line
        return 1, f"{type(exc).__name__}: {exc}"
