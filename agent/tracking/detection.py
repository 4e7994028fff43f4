"""Box conversions and the detector-side filters (minimum confidence, non-maximum suppression).

The tracker takes plain arrays of top-left-width-height boxes; these helpers convert them in batch.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


def tlwh_to_xyah(boxes: Array) -> Array:
    """(n, 4) top-left x, y, width, height -> centre x, centre y, aspect w/h, height."""
    out = np.empty_like(boxes, dtype=np.float64)
    height = boxes[:, 3]
    out[:, 0] = boxes[:, 0] + boxes[:, 2] * 0.5
    out[:, 1] = boxes[:, 1] + height * 0.5
    # A degenerate zero-height box would divide by zero; treat it as one pixel tall.
    out[:, 2] = boxes[:, 2] / np.maximum(height, 1e-6)
    out[:, 3] = height
    return out


def xyah_to_tlwh(state: Array) -> Array:
    """(n, >=4) centre x, centre y, aspect, height -> top-left x, y, width, height."""
    out = np.empty((state.shape[0], 4))
    width = state[:, 2] * state[:, 3]
    out[:, 0] = state[:, 0] - width * 0.5
    out[:, 1] = state[:, 1] - state[:, 3] * 0.5
    out[:, 2] = width
    out[:, 3] = state[:, 3]
    return out


def tlwh_to_tlbr(boxes: Array) -> Array:
    out = np.array(boxes, dtype=np.float64)
    out[:, 2:] += out[:, :2]
    return out


def non_max_suppression(boxes_tlwh: Array, scores: Array, max_overlap: float) -> IntArray:
    """Indices of the boxes kept by greedy NMS, best score first; max_overlap >= 1 keeps all."""
    n = boxes_tlwh.shape[0]
    if n == 0 or max_overlap >= 1.0:
        return np.arange(n, dtype=np.intp)
    tlbr = tlwh_to_tlbr(boxes_tlwh)
    area = boxes_tlwh[:, 2] * boxes_tlwh[:, 3]
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    # The loop is over kept boxes; each step suppresses all remaining overlaps at once.
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(tlbr[i, 2], tlbr[rest, 2]) - np.maximum(tlbr[i, 0], tlbr[rest, 0]))
        h = np.maximum(0.0, np.minimum(tlbr[i, 3], tlbr[rest, 3]) - np.maximum(tlbr[i, 1], tlbr[rest, 1]))
        inter = w * h
        union = area[i] + area[rest] - inter
        overlap = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
        order = rest[overlap <= max_overlap]
    return np.array(sorted(keep), dtype=np.intp)


def filter_detections(
    boxes_tlwh: Array, scores: Array, min_confidence: float, nms_max_overlap: float
) -> IntArray:
    """Rows to keep: score >= min_confidence, positive size, then NMS. Sorted ascending."""
    ok = (scores >= min_confidence) & (boxes_tlwh[:, 2] > 0) & (boxes_tlwh[:, 3] > 0)
    candidates = np.flatnonzero(ok)
    kept = non_max_suppression(boxes_tlwh[candidates], scores[candidates], nms_max_overlap)
    return candidates[kept]
