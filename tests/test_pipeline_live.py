"""The agent on a live source: newest frame only, skipped frames reported in the retained status.

The camera is a FAKE capture object (there is no camera device on this machine): it replays the
real hamilton_clip.mp4 frames at 200 frames per second, faster than the pipeline can go. Models,
tracker, outbox and mosquitto are all real.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from paho.mqtt import client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.config import load_config
from agent.devtools.mosquitto import MosquittoBroker
from agent.runtime.app import AgentApp


class ReplayCamera:
    """Stands in for cv2.VideoCapture(0); see the module docstring."""

    def __init__(self, frames: list[np.ndarray[Any, Any]], fps: float) -> None:
        self.frames = frames
        self.period = 1.0 / fps
        self.index = 0

    def isOpened(self) -> bool:
        return True

    def read(self) -> tuple[bool, Any]:
        time.sleep(self.period)
        frame = self.frames[self.index % len(self.frames)]
        self.index += 1
        return True, frame.copy()

    def grab(self) -> bool:
        return True

    def get(self, prop_id: int) -> float:
        return 1.0 / self.period if prop_id == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        pass


@pytest.fixture(scope="module")
def hamilton_frames(assets_dir: Path) -> list[np.ndarray[Any, Any]]:
    capture = cv2.VideoCapture(str(assets_dir / "data/video/hamilton_clip.mp4"))
    frames = []
    for _ in range(120):
        ok, image = capture.read()
        assert ok
        frames.append(image)
    capture.release()
    return frames


async def test_live_source_skips_to_newest_and_reports_it(
    tmp_path: Path, mosquitto: MosquittoBroker, assets_dir: Path, hamilton_frames: list[np.ndarray[Any, Any]]
) -> None:
    statuses: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with lock:
            (statuses if message.topic.endswith("/status") else events).append(json.loads(message.payload))

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="live-sub")
    sub.on_message = on_message
    sub.connect(mosquitto.host, mosquitto.port)
    sub.subscribe([("facetrack/live/status", 1), ("facetrack/live/events", 1)])
    sub.loop_start()
    config = load_config(
        None,
        device_id="live",
        assets_dir=assets_dir,
        state_dir=tmp_path / "state",
        mqtt={"port": mosquitto.port},
        pipeline={"input": "0"},
        status={"interval_s": 0.5},
    )
    app = AgentApp(
        config,
        max_frames=40,
        capture_factory=lambda _target: ReplayCamera(hamilton_frames, fps=200.0),
        install_signal_handlers=False,
    )
    code = await app.run()
    await asyncio.sleep(0.3)
    sub.loop_stop()
    sub.disconnect()
    assert code == 0
    assert app.summary.frames == 40
    # 40 frames at ~20 fps take ~2 s, in which the camera produced ~400: most were dropped, counted.
    assert app.summary.frames_skipped > 40
    final = statuses[-1]
    assert final["frames_skipped"] == app.summary.frames_skipped
    assert final["source"]["kind"] == "camera" and final["source"]["connected"] is True
    assert final["frames_processed"] == 40 and final["fps"] > 0
    # The tracker still follows people across the gaps the skipping leaves.
    assert any(e["type"] == "track_started" for e in events)
