"""Constant-velocity Kalman filter on (x, y, a, h) for many tracks at once.

State per track (Wojke et al. 2017, section 2.1): box centre (x, y), aspect ratio a = w / h, height h,
and their velocities. Observation: the first four. Process and measurement noise scale with the box
height, so a near (tall) person is allowed to move more pixels per frame than a far one.

Every method works on a batch: means (n, 8), covariances (n, 8, 8). The tracker predicts all tracks
with one call, so the cost per frame is a handful of numpy calls whatever the number of tracks.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

# Chi-square 0.95 quantiles by degrees of freedom: the Mahalanobis gate (4 dof for x, y, a, h;
# 2 dof when gating on position only).
CHI2_95: dict[int, float] = {1: 3.8415, 2: 5.9915, 3: 7.8147, 4: 9.4877}

NDIM = 4


class KalmanFilter:
    """Batched constant-velocity filter; `dt` is one frame."""

    def __init__(self, std_weight_position: float = 1.0 / 20.0, std_weight_velocity: float = 1.0 / 160.0):
        self.std_weight_position = std_weight_position
        self.std_weight_velocity = std_weight_velocity
        transition = np.eye(2 * NDIM)
        transition[:NDIM, NDIM:] = np.eye(NDIM)
        self._transition = transition
        self._transition_t = np.ascontiguousarray(transition.T)
        self._diag8 = np.arange(2 * NDIM)
        self._diag4 = np.arange(NDIM)

    def _stds(self, height: Array, pos_scale: float, vel_scale: float, a_pos: float, a_vel: float) -> Array:
        """Per-track standard deviations (n, 8) of the state, proportional to height."""
        p = self.std_weight_position * pos_scale * height
        v = self.std_weight_velocity * vel_scale * height
        out = np.empty((height.shape[0], 2 * NDIM))
        out[:, 0] = p
        out[:, 1] = p
        out[:, 2] = a_pos
        out[:, 3] = p
        out[:, 4] = v
        out[:, 5] = v
        out[:, 6] = a_vel
        out[:, 7] = v
        return out

    def initiate(self, measurements: Array) -> tuple[Array, Array]:
        """New tracks from (n, 4) xyah measurements: zero velocity, wide velocity uncertainty."""
        n = measurements.shape[0]
        mean = np.zeros((n, 2 * NDIM))
        mean[:, :NDIM] = measurements
        std = self._stds(measurements[:, 3], 2.0, 10.0, 1e-2, 1e-5)
        cov = np.zeros((n, 2 * NDIM, 2 * NDIM))
        cov[:, self._diag8, self._diag8] = std * std
        return mean, cov

    def predict(self, mean: Array, cov: Array) -> tuple[Array, Array]:
        """One step ahead for all tracks: x' = F x, P' = F P F^T + Q."""
        new_mean = mean @ self._transition_t
        std = self._stds(mean[:, 3], 1.0, 1.0, 1e-2, 1e-5)
        new_cov = self._transition @ cov @ self._transition_t
        new_cov[:, self._diag8, self._diag8] += std * std
        return new_mean, new_cov

    def project(self, mean: Array, cov: Array) -> tuple[Array, Array]:
        """Distribution of the measurement: H x and H P H^T + R, with R proportional to height."""
        std = self._stds(mean[:, 3], 1.0, 0.0, 1e-1, 0.0)[:, :NDIM]
        innovation_cov = cov[:, :NDIM, :NDIM].copy()
        innovation_cov[:, self._diag4, self._diag4] += std * std
        return mean[:, :NDIM], innovation_cov

    def update(self, mean: Array, cov: Array, measurements: Array) -> tuple[Array, Array]:
        """Correct row i of (mean, cov) with measurement row i."""
        projected_mean, innovation_cov = self.project(mean, cov)
        # P H^T is the first four columns of P because H = [I 0].
        cross = cov[:, :, :NDIM]
        # K = P H^T S^-1, solved rather than inverted: S K^T = H P.
        gain = np.linalg.solve(innovation_cov, np.swapaxes(cross, 1, 2))  # (n, 4, 8) = K^T
        gain = np.swapaxes(gain, 1, 2)  # (n, 8, 4)
        innovation = measurements - projected_mean
        new_mean = mean + np.einsum("nij,nj->ni", gain, innovation)
        new_cov = cov - gain @ innovation_cov @ np.swapaxes(gain, 1, 2)
        return new_mean, new_cov

    def gating_distance(
        self, mean: Array, cov: Array, measurements: Array, only_position: bool = False
    ) -> Array:
        """Squared Mahalanobis distance (n_tracks, n_measurements) in measurement space."""
        projected_mean, innovation_cov = self.project(mean, cov)
        if only_position:
            projected_mean = projected_mean[:, :2]
            innovation_cov = innovation_cov[:, :2, :2]
            measurements = measurements[:, :2]
        diff = measurements[None, :, :] - projected_mean[:, None, :]  # (n, m, k)
        inverse = np.linalg.inv(innovation_cov)  # (n, k, k), k <= 4: inverse is cheap and exact enough
        distance: Array = np.einsum("nmi,nmi->nm", diff @ inverse, diff)
        return distance
