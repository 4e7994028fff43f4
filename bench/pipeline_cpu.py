"""Where the agent's CPU goes per frame, item by item: models against everything else.

    python -m bench.pipeline_cpu [--frames 300] [--videos vtest hamilton] [--json]

Runs the agent's own stages (`FrameAnalyzer` with the agent's detection schedule, colour
appearance and face schedule + `TrackingStage`, the trained demo classifier when the shared
enrolment photos are there) one frame at a time in this thread with 1-thread interpreters, the
layout of one agent worker, and charges this thread's CPU time (`time.thread_time`) to each item:
decoding, the motion mask, the person detector (with its pre- and post-processing), the face
models, the colour histograms, the tracker, the rest of the tracking stage (identity, events,
velocities), the face-check hints, and the analyzer's own Python (scheduling, box filters,
bindings). Everything runs in this one thread, so the items add up to the total, and other jobs on
the machine do not change them much (CPU time, not wall time). The agent itself adds what this
loop does not have: the decode thread and executor hand-offs, the event loop, the outbox and
MQTT (bench.pipeline's `CPU ms/f` of the agent minus this total).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2

from agent.config import AgentConfig, load_config
from agent.events.clock import FrameStamp
from agent.pipeline.analyzer import ClassifierLike, DetectionOptions, FrameAnalyzer
from agent.pipeline.frame import SourceFrame
from agent.pipeline.stage import TrackingStage
from agent.runtime.blas_threads import limit_blas_threads
from agent.tracking import ColorHistogramEncoder
from agent.vision.factory import VisionStack, build_vision_stack
from bench.machine import BenchRun
from bench.pipeline import VIDEOS, _input_side, _layout, train_classifier, verified_classifier

MODEL_ITEMS = ("person detector", "face detector", "embedder", "classifier")


class ThreadCpu:
    """This thread's CPU milliseconds per item."""

    def __init__(self) -> None:
        self.ms: defaultdict[str, float] = defaultdict(float)

    def wrap(self, item: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            c0 = time.thread_time()
            try:
                return call(*args, **kwargs)
            finally:
                self.ms[item] += (time.thread_time() - c0) * 1000

        return timed


class _Metered:
    """`inner` with `method` charged to `item`; every other attribute passes through."""

    def __init__(self, inner: Any, method: str, item: str, cpu: ThreadCpu) -> None:
        self._inner = inner
        setattr(self, method, cpu.wrap(item, getattr(inner, method)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def breakdown(
    config: AgentConfig, stack: VisionStack, clf: ClassifierLike | None, video: Path, frames: int
) -> dict[str, Any]:
    cpu = ThreadCpu()
    crop = stack.crop_face_detector
    analyzer = FrameAnalyzer(
        _Metered(stack.person_detector, "detect", "person detector", cpu),
        _Metered(stack.face_detector, "detect", "face detector", cpu),
        _Metered(stack.embedder, "embed", "embedder", cpu),
        _Metered(ColorHistogramEncoder(), "encode", "colour histograms", cpu),
        DetectionOptions.from_config(config.detection, _input_side(stack)),
        _Metered(crop, "detect", "face detector", cpu) if crop is not None else None,
    )
    scheduler = analyzer.options.scheduler
    motion = getattr(scheduler, "_motion", None) if scheduler is not None else None
    if motion is not None:
        motion.update = cpu.wrap("motion mask", motion.update)
    metered_clf = _Metered(clf, "predict", "classifier", cpu) if clf is not None else None
    stage = TrackingStage.from_config(config)
    tracker = stage.tracker
    tracker.update = cpu.wrap("tracker", tracker.update)  # type: ignore[method-assign]
    read = cpu.wrap("decode", cv2.VideoCapture(str(video)).read)
    analyze = cpu.wrap("analyze", analyzer.analyze)
    step = cpu.wrap("step", stage.step)
    hints = cpu.wrap("face-check hints", stage.hints)
    done = passes = 0
    start = time.thread_time()
    while done < frames:
        ok, image = read()
        if not ok:
            break
        frame = SourceFrame(done, image, datetime.now(UTC), time.monotonic())
        analysis = analyze(frame, hints(done), metered_clf)
        step(analysis, FrameStamp(done, datetime.now(UTC)))
        passes += analysis.person_passes
        done += 1
    total = (time.thread_time() - start) * 1000
    ms = dict(cpu.ms)
    inside = (
        "person detector",
        "face detector",
        "embedder",
        "classifier",
        "colour histograms",
        "motion mask",
    )
    ms["analyzer's own Python"] = ms.pop("analyze", 0.0) - sum(ms.get(k, 0.0) for k in inside)
    ms["tracking stage (identity, events, velocities)"] = ms.pop("step", 0.0) - ms.get("tracker", 0.0)
    ms["loop (frames, stamps)"] = total - sum(ms.values())
    per_frame = {k: round(v / max(done, 1), 3) for k, v in sorted(ms.items(), key=lambda kv: -kv[1])}
    model = sum(per_frame.get(k, 0.0) for k in MODEL_ITEMS)
    return {
        "frames": done,
        "person_passes_per_frame": round(passes / max(done, 1), 3),
        "cpu_ms_per_frame": round(total / max(done, 1), 2),
        "model_cpu_ms_per_frame": round(model, 2),
        "non_model_cpu_ms_per_frame": round(total / max(done, 1) - model, 2),
        "items_ms_per_frame": per_frame,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pipeline_cpu",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--frames", type=int, default=300, help="frames per video [300]")
    parser.add_argument("--videos", nargs="+", choices=sorted(VIDEOS), default=["vtest", "hamilton"])
    parser.add_argument("--json", action="store_true", help="print one JSON document (alone on stdout)")
    args = parser.parse_args(argv)

    from agent.logging_setup import configure_logging

    configure_logging("error", "console")
    limit_blas_threads()
    bench_run = BenchRun.start("bench.pipeline_cpu", argv)
    config = load_config(None, device_id="bench")
    one = _layout(config, 1, 1)
    stack = build_vision_stack(one)
    clf: ClassifierLike | None = None
    trained = train_classifier(config, Path(tempfile.mkdtemp(prefix="facetrack-bench-")))
    if trained is not None:
        clf = verified_classifier(trained, stack)
    report: dict[str, Any] = {"layout": "one thread, 1-thread interpreters", "classifier": clf is not None}
    for name in args.videos:
        video = config.resolve_asset(VIDEOS[name])
        breakdown(one, stack, clf, video, 10)  # warm-up: SFace loads on its first face
        report[name] = breakdown(one, stack, clf, video, args.frames)
    bench_run.finish()
    report["run"] = bench_run.as_json()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    lines = bench_run.header_lines()
    lines.append(
        f"{report['layout']}, classifier {'yes' if report['classifier'] else 'no'}; thread CPU ms per frame"
    )
    for name in args.videos:
        r = report[name]
        lines.append(
            f"\n{name}: {r['frames']} frames, {r['person_passes_per_frame']} person passes per frame, "
            f"{r['cpu_ms_per_frame']:.2f} ms per frame = models {r['model_cpu_ms_per_frame']:.2f} "
            f"+ the rest {r['non_model_cpu_ms_per_frame']:.2f}"
        )
        for item, value in r["items_ms_per_frame"].items():
            tag = "model" if item in MODEL_ITEMS else ""
            lines.append(f"  {item:<48} {value:>7.3f}  {tag}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
