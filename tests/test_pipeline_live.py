"""The agent on a live source: newest frame only, skipped frames reported in the retained status.

The camera is a FAKE capture object (there is no camera device on this machine): it replays the
real hamilton_clip.mp4 frames as fast as it is read. Models, tracker, outbox and mosquitto are all
real. How many frames are skipped must not depend on how fast this machine analyses a frame, so the
pipeline's reads are gated on the camera: the agent's source hands out a frame only once the camera
has produced GAP more since the last one. That is exactly "the camera is faster than the pipeline",
on any machine; the counts below follow from it and from the source's bookkeeping.
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
from agent.pipeline.frame import SourceFrame
from agent.runtime.app import AgentApp
from agent.runtime.source import FrameSource

GAP = 4  # camera frames produced between two frames the pipeline takes, at least
FRAMES = 40


class ReplayCamera:
    """Stands in for cv2.VideoCapture(0); see the module docstring."""

    def __init__(self, frames: list[np.ndarray[Any, Any]]) -> None:
        self.frames = frames
        self.produced = 0
        self.changed = threading.Condition()

    def isOpened(self) -> bool:
        return True

    def read(self) -> tuple[bool, Any]:
        time.sleep(0.001)  # a 1000 fps camera; only to leave the CPU to the pipeline
        frame = self.frames[self.produced % len(self.frames)].copy()
        with self.changed:
            self.produced += 1
            self.changed.notify_all()
        return True, frame

    def wait_produced(self, count: int) -> int:
        with self.changed:
            assert self.changed.wait_for(lambda: self.produced >= count, timeout=300), "camera stalled"
            return self.produced

    def grab(self) -> bool:
        return True

    def get(self, prop_id: int) -> float:
        return 1000.0 if prop_id == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        pass


class GatedSource(FrameSource):
    """The real live FrameSource; each read waits until the camera produced GAP + 1 more frames
    than when the previous read returned (the + 1: the reader stores frame n before it reads
    frame n + 1, so GAP + 1 reads guarantee GAP newer frames were stored)."""

    def __init__(self, camera: ReplayCamera) -> None:
        super().__init__("0", capture_factory=lambda _target: camera)
        self.camera = camera
        self.mark = 0
        self.reads = 0

    def get(self, timeout: float | None = None) -> SourceFrame | None:
        self.camera.wait_produced(self.mark + GAP + 1)
        frame = super().get(timeout)
        self.mark = self.camera.produced
        self.reads += 1
        return frame


class GatedApp(AgentApp):
    def __init__(self, *args: Any, camera: ReplayCamera, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gated = GatedSource(camera)

    def open_source(self) -> FrameSource:
        self.gated.start()
        return self.gated


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
    stopped = threading.Event()

    def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic.endswith("/availability"):
            if message.payload == b"stopped":
                stopped.set()
        elif message.topic.endswith("/status"):
            statuses.append(json.loads(message.payload))
        else:
            events.append(json.loads(message.payload))

    subscribed = threading.Event()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="live-sub")
    sub.on_message = on_message
    sub.on_subscribe = lambda *_: subscribed.set()
    sub.connect(mosquitto.host, mosquitto.port)
    sub.subscribe([(f"facetrack/live/{leaf}", 1) for leaf in ("status", "events", "availability")])
    sub.loop_start()
    assert subscribed.wait(60)
    config = load_config(
        None,
        device_id="live",
        assets_dir=assets_dir,
        state_dir=tmp_path / "state",
        mqtt={"port": mosquitto.port},
        pipeline={"input": "0"},
        status={"interval_s": 0.5},
    )
    camera = ReplayCamera(hamilton_frames)
    app = GatedApp(config, max_frames=FRAMES, camera=camera, install_signal_handlers=False)
    code = await app.run()
    # The retained `stopped` comes after the final status on the agent's one connection.
    assert await asyncio.to_thread(stopped.wait, 300), "the agent's `stopped` never arrived"
    sub.loop_stop()
    sub.disconnect()
    assert code == 0
    assert app.summary.frames == FRAMES and app.gated.reads == FRAMES
    # Every frame the camera produced was processed, skipped (and counted), still waiting in the
    # one-frame buffer when the agent stopped, or being read when the stop came (the stop does not
    # wait for a read in progress; that frame is left uncounted): nothing else.
    produced = camera.produced
    assert produced - FRAMES - 2 <= app.summary.frames_skipped <= produced - FRAMES
    # The pipeline took a frame only after GAP + 1 new ones: at least GAP per read were skipped
    # (the first read included), less the one that may still be buffered.
    assert app.summary.frames_skipped >= FRAMES * GAP - 1
    final = statuses[-1]
    assert final["frames_skipped"] == app.summary.frames_skipped
    assert final["source"]["kind"] == "camera" and final["source"]["connected"] is True
    assert final["frames_processed"] == FRAMES and final["fps"] > 0
    # The tracker still follows people across the gaps the skipping leaves.
    assert any(e["type"] == "track_started" for e in events)
