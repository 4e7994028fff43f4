"""Model latency: each vision model with 1 and 2 threads, and what a whole frame costs.

    python -m bench.models [--json] [--repeat N] [--assets DIR] [--quality]

Per model it reports the median wall time of the component's full call (preprocessing, invoke,
decoding) and of the bare interpreter invoke, on real frames: a vtest.avi frame for the person
detector, a hamilton_clip.mp4 frame (one face) for the face detectors and the embedder. "frame"
runs the default stack once per frame (person detector + default face detector + one embedding)
and reports its median and the frames per second that implies. All rows are measured side by side
in one run, so their ratios are comparable even on a busy machine.

`--quality` instead measures what chose the defaults: for each BlazeFace variant, face recall and
precision at IoU >= 0.5 on dlib's labelled group photos, and for each alignment, leave-one-out
1-NN accuracy and the same-minus-different cosine gap on the dlib "johns" chips (detected with that
variant), next to a plain centre crop of the chip.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.config import AgentConfig, load_config
from agent.vision.blazeface import BlazeFaceDetector
from agent.vision.embedder import MobileFaceNetEmbedder
from agent.vision.inference import TfliteModel, load_model
from agent.vision.ssd_detector import SsdPostprocessDetector
from agent.vision.types import BBox, Frame

FACE_VARIANTS = ("back", "full_range", "short_range")


def _median_ms(call: Callable[[], object], repeat: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _frame(path: Path, index: int) -> Frame:
    capture = cv2.VideoCapture(str(path))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise SystemExit(
            f"cannot read frame {index} of {path}: run `make setup` (facetrack-agent assets fetch)"
        )
    return np.asarray(frame, dtype=np.uint8)


def _measure_with_threads(
    config: AgentConfig, threads: int, street: Frame, stage: Frame, repeat: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    def load(relative: Path) -> TfliteModel:
        return load_model(config.resolve_asset(relative), threads=threads)

    person = SsdPostprocessDetector(
        load(config.models.person_detector), class_ids=[0], min_score=config.detection.confidence
    )
    faces = {
        v: BlazeFaceDetector(
            load(Path(f"models/face_detection_{v}.tflite")), min_score=config.detection.face_confidence
        )
        for v in FACE_VARIANTS
    }
    embedder = MobileFaceNetEmbedder(load(config.models.embedder), alignment=config.models.face_alignment)
    one_face = max(faces["back"].detect(stage), key=lambda f: f.score)

    def bare(model: TfliteModel) -> Callable[[], object]:
        tensor = np.zeros(model.input.shape, dtype=model.input.dtype)
        return lambda: model.run(tensor)

    cases: list[tuple[str, TfliteModel, Callable[[], object]]] = [
        ("person_detector coco_ssd_v1_quant", person.model, lambda: person.detect(street)),
        *[(f"face_detector {v}", d.model, lambda d=d: d.detect(stage)) for v, d in faces.items()],
        ("embedder mobilefacenet (1 face)", embedder.model, lambda: embedder.embed(stage, [one_face])),
    ]
    rows = [
        {
            "model": name,
            "file": model.path.name,
            "threads": threads,
            "backend": model.backend,
            "median_ms": round(_median_ms(call, repeat), 2),
            "invoke_ms": round(_median_ms(bare(model), repeat), 2),
        }
        for name, model, call in cases
    ]

    def whole_frame() -> None:
        person.detect(street)
        embedder.embed(stage, faces["back"].detect(stage)[:1])

    frame_ms = _median_ms(whole_frame, repeat)
    return rows, {"threads": threads, "median_ms": round(frame_ms, 2), "fps": round(1000 / frame_ms, 1)}


def measure(assets: Path, repeat: int, thread_counts: tuple[int, ...] = (1, 2)) -> dict[str, Any]:
    config = load_config(assets_dir=str(assets))
    street = _frame(assets / "data/video/vtest.avi", 100)
    stage = _frame(assets / "data/video/hamilton_clip.mp4", 100)
    rows: list[dict[str, Any]] = []
    frames: list[dict[str, Any]] = []
    for threads in thread_counts:
        model_rows, frame_row = _measure_with_threads(config, threads, street, stage, repeat)
        rows += model_rows
        frames.append(frame_row)
    return {"repeat": repeat, "models": rows, "frame": frames, "face_detector_in_frame": "back"}


def _image(path: Path) -> Frame:
    image = cv2.imread(str(path))
    if image is None:
        raise SystemExit(f"cannot read {path}: run `make setup` (facetrack-agent assets fetch)")
    return np.asarray(image, dtype=np.uint8)


def _labelled_faces(root: Path) -> dict[str, list[BBox]]:
    boxes: dict[str, list[BBox]] = {}
    for xml_name in ("training.xml", "testing.xml"):
        for image in ET.parse(root / xml_name).getroot().iter("image"):
            boxes[str(image.get("file"))] = [
                BBox.from_tlwh(*(float(b.get(k, 0)) for k in ("left", "top", "width", "height")))
                for b in image.iter("box")
                if b.get("ignore") != "1"
            ]
    return boxes


def _separation(vectors: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    similarity = vectors @ vectors.T
    others = ~np.eye(len(labels), dtype=bool)
    same = (labels[:, None] == labels[None, :]) & others
    nearest = np.where(others, similarity, -np.inf).argmax(axis=1)
    gap = similarity[same].mean() - similarity[labels[:, None] != labels[None, :]].mean()
    return float((labels[nearest] == labels).mean()), float(gap)


def measure_quality(assets: Path) -> dict[str, Any]:
    config = load_config(assets_dir=str(assets))
    photos_dir = assets / "data/photos/dlib_faces"
    labelled = {
        name: (_image(photos_dir / name), boxes) for name, boxes in _labelled_faces(photos_dir).items()
    }
    dogs = _image(photos_dir / "dogs.jpg")
    chips, labels = [], []
    for label, person in enumerate(sorted((assets / "data/faces/dlib_johns").iterdir())):
        for path in sorted(person.glob("*.jpg")):
            chips.append(_image(path))
            labels.append(label)
    label_array = np.array(labels)
    embed_model = load_model(config.resolve_asset(config.models.embedder))
    centre = MobileFaceNetEmbedder(embed_model).embed_crops(
        [np.asarray(cv2.resize(c, (112, 112), interpolation=cv2.INTER_AREA), dtype=np.uint8) for c in chips]
    )
    acc, gap = _separation(centre, label_array)
    alignments: list[dict[str, Any]] = [
        {"variant": "-", "alignment": "centre-crop", "found": len(chips), "loo_acc": acc, "gap": gap}
    ]
    detectors: list[dict[str, Any]] = []
    for variant in FACE_VARIANTS:
        detector = BlazeFaceDetector(
            load_model(assets / f"models/face_detection_{variant}.tflite"),
            min_score=config.detection.face_confidence,
        )
        matched = found = total = 0
        for image, truth in labelled.values():
            faces = sorted(detector.detect(image), key=lambda f: -f.score)
            found += len(faces)
            total += len(truth)
            free = list(truth)
            for face in faces:
                best = max(free, key=face.box.iou, default=None)
                if best is not None and face.box.iou(best) >= 0.5:
                    matched += 1
                    free.remove(best)
        detectors.append(
            {
                "variant": variant,
                "min_score": detector.min_score,
                "recall": round(matched / total, 3),
                "precision": round(matched / max(found, 1), 3),
                "matched": matched,
                "labelled": total,
                "faces_on_dogs": len(detector.detect(dogs)),
            }
        )
        best_faces = {}
        for i, chip in enumerate(chips):
            found_faces = detector.detect(chip)
            if found_faces:
                best_faces[i] = max(found_faces, key=lambda f: f.score)
        kept = sorted(best_faces)
        for alignment in ("keypoints", "eyes", "margin"):
            embedder = MobileFaceNetEmbedder(
                embed_model, alignment=alignment, margin=config.models.face_margin
            )
            vectors = (
                np.concatenate([embedder.embed(chips[i], [best_faces[i]]) for i in kept]) if kept else None
            )
            acc, gap = _separation(vectors, label_array[kept]) if vectors is not None else (0.0, 0.0)
            alignments.append(
                {"variant": variant, "alignment": alignment, "found": len(kept), "loo_acc": acc, "gap": gap}
            )
    for row in alignments:
        row["loo_acc"], row["gap"] = round(row["loo_acc"], 3), round(row["gap"], 3)
    return {"detectors": detectors, "alignments": alignments, "chips": len(chips)}


def render_quality(result: dict[str, Any]) -> str:
    lines = [f"{'face detector':<14} {'min score':>9} {'recall':>8} {'precision':>9} {'dogs':>5}", "-" * 50]
    for row in result["detectors"]:
        lines.append(
            f"{row['variant']:<14} {row['min_score']:>9.2f} {row['matched']:>3}/{row['labelled']:<3}"
            f"{row['recall']:>6.3f} {row['precision']:>7.3f} {row['faces_on_dogs']:>5}"
        )
    lines += ["", f"{'variant':<12} {'alignment':<12} {'found':>7} {'LOO acc':>8} {'gap':>7}", "-" * 50]
    for row in result["alignments"]:
        lines.append(
            f"{row['variant']:<12} {row['alignment']:<12} {row['found']:>3}/{result['chips']:<3} "
            f"{row['loo_acc']:>8.3f} {row['gap']:>7.3f}"
        )
    return "\n".join(lines)


def render(result: dict[str, Any]) -> str:
    lines = [
        f"{'model':<36} {'threads':>7} {'backend':>8} {'median ms':>10} {'invoke ms':>10}",
        "-" * 75,
    ]
    for row in result["models"]:
        lines.append(
            f"{row['model']:<36} {row['threads']:>7} {row['backend']:>8} "
            f"{row['median_ms']:>10.2f} {row['invoke_ms']:>10.2f}"
        )
    lines.append("-" * 75)
    for frame in result["frame"]:
        lines.append(
            f"{'frame: person + face(back) + 1 embed':<36} {frame['threads']:>7} {'':>8} "
            f"{frame['median_ms']:>10.2f}   = {frame['fps']:.1f} fps"
        )
    lines.append(f"(median of {result['repeat']} runs each, after 3 warm-up runs)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.models",
        description="Median latency of each vision model with 1 and 2 threads, and the fps of a whole frame.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--quality",
        action="store_true",
        help="measure detector recall/precision and embedding separation per variant and alignment instead",
    )
    parser.add_argument("--repeat", type=int, default=30, help="timed runs per measurement (default 30)")
    parser.add_argument(
        "--assets",
        type=Path,
        default=Path(os.environ.get("FACETRACK_ASSETS_DIR", "models/assets")),
        help="assets directory (default $FACETRACK_ASSETS_DIR or models/assets)",
    )
    args = parser.parse_args(argv)
    from agent.logging_setup import configure_logging

    # Logs to stderr: stdout holds the table, or with --json the JSON document alone.
    configure_logging("warning", "auto")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not (args.assets / "models").is_dir():
        parser.error(f"no models under {args.assets}: run `make setup` (facetrack-agent assets fetch)")
    if args.quality:
        quality = measure_quality(args.assets)
        print(json.dumps(quality, indent=2) if args.json else render_quality(quality))
        return 0
    result = measure(args.assets, args.repeat)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
