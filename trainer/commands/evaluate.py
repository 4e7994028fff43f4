"""`facetrack-trainer evaluate`: its command line; the work is in `evaluate_job`."""

from __future__ import annotations

import argparse
from pathlib import Path

from trainer.commands.options import EPILOG, Subparsers, add_vision


def add_parser(subparsers: Subparsers) -> None:
    evaluate = subparsers.add_parser(
        "evaluate",
        help="measure a bundle on held-out photos",
        description="Run the bundle on TEST_DIR/<person>/ photos (people the bundle does not know "
        "count as impostors) and on --impostors photos. accuracy: enrolled faces whose person the "
        "SVM picks; true_accept_rate: enrolled faces named correctly at the threshold; "
        "false_accept_rate: impostor faces given any name.",
        epilog=EPILOG,
    )
    evaluate.add_argument("bundle", type=Path, metavar="BUNDLE")
    evaluate.add_argument(
        "test_dir", type=Path, metavar="TEST_DIR", help="one sub-folder of photos per person"
    )
    evaluate.add_argument("--impostors", type=Path, metavar="DIR", help="photos of people not in the bundle")
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON")
    evaluate.add_argument(
        "--plot",
        type=Path,
        metavar="PNG",
        help="where to draw the similarity histograms, TAR-vs-FAR curve and confusion matrix "
        "(default: BUNDLE.evaluate.png)",
    )
    add_vision(evaluate)
    evaluate.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: skops, scikit-learn and OpenCV take seconds to load, which `--help` and the
    # other commands (publish above all) must not wait for.
    from trainer.commands import evaluate_job

    return evaluate_job.run(args)
