"""Measure a bundle on held-out photos: identification accuracy, true- and false-accept rates."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from agent.classifier.bundle import parse_bundle
from agent.classifier.classifier import UNKNOWN, FaceClassifier, load_payload
from agent.classifier.verify import VerifiedBundle
from trainer.dataset import DatasetError, FaceEmbedding, describe_skipped, scan_people, skip_kind

# Confusion-matrix row of the faces of people the bundle does not know.
IMPOSTOR_ROW = "(not enrolled)"


def load_bundle_unverified(path: Path) -> VerifiedBundle:
    """A bundle from the trainer's own disk: parsed and loaded with skops trusted types, but the
    signature is not checked (the workstation holds the signing key; agents always check it)."""
    data = path.read_bytes()
    parsed = parse_bundle(data)
    classifier = FaceClassifier(load_payload(parsed.payload, parsed.manifest.payload_kind), parsed.manifest)
    return VerifiedBundle(manifest=parsed.manifest, classifier=classifier, data=data)


def evaluate(
    classifier: FaceClassifier,
    embedding: FaceEmbedding,
    test_dir: Path,
    impostors_dir: Path | None = None,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate on TEST_DIR (one folder per person; people the bundle does not know count as
    impostors) and IMPOSTORS_DIR (people who must come out "unknown").

    accuracy: enrolled test faces whose SVM pick is the right person (closed-set identification).
    true_accept_rate: enrolled test faces named correctly at the bundle's threshold.
    false_accept_rate: impostor faces given any enrolled name.
    """
    if embedding.embedder_id != classifier.embedder_id or embedding.dim != classifier.dim:
        raise DatasetError(
            f"bundle was trained for embedder {classifier.embedder_id} ({classifier.dim}-d), "
            f"the configured one is {embedding.embedder_id} ({embedding.dim}-d)"
        )
    known = set(classifier.labels)
    items: list[tuple[Path, str | None]] = []
    for label, paths in scan_people(test_dir).items():
        items.extend((p, label if label in known else None) for p in paths)
    if impostors_dir is not None:
        for paths in scan_people(impostors_dir, allow_loose=True).values():
            items.extend((p, None) for p in paths)
    samples = embedding.samples(items, desc="evaluating", progress=progress)
    usable = [s for s in samples if s.usable]
    skipped = [s for s in samples if not s.usable]
    predictions = (
        classifier.predict(np.stack([s.embedding for s in usable if s.embedding is not None]))
        if usable
        else []
    )
    enrolled = [(s, p) for s, p in zip(usable, predictions, strict=True) if s.label is not None]
    impostors = [(s, p) for s, p in zip(usable, predictions, strict=True) if s.label is None]
    correct = sum(1 for s, p in enrolled if p.candidate == s.label)
    accepted = sum(1 for s, p in enrolled if p.label == s.label)
    wrong_name = sum(1 for s, p in enrolled if p.label not in (UNKNOWN, s.label))
    false_accepts = [(s, p) for s, p in impostors if p.label != UNKNOWN]
    per_person: dict[str, dict[str, int]] = {}
    for s, p in enrolled:
        row = per_person.setdefault(str(s.label), {"faces": 0, "identified": 0, "accepted": 0})
        row["faces"] += 1
        row["identified"] += int(p.candidate == s.label)
        row["accepted"] += int(p.label == s.label)

    people = sorted(known)
    columns = [*people, UNKNOWN]
    rows = [*people, IMPOSTOR_ROW] if impostors else people
    matrix = [[0] * len(columns) for _ in rows]
    for s, p in enrolled:
        matrix[rows.index(str(s.label))][columns.index(p.label)] += 1
    for _, p in impostors:
        matrix[rows.index(IMPOSTOR_ROW)][columns.index(p.label)] += 1

    def rate(numerator: int, denominator: int) -> float | None:
        return round(numerator / denominator, 4) if denominator else None

    return {
        "model_version": classifier.version,
        "threshold": classifier.threshold,
        "accuracy": rate(correct, len(enrolled)),
        "true_accept_rate": rate(accepted, len(enrolled)),
        "false_accept_rate": rate(len(false_accepts), len(impostors)),
        "misidentification_rate": rate(wrong_name, len(enrolled)),
        "faces": len(usable),
        "enrolled_faces": len(enrolled),
        "impostor_faces": len(impostors),
        "skipped": len(skipped),
        "skipped_files": [describe_skipped(s) for s in skipped],
        "skipped_by_reason": dict(sorted(Counter(skip_kind(s) for s in skipped).items())),
        "false_accepts": [
            f"{s.path} named {p.label} (similarity {p.confidence:.3f})" for s, p in false_accepts
        ],
        "per_person": per_person,
        "confusion": {"rows": rows, "columns": columns, "matrix": matrix},
        # For the picture: similarities of correctly picked enrolled faces, and of impostor faces.
        "genuine_scores": [round(p.confidence, 4) for s, p in enrolled if p.candidate == s.label],
        "impostor_scores": [round(p.confidence, 4) for _, p in impostors],
    }


def format_evaluation(result: dict[str, Any]) -> str:
    def pct(key: str) -> str:
        value = result.get(key)
        return "n/a" if value is None else f"{100 * value:.1f} %"

    lines = [
        f"model {result['model_version']} (threshold {result['threshold']:.4f})",
        f"faces: {result['faces']} ({result['enrolled_faces']} enrolled, "
        f"{result['impostor_faces']} impostor), skipped photos: {result['skipped']}",
        f"accuracy (right person picked): {pct('accuracy')}",
        f"true-accept rate (right name at threshold): {pct('true_accept_rate')}",
        f"false-accept rate (impostor given a name): {pct('false_accept_rate')}",
        f"misidentification rate (wrong name at threshold): {pct('misidentification_rate')}",
    ]
    lines.extend(f"skipped: {s}" for s in result["skipped_files"])
    lines.extend(f"false accept: {s}" for s in result["false_accepts"])
    return "\n".join(lines)
