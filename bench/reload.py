"""Benchmark classifier hot reload: publish -> model_applied, publish -> first frame classified by
the new model, and frame-time jitter around the swap, over repeated pushes.

    python -m bench.reload [--pushes 10] [--interval 1.5] [--json]

Real parts: a private mosquitto, the trainer's `publish_bundle` (retained, QoS 1), the agent's
MqttLink + outbox + ModelService, and a frame loop running the real face detector, embedder and
classifier on hamilton_clip.mp4 (looped, decoded up front so decode time does not blur the
jitter). Each push alternates between two signed models (the Johns; the Johns + 3 reference
people) with a fresh, newer version. Frame times (completion to completion) are compared in the
window around each swap (0.3 s either side of the first frame under the new model, which also
covers verification and install in the executor) against all other frames; `swap_frame_ms` is
the frame classified first by each new model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.classifier.bundle import new_version
from agent.classifier.keys import public_key_text
from agent.config import AgentConfig
from agent.devtools.mosquitto import MosquittoBroker
from agent.events.schema import EventBase
from agent.logging_setup import configure_logging
from agent.runtime.model_service import ModelService
from agent.runtime.mqtt_link import MqttLink
from agent.runtime.outbox import Outbox
from agent.runtime.topics import Topics
from trainer.dataset import FaceEmbedding, scan_people
from trainer.publish import BrokerOptions, publish_bundle
from trainer.training import TrainingResult, train

# Frames completed within this many seconds of a swap (the first frame under the new model)
# count as "near"; the rest of the run is the baseline.
WINDOW_S = 0.3


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


async def run(args: argparse.Namespace) -> dict[str, Any]:
    assets = args.assets_dir
    work = Path(tempfile.mkdtemp(prefix="facetrack-bench-reload-"))
    key = Ed25519PrivateKey.generate()
    base = AgentConfig(assets_dir=assets)
    emb = FaceEmbedding.from_config(base, cache_dir=work / "embeddings", pad=0.5)
    model_a, model_b = _train_models(emb, assets / "data" / "faces")
    frames: list[np.ndarray] = []
    capture = cv2.VideoCapture(str(assets / "data" / "video" / "hamilton_clip.mp4"))
    while len(frames) < args.frames:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()

    with MosquittoBroker() as broker:
        config = AgentConfig(
            assets_dir=assets,
            state_dir=work / "state",
            device_id="bench",
            mqtt={"port": broker.port},
            classifier={"trusted_keys": [public_key_text(key.public_key())], "keep_versions": 3},
        )
        topics = Topics(config.mqtt.topic_prefix, config.device_id)
        outbox = Outbox(config.state_dir / "outbox.sqlite3", 10_000, 1 << 24)
        link = MqttLink(config.mqtt, topics, outbox)

        def emit(event: EventBase) -> None:
            link.emit(event)

        service = ModelService(config, emit=emit, embedder=emb.embedder)
        first = model_a.sign(
            embedder_id=emb.embedder_id,
            dim=emb.dim,
            private_key=key,
        )
        service.store.install(first, new_version_of(first), protect=set())
        service.load_installed()
        for topic in service.topics(topics):
            link.subscribe(topic, service.handle_message)
        loop = asyncio.get_running_loop()
        frame_done: list[tuple[float, str | None]] = []
        stop = asyncio.Event()

        def analyse(image: np.ndarray, clf: Any) -> None:
            faces = emb.detector.detect(image)
            if faces and clf is not None:
                clf.predict(emb.embedder.embed(image, faces))

        async def frame_loop() -> None:
            index = 0
            while not stop.is_set():
                service.activate_pending()
                clf = service.current
                await loop.run_in_executor(None, analyse, frames[index % len(frames)], clf)
                frame_done.append((time.monotonic(), clf.version if clf else None))
                if clf is not None:
                    service.note_frame_classified(index, clf.version)
                index += 1

        tasks = [asyncio.create_task(link.run()), asyncio.create_task(frame_loop())]
        for _ in range(500):
            if link.connected:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(args.interval)
        pushes: list[dict[str, Any]] = []
        for i in range(args.pushes):
            model = model_b if i % 2 == 0 else model_a
            data = model.sign(
                embedder_id=emb.embedder_id,
                dim=emb.dim,
                private_key=key,
                version=new_version(),
            )
            version = new_version_of(data)
            began = time.monotonic()
            _, answers = await publish_bundle(data, "bench", BrokerOptions(port=broker.port), wait_s=10)
            first_frame = next((t for t, v in frame_done if v == version), None)
            answer = answers[0] if answers else None
            pushes.append(
                {
                    "version": version,
                    "result": answer.result if answer else "no answer",
                    "publish_to_applied_event_s": answer.seen_after_s if answer else None,
                    "reported_apply_latency_s": answer.apply_latency_s if answer else None,
                    "publish_to_first_frame_s": round(first_frame - began, 4) if first_frame else None,
                    "began": began,
                    "swap": first_frame,
                }
            )
            await asyncio.sleep(args.interval)
        stop.set()
        await link.stop(2.0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        outbox.close()

    intervals = [
        (frame_done[i][0], 1000 * (frame_done[i][0] - frame_done[i - 1][0]))
        for i in range(1, len(frame_done))
    ]
    swaps = [p["swap"] for p in pushes if p["swap"] is not None]
    near = [ms for t, ms in intervals if any(abs(t - w) <= WINDOW_S for w in swaps)]
    far = [ms for t, ms in intervals if all(abs(t - w) > WINDOW_S for w in swaps)]
    at_swap = [ms for t, ms in intervals if t in swaps]
    for push in pushes:
        push.pop("began")
        push.pop("swap")
    applied = [p for p in pushes if p["result"] == "applied"]
    return {
        "pushes": len(pushes),
        "applied": len(applied),
        "frames": len(frame_done),
        "publish_to_applied_event_s": _stats([p["publish_to_applied_event_s"] for p in applied]),
        "reported_apply_latency_s": _stats([p["reported_apply_latency_s"] for p in applied]),
        "publish_to_first_frame_s": _stats(
            [p["publish_to_first_frame_s"] for p in applied if p["publish_to_first_frame_s"] is not None]
        ),
        "swap_frame_ms": _stats(at_swap),
        "frame_ms_near_swap": _stats(near),
        "frame_ms_elsewhere": _stats(far),
        "jitter_ratio_p95": (
            round(_stats(near)["p95"] / _stats(far)["p95"], 3)  # type: ignore[operator]
            if near and far
            else None
        ),
        "per_push": pushes,
    }


def new_version_of(data: bytes) -> str:
    from agent.classifier.bundle import parse_bundle

    return parse_bundle(data).manifest.model_version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reload", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pushes", type=int, default=10, help="number of model pushes (default: %(default)s)"
    )
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between pushes (default: %(default)s)"
    )
    parser.add_argument(
        "--frames", type=int, default=275, help="video frames to loop over (default: %(default)s)"
    )
    parser.add_argument("--assets-dir", type=Path, default=Path("models/assets"))
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)
    configure_logging("warning", "auto")
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['applied']}/{result['pushes']} pushes applied over {result['frames']} frames")
    for key in ("publish_to_applied_event_s", "reported_apply_latency_s", "publish_to_first_frame_s"):
        print(f"{key:28} {result[key]}")
    print(f"{'first frame under new model':28} {result['swap_frame_ms']}")
    print(f"{'frame ms within 0.3 s of swap':28} {result['frame_ms_near_swap']}")
    print(f"{'frame ms elsewhere':28} {result['frame_ms_elsewhere']}")
    print(f"p95 frame time ratio near/elsewhere: {result['jitter_ratio_p95']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
