"""How wide a "person" box may be: the people of every source against the crowd boxes of MOT20-08.

    python -m bench.person_boxes [--json]

People: the counted ground-truth boxes of the four shared MOT15 sequences (clipped to the frame, as
a detector's box is) and the COCO SSD's boxes on hamilton_clip.mp4 (close-ups of real people, some
filling 88 % of the frame). Impossible boxes: the SSD's boxes over half of a MOT20-08 frame (one
per frame, the crowd called one person). For each source left out, the bound is chosen on the
others as the geometric mean of the lowest height/width of their people and the highest of the
crowd boxes, and the left-out source says how many of its people that bound would drop. The
shipped `person_boxes.min_aspect` is the same rule on every source.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.config import load_config
from agent.logging_setup import configure_logging
from agent.vision.factory import build_person_detector
from agent.vision.person_boxes import PersonShape, plausible_people
from agent.vision.types import BBox

# MOT15 frame sizes (each sequence's seqinfo.ini).
GT_SEQUENCES = {
    "PETS09-S2L1": (768, 576),
    "TUD-Campus": (640, 480),
    "ETH-Sunnyday": (640, 480),
    "KITTI-13": (1242, 375),
}
CLOSE_UPS = "data/video/hamilton_clip.mp4"
CROWD = "data/video/mot20-08_960x366.h264"


def gt_aspects(folder: Path, size: tuple[int, int]) -> list[float]:
    width, height = size
    rows = np.loadtxt(folder / "gt" / "gt.txt", delimiter=",", ndmin=2)
    rows = rows[rows[:, 6] != 0]
    x1 = np.clip(rows[:, 2], 0, width)
    y1 = np.clip(rows[:, 3], 0, height)
    w = np.clip(rows[:, 2] + rows[:, 4], 0, width) - x1
    h = np.clip(rows[:, 3] + rows[:, 5], 0, height) - y1
    ok = (w > 0) & (h > 0)
    return (h[ok] / w[ok]).tolist()


def video_aspects(detect: Any, video: Path, over_half: bool) -> list[float]:
    """Height/width of the SSD's boxes on every frame: all of them, or only those over half the frame."""
    capture = cv2.VideoCapture(str(video))
    out: list[float] = []
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                return out
            area = image.shape[0] * image.shape[1]
            for d in detect(image):
                if d.box.width > 0 and (d.box.area > 0.5 * area) == over_half:
                    out.append(d.box.height / d.box.width)
    finally:
        capture.release()


def group_rule(detect: Any, video: Path, gt_rows: np.ndarray | None) -> dict[str, int]:  # type: ignore[type-arg]
    """Boxes the group rule alone drops, and ground-truth matches (IoU 0.5) before and after."""
    shape = PersonShape(min_aspect=0.0)
    capture = cv2.VideoCapture(str(video))
    out = {"boxes": 0, "dropped": 0, "matched_before": 0, "matched_after": 0}
    index = 0
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                return out
            found = detect(image)
            kept = plausible_people(found, (image.shape[1], image.shape[0]), shape)
            out["boxes"] += len(found)
            out["dropped"] += len(found) - len(kept)
            if gt_rows is not None:
                gt = [BBox.from_tlwh(*r) for r in gt_rows[gt_rows[:, 0] == index + 1][:, 2:6]]
                out["matched_before"] += sum(any(d.box.iou(g) >= 0.5 for g in gt) for d in found)
                out["matched_after"] += sum(any(d.box.iou(g) >= 0.5 for g in gt) for d in kept)
            index += 1
    finally:
        capture.release()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.person_boxes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print the JSON document alone on stdout")
    args = parser.parse_args(argv)
    configure_logging("warning", "console", stream=sys.stderr)
    config = load_config(None)
    detector = build_person_detector(config)
    people: dict[str, list[float]] = {
        name: gt_aspects(config.resolve_asset(f"data/mot15/{name}"), size)
        for name, size in GT_SEQUENCES.items()
    }
    video = config.resolve_asset(CLOSE_UPS)
    people["hamilton_clip (SSD)"] = video_aspects(detector.detect, video, False) + video_aspects(
        detector.detect, video, True
    )
    crowd = video_aspects(detector.detect, config.resolve_asset(CROWD), True)
    worst_crowd = max(crowd)
    held_out: dict[str, dict[str, Any]] = {}
    for name, aspects in people.items():
        lowest = min(min(a) for other, a in people.items() if other != name)
        bound = math.sqrt(lowest * worst_crowd)
        held_out[name] = {
            "boxes": len(aspects),
            "lowest_aspect": round(min(aspects), 3),
            "bound_from_the_others": round(bound, 3),
            "dropped": int(sum(a < bound for a in aspects)),
            "crowd_boxes_dropped": int(sum(a < bound for a in crowd)),
        }
    rows = np.loadtxt(config.resolve_asset("data/mot15/PETS09-S2L1/gt/gt.txt"), delimiter=",", ndmin=2)
    groups = {
        "vtest.avi": group_rule(
            detector.detect, config.resolve_asset("data/video/vtest.avi"), rows[rows[:, 6] != 0]
        ),
        "hamilton_clip.mp4": group_rule(detector.detect, video, None),
    }
    lowest_all = min(min(a) for a in people.values())
    result = {
        "crowd_boxes": len(crowd),
        "crowd_highest_aspect": round(worst_crowd, 3),
        "held_out": held_out,
        "bound_on_all": round(math.sqrt(lowest_all * worst_crowd), 3),
        "group_rule": groups,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"MOT20-08 crowd boxes: {len(crowd)}, highest height/width {worst_crowd:.3f}")
    print(f"{'left out':<22}{'boxes':>7}{'lowest':>8}{'bound':>7}{'dropped':>9}{'crowd dropped':>15}")
    for name, r in held_out.items():
        print(
            f"{name:<22}{r['boxes']:>7}{r['lowest_aspect']:>8.3f}{r['bound_from_the_others']:>7.3f}"
            f"{r['dropped']:>9}{r['crowd_boxes_dropped']:>15}"
        )
    print(f"bound on every source: {result['bound_on_all']:.3f} (shipped person_boxes.min_aspect = 0.47)")
    for name, g in groups.items():
        matched = (
            f", ground-truth matches {g['matched_before']} -> {g['matched_after']}"
            if name == "vtest.avi"
            else ""
        )
        print(
            f"group rule (max_people_inside 2) on {name}: "
            f"{g['dropped']} of {g['boxes']} boxes dropped{matched}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
