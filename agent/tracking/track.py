"""The set of live tracks, stored column-wise, and the rules of a track's life.

Each track is a row: Kalman mean and covariance, counters, and its appearance galleries. Storing
rows in arrays (not one object per track) lets the tracker predict, gate and update every track
with a few numpy calls per frame.

Life of a track (Wojke et al. 2017, section 2.2): born tentative from an unmatched detection;
confirmed after `n_init` consecutive hits; a tentative track that misses once is dropped; a
confirmed track is deleted after more than `max_age` consecutive misses.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from agent.tracking.nn_matching import FeatureGallery
from agent.tracking.observation_centric import DIRECTION_SPAN

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class TrackTable:
    """Column store of live tracks; row order is creation order."""

    __slots__ = (
        "age",
        "confirmed",
        "cov",
        "face_galleries",
        "galleries",
        "hits",
        "ids",
        "lost",
        "mean",
        "needed_hits",
        "observation",
        "observed_centres",
        "observed_cov",
        "observed_mean",
        "time_since_update",
    )

    def __init__(self) -> None:
        self.ids: IntArray = np.empty(0, dtype=np.int64)
        self.mean: Array = np.empty((0, 8))
        # Compact Kalman covariances, see kalman_filter.py.
        self.cov: Array = np.empty((0, 3, 4))
        self.hits: IntArray = np.empty(0, dtype=np.int64)
        self.age: IntArray = np.empty(0, dtype=np.int64)
        self.time_since_update: IntArray = np.empty(0, dtype=np.int64)
        self.confirmed: BoolArray = np.empty(0, dtype=np.bool_)
        # Hits that confirm each track: n_init, or more for one born from a weak detection.
        self.needed_hits: IntArray = np.empty(0, dtype=np.int64)
        # A confirmed track currently missing, whose "lost" event has been emitted.
        self.lost: BoolArray = np.empty(0, dtype=np.bool_)
        self.galleries: list[FeatureGallery | None] = []
        self.face_galleries: list[FeatureGallery | None] = []
        # OC-SORT's memory (observation_centric.py): the last observation (xyah), the filter
        # state right after it, and the centres of the last DIRECTION_SPAN + 1 observations.
        self.observation: Array = np.empty((0, 4))
        self.observed_mean: Array = np.empty((0, 8))
        self.observed_cov: Array = np.empty((0, 3, 4))
        self.observed_centres: Array = np.empty((0, DIRECTION_SPAN + 1, 2))

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def append(self, ids: IntArray, mean: Array, cov: Array, needed_hits: IntArray) -> None:
        """New tracks with one hit each; those needing at most one hit start confirmed."""
        n = ids.shape[0]
        if n == 0:
            return
        self.ids = np.concatenate([self.ids, ids])
        self.mean = np.concatenate([self.mean, mean])
        self.cov = np.concatenate([self.cov, cov])
        ones = np.ones(n, dtype=np.int64)
        self.hits = np.concatenate([self.hits, ones])
        self.age = np.concatenate([self.age, ones])
        self.time_since_update = np.concatenate([self.time_since_update, np.zeros(n, dtype=np.int64)])
        self.confirmed = np.concatenate([self.confirmed, needed_hits <= 1])
        self.needed_hits = np.concatenate([self.needed_hits, needed_hits])
        self.lost = np.concatenate([self.lost, np.zeros(n, dtype=np.bool_)])
        self.galleries.extend([None] * n)
        self.face_galleries.extend([None] * n)
        observation = mean[:, :4]
        self.observation = np.concatenate([self.observation, observation])
        self.observed_mean = np.concatenate([self.observed_mean, mean])
        self.observed_cov = np.concatenate([self.observed_cov, cov])
        centres = np.repeat(observation[:, None, :2], DIRECTION_SPAN + 1, axis=1)
        self.observed_centres = np.concatenate([self.observed_centres, centres])

    def forget_observations(self, rows: npt.NDArray[np.intp]) -> None:
        """Start `rows`' observation memory afresh from their current state, as `append` does."""
        self.observation[rows] = self.mean[rows, :4]
        self.observed_mean[rows] = self.mean[rows]
        self.observed_cov[rows] = self.cov[rows]
        self.observed_centres[rows] = self.mean[rows, None, :2]

    def observe(self, rows: npt.NDArray[np.intp], observations: Array) -> None:
        """Remember the observations (xyah) just used to update `rows`, and their new states."""
        self.observation[rows] = observations
        self.observed_mean[rows] = self.mean[rows]
        self.observed_cov[rows] = self.cov[rows]
        centres = self.observed_centres[rows]
        centres[:, :-1] = centres[:, 1:]
        centres[:, -1] = observations[:, :2]
        self.observed_centres[rows] = centres

    def keep(self, mask: BoolArray) -> None:
        """Drop the rows where mask is False."""
        if mask.all():
            return
        self.ids = self.ids[mask]
        self.mean = self.mean[mask]
        self.cov = self.cov[mask]
        self.hits = self.hits[mask]
        self.age = self.age[mask]
        self.time_since_update = self.time_since_update[mask]
        self.confirmed = self.confirmed[mask]
        self.needed_hits = self.needed_hits[mask]
        self.lost = self.lost[mask]
        self.observation = self.observation[mask]
        self.observed_mean = self.observed_mean[mask]
        self.observed_cov = self.observed_cov[mask]
        self.observed_centres = self.observed_centres[mask]
        rows = np.flatnonzero(mask).tolist()
        self.galleries = [self.galleries[i] for i in rows]
        self.face_galleries = [self.face_galleries[i] for i in rows]
