"""Where the picture changed: a cheap motion mask on a small grey copy of the frame.

As Frigate does it: shrink the frame to a few hundred pixels, grey and blur it, compare it with a
running-average background, threshold, dilate, and take the bounding boxes of the blobs. Sensor
noise averages out in the shrink and the blur; a person walking leaves a blob. When most of the
picture changes at once (lights switched, camera moved, a new stream size) motion is "unknown":
the caller must look at the whole frame and the background starts over.

No I/O; one `MotionDetector` per camera (it keeps the background).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from agent.vision.types import BBox, Frame


@dataclass(frozen=True, slots=True)
class MotionParams:
    # Height of the grey copy the mask is computed on (the width follows the frame's aspect).
    height: int = 180
    # Per-pixel difference (0-255) from the background that counts as motion.
    threshold: int = 25
    # Smallest blob kept, as a share of the frame's area.
    min_area: float = 0.0002
    # How fast the background follows the picture (running-average weight per frame).
    alpha: float = 0.05
    # More than this share of the picture changing at once is a scene change: motion unknown.
    max_changed: float = 0.5


@dataclass(frozen=True, slots=True)
class Motion:
    """Boxes (frame pixels) around what moved; `known` False means "look everywhere"."""

    boxes: tuple[BBox, ...]
    known: bool
    changed: float = 0.0

    def overlaps(self, box: BBox, min_share: float = 0.0) -> bool:
        """Does any motion box cover more than `min_share` of `box`?"""
        if not self.known:
            return True
        return any(box.intersection_over_self(m) > min_share for m in self.boxes)


class MotionDetector:
    def __init__(self, params: MotionParams | None = None) -> None:
        self.params = params or MotionParams()
        self._background: npt.NDArray[np.float32] | None = None
        self._frame_size: tuple[int, int] | None = None

    def reset(self) -> None:
        self._background = None
        self._frame_size = None

    def _small_grey(self, frame: Frame) -> npt.NDArray[np.uint8]:
        height, width = frame.shape[:2]
        small_h = min(self.params.height, height)
        small_w = max(1, round(width * small_h / height))
        grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        small = cv2.resize(grey, (small_w, small_h), interpolation=cv2.INTER_AREA)
        return np.asarray(cv2.GaussianBlur(small, (5, 5), 0), dtype=np.uint8)

    def update(self, frame: Frame) -> Motion:
        """The motion in `frame` against the frames before it; updates the background."""
        height, width = frame.shape[:2]
        small = self._small_grey(frame)
        if self._background is None or self._frame_size != (width, height):
            self._background = small.astype(np.float32)
            self._frame_size = (width, height)
            return Motion((), known=False, changed=1.0)
        background = self._background
        diff = cv2.absdiff(small, cv2.convertScaleAbs(background))
        mask = (diff > self.params.threshold).astype(np.uint8) * 255
        changed = float(np.count_nonzero(mask)) / mask.size
        if changed > self.params.max_changed:
            self._background = small.astype(np.float32)
            return Motion((), known=False, changed=changed)
        cv2.accumulateWeighted(small, background, self.params.alpha)
        if changed == 0.0:
            return Motion((), known=True, changed=0.0)
        grown = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=2)
        contours, _ = cv2.findContours(grown, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        scale_x, scale_y = width / small.shape[1], height / small.shape[0]
        min_area = self.params.min_area * small.shape[0] * small.shape[1]
        boxes: list[BBox] = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            if w * h < min_area:
                continue
            boxes.append(BBox(x * scale_x, y * scale_y, (x + w) * scale_x, (y + h) * scale_y))
        return Motion(tuple(boxes), known=True, changed=changed)
