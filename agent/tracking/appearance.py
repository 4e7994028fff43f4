"""Appearance encoders: turn person boxes in a frame into feature vectors for the tracker.

The default needs no model: a hue-saturation histogram of the upper body (torso), which mostly
sees clothing, is cheap on a Pi, and is stable while a person walks. Face embeddings, when the
agent has them, go to the tracker separately (`face_features`) because they are stronger evidence.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

Frame = npt.NDArray[np.uint8]


class AppearanceEncoder(Protocol):
    def encode(self, frame_bgr: Frame, boxes_tlwh: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
        """(n, d) float32 L2-normalised features, one row per box."""
        ...


class ColorHistogramEncoder:
    """HSV histogram of the torso region of each person box.

    The torso band (by default 20 %-60 % of the box height, middle 60 % of its width) skips the
    head (hair and face change with pose) and legs (often occluded, moving). Hue x saturation bins
    ignore brightness so shadows matter less; a small value histogram is appended so black and
    white clothes, which have no meaningful hue, still differ.
    """

    def __init__(
        self,
        hue_bins: int = 16,
        saturation_bins: int = 8,
        value_bins: int = 8,
        band: tuple[float, float] = (0.2, 0.6),
        width_fraction: float = 0.6,
    ):
        if not 0.0 <= band[0] < band[1] <= 1.0 or not 0.0 < width_fraction <= 1.0:
            raise ValueError("band must be 0 <= top < bottom <= 1 and width_fraction in (0, 1]")
        self.hue_bins = hue_bins
        self.saturation_bins = saturation_bins
        self.value_bins = value_bins
        self.band = band
        self.width_fraction = width_fraction

    @property
    def dim(self) -> int:
        return self.hue_bins * self.saturation_bins + self.value_bins

    def encode(self, frame_bgr: Frame, boxes_tlwh: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
        boxes = np.asarray(boxes_tlwh, dtype=np.float64).reshape(-1, 4)
        out = np.zeros((boxes.shape[0], self.dim), dtype=np.float32)
        if boxes.shape[0] == 0:
            return out
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
            raise ValueError(f"frame must be HxWx3 BGR, got shape {frame_bgr.shape}")
        height, width = frame_bgr.shape[:2]
        x, y, w, h = boxes.T
        margin = (1.0 - self.width_fraction) * 0.5
        x1 = np.clip(np.floor(x + margin * w), 0, width).astype(int)
        x2 = np.clip(np.ceil(x + (1.0 - margin) * w), 0, width).astype(int)
        y1 = np.clip(np.floor(y + self.band[0] * h), 0, height).astype(int)
        y2 = np.clip(np.ceil(y + self.band[1] * h), 0, height).astype(int)
        hs_bins = [self.hue_bins, self.saturation_bins]
        for i in range(boxes.shape[0]):
            if x2[i] - x1[i] < 2 or y2[i] - y1[i] < 2:
                # A box outside the frame or a sliver has no usable colour: give a fixed uniform
                # feature so the row is still unit-norm.
                out[i] = 1.0 / np.sqrt(self.dim)
                continue
            hsv = cv2.cvtColor(frame_bgr[y1[i] : y2[i], x1[i] : x2[i]], cv2.COLOR_BGR2HSV)
            hs = _smooth(cv2.calcHist([hsv], [0, 1], None, hs_bins, [0, 180, 0, 256]), circular_rows=True)
            v = _smooth(cv2.calcHist([hsv], [2], None, [self.value_bins], [0, 256]), circular_rows=False)
            # Square roots (Hellinger) so a dominant bin does not swamp the cosine distance.
            feature = np.sqrt(np.concatenate([hs.ravel(), v.ravel() * 0.5]))
            norm = float(np.linalg.norm(feature))
            out[i] = feature / norm if norm > 0 else 1.0 / np.sqrt(self.dim)
        return out


def _smooth(raw: npt.NDArray[np.generic], circular_rows: bool) -> npt.NDArray[np.float32]:
    """Spread each bin a little into its neighbours, so a colour near a bin edge (a slightly
    different light on the same shirt) does not land in a disjoint bin. Hue wraps around."""
    hist = np.asarray(raw, dtype=np.float32)
    out = 0.5 * hist
    if circular_rows:
        out += 0.25 * (np.roll(hist, 1, axis=0) + np.roll(hist, -1, axis=0))
    else:
        padded = np.pad(hist, ((1, 1), (0, 0)), mode="edge")
        out += 0.25 * (padded[:-2] + padded[2:])
    if hist.shape[1] > 1:
        padded = np.pad(out, ((0, 0), (1, 1)), mode="edge")
        out = 0.5 * out + 0.25 * (padded[:, :-2] + padded[:, 2:])
    return out.astype(np.float32)
