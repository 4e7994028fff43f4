"""The picture's own motion between two frames (a moving or shaking camera), for the tracker.

BoT-SORT's camera-motion compensation (Aharon et al. 2022) estimates it with sparse optical flow;
so does this: corners on a small grey copy of the previous frame, followed into the current one
(pyramidal Lucas-Kanade), then a similarity transform (rotation, uniform scale, translation)
fitted with RANSAC, so the people moving against the background are outvoted as outliers. The
transform maps previous-frame pixels to current-frame pixels, the form `Tracker.update` takes as
`camera_warp`. When too few points follow, it says "no motion" (the identity): a wrong warp would
move every track, no warp leaves the filter as it was without compensation.

No I/O; one `CameraMotionEstimator` per camera (it keeps the previous grey frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from agent.vision.types import Frame

Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CameraMotionParams:
    # Height of the grey copy the flow is computed on (the width follows the frame's aspect).
    height: int = 270
    max_corners: int = 300
    # Fewest points that must follow into the new frame, and agree, for a warp to be trusted.
    min_inliers: int = 20
    # RANSAC reprojection threshold, in pixels of the small copy.
    ransac_threshold: float = 2.0


def identity() -> Array:
    return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


class CameraMotionEstimator:
    """Call `estimate` once per frame, in order; the first frame gives the identity."""

    def __init__(self, params: CameraMotionParams | None = None) -> None:
        self.params = params or CameraMotionParams()
        self._previous: npt.NDArray[np.uint8] | None = None
        self.last_inliers = 0

    def estimate(self, frame: Frame) -> Array:
        """(2, 3) transform from the previous frame's pixels to this frame's."""
        p = self.params
        h, w = frame.shape[:2]
        scale = min(1.0, p.height / max(h, 1))
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        small = cv2.resize(
            grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
        previous, self._previous = self._previous, np.asarray(small, dtype=np.uint8)
        self.last_inliers = 0
        if previous is None or previous.shape != small.shape:
            return identity()
        corners = cv2.goodFeaturesToTrack(previous, p.max_corners, 0.01, 5)
        if corners is None or len(corners) < p.min_inliers:
            return identity()
        # nextPts is an output here (no OPTFLOW_USE_INITIAL_FLOW); passed only to satisfy the stubs.
        moved, status, _ = cv2.calcOpticalFlowPyrLK(previous, small, corners, np.empty_like(corners))
        ok = status.reshape(-1) == 1
        if int(ok.sum()) < p.min_inliers:
            return identity()
        warp, inliers = cv2.estimateAffinePartial2D(
            corners[ok], moved[ok], method=cv2.RANSAC, ransacReprojThreshold=p.ransac_threshold
        )
        if warp is None or inliers is None or int(inliers.sum()) < p.min_inliers:
            return identity()
        self.last_inliers = int(inliers.sum())
        out = np.asarray(warp, dtype=np.float64)
        # The fit is in small-copy pixels: rotation and scale carry over, the shift scales up.
        out[:, 2] /= scale
        return out
