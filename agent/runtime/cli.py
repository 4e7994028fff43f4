"""`facetrack-agent run` (placeholder until the pipeline lands)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML config file")


def main(args: argparse.Namespace) -> int:
    raise SystemExit("facetrack-agent run: not implemented yet")
