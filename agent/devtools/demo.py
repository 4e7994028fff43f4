"""`make demo`: the agent on a sample video, end to end, on this machine.

1. Uses the MQTT broker on the configured port, or starts a private mosquitto when none answers.
2. Trains a small signed classifier from the reference photos (data/faces/refs + the knn train
   set: six people, including Lin-Manuel Miranda, who is on stage in the sample clip) and installs
   it in the demo's state directory; `--no-classifier` runs without one (faces stay "unknown").
3. Runs `facetrack-agent run` on data/video/hamilton_clip.mp4 with an annotated video output.
4. Prints every event a separate MQTT subscriber receives, one line each, then a summary.
With [enrolment] on, the faces of tracks that end unknown are also published on the demo device's
faces topic (set FACETRACK_ENROLMENT__ENABLED=false to keep them off).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VIDEO = "data/video/hamilton_clip.mp4"
DEMO_DEVICE = "demo"


def demo_people(assets_dir: Path) -> dict[str, list[Path]]:
    """Enrolment photos: the three reference photos plus the knn training folders."""
    faces = assets_dir / "data" / "faces"
    refs = faces / "refs"
    knn = faces / "knn" / "train"
    people: dict[str, list[Path]] = {
        "lin-manuel-miranda": [refs / "lin-manuel-miranda.png"],
        "alex-lacamoire": [refs / "alex-lacamoire.png"],
        "obama": [refs / "obama_small.jpg"],
    }
    if knn.is_dir():
        for folder in sorted(p for p in knn.iterdir() if p.is_dir()):
            label = folder.name.replace("_", "-")
            people.setdefault(label, []).extend(sorted(p for p in folder.iterdir() if p.is_file()))
    return {label: [p for p in paths if p.is_file()] for label, paths in people.items()}


def train_bundle(
    config: Any, people: dict[str, list[Path]], key_dir: Path, payload_kind: str = "arrays"
) -> tuple[bytes, str, dict[str, Any]]:
    """Train and sign a classifier with the trainer's API; returns (bundle, public key, summary).

    The key pair is made in `key_dir` (reused when it exists); the public key is the base64 form
    that goes into `classifier.trusted_keys`.
    """
    import numpy as np

    from agent.classifier.keys import public_key_text
    from agent.runtime.key_files import load_private_key, write_key_pair
    from trainer.dataset import FaceEmbedding
    from trainer.training import train

    key_path = key_dir / "demo.key"
    if key_path.is_file():
        private_key = load_private_key(key_path)
    else:
        key_dir.mkdir(parents=True, exist_ok=True)
        _, _, private_key = write_key_pair(key_dir, "demo")
    embedding = FaceEmbedding.from_config(config, cache_dir=None, pad=0.25)
    xs: list[Any] = []
    ys: list[str] = []
    for label, paths in people.items():
        for path in paths:
            faces = embedding.faces_in(path)
            if len(faces) == 1:  # a photo with several faces does not say which one is `label`
                xs.append(faces[0])
                ys.append(label)
    result = train(np.asarray(xs, dtype=np.float64), ys)
    bundle = result.sign(
        embedder_id=embedding.embedder_id,
        dim=embedding.dim,
        private_key=private_key,
        payload_kind="skops" if payload_kind == "skops" else "arrays",
    )
    summary = {"faces": len(xs), "people": sorted(set(ys)), "threshold": round(result.threshold, 3)}
    return bundle, public_key_text(private_key.public_key()), summary


def install_bundle(config: Any, bundle: bytes) -> Path:
    from agent.classifier.bundle import parse_bundle
    from agent.runtime.model_store import ModelStore

    version = parse_bundle(bundle).manifest.model_version
    store = ModelStore(config.state_dir / "models", config.classifier.keep_versions)
    return store.install(bundle, version)


class EventCollector:
    """A plain MQTT subscriber (what a home-automation system would run), in its own thread."""

    def __init__(self, host: str, port: int, topic: str, echo: bool = True) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.events: list[dict[str, Any]] = []
        self.echo = echo
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"demo-sub-{os.getpid()}")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.connect(host, port)
        self.client.loop_start()

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        try:
            event = json.loads(message.payload)
        except ValueError:
            return
        self.events.append(event)
        if self.echo:
            print(format_event(event), flush=True)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def format_event(event: dict[str, Any]) -> str:
    kind = event.get("type", "?")
    head = f"seq={event.get('seq'):>4} frame={event.get('frame'):>4} {kind:<14}"
    if kind == "track_started":
        return f"{head} track={event['track_id']} bbox={event['bbox']}"
    if kind == "identity":
        return (
            f"{head} track={event['track_id']} label={event['label']} "
            f"confidence={event['confidence']:.2f} votes={event['votes']} "
            f"previous={event.get('previous_label')}"
        )
    if kind == "track_ended":
        return (
            f"{head} track={event['track_id']} label={event['label']} "
            f"duration={event['duration_s']:.2f}s frames={event['frames']}"
        )
    if kind == "model_applied":
        return f"{head} version={event['model_version']} labels={event['labels']}"
    return f"{head} {json.dumps(event)}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agent.devtools.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--video", default=None, help=f"input video [assets/{DEFAULT_VIDEO}]")
    parser.add_argument(
        "--output", default="out/demo_annotated.mp4", help="annotated video [out/demo_annotated.mp4]"
    )
    parser.add_argument("--port", type=int, default=1883, help="broker port to use or start [1883]")
    parser.add_argument("--state-dir", default="out/demo-state", help="demo outbox and model store")
    parser.add_argument("--no-classifier", action="store_true", help="run without a trained classifier")
    parser.add_argument("--max-frames", type=int, default=None)
    args = parser.parse_args(argv)

    from agent.config import ConfigError, load_config
    from agent.devtools.mosquitto import MosquittoBroker, wait_for_port

    try:
        config = load_config(None, device_id=DEMO_DEVICE, state_dir=Path(args.state_dir))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    video = Path(args.video) if args.video else config.resolve_asset(DEFAULT_VIDEO)
    if not video.is_file():
        print(f"demo: {video} is missing: run `make setup` (facetrack-agent assets fetch)", file=sys.stderr)
        return 2
    state_dir = Path(args.state_dir)
    shutil.rmtree(state_dir, ignore_errors=True)  # a fresh outbox: seq starts at 1 for the demo
    state_dir.mkdir(parents=True, exist_ok=True)

    broker: MosquittoBroker | None = None
    host, port = "127.0.0.1", args.port
    if wait_for_port(host, port, 0.5):
        print(f"demo: using the MQTT broker already listening on {host}:{port}")
    else:
        broker = MosquittoBroker(port=port)
        broker.start()
        print(f"demo: started a private mosquitto on {host}:{port}")

    env = dict(os.environ)
    # The demo shows the whole loop: faces of people it cannot name go to <prefix>/demo/faces for
    # `facetrack-trainer collect` (docs/enrolment.md). Off by default everywhere else.
    env.setdefault("FACETRACK_ENROLMENT__ENABLED", "true")
    extra: list[str] = []
    try:
        if not args.no_classifier:
            t0 = time.monotonic()
            bundle, public_key, summary = train_bundle(
                config, demo_people(config.assets_dir), state_dir / "keys"
            )
            install_bundle(config, bundle)
            env["FACETRACK_CLASSIFIER__TRUSTED_KEYS"] = json.dumps([public_key])
            print(
                f"demo: trained a classifier on {summary['faces']} faces of {len(summary['people'])} people "
                f"({', '.join(summary['people'])}) in {time.monotonic() - t0:.1f}s"
            )
        else:
            print("demo: no classifier: faces stay 'unknown', tracks still flow")
        collector = EventCollector(host, port, f"{config.mqtt.topic_prefix}/{DEMO_DEVICE}/events")
        time.sleep(0.3)
        if args.max_frames:
            extra += ["--max-frames", str(args.max_frames)]
        command = [
            sys.executable, "-m", "agent", "run",
            "--input", str(video),
            "--output", args.output,
            "--broker", f"{host}:{port}",
            "--device-id", DEMO_DEVICE,
            "--state-dir", str(state_dir),
            "--log-level", "warning",
            *extra,
        ]  # fmt: skip
        print("demo: " + " ".join(command[2:]))
        print(f"demo: events received by a subscriber on {config.mqtt.topic_prefix}/{DEMO_DEVICE}/events:")
        t0 = time.monotonic()
        code = subprocess.call(command, env=env, cwd=Path.cwd())
        elapsed = time.monotonic() - t0
        time.sleep(0.5)
        collector.close()
        events = collector.events
        counts = Counter(e.get("type") for e in events)
        seqs = [int(e["seq"]) for e in events]
        names = sorted(
            {e["label"] for e in events if e.get("type") == "identity" and e["label"] != "unknown"}
        )
        print()
        print(f"demo: agent exit code {code} after {elapsed:.1f}s")
        print(f"demo: {len(events)} events: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        contiguous = seqs == list(range(1, len(seqs) + 1))
        print(f"demo: seq 1..{max(seqs) if seqs else 0} {'contiguous' if contiguous else 'NOT contiguous'}")
        print(f"demo: identities seen: {', '.join(names) if names else 'none'}")
        print(f"demo: annotated video: {args.output}")
        if env["FACETRACK_ENROLMENT__ENABLED"] == "true":
            print(
                f"demo: faces of unknown people went to {config.mqtt.topic_prefix}/{DEMO_DEVICE}/faces "
                "([enrolment]); to name them: docs/enrolment.md"
            )
        return code
    finally:
        if broker is not None:
            broker.close()


if __name__ == "__main__":
    sys.exit(main())
