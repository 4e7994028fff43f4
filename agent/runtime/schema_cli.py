"""`facetrack-agent schema`: print or check the JSON Schema subscribers validate events against.

The schema is also committed as agent/events/events.schema.json so subscribers can take it from
the repository without installing the agent; `--check` fails when that file is out of date.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from agent.events.schema import event_json_schema

# Committed next to the event models it is rendered from, not next to this command.
SCHEMA_FILE = Path(__file__).resolve().parent.parent / "events" / "events.schema.json"


def render_schema() -> str:
    return json.dumps(event_json_schema(), indent=2, sort_keys=True) + "\n"


def configure(parser: argparse.ArgumentParser) -> None:
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--write", action="store_true", help=f"rewrite {SCHEMA_FILE.name} next to the event models"
    )
    action.add_argument(
        "--check", action="store_true", help=f"exit 1 if {SCHEMA_FILE.name} differs from the models"
    )


def main(args: argparse.Namespace) -> int:
    rendered = render_schema()
    if args.write:
        SCHEMA_FILE.write_text(rendered)
        return 0
    if args.check:
        if not SCHEMA_FILE.is_file() or SCHEMA_FILE.read_text() != rendered:
            print(f"{SCHEMA_FILE} is out of date: run `facetrack-agent schema --write`", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(rendered)
    return 0
