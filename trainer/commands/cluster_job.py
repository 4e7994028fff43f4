"""The work of `facetrack-trainer cluster`: embed, group, name the likely enrolled people, print.

Imported by `cluster.run` only, so its OpenCV, SciPy and model imports stay out of `--help`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.classifier.errors import BundleError
from agent.classifier.labels import UNKNOWN
from agent.config import ConfigError
from agent.vision.face_quality import QualityParams
from agent.vision.inference import ModelLoadError
from trainer.clustering import Rule
from trainer.commands.options import vision_config
from trainer.commands.photos import model_missing
from trainer.dataset import DatasetError, FaceEmbedding
from trainer.errors import TrainerError
from trainer.evaluate import load_bundle_unverified
from trainer.groups import cluster, load_faces, save


def _probably(bundle: Path, embedder_id: str) -> Any:
    """A function: a group's embeddings -> the enrolled name most of them get, or None."""
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


def run_cluster(args: argparse.Namespace) -> int:

    root: Path = args.dir
    if not root.is_dir():
        raise TrainerError(f"{root} is not a directory")
    if not 0.0 < args.max_distance < 2.0:
        raise TrainerError(f"--max-distance {args.max_distance:g}: a cosine distance between 0 and 2")
    if args.min_face_height < 0:
        raise TrainerError(f"--min-face-height {args.min_face_height:g}: pixels, 0 or more")
    try:
        config = vision_config(args)
        embedding = FaceEmbedding.from_config(
            config, cache_dir=None if args.no_cache else args.cache_dir, pad=args.pad
        )
        probably = _probably(args.model, embedding.embedder_id) if args.model else None
        detection = config.detection
        gate = QualityParams(detection.face_min_height, detection.face_min_sharpness, detection.face_max_turn)
        faces, skipped = load_faces(root, embedding, gate, progress=not args.quiet)
    except (ConfigError, DatasetError) as exc:
        raise TrainerError(str(exc)) from None
    except ModelLoadError as exc:
        raise model_missing(exc, args) from None
    for line in skipped:
        print(f"facetrack-trainer: skipped {line}", file=sys.stderr)
    if not faces:
        raise TrainerError(f"no usable face in {root} ({len(skipped)} photos skipped)", exit_code=1)
    result = cluster(
        root,
        faces,
        embedder=embedding.embedder_id,
        rule=Rule(args.max_distance, args.min_face_height),
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
        f"{len(result.ungrouped)} ungrouped (cut {args.max_distance:g}, faces under "
        f"{args.min_face_height:g} px or failing the quality gate ungrouped)"
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
