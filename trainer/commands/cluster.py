"""`facetrack-trainer cluster DIR`: group the faces of an inbox or a photo folder into people."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from trainer.cluster_cut import DEFAULT_DISTANCE, DEFAULT_MIN_HEIGHT
from trainer.commands.options import add_vision


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cluster",
        help="group the faces of an inbox (from `collect`) or of any photo folder into people",
        description="Group faces into people with the agent's embedder. DIR is an inbox written by "
        "`collect` or any folder of photos (searched recursively; faces are detected as `train` "
        "does; every face is a member: PATH for a photo with one face, PATH#k for the k-th face "
        "from the left of a photo with several; photos with no face are listed on stderr). Faces "
        "the agent's quality gate rejects are listed as ungrouped. Writes "
        "DIR/.groups/groups.json and a contact sheet PNG per group; prints the groups, largest "
        "first, with size, devices, first and last seen. Then: `facetrack-trainer name g1 --as "
        "alice --photos photos/`, `merge`, `discard`.",
    )
    parser.add_argument("dir", type=Path, metavar="DIR", help="an inbox or a folder of photos")
    parser.add_argument(
        "--max-distance",
        type=float,
        default=DEFAULT_DISTANCE,
        help="cosine distance at which groups stop merging (default %(default)s, chosen on held-out "
        "people by bench/cluster.py); lower = purer, smaller groups",
    )
    parser.add_argument(
        "--min-face-height",
        type=float,
        default=DEFAULT_MIN_HEIGHT,
        help="faces shorter than this (pixels) are not grouped (default %(default)s, chosen with the "
        "cut by bench/cluster.py)",
    )
    parser.add_argument(
        "--model",
        type=Path,
        metavar="BUNDLE",
        help="a trained bundle (.ftm): groups its classifier names get 'probably <name>'",
    )
    parser.add_argument(
        "--json", action="store_true", help='print only {"groups": [...], "ungrouped": [...]}'
    )
    parser.add_argument("--no-sheets", action="store_true", help="do not draw the contact sheet PNGs")
    add_vision(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # OpenCV, SciPy and the models load here, not at import: `--help` and `publish` stay fast.
    from trainer.commands.cluster_job import run_cluster

    return run_cluster(args)
