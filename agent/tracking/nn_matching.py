"""Nearest-neighbour cosine metric: a track's distance to a detection is the smallest cosine
distance between the detection's feature and any feature in the track's gallery (Wojke et al. 2017,
eq. 3). Each gallery keeps the last `budget` features and evicts the oldest.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
FloatArray = npt.NDArray[np.floating]


class FeatureGallery:
    """Ring buffer of one track's most recent L2-normalised features."""

    __slots__ = ("_data", "_next", "budget", "count")

    def __init__(self, dim: int, budget: int):
        if budget < 1:
            raise ValueError(f"gallery budget must be >= 1, got {budget}")
        self.budget = budget
        self._data = np.empty((budget, dim), dtype=np.float32)
        self._next = 0
        self.count = 0

    @property
    def dim(self) -> int:
        return int(self._data.shape[1])

    def add(self, feature: FloatArray) -> None:
        self._data[self._next] = feature
        self._next = (self._next + 1) % self.budget
        self.count = min(self.count + 1, self.budget)

    def features(self) -> npt.NDArray[np.float32]:
        """Stored features, oldest first."""
        if self.count < self.budget:
            return self._data[: self.count]
        return np.roll(self._data, -self._next, axis=0)

    def view(self) -> npt.NDArray[np.float32]:
        """Stored features in storage order (cheaper; order does not matter for a minimum)."""
        return self._data[: self.count]


def nearest_neighbor_cosine(galleries: Sequence[FeatureGallery | None], features: FloatArray) -> Array:
    """Distance (len(galleries), m): min over each gallery of 1 - <g, f>; NaN for an empty gallery.

    All galleries are stacked into one matrix so the whole thing is one matrix product and one
    segmented minimum, whatever the number of tracks.
    """
    n, m = len(galleries), features.shape[0]
    out = np.full((n, m), np.nan)
    if n == 0 or m == 0:
        return out
    blocks: list[npt.NDArray[np.float32]] = []
    owners: list[int] = []
    starts: list[int] = []
    total = 0
    for i, gallery in enumerate(galleries):
        if gallery is None or gallery.count == 0:
            continue
        block = gallery.view()
        blocks.append(block)
        owners.append(i)
        starts.append(total)
        total += block.shape[0]
    if not blocks:
        return out
    stacked = np.concatenate(blocks, axis=0)
    distance = 1.0 - stacked @ np.asarray(features, dtype=np.float32).T  # (total, m)
    out[owners] = np.minimum.reduceat(distance, starts, axis=0)
    return out
