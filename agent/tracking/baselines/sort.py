"""SORT: Simple Online and Realtime Tracking (Bewley, Ge, Ott, Ramos, Upcroft 2016), from the paper.

Per frame: predict every target with the constant-velocity filter (`sort_kalman`); score each
detection against each predicted box by IoU; solve the assignment optimally (Hungarian, maximising
total IoU), then reject assigned pairs that overlap less than `iou_threshold`; correct matched
targets; start a target for every unmatched detection; delete a target that has gone more than
`max_age` frames without a detection.

A target is reported in a frame only when it was matched in that frame and has been matched in
`min_hits` consecutive frames since its birth frame (its birth detection not counted), or while
the sequence is still in its first `min_hits` frames, so the first frames are not empty. The box
reported is the filter's corrected state, not the raw detection. These rules, the settings
(max_age 1, min_hits 3, IoU 0.3) and the filter's noise make this reproduce the original SORT's
published FP/FN/ID switches exactly (tests/test_tracking_sort_baseline.py).

A baseline for bench/mot.py, not used by the agent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from agent.tracking.baselines.sort_kalman import SortKalmanFilter, tlwh_to_z, x_to_tlwh
from agent.tracking.iou_matching import iou_matrix

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class SortParams:
    max_age: int = 1
    min_hits: int = 3
    iou_threshold: float = 0.3


class Sort:
    """Call `update` once per frame, in order; it returns the (ids, tlwh boxes) reported."""

    def __init__(self, params: SortParams | None = None) -> None:
        self.params = params or SortParams()
        self.kf = SortKalmanFilter()
        self.mean, self.cov = self.kf.empty()
        self.ids: IntArray = np.empty(0, dtype=np.int64)
        self.streak: IntArray = np.empty(0, dtype=np.int64)
        self.since_update: IntArray = np.empty(0, dtype=np.int64)
        self.frame = 0
        self._next_id = 1

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def update(self, boxes_tlwh: Array) -> tuple[list[int], Array]:
        p = self.params
        self.frame += 1
        boxes = np.asarray(boxes_tlwh, dtype=np.float64).reshape(-1, 4)
        if len(self):
            self.mean, self.cov = self.kf.predict(self.mean, self.cov)
            # A streak counts consecutive matched frames: a target that missed the previous frame
            # starts again from zero.
            self.streak[self.since_update > 0] = 0
            self.since_update += 1
            predicted = x_to_tlwh(self.mean)
            valid = np.asarray(np.isfinite(predicted).all(axis=1), dtype=np.bool_)
            if not valid.all():
                self._keep(valid)
                predicted = predicted[valid]
        else:
            predicted = np.empty((0, 4))
        det_rows, track_rows = self._associate(boxes, predicted)
        z = tlwh_to_z(boxes)
        if track_rows.size:
            self.mean[track_rows], self.cov[track_rows] = self.kf.update(
                self.mean[track_rows], self.cov[track_rows], z[det_rows]
            )
            self.since_update[track_rows] = 0
            self.streak[track_rows] += 1
        unmatched = np.setdiff1d(np.arange(boxes.shape[0]), det_rows)
        if unmatched.size:
            mean, cov = self.kf.initiate(z[unmatched])
            k = unmatched.size
            self.mean = np.concatenate([self.mean, mean])
            self.cov = np.concatenate([self.cov, cov])
            self.ids = np.concatenate([self.ids, np.arange(self._next_id, self._next_id + k)])
            self._next_id += k
            self.streak = np.concatenate([self.streak, np.zeros(k, dtype=np.int64)])
            self.since_update = np.concatenate([self.since_update, np.zeros(k, dtype=np.int64)])
        shown = (self.since_update == 0) & ((self.streak >= p.min_hits) | (self.frame <= p.min_hits))
        out = (self.ids[shown].tolist(), x_to_tlwh(self.mean[shown]))
        alive = self.since_update <= p.max_age
        if not alive.all():
            self._keep(alive)
        return out

    def _associate(self, boxes: Array, predicted: Array) -> tuple[IntArray, IntArray]:
        """(detection rows, track rows) of the accepted pairs."""
        empty = np.empty(0, dtype=np.int64)
        if boxes.shape[0] == 0 or predicted.shape[0] == 0:
            return empty, empty
        iou = iou_matrix(boxes, predicted)
        rows, cols = linear_sum_assignment(iou, maximize=True)
        ok = iou[rows, cols] >= self.params.iou_threshold
        return rows[ok].astype(np.int64), cols[ok].astype(np.int64)

    def _keep(self, mask: npt.NDArray[np.bool_]) -> None:
        self.mean, self.cov = self.mean[mask], self.cov[mask]
        self.ids, self.streak, self.since_update = self.ids[mask], self.streak[mask], self.since_update[mask]
