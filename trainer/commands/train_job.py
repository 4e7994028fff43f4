"""What `facetrack-trainer train` does: photos -> embeddings -> hygiene -> SVM -> signed bundle."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from agent.classifier.bundle import parse_bundle, too_far_ahead, version_key
from agent.classifier.classifier import RESERVED_LABELS
from agent.classifier.keys import KeyFileError
from agent.config import ConfigError
from agent.runtime.key_files import load_private_key
from agent.vision.inference import ModelLoadError
from trainer import hygiene
from trainer.commands.options import vision_config
from trainer.commands.photos import dataset_error, face_embedding, model_missing
from trainer.dataset import (
    IMAGE_SUFFIXES,
    DatasetError,
    describe_skipped,
    empty_folders,
    labelled,
    scan_people,
    split_usable,
)
from trainer.errors import TrainerError
from trainer.plots import PlotUnavailable, draw
from trainer.training import TrainingError, TrainingResult, format_report, train


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except ModelLoadError as exc:
        raise model_missing(exc, args) from None


def _run(args: argparse.Namespace) -> int:
    # The photos first: a wrong DATASET path is the mistake to report before any flag.
    try:
        people = scan_people(args.dataset)
        negatives = scan_people(args.negatives, allow_loose=True) if args.negatives else {}
    except DatasetError as exc:
        raise TrainerError(str(exc), exit_code=1) from None
    reserved = sorted(set(people) & RESERVED_LABELS)
    if reserved:
        raise TrainerError(f"{args.dataset}: folder name(s) {reserved} are reserved", exit_code=1)
    if args.key is None:
        raise TrainerError(
            "no signing key: pass --key PRIVATE_KEY (create one with `facetrack-trainer keygen`)", exit_code=1
        )
    if not 0.0 <= args.min_tar <= 1.0:
        raise TrainerError(f"--min-tar must be between 0 and 1, got {args.min_tar}", exit_code=1)
    if not 0.0 < args.far_target < 1.0:
        raise TrainerError(f"--far-target must be between 0 and 1, got {args.far_target}", exit_code=1)
    if args.model_version:
        try:
            version_key(args.model_version)
        except ValueError as exc:
            raise TrainerError(str(exc), exit_code=1) from None
        # A version far ahead would make every later bundle "older" on the devices.
        ahead = too_far_ahead(args.model_version, datetime.now(UTC))
        if ahead is not None:
            raise TrainerError(f"--model-version: {ahead}", exit_code=1)
    # Before minutes of embedding and training, not after them.
    _check_writable(args.out)
    for folder in empty_folders(args.dataset):
        print(
            f"warning: {folder} holds no photo ({', '.join(sorted(IMAGE_SUFFIXES))}): "
            f"{folder.name} is not enrolled"
        )
    try:
        private_key = load_private_key(args.key)
        config = vision_config(args)
        embedding = face_embedding(args, config)
        progress = not args.quiet
        samples = embedding.samples(labelled(people), desc="people", progress=progress)
        neg_samples = embedding.samples(labelled(negatives), desc="negatives", progress=progress)
    except (KeyFileError, ConfigError) as exc:
        raise TrainerError(str(exc), exit_code=1) from None
    except DatasetError as exc:
        raise dataset_error(exc) from None
    usable, skipped = split_usable(samples)
    neg_usable, neg_skipped = split_usable(neg_samples)
    for sample in skipped + neg_skipped:
        print(f"skipped: {describe_skipped(sample)}")
    enrolled = {s.label for s in usable}
    for person in sorted(set(people) - enrolled):
        print(f"warning: {person} has no photo with exactly one face and is not enrolled")
    x = np.array([s.embedding for s in usable], dtype=np.float64).reshape(-1, embedding.dim)
    y = [str(s.label) for s in usable]
    x_neg = np.array([s.embedding for s in neg_usable], dtype=np.float64).reshape(-1, embedding.dim)
    findings = hygiene.check(x, y, [s.path for s in usable])
    for line in findings.lines():
        print(f"suspicious: {line}")
    if findings.count and args.strict:
        raise TrainerError(
            f"{findings.count} suspicious finding(s) above and --strict: fix the folders first", exit_code=1
        )
    try:
        result = train(
            x,
            y,
            negatives=x_neg,
            negative_groups=[str(s.label) for s in neg_usable],
            far_target=args.far_target,
            seed=args.seed,
        )
    except TrainingError as exc:
        raise TrainerError(str(exc), exit_code=1) from None
    result.report["skipped"] = [describe_skipped(s) for s in skipped + neg_skipped]
    result.report["hygiene"] = findings.as_dict()
    _refuse_below_floor(result, findings, args)
    result.report["embedder_id"] = embedding.embedder_id
    summary = result.summary()
    summary["skipped"] = len(skipped) + len(neg_skipped)
    try:
        # Refuses (TrainingError) when the arrays payload does not reproduce scikit-learn.
        data = result.sign(
            embedder_id=embedding.embedder_id,
            dim=embedding.dim,
            private_key=private_key,
            training=summary,
            version=args.model_version,
        )
    except TrainingError as exc:
        raise TrainerError(str(exc), exit_code=1) from None
    manifest = parse_bundle(data).manifest
    result.report["model_version"] = manifest.model_version
    report_path = _write(args.out, data, result.report)
    print(format_report(result.report))
    _draw_plot(args.out, result, manifest.model_version)
    cache = embedding.cache
    print(f"embeddings: {cache.hits} from cache, {cache.misses} computed")
    print(
        f"wrote {args.out} (version {manifest.model_version}, {len(data)} bytes, key {manifest.key_id}) "
        f"and {report_path}"
    )
    return 0


def _refuse_below_floor(result: TrainingResult, findings: hygiene.Hygiene, args: argparse.Namespace) -> None:
    """TrainerError (after the report, which shows why) when the bundle's own held-out true-accept
    rate is below --min-tar, unless --force; the message names what hygiene flagged."""
    tar = result.report["estimated_tar"]
    if tar is None or tar >= args.min_tar:
        return
    if args.force:
        print(f"warning: TAR {tar:.4f} is below --min-tar {args.min_tar}; written anyway (--force)")
        return
    print(format_report(result.report))
    suspects = findings.suspects()
    if suspects:
        shown = ", ".join(suspects[:5]) + (f" and {len(suspects) - 5} more" if len(suspects) > 5 else "")
        cause = f"hygiene flagged {shown} (listed above as suspicious)"
    else:
        cause = "hygiene flagged no photo: see the confusion matrix above; more photos per person help"
    raise TrainerError(
        f"{args.out} not written: it names {tar:.4f} of its own held-out faces "
        f"({result.report['genuine_faces']} faces, cross-validated), below --min-tar {args.min_tar}; "
        f"likely cause: {cause}. Fix the folders, or pass --force to write it anyway",
        exit_code=1,
    )


def _check_writable(out: Path) -> None:
    """TrainerError unless the bundle's temporary file can be created beside --out."""
    if out.is_dir():
        raise TrainerError(f"--out {out} is a directory; give the bundle's file name (.ftm)", exit_code=1)
    probe = out.with_name(out.name + ".tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with probe.open("wb"):
            pass
        probe.unlink()
    except OSError as exc:
        raise TrainerError(f"cannot write --out {out}: {exc.strerror or exc}", exit_code=1) from None


def _write(out: Path, data: bytes, report: dict[str, object]) -> Path:
    """The bundle (atomically) and its report beside it; the report's path."""
    temp = out.with_name(out.name + ".tmp")
    report_path = out.with_name(out.name + ".report.json")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        temp.write_bytes(data)
        os.replace(temp, out)
        report_path.write_text(json.dumps(report, indent=2) + "\n")
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        where = f"{exc.filename}: " if exc.filename and str(exc.filename) != str(out) else ""
        raise TrainerError(f"cannot write {out}: {where}{exc.strerror or exc}", exit_code=1) from None
    return report_path


def _draw_plot(bundle: Path, result: TrainingResult, version: str) -> None:
    confusion = result.report["confusion"]
    path = bundle.with_name(bundle.name + ".png")
    try:
        draw(
            path,
            title=f"facetrack-trainer train {bundle.name} (version {version}; cross-validated)",
            genuine=result.genuine_scores,
            impostor=result.impostor_scores,
            threshold=result.threshold,
            genuine_total=result.report["genuine_faces"],
            rows=confusion["rows"],
            columns=confusion["columns"],
            matrix=confusion["matrix"],
        )
    except (PlotUnavailable, OSError) as exc:
        print(f"facetrack-trainer: warning: no picture: {exc}", file=sys.stderr)
        return
    print(f"picture: {path}")
