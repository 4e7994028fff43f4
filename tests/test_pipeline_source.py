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
    while (frame := source.get(timeout=60)) is not None:
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
    while (frame := source.get(timeout=60)) is not None:
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
            self.world.lock.notify_all()
        # Yield the GIL between frames, as a real capture does while it waits for the device.
        time.sleep(0)
        return True, np.full((4, 6, 3), n % 256, dtype=np.uint8)

    def grab(self) -> bool:
        return True

    def get(self, prop_id: int) -> float:
        return 30.0

    def release(self) -> None:
        pass


class FakeWorld:
    def __init__(self, fail_opens: int = 0, drop_after: int | None = None) -> None:
        self.lock = threading.Condition()
        self.opens = 0
        self.fail_opens = fail_opens
        self.drop_after = drop_after
        self.produced = 0

    def wait_produced(self, count: int) -> None:
        """Block until the camera has produced `count` frames (a hang guard, not a timing check)."""
        with self.lock:
            assert self.lock.wait_for(lambda: self.produced >= count, timeout=60), "the camera stalled"


def test_live_source_keeps_newest_frame_and_counts_skips() -> None:
    world = FakeWorld()
    source = FrameSource("0", capture_factory=lambda _t: FakeCamera(world))
    source.start()
    first = source.get(timeout=60)
    assert first is not None
    # A slow pipeline: it comes back only after the camera produced 20 more frames. (Frame n is
    # surely in the buffer once frame n + 1 was read: the reader puts one before reading the next.)
    world.wait_produced(first.index + 1 + 20 + 1)
    newest = source.get(timeout=60)
    source.stop()
    assert newest is not None
    assert newest.index - first.index >= 20
    # Everything the camera produced in between was dropped and counted, not queued: of the
    # frames after `first`, only `newest` was delivered.
    assert source.stats.frames_skipped >= newest.index - first.index - 1


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
    while len(got) < 12:
        frame = source.get(timeout=60)  # a hang guard: frames come as fast as the camera makes them
        assert frame is not None
        got.append(frame.index)
    source.stop()
    # Two failed opens, one open that dropped after 5 frames, then a good one.
    assert world.opens == 4
    assert source.stats.reconnects >= 1 and source.stats.connected
    assert got == sorted(got) and len(got) == 12


def test_looped_file_plays_again_with_indices_counting_on(asset: Any) -> None:
    """`loop`: at the end of the file the first frame comes again, under the next index, the
    frames are the same pixels as the first pass, and the input never ends until stopped."""
    source = FrameSource(str(asset("data/video/hamilton_clip.mp4")), frame_stride=10, loop=True)
    source.start()
    frames = []
    for _ in range(3 * 28 + 1):  # 28 strided frames per pass, then the first of a fourth pass
        frame = source.get(timeout=60)
        assert frame is not None, "a looped file must not end"
        frames.append(frame)
    source.stop()
    indices = [f.index for f in frames]
    pass_len = len(range(0, 275, 10))
    assert indices[:pass_len] == list(range(0, 275, 10))
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    for k in (1, 2, 3):
        again = frames[k * pass_len]
        assert np.array_equal(again.image, frames[0].image), f"pass {k + 1} must start at frame 0"
    assert np.array_equal(frames[pass_len + 5].image, frames[5].image)
    assert source.passes >= 3 and source.stats.last_error is None


def test_loop_is_ignored_for_live_sources_and_damaged_files_stop_looping(asset: Any, tmp_path: Path) -> None:
    assert FrameSource("0", loop=True).loop is False
    data = bytearray(Path(asset("data/video/vtest.avi")).read_bytes())
    damaged = data[: len(data) // 10]
    damaged[len(damaged) // 2 :] = bytes(len(damaged) - len(damaged) // 2)
    video = tmp_path / "damaged.avi"
    video.write_bytes(bytes(damaged))
    source = FrameSource(str(video), loop=True)
    source.start()
    count = 0
    while source.get(timeout=60) is not None:
        count += 1
    source.stop()
    # The damage ends the input with its error, instead of replaying the good part forever.
    assert 0 < count < 795 and source.passes == 0
    assert "truncated or corrupt" in str(source.stats.last_error)


class _WatchedCapture:
    """A real OpenCV capture that records, at each read, the image bytes waiting in the source."""

    def __init__(self, path: str, holder: dict[str, Any]) -> None:
        import cv2

        self._capture = cv2.VideoCapture(path)
        self._holder = holder
        self.waiting: list[int] = []

    def isOpened(self) -> bool:
        return bool(self._capture.isOpened())

    def read(self) -> tuple[bool, Any]:
        source = self._holder.get("source")
        if source is not None:
            with source._cond:
                self.waiting.append(source._buffered_bytes)
        ok, image = self._capture.read()
        return bool(ok), image

    def grab(self) -> bool:
        return bool(self._capture.grab())

    def get(self, prop_id: int) -> float:
        return float(self._capture.get(prop_id))

    def release(self) -> None:
        self._capture.release()


def test_read_ahead_is_bounded_in_bytes_not_frames(asset: Any, tmp_path: Path) -> None:
    """A 1080p frame is 6.2 MB: the read-ahead holds one of them, where it holds four small ones
    (docs/benchmarks.md#memory). The consumer is as slow as it likes; the bound holds at every read."""
    import cv2

    from agent.runtime.source import DEFAULT_QUEUE_BYTES

    small = asset("data/video/vtest.avi")
    big = tmp_path / "vtest_1080p.mp4"
    capture = cv2.VideoCapture(str(small))
    writer = cv2.VideoWriter(str(big), cv2.VideoWriter.fourcc(*"mp4v"), 25.0, (1920, 1080))
    for _ in range(12):
        ok, image = capture.read()
        assert ok
        writer.write(cv2.resize(image, (1920, 1080)))
    writer.release()
    capture.release()
    frame_bytes = 1920 * 1080 * 3
    assert frame_bytes <= DEFAULT_QUEUE_BYTES < 2 * frame_bytes

    holder: dict[str, Any] = {}
    captures: list[_WatchedCapture] = []

    def factory(target: str) -> _WatchedCapture:
        captures.append(_WatchedCapture(target, holder))
        return captures[-1]

    source = FrameSource(str(big), capture_factory=factory, queue_size=4)
    holder["source"] = source
    source.start()
    indices = []
    while (frame := source.get(timeout=60)) is not None:
        assert frame.image.shape == (1080, 1920, 3)
        # Real work per frame, as the pipeline does: the reader gets ahead of this consumer.
        cv2.GaussianBlur(frame.image, (31, 31), 0)
        indices.append(frame.index)
    source.stop()
    assert indices == list(range(12))
    waiting = captures[0].waiting
    assert len(waiting) >= 12 and max(waiting) <= frame_bytes, waiting
