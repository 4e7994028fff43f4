"""Issue 12 items 1-2: on a video file, track times are video time; after a normal end the retained
status says "stopped". The real `facetrack-agent run` process on real video with a real mosquitto.

No classifier is installed (faces stay unknown): these tests are about time and state, not names.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt import client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.devtools.mosquitto import MosquittoBroker
from agent.events.schema import parse_event

REPO_ROOT = Path(__file__).resolve().parent.parent
HAMILTON_FPS = 29.97


class Collector:
    """A plain MQTT subscriber: every payload per topic, in arrival order."""

    def __init__(self, broker: MosquittoBroker, topic: str) -> None:
        self.messages: dict[str, list[bytes]] = {}
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"timing-{time.monotonic_ns()}")
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert subscribed.wait(5), "subscriber got no SUBACK"

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.setdefault(message.topic, []).append(bytes(message.payload))

    def get(self, topic: str) -> list[bytes]:
        with self.lock:
            return list(self.messages.get(topic, []))

    def wait(self, topic: str, count: int, timeout: float = 10.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.get(topic)) < count:
            time.sleep(0.02)
        return self.get(topic)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _run_agent(
    broker: MosquittoBroker, video: Path, state_dir: Path, device: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "agent", "run",
        "--input", str(video),
        "--broker", f"{broker.host}:{broker.port}",
        "--device-id", device,
        "--state-dir", str(state_dir),
        "--log-level", "warning",
        *extra,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)


def test_file_track_durations_are_video_time(mosquitto: MosquittoBroker, asset: Any, tmp_path: Path) -> None:
    """hamilton_clip.mp4 is 29.97 fps: each track_ended's duration is the span of video between
    the first and last frame the track was seen on, not how long the machine took to process them."""
    video = asset("data/video/hamilton_clip.mp4")
    events_topic = "facetrack/clock/events"
    sub = Collector(mosquitto, events_topic)
    try:
        done = _run_agent(mosquitto, video, tmp_path / "state", "clock")
        assert done.returncode == 0, done.stderr
        # The agent exits once the broker took every event; the last ones may still be on their way
        # to us. Every track_started has its track_ended, so wait until the counts agree.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            kinds = [json.loads(p)["type"] for p in sub.get(events_topic)]
            if kinds.count("track_started") == kinds.count("track_ended") > 0:
                break
            time.sleep(0.05)
        events = [parse_event(p) for p in sub.get(events_topic)]
    finally:
        sub.close()
    ended = [e for e in events if e.type == "track_ended"]
    assert ended, "no track ended"
    for event in events:
        if event.type in ("track_started", "identity", "track_ended"):
            # Every frame event says where its frame sits in the file: frame index / fps.
            assert event.media_time == pytest.approx(event.frame / HAMILTON_FPS, abs=1e-3)
    for event in ended:
        assert event.first_media_time is not None and event.last_media_time is not None
        first_frame = event.first_media_time * HAMILTON_FPS
        last_frame = event.last_media_time * HAMILTON_FPS
        # Positions fall on frames of a 29.97 fps video (media times are rounded to the millisecond).
        assert first_frame == pytest.approx(round(first_frame), abs=0.02)
        assert last_frame == pytest.approx(round(last_frame), abs=0.02)
        spanned = round(last_frame) - round(first_frame) + 1
        # The track was matched on `frames` of the frames it spans.
        assert event.frames <= spanned
        # duration_s: video seconds from the first to the last frame seen, at the file's rate.
        assert event.duration_s == pytest.approx((spanned - 1) / HAMILTON_FPS, abs=2e-3)
        assert (event.last_seen - event.first_seen).total_seconds() == pytest.approx(
            event.duration_s, abs=1e-5
        )
    # The longest track covers most of the clip's 275 frames: seconds of video, not of processing.
    longest = max(ended, key=lambda e: e.frames)
    assert longest.frames >= 100
    assert longest.duration_s >= (longest.frames - 1) / HAMILTON_FPS - 1e-3


def _retained(broker: MosquittoBroker, topic: str) -> bytes:
    sub = Collector(broker, topic)
    try:
        payloads = sub.wait(topic, 1, timeout=5)
    finally:
        sub.close()
    assert payloads, f"nothing retained on {topic}"
    return payloads[-1]


@pytest.mark.parametrize("how", ["end of input", "max frames"])
def test_retained_status_after_a_normal_end_says_stopped(
    how: str, mosquitto: MosquittoBroker, asset: Any, tmp_path: Path
) -> None:
    video = asset("data/video/vtest.avi" if how == "max frames" else "data/video/hamilton_clip.mp4")
    extra = ("--max-frames", "8") if how == "max frames" else ("--frame-stride", "25")
    done = _run_agent(mosquitto, video, tmp_path / "state", "ending", *extra)
    assert done.returncode == 0, done.stderr
    assert _retained(mosquitto, "facetrack/ending/availability") == b"stopped"
    status = json.loads(_retained(mosquitto, "facetrack/ending/status"))
    assert status["state"] == "stopped", status
    assert status["frames_processed"] == (8 if how == "max frames" else 11)
    datetime.fromisoformat(status["ts"])
