"""`facetrack-agent schema`: print the JSON Schema subscribers can validate events against."""

from __future__ import annotations

import argparse
import json

from agent.events.schema import event_json_schema


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--indent", type=int, default=2, help="JSON indentation (default 2)")


def main(args: argparse.Namespace) -> int:
    print(json.dumps(event_json_schema(), indent=args.indent, sort_keys=True))
    return 0
