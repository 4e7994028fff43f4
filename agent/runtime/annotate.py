"""`--output PATH`: the input video with person boxes, track ids, names, faces, the agent's fps and a
legend; labels are placed so that they never hide each other.

Drawing and encoding cost a few milliseconds per frame, so the app runs `write` on its own thread;
frames are written in the order they are submitted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


FONT = cv2.FONT_HERSHEY_SIMPLEX
LABEL_SCALE = 0.5
# What the marks mean, drawn next to the fps so a viewer need not guess.
LEGEND = "thin box + ?: new track, not confirmed yet   white: face"
# The bottom band the fps line and the legend take; labels stay out of it.
LEGEND_BAND = 26


@dataclass(frozen=True, slots=True)
class LabelPlacement:
    """Where one track's label goes: its text and rectangle (x, y, w, h) in frame pixels, and the
    box corner it belongs to (a leader line joins them when the label had to move away)."""

    track_id: int
    text: str
    rect: tuple[int, int, int, int]
    anchor: tuple[int, int]

    @property
    def moved(self) -> bool:
        x, y, _, h = self.rect
        ax, ay = self.anchor
        return abs(x - ax) > 1 or not (ay - h - 2 <= y <= ay + 1)


def label_text(track: TrackView, labels: Mapping[int, str]) -> str:
    name = labels.get(track.track_id, UNKNOWN)
    text = f"#{track.track_id} {name}"
    return text if track.state == "confirmed" else f"{text} ?"


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def layout_labels(
    size: tuple[int, int], tracks: Sequence[TrackView], labels: Mapping[int, str]
) -> list[LabelPlacement]:
    """Place the labels of the tracks drawn on this frame so that no two overlap.

    Each label prefers the spot just above its box's top-left corner, then just inside the top
    edge; when an earlier label holds both, it takes the nearest free spot (up, down, sideways).
    Labels are placed top to bottom, and never in the legend's band at the bottom of the frame.
    `size` is (width, height) of the frame.
    """
    width, frame_height = size
    height = max(1, frame_height - LEGEND_BAND)
    shown = [t for t in tracks if t.time_since_update == 0]
    shown.sort(key=lambda t: (float(t.tlwh[1]), float(t.tlwh[0]), t.track_id))
    placed: list[LabelPlacement] = []
    taken: list[tuple[int, int, int, int]] = []
    for track in shown:
        x, y = round(float(track.tlwh[0])), round(float(track.tlwh[1]))
        text = label_text(track, labels)
        (tw, th), base = cv2.getTextSize(text, FONT, LABEL_SCALE, 1)
        lw, lh = tw + 4, th + base + 2

        def fit(cx: int, cy: int, lw: int = lw, lh: int = lh) -> tuple[int, int, int, int]:
            return (min(max(0, cx), max(0, width - lw)), min(max(0, cy), max(0, height - lh)), lw, lh)

        preferred = [fit(x, y - lh), fit(x, y)]
        rect = next((r for r in preferred if not any(_overlaps(r, o) for o in taken)), None)
        if rect is None:
            rect = _nearest_free(preferred[0], taken, (width, height))
        taken.append(rect)
        anchor = (min(max(0, x), width - 1), min(max(0, y), frame_height - 1))
        placed.append(LabelPlacement(track.track_id, text, rect, anchor))
    return placed


def _nearest_free(
    start: tuple[int, int, int, int], taken: list[tuple[int, int, int, int]], size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """The free spot for a label closest to `start`: candidates one label height (or a quarter of
    its width) apart, by distance; `start` itself when the frame is full."""
    width, height = size
    x0, y0, lw, lh = start
    step_x = max(1, lw // 4)
    spots: list[tuple[int, int, int]] = []
    for dy in range(-height, height + 1, lh):
        ny = y0 + dy
        if ny < 0 or ny + lh > height:
            continue
        for dx in range(-width, width + 1, step_x):
            nx = x0 + dx
            if nx < 0 or nx + lw > width:
                continue
            spots.append((dx * dx + dy * dy, nx, ny))
    for _, nx, ny in sorted(spots):
        rect = (nx, ny, lw, lh)
        if not any(_overlaps(rect, o) for o in taken):
            return rect
    return start


def draw(
    image: npt.NDArray[np.uint8],
    tracks: Sequence[TrackView],
    labels: Mapping[int, str],
    faces: Sequence[FaceDetection] = (),
    fps: float | None = None,
    note: str = "",
) -> npt.NDArray[np.uint8]:
    """Draw in place and return the image. Tracks that missed this frame are not drawn.

    Confirmed tracks get a thick box and "#id name" ("unknown" until named); tentative ones a thin
    box and "?", which the legend at the bottom explains. Labels never overlap each other or the
    legend (`layout_labels`).
    """
    for track in tracks:
        if track.time_since_update > 0:
            continue
        x, y, w, h = (round(float(v)) for v in track.tlwh[:4])
        thickness = 2 if track.state == "confirmed" else 1
        cv2.rectangle(image, (x, y), (x + w, y + h), _color(track.track_id), thickness)
    size = (int(image.shape[1]), int(image.shape[0]))
    for placement in layout_labels(size, tracks, labels):
        color = _color(placement.track_id)
        lx, ly, lw, lh = placement.rect
        if placement.moved:
            # Displaced by a neighbour: a leader line says which box it names.
            cv2.line(image, (lx, ly + lh // 2), placement.anchor, color, 1, cv2.LINE_AA)
        cv2.rectangle(image, (lx, ly), (lx + lw, ly + lh), color, -1)
        (_, th), _ = cv2.getTextSize(placement.text, FONT, LABEL_SCALE, 1)
        cv2.putText(
            image, placement.text, (lx + 2, ly + th + 1), FONT, LABEL_SCALE, (0, 0, 0), 1, cv2.LINE_AA
        )
    for face in faces:
        b = face.box
        cv2.rectangle(image, (int(b.x1), int(b.y1)), (int(b.x2), int(b.y2)), (255, 255, 255), 1)
    header = f"{fps:.1f} fps" if fps is not None else ""
    if note:
        header = f"{header}  {note}".strip()
    header = f"{header}   {LEGEND}".strip()
    # Bottom-left: track labels sit at the top of their boxes, often at the frame's top edge.
    origin = (8, image.shape[0] - 10)
    scale = min(0.5, 0.5 * (image.shape[1] - 16) / max(1, cv2.getTextSize(header, FONT, 0.5, 1)[0][0]))
    cv2.putText(image, header, origin, FONT, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, header, origin, FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
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
