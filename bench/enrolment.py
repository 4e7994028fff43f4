"""The agent's extra cost per frame with face collection on ([enrolment] enabled), side by side.

    python -m bench.enrolment [--frames 250] [--rounds 3] [--json]

The hamilton clip is decoded once into memory. Each round runs its frames through the agent's own
FrameAnalyzer and TrackingStage twice, collection off then on (the order alternates per round), on
one vision stack: with collection on the analyzer also measures every embedded face's quality when
the gate did not, cuts the crop, the stage keeps the best faces per track, and each ended track's
faces are JPEG-encoded into a message and written to a real face store (SQLite, synchronous FULL)
in a temporary directory, as the runtime does. Reported: median ms per frame of each mode over the
rounds and their ratio. The machine may be shared: read the load average printed with it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
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


def run_mode(
    config: Any, stack: Any, frames: list[Any], collect: bool, store_dir: Path, parts: dict[str, float]
) -> tuple[float, int]:
    """ms per frame for one pass over the frames, and the faces stored.

    With collection on, `parts` also gets the ms of each piece of the extra work timed on its own:
    the crops and the keeping redone on a scratch keeper (the same work the analyzer and the stage
    did; the redo is taken out of the pass's time), and the JPEG and the store write."""
    cfg = config.model_copy(update={"enrolment": config.enrolment.model_copy(update={"enabled": collect})})
    crop_size = cfg.enrolment.crop_size
    options = DetectionOptions.from_config(cfg.detection, 300, enrolment_crop=crop_size if collect else None)
    analyzer = FrameAnalyzer.from_stack(stack, options)
    stage = TrackingStage.from_config(cfg)
    store = None
    if collect:
        store = FaceStore(store_dir / f"faces-{time.monotonic_ns()}.sqlite3", FaceBounds(10_000, 2**30, 1e9))
    scratch = FaceKeeper(cfg.enrolment.faces_per_track, 0.0, cfg.enrolment.min_frame_gap)
    embedder_id = stack.embedder.embedder_id
    stored = 0
    redo = 0.0
    start_ts = datetime(2026, 1, 1, tzinfo=UTC)

    def keep(faces: list[Any]) -> None:
        nonlocal stored
        assert store is not None
        for face in faces:
            t3 = time.perf_counter()
            payload = encode_face(face, device="bench", embedder=embedder_id, jpeg_quality=85)
            t4 = time.perf_counter()
            store.add(payload)
            parts["jpeg_ms"] += (t4 - t3) * 1000
            parts["store_ms"] += (time.perf_counter() - t4) * 1000
            stored += 1

    t0 = time.perf_counter()
    for index, image in enumerate(frames):
        now = start_ts + timedelta(seconds=index / 25)
        frame = SourceFrame(
            index=index, image=image.copy(), ts=now, captured_at=time.monotonic(), media_s=index / 25
        )
        analysis = analyzer.analyze(frame, stage.hints(index), None)
        stage.step(analysis, FrameStamp(index, now, media_s=index / 25))
        if store is not None:
            t1 = time.perf_counter()
            for det in analysis.candidates:
                margin_crop(frame.image, analysis.faces[det].box, crop_size)
            t2 = time.perf_counter()
            for det, candidate in analysis.candidates.items():
                scratch.observe(det, candidate, frame_index=index, media_s=None, wall_ts="", confidence=None)
            t3 = time.perf_counter()
            parts["crop_ms"] += (t2 - t1) * 1000
            parts["keep_ms"] += (t3 - t2) * 1000
            redo += t3 - t1
            keep(stage.take_kept_faces())
    stage.finish(FrameStamp(len(frames), start_ts, media_s=None))
    if store is not None:
        keep(stage.take_kept_faces())
        store.close()
    return (time.perf_counter() - t0 - redo) * 1000 / max(1, len(frames)), stored


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    run = BenchRun.start("bench.enrolment", argv)
    config = load_config(None)
    video = config.assets_dir / "data" / "video" / "hamilton_clip.mp4"
    frames = _frames(video, args.frames)
    stack = build_vision_stack(config)
    times: dict[str, list[float]] = {"off": [], "on": []}
    stored = 0
    parts = dict.fromkeys(("crop_ms", "keep_ms", "jpeg_ms", "store_ms"), 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        run_mode(config, stack, frames[:20], True, Path(tmp), dict(parts))  # warm-up: caches, first JPEG
        for round_ in range(args.rounds):
            order = ("off", "on") if round_ % 2 == 0 else ("on", "off")
            for mode in order:
                ms, n = run_mode(config, stack, frames, mode == "on", Path(tmp), parts)
                times[mode].append(ms)
                stored = max(stored, n)
    run.finish()
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    result = {
        "run": run.as_json(),
        "frames": len(frames),
        "rounds": args.rounds,
        "ms_per_frame": {"off": round(off, 2), "on": round(on, 2)},
        "extra_ms_per_frame": round(on - off, 2),
        "ratio_on_off": round(on / off, 3),
        "faces_stored_per_pass": stored,
        # The extra work alone, per frame, averaged over the rounds with collection on.
        "extra_work_ms_per_frame": {
            k: round(v / (args.rounds * max(1, len(frames))), 4) for k, v in parts.items()
        },
        "all_ms_per_frame": {k: [round(v, 2) for v in vals] for k, vals in times.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for line in run.header_lines():
        print(line)
    print(
        f"hamilton clip, {len(frames)} frames x {args.rounds} rounds per mode (interleaved), one vision stack"
    )
    print(f"collection off: {off:.2f} ms/frame   on: {on:.2f} ms/frame   extra {on - off:+.2f} ms/frame")
    print(f"ratio on/off {on / off:.3f}; {stored} faces stored per pass")
    print(f"per round: {result['all_ms_per_frame']}")
    work = result["extra_work_ms_per_frame"]
    total = sum(work.values())
    parts_text = ", ".join(f"{k[:-3]} {v:.4f}" for k, v in work.items())
    print(
        f"extra work alone, ms/frame: {parts_text}; total {total:.4f} ({total / off:.2%} of a frame without)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
