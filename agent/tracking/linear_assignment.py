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


def min_cost_matching(
    cost: Array, max_distance: float, rows: IntArray, cols: IntArray
) -> tuple[IntArray, IntArray]:
    """Optimal assignment of `rows` to `cols` of `cost`, dropping pairs costlier than max_distance.

    Returns (matched rows, matched cols) as indices into `cost`, pairwise aligned.
    """
    if rows.size == 0 or cols.size == 0:
        return _EMPTY, _EMPTY
    sub = cost[np.ix_(rows, cols)]
    # Entries above the ceiling are clamped to one value just above it, so the solver never
    # trades a feasible pair for a cheaper-looking infeasible one.
    sub = np.minimum(sub, max_distance + 1e-5)
    r, c = linear_sum_assignment(sub)
    ok = sub[r, c] <= max_distance
    return rows[r[ok]], cols[c[ok]]


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
    """
    matched_rows: list[IntArray] = []
    matched_cols: list[IntArray] = []
    remaining = cols
    # One Hungarian per distinct age present, not per possible age up to max_age.
    for level in np.unique(rows_time_since_update):
        if remaining.size == 0:
            break
        level_rows = rows[rows_time_since_update == level]
        r, c = min_cost_matching(cost, max_distance, level_rows, remaining)
        if r.size:
            matched_rows.append(r)
            matched_cols.append(c)
            remaining = remaining[~np.isin(remaining, c)]
    if not matched_rows:
        return _EMPTY, _EMPTY
    return np.concatenate(matched_rows), np.concatenate(matched_cols)
