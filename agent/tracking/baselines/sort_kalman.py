"""SORT's constant-velocity Kalman filter on box centre, scale (area) and aspect ratio.

Bewley et al. 2016, section 3.2: the state of a target is x = [u, v, s, r, u', v', s'] with (u, v)
the box centre, s its area and r its aspect ratio w / h; r is taken as constant, so it has no
velocity. A detection observes [u, v, s, r].

Noise settings are SORT's (fixed in pixels, not scaled with the box as in Deep SORT):
- measurement noise R = diag(1, 1, 10, 10): area and aspect are noisier than the centre;
- process noise Q = diag(1, 1, 1, 1, 0.01, 0.01, 0.0001): velocities change slowly, the area's
  velocity slowest;
- initial covariance P0 = 10 * diag(1, 1, 1, 1, 1000, 1000, 1000): a first detection says nothing
  about velocity, so velocities start very uncertain ("high uncertainty to the unobservable initial
  velocities").

Batched over tracks with dense 7x7 matrices: SORT is the reference, so its filter is written the
textbook way (covariance update in Joseph form) rather than optimised.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

DIM_X = 7
DIM_Z = 4

MEASUREMENT_VARIANCE = np.array([1.0, 1.0, 10.0, 10.0])
PROCESS_VARIANCE = np.array([1.0, 1.0, 1.0, 1.0, 1e-2, 1e-2, 1e-4])
INITIAL_VARIANCE = 10.0 * np.array([1.0, 1.0, 1.0, 1.0, 1000.0, 1000.0, 1000.0])


def tlwh_to_z(boxes: Array) -> Array:
    """(n, 4) top-left x, y, width, height -> (n, 4) centre u, v, area s, aspect r."""
    w, h = boxes[:, 2], boxes[:, 3]
    return np.column_stack([boxes[:, 0] + 0.5 * w, boxes[:, 1] + 0.5 * h, w * h, w / h])


def x_to_tlwh(state: Array) -> Array:
    """(n, >=4) SORT states -> (n, 4) tlwh boxes; NaN rows where s * r is not positive."""
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.sqrt(state[:, 2] * state[:, 3])
        h = state[:, 2] / w
    return np.column_stack([state[:, 0] - 0.5 * w, state[:, 1] - 0.5 * h, w, h])


class SortKalmanFilter:
    """Constant velocity on u, v and s; r constant. All methods take and return batches."""

    def __init__(self) -> None:
        f = np.eye(DIM_X)
        f[0, 4] = f[1, 5] = f[2, 6] = 1.0
        self.transition = f
        self.observation = np.eye(DIM_Z, DIM_X)
        self.process_noise = np.diag(PROCESS_VARIANCE)
        self.measurement_noise = np.diag(MEASUREMENT_VARIANCE)

    @staticmethod
    def empty() -> tuple[Array, Array]:
        return np.zeros((0, DIM_X)), np.zeros((0, DIM_X, DIM_X))

    def initiate(self, z: Array) -> tuple[Array, Array]:
        """New tracks at (n, 4) measurements, at rest, with the initial covariance."""
        n = z.shape[0]
        mean = np.zeros((n, DIM_X))
        mean[:, :DIM_Z] = z
        cov = np.broadcast_to(np.diag(INITIAL_VARIANCE), (n, DIM_X, DIM_X)).copy()
        return mean, cov

    def predict(self, mean: Array, cov: Array) -> tuple[Array, Array]:
        """x' = F x, P' = F P F^T + Q. An area velocity that would shrink the box to nothing is
        dropped first, so a shrinking target stops shrinking instead of turning inside out."""
        mean = mean.copy()
        collapsing = mean[:, 2] + mean[:, 6] <= 0
        mean[collapsing, 6] = 0.0
        f = self.transition
        new_mean = mean @ f.T
        new_cov = f @ cov @ f.T + self.process_noise
        return new_mean, new_cov

    def update(self, mean: Array, cov: Array, z: Array) -> tuple[Array, Array]:
        """Correct row i with measurement row i: K = P H^T S^-1; P = (I - KH) P (I - KH)^T + K R K^T."""
        h = self.observation
        s = h @ cov @ h.T + self.measurement_noise
        pht = cov @ h.T  # (n, 7, 4)
        gain = np.linalg.solve(s, np.swapaxes(pht, 1, 2)).swapaxes(1, 2)  # S symmetric
        residual = z - mean[:, :DIM_Z]
        new_mean = mean + np.einsum("nij,nj->ni", gain, residual)
        i_kh = np.eye(DIM_X) - gain @ h
        new_cov = i_kh @ cov @ np.swapaxes(i_kh, 1, 2) + gain @ self.measurement_noise @ np.swapaxes(
            gain, 1, 2
        )
        return new_mean, new_cov
