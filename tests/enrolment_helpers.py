"""Shared by the enrolment tests: a real `facetrack-agent run` and `facetrack-trainer collect`
process, and an MQTT tap that waits on messages (never on time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from paho.mqtt import client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.devtools.mosquitto import MosquittoBroker

REPO_ROOT = Path(__file__).resolve().parent.parent
# Hang guard for the agent and the trainer on one busy core: it catches a hang, it times nothing.
HANG_S = 600.0


class Tap:
    """Collects every payload per topic on `topics` (QoS 1, clean session)."""

    def __init__(self, broker: MosquittoBroker, topics: list[str]) -> None:
        self.messages: dict[str, list[bytes]] = {}
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"tap-{os.getpid()}-{time.monotonic_ns()}"
        )

        def on_connect(client: mqtt.Client, *_: Any) -> None:
            client.subscribe([(topic, 1) for topic in topics])

        def on_subscribe(*_: Any) -> None:
            self.subscribed.set()

        def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
            with self.lock:
                self.messages.setdefault(message.topic, []).append(bytes(message.payload))

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self.subscribed.wait(60), "tap could not subscribe"

    def payloads(self, topic: str) -> list[bytes]:
        with self.lock:
            return list(self.messages.get(topic, []))

    def wait_until(self, predicate: Any, what: str) -> None:
        deadline = time.monotonic() + HANG_S
        while not predicate():
            assert time.monotonic() < deadline, f"never happened: {what}"
            time.sleep(0.05)

    def events(self, device: str) -> list[dict[str, Any]]:
        return [json.loads(p) for p in self.payloads(f"facetrack/{device}/events")]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def agent(
    broker: MosquittoBroker, device: str, state: Path, args: list[str], **env_overrides: str
) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.update(
        FACETRACK_ENROLMENT__ENABLED="true",
        FACETRACK_MQTT__RECONNECT_MIN_S="0.2",
        FACETRACK_MQTT__RECONNECT_MAX_S="0.5",
    )
    env.update(env_overrides)
    command = [
        sys.executable, "-m", "agent", "run",
        "--broker", f"{broker.host}:{broker.port}",
        "--device-id", device,
        "--state-dir", str(state),
        "--log-format", "json",
        *args,
    ]  # fmt: skip
    return subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=HANG_S)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"process did not finish in {HANG_S}s: {err[-2000:]}") from None
    return process.returncode, out, err


def log_records(text: str, event: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == event:
            out.append(record)
    return out


def trainer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainer.cli", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=HANG_S,
        check=False,
    )


def start_collect(broker: MosquittoBroker, inbox: Path) -> subprocess.Popen[str]:
    """`facetrack-trainer collect`, returned once it has subscribed (it prints its first line after
    the SUBACK)."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainer.cli",
            "collect",
            "--inbox",
            str(inbox),
            "--broker",
            f"{broker.host}:{broker.port}",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("collecting facetrack/+/faces"), line + (
        process.stderr.read() if process.poll() else ""
    )
    return process


def index_lines(inbox: Path) -> list[dict[str, Any]]:
    path = inbox / "index.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
