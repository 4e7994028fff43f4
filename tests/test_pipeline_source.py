"""Frame sources. Files are real (the hamilton clip, random bytes); the camera is a FAKE capture
object, because no camera device exists on this machine: it produces numbered frames, can fail on
cue, and counts how often it was opened, which is all the live-source logic depends on."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.runtime.source import FrameSource, SourceError, classify_input


def test_classify_input() -> None:
    assert classify_input("0") == ("camera", 0)
    assert classify_input("rtsp://cam.local/stream") == ("stream", "rtsp://cam.local/stream")
    assert classify_input("HTTP://x/y.mjpg")[0] == "stream"
    assert classify_input("clip.mp4") == ("file", "clip.mp4")


def test_file_delivers_every_frame_in_order(asset: Any) -> None:
    source = FrameSource(str(asset("data/video/hamilton_clip.mp4")), queue_size=2)
    source.start()
    indices = []
    while (frame := source.get(timeout=10)) is not None:
        indices.append(frame.index)
    source.stop()
    assert indices == list(range(275))
    assert source.size == (640, 360) and abs(source.fps - 29.97) < 0.01
    assert source.stats.frames_skipped == 0
    assert source.get() is None  # stays ended


def test_file_stride(asset: Any) -> None:
    source = FrameSource(str(asset("data/video/hamilton_clip.mp4")), frame_stride=10)
    source.start()
    indices = []
    while (frame := source.get(timeout=10)) is not None:
        indices.append(frame.index)
    source.stop()
    assert indices == list(range(0, 275, 10))


def test_missing_and_corrupt_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        FrameSource(str(tmp_path / "nope.mp4")).start()
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    with pytest.raises(SourceError) as info:
        FrameSource(str(corrupt)).start()
    assert "\n" not in str(info.value) and "corrupt.mp4" in str(info.value)


class FakeCamera:
    """Stands in for cv2.VideoCapture(0): there is no camera here (see module docstring)."""

    def __init__(self, world: FakeWorld) -> None:
        self.world = world
        world.opens += 1
        self.opened = world.opens > world.fail_opens

    def isOpened(self) -> bool:
        return self.opened

    def read(self) -> tuple[bool, Any]:
        with self.world.lock:
            if self.world.drop_after is not None and self.world.produced >= self.world.drop_after:
                self.world.drop_after = None
                return False, None
            self.world.produced += 1
            n = self.world.produced
        time.sleep(0.002)  # a fast camera
        return True, np.full((4, 6, 3), n % 256, dtype=np.uint8)

    def grab(self) -> bool:
        return True

    def get(self, prop_id: int) -> float:
        return 30.0

    def release(self) -> None:
        pass


class FakeWorld:
    def __init__(self, fail_opens: int = 0, drop_after: int | None = None) -> None:
        self.lock = threading.Lock()
        self.opens = 0
        self.fail_opens = fail_opens
        self.drop_after = drop_after
        self.produced = 0


def test_live_source_keeps_newest_frame_and_counts_skips() -> None:
    world = FakeWorld()
    source = FrameSource("0", capture_factory=lambda _t: FakeCamera(world))
    source.start()
    first = source.get(timeout=5)
    assert first is not None
    time.sleep(0.2)  # a slow pipeline: the camera keeps producing meanwhile
    newest = source.get(timeout=5)
    source.stop()
    assert newest is not None
    assert newest.index - first.index > 10
    # Everything the camera produced in between was dropped and counted, not queued.
    assert source.stats.frames_skipped >= newest.index - first.index - 2


def test_live_source_reconnects_with_backoff() -> None:
    world = FakeWorld(fail_opens=2, drop_after=5)
    source = FrameSource(
        "rtsp://camera.invalid/stream",
        capture_factory=lambda _t: FakeCamera(world),
        reconnect_min_s=0.01,
        reconnect_max_s=0.05,
    )
    source.start()
    got = []
    deadline = time.monotonic() + 5
    while len(got) < 12 and time.monotonic() < deadline:
        frame = source.get(timeout=5)
        assert frame is not None
        got.append(frame.index)
    source.stop()
    # Two failed opens, one open that dropped after 5 frames, then a good one.
    assert world.opens == 4
    assert source.stats.reconnects >= 1 and source.stats.connected
    assert got == sorted(got) and len(got) == 12
