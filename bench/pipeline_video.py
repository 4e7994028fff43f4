"""The agent's whole pipeline scored on real video: our person detector, our tracker, ground truth.

    python -m bench.pipeline_video [--video FILE --gt FOLDER] [--frames N] [--set S.KEY=VALUE ...] [--json]

Reads a video (default data/video/vtest.avi, PETS09-S2L1, 768x576) and its MOTChallenge ground
truth (FOLDER/gt/gt.txt, default data/mot15/PETS09-S2L1; ground-truth frame f is video frame f-1)
and, one frame at a time, does what the agent does: the analyzer built by the agent's own factory
(`agent.runtime.resources.build_analyzers`: the configured person detector, motion gate, regions,
detection schedule, impossible-box filter, colour appearance, faces when due) with the hints of
`TrackingStage.hints`, then `TrackingStage.step` (tracker, identity, events). The boxes scored are
the confirmed tracks matched to a detection in the frame, as bench/mot.py scores trackers. On the
same detections, in the same run, it also scores our tracker on motion alone and the original SORT
(agent.tracking.baselines), and the detections the agent used (recall and precision at IoU 0.5,
one-to-one per frame). `--gt none` runs a video without ground truth: only the counts (confirmed
tracks, the largest box's share of the frame) are reported.

`--json` prints the JSON document alone on stdout; log lines go to stderr.

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
from agent.logging_setup import configure_logging
from agent.pipeline.frame import SourceFrame
from agent.pipeline.stage import TrackingStage
from agent.runtime.resources import build_analyzers
from agent.tracking import Tracker, TrackerParams
from agent.tracking.baselines import Sort
from agent.tracking.iou_matching import iou_matrix
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


def load_ground_truth(folder: Path) -> mot.Sequence_:
    """FOLDER/gt/gt.txt (MOTChallenge: frame, id, x, y, w, h, consider, ...) as a sequence without
    detections; boxes marked 0 in the "consider" column are left out, as bench/mot.py does."""
    path = folder / "gt" / "gt.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no gt/gt.txt (is this a MOTChallenge sequence folder?)")
    try:
        rows = np.loadtxt(path, delimiter=",", ndmin=2) if path.stat().st_size else np.empty((0, 7))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if rows.size == 0:
        raise ValueError(f"{path}: no ground-truth boxes")
    if rows.shape[1] < 7:
        raise ValueError(f"{path}: expected at least 7 comma-separated columns, got {rows.shape[1]}")
    rows = rows[rows[:, 6] != 0]
    if rows.size == 0 or rows[:, 0].min() < 1:
        raise ValueError(f"{path}: frames are numbered from 1 and at least one box must count")
    last = int(rows[:, 0].max())
    empty = (np.empty((0, 4)), np.empty(0))
    gt = [
        (rows[rows[:, 0] == f, 1].astype(int).tolist(), rows[rows[:, 0] == f, 2:6])
        for f in range(1, last + 1)
    ]
    return mot.Sequence_(folder.name, last, [empty] * last, gt)


def run(config: AgentConfig, video: Path, seq: mot.Sequence_ | None, frames: int) -> dict[str, Any]:
    """Score the agent's pipeline on `video` against `seq` (None: count tracks only).

    Without ground truth every frame of the video is read (up to `frames`); with it, the frames it
    covers. A video shorter than its ground truth is scored on the frames it has."""
    analyzer = build_analyzers(config, None)[0][0]
    stage = TrackingStage.from_config(config)
    motion = Tracker(TrackerParams.from_config(config.tracker, config.detection))
    sort = Sort()
    outputs: dict[str, list[mot.FrameOutput]] = {"agent": [], "motion only": [], "original SORT": []}
    counts = np.zeros(3, dtype=np.int64)
    scores: list[float] = []
    model_ms = 0.0
    passes = 0
    largest_share = 0.0
    confirmed: dict[str, set[int]] = {name: set() for name in outputs}
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise OSError(f"{video}: cannot open video")
    limit = seq.n_frames if seq is not None else 1 << 31
    n = min(frames, limit) if frames > 0 else limit
    index = 0
    try:
        while index < n:
            ok, image = capture.read()
            if not ok:
                break
            now = datetime.now(UTC)
            frame = SourceFrame(index, np.asarray(image, dtype=np.uint8), now, time.monotonic())
            analysis = analyzer.analyze(frame, stage.hints(index), None)
            model_ms += sum(analysis.timings_ms.values())
            passes += analysis.person_passes
            if len(analysis.boxes_tlwh):
                area = float((analysis.boxes_tlwh[:, 2] * analysis.boxes_tlwh[:, 3]).max())
                largest_share = max(largest_share, area / (image.shape[0] * image.shape[1]))
            result = stage.step(analysis, FrameStamp(index, now))
            boxes, det_scores = analysis.boxes_tlwh, analysis.scores
            scores.extend(det_scores.tolist())
            shown = [t for t in result.tracks if t.is_confirmed and t.time_since_update == 0]
            outputs["agent"].append(([t.track_id for t in shown], _stack([t.tlwh for t in shown])))
            update = motion.update(boxes, det_scores, None)
            moving = update.confirmed_tracks(updated_only=True)
            outputs["motion only"].append(([t.track_id for t in moving], _stack([t.tlwh for t in moving])))
            outputs["original SORT"].append(sort.update(boxes))
            for name, out in outputs.items():
                confirmed[name].update(out[-1][0])
            if seq is not None and seq.gt is not None:
                counts += detector_counts(seq.gt[index][1], boxes)
            index += 1
    finally:
        capture.release()
    if index == 0:
        raise ValueError(f"{video}: no frame could be read")
    trackers: dict[str, dict[str, Any]] = {
        name: {"confirmed_tracks": len(ids)} for name, ids in confirmed.items()
    }
    detector: dict[str, Any] = {
        "model": config.models.person_detector.name,
        "detections": len(scores),
        "median_score": round(float(np.median(scores)), 3) if scores else None,
        "largest_box_frame_share": round(largest_share, 4),
        "passes_per_frame": round(passes / index, 3),
        # Whole-frame passes that also ran on tiles ([tiles]; 0 when tiles are off).
        "tiled_passes": int(getattr(analyzer.person_detector, "tiled_passes", 0)),
    }
    if seq is not None and seq.gt is not None:
        scored = mot.Sequence_(seq.name, index, seq.detections[:index], seq.gt[:index])
        for name, out in outputs.items():
            metrics = mot.evaluate([scored], lambda s, o=out: (o, 1.0, 1.0))[seq.name]
            trackers[name].update(
                {k: v for k, v in metrics.items() if k in ("mota", "idf1", "idsw", "fp", "fn")}
            )
        tp, fp, fn = (int(c) for c in counts)
        detector.update(
            recall=round(tp / max(tp + fn, 1), 4),
            precision=round(tp / max(tp + fp, 1), 4),
            ground_truth_boxes=tp + fn,
        )
    return {
        "frames": index,
        "ground_truth_frames": seq.n_frames if seq is not None else None,
        "detector": detector,
        "trackers": trackers,
        "model_ms_per_frame": round(model_ms / index, 2),
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
    parser.add_argument(
        "--video", type=Path, help=f"video file to run (default: {DEFAULT_VIDEO} in the assets directory)"
    )
    parser.add_argument(
        "--gt",
        metavar="FOLDER",
        help="MOTChallenge folder holding gt/gt.txt for --video (frame f = video frame f-1); "
        f"'none' = no ground truth, counts only (default with the default video: {DEFAULT_SEQUENCE})",
    )
    parser.add_argument("--frames", type=int, default=0, help="score only the first N frames (0: all)")
    parser.add_argument("--json", action="store_true", help="print the JSON document alone on stdout")
    args = parser.parse_args(argv)
    if args.video is not None and args.gt is None:
        parser.error("--video needs --gt FOLDER (or --gt none to count tracks without ground truth)")
    if args.frames < 0:
        parser.error("--frames must be 0 (all) or more")
    # Log lines (model loading, the tracker) go to stderr, so --json leaves stdout to the document.
    configure_logging("warning", "console", stream=sys.stderr)
    try:
        overrides = parse_set(args.set)
        # One worker, as the agent's tracking sees frames in order; 2 interpreter threads.
        overrides.setdefault("inference", {}).setdefault("workers", 1)
        config = load_config(args.config, **overrides)
    except (ValueError, ConfigError) as exc:
        print(f"bench.pipeline_video: {exc}", file=sys.stderr)
        return 2
    video = args.video if args.video is not None else config.resolve_asset(DEFAULT_VIDEO)
    gt_dir = (
        None if args.gt == "none" else Path(args.gt) if args.gt else config.resolve_asset(DEFAULT_SEQUENCE)
    )
    try:
        if not video.is_file():
            raise FileNotFoundError(f"{video}: no such video file")
        seq = load_ground_truth(gt_dir) if gt_dir is not None else None
        started = time.perf_counter()
        result = run(config, video, seq, args.frames)
    except (OSError, ValueError) as exc:
        print(f"bench.pipeline_video: {exc}", file=sys.stderr)
        return 2
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["video"] = str(video)
    result["ground_truth"] = str(gt_dir) if gt_dir is not None else None
    result["overrides"] = args.set
    result["machine"] = f"{platform.machine()} {os.cpu_count()} cpus, {platform.python_version()}"
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    result["command"] = "python -m bench.pipeline_video " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print_table(result)
    return 0


def print_table(result: dict[str, Any]) -> None:
    d = result["detector"]
    print(f"{result['command']}")
    print(f"machine {result['machine']}; load average {result['load_average']}; {result['seconds']} s")
    print(
        f"{result['video']} against {result['ground_truth'] or 'no ground truth'}, "
        f"{result['frames']} frames, overrides {result['overrides'] or 'none'}"
    )
    scored = "recall" in d
    quality = f"recall {d['recall']:.3f}  precision {d['precision']:.3f}  " if scored else ""
    print(
        f"detector ({d['model']}): {quality}({d['detections']} boxes, median score {d['median_score']}, "
        f"{d['passes_per_frame']} passes/frame, {d['tiled_passes']} tiled, "
        f"largest box {d['largest_box_frame_share']:.0%} of the frame); "
        f"models {result['model_ms_per_frame']} ms/frame"
    )
    print(
        f"{'tracker':<16}{'tracks':>7}"
        + (f"{'MOTA':>7}{'IDF1':>7}{'IDSW':>6}{'FP':>6}{'FN':>6}" if scored else "")
    )
    for name, r in result["trackers"].items():
        row = f"{name:<16}{r['confirmed_tracks']:>7}"
        if scored:
            row += f"{r['mota']:>7.1f}{r['idf1']:>7.1f}{r['idsw']:>6}{r['fp']:>6}{r['fn']:>6}"
        print(row)


if __name__ == "__main__":
    raise SystemExit(main())
