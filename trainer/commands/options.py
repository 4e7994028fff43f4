"""Options shared by the commands that read photos (train, evaluate) and how they become a config."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from agent.config import AgentConfig, load_config

EPILOG = "Exit status: 0 success, 1 failure (rejected / bad input), 2 usage error or no device answered."

# The subparsers action argparse hands out; its class is private, so it is named once, here.
Subparsers = Any
# A parser or one of its argument groups: their common base class is private too.
ArgumentContainer = Any


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "facetrack" / "embeddings"


def add_signing_key(parser: ArgumentContainer, what: str) -> None:
    """`--key`: the Ed25519 private key from `keygen`, $FACETRACK_SIGNING_KEY when not given."""
    parser.add_argument(
        "--key",
        type=Path,
        metavar="PRIVATE_KEY",
        default=Path(os.environ["FACETRACK_SIGNING_KEY"])
        if os.environ.get("FACETRACK_SIGNING_KEY")
        else None,
        help=f"{what} (default: $FACETRACK_SIGNING_KEY)",
    )


def add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="TOML",
        help="agent config.toml: the detector, embedder and MQTT settings to use (default: built-in)",
    )


def add_vision(parser: argparse.ArgumentParser) -> None:
    add_config(parser)
    parser.add_argument(
        "--assets-dir", type=Path, help="where the models live (default: config assets_dir, models/assets)"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=default_cache_dir(),
        help="embedding cache, keyed by photo content hash (default: %(default)s)",
    )
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    parser.add_argument(
        "--pad",
        type=float,
        default=0.5,
        help="black border added around each photo before face detection, as a fraction of its "
        "longest side, so tightly cropped faces are found (default: %(default)s)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def vision_config(args: argparse.Namespace) -> AgentConfig:
    """The agent config of --config, with --assets-dir over it (ConfigError if invalid)."""
    overrides: dict[str, Any] = {}
    if getattr(args, "assets_dir", None) is not None:
        overrides["assets_dir"] = args.assets_dir
    return load_config(args.config, **overrides)
