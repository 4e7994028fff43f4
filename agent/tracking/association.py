"""Deep SORT's association step: which predicted track takes which detection this frame.

Two stages, as in the paper: a matching cascade over confirmed tracks (most recently seen first),
on appearance blended with motion, all gated by Mahalanobis distance; then IoU matching of what is
left (tentative tracks and confirmed ones that missed only the previous frame) against the
remaining detections. The tracker owns the tracks and their state; this only reads them.

Pure: no I/O, no images.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from agent.tracking.detection import xyah_to_tlwh
from agent.tracking.iou_matching import iou_cost
from agent.tracking.kalman_filter import KalmanFilter
from agent.tracking.linear_assignment import INFEASIBLE, assign, matching_cascade
from agent.tracking.nn_matching import nearest_neighbor_cosine
from agent.tracking.track import TrackTable

if TYPE_CHECKING:
    # Only a type here: the tracker imports this module, so a runtime import would be circular.
    from agent.tracking.tracker import TrackerParams

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
    ) -> tuple[IntArray, IntArray]:
        """Matched (track row, detection column) pairs: the cascade's first, then the IoU stage's.

        The tracks must already be predicted to this frame; `innovation` is the filter's projection
        of them, passed in because the tracker reuses it for the Kalman update of the matches.
        """
        p = self.params
        m = boxes.shape[0]
        all_cols = np.arange(m, dtype=np.intp)
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
                far = np.zeros(scaled.shape, dtype=np.bool_)
            else:
                # The gate of a track missing for many frames grows wide; it would snap to any
                # detection inside it, and colour alone does not stop it (people dress alike).
                # Asking for a little overlap with the predicted box keeps re-identification
                # local; only a face may claim a detection beyond it.
                scaled = mahalanobis / p.gating_threshold
                far = overlap_cost > 1.0 - p.min_motion_iou
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
            free = np.ones(m, dtype=np.bool_)
            free[cascade_cols] = False
            remaining = free.nonzero()[0]
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
