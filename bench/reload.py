"""Benchmark classifier hot reload on the real agent: publish -> model_applied, publish -> first frame
classified by the new model, and frame-time jitter around each swap, over repeated pushes.

    python -m bench.reload [--pushes 10] [--interval 2.0] [--json]

The agent is the real `AgentApp` in its default layout (config.inference): person detector, face
detector, embedder and classifier in the inference executor, tracker, identity voting and events on
the event loop, SQLite outbox, MqttLink and ModelService, against a private mosquitto. Its input is
hamilton_clip.mp4 decoded once into memory and served in a loop by a capture object (the agent
reads it as a file, as fast as it processes frames), so decoding the file again does not blur the
frame times; this stands in only for the camera. The trainer's `publish_bundle` (retained, QoS 1)
runs in its own thread and event loop, as the trainer would on its own machine.

Each push alternates between two signed models trained by the trainer on real photos (the Johns;
the Johns + 3 reference people), each with a fresh, newer version. Frame time is the interval
between consecutive frames leaving the tracking stage (AgentApp's on_frame hook). Frames from a
publish until 0.3 s after the first frame under the new model (which covers delivery, signature
check, skops load and install in the executor, and the swap) are "near a swap"; the other frames
after warm-up are "elsewhere". `swap_frame_ms` is the interval ending at the first frame under each
new model. Logs go to stderr; with --json stdout carries the JSON document alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.classifier.bundle import new_version, parse_bundle
from agent.classifier.keys import public_key_text
from agent.config import AgentConfig
from agent.devtools.demo import install_bundle
from agent.devtools.mosquitto import MosquittoBroker
from agent.logging_setup import configure_logging
from agent.runtime.app import AgentApp
from bench.machine import BenchRun
from trainer.dataset import FaceEmbedding, scan_people
from trainer.publish import BrokerOptions, publish_bundle
from trainer.training import TrainingResult, train

# Frames completed up to this many seconds after a swap (the first frame under the new model)
# count as "near", from the moment of the publish on.
WINDOW_S = 0.3
VIDEO = "data/video/hamilton_clip.mp4"


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"n": 0, "median": None, "p95": None, "max": None}
    ordered = sorted(values)
    return {
        "n": len(values),
        "median": round(statistics.median(ordered), 3),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
        "max": round(ordered[-1], 3),
    }


def _train_models(emb: FaceEmbedding, faces: Path) -> tuple[TrainingResult, TrainingResult]:
    xs, ys = [], []
    for person, paths in scan_people(faces / "dlib_johns").items():
        for sample in emb.samples([(p, person) for p in paths], progress=False):
            if sample.embedding is not None:
                xs.append(sample.embedding)
                ys.append(person)
    x = np.array(xs, dtype=np.float64)
    refs = sorted((faces / "refs").iterdir())
    x_refs = np.stack([emb.faces_in(p)[0] for p in refs]).astype(np.float64)
    y_refs = [p.stem.split("_")[0] for p in refs]
    return train(x, ys), train(np.vstack([x, x_refs]), [*ys, *y_refs])


class LoopingCapture:
    """cv2.VideoCapture's shape over frames decoded once, served in a loop `total` times."""

    def __init__(self, frames: list[np.ndarray], total: int, fps: float) -> None:
        self._frames, self._total, self._fps = frames, total, fps
        self._next = 0

    def isOpened(self) -> bool:
        return True

    def read(self) -> tuple[bool, Any]:
        if self._next >= self._total:
            return False, None
        frame = self._frames[self._next % len(self._frames)]
        self._next += 1
        return True, frame.copy()

    def grab(self) -> bool:
        ok, _ = self.read()
        return ok

    def get(self, prop_id: int) -> float:
        if prop_id == cv2.CAP_PROP_FPS:
            return self._fps
        if prop_id == cv2.CAP_PROP_FRAME_COUNT:
            return float(self._total)
        if prop_id == cv2.CAP_PROP_FRAME_WIDTH:
            return float(self._frames[0].shape[1])
        if prop_id == cv2.CAP_PROP_FRAME_HEIGHT:
            return float(self._frames[0].shape[0])
        return 0.0

    def release(self) -> None:
        pass


def decode(video: Path, limit: int) -> tuple[list[np.ndarray], float]:
    capture = cv2.VideoCapture(str(video))
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 25.0)
    frames: list[np.ndarray] = []
    while len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    if not frames:
        raise SystemExit(f"bench.reload: no frames decoded from {video}")
    return frames, fps


def run(args: argparse.Namespace) -> dict[str, Any]:
    assets = args.assets_dir.resolve()
    work = Path(tempfile.mkdtemp(prefix="facetrack-bench-reload-"))
    key = Ed25519PrivateKey.generate()
    base = AgentConfig(assets_dir=assets)
    emb = FaceEmbedding.from_config(base, cache_dir=work / "embeddings", pad=0.5)
    model_a, model_b = _train_models(emb, assets / "data" / "faces")
    video = assets / VIDEO
    frames, fps = decode(video, args.frames)
    # (monotonic time, frame index, classifier version) per frame, appended on the agent's loop.
    done: list[tuple[float, int, str | None]] = []
    flowing = threading.Event()

    def on_frame(index: int, version: str | None) -> None:
        done.append((time.monotonic(), index, version))
        flowing.set()

    with MosquittoBroker() as broker:
        config = AgentConfig(
            assets_dir=assets,
            state_dir=work / "state",
            device_id="bench",
            mqtt={"port": broker.port, "password_env": "FACETRACK_BENCH_NO_PASSWORD"},
            classifier={"trusted_keys": [public_key_text(key.public_key())], "keep_versions": 3},
            pipeline={"input": str(video), "output": ""},
            status={"interval_s": 3600.0},
        )
        first = model_a.sign(embedder_id=emb.embedder_id, dim=emb.dim, private_key=key)
        install_bundle(config, first)
        total = 10**7
        app = AgentApp(
            config,
            max_frames=total,
            install_signal_handlers=False,
            capture_factory=lambda _target: LoopingCapture(frames, total, fps),
            on_frame=on_frame,
        )
        pushes: list[dict[str, Any]] = []
        marks: dict[str, float] = {}
        failure: list[BaseException] = []
        app_loop: list[asyncio.AbstractEventLoop] = []

        async def pusher() -> None:
            await asyncio.to_thread(flowing.wait)
            await asyncio.sleep(args.warmup)
            marks["measure_from"] = time.monotonic()
            for i in range(args.pushes):
                model = model_b if i % 2 == 0 else model_a
                data = model.sign(
                    embedder_id=emb.embedder_id, dim=emb.dim, private_key=key, version=new_version()
                )
                version = parse_bundle(data).manifest.model_version
                began = time.monotonic()
                _, answers = await publish_bundle(data, "bench", BrokerOptions(port=broker.port), wait_s=30)
                swap = next((t for t, _, v in list(done) if v == version), None)
                answer = answers[0] if answers else None
                pushes.append(
                    {
                        "version": version,
                        "result": answer.result if answer else "no answer",
                        "publish_to_applied_event_s": answer.seen_after_s if answer else None,
                        "reported_apply_latency_s": answer.apply_latency_s if answer else None,
                        "publish_to_first_frame_s": round(swap - began, 4) if swap else None,
                        "began": began,
                        "swap": swap,
                    }
                )
                await asyncio.sleep(args.interval)
            marks["measure_to"] = time.monotonic()

        def push_thread() -> None:
            try:
                asyncio.run(pusher())
            except BaseException as exc:  # reported after the agent stopped
                failure.append(exc)
            finally:
                while not app_loop:
                    time.sleep(0.01)
                app_loop[0].call_soon_threadsafe(app.request_stop, "bench done")

        async def agent() -> int:
            app_loop.append(asyncio.get_running_loop())
            return await app.run()

        thread = threading.Thread(target=push_thread, name="trainer", daemon=True)
        thread.start()
        code = asyncio.run(agent())
        thread.join()
        if failure:
            raise failure[0]

    start, end = marks.get("measure_from", 0.0), marks.get("measure_to", float("inf"))
    intervals = [
        (done[i][0], 1000 * (done[i][0] - done[i - 1][0]))
        for i in range(1, len(done))
        if start <= done[i - 1][0] and done[i][0] <= end
    ]
    spans = [(p["began"], p["swap"] + WINDOW_S) for p in pushes if p["swap"] is not None]

    def near(t: float) -> bool:
        return any(a <= t <= b for a, b in spans)

    swaps = {p["swap"] for p in pushes if p["swap"] is not None}
    near_ms = [ms for t, ms in intervals if near(t)]
    far_ms = [ms for t, ms in intervals if not near(t)]
    at_swap = [ms for t, ms in intervals if t in swaps]
    for push in pushes:
        push.pop("began")
        push.pop("swap")
    applied = [p for p in pushes if p["result"] == "applied"]
    near_s, far_s = _stats(near_ms), _stats(far_ms)
    return {
        "agent_exit_code": code,
        "agent_layout": f"{config.inference.workers}x{config.inference.threads}",
        "agent_fps": round(app.summary.fps, 2),
        "pushes": len(pushes),
        "applied": len(applied),
        "frames": len(done),
        "frames_measured": len(intervals) + 1 if intervals else 0,
        "publish_to_applied_event_s": _stats([p["publish_to_applied_event_s"] for p in applied]),
        "reported_apply_latency_s": _stats([p["reported_apply_latency_s"] for p in applied]),
        "publish_to_first_frame_s": _stats(
            [p["publish_to_first_frame_s"] for p in applied if p["publish_to_first_frame_s"] is not None]
        ),
        "swap_frame_ms": _stats(at_swap),
        "frame_ms_near_swap": near_s,
        "frame_ms_elsewhere": far_s,
        "median_ratio_near_over_elsewhere": (
            round(near_s["median"] / far_s["median"], 3) if near_s["median"] and far_s["median"] else None
        ),
        "p95_ratio_near_over_elsewhere": (
            round(near_s["p95"] / far_s["p95"], 3) if near_s["p95"] and far_s["p95"] else None
        ),
        "per_push": pushes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.reload",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--pushes", type=int, default=10, help="number of model pushes (default: %(default)s)"
    )
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between pushes (default: %(default)s)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=3.0,
        help="seconds of frames before the first push (default: %(default)s)",
    )
    parser.add_argument(
        "--frames", type=int, default=275, help="video frames to loop over (default: %(default)s)"
    )
    parser.add_argument("--assets-dir", type=Path, default=Path("models/assets"))
    parser.add_argument("--json", action="store_true", help="print one JSON document (alone on stdout)")
    args = parser.parse_args(argv)
    if args.pushes < 1 or args.interval <= 0 or args.frames < 1 or args.warmup < 0:
        parser.error("--pushes, --interval and --frames must be positive, --warmup not negative")
    configure_logging("error", "console")
    bench_run = BenchRun.start("bench.reload", argv, with_mosquitto=True)
    result = run(args)
    bench_run.finish()
    if args.json:
        print(json.dumps({"run": bench_run.as_json(), **result}, indent=2))
        return 0 if result["applied"] == result["pushes"] else 1
    print(bench_run.header())
    print(
        f"real AgentApp, layout {result['agent_layout']} (workers x TFLite threads), "
        f"hamilton_clip.mp4 looped from memory; {result['agent_fps']} fps over the run"
    )
    print(
        f"{result['applied']}/{result['pushes']} pushes applied; {result['frames']} frames, "
        f"{result['frames_measured']} after warm-up"
    )
    for key in ("publish_to_applied_event_s", "reported_apply_latency_s", "publish_to_first_frame_s"):
        print(f"{key:31} {result[key]}")
    print(f"{'frame ms, first under new model':31} {result['swap_frame_ms']}")
    print(f"{'frame ms, publish..swap+0.3 s':31} {result['frame_ms_near_swap']}")
    print(f"{'frame ms, elsewhere':31} {result['frame_ms_elsewhere']}")
    print(
        f"near swap / elsewhere: median {result['median_ratio_near_over_elsewhere']}x, "
        f"p95 {result['p95_ratio_near_over_elsewhere']}x"
    )
    return 0 if result["applied"] == result["pushes"] else 1


if __name__ == "__main__":
    sys.exit(main())
