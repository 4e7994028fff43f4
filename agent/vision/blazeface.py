"""BlazeFace (MediaPipe face detection) on TFLite: anchors, decoding and weighted NMS.

The anchor and decoder options follow MediaPipe's face detection graphs (SsdAnchorsCalculator and
TensorsToDetectionsCalculator options); every variant uses fixed-size unit anchors, so a box is
an offset from its anchor centre in input pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from agent.vision.inference import TfliteModel
from agent.vision.types import BBox, FaceDetection, FloatArray, Frame

Variant = Literal["short_range", "full_range", "back"]

NUM_KEYPOINTS = 6
# MediaPipe clips raw logits before the sigmoid so exp() cannot overflow.
SCORE_CLIP = 100.0


@dataclass(frozen=True, slots=True)
class AnchorOptions:
    input_size: int
    strides: tuple[int, ...]
    # 1.0 adds a second anchor per cell; 0.0 (full range) keeps one.
    interpolated_scale_aspect_ratio: float
    anchor_offset: float = 0.5


ANCHOR_OPTIONS: dict[Variant, AnchorOptions] = {
    "short_range": AnchorOptions(128, (8, 16, 16, 16), 1.0),
    "full_range": AnchorOptions(192, (4,), 0.0),
    "back": AnchorOptions(256, (16, 32, 32, 32), 1.0),
}


def ssd_anchor_centres(options: AnchorOptions) -> FloatArray:
    """(N, 2) normalised anchor centres (x, y) in model output order.

    Consecutive layers with the same stride share one feature map; each contributes one anchor
    per aspect ratio (only 1.0 here) plus one interpolated-scale anchor when that ratio is > 0.
    """
    centres: list[npt.NDArray[np.float32]] = []
    layer = 0
    strides = options.strides
    while layer < len(strides):
        per_cell = 0
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            per_cell += 1 + (1 if options.interpolated_scale_aspect_ratio > 0 else 0)
            last += 1
        cells = int(np.ceil(options.input_size / strides[layer]))
        grid = (np.arange(cells, dtype=np.float32) + options.anchor_offset) / cells
        ys, xs = np.meshgrid(grid, grid, indexing="ij")
        cell_centres = np.stack([xs.reshape(-1), ys.reshape(-1)], axis=1)
        centres.append(np.repeat(cell_centres, per_cell, axis=0))
        layer = last
    return np.concatenate(centres, axis=0).astype(np.float32)


def variant_for(model: TfliteModel) -> Variant:
    """Which BlazeFace this model is, from its input size and anchor count."""
    size = model.input.shape[1]
    anchors = max(int(np.prod(spec.shape[:-1])) for spec in model.outputs)
    for name, options in ANCHOR_OPTIONS.items():
        if options.input_size == size and len(ssd_anchor_centres(options)) == anchors:
            return name
    raise ValueError(
        f"{model.path.name}: input {size}x{size} with {anchors} anchors is not a known BlazeFace"
    )


class BlazeFaceDetector:
    """Face boxes and the 6 BlazeFace keypoints (see FaceDetection) in frame pixels."""

    def __init__(
        self,
        model: TfliteModel,
        *,
        min_score: float = 0.6,
        nms_threshold: float = 0.3,
        variant: Variant | None = None,
    ) -> None:
        self.model = model
        self.variant: Variant = variant or variant_for(model)
        self.min_score = min_score
        self.nms_threshold = nms_threshold
        self._size = ANCHOR_OPTIONS[self.variant].input_size
        self._anchors = ssd_anchor_centres(ANCHOR_OPTIONS[self.variant])
        self._regressors, self._scores = _locate_outputs(model)

    def detect(self, frame: Frame) -> list[FaceDetection]:
        tensor, scale, pad_x, pad_y = self._letterbox(frame)
        outputs = self.model.run(tensor)
        raw = outputs[self._regressors].reshape(-1, 16)
        logits = outputs[self._scores].reshape(-1)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -SCORE_CLIP, SCORE_CLIP)))
        keep = np.flatnonzero(scores >= self.min_score)
        if keep.size == 0:
            return []
        boxes, keypoints = self._decode(raw[keep], self._anchors[keep])
        merged = weighted_nms(boxes, keypoints, scores[keep], self.nms_threshold)

        height, width = frame.shape[:2]
        faces: list[FaceDetection] = []
        for box, points, score in merged:
            # Normalised letterbox coordinates -> input pixels -> frame pixels.
            px = (box * self._size - [pad_x, pad_y, pad_x, pad_y]) / scale
            kp = ((points * self._size - [pad_x, pad_y]) / scale).astype(np.float32)
            x1, y1 = max(0.0, float(px[0])), max(0.0, float(px[1]))
            x2, y2 = min(float(width), float(px[2])), min(float(height), float(px[3]))
            if x2 <= x1 or y2 <= y1:
                continue
            faces.append(FaceDetection(BBox(x1, y1, x2, y2), float(score), kp))
        return faces

    def _letterbox(self, frame: Frame) -> tuple[npt.NDArray[np.float32], float, float, float]:
        """Scale the frame into the square input keeping its aspect, padding both sides equally."""
        height, width = frame.shape[:2]
        scale = self._size / max(height, width)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        resized = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_AREA)
        canvas = np.zeros((self._size, self._size, 3), dtype=np.uint8)
        pad_x, pad_y = (self._size - new_w) // 2, (self._size - new_h) // 2
        canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
        rgb = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).astype(np.float32)
        return (rgb / 127.5 - 1.0)[np.newaxis], scale, float(pad_x), float(pad_y)

    def _decode(
        self, raw: npt.NDArray[Any], anchors: FloatArray
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Normalised (x1, y1, x2, y2) boxes and (K, 6, 2) keypoints for the kept anchors."""
        size = float(self._size)
        centre = raw[:, 0:2] / size + anchors
        half = raw[:, 2:4] / size / 2.0
        boxes = np.concatenate([centre - half, centre + half], axis=1).astype(np.float64)
        points = raw[:, 4 : 4 + 2 * NUM_KEYPOINTS].reshape(-1, NUM_KEYPOINTS, 2) / size
        keypoints = (points + anchors[:, np.newaxis, :]).astype(np.float64)
        return boxes, keypoints


def weighted_nms(
    boxes: npt.NDArray[np.float64],
    keypoints: npt.NDArray[np.float64],
    scores: npt.NDArray[Any],
    threshold: float,
) -> list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], float]]:
    """MediaPipe's weighted NMS: each cluster (IoU > threshold with its best box) is replaced by
    the score-weighted mean of its boxes and keypoints, keeping the best score.

    Blending instead of dropping steadies the box and keypoints between neighbouring anchors.
    """
    order = list(np.argsort(-scores, kind="stable"))
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    result: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], float]] = []
    remaining = np.array(order, dtype=np.int64)
    while remaining.size:
        best = remaining[0]
        ix = np.clip(
            np.minimum(boxes[remaining, 2], boxes[best, 2]) - np.maximum(boxes[remaining, 0], boxes[best, 0]),
            0,
            None,
        )
        iy = np.clip(
            np.minimum(boxes[remaining, 3], boxes[best, 3]) - np.maximum(boxes[remaining, 1], boxes[best, 1]),
            0,
            None,
        )
        inter = ix * iy
        iou = inter / np.maximum(areas[remaining] + areas[best] - inter, 1e-12)
        cluster = remaining[iou > threshold]
        if cluster.size == 0:  # a degenerate box has IoU 0 with itself
            cluster = remaining[:1]
        weights = scores[cluster].astype(np.float64)
        total = float(weights.sum())
        box = (boxes[cluster] * weights[:, None]).sum(axis=0) / total
        points = (keypoints[cluster] * weights[:, None, None]).sum(axis=0) / total
        result.append((box, points, float(scores[best])))
        remaining = remaining[~np.isin(remaining, cluster)]
    return result


def _locate_outputs(model: TfliteModel) -> tuple[int, int]:
    regressors = scores = -1
    for i, spec in enumerate(model.outputs):
        if spec.shape[-1] == 16:
            regressors = i
        elif spec.shape[-1] == 1:
            scores = i
    if regressors < 0 or scores < 0:
        shapes = [spec.shape for spec in model.outputs]
        raise ValueError(f"{model.path.name}: outputs {shapes} are not BlazeFace regressors and scores")
    return regressors, scores
