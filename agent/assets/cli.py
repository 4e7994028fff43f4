"""`facetrack-agent assets` (placeholder until the fetcher lands)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["fetch"])


def main(args: argparse.Namespace) -> int:
    raise SystemExit("facetrack-agent assets: not implemented yet")
