"""OC-SORT's observation-centric parts (Cao, Pang, Weng, Khirodkar, Kitani 2023), from the paper.

A Kalman filter that coasts through an occlusion keeps integrating its last velocity, and the
error it builds up while no observation arrives survives the occlusion. OC-SORT leans on the
observations instead:

- re-update (ORU): when a track matches again after a gap, restart its filter from the state it
  had at its last observation and run it along a straight virtual path of observations between
  the last observation and the new one, one per missed frame;
- momentum (OCM): a track's direction is taken from its observations a few frames apart, not
  from the filter; a detection lying in a very different direction costs more;
- recovery (OCR): a track still free after every stage may take a detection that overlaps its
  last observed box (a target that stopped while the filter kept it moving).

Pure: arrays in, arrays out.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from agent.tracking.kalman_filter import KalmanFilter

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Observed centres kept per track for its direction: the paper's delta t of 3 frames apart.
DIRECTION_SPAN = 3


def reupdate(
    kf: KalmanFilter,
    mean: Array,
    cov: Array,
    last_observation: Array,
    observation: Array,
    gaps: IntArray,
) -> tuple[Array, Array]:
    """Filter states after re-running each row from its last observed state over its gap.

    mean (k, 8) and cov (k, 3, 4): each row's state right after its last observation;
    last_observation, observation (k, 4) xyah; gaps (k,) frames from the last observation to now
    (>= 1). Step i of g feeds the point i/g of the way to the new observation, so the last step
    feeds the new observation itself.
    """
    mean = mean.copy()
    cov = cov.copy()
    steps = gaps.astype(np.float64)
    for i in range(1, int(gaps.max()) + 1):
        # Rows with shorter gaps are done; the rest advance one frame together.
        active = gaps >= i
        m, c = kf.predict(mean[active], cov[active])
        fraction = (i / steps[active])[:, None]
        virtual = last_observation[active] + fraction * (observation[active] - last_observation[active])
        mean[active], cov[active] = kf.update(m, c, virtual)
    return mean, cov


def directions(centres: Array) -> tuple[Array, npt.NDArray[np.bool_]]:
    """Unit direction (n, 2) from each track's oldest kept observed centre to its newest, and
    whether it is defined (the track has moved between them)."""
    delta = centres[:, -1] - centres[:, 0]
    norm = np.hypot(delta[:, 0], delta[:, 1])
    known = norm > 1e-6
    unit = np.zeros_like(delta)
    unit[known] = delta[known] / norm[known, None]
    return unit, known


def direction_cost(centres: Array, detection_centres: Array) -> Array:
    """(n, m) angle between each track's observed direction and the direction from its last
    observed centre to each detection, as a fraction of pi (0 same way, 1 opposite). Zero where
    a track has no direction yet or a detection sits on its last centre."""
    unit, known = directions(centres)
    delta = detection_centres[None, :, :] - centres[:, -1][:, None, :]
    norm = np.hypot(delta[..., 0], delta[..., 1])
    cosine = (delta[..., 0] * unit[:, None, 0] + delta[..., 1] * unit[:, None, 1]) / np.maximum(norm, 1e-6)
    angle = np.arccos(np.clip(cosine, -1.0, 1.0)) / np.pi
    return np.where(known[:, None] & (norm > 1e-6), angle, 0.0)
