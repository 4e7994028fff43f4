"""End to end: the real `facetrack-agent run` process, real models, real video, a real mosquitto and a
real MQTT subscriber. Nothing is mocked.

A classifier is trained once per module with the trainer's API from data/faces/refs (Lin-Manuel
Miranda, Alex Lacamoire, Obama) plus the knn training folders, signed with a throw-away key and
installed into each agent's state directory; the agent trusts that key through the environment.

Nothing here depends on how fast a frame is processed (docs/testing.md): runs that must outlast an
action play the clip with `--loop` and are stopped with a signal once the action is confirmed, and
the test waits for the agent's retained `stopped` (published after its last event) instead of
sleeping before it reads what arrived. Timeouts are hang guards only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from paho.mqtt import client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.classifier.bundle import parse_bundle
from agent.config import load_config
from agent.devtools.demo import demo_people, install_bundle, train_bundle
from agent.devtools.mosquitto import MosquittoBroker
from agent.events.schema import parse_event

REPO_ROOT = Path(__file__).resolve().parent.parent
DEVICE = "e2e"
LMM = "lin-manuel-miranda"
ALEX = "alex-lacamoire"
# Hang guard for anything that waits on the agent (model loading and inference on one busy core).
HANG_S = 300.0


@pytest.fixture(scope="module")
def classifier(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str]:
    config = load_config(None, assets_dir=assets_dir)
    bundle, public_key, summary = train_bundle(
        config, demo_people(assets_dir), tmp_path_factory.mktemp("keys")
    )
    assert LMM in summary["people"] and len(summary["people"]) >= 4
    return bundle, public_key


class Subscriber:
    """Collects payloads per topic. `persistent` keeps a broker-side session (QoS 1 queue) across
    its own disconnects and broker restarts (the broker must run with persistence)."""

    def __init__(self, broker: MosquittoBroker, topics: list[str], persistent: bool = False) -> None:
        self.messages: dict[str, list[bytes]] = {}
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"e2e-sub-{os.getpid()}-{time.monotonic_ns()}",
            clean_session=not persistent,
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.topics = topics

        def on_connect(client: mqtt.Client, *_: Any) -> None:
            self.subscribed.clear()
            client.subscribe([(topic, 1) for topic in topics])
            self.connected.set()

        def on_subscribe(*_: Any) -> None:
            self.subscribed.set()

        def on_disconnect(*_: Any) -> None:
            self.connected.clear()

        def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
            with self.lock:
                self.messages.setdefault(message.topic, []).append(bytes(message.payload))

        self.client.on_connect = on_connect
        self.client.on_disconnect = on_disconnect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self.subscribed.wait(60), "subscriber could not connect and subscribe"

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            raw = list(self.messages.get(f"facetrack/{DEVICE}/events", []))
        return [json.loads(p) for p in raw]

    def last(self, leaf: str) -> bytes | None:
        with self.lock:
            values = self.messages.get(f"facetrack/{DEVICE}/{leaf}", [])
            return values[-1] if values else None

    def wait_for(self, predicate: Any, timeout: float = HANG_S) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.events()):
                return True
            time.sleep(0.05)
        return False

    def wait_stopped(self) -> None:
        """Wait for the agent's retained `stopped`: it publishes it last, after its final status,
        on the same connection as its events, so every event has arrived once it has."""
        deadline = time.monotonic() + HANG_S
        while self.last("availability") != b"stopped":
            assert time.monotonic() < deadline, "the agent's `stopped` never arrived"
            time.sleep(0.05)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _persistent_broker(tmp_path: Path) -> MosquittoBroker:
    store = tmp_path / "mosquitto-db"
    store.mkdir()
    # Later lines override the generated `persistence false`: sessions and their queued QoS 1
    # messages survive a broker restart, so the subscriber misses nothing while it reconnects.
    # `user`: when the tests run as root, mosquitto would otherwise drop to a user that cannot
    # write the pytest temp dir (it is ignored when not root).
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "mosquitto")
    return MosquittoBroker(extra_config=f"persistence true\npersistence_location {store}/\nuser {user}\n")


def _agent(
    tmp_path: Path,
    broker: MosquittoBroker,
    args: list[str],
    classifier: tuple[bytes, str] | None = None,
    **env_overrides: str,
) -> subprocess.Popen[str]:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.update(
        FACETRACK_MQTT__RECONNECT_MIN_S="0.2",
        FACETRACK_MQTT__RECONNECT_MAX_S="0.5",
        FACETRACK_STATUS__INTERVAL_S="1",
        **env_overrides,
    )
    if classifier is not None:
        bundle, public_key = classifier
        config = load_config(None, state_dir=state)
        install_bundle(config, bundle)
        env["FACETRACK_CLASSIFIER__TRUSTED_KEYS"] = json.dumps([public_key])
    command = [
        sys.executable, "-m", "agent", "run",
        "--broker", f"{broker.host}:{broker.port}",
        "--device-id", DEVICE,
        "--state-dir", str(state),
        "--log-format", "json",
        *args,
    ]  # fmt: skip
    return subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(process: subprocess.Popen[str], timeout: float = HANG_S) -> tuple[int, str]:
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        pytest.fail(f"agent did not finish in {timeout}s: {err[-2000:]}")
    return process.returncode, err


def _assert_contract(events: list[dict[str, Any]]) -> None:
    for event in events:
        parsed = parse_event(json.dumps(event))
        assert parsed.device == DEVICE


def _first_arrivals(events: list[dict[str, Any]]) -> list[int]:
    seen: set[int] = set()
    order: list[int] = []
    for event in events:
        if event["seq"] not in seen:
            seen.add(event["seq"])
            order.append(event["seq"])
    return order


def _wait_for_queued(outbox: Path, at_least: int, since: datetime, timeout: float = HANG_S) -> int:
    """Wait until a running agent's outbox holds `at_least` events made after `since` (read-only;
    SQLite WAL allows a concurrent reader); returns how many it holds."""
    deadline = time.monotonic() + timeout
    rows = 0
    while time.monotonic() < deadline:
        if outbox.exists():
            try:
                with contextlib.closing(sqlite3.connect(f"file:{outbox}?mode=ro", uri=True)) as db:
                    payloads = [row[0] for row in db.execute("SELECT payload FROM events")]
                rows = sum(datetime.fromisoformat(json.loads(p)["ts"]) > since for p in payloads)
            except sqlite3.Error:
                rows = 0
            if rows >= at_least:
                return rows
        time.sleep(0.1)
    return rows


def _stopped_by(err: str) -> str:
    """The reason in the agent's `agent_stopped` JSON log line."""
    for line in err.splitlines():
        if line.startswith("{") and '"agent_stopped"' in line:
            return str(json.loads(line)["reason"])
    raise AssertionError(f"no agent_stopped line: {err[-2000:]}")


@pytest.fixture
def hamilton(asset: Any) -> Path:
    path: Path = asset("data/video/hamilton_clip.mp4")
    return path


# ---------------------------------------------------------------------------------------------


def test_hamilton_identity_end_to_end(
    tmp_path: Path, mosquitto: MosquittoBroker, classifier: tuple[bytes, str], hamilton: Path
) -> None:
    sub = Subscriber(mosquitto, [f"facetrack/{DEVICE}/#"])
    output = tmp_path / "annotated.mp4"
    frames = 150  # he is on screen from the first frame; the rest of the clip adds nothing here
    agent = _agent(
        tmp_path, mosquitto, ["--input", str(hamilton), "--output", str(output), "--max-frames", str(frames)],
        classifier,
    )  # fmt: skip
    code, err = _finish(agent)
    assert code == 0, err[-2000:]
    sub.wait_stopped()
    sub.close()
    events = sub.events()
    _assert_contract(events)
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(events) + 1)), "seq must be contiguous from 1, each once"

    named = [e for e in events if e["type"] == "identity" and e["label"] == LMM]
    assert named, f"no identity {LMM}: {[e for e in events if e['type'] == 'identity']}"
    threshold = parse_bundle(classifier[0]).manifest.threshold
    assert all(e["votes"] >= 3 and e["confidence"] >= threshold for e in named)
    # The clip cuts to the audience at frame 20 and back to him at 82 (docs/scene-cuts.md): the cut
    # ends his first track, and he is named again on a new one; no two live tracks carry the name.
    holders = [e for e in events if e["type"] == "track_ended" and e["label"] == LMM]
    assert len(holders) == 2 and holders[0]["frame"] == 20 and holders[1]["frames"] > 20, holders
    for holder in holders:
        track = holder["track_id"]
        (started,) = [e for e in events if e["type"] == "track_started" and e["track_id"] == track]
        claim = [e for e in named if e["track_id"] == track][-1]
        assert started["seq"] < claim["seq"] < holder["seq"]
        assert datetime.fromisoformat(holder["last_seen"]) >= datetime.fromisoformat(holder["first_seen"])
    labels: dict[int, str] = {}
    for e in events:
        if e["type"] == "identity":
            labels[e["track_id"]] = e["label"]
        elif e["type"] == "track_ended":
            labels.pop(e["track_id"], None)
        assert sum(label == LMM for label in labels.values()) <= 1, (
            f"two live tracks named {LMM} at seq {e['seq']}"
        )
    # The pianist on the left is Alex Lacamoire (ageitgey/face_recognition's
    # examples/facerec_from_video_file.py names both in this clip; his face is about 31 px tall, found
    # since faces are looked for in person crops, docs/detection.md). Nobody else is enrolled.
    assert {e["label"] for e in events if e["type"] == "identity"} <= {LMM, ALEX, "unknown"}
    his = {h["track_id"] for h in holders}
    assert all(e["track_id"] not in his for e in events if e["type"] == "identity" and e["label"] == ALEX)
    # Every started track is ended (the input ended) and nothing ends twice.
    assert sorted(e["track_id"] for e in events if e["type"] == "track_started") == sorted(
        e["track_id"] for e in events if e["type"] == "track_ended"
    )

    assert sub.last("availability") == b"stopped"
    status = json.loads(sub.last("status") or b"{}")
    assert status["frames_processed"] == frames and status["backend"] == "cpu"
    assert status["model_version"] and status["outbox_depth"] == 0 and status["events_dropped"] == 0
    assert {"person_ms", "track_ms"} <= set(status["latency_ms"])

    capture = cv2.VideoCapture(str(output))
    written = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, image = capture.read()
    capture.release()
    assert ok and written == frames and image.shape == (360, 640, 3)


def test_broker_outage_mid_run_loses_nothing(
    tmp_path: Path, classifier: tuple[bytes, str], hamilton: Path
) -> None:
    """The broker goes away mid-run and comes back: every event made meanwhile is queued on disk
    and delivered once, in order. The clip loops, so the run outlasts the outage on any machine;
    the outage lasts until an event made during it is on disk, and the agent is stopped once an
    event made after the broker came back has arrived."""
    broker = _persistent_broker(tmp_path)
    broker.start()
    try:
        sub = Subscriber(broker, [f"facetrack/{DEVICE}/#"], persistent=True)
        agent = _agent(tmp_path, broker, ["--input", str(hamilton), "--loop"], classifier)
        assert sub.wait_for(lambda ev: len(ev) >= 2), "no events before the outage"
        outage_start = datetime.now().astimezone()
        broker.stop()
        outbox = tmp_path / "state" / "outbox.sqlite3"
        assert _wait_for_queued(outbox, at_least=1, since=outage_start) >= 1, "nothing queued in the outage"
        outage_end = datetime.now().astimezone()
        broker.start()
        assert sub.wait_for(lambda ev: any(datetime.fromisoformat(e["ts"]) > outage_end for e in ev)), (
            "no event made after the outage arrived"
        )
        assert agent.poll() is None, "a looped clip never ends on its own"
        agent.send_signal(signal.SIGTERM)
        code, err = _finish(agent)
        assert code == 0, err[-2000:]
        sub.wait_stopped()
        sub.close()
    finally:
        broker.close()
    events = sub.events()
    _assert_contract(events)
    last = max(e["seq"] for e in events)
    assert _first_arrivals(events) == list(range(1, last + 1)), "every seq 1..last, first arrivals in order"
    # The outage was real: events were created while the broker was down and still arrived.
    during = [e for e in events if outage_start < datetime.fromisoformat(e["ts"]) < outage_end]
    assert during, "no event was produced during the outage; the test proved nothing"
    assert "outbox_not_empty" not in err
    assert _stopped_by(err) == "SIGTERM"


def test_broker_unreachable_at_start_then_delivers(
    tmp_path: Path, classifier: tuple[bytes, str], hamilton: Path
) -> None:
    broker = _persistent_broker(tmp_path)
    broker.start()
    try:
        sub = Subscriber(broker, [f"facetrack/{DEVICE}/#"], persistent=True)
        broker.stop()  # the subscriber's session (and the port) survive; the agent finds no broker
        began = datetime.now().astimezone()
        agent = _agent(tmp_path, broker, ["--input", str(hamilton), "--loop"], classifier)
        queued = _wait_for_queued(tmp_path / "state" / "outbox.sqlite3", at_least=2, since=began)
        assert queued >= 2, "events must queue on disk while the broker is unreachable"
        assert agent.poll() is None, "the agent must keep running without a broker"
        broker_up = datetime.now().astimezone()
        broker.start()
        assert sub.wait_for(lambda ev: any(datetime.fromisoformat(e["ts"]) > broker_up for e in ev)), (
            "no event made after the broker came up arrived"
        )
        agent.send_signal(signal.SIGTERM)
        code, err = _finish(agent)
        assert code == 0, err[-2000:]
        sub.wait_stopped()
        sub.close()
    finally:
        broker.close()
    events = sub.events()
    _assert_contract(events)
    last = max(e["seq"] for e in events)
    assert _first_arrivals(events) == list(range(1, last + 1))
    # Events made while no broker existed were queued and delivered once it came up.
    assert sum(datetime.fromisoformat(e["ts"]) < broker_up for e in events) >= queued
    assert "outbox_not_empty" not in err


def test_no_model_then_garbage_then_hot_reload_then_sigterm(
    tmp_path: Path, mosquitto: MosquittoBroker, classifier: tuple[bytes, str], hamilton: Path
) -> None:
    """Starts with no classifier (tracks flow, nobody is named), shrugs off malformed model
    messages, hot-loads a signed model without stopping the video, names Lin-Manuel Miranda,
    and stops cleanly on SIGTERM. The clip loops, so it is still playing whenever each step is
    confirmed, however fast or slow the machine."""
    bundle, public_key = classifier
    sub = Subscriber(mosquitto, [f"facetrack/{DEVICE}/#"])
    agent = _agent(
        tmp_path,
        mosquitto,
        ["--input", str(hamilton), "--loop"],
        FACETRACK_CLASSIFIER__TRUSTED_KEYS=json.dumps([public_key]),
    )
    assert sub.wait_for(lambda ev: any(e["type"] == "track_started" for e in ev))
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="e2e-publisher")
    publisher.connect(mosquitto.host, mosquitto.port)
    publisher.loop_start()
    garbage = [
        (f"facetrack/{DEVICE}/model", np.random.default_rng(1).bytes(4096)),
        (f"facetrack/{DEVICE}/model", b'{"model": "not a bundle"}'),
        ("facetrack/all/model", b"\x80\x04\x95 pickle-looking"),
    ]
    for topic, payload in garbage:
        publisher.publish(topic, payload, qos=1).wait_for_publish(HANG_S)
    assert sub.wait_for(lambda ev: sum(e["type"] == "model_rejected" for e in ev) >= len(garbage)), (
        "each malformed model message must be answered with model_rejected"
    )
    assert agent.poll() is None, "garbage on a model topic must not stop the agent"
    publisher.publish(f"facetrack/{DEVICE}/model", bundle, qos=1).wait_for_publish(HANG_S)
    publisher.loop_stop()
    publisher.disconnect()
    assert sub.wait_for(lambda ev: any(e["type"] == "model_applied" for e in ev))
    named = sub.wait_for(lambda ev: any(e["type"] == "identity" and e["label"] == LMM for e in ev))
    assert agent.poll() is None, "the looped clip is still playing"
    agent.send_signal(signal.SIGTERM)
    code, err = _finish(agent)
    assert code == 0, err[-2000:]
    sub.wait_stopped()
    sub.close()
    events = sub.events()
    _assert_contract(events)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert sub.last("availability") == b"stopped"
    rejected = [e for e in events if e["type"] == "model_rejected"]
    assert len(rejected) == len(garbage) and all(e["running_version"] is None for e in rejected)
    (applied,) = [e for e in events if e["type"] == "model_applied"]
    # How fast it applies is measured in bench/reload.py; here: after every refusal, in order.
    assert LMM in applied["labels"] and applied["seq"] > max(e["seq"] for e in rejected)
    # Before the model arrived nobody could be named; after it, the person on stage was.
    first_identity = min((e["seq"] for e in events if e["type"] == "identity"), default=None)
    assert named and first_identity is not None and first_identity > applied["seq"]
    # Stopping ends every live track, so subscribers are not left with dangling tracks.
    started = {e["track_id"] for e in events if e["type"] == "track_started"}
    assert started == {e["track_id"] for e in events if e["type"] == "track_ended"}
    # The run was ended by the signal, never by the clip.
    assert _stopped_by(err) == "SIGTERM"


# ---------------------------------------------------------------------------------------------
# bad input: one clear line on stderr, exit code 2, no traceback


def _run_fast(tmp_path: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "run", "--state-dir", str(tmp_path / "state"), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=HANG_S,
    )


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_unreadable_video_path(tmp_path: Path) -> None:
    line = _one_line_error(_run_fast(tmp_path, ["--input", str(tmp_path / "missing.mp4")]))
    assert "missing.mp4" in line and "does not exist" in line


def test_corrupt_video_bytes(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(7).bytes(300_000))
    line = _one_line_error(_run_fast(tmp_path, ["--input", str(corrupt)]))
    assert "corrupt.mp4" in line


def test_unknown_config_key(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[pipeline]\nframe_strid = 2\n")
    line = _one_line_error(_run_fast(tmp_path, ["--config", str(config)]))
    assert "frame_strid" in line


def test_unwritable_output(tmp_path: Path, hamilton: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    line = _one_line_error(
        _run_fast(tmp_path, ["--input", str(hamilton), "--output", str(blocker / "x.mp4")])
    )
    assert "output error" in line


def test_state_dir_that_cannot_be_created(tmp_path: Path, hamilton: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = subprocess.run(
        [sys.executable, "-m", "agent", "run", "--input", str(hamilton), "--state-dir", str(blocker / "s")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=HANG_S,
    )
    line = _one_line_error(result)
    assert str(blocker / "s") in line and "cannot be created" in line


def test_video_damaged_mid_way_is_an_error_after_what_it_decoded(tmp_path: Path, assets_dir: Path) -> None:
    """A file that decodes for a while and then breaks off: the frames before the damage are
    processed and their events kept, and the run ends with exit code 1 naming the damage instead
    of passing for a clean end of input."""
    data = bytearray((assets_dir / "data/video/vtest.avi").read_bytes())
    damaged = data[: len(data) // 10]
    damaged[len(damaged) // 2 :] = bytes(len(damaged) - len(damaged) // 2)
    video = tmp_path / "damaged.avi"
    video.write_bytes(bytes(damaged))
    closed_port = MosquittoBroker().port  # a free port nobody listens on: events stay queued
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "run",
            "--input",
            str(video),
            "--state-dir",
            str(tmp_path / "state"),
            "--broker",
            f"127.0.0.1:{closed_port}",
            "--flush-timeout",
            "0.2",
            "--log-format",
            "json",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=HANG_S,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    logs = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    stopped = next(entry for entry in logs if entry["event"] == "agent_stopped")
    assert "truncated or corrupt" in stopped["reason"] and "of 795" in stopped["reason"]
    assert 0 < stopped["frames"] < 795
    with sqlite3.connect(tmp_path / "state" / "outbox.sqlite3") as db:
        queued = [json.loads(row[0]) for row in db.execute("SELECT payload FROM events ORDER BY seq")]
    assert queued and [e["seq"] for e in queued] == list(range(1, len(queued) + 1))
    assert {e["type"] for e in queued} >= {"track_started", "track_ended"}


def test_sigint_stops_cleanly_and_keeps_every_event(
    tmp_path: Path, mosquitto: MosquittoBroker, hamilton: Path
) -> None:
    """Ctrl-C (SIGINT) is a clean stop like SIGTERM: exit 0, every started track ended, seq
    contiguous from 1, availability `stopped`."""
    sub = Subscriber(mosquitto, [f"facetrack/{DEVICE}/#"])
    agent = _agent(tmp_path, mosquitto, ["--input", str(hamilton), "--loop"])
    assert sub.wait_for(lambda ev: any(e["type"] == "track_started" for e in ev))
    agent.send_signal(signal.SIGINT)
    code, err = _finish(agent)
    assert code == 0, err[-2000:]
    sub.wait_stopped()
    sub.close()
    assert _stopped_by(err) == "SIGINT"
    events = sub.events()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    started = {e["track_id"] for e in events if e["type"] == "track_started"}
    assert started and started == {e["track_id"] for e in events if e["type"] == "track_ended"}
    assert sub.last("availability") == b"stopped"


def test_json_logs_are_json_only_even_what_the_tflite_runtime_prints(tmp_path: Path, hamilton: Path) -> None:
    """LiteRT's C++ code writes to stderr on its own ("INFO: Created TensorFlow Lite XNNPACK
    delegate"): with --log-format json every stderr line must still be a JSON object, and what the
    runtime said arrives as a structured record."""
    closed_port = MosquittoBroker().port
    result = subprocess.run(
        [
            *[sys.executable, "-m", "agent", "run", "--input", str(hamilton), "--max-frames", "5"],
            *["--state-dir", str(tmp_path / "state"), "--broker", f"127.0.0.1:{closed_port}"],
            *["--flush-timeout", "0.1", "--log-format", "json", "--log-level", "debug"],
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=HANG_S,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # raises on any plain-text line
    runtime = [r for r in records if r["event"] == "tflite_runtime_message"]
    assert runtime and all(r["message"].startswith("INFO:") for r in runtime)
