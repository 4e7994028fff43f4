"""Frame sources: a video file, a camera index or an rtsp:// / http:// stream, read in a thread.

Files are read in order and every frame is delivered (or every `frame_stride`-th): the reader
blocks when the pipeline is behind. With `loop`, a file starts again from its first frame when it
ends, until the agent is stopped (a demo screen, a soak test, a test that must outlast an action);
frame indices keep counting up across passes, so events stay ordered.

Live sources deliver only the newest frame: when the pipeline falls behind, older frames are
overwritten and counted in `frames_skipped`. Live sources that fail (device gone, stream dropped)
reconnect with exponential backoff and jitter; a file that cannot be opened or decoded raises
SourceError with one line for the user.

A stream that goes silent must not hold the agent: OpenCV's open and read timeouts bound every
call into it (`LIVE_OPEN_TIMEOUT_S`, `LIVE_READ_TIMEOUT_S`), the status calls a live source that
delivered no frame for `STALL_AFTER_S` disconnected, and the reader thread alone touches the
capture (release included), so a stop never frees it under a `read()` still running.
Whatever this module shows (logs, errors, the status) carries the input with its credentials
redacted.
"""

from __future__ import annotations

import asyncio
import functools
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
import structlog

from agent.pipeline.frame import SourceFrame
from agent.redact import redact_text, redact_url

SourceKind = Literal["file", "camera", "stream"]
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
# Bounds on one call into OpenCV for a live source. A read that waits longer counts as a dropped
# stream (reconnect with backoff); a stop waits for at most one read.
LIVE_OPEN_TIMEOUT_S = 3.0
LIVE_READ_TIMEOUT_S = 2.0
# A live source with no new frame for this long is reported disconnected in the status.
STALL_AFTER_S = 3.0


class SourceError(Exception):
    """The input cannot be used at all (missing or undecodable file); phrased as one line."""


class CaptureLike(Protocol):
    """The part of cv2.VideoCapture a source uses (tests pass a fake camera with this shape)."""

    def isOpened(self) -> bool: ...
    def read(self) -> tuple[bool, Any]: ...
    def grab(self) -> bool: ...
    def get(self, prop_id: int) -> float: ...
    def release(self) -> None: ...


CaptureFactory = Callable[[str | int], CaptureLike]


@dataclass(slots=True)
class SourceStats:
    frames_skipped: int = 0
    reconnects: int = 0
    connected: bool = False
    last_error: str | None = None


def classify_input(spec: str) -> tuple[SourceKind, str | int]:
    text = spec.strip()
    if text.isdigit():
        return "camera", int(text)
    if text.lower().startswith(STREAM_SCHEMES):
        return "stream", text
    return "file", text


def _opencv_capture(target: str | int, *, live: bool = False) -> CaptureLike:
    import cv2

    if not live:
        capture: CaptureLike = cv2.VideoCapture(target)
        return capture
    # FFmpeg and GStreamer honour these; a backend that does not is still bounded at stop by
    # the reader thread owning the capture (see FrameSource.stop).
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(LIVE_OPEN_TIMEOUT_S * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(LIVE_READ_TIMEOUT_S * 1000),
    ]
    capture = cv2.VideoCapture(target, cv2.CAP_ANY, params)
    return capture


# The file read-ahead holds at most this many image bytes (and at most queue_size frames): four
# 768x576 frames (1.3 MB each), but a single 1080p one (6.2 MB) instead of four; the reader still
# decodes the next frame while the pipeline works on the current one (docs/benchmarks.md#memory).
DEFAULT_QUEUE_BYTES = 6 * 1024 * 1024


class FrameSource:
    """Reads frames in a daemon thread; the pipeline calls `await next()` (None at end of input)."""

    _END = object()

    def __init__(
        self,
        spec: str,
        *,
        frame_stride: int = 1,
        capture_factory: CaptureFactory | None = None,
        queue_size: int = 4,
        queue_bytes: int | None = None,
        loop: bool = False,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        logger: Any | None = None,
    ) -> None:
        self.spec = spec
        self.kind, self.target = classify_input(spec)
        self.frame_stride = max(1, frame_stride)
        self.loop = loop and self.kind == "file"
        self.passes = 0  # completed passes over a looped file
        self._factory = capture_factory or functools.partial(_opencv_capture, live=self.kind != "file")
        # What logs and the status show: the input without its credentials.
        self.shown = redact_url(spec)
        self._queue_size = max(1, queue_size)
        self._queue_bytes = DEFAULT_QUEUE_BYTES if queue_bytes is None else queue_bytes
        self._buffered_bytes = 0  # image bytes of the frames in _buffer
        self._reconnect_min_s = reconnect_min_s
        self._reconnect_max_s = reconnect_max_s
        self._log = logger or structlog.get_logger("facetrack.source")
        self.stats = SourceStats()
        self.fps: float = 0.0
        self.size: tuple[int, int] | None = None  # (width, height) once known
        self._expected_frames = 0  # a file's stated frame count; 0 when unknown
        self._buffer: deque[SourceFrame | object] = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._capture: CaptureLike | None = None
        self._first: SourceFrame | None = None
        self._last_media_s = -1.0
        self._last_frame_at: float | None = None  # monotonic time of the newest live frame

    @property
    def is_live(self) -> bool:
        return self.kind != "file"

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Open the source. Files are opened and their first frame decoded here, so a bad file
        fails fast with SourceError; live sources connect (and reconnect) in the reader thread."""
        if self.kind == "file":
            self._open_file()
        self._thread = threading.Thread(target=self._run, name=f"source:{self.kind}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reading. The reader thread releases the capture itself on its way out, so it is
        never freed under a `read()` in progress (which crashed OpenCV); this waits for one
        bounded read at most, and a reader that never started leaves the capture to us."""
        self.request_stop()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=LIVE_OPEN_TIMEOUT_S + LIVE_READ_TIMEOUT_S + 1.0)
            if thread.is_alive():
                self._log.warning("source_reader_still_running", source=self.shown)
                return
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def request_stop(self) -> None:
        """Tell the reader to stop, without waiting for it (its last OpenCV call may take up to
        LIVE_OPEN_TIMEOUT_S); `stop()` waits. The agent asks first and waits after its flush."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def status(self, now: float | None = None) -> dict[str, Any]:
        """The status message's `source` object. A live source that is connected but delivered
        no frame for STALL_AFTER_S is reported disconnected, with how long it has been silent."""
        connected, last_error = self.stats.connected, self.stats.last_error
        if self.is_live and connected and self._last_frame_at is not None:
            silent = (time.monotonic() if now is None else now) - self._last_frame_at
            if silent >= STALL_AFTER_S:
                connected = False
                last_error = f"no frame for {silent:.0f} s (stream stalled)"
        return {
            "input": self.shown,
            "kind": self.kind,
            "connected": connected,
            "reconnects": self.stats.reconnects,
            "last_error": redact_text(last_error) if last_error else None,
        }

    # -- consumer side ---------------------------------------------------------------------------
    def get(self, timeout: float | None = None) -> SourceFrame | None:
        """Block for the next frame; None once the input has ended (or the source was stopped).

        Raises TimeoutError when `timeout` passes without a frame (a live source still waiting)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._buffer:
                if self._stop.is_set():
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError
                self._cond.wait(timeout=remaining if remaining is not None else 0.5)
            item = self._buffer.popleft()
            self._forget(item)
            self._cond.notify_all()
        if item is self._END:
            with self._cond:
                self._buffer.appendleft(item)  # stay ended for every later call
            return None
        assert isinstance(item, SourceFrame)
        return item

    async def next(self) -> SourceFrame | None:
        return await asyncio.to_thread(self.get)

    # -- producer side ---------------------------------------------------------------------------
    def _open_file(self) -> None:
        path = Path(str(self.target)).expanduser()
        if not path.is_file():
            raise SourceError(f"input error: video file {path} does not exist or is not a file")
        capture = self._factory(str(path))
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"input error: cannot open video {path} (not a video OpenCV can read)")
        ok, image = capture.read()
        if not ok or image is None:
            capture.release()
            raise SourceError(f"input error: cannot decode any frame of {path} (corrupt or unsupported)")
        self._capture = capture
        self._note_properties(capture, image)
        self.stats.connected = True
        self._first = self._frame(0, image, self._media_time(capture, 0))

    def _note_properties(self, capture: CaptureLike, image: npt.NDArray[np.uint8]) -> None:
        fps = float(capture.get(5) or 0.0)  # cv2.CAP_PROP_FPS
        self.fps = fps if 0.0 < fps < 1000.0 else 0.0
        # Containers state their frame count; raw H.264/H.265 streams report garbage (negative).
        count = float(capture.get(7) or 0.0)  # cv2.CAP_PROP_FRAME_COUNT
        self._expected_frames = int(count) if 0.0 < count < 1e8 else 0
        self.size = (int(image.shape[1]), int(image.shape[0]))

    def _frame(self, index: int, image: npt.NDArray[np.uint8], media_s: float | None = None) -> SourceFrame:
        return SourceFrame(
            index=index, image=image, ts=datetime.now(UTC), captured_at=time.monotonic(), media_s=media_s
        )

    def _media_time(self, capture: CaptureLike, index: int) -> float | None:
        """The position in the file of the frame just read: the container's timestamp
        (CAP_PROP_POS_MSEC) while it advances, else index / fps (raw H.264/H.265 streams report 0)."""
        position = float(capture.get(0) or 0.0) / 1000.0  # cv2.CAP_PROP_POS_MSEC
        if not (position > self._last_media_s or (index == 0 and position == 0.0)):
            if self.fps <= 0.0:
                return None
            position = index / self.fps
        self._last_media_s = position
        return position

    def _run(self) -> None:
        try:
            if self.kind == "file":
                self._run_file()
            else:
                self._run_live()
        except Exception as exc:  # a reader crash must end the input, not hang the pipeline
            self.stats.last_error = redact_text(f"{type(exc).__name__}: {exc}")
            self._log.error("source_reader_failed", source=self.shown, error=self.stats.last_error)
        finally:
            # The reader owns the capture: only it may release it (stop() never races a read).
            if self.kind != "file" and self._capture is not None:
                self._capture.release()
                self._capture = None
            with self._cond:
                self._buffer.append(self._END)
                self._cond.notify_all()

    def _forget(self, item: SourceFrame | object) -> None:
        """Called under _cond for each frame leaving _buffer."""
        if isinstance(item, SourceFrame):
            self._buffered_bytes -= item.image.nbytes

    def _full(self, incoming: int) -> bool:
        """Whether the read-ahead has no room for `incoming` more bytes; one frame always fits."""
        if not self._buffer:
            return False
        return len(self._buffer) >= self._queue_size or self._buffered_bytes + incoming > self._queue_bytes

    def _put_blocking(self, item: SourceFrame) -> bool:
        with self._cond:
            while self._full(item.image.nbytes) and not self._stop.is_set():
                self._cond.wait(timeout=0.5)
            if self._stop.is_set():
                return False
            self._buffer.append(item)
            self._buffered_bytes += item.image.nbytes
            self._cond.notify_all()
        return True

    def _put_latest(self, item: SourceFrame) -> None:
        with self._cond:
            if self._stop.is_set():
                # The stop does not wait for a read in progress (a stalled stream's takes seconds):
                # a frame that arrives after it is left unread and uncounted, so the counts the
                # agent took at its stop stay the counts its last status reports.
                return
            while self._buffer and self._buffer[0] is not self._END:
                self._forget(self._buffer.popleft())
                self.stats.frames_skipped += 1
            self._buffer.append(item)
            self._buffered_bytes += item.image.nbytes
            self._cond.notify_all()

    def _run_file(self) -> None:
        capture = self._capture
        assert capture is not None and self._first is not None
        if not self._put_blocking(self._first):
            return
        index = 0  # counts on across the passes of a looped file
        start = 0  # index of this pass's first frame
        while not self._stop.is_set():
            ok = True
            for _ in range(self.frame_stride - 1):
                index += 1
                if not capture.grab():
                    ok = False
                    break
            image = None
            if ok:
                ok, image = capture.read()
                index += 1
            if ok and image is not None:
                if not self._put_blocking(self._frame(index, image, self._media_time(capture, index))):
                    return
                continue
            self._note_early_end(index - start)
            if not self.loop or self.stats.last_error is not None or self._stop.is_set():
                return
            capture = self._reopen()
            self.passes += 1
            start = index
            ok, image = capture.read()
            if not ok or image is None:
                self.stats.last_error = f"cannot decode {self.target} again to loop it"
                return
            if not self._put_blocking(self._frame(index, image, self._media_time(capture, index))):
                return

    def _reopen(self) -> CaptureLike:
        """The same file from its first frame: a fresh capture, since seeking is unreliable across
        containers and codecs."""
        if self._capture is not None:
            self._capture.release()
        self._capture = self._factory(str(Path(str(self.target)).expanduser()))
        return self._capture

    def _note_early_end(self, frames_consumed: int) -> None:
        """A file that stops decoding well before its stated length is damaged: say so, since the
        run otherwise looks like a normal end of input. One frame of slack: some containers
        overstate their count by one."""
        expected = self._expected_frames
        if expected and frames_consumed < expected - 1:
            self.stats.last_error = (
                f"decoding stopped at frame {frames_consumed} of {expected}: the file is truncated or corrupt"
            )

    def _run_live(self) -> None:
        # Here, not at the top: the MQTT stack is slow to import and files never reconnect.
        from agent.runtime.mqtt_link import backoff_delay

        rng = random.Random()

        def backoff(attempt: int) -> float:
            # Full jitter: a fleet whose cameras dropped together must not retry in step.
            return backoff_delay(attempt + 1, self._reconnect_min_s, self._reconnect_max_s, rng)

        index = 0
        attempt = 0
        while not self._stop.is_set():
            capture = self._factory(self.target)
            if not capture.isOpened():
                capture.release()
                if self._stop.is_set():
                    return
                self._report_down(f"cannot open {self.kind} {self.shown!r}", attempt)
                self._stop.wait(backoff(attempt))
                attempt += 1
                continue
            self._capture = capture
            while not self._stop.is_set():
                ok, image = capture.read()
                if not ok or image is None:
                    break
                self._last_frame_at = time.monotonic()
                if not self.stats.connected:
                    self._note_properties(capture, image)
                    if attempt or self.stats.last_error:
                        self._log.warning("source_reconnected", source=self.shown, attempts=attempt)
                        self.stats.reconnects += 1
                    self.stats.connected = True
                    self.stats.last_error = None
                    attempt = 0
                self._put_latest(self._frame(index, image))
                index += 1
            capture.release()
            self._capture = None
            if self._stop.is_set():
                return
            self._report_down(f"{self.kind} {self.shown!r} stopped delivering frames", attempt)
            self._stop.wait(backoff(attempt))
            attempt += 1

    def _report_down(self, message: str, attempt: int) -> None:
        self.stats.connected = False
        self.stats.last_error = message
        self._log.warning("source_retry", source=self.shown, error=message, attempt=attempt + 1)
