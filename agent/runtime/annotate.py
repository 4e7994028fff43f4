"""`--output PATH`: the input video with person boxes, track ids, names, faces and the agent's fps.

Drawing and encoding cost a few milliseconds per frame, so the app runs `write` on its own thread;
frames are written in the order they are submitted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from agent.classifier.labels import UNKNOWN
from agent.tracking import TrackView
from agent.vision.types import FaceDetection


class OutputError(Exception):
    """The annotated video cannot be written (one line for the user)."""


def _color(track_id: int) -> tuple[int, int, int]:
    # A stable, well-spread colour per track id (golden-ratio hue steps).
    hue = int((track_id * 0.618033988749895 % 1.0) * 179)
    hsv = np.array([[[hue, 200, 255]]], dtype=np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw(
    image: npt.NDArray[np.uint8],
    tracks: Sequence[TrackView],
    labels: Mapping[int, str],
    faces: Sequence[FaceDetection] = (),
    fps: float | None = None,
    note: str = "",
) -> npt.NDArray[np.uint8]:
    """Draw in place and return the image. Tracks that missed this frame are not drawn."""
    for track in tracks:
        if track.time_since_update > 0:
            continue
        x, y, w, h = (round(float(v)) for v in track.tlwh[:4])
        color = _color(track.track_id)
        thickness = 2 if track.state == "confirmed" else 1
        cv2.rectangle(image, (x, y), (x + w, y + h), color, thickness)
        label = labels.get(track.track_id, UNKNOWN)
        text = f"#{track.track_id} {label}" if label != UNKNOWN else f"#{track.track_id}"
        if track.state != "confirmed":
            text += " ?"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        top = max(0, y - th - base - 2)
        cv2.rectangle(image, (x, top), (x + tw + 4, top + th + base + 2), color, -1)
        cv2.putText(
            image, text, (x + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA
        )
    for face in faces:
        b = face.box
        cv2.rectangle(image, (int(b.x1), int(b.y1)), (int(b.x2), int(b.y2)), (255, 255, 255), 1)
    header = f"{fps:.1f} fps" if fps is not None else ""
    if note:
        header = f"{header}  {note}".strip()
    if header:
        # Bottom-left: track labels sit at the top of their boxes, often at the frame's top edge.
        origin = (8, image.shape[0] - 10)
        cv2.putText(image, header, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(image, header, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return image


class AnnotatedVideoWriter:
    """mp4v writer; opened lazily on the first frame so the size comes from the video itself."""

    def __init__(self, path: Path | str, fps: float) -> None:
        self.path = Path(path)
        self.fps = fps if fps > 0 else 25.0
        self.frames = 0
        self._writer: Any = None
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"output error: cannot create directory {parent}: {exc}") from None

    def _open(self, width: int, height: int) -> None:
        fourcc = cv2.VideoWriter.fourcc(*"mp4v")
        writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (width, height))
        if not writer.isOpened():
            raise OutputError(f"output error: cannot write video {self.path} (mp4v codec or path problem)")
        self._writer = writer

    def check(self, width: int, height: int) -> None:
        """Open now (before any frame is processed) so a bad --output fails fast."""
        if self._writer is None:
            self._open(width, height)

    def write(self, image: npt.NDArray[np.uint8]) -> None:
        if self._writer is None:
            self._open(int(image.shape[1]), int(image.shape[0]))
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
