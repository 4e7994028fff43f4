"""The agent's whole pipeline scored on real video: our person detector, our tracker, ground truth.

    python -m bench.pipeline_video [--frames N] [--set SECTION.KEY=VALUE ...] [--json]

Reads data/video/vtest.avi (PETS09-S2L1, 768x576; ground-truth frame f is video frame f-1) and, one
frame at a time, does what the agent does: `FrameAnalyzer.analyze` (COCO SSD person detector,
colour appearance features, faces when due) with the hints of `TrackingStage.hints`, then
`TrackingStage.step` (tracker, identity, events). The boxes scored are the confirmed tracks matched
to a detection in the frame, as bench/mot.py scores trackers. On the same detections, in the same
run, it also scores our tracker on motion alone and the original SORT (agent.tracking.baselines),
and the detector itself (recall and precision at IoU 0.5, one-to-one per frame).

`--set` overrides any agent config key for the run, e.g. `--set detection.confidence=0.4` or the
region-based HD detection settings once they exist; the overrides are printed with the results.
Prints the machine, its load average and the command line, so a table can be reproduced.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from agent.config import AgentConfig, ConfigError, load_config
from agent.events.clock import FrameStamp
from agent.pipeline.analyzer import FrameAnalyzer
from agent.pipeline.frame import SourceFrame
from agent.pipeline.stage import TrackingStage
from agent.tracking import Tracker, TrackerParams
from agent.tracking.baselines import Sort
from agent.tracking.iou_matching import iou_matrix
from agent.vision.factory import build_vision_stack
from bench import mot

Array = npt.NDArray[np.float64]

DEFAULT_VIDEO = "data/video/vtest.avi"
DEFAULT_SEQUENCE = "data/mot15/PETS09-S2L1"


def parse_set(items: list[str]) -> dict[str, Any]:
    """["tracker.max_age=5", ...] -> {"tracker": {"max_age": "5"}} (pydantic converts the types)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or not section or not name:
            raise ValueError(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. tracker.max_age=5")
        out.setdefault(section, {})[name] = value
    return out


def detector_counts(gt_boxes: Array, boxes: Array) -> tuple[int, int, int]:
    """(true positives, false positives, misses) of one frame's detections at IoU >= 0.5."""
    if len(gt_boxes) == 0 or len(boxes) == 0:
        return 0, len(boxes), len(gt_boxes)
    iou = iou_matrix(boxes, gt_boxes)
    rows, cols = linear_sum_assignment(iou, maximize=True)
    tp = int((iou[rows, cols] >= 0.5).sum())
    return tp, len(boxes) - tp, len(gt_boxes) - tp


def run(config: AgentConfig, video: Path, seq: mot.Sequence_, frames: int) -> dict[str, Any]:
    stack = build_vision_stack(config)
    analyzer = FrameAnalyzer.from_stack(stack)
    stage = TrackingStage.from_config(config)
    motion = Tracker(TrackerParams.from_config(config.tracker, config.detection))
    sort = Sort()
    outputs: dict[str, list[mot.FrameOutput]] = {"agent": [], "motion only": [], "original SORT": []}
    counts = np.zeros(3, dtype=np.int64)
    scores: list[float] = []
    model_ms = 0.0
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise OSError(f"{video}: cannot open video")
    n = min(frames, seq.n_frames) if frames > 0 else seq.n_frames
    assert seq.gt is not None
    try:
        for index in range(n):
            ok, image = capture.read()
            if not ok:
                raise ValueError(f"{video}: ended at frame {index}, the ground truth has {seq.n_frames}")
            now = datetime.now(UTC)
            frame = SourceFrame(index, np.asarray(image, dtype=np.uint8), now, time.monotonic())
            analysis = analyzer.analyze(frame, stage.hints(index), None)
            model_ms += sum(analysis.timings_ms.values())
            result = stage.step(analysis, FrameStamp(index, now))
            boxes, det_scores = analysis.boxes_tlwh, analysis.scores
            scores.extend(det_scores.tolist())
            shown = [t for t in result.tracks if t.is_confirmed and t.time_since_update == 0]
            outputs["agent"].append(([t.track_id for t in shown], _stack([t.tlwh for t in shown])))
            update = motion.update(boxes, det_scores, None)
            moving = update.confirmed_tracks(updated_only=True)
            outputs["motion only"].append(([t.track_id for t in moving], _stack([t.tlwh for t in moving])))
            outputs["original SORT"].append(sort.update(boxes))
            counts += detector_counts(seq.gt[index][1], boxes)
    finally:
        capture.release()
    scored = mot.Sequence_(seq.name, n, seq.detections[:n], seq.gt[:n])
    trackers = {
        name: {
            k: v
            for k, v in mot.evaluate([scored], lambda s, o=out: (o, 1.0, 1.0))[seq.name].items()
            if k in ("mota", "idf1", "idsw", "fp", "fn")
        }
        for name, out in outputs.items()
    }
    tp, fp, fn = (int(c) for c in counts)
    return {
        "frames": n,
        "detector": {
            "recall": round(tp / max(tp + fn, 1), 4),
            "precision": round(tp / max(tp + fp, 1), 4),
            "detections": tp + fp,
            "ground_truth_boxes": tp + fn,
            "median_score": round(float(np.median(scores)), 3) if scores else None,
        },
        "trackers": trackers,
        "model_ms_per_frame": round(model_ms / max(n, 1), 2),
    }


def _stack(boxes: list[Array]) -> Array:
    return np.array(boxes, dtype=np.float64).reshape(-1, 4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pipeline_video",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, help="agent config file (default: built-in defaults)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a config key"
    )
    parser.add_argument("--frames", type=int, default=0, help="score only the first N frames (0: all)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    try:
        overrides = parse_set(args.set)
        # One worker, as the agent's tracking sees frames in order; 2 interpreter threads.
        overrides.setdefault("inference", {}).setdefault("workers", 1)
        config = load_config(args.config, **overrides)
    except (ValueError, ConfigError) as exc:
        print(f"bench.pipeline_video: {exc}", file=sys.stderr)
        return 2
    video = config.resolve_asset(DEFAULT_VIDEO)
    seq_dir = config.resolve_asset(DEFAULT_SEQUENCE)
    try:
        seq = mot.load_sequence(seq_dir, 0.0, 1.0)
        started = time.perf_counter()
        result = run(config, video, seq, args.frames)
    except (OSError, ValueError) as exc:
        print(f"bench.pipeline_video: {exc}", file=sys.stderr)
        return 2
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["overrides"] = args.set
    result["machine"] = f"{platform.machine()} {os.cpu_count()} cpus, {platform.python_version()}"
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    result["command"] = "python -m bench.pipeline_video " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    d = result["detector"]
    print(f"{result['command']}")
    print(f"machine {result['machine']}; load average {result['load_average']}; {result['seconds']} s")
    print(f"PETS09-S2L1 / vtest.avi, {result['frames']} frames, overrides {args.set or 'none'}")
    print(
        f"detector (COCO SSD): recall {d['recall']:.3f}  precision {d['precision']:.3f}  "
        f"({d['detections']} boxes, {d['ground_truth_boxes']} gt boxes, median score {d['median_score']}); "
        f"models {result['model_ms_per_frame']} ms/frame"
    )
    print(f"{'tracker':<16}{'MOTA':>7}{'IDF1':>7}{'IDSW':>6}{'FP':>6}{'FN':>6}")
    for name, r in result["trackers"].items():
        print(f"{name:<16}{r['mota']:>7.1f}{r['idf1']:>7.1f}{r['idsw']:>6}{r['fp']:>6}{r['fn']:>6}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
