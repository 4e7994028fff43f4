"""The agent's extra cost per frame with face collection on ([enrolment] enabled), side by side.

    python -m bench.enrolment [--frames 250] [--rounds 3] [--json]

The hamilton clip is decoded once into memory. Each round runs its frames through the agent's own
FrameAnalyzer and TrackingStage twice, collection off then on (the order alternates per round), on
one vision stack: with collection on the analyzer also measures every embedded face's quality when
the gate did not, cuts the crop, the stage keeps the best faces per track, and each ended track's
faces are JPEG-encoded into a message and written to a real face store (SQLite, synchronous FULL)
in a temporary directory, as the runtime does. One BLAS thread, as the agent sets at start.
Reported per mode, as medians over the rounds: wall ms per frame and CPU ms per frame (the
process's CPU time, all its threads: other jobs on a shared machine stretch the wall time far more
than the CPU time), their differences and ratios, and the extra work timed alone (wall and CPU).
Read the load average printed with it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2

from agent.config import load_config
from agent.events.clock import FrameStamp
from agent.pipeline.analyzer import DetectionOptions, FrameAnalyzer
from agent.pipeline.enrolment import FaceKeeper, margin_crop
from agent.pipeline.frame import SourceFrame
from agent.pipeline.stage import TrackingStage
from agent.runtime.blas_threads import limit_blas_threads
from agent.runtime.face_message import encode_face
from agent.runtime.face_store import FaceBounds, FaceStore
from agent.vision.factory import build_vision_stack
from bench.machine import BenchRun


def _frames(video: Path, limit: int) -> list[Any]:
    capture = cv2.VideoCapture(str(video))
    frames: list[Any] = []
    while len(frames) < limit:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    return frames


@dataclass
class Pass:
    wall_ms: float  # per frame
    cpu_ms: float  # per frame, the process's CPU time
    stored: int


class Clock:
    """Wall and process CPU time together (ms)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        laps = ((wall - self.wall) * 1000, (cpu - self.cpu) * 1000)
        self.wall, self.cpu = wall, cpu
        return laps


def run_mode(
    config: Any, stack: Any, frames: list[Any], collect: bool, store_dir: Path, parts: dict[str, float]
) -> Pass:
    """One pass over the frames, and the faces stored.

    With collection on, `parts` also gets the wall and CPU ms of each piece of the extra work timed
    on its own: the crops and the keeping redone on a scratch keeper (the same work the analyzer
    and the stage did; the redo is taken out of the pass's time), and the JPEG and the store write."""
    cfg = config.model_copy(update={"enrolment": config.enrolment.model_copy(update={"enabled": collect})})
    crop_size = cfg.enrolment.crop_size
    options = DetectionOptions.from_config(cfg.detection, 300, enrolment_crop=crop_size if collect else None)
    analyzer = FrameAnalyzer.from_stack(stack, options)
    stage = TrackingStage.from_config(cfg)
    store = before = None
    if collect:
        bounds = FaceBounds(10_000, 2**30, 1e9)
        store = FaceStore(store_dir / f"faces-{time.monotonic_ns()}.sqlite3", bounds)
        before = FaceStore(store_dir / f"each-{time.monotonic_ns()}.sqlite3", bounds)
    scratch = FaceKeeper(cfg.enrolment.faces_per_track, 0.0, cfg.enrolment.min_frame_gap)
    embedder_id = stack.embedder.embedder_id
    stored = 0
    redo = [0.0, 0.0]  # wall, CPU ms of the work redone or compared, not the agent's
    start_ts = datetime(2026, 1, 1, tzinfo=UTC)

    def add(key: str, laps: tuple[float, float]) -> None:
        parts[f"{key}_wall"] += laps[0]
        parts[f"{key}_cpu"] += laps[1]

    def keep(faces: list[Any]) -> None:
        nonlocal stored
        assert store is not None
        if not faces:
            return
        clock = Clock()
        payloads = [encode_face(f, device="bench", embedder=embedder_id, jpeg_quality=85) for f in faces]
        add("jpeg", clock.lap())
        # As FacePublisher.keep: the faces of the tracks that just ended, in one transaction.
        store.add_many(payloads)
        add("store", clock.lap())
        stored += len(faces)
        # The same faces one transaction (one fsync) each, as before add_many: side by side, and
        # taken out of the pass's time.
        assert before is not None
        for payload in payloads:
            before.add(payload)
        laps = clock.lap()
        add("store_each", laps)
        redo[0] += laps[0]
        redo[1] += laps[1]

    total = Clock()
    for index, image in enumerate(frames):
        now = start_ts + timedelta(seconds=index / 25)
        frame = SourceFrame(
            index=index, image=image.copy(), ts=now, captured_at=time.monotonic(), media_s=index / 25
        )
        analysis = analyzer.analyze(frame, stage.hints(index), None)
        stage.step(analysis, FrameStamp(index, now, media_s=index / 25))
        if store is not None:
            clock = Clock()
            for det in analysis.candidates:
                margin_crop(frame.image, analysis.faces[det].box, crop_size)
            crop = clock.lap()
            for det, candidate in analysis.candidates.items():
                scratch.observe(det, candidate, frame_index=index, media_s=None, wall_ts="", confidence=None)
            kept = clock.lap()
            add("crop", crop)
            add("keep", kept)
            redo[0] += crop[0] + kept[0]
            redo[1] += crop[1] + kept[1]
            keep(stage.take_kept_faces())
    stage.finish(FrameStamp(len(frames), start_ts, media_s=None))
    if store is not None:
        keep(stage.take_kept_faces())
        store.close()
    wall, cpu = total.lap()
    if before is not None:
        before.close()
    n = max(1, len(frames))
    return Pass((wall - redo[0]) / n, (cpu - redo[1]) / n, stored)


PARTS = ("crop", "keep", "jpeg", "store", "store_each")


def _median(passes: list[Pass], key: str) -> float:
    return float(statistics.median(getattr(p, key) for p in passes))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    limit_blas_threads()
    run = BenchRun.start("bench.enrolment", argv)
    config = load_config(None)
    video = config.assets_dir / "data" / "video" / "hamilton_clip.mp4"
    frames = _frames(video, args.frames)
    stack = build_vision_stack(config)
    passes: dict[str, list[Pass]] = {"off": [], "on": []}
    parts = {f"{k}_{c}": 0.0 for k in PARTS for c in ("wall", "cpu")}
    with tempfile.TemporaryDirectory() as tmp:
        run_mode(config, stack, frames[:20], True, Path(tmp), dict(parts))  # warm-up: caches, first JPEG
        for round_ in range(args.rounds):
            order = ("off", "on") if round_ % 2 == 0 else ("on", "off")
            for mode in order:
                passes[mode].append(run_mode(config, stack, frames, mode == "on", Path(tmp), parts))
    run.finish()
    per_round = {
        key: [
            round(on.__dict__[key] - off.__dict__[key], 2)
            for off, on in zip(passes["off"], passes["on"], strict=True)
        ]
        for key in ("wall_ms", "cpu_ms")
    }
    medians = {m: {k: round(_median(passes[m], k), 2) for k in ("wall_ms", "cpu_ms")} for m in passes}
    result = {
        "run": run.as_json(),
        "frames": len(frames),
        "rounds": args.rounds,
        "ms_per_frame": medians,
        # Median over the rounds of each round's on - off (the pair ran back to back).
        "extra_ms_per_frame": {k: round(statistics.median(v), 2) for k, v in per_round.items()},
        "extra_per_round": per_round,
        "faces_stored_per_pass": max(p.stored for p in passes["on"]),
        # The extra work alone, per frame, averaged over the passes with collection on.
        "extra_work_ms_per_frame": {
            k: round(v / (args.rounds * max(1, len(frames))), 4) for k, v in parts.items()
        },
        "all_ms_per_frame": {
            m: {k: [round(getattr(p, k), 2) for p in ps] for k in ("wall_ms", "cpu_ms")}
            for m, ps in passes.items()
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for line in run.header_lines():
        print(line)
    print(
        f"hamilton clip, {len(frames)} frames x {args.rounds} rounds per mode (interleaved), "
        "one vision stack, one BLAS thread"
    )
    for key, label in (("wall_ms", "wall"), ("cpu_ms", "CPU ")):
        off, on = medians["off"][key], medians["on"][key]
        extra = result["extra_ms_per_frame"][key]
        print(
            f"{label} ms/frame: off {off:.2f}  on {on:.2f}  extra (median of per-round on-off) {extra:+.2f}"
            f"  per round {per_round[key]}"
        )
    print(f"{result['faces_stored_per_pass']} faces stored per pass")
    work = result["extra_work_ms_per_frame"]
    for clock in ("wall", "cpu"):
        counted = [k for k in PARTS if k != "store_each"]
        total = sum(work[f"{k}_{clock}"] for k in counted)
        text = ", ".join(f"{k} {work[f'{k}_{clock}']:.4f}" for k in counted)
        print(
            f"extra work alone, {clock} ms/frame: {text}; total {total:.4f}"
            f" (store one transaction per face, as before: {work[f'store_each_{clock}']:.4f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
