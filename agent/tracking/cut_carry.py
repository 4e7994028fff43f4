"""Which tracks may cross a scene cut: only those a face on the new shot says are the same person.

After a cut (agent.vision.scene_cut) the picture is another shot: a box at a track's predicted
place is somebody else, so position and motion say nothing. Colour histograms do not say who
someone is either (two people in dark clothes match). A face does: a track continues over a cut
only when a detection of the new frame carries a face within `max_face_distance` (cosine) of the
track's own faces, each pair one to one, the closest pairs first. Every other track ends at the cut.

Pure: face galleries and face features in, pairs out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from agent.tracking.nn_matching import FeatureGallery, nearest_neighbor_cosine


def face_carry_over(
    face_galleries: Sequence[FeatureGallery | None],
    faces: npt.NDArray[np.float32] | None,
    max_face_distance: float,
) -> list[tuple[int, int]]:
    """(track row, detection column) pairs whose faces agree; rows with no face never pair.

    `faces` is (m, d) with NaN rows for detections without a face, or None when none has one.
    """
    if faces is None or not len(face_galleries) or faces.shape[0] == 0:
        return []
    with_face = np.flatnonzero(~np.isnan(faces).any(axis=1))
    if with_face.size == 0:
        return []
    distance = nearest_neighbor_cosine(face_galleries, faces[with_face])
    # NaN is a track with no face yet: it cannot prove who it is.
    cost = np.where(np.isnan(distance) | (distance > max_face_distance), np.inf, distance)
    feasible = np.isfinite(cost)
    if not feasible.any():
        return []
    # Infeasible pairs get a cost no feasible assignment can beat, then are dropped.
    big = float(cost[feasible].max()) + 1.0 + len(face_galleries)
    rows, cols = linear_sum_assignment(np.where(feasible, cost, big))
    return [
        (int(r), int(with_face[c]))
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
        if feasible[r, c]
    ]
