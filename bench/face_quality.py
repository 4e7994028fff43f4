"""Measure where face quality stops supporting identity: the thresholds of [detection] face_min_*.

    python -m bench.face_quality [--json]

On the shared labelled faces (data/faces/dlib_johns: 5 people x 11 chips), leave-one-out: each
chip's embedding is compared with the mean embedding of every person (built from the other,
full-resolution chips); it is named right when its own person is nearest.
- size: each chip shrunk so its face is H px tall, then detected, aligned and embedded from the
  shrunk image (as the agent does with a small face in an HD frame);
- blur: each chip (face 96 px) blurred with a Gaussian of sigma S;
for each step the accuracy and the median sharpness (variance of the Laplacian of the aligned
grey face) are printed. The size and sharpness thresholds are the smallest size / sharpness that
keeps the accuracy within 5 points of the full-resolution accuracy.
- turn: on every frame of data/video/hamilton_clip.mp4, every face found as the agent finds them
  (COCO SSD person boxes, head crops, the crop face detector), the demo classifier's answer per
  turn bin against who the face is. The clip has four shots (cuts at frames 20, 82, 211, see
  bench/scene_cuts.py): on stage (0-19: Lin-Manuel Miranda, the largest person, and the pianist
  Alex Lacamoire at the left edge; 82-210: Miranda alone), and the audience (20-81: seen past
  Alex Lacamoire at the piano, his profile filling the right of the frame, the only face 150 px or
  taller; 211-274: Barack Obama, the face centred in x 300-410, y 40-150, beside people who are not
  enrolled; all checked by eye). Right is the person's name for an enrolled face and "unknown" for
  anyone else. Faces too small or blurred for the size and sharpness checks are left out, as the
  agent leaves them out before it looks at the turn. The turn threshold is the upper edge of the
  last bin, from frontal up, where enrolled people are named right at least half the time and
  wrong names stay at most MAX_WRONG_SHARE of the bin's faces; 0 (no turn check) when every bin
  passes. (Until issue 22 every face of the largest person was taken
  for Miranda, audience shots included: Obama's and Lacamoire's profiles, named right, counted as
  wrong names, and the threshold came out at 0.6, which kept Obama from ever voting.)
Faces are detected with the detector the agent runs on head crops ([detection] face_crop_detector),
so sizes, sharpness and keypoints are those the quality gate will see.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.classifier.labels import UNKNOWN
from agent.config import load_config
from agent.vision.blazeface import BlazeFaceDetector
from agent.vision.face_crops import faces_in_crops, head_region
from agent.vision.face_quality import sharpness_of, turn_of
from agent.vision.factory import build_person_detector, build_vision_stack
from agent.vision.inference import load_model
from agent.vision.types import BBox, FaceDetection, FaceEmbedder, Frame
from bench.hd_scenes import johns_chips, named_by_nearest_centre

SIZES = (12, 16, 20, 24, 28, 32, 40, 48, 64, 96)
SIGMAS = (0.0, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)
TURN_BINS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, float("inf"))
# A turn bin where more than this share of the faces get a wrong name is too turned to vote.
MAX_WRONG_SHARE = 0.05
# Who is who in hamilton_clip.mp4, per shot (frame ranges; see the module docstring).
STAGE_SHOTS = ((0, 20), (82, 211))
PIANIST_MAX_X = 150.0
PIANIST_PROFILE_SHOT = (20, 82)
PIANIST_PROFILE_MIN_HEIGHT = 150.0
OBAMA_SHOT = (211, 10**9)
OBAMA_REGION = (300.0, 40.0, 410.0, 150.0)


def truth_of(index: int, face: BBox, largest: BBox | None) -> str:
    """Who a face of hamilton_clip.mp4 is: an enrolled name, or UNKNOWN for anyone else."""
    cx, cy = (face.x1 + face.x2) / 2, (face.y1 + face.y2) / 2
    if any(a <= index < b for a, b in STAGE_SHOTS):
        if cx < PIANIST_MAX_X and index < STAGE_SHOTS[0][1]:
            return "alex-lacamoire"
        if largest is not None and face.intersection_over_self(largest) > 0.5:
            return "lin-manuel-miranda"
        return UNKNOWN
    if (
        PIANIST_PROFILE_SHOT[0] <= index < PIANIST_PROFILE_SHOT[1]
        and face.height >= PIANIST_PROFILE_MIN_HEIGHT
    ):
        return "alex-lacamoire"
    x1, y1, x2, y2 = OBAMA_REGION
    if OBAMA_SHOT[0] <= index < OBAMA_SHOT[1] and x1 <= cx <= x2 and y1 <= cy <= y2:
        return "obama"
    return UNKNOWN


TOLERANCE = 0.05


def _pad(image: Frame, factor: float = 0.6) -> tuple[Frame, int]:
    border = int(image.shape[0] * factor)
    return np.asarray(cv2.copyMakeBorder(image, *(border,) * 4, cv2.BORDER_REPLICATE)), border


def _face(detector: BlazeFaceDetector, image: Frame) -> FaceDetection | None:
    faces = detector.detect(image)
    return max(faces, key=lambda f: f.score) if faces else None


def _embed(embedder: FaceEmbedder, image: Frame, face: FaceDetection) -> np.ndarray[Any, Any]:
    return np.asarray(embedder.embed(image, [face])[0], dtype=np.float64)


def measure_chips(
    detector: BlazeFaceDetector, embedder: FaceEmbedder, chips: list[tuple[str, str, Frame]]
) -> dict[str, Any]:
    labels = [label for label, _, _ in chips]
    full: list[np.ndarray[Any, Any]] = []
    native_height: list[float] = []
    for _, _, chip in chips:
        padded, _ = _pad(chip)
        face = _face(detector, padded)
        if face is None:
            raise RuntimeError("a full-size chip has no face")
        full.append(_embed(embedder, padded, face))
        native_height.append(face.box.height)
    gallery = np.stack(full)

    def named_right(index: int, embedding: np.ndarray[Any, Any]) -> bool:
        return named_by_nearest_centre(embedding, gallery, labels, index)

    def sweep(transform: Any) -> dict[str, Any]:
        right = found = 0
        sharp: list[float] = []
        for i, (_, _, chip) in enumerate(chips):
            image, face = transform(i, chip)
            if face is None:
                continue
            found += 1
            sharp.append(sharpness_of(image, face))
            right += named_right(i, _embed(embedder, image, face))
        return {
            "faces": len(chips),
            "found": found,
            "accuracy": round(right / len(chips), 3),
            "sharpness_median": round(float(np.median(sharp)), 1) if sharp else None,
            "sharpness_p10": round(float(np.percentile(sharp, 10)), 1) if sharp else None,
        }

    def shrink(height: int) -> Any:
        def transform(i: int, chip: Frame) -> tuple[Frame, FaceDetection | None]:
            factor = height / native_height[i]
            side = max(4, round(chip.shape[0] * factor))
            small = np.asarray(cv2.resize(chip, (side, side), interpolation=cv2.INTER_AREA))
            padded, _ = _pad(small, 1.5)
            return padded, _face(detector, padded)

        return transform

    def blur(sigma: float) -> Any:
        def transform(i: int, chip: Frame) -> tuple[Frame, FaceDetection | None]:
            factor = 96 / native_height[i]
            side = round(chip.shape[0] * factor)
            image = np.asarray(cv2.resize(chip, (side, side), interpolation=cv2.INTER_AREA))
            if sigma > 0:
                image = np.asarray(cv2.GaussianBlur(image, (0, 0), sigma))
            padded, _ = _pad(image)
            return padded, _face(detector, padded)

        return transform

    baseline = sweep(lambda i, chip: (_pad(chip)[0], _face(detector, _pad(chip)[0])))
    sizes = {h: sweep(shrink(h)) for h in SIZES}
    blurs = {s: sweep(blur(s)) for s in SIGMAS}
    floor = baseline["accuracy"] - TOLERANCE
    ok_sizes = [h for h in SIZES if sizes[h]["accuracy"] >= floor]
    # The smallest size from which every larger size also holds up.
    min_height = next((h for h in SIZES if all(sizes[k]["accuracy"] >= floor for k in SIZES if k >= h)), None)
    # Sharpness: the lowest median sharpness among the blur steps that still hold up (all the
    # sharper steps hold up too).
    holding = [s for s in SIGMAS if all(blurs[k]["accuracy"] >= floor for k in SIGMAS if k <= s)]
    min_sharp = min((blurs[s]["sharpness_median"] or 0.0) for s in holding) if holding else None
    return {
        "baseline": baseline,
        "sizes": sizes,
        "blur": blurs,
        "ok_sizes": ok_sizes,
        "min_height": min_height,
        "min_sharpness": min_sharp,
        "native_face_height_median": round(float(np.median(native_height)), 1),
    }


def measure_turn(config: Any, detector: BlazeFaceDetector, embedder: FaceEmbedder) -> dict[str, Any]:
    from agent.classifier.verify import verify_bundle
    from agent.runtime.key_files import load_trusted_keys
    from bench.pipeline import train_classifier

    trained = train_classifier(config, Path(tempfile.mkdtemp(prefix="facetrack-quality-")))
    if trained is None:
        return {}
    bundle, public_key = trained
    clf = verify_bundle(
        bundle,
        trusted_keys=load_trusted_keys([public_key]),
        embedder_id=embedder.embedder_id,
        dim=embedder.dim,
        running_version=None,
    ).classifier
    capture = cv2.VideoCapture(str(config.resolve_asset("data/video/hamilton_clip.mp4")))
    bins: dict[str, dict[str, Any]] = {}
    edges = list(TURN_BINS)
    person_detector = build_person_detector(config)
    index = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frame = np.asarray(image, dtype=np.uint8)
        size = (frame.shape[1], frame.shape[0])
        people = person_detector.detect(frame)
        largest = max(people, key=lambda d: d.box.area).box if people else None
        crops = [
            head_region(p.box, size, margin=config.detection.face_crop_margin, person_index=i)
            for i, p in enumerate(people)
        ]
        found = faces_in_crops(detector, frame, [c for c in crops if c is not None])
        # Overlapping person boxes find one face twice: keep the surest of each.
        faces: list[FaceDetection] = []
        for face in sorted(found, key=lambda f: -f.score):
            if all(face.box.iou(kept.box) < 0.5 for kept in faces):
                faces.append(face)
        if not faces:
            index += 1
            continue
        # The size and sharpness checks come first in the agent: a face they drop never gets turned.
        faces = [
            f
            for f in faces
            if f.box.height >= config.detection.face_min_height
            and sharpness_of(frame, f) >= config.detection.face_min_sharpness
        ]
        if not faces:
            index += 1
            continue
        preds = clf.predict(embedder.embed(frame, faces))
        for face, pred in zip(faces, preds, strict=True):
            turn = turn_of(face)
            truth = truth_of(index, face.box, largest)
            k = next(j for j in range(len(edges) - 1) if edges[j] <= turn < edges[j + 1])
            key = f"{edges[k]:.1f}-{edges[k + 1]:.1f}" if edges[k + 1] < 10 else f">={edges[k]:.1f}"
            entry = bins.setdefault(
                key,
                {"faces": 0, "enrolled": 0, "right": 0, "enrolled_right": 0, "wrong_name": 0, "unknown": 0},
            )
            entry["faces"] += 1
            entry["enrolled"] += truth != UNKNOWN
            if pred.label == truth:
                entry["right"] += 1
                entry["enrolled_right"] += truth != UNKNOWN
            elif pred.label == UNKNOWN:
                entry["unknown"] += 1
            else:
                entry["wrong_name"] += 1
        index += 1
    capture.release()
    # The upper edge of the last bin (with faces), from frontal up, where enrolled people are named
    # right at least half the time and few faces get a wrong name; turns beyond it do not vote.
    max_turn = None
    for j in range(len(edges) - 1):
        key = f"{edges[j]:.1f}-{edges[j + 1]:.1f}" if edges[j + 1] < 10 else f">={edges[j]:.1f}"
        entry = bins.get(key)
        if not entry:
            continue
        if entry["enrolled"] and entry["enrolled_right"] / entry["enrolled"] < 0.5:
            break
        if entry["wrong_name"] > MAX_WRONG_SHARE * entry["faces"]:
            break
        # Every bin passed, the open-ended last one too: turning never cost a right name here.
        max_turn = edges[j + 1] if edges[j + 1] < 10 else 0.0
    return {"bins": bins, "max_turn": max_turn}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.face_quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--assets", type=Path, default=None, help="assets dir [models/assets]")
    args = parser.parse_args(argv)
    from agent.logging_setup import configure_logging

    configure_logging("error", "console")
    overrides: dict[str, Any] = {"device_id": "bench"}
    if args.assets is not None:
        overrides["assets_dir"] = args.assets
    config = load_config(None, **overrides)
    stack = build_vision_stack(config)
    crop_model = config.detection.face_crop_detector or str(config.models.face_detector)
    detector = BlazeFaceDetector(load_model(config.resolve_asset(crop_model), threads=1))
    report: dict[str, Any] = {
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "detector": Path(crop_model).name,
        "chips": measure_chips(detector, stack.embedder, johns_chips(config.assets_dir)),
        "turn": measure_turn(config, detector, stack.embedder),
    }
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report["command"] = "python -m bench.face_quality"
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(format_report(report))
    return 0


def format_report(r: dict[str, Any]) -> str:
    c = r["chips"]
    lines = [
        f"{r['command']}  ({r['machine']}; load average {r['load_average_before']} -> "
        f"{r['load_average_after']})",
        f"face detector {r['detector']}; dlib_johns leave-one-out, full resolution "
        f"(face {c['native_face_height_median']} px): "
        f"accuracy {c['baseline']['accuracy']}, sharpness median {c['baseline']['sharpness_median']}",
        "",
        "face height px | found | accuracy | sharpness median | p10",
    ]
    for h, e in c["sizes"].items():
        lines.append(
            f"{h:>14} | {e['found']:>2}/{e['faces']} | {e['accuracy']:>8} | {e['sharpness_median']!s:>16} | "
            f"{e['sharpness_p10']}"
        )
    lines += ["", "blur sigma (face 96 px) | found | accuracy | sharpness median | p10"]
    for s, e in c["blur"].items():
        lines.append(
            f"{s:>23} | {e['found']:>2}/{e['faces']} | {e['accuracy']:>8} | {e['sharpness_median']!s:>16} | "
            f"{e['sharpness_p10']}"
        )
    lines.append(
        f"=> face_min_height = {c['min_height']}, face_min_sharpness = {c['min_sharpness']} "
        f"(accuracy within {TOLERANCE:.2f} of full resolution)"
    )
    t = r["turn"]
    if t:
        lines += [
            "",
            "turn (hamilton_clip, demo classifier) | faces | enrolled (named right) | right | "
            "wrong name | unknown",
        ]
        for key, e in sorted(t["bins"].items(), key=lambda kv: float(kv[0].strip(">=").split("-")[0])):
            counts = (
                f"{e['faces']:>5} | {e['enrolled']:>8} ({e['enrolled_right']:>3}) | {e['right']:>5} | "
                f"{e['wrong_name']:>10} | {e['unknown']}"
            )
            lines.append(f"{key:>37} | {counts}")
        lines.append(
            f"=> face_max_turn = {t['max_turn']} (last bin: enrolled named right at least half the time, "
            f"wrong names at most {MAX_WRONG_SHARE:.0%})"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
