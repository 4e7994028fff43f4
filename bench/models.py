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
variant), next to a plain centre crop of the chip. Then MobileFaceNet and SFace side by side on the
shared identity protocol (bench/identities.py), from the same detections and alignment:

- d': (mean genuine - mean impostor) / sqrt of the mean of their variances, over all face pairs
  (genuine = same person; impostor = different people, strangers included);
- margin: the lowest similarity of a held-out face to its own person's nearest enrolled face minus
  the highest similarity of an unseen person's face to any enrolled face (> 0: one threshold
  separates them all);
- EER and the true-accept rate at a 1 % false-accept rate, over the same pairs;
- ms per face: median embed() time of one face at 1 thread (alignment included), measured
  alternately in one run, so the ratio is what to quote; the load average is printed beside it.
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

from agent.config import EMBEDDER_EXAMPLES, AgentConfig, load_config
from agent.vision.blazeface import BlazeFaceDetector
from agent.vision.embedder import MobileFaceNetEmbedder, SFaceEmbedder
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
    mobilefacenet = MobileFaceNetEmbedder(
        load(Path(EMBEDDER_EXAMPLES["mobilefacenet"])), alignment=config.models.face_alignment
    )
    # OpenCV's DNN (SFace) takes its thread count from one process-wide setting.
    cv2.setNumThreads(threads)
    sface = SFaceEmbedder(
        config.resolve_asset(Path(EMBEDDER_EXAMPLES["sface"])), alignment=config.models.face_alignment
    )
    embedder = sface if config.models.embedder_kind == "sface" else mobilefacenet
    one_face = max(faces["back"].detect(stage), key=lambda f: f.score)
    sface_crop = sface.crops(stage, [one_face])

    def bare(model: TfliteModel) -> Callable[[], object]:
        tensor = np.zeros(model.input.shape, dtype=model.input.dtype)
        return lambda: model.run(tensor)

    cases: list[tuple[str, TfliteModel, Callable[[], object]]] = [
        ("person_detector coco_ssd_v1_quant", person.model, lambda: person.detect(street)),
        *[(f"face_detector {v}", d.model, lambda d=d: d.detect(stage)) for v, d in faces.items()],
    ]
    cases.append(
        (
            "embedder mobilefacenet (1 face)",
            mobilefacenet.model,
            lambda: mobilefacenet.embed(stage, [one_face]),
        )
    )
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
    rows.append(
        {
            "model": "embedder sface (1 face)",
            "file": sface.path.name,
            "threads": threads,
            "backend": sface.backend,
            "median_ms": round(_median_ms(lambda: sface.embed(stage, [one_face]), repeat), 2),
            # The forward pass alone, on an already aligned crop.
            "invoke_ms": round(_median_ms(lambda: sface.embed_crops(sface_crop), repeat), 2),
        }
    )

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
    return {
        "repeat": repeat,
        "models": rows,
        "frame": frames,
        "face_detector_in_frame": "back",
        "embedder_in_frame": config.models.embedder_kind,
        "load_average": os.getloadavg(),
    }


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
    embed_model = load_model(config.resolve_asset(Path(EMBEDDER_EXAMPLES["mobilefacenet"])))
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


def _pair_scores(x: np.ndarray, groups: list[str]) -> tuple[np.ndarray, np.ndarray]:
    sims = x @ x.T
    labels = np.asarray(groups)
    upper = np.triu(np.ones_like(sims, dtype=bool), k=1)
    same = labels[:, None] == labels[None, :]
    return sims[upper & same], sims[upper & ~same]


def _eer_and_tar(genuine: np.ndarray, impostor: np.ndarray, far: float) -> tuple[float, float]:
    thresholds = np.unique(np.concatenate([genuine, impostor]))
    fars = np.array([(impostor >= t).mean() for t in thresholds])
    frrs = np.array([(genuine < t).mean() for t in thresholds])
    i = int(np.argmin(np.abs(fars - frrs)))
    ok = thresholds[fars <= far]
    tar = float((genuine >= ok.min()).mean()) if ok.size else 0.0
    return float((fars[i] + frrs[i]) / 2), tar


def measure_embedders(assets: Path, repeat: int = 30) -> list[dict[str, Any]]:
    """MobileFaceNet vs SFace on the shared identity protocol; see the module docstring."""
    import tempfile

    from bench.heldout import EMBEDDERS, embedding_for
    from bench.identities import build, embed

    stage = _frame(assets / "data/video/hamilton_clip.mp4", 100)
    rows: list[dict[str, Any]] = []
    embeddings = {kind: embedding_for(kind, assets, None) for kind in EMBEDDERS}
    with tempfile.TemporaryDirectory(prefix="facetrack-quality-") as tmp:
        proto = build(assets, Path(tmp))
        for emb in embeddings.values():
            data = embed(proto, emb)
            x = np.vstack([data.enrol_x, data.held_x, data.unseen_x])
            groups = [*data.enrol_y, *data.held_y, *data.unseen_groups]
            genuine, impostor = _pair_scores(x, groups)
            d_prime = (genuine.mean() - impostor.mean()) / np.sqrt((genuine.var() + impostor.var()) / 2)
            owners = np.asarray(data.enrol_y)
            sims = data.held_x @ data.enrol_x.T
            own = [sims[i, owners == t].max() for i, t in enumerate(data.held_y)]
            worst_stranger = float((data.unseen_x @ data.enrol_x.T).max())
            eer, tar = _eer_and_tar(genuine, impostor, 0.01)
            rows.append(
                {
                    "embedder": emb.embedder_id,
                    "faces": len(groups),
                    "genuine_pairs": int(genuine.size),
                    "impostor_pairs": int(impostor.size),
                    "d_prime": round(float(d_prime), 2),
                    "margin": round(float(min(own)) - worst_stranger, 3),
                    "lowest_genuine": round(float(min(own)), 3),
                    "highest_stranger": round(worst_stranger, 3),
                    "eer": round(eer, 4),
                    "tar_at_far_1pct": round(tar, 4),
                }
            )
    # Timing: one face, alternating the embedders so both see the same machine load; both on one
    # thread (TFLite: inference.threads = 1; OpenCV's DNN: its process-wide thread setting).
    cv2.setNumThreads(1)
    face = max(embeddings["mobilefacenet"].detector.detect(stage), key=lambda f: f.score)
    times: dict[str, list[float]] = {kind: [] for kind in EMBEDDERS}
    for emb in embeddings.values():
        for _ in range(3):
            emb.embedder.embed(stage, [face])
    for _ in range(repeat):
        for kind, emb in embeddings.items():
            start = time.perf_counter()
            emb.embedder.embed(stage, [face])
            times[kind].append((time.perf_counter() - start) * 1000)
    for row, kind in zip(rows, EMBEDDERS, strict=True):
        row["ms_per_face"] = round(statistics.median(times[kind]), 2)
    return rows


def render_embedders(rows: list[dict[str, Any]], load: tuple[float, float, float]) -> str:
    lines = [
        f"{'embedder':<34} {'d-prime':>7} {'margin':>7} {'EER':>7} {'TAR@FAR1%':>9} {'ms/face':>8}",
        "-" * 77,
    ]
    for r in rows:
        lines.append(
            f"{r['embedder']:<34} {r['d_prime']:>7.2f} {r['margin']:>+7.3f} {r['eer']:>7.4f} "
            f"{r['tar_at_far_1pct']:>9.4f} {r['ms_per_face']:>8.2f}"
        )
    r = rows[0]
    lines.append(
        f"({r['faces']} faces: {r['genuine_pairs']} genuine and {r['impostor_pairs']} impostor pairs; "
        f"margin = lowest held-out genuine minus highest stranger similarity; 1 thread; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})"
    )
    return "\n".join(lines)


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
    label = "frame: person+face(back)+1 " + result["embedder_in_frame"]
    for frame in result["frame"]:
        lines.append(
            f"{label:<36} {frame['threads']:>7} {'':>8} "
            f"{frame['median_ms']:>10.2f}   = {frame['fps']:.1f} fps"
        )
    load = result["load_average"]
    lines.append(
        f"(median of {result['repeat']} runs each, after 3 warm-up runs; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})"
    )
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

    configure_logging("warning", "console")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not (args.assets / "models").is_dir():
        parser.error(f"no models under {args.assets}: run `make setup` (facetrack-agent assets fetch)")
    if args.quality:
        quality = measure_quality(args.assets)
        quality["embedders"] = measure_embedders(args.assets, args.repeat)
        quality["load_average"] = os.getloadavg()
        if args.json:
            print(json.dumps(quality, indent=2))
        else:
            print(render_quality(quality))
            print()
            print(render_embedders(quality["embedders"], quality["load_average"]))
        return 0
    result = measure(args.assets, args.repeat)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
