"""`facetrack-trainer`: photos -> signed classifier bundle -> the fleet.

facetrack-trainer keygen --out keys/
facetrack-trainer train photos/ --out model.ftm --key keys/facetrack.key [--negatives strangers/]
facetrack-trainer evaluate model.ftm test_photos/ [--impostors strangers/] [--json]
facetrack-trainer publish model.ftm --device cam-1|all [--broker host:8883] [--config config.toml]
    [--tls-ca ca.crt --tls-cert client.crt --tls-key client.key --username trainer]
    [--password-file FILE] [--wait 30]
    [--public-key keys/facetrack.pub]
facetrack-trainer publish --clear --device cam-1   # delete a retained model sent to a wrong device id

Each command is a module of `trainer.commands` with `add_parser(subparsers)` and `run(args) -> int`;
a user's error is a `TrainerError`, printed here as one line with its exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from agent import __version__
from agent.cli_parser import OneLineParser
from agent.logging_setup import configure_logging
from trainer.commands import cluster, collect, evaluate, keygen, name, publish, review, train
from trainer.commands.options import EPILOG
from trainer.errors import TrainerError

COMMANDS = (keygen, train, evaluate, publish, collect, cluster, name, review)
# What a shell reports for a process killed by SIGPIPE (128 + 13), as `cat` would end in `cat | head`.
SIGPIPE_EXIT = 141


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="facetrack-trainer",
        description=(
            "Train, sign, evaluate and publish the face classifier that facetrack agents use. "
            "Photos are detected, aligned and embedded with the same models as the agent."
        ),
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"facetrack {__version__}")
    parser.add_argument("--verbose", action="store_true", help="log model loading details to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def _stdout_closed() -> int:
    """`evaluate --json | head`: the reader left, which is not an error worth a traceback. stdout is
    pointed at /dev/null so the interpreter's last flush at exit cannot raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return SIGPIPE_EXIT


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Logs go to stderr so `evaluate --json` / `publish --json` keep stdout machine-readable.
    configure_logging("info" if args.verbose else "warning", "auto")
    try:
        code = int(args.run(args))
        # Flushed here, not at exit: a reader that went away is then caught below.
        sys.stdout.flush()
        return code
    except TrainerError as exc:
        print(f"facetrack-trainer: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        return _stdout_closed()
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
