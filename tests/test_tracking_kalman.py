"""Kalman filter numbers checked against hand arithmetic (paper noise: h/20 position, h/160 velocity)."""

from __future__ import annotations

import numpy as np
import pytest

from agent.tracking.kalman_filter import CHI2_95, KalmanFilter

# One person box: centre (10, 20), aspect 0.5, height 100 -> position std 5, velocity std 0.625.
MEASUREMENT = np.array([[10.0, 20.0, 0.5, 100.0]])


def test_initiate_sets_zero_velocity_and_height_scaled_variances() -> None:
    kf = KalmanFilter()
    mean, compact = kf.initiate(MEASUREMENT)
    cov = kf.dense(compact)
    np.testing.assert_allclose(mean[0], [10, 20, 0.5, 100, 0, 0, 0, 0])
    # Position std is 2 * 5 = 10; aspect std 2 * 0.1; velocity std 10 * 0.625 = 6.25.
    expected = [100.0, 100.0, 0.04, 100.0, 39.0625, 39.0625, 1e-8, 39.0625]
    np.testing.assert_allclose(np.diag(cov[0]), expected, rtol=1e-12)
    assert np.count_nonzero(cov[0] - np.diag(np.diag(cov[0]))) == 0


def test_predict_adds_velocity_variance_and_process_noise() -> None:
    kf = KalmanFilter()
    mean, cov = kf.initiate(MEASUREMENT)
    mean[0, 4] = 3.0  # 3 px/frame to the right
    mean, compact = kf.predict(mean, cov)
    cov = kf.dense(compact)
    np.testing.assert_allclose(mean[0, :4], [13.0, 20.0, 0.5, 100.0])
    # var(x) = 100 + 39.0625 (from velocity) + 5^2 (process) = 164.0625
    assert cov[0, 0, 0] == pytest.approx(164.0625)
    # cov(x, vx) = var(vx) = 39.0625; var(vx) = 39.0625 + 0.625^2 = 39.453125
    assert cov[0, 0, 4] == pytest.approx(39.0625)
    assert cov[0, 4, 4] == pytest.approx(39.453125)
    # aspect: 0.04 + 1e-8 + 0.01^2
    assert cov[0, 2, 2] == pytest.approx(0.04 + 1e-8 + 1e-4)


def test_update_moves_towards_measurement_by_the_kalman_gain() -> None:
    kf = KalmanFilter()
    mean, cov = kf.predict(*kf.initiate(MEASUREMENT))
    new_mean, compact = kf.update(mean, cov, np.array([[12.0, 20.0, 0.5, 100.0]]))
    new_cov = kf.dense(compact)
    # S_xx = 164.0625 + 5^2 = 189.0625; gain on x = 164.0625 / 189.0625
    gain_x = 164.0625 / 189.0625
    assert new_mean[0, 0] == pytest.approx(10.0 + 2.0 * gain_x)
    # the velocity learns from the innovation through cov(x, vx) = 39.0625
    assert new_mean[0, 4] == pytest.approx(2.0 * 39.0625 / 189.0625)
    assert new_mean[0, 1] == pytest.approx(20.0)
    assert new_cov[0, 0, 0] == pytest.approx(164.0625 * 25.0 / 189.0625)
    np.testing.assert_allclose(new_cov[0], new_cov[0].T)


def test_compact_steps_equal_the_textbook_8x8_formulas() -> None:
    """predict: F P F^T + Q; update: K = P H^T S^-1, x + K (z - H x), P - K S K^T; gate: d^T S^-1 d."""
    kf = KalmanFilter()
    rng = np.random.default_rng(3)
    n = 6
    meas = np.column_stack(
        [rng.uniform(0, 500, n), rng.uniform(0, 300, n), rng.uniform(0.3, 0.6, n), rng.uniform(50, 200, n)]
    )
    mean, cov = kf.initiate(meas)
    f = np.eye(8)
    f[:4, 4:] = np.eye(4)
    h = np.eye(4, 8)
    for step in range(5):
        dense = kf.dense(cov)
        # Q from the paper's numbers, not from the filter: position and height std h/20, velocity
        # std h/160, aspect 1e-2 and its velocity 1e-5 (Wojke et al. 2017 / KalmanFilter defaults).
        q = np.stack(
            [
                np.diag(
                    [
                        (h_ / 20) ** 2,
                        (h_ / 20) ** 2,
                        1e-4,
                        (h_ / 20) ** 2,
                        (h_ / 160) ** 2,
                        (h_ / 160) ** 2,
                        1e-10,
                        (h_ / 160) ** 2,
                    ]
                )
                for h_ in mean[:, 3]
            ]
        )
        expected_mean = mean @ f.T
        expected_cov = f @ dense @ f.T + q
        mean, cov = kf.predict(mean, cov)
        np.testing.assert_allclose(mean, expected_mean)
        np.testing.assert_allclose(kf.dense(cov), expected_cov, rtol=1e-12)
        dense = kf.dense(cov)
        r = np.stack([np.diag([(h_ / 20) ** 2, (h_ / 20) ** 2, 0.01, (h_ / 20) ** 2]) for h_ in mean[:, 3]])
        s = h @ dense @ h.T + r
        z = meas + rng.normal(0, 3, meas.shape) + step
        d = z[None, :, :] - mean[:, None, :4]
        expected_gate = np.einsum("nmi,nij,nmj->nm", d, np.linalg.inv(s), d)
        np.testing.assert_allclose(kf.gating_distance(mean, cov, z), expected_gate, rtol=1e-10)
        gain = dense @ h.T @ np.linalg.inv(s)
        expected_mean = mean + np.einsum("nij,nj->ni", gain, z - mean[:, :4])
        expected_cov = dense - gain @ s @ np.swapaxes(gain, 1, 2)
        mean, cov = kf.update(mean, cov, z)
        np.testing.assert_allclose(mean, expected_mean, rtol=1e-10)
        np.testing.assert_allclose(kf.dense(cov), expected_cov, rtol=1e-9, atol=1e-12)


def test_batch_equals_one_by_one() -> None:
    kf = KalmanFilter()
    rng = np.random.default_rng(0)
    meas = np.column_stack(
        [rng.uniform(0, 500, 5), rng.uniform(0, 300, 5), rng.uniform(0.3, 0.6, 5), rng.uniform(50, 200, 5)]
    )
    mean, cov = kf.predict(*kf.initiate(meas))
    z = meas + rng.normal(0, 2, meas.shape)
    batch_mean, batch_cov = kf.update(mean, cov, z)
    for i in range(5):
        m1, c1 = kf.update(mean[i : i + 1], cov[i : i + 1], z[i : i + 1])
        np.testing.assert_allclose(batch_mean[i], m1[0])
        np.testing.assert_allclose(batch_cov[i], c1[0])


def test_gating_distance_is_squared_mahalanobis_and_gates_beyond_chi2() -> None:
    kf = KalmanFilter()
    mean, cov = kf.predict(*kf.initiate(MEASUREMENT))
    # After one predict S is diagonal in x: var 189.0625, std 13.75.
    sigma = 13.75
    inside = MEASUREMENT + np.array([[2.9 * sigma, 0, 0, 0]])
    outside = MEASUREMENT + np.array([[3.1 * sigma, 0, 0, 0]])
    d = kf.gating_distance(mean, cov, np.vstack([MEASUREMENT, inside, outside]))
    np.testing.assert_allclose(d[0], [0.0, 2.9**2, 3.1**2], rtol=1e-9)
    assert CHI2_95[4] == pytest.approx(9.4877)
    assert d[0, 1] <= CHI2_95[4] < d[0, 2]
