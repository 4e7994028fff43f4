"""`facetrack-trainer cluster DIR`: group the faces of an inbox or a photo folder into people."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.classifier.labels import UNKNOWN
from agent.config import ConfigError, load_config
from trainer.clustering import DEFAULT_DISTANCE
from trainer.errors import TrainerError


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "facetrack" / "embeddings"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cluster",
        help="group the faces of an inbox (from `collect`) or of any photo folder into people",
        description="Group faces into people with the agent's embedder. DIR is an inbox written by "
        "`collect` or any folder of photos (searched recursively; faces are detected as `train` "
        "does; photos with no face or several are skipped and listed on stderr). Writes "
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
        "--model",
        type=Path,
        metavar="BUNDLE",
        help="a trained bundle (.ftm): groups its classifier names get 'probably <name>'",
    )
    parser.add_argument(
        "--json", action="store_true", help='print only {"groups": [...], "ungrouped": [...]}'
    )
    parser.add_argument("--no-sheets", action="store_true", help="do not draw the contact sheet PNGs")
    parser.add_argument("--config", type=Path, metavar="TOML", help="agent config.toml (detector, embedder)")
    parser.add_argument("--assets-dir", type=Path, help="where the models live (default: config assets_dir)")
    parser.add_argument("--cache-dir", type=Path, default=_default_cache_dir(), help="embedding cache")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    parser.add_argument("--pad", type=float, default=0.5, help="border added around photos, as in train")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def _probably(bundle: Path, embedder_id: str) -> Any:
    """A function: a group's embeddings -> the enrolled name most of them get, or None."""
    from agent.classifier.errors import BundleError
    from trainer.evaluate import load_bundle_unverified

    try:
        classifier = load_bundle_unverified(bundle).classifier
    except (BundleError, OSError) as exc:
        raise TrainerError(f"--model {bundle}: {exc}") from None
    if classifier.embedder_id != embedder_id:
        raise TrainerError(
            f"--model {bundle} was trained for {classifier.embedder_id!r}, not {embedder_id!r}"
        )

    def probably(embeddings: npt.NDArray[np.float32]) -> str | None:
        labels = [p.label for p in classifier.predict(embeddings)]
        named = [label for label in labels if label != UNKNOWN]
        if not named:
            return None
        best = max(set(named), key=named.count)
        # Most of the group, not one stray face: a group is "probably alice" when half its faces are.
        return best if named.count(best) * 2 >= len(labels) else None

    return probably


def run(args: argparse.Namespace) -> int:
    from trainer.dataset import DatasetError, FaceEmbedding
    from trainer.groups import cluster, load_faces, save

    root: Path = args.dir
    if not root.is_dir():
        raise TrainerError(f"{root} is not a directory")
    if not 0.0 < args.max_distance < 2.0:
        raise TrainerError(f"--max-distance {args.max_distance:g}: a cosine distance between 0 and 2")
    try:
        overrides: dict[str, Any] = {}
        if args.assets_dir is not None:
            overrides["assets_dir"] = args.assets_dir
        config = load_config(args.config, **overrides)
        embedding = FaceEmbedding.from_config(
            config, cache_dir=None if args.no_cache else args.cache_dir, pad=args.pad
        )
        probably = _probably(args.model, embedding.embedder_id) if args.model else None
        faces, skipped = load_faces(root, embedding, progress=not args.quiet)
    except (ConfigError, DatasetError) as exc:
        raise TrainerError(str(exc)) from None
    for line in skipped:
        print(f"facetrack-trainer: skipped {line}", file=sys.stderr)
    if not faces:
        raise TrainerError(f"no usable face in {root} ({len(skipped)} photos skipped)", exit_code=1)
    result = cluster(
        root,
        faces,
        embedder=embedding.embedder_id,
        max_distance=args.max_distance,
        probably=probably,
        skipped=skipped,
    )
    try:
        out = save(result, sheets=not args.no_sheets)
    except OSError as exc:
        raise TrainerError(f"cannot write the groups under {root}: {exc}", exit_code=1) from None
    if args.json:
        print(json.dumps(result.as_json()))
        return 0
    print(
        f"{len(faces)} faces in {root}: {len(result.groups)} groups, "
        f"{len(result.ungrouped)} ungrouped (cut {args.max_distance:g})"
    )
    for g in result.groups:
        parts = [f"{g.id}: {len(g.members)} faces"]
        if g.devices:
            parts.append("devices " + ", ".join(g.devices))
        if g.first_seen:
            parts.append(f"seen {g.first_seen} .. {g.last_seen}")
        if g.probably:
            parts.append(f"probably {g.probably}")
        if g.sheet:
            parts.append(f"sheet {root / g.sheet}")
        print("  " + "; ".join(parts))
    print(
        f"groups saved in {out}; name one: facetrack-trainer name g1 --as NAME --photos photos/ --from {root}"
    )
    return 0
