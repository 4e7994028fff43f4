"""Hungarian assignment with a cost ceiling, and the matching cascade by time since update.

Both work on a precomputed cost matrix (tracks x detections) with gated entries already set to
`INFEASIBLE`; the cascade only slices it, so no cost is computed twice.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

# Larger than any real cost; kept finite because linear_sum_assignment rejects an all-inf row.
INFEASIBLE = 1e5

_EMPTY = np.empty(0, dtype=np.intp)


def assign(sub: Array, max_distance: float) -> tuple[IntArray, IntArray]:
    """Hungarian on a cost block; (row, col) positions of the pairs at or under max_distance."""
    feasible = sub <= max_distance
    if not feasible.any():
        return _EMPTY, _EMPTY
    # Entries above the ceiling are clamped to one value just above it, so the solver never
    # trades a feasible pair for a cheaper-looking infeasible one.
    r, c = linear_sum_assignment(np.minimum(sub, max_distance + 1e-5))
    ok = feasible[r, c]
    return r[ok], c[ok]


def min_cost_matching(
    cost: Array, max_distance: float, rows: IntArray, cols: IntArray
) -> tuple[IntArray, IntArray]:
    """Optimal assignment of `rows` to `cols` of `cost`, dropping pairs costlier than max_distance.

    Returns (matched rows, matched cols) as indices into `cost`, pairwise aligned.
    """
    if rows.size == 0 or cols.size == 0:
        return _EMPTY, _EMPTY
    r, c = assign(cost[rows][:, cols], max_distance)
    return rows[r], cols[c]


def matching_cascade(
    cost: Array,
    max_distance: float,
    rows: IntArray,
    rows_time_since_update: IntArray,
    cols: IntArray,
) -> tuple[IntArray, IntArray]:
    """Assign detections level by level: tracks seen most recently choose first (Wojke et al. 2017).

    A track that has been missing for a while has a wide predicted covariance, so it would win
    ambiguous detections from tracks seen a frame ago; the cascade prevents it.
    Returns (matched rows, matched cols) as indices into `cost`.
    """
    if rows.size == 0 or cols.size == 0:
        return _EMPTY, _EMPTY
    block = cost[rows][:, cols]
    # Tracks with no feasible detection cannot match at any level: drop them up front, so the
    # loop below runs once per age that actually competes (usually once or twice), not max_age.
    has_option = (block <= max_distance).any(axis=1)
    if not has_option.any():
        return _EMPTY, _EMPTY
    block = block[has_option]
    rows = rows[has_option]
    levels = rows_time_since_update[has_option]
    if (levels == levels[0]).all():
        # One age competes (the usual frame): the cascade is a single assignment.
        r, c = assign(block, max_distance)
        return rows[r], cols[c]
    free = np.arange(cols.size)
    matched_rows: list[IntArray] = []
    matched_cols: list[IntArray] = []
    for level in np.unique(levels):
        in_level = (levels == level).nonzero()[0]
        r, c = assign(block[in_level][:, free], max_distance)
        if r.size:
            matched_rows.append(rows[in_level[r]])
            matched_cols.append(cols[free[c]])
            keep = np.ones(free.size, dtype=np.bool_)
            keep[c] = False
            free = free[keep]
            if free.size == 0:
                break
    if not matched_rows:
        return _EMPTY, _EMPTY
    return np.concatenate(matched_rows), np.concatenate(matched_cols)
