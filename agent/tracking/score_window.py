"""The detection scores a tracker has seen lately, for thresholds relative to the detector.

Detectors disagree on what a score means: the Faster R-CNN boxes of MOT15 put half their
detections above 0.96, COCO SSD on vtest.avi half above 0.67. A rule such as "only confident
detections start tracks" is then best written as a quantile of the detector's own recent scores.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


class ScoreWindow:
    """Ring buffer of the last `size` detection scores."""

    __slots__ = ("_data", "_next", "count")

    def __init__(self, size: int = 1000) -> None:
        if size < 1:
            raise ValueError(f"score window size must be >= 1, got {size}")
        self._data = np.empty(size, dtype=np.float64)
        self._next = 0
        self.count = 0

    def add(self, scores: Array) -> None:
        size = self._data.shape[0]
        values = scores[-size:]
        k = values.shape[0]
        end = self._next + k
        if end <= size:
            self._data[self._next : end] = values
        else:
            split = size - self._next
            self._data[self._next :] = values[:split]
            self._data[: k - split] = values[split:]
        self._next = end % size
        self.count = min(self.count + k, size)

    def quantile(self, q: float) -> float:
        """The q-quantile (0-1, lower interpolation) of the stored scores; -inf when empty."""
        if self.count == 0:
            return float("-inf")
        values = self._data[: self.count]
        k = min(int(q * (self.count - 1)), self.count - 1)
        return float(np.partition(values, k)[k])
