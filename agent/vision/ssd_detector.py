"""Detectors for models ending in TFLite_Detection_PostProcess (boxes, classes, scores, count).

That covers the COCO SSD here and Coral's `*_quant_postprocess(_edgetpu).tflite` COCO and face
models. Newer converters reorder the four outputs, so they are identified by shape, then name,
then content.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from agent.vision.inference import TfliteModel
from agent.vision.types import BBox, Detection, FaceDetection, Frame


class SsdPostprocessDetector:
    """Person (or any COCO class) detector; `class_ids=None` keeps every class."""

    def __init__(
        self,
        model: TfliteModel,
        *,
        class_ids: Collection[int] | None = None,
        min_score: float = 0.5,
        nms_threshold: float = 1.0,
        float_mean: float = 127.5,
        float_std: float = 127.5,
    ) -> None:
        spec = model.input
        if len(spec.shape) != 4 or spec.shape[3] != 3 or len(model.outputs) != 4:
            raise ValueError(
                f"{model.path.name} is not an SSD with TFLite_Detection_PostProcess "
                f"(input {spec.shape}, {len(model.outputs)} outputs; expected NHWC RGB and 4 outputs)"
            )
        self.model = model
        self.class_ids = frozenset(class_ids) if class_ids is not None else None
        self.min_score = min_score
        self.nms_threshold = nms_threshold
        self._height, self._width = spec.shape[1], spec.shape[2]
        self._float_mean = float_mean
        self._float_std = float_std
        self._boxes, self._count, self._pair = _locate_outputs(model)

    @property
    def slots(self) -> int:
        """How many boxes the model reports at most per run (its post-processing's max detections)."""
        return int(np.prod(self.model.outputs[self._boxes].shape)) // 4

    def detect(self, frame: Frame) -> list[Detection]:
        return self.detect_counting(frame)[0]

    def detect_counting(self, frame: Frame) -> tuple[list[Detection], bool]:
        """The detections, and whether the wanted classes filled every output slot of the model.

        The post-processing op reports a fixed number of boxes (10 for the COCO SSD here), best
        first over all classes. When every one of them is a wanted class, the image held more of
        them than the model could report: a crowd (bench.pipeline_video on MOT20-08)."""
        outputs = self.model.run(self._preprocess(frame))
        boxes = outputs[self._boxes].reshape(-1, 4)
        classes, scores = _split_classes_scores(outputs, self._pair)
        count = min(int(np.asarray(outputs[self._count]).reshape(-1)[0]), len(boxes))
        boxes, classes, scores = boxes[:count], classes[:count], scores[:count]

        wanted = (
            np.isin(classes.astype(np.int64), list(self.class_ids))
            if self.class_ids is not None
            else np.ones(len(classes), dtype=bool)
        )
        full = count == self.slots and bool(wanted.all())
        keep = (scores >= self.min_score) & wanted
        boxes, classes, scores = boxes[keep], classes[keep], scores[keep]

        height, width = frame.shape[:2]
        clipped = np.clip(boxes, 0.0, 1.0)
        pixels = np.stack(
            [clipped[:, 1] * width, clipped[:, 0] * height, clipped[:, 3] * width, clipped[:, 2] * height],
            axis=1,
        )
        order = _nms(pixels, scores, classes, self.nms_threshold)
        found = [
            Detection(BBox(*(float(v) for v in pixels[i])), float(scores[i]), int(classes[i])) for i in order
        ]
        return found, full

    def _preprocess(self, frame: Frame) -> npt.NDArray[Any]:
        # Plain resize (no letterbox): the SSD models were trained on stretched 300x300 inputs.
        rgb = cv2.cvtColor(cv2.resize(frame, (self._width, self._height)), cv2.COLOR_BGR2RGB)
        dtype = self.model.input.dtype
        if dtype == np.uint8:
            # Quantised SSDs fold the [-1, 1] normalisation into their input quantisation
            # (scale 1/128, zero point 128), so raw pixels are the expected values.
            return rgb[np.newaxis]
        if dtype == np.int8:
            return (rgb.astype(np.int16) - 128).astype(np.int8)[np.newaxis]
        return ((rgb.astype(np.float32) - self._float_mean) / self._float_std)[np.newaxis]


class SsdFaceDetector:
    """Coral's SSD face model (or any single-class SSD) as a FaceDetector, without keypoints."""

    def __init__(self, detector: SsdPostprocessDetector) -> None:
        self.detector = detector

    @property
    def model(self) -> TfliteModel:
        return self.detector.model

    def detect(self, frame: Frame) -> list[FaceDetection]:
        return [FaceDetection(d.box, d.score) for d in self.detector.detect(frame)]


def _locate_outputs(model: TfliteModel) -> tuple[int, int, tuple[int, int] | tuple[int, int, bool]]:
    """Indices of boxes, count and the (classes, scores) pair.

    The pair carries a third flag, False, when names did not tell classes from scores and the
    values must decide at run time.
    """
    boxes = count = -1
    pair: list[int] = []
    for i, spec in enumerate(model.outputs):
        if len(spec.shape) == 3 and spec.shape[-1] == 4:
            boxes = i
        elif int(np.prod(spec.shape)) == 1:
            count = i
        else:
            pair.append(i)
    if boxes < 0 or count < 0 or len(pair) != 2:
        shapes = [spec.shape for spec in model.outputs]
        raise ValueError(f"{model.path.name}: outputs {shapes} are not boxes, classes, scores, count")
    first, second = (model.outputs[i].name for i in pair)
    # The classic converter names them ...PostProcess:1 (classes) and :2 (scores).
    if first.endswith("PostProcess:1") and second.endswith("PostProcess:2"):
        return boxes, count, (pair[0], pair[1])
    if first.endswith("PostProcess:2") and second.endswith("PostProcess:1"):
        return boxes, count, (pair[1], pair[0])
    return boxes, count, (pair[0], pair[1], False)


def _split_classes_scores(
    outputs: list[npt.NDArray[Any]], pair: tuple[int, int] | tuple[int, int, bool]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    a = outputs[pair[0]].reshape(-1).astype(np.float32)
    b = outputs[pair[1]].reshape(-1).astype(np.float32)
    if len(pair) == 2:
        return a, b
    # Unnamed order: class ids are whole numbers and may exceed 1; scores are fractions in [0, 1].
    a_is_classes = bool(np.any(a > 1.0)) or (
        bool(np.all(a == np.round(a))) and not bool(np.all(b == np.round(b)))
    )
    return (a, b) if a_is_classes else (b, a)


def _nms(
    boxes: npt.NDArray[Any], scores: npt.NDArray[Any], classes: npt.NDArray[Any], threshold: float
) -> list[int]:
    """Indices kept by per-class NMS, best first; a threshold of 1.0 (or more) disables it."""
    order = [int(i) for i in np.argsort(-scores, kind="stable")]
    if threshold >= 1.0 or len(order) < 2:
        return order
    kept: list[int] = []
    for cls in np.unique(classes):
        idx = np.flatnonzero(classes == cls)
        rects = [
            [
                float(boxes[i, 0]),
                float(boxes[i, 1]),
                float(boxes[i, 2] - boxes[i, 0]),
                float(boxes[i, 3] - boxes[i, 1]),
            ]
            for i in idx
        ]
        chosen = cv2.dnn.NMSBoxes(rects, [float(scores[i]) for i in idx], 0.0, threshold)
        kept.extend(int(idx[int(j)]) for j in np.asarray(chosen).reshape(-1))
    return sorted(kept, key=lambda i: -float(scores[i]))
