"""CLEAR-MOT (MOTA, ID switches, FP, FN) and IDF1, the way py-motmetrics 1.4 computes them, fast.

bench/mot_select.py scores hundreds of tracker settings; py-motmetrics' pandas accumulator takes
most of each run. This module does the same arithmetic on plain arrays: per frame, a ground-truth
object keeps the hypothesis it matched before if they still overlap (IoU >= 0.5), the rest are
matched by the Hungarian method on 1 - IoU, and a switch is a match to a different hypothesis than
the object's last; IDF1 takes the one-to-one identity mapping that maximises co-occurring frames
(Ristani et al. 2016). tests/test_tracking_mot.py checks it equals py-motmetrics on real runs, and
every number quoted in docs comes from py-motmetrics itself (bench/mot.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from agent.tracking.iou_matching import iou_matrix

Array = npt.NDArray[np.float64]
FrameBoxes = tuple[list[int], Array]

# Above any real distance (<= 0.5): the assignment first maximises the number of valid matches.
_EXPENSIVE = 1e6


def clear_mot_idf1(gt: Sequence[FrameBoxes], hyp: Sequence[FrameBoxes]) -> dict[str, float]:
    """MOTA and IDF1 in percent (2 decimals), and idsw, fp, fn counts, for one sequence."""
    last: dict[int, int] = {}
    fp = fn = switches = n_gt = n_hyp = 0
    pairs: dict[tuple[int, int], int] = {}
    gt_ids: set[int] = set()
    hyp_ids: set[int] = set()
    for (g_ids, g_boxes), (h_ids, h_raw) in zip(gt, hyp, strict=True):
        h_boxes = np.round(np.asarray(h_raw, dtype=np.float64).reshape(-1, 4), 2)
        n_g, n_h = len(g_ids), len(h_ids)
        n_gt += n_g
        n_hyp += n_h
        gt_ids.update(g_ids)
        hyp_ids.update(h_ids)
        if n_g == 0 or n_h == 0:
            fn += n_g
            fp += n_h
            continue
        distance = 1.0 - iou_matrix(np.asarray(g_boxes, dtype=np.float64), h_boxes)
        valid = distance <= 0.5
        for i, j in zip(*np.nonzero(valid), strict=True):
            key = (g_ids[int(i)], h_ids[int(j)])
            pairs[key] = pairs.get(key, 0) + 1
        g_done = np.zeros(n_g, dtype=np.bool_)
        h_done = np.zeros(n_h, dtype=np.bool_)
        column = {h: j for j, h in enumerate(h_ids)}
        for i, g in enumerate(g_ids):
            j = column.get(last.get(g, -1), -1)
            if j >= 0 and not h_done[j] and valid[i, j]:
                g_done[i] = h_done[j] = True
        open_pairs = valid & ~g_done[:, None] & ~h_done[None, :]
        if open_pairs.any():
            rows, cols = linear_sum_assignment(np.where(open_pairs, distance, _EXPENSIVE))
            for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
                if not open_pairs[i, j]:
                    continue
                g, h = g_ids[i], h_ids[j]
                if g in last and last[g] != h:
                    switches += 1
                last[g] = h
                g_done[i] = h_done[j] = True
        fn += int((~g_done).sum())
        fp += int((~h_done).sum())
    g_index = {g: i for i, g in enumerate(sorted(gt_ids))}
    h_index = {h: j for j, h in enumerate(sorted(hyp_ids))}
    together = np.zeros((len(g_index), len(h_index)))
    for (g, h), count in pairs.items():
        together[g_index[g], h_index[h]] = count
    id_tp = 0.0
    if together.size:
        rows, cols = linear_sum_assignment(together, maximize=True)
        id_tp = float(together[rows, cols].sum())
    mota = 1.0 - (fn + fp + switches) / max(n_gt, 1)
    idf1 = 2.0 * id_tp / max(n_gt + n_hyp, 1)
    return {
        "mota": round(100.0 * mota, 2),
        "idf1": round(100.0 * idf1, 2),
        "idsw": switches,
        "fp": fp,
        "fn": fn,
    }
