"""Scene cuts: a frame that is a different picture from the one before, not the same one moved.

An edited video (the demo clip, a broadcast, a camera that switches presets) jumps between shots.
Across such a cut a box at the same place is somebody else, so the tracker must not carry a track
over it by position. A cut is told from motion by two signals on a 64 x 36 copy of each frame,
and both must agree:
- the colours change: 1 - the intersection of the two frames' HSV histograms (8 x 4 x 4 bins) is
  at least `min_colour_change`. People walking, a panning camera or sensor noise move few colours;
- the layout changes: the correlation of the two grey copies (zero mean) is below
  `max_layout_correlation`. A light switched on shifts every colour but keeps the layout.

Measured on the real clips (docs/scene-cuts.md): the three cuts of hamilton_clip.mp4
(frames 20, 82, 211) have a colour change of 0.318-0.558 and a correlation of 0.013-0.231; every
other frame pair of hamilton, vtest.avi, MOT17-13 (a moving camera) and MOT20-08 stays below 0.075
colour change, and above 0.63 correlation.

Pure: frames in, a yes/no per frame out; one `SceneCutDetector` per camera (it keeps the previous
frame's signature). No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from agent.vision.types import Frame

# The size of the copy the signals are computed on: small enough to cost well under a millisecond,
# large enough to keep the layout of a shot (a face close-up against a crowd).
SIGNATURE_SIZE = (64, 36)
HIST_BINS = (8, 4, 4)


@dataclass(frozen=True, slots=True)
class SceneCutParams:
    # Between the largest change of an uncut pair (0.075) and the smallest cut (0.318).
    min_colour_change: float = 0.18
    # Between the highest correlation of a cut (0.231) and the lowest of an uncut pair (0.63).
    max_layout_correlation: float = 0.45

    def __post_init__(self) -> None:
        if not 0.0 < self.min_colour_change <= 1.0:
            raise ValueError(f"min_colour_change must be in (0, 1], got {self.min_colour_change}")
        if not -1.0 <= self.max_layout_correlation <= 1.0:
            raise ValueError(f"max_layout_correlation must be in [-1, 1], got {self.max_layout_correlation}")


@dataclass(frozen=True, slots=True)
class FrameSignature:
    """What a frame is compared on: its colour histogram and a small zero-mean grey copy."""

    shape: tuple[int, int]
    histogram: npt.NDArray[np.float32]
    layout: npt.NDArray[np.float32]

    @classmethod
    def of(cls, frame: Frame) -> FrameSignature:
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.size == 0:
            raise ValueError(f"a scene cut signature needs a BGR frame, got shape {frame.shape}")
        small = cv2.resize(frame, SIGNATURE_SIZE, interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
        counts = cv2.calcHist([hsv], [0, 1, 2], None, list(HIST_BINS), [0, 180, 0, 256, 0, 256]).ravel()
        hist = np.asarray(counts, dtype=np.float32) / max(float(counts.sum()), 1.0)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)
        return cls(
            (int(frame.shape[0]), int(frame.shape[1])),
            hist.astype(np.float32),
            (grey - float(grey.mean())).astype(np.float32),
        )

    def colour_change(self, other: FrameSignature) -> float:
        return float(1.0 - np.minimum(self.histogram, other.histogram).sum())

    def layout_correlation(self, other: FrameSignature) -> float:
        """Correlation of the grey copies; 0 when either is flat (a black frame has no layout)."""
        a, b = self.layout, other.layout
        norm = float(np.sqrt(float((a * a).sum()) * float((b * b).sum())))
        return float((a * b).sum()) / norm if norm > 1e-3 else 0.0


@dataclass(frozen=True, slots=True)
class CutCheck:
    """The verdict on one frame, with the two measured signals (for logs and benches)."""

    cut: bool
    colour_change: float
    layout_correlation: float


class SceneCutDetector:
    """Says, frame by frame in order, whether a frame starts a new shot."""

    def __init__(self, params: SceneCutParams | None = None) -> None:
        self.params = params or SceneCutParams()
        self._previous: FrameSignature | None = None

    def reset(self) -> None:
        self._previous = None

    def check(self, frame: Frame) -> CutCheck:
        """Compare `frame` with the frame before it. The first frame is no cut (nothing to carry
        over); a change of frame size is one (another stream, another picture)."""
        signature = FrameSignature.of(frame)
        previous, self._previous = self._previous, signature
        if previous is None:
            return CutCheck(False, 0.0, 1.0)
        if previous.shape != signature.shape:
            return CutCheck(True, 1.0, 0.0)
        change = signature.colour_change(previous)
        correlation = signature.layout_correlation(previous)
        p = self.params
        cut = change >= p.min_colour_change and correlation <= p.max_layout_correlation
        return CutCheck(cut, change, correlation)
