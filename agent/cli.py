"""`facetrack-agent`: the edge agent's command line.

Each subcommand lives in its own module exposing `configure(parser)` and `main(args) -> int`, so
`--help` stays fast and a subcommand's heavy imports happen only when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from agent import __version__
from agent.cli_parser import OneLineParser

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("agent.runtime.cli", "run the agent on a video file, camera or stream"),
    "assets": ("agent.assets.cli", "fetch and verify models and test data"),
    "schema": ("agent.runtime.schema_cli", "print the JSON Schema of the MQTT events"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="facetrack-agent",
        description=(
            "Recognise faces and track people on a video, camera or RTSP stream, and publish "
            "identity and track events to MQTT (facetrack/<device>/events)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"facetrack {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, summary) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sub = commands.add_parser(name, help=summary, description=summary)
        module.configure(sub)
        sub.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._module.main(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
