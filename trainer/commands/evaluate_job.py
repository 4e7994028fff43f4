"""What `facetrack-trainer evaluate` does: a bundle's rates on held-out photos, and their picture."""

from __future__ import annotations

import argparse
import json
import sys

from agent.classifier.errors import BundleError
from agent.config import ConfigError
from agent.vision.inference import ModelLoadError
from trainer.commands.options import vision_config
from trainer.commands.photos import dataset_error, face_embedding, model_missing
from trainer.dataset import DatasetError
from trainer.errors import TrainerError
from trainer.evaluate import evaluate, format_evaluation, load_bundle_unverified
from trainer.plots import PlotUnavailable, draw


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except ModelLoadError as exc:
        raise model_missing(exc, args) from None


def _run(args: argparse.Namespace) -> int:
    try:
        bundle = load_bundle_unverified(args.bundle)
        config = vision_config(args)
        embedding = face_embedding(args, config)
        result = evaluate(
            bundle.classifier, embedding, args.test_dir, args.impostors, progress=not args.quiet
        )
    except BundleError as exc:
        raise TrainerError(f"{args.bundle}: {exc}", exit_code=1) from None
    except OSError as exc:
        raise TrainerError(f"{exc.filename}: {exc.strerror}", exit_code=1) from None
    except ConfigError as exc:
        raise TrainerError(str(exc), exit_code=1) from None
    except DatasetError as exc:
        raise dataset_error(exc) from None
    if result["faces"] == 0:
        # Rates over zero faces are not a measurement: fail rather than print nulls with success.
        why = ", ".join(f"{n} {kind}" for kind, n in result["skipped_by_reason"].items())
        raise TrainerError(
            f"no usable face in any of {result['skipped']} photo(s), nothing measured ({why})", exit_code=1
        )
    print(json.dumps(result, indent=2) if args.json else format_evaluation(result))
    plot = args.plot or args.bundle.with_name(args.bundle.name + ".evaluate.png")
    confusion = result["confusion"]
    try:
        draw(
            plot,
            title=f"facetrack-trainer evaluate {args.bundle.name} on {args.test_dir}",
            genuine=result["genuine_scores"],
            impostor=result["impostor_scores"],
            threshold=result["threshold"],
            genuine_total=result["enrolled_faces"],
            rows=confusion["rows"],
            columns=confusion["columns"],
            matrix=confusion["matrix"],
        )
    except (PlotUnavailable, OSError) as exc:
        print(f"facetrack-trainer: warning: no picture: {exc}", file=sys.stderr)
        return 0
    # With --json stdout stays one JSON document; the path goes to stderr.
    print(f"picture: {plot}", file=sys.stderr if args.json else sys.stdout)
    return 0
