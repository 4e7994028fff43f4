"""Deep SORT's association step: which predicted track takes which detection this frame.

Two stages, as in the paper: a matching cascade over confirmed tracks (most recently seen first),
on appearance blended with motion, all gated by Mahalanobis distance; then IoU matching of what is
left (tentative tracks and confirmed ones that missed only the previous frame) against the
remaining detections. Each optional, behind its TrackerParams setting: OC-SORT's direction term in
the cascade, ByteTrack's third stage for low-score detections, OC-SORT's recovery stage last.
The tracker owns the tracks and their state; this only reads them.

Pure: no I/O, no images.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from agent.tracking.detection import xyah_to_tlwh
from agent.tracking.iou_matching import iou_cost
from agent.tracking.kalman_filter import KalmanFilter
from agent.tracking.linear_assignment import INFEASIBLE, assign, matching_cascade
from agent.tracking.nn_matching import nearest_neighbor_cosine
from agent.tracking.observation_centric import direction_cost
from agent.tracking.params import TrackerParams
from agent.tracking.track import TrackTable

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


class Associator:
    """Matches predicted tracks to detections with the tracker's settings and Kalman filter."""

    def __init__(self, params: TrackerParams, kf: KalmanFilter):
        self.params = params
        self.kf = kf

    def associate(
        self,
        t: TrackTable,
        boxes: Array,
        measurements: Array,
        innovation: tuple[Array, Array, Array],
        feats: npt.NDArray[np.float32] | None,
        faces: npt.NDArray[np.float32] | None,
        low: npt.NDArray[np.bool_] | None = None,
    ) -> tuple[IntArray, IntArray]:
        """Matched (track row, detection column) pairs, stage by stage in the order they matched.

        The tracks must already be predicted to this frame; `innovation` is the filter's projection
        of them, passed in because the tracker reuses it for the Kalman update of the matches.
        `low` marks ByteTrack's low-score detections: only the low-score stage may take them.
        """
        p = self.params
        m = boxes.shape[0]
        high_cols = np.arange(m, dtype=np.intp) if low is None else (~low).nonzero()[0]
        rows, cols = self._deep_sort_stages(t, boxes, measurements, innovation, feats, faces, high_cols)
        if low is not None and low.any():
            # Low-score boxes are kept for tracks that were seen a frame ago and still have no
            # detection: where a track predicts a person, a weak box is likely that person.
            free_rows = _free(len(t), rows)
            free_rows &= t.time_since_update == 1
            low_cols = low.nonzero()[0]
            predicted_tlwh = xyah_to_tlwh(t.mean)
            rows, cols = _extend(
                rows, cols, *_iou_stage(predicted_tlwh, boxes, free_rows, low_cols, p.low_match_iou)
            )
        if p.recovery_min_iou > 0:
            free_rows = _free(len(t), rows) & t.confirmed
            free_cols = high_cols[_free(m, cols)[high_cols]]
            observed_tlwh = xyah_to_tlwh(t.observation)
            rows, cols = _extend(
                rows, cols, *_iou_stage(observed_tlwh, boxes, free_rows, free_cols, p.recovery_min_iou)
            )
        return rows, cols

    def _deep_sort_stages(
        self,
        t: TrackTable,
        boxes: Array,
        measurements: Array,
        innovation: tuple[Array, Array, Array],
        feats: npt.NDArray[np.float32] | None,
        faces: npt.NDArray[np.float32] | None,
        all_cols: IntArray,
    ) -> tuple[IntArray, IntArray]:
        """The paper's cascade, then its IoU stage, over the detection columns `all_cols`."""
        p = self.params
        m = boxes.shape[0]
        mahalanobis = self.kf.gating_distance(t.mean, t.cov, measurements, innovation=innovation)
        gated = mahalanobis > p.gating_threshold
        predicted_tlwh = xyah_to_tlwh(t.mean)

        confirmed_rows = t.confirmed.nonzero()[0]
        cascade_rows: IntArray = np.empty(0, dtype=np.intp)
        cascade_cols: IntArray = np.empty(0, dtype=np.intp)
        if confirmed_rows.size:
            # Every cost is scaled by its own threshold so the cascade has one ceiling, 1.0.
            overlap_cost = iou_cost(predicted_tlwh, boxes)
            if p.motion_cost == "iou":
                scaled = overlap_cost / max(p.max_iou_distance, 1e-9)
            else:
                scaled = mahalanobis / p.gating_threshold
            # The gate of a track missing for many frames grows wide; it would snap to any
            # detection inside it, and colour alone does not stop it (people dress alike).
            # Asking for a little overlap with the predicted box keeps re-identification local;
            # only a face may claim a detection beyond it. (With the IoU cost and no appearance,
            # the cost ceiling already asks for more overlap than this.)
            far = overlap_cost > 1.0 - p.min_motion_iou
            if p.direction_weight > 0:
                scaled = scaled + p.direction_weight * direction_cost(t.observed_centres, measurements[:, :2])
            motion = np.where(far, INFEASIBLE, scaled)
            cost = motion
            if feats is not None or faces is not None:
                appearance = np.full_like(motion, np.nan)
                face_decided = np.zeros(motion.shape, dtype=np.bool_)
                if feats is not None:
                    # A zero threshold (allowed by the config) accepts only identical features.
                    appearance = nearest_neighbor_cosine(t.galleries, feats) / max(
                        p.max_cosine_distance, 1e-9
                    )
                if faces is not None:
                    appearance, face_decided = self._face_override(t, appearance, faces)
                # Refuse pairs whose appearance is beyond its threshold, then blend in motion.
                # A track with no gallery yet (born while no features came) is matched on motion.
                known = ~np.isnan(appearance)
                # Beyond the IoU floor only strong evidence may claim a detection: a face, or
                # colour well inside its gate (a person who turned back while hidden).
                sure = face_decided | (appearance <= p.far_cosine_fraction)
                blend_motion = np.where(far & ~sure, INFEASIBLE, np.minimum(scaled, 1.0))
                blended = p.motion_weight * blend_motion + (1.0 - p.motion_weight) * appearance
                cost = np.where(known, np.where(appearance > 1.0, INFEASIBLE, blended), motion)
            cost = np.where(gated, INFEASIBLE, cost)
            cascade_rows, cascade_cols = matching_cascade(
                cost, 1.0, confirmed_rows, t.time_since_update[confirmed_rows], all_cols
            )

        # IoU stage: tentative tracks and confirmed ones that missed only the previous frame.
        candidate = ~t.confirmed | (t.time_since_update == 1)
        if cascade_rows.size:
            candidate[cascade_rows] = False
            remaining = all_cols[_free(m, cascade_cols)[all_cols]]
        else:
            remaining = all_cols
        candidate_rows = candidate.nonzero()[0]
        if candidate_rows.size == 0 or remaining.size == 0:
            return cascade_rows, cascade_cols
        # Only the few leftover pairs need an IoU: most frames the cascade has matched everyone.
        iou = iou_cost(predicted_tlwh[candidate_rows], boxes[remaining])
        r, c = assign(iou, p.max_iou_distance)
        iou_rows, iou_cols = candidate_rows[r], remaining[c]
        return np.concatenate([cascade_rows, iou_rows]), np.concatenate([cascade_cols, iou_cols])

    def _face_override(
        self, t: TrackTable, cost: Array, faces: npt.NDArray[np.float32]
    ) -> tuple[Array, npt.NDArray[np.bool_]]:
        """Where a track's face gallery and a detection's face both exist, face distance decides.

        A face is far stronger identity evidence than clothing colour: it both rescues a match
        the histogram would refuse (lighting change) and vetoes one it would accept (two people in
        similar clothes). Returns the costs and where a face decided them.
        """
        decided = np.zeros(cost.shape, dtype=np.bool_)
        has_face = ~np.isnan(faces).any(axis=1)
        if not has_face.any():
            return cost, decided
        cols = np.flatnonzero(has_face)
        face_distance = nearest_neighbor_cosine(t.face_galleries, faces[cols]) / self.params.max_face_distance
        out = cost.copy()
        sub = out[:, cols]
        known = ~np.isnan(face_distance)
        out[:, cols] = np.where(known, face_distance, sub)
        decided[:, cols] = known
        return out, decided


def _free(size: int, taken: IntArray) -> npt.NDArray[np.bool_]:
    free = np.ones(size, dtype=np.bool_)
    free[taken] = False
    return free


def _iou_stage(
    track_tlwh: Array, boxes: Array, rows_mask: npt.NDArray[np.bool_], cols: IntArray, min_iou: float
) -> tuple[IntArray, IntArray]:
    """Hungarian on 1 - IoU between the masked tracks' boxes and the detections `cols`."""
    rows = rows_mask.nonzero()[0]
    if rows.size == 0 or cols.size == 0:
        return rows[:0], cols[:0]
    r, c = assign(iou_cost(track_tlwh[rows], boxes[cols]), 1.0 - min_iou)
    return rows[r], cols[c]


def _extend(
    rows: IntArray, cols: IntArray, more_rows: IntArray, more_cols: IntArray
) -> tuple[IntArray, IntArray]:
    if more_rows.size == 0:
        return rows, cols
    return np.concatenate([rows, more_rows]), np.concatenate([cols, more_cols])
