"""Camera-motion compensation for the tracks (BoT-SORT, Aharon, Orfaig, Bobrovsky 2022), from the paper.

A moving or shaking camera moves every person in the picture at once; the constant-velocity
filter sees it as everyone accelerating, and a predicted box lands beside its person. Given the
image motion from the previous frame to this one as a 2x3 similarity transform [A | t] (estimated
on the pixels by agent.vision.camera_motion), the predicted states are moved with the picture
before they are matched: centre c -> A c + t, centre velocity v -> A v, height and its velocity
times the scale s = sqrt(|det A|), aspect ratio unchanged.

The covariances stay exact in the filter's compact form (kalman_filter.py) for a similarity
transform: x and y of a track always carry equal variances (both are set from the height), and a
rotation leaves an isotropic 2x2 block as it is; only the scale changes them, by s^2.

Pure: arrays in, arrays out.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from agent.tracking.kalman_filter import NDIM

Array = npt.NDArray[np.float64]


def as_warp(warp: npt.ArrayLike) -> Array:
    """A checked (2, 3) float transform."""
    out = np.asarray(warp, dtype=np.float64)
    if out.shape != (2, 3):
        raise ValueError(f"camera_warp must be a (2, 3) transform, got shape {out.shape}")
    if not np.isfinite(out).all():
        raise ValueError("camera_warp contains NaN or inf")
    if abs(float(np.linalg.det(out[:, :2]))) < 1e-6:
        raise ValueError("camera_warp is singular")
    return out


def scale_of(warp: Array) -> float:
    return float(np.sqrt(abs(np.linalg.det(warp[:, :2]))))


def warp_states(mean: Array, cov: Array, warp: Array) -> tuple[Array, Array]:
    """Kalman states (n, 8) and compact covariances (n, 3, 4) moved with the picture."""
    a, t = warp[:, :2], warp[:, 2]
    s = scale_of(warp)
    out = mean.copy()
    out[:, 0:2] = mean[:, 0:2] @ a.T + t
    out[:, NDIM : NDIM + 2] = mean[:, NDIM : NDIM + 2] @ a.T
    out[:, 3] = mean[:, 3] * s
    out[:, NDIM + 3] = mean[:, NDIM + 3] * s
    out_cov = cov.copy()
    # x, y and h (columns 0, 1, 3) scale with the picture; the aspect ratio (column 2) does not.
    out_cov[:, :, [0, 1, 3]] *= s * s
    return out, out_cov


def warp_points(points: Array, warp: Array) -> Array:
    """(..., 2) points moved with the picture."""
    moved: Array = points @ warp[:, :2].T + warp[:, 2]
    return moved
