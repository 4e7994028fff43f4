"""`facetrack-trainer train`: its command line; the work is in `train_job`."""

from __future__ import annotations

import argparse
from pathlib import Path

from trainer.commands.options import EPILOG, Subparsers, add_signing_key, add_vision

# A bundle that leaves most of its own people's held-out faces unnamed is broken, not cautious:
# one photo misfiled into another folder drove knn/train's TAR from 1.0 to 0.0 (docs/trainer.md).
MIN_TAR = 0.5


def add_parser(subparsers: Subparsers) -> None:
    train = subparsers.add_parser(
        "train",
        help="train and sign a classifier from one folder of photos per person",
        description="Detect, align and embed every photo in DATASET/<person>/, skip photos with no "
        "face or several faces, select the SVM kernel and C by cross-validation, choose the "
        "'unknown' threshold by leaving whole identities out so strangers are accepted at most at "
        "--far-target, and write a signed bundle plus BUNDLE.report.json.",
        epilog=EPILOG,
    )
    train.add_argument(
        "dataset", type=Path, metavar="DATASET", help="folder with one sub-folder of photos per person"
    )
    train.add_argument(
        "--out", type=Path, required=True, metavar="BUNDLE", help="bundle file to write (.ftm)"
    )
    train.add_argument(
        "--negatives",
        type=Path,
        metavar="DIR",
        help="photos of people who must never be named (sub-folders per person, or loose photos); "
        "trained as an explicit rejected class",
    )
    add_signing_key(train, "Ed25519 private key from `keygen`")
    train.add_argument(
        "--far-target",
        type=float,
        default=0.01,
        help="highest acceptable rate of strangers being given a name (default: %(default)s)",
    )
    train.add_argument(
        "--model-version",
        help="model version YYYYMMDDTHHMMSS[.ffffff]Z (default: now, UTC); agents refuse older ones",
    )
    train.add_argument("--seed", type=int, default=0, help="random seed for the cross-validation splits")
    train.add_argument(
        "--strict",
        action="store_true",
        help="refuse to train when the hygiene check finds suspicious photos (near-duplicates, "
        "probably misfiled photos, a person whose photos disagree); without it they are listed only",
    )
    train.add_argument(
        "--min-tar",
        type=float,
        default=MIN_TAR,
        metavar="RATE",
        help="refuse to write a bundle that names fewer of its own held-out enrolled faces than this "
        "(its cross-validated true-accept rate at the chosen threshold; default: %(default)s)",
    )
    train.add_argument(
        "--force",
        action="store_true",
        help="write the bundle even when its true-accept rate is below --min-tar",
    )
    add_vision(train)
    train.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: scikit-learn and OpenCV take seconds to load, which `--help` and the other
    # commands (publish above all) must not wait for.
    from trainer.commands import train_job

    return train_job.run(args)
