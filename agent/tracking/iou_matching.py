"""Intersection over union between predicted track boxes and detections, as a cost (1 - IoU)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


def iou_matrix(a_tlwh: Array, b_tlwh: Array) -> Array:
    """IoU (n, m) between every box of `a` and every box of `b`, both (k, 4) tlwh."""
    ax1 = a_tlwh[:, 0:1]
    ay1 = a_tlwh[:, 1:2]
    ax2 = ax1 + a_tlwh[:, 2:3]
    ay2 = ay1 + a_tlwh[:, 3:4]
    bx1 = b_tlwh[:, 0]
    by1 = b_tlwh[:, 1]
    bx2 = bx1 + b_tlwh[:, 2]
    by2 = by1 + b_tlwh[:, 3]
    w = np.clip(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0.0, None)
    h = np.clip(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0.0, None)
    inter = w * h
    union = a_tlwh[:, 2:3] * a_tlwh[:, 3:4] + (b_tlwh[:, 2] * b_tlwh[:, 3])[None, :] - inter
    iou: Array = inter / np.maximum(union, 1e-12)
    return iou


def iou_cost(tracks_tlwh: Array, detections_tlwh: Array) -> Array:
    return 1.0 - iou_matrix(tracks_tlwh, detections_tlwh)
