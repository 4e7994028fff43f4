"""COCO SSD person detector on vtest.avi against MOT15 PETS09-S2L1 detections (the same footage).

Reference boxes are the Faster R-CNN detections in det.txt with score >= 0.9; det.txt frame numbers
are 1-based. Measured on every 20th frame (40 frames, 197 reference boxes): recall 145/197 = 0.736
at IoU >= 0.5 with the default confidence 0.5. The SSD boxes are tighter than Faster R-CNN's
(median width ratio 0.78, height 0.86), which caps the IoU.

The model is quantized (uint8) and its results are deterministic: 145 matched of 197 references,
287 detections, identical with 1, 2 and 4 threads (and NMS at 0.1 removes 62 boxes, identical too).
The assertions are near-exact, with a margin of two boxes for another CPU's kernels rounding a
quantized value the other way: 56 detections score within 0.05 of the 0.5 cut and 24 matches have
an IoU within 0.03 of 0.5, so a one-step difference can flip one of them, not many. A wrong box
order or colour order loses more than half of them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from agent.config import load_config
from agent.vision.factory import build_person_detector
from agent.vision.inference import TensorSpec, TfliteModel
from agent.vision.ssd_detector import SsdPostprocessDetector
from agent.vision.types import BBox, Frame

STEP = 20


@pytest.fixture(scope="module")
def detector(assets_dir: Path) -> SsdPostprocessDetector:
    return build_person_detector(load_config(assets_dir=str(assets_dir)))


@pytest.fixture(scope="module")
def sampled(assets_dir: Path) -> list[tuple[int, Frame, list[BBox]]]:
    capture = cv2.VideoCapture(str(assets_dir / "data/video/vtest.avi"))
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (768, 576)
    rows = np.loadtxt(assets_dir / "data/mot15/PETS09-S2L1/det/det.txt", delimiter=",")
    samples = []
    number = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        number += 1  # det.txt counts frames from 1
        if number % STEP == 1:
            chosen = rows[(rows[:, 0] == number) & (rows[:, 6] >= 0.9)]
            samples.append((number, frame, [BBox.from_tlwh(*r[2:6]) for r in chosen]))
    capture.release()
    assert number == int(rows[:, 0].max()) == 795
    return samples


def test_person_recall_against_mot15_detections(
    detector: SsdPostprocessDetector, sampled: list[tuple[int, Frame, list[BBox]]]
) -> None:
    matched = references = found = 0
    for _, frame, reference in sampled:
        detections = detector.detect(frame)
        assert all(d.class_id == 0 and d.score >= 0.5 for d in detections)
        found += len(detections)
        references += len(reference)
        free = list(reference)
        for detection in detections:
            best = max(free, key=detection.box.iou, default=None)
            if best is not None and detection.box.iou(best) >= 0.5:
                matched += 1
                free.remove(best)
    recall = matched / references
    print(
        f"\nperson recall {matched}/{references} = {recall:.3f} at IoU>=0.5 "
        f"over {len(sampled)} frames ({found} found)"
    )
    assert (references, len(sampled)) == (197, 40)
    assert abs(matched - 145) <= 2, f"recall {recall:.3f}, measured 145/197 = 0.736"
    assert abs(found - 287) <= 2


def test_boxes_are_in_frame_pixels(
    detector: SsdPostprocessDetector, sampled: list[tuple[int, Frame, list[BBox]]]
) -> None:
    _, frame, _ = sampled[5]
    small = cv2.resize(frame, (384, 288))
    full, half = detector.detect(frame), detector.detect(small)
    assert full and all(0 <= d.box.x1 < d.box.x2 <= 768 and 0 <= d.box.y1 < d.box.y2 <= 576 for d in full)
    # The same people at half the resolution land at half the coordinates.
    for detection in half:
        doubled = BBox(
            *(2 * v for v in (detection.box.x1, detection.box.y1, detection.box.x2, detection.box.y2))
        )
        assert max(d.box.iou(doubled) for d in full) > 0.6


def test_nms_threshold_removes_overlaps(
    detector: SsdPostprocessDetector, sampled: list[tuple[int, Frame, list[BBox]]]
) -> None:
    strict = SsdPostprocessDetector(detector.model, class_ids=[0], min_score=0.3, nms_threshold=0.1)
    loose = SsdPostprocessDetector(detector.model, class_ids=[0], min_score=0.3, nms_threshold=1.0)
    removed = 0
    for _, frame, _ in sampled:
        kept, everything = strict.detect(frame), loose.detect(frame)
        assert set(kept) <= set(everything)
        assert all(a.box.iou(b.box) <= 0.1 for i, a in enumerate(kept) for b in kept[i + 1 :])
        removed += len(everything) - len(kept)
    # The footage has overlapping walkers, so NMS has work to do: 62 boxes, see the module docstring.
    assert abs(removed - 62) <= 2, removed


class _ReorderedOutputs:
    """The real model with its outputs permuted and renamed, as newer TFLite converters emit them."""

    def __init__(self, model: TfliteModel, order: list[int]) -> None:
        self._model, self._order = model, order
        self.path, self.input, self.inputs = model.path, model.input, model.inputs
        self.outputs: list[TensorSpec] = [
            dataclasses.replace(model.outputs[i], name=f"StatefulPartitionedCall:{n}")
            for n, i in enumerate(order)
        ]

    def run(self, *arrays: Any) -> list[Any]:
        outputs = self._model.run(*arrays)
        return [outputs[i] for i in self._order]


def test_output_order_is_found_by_shape_and_content(
    detector: SsdPostprocessDetector, sampled: list[tuple[int, Frame, list[BBox]]]
) -> None:
    # TF2-converter order: scores, boxes, count, classes.
    reordered = _ReorderedOutputs(detector.model, [2, 0, 3, 1])
    other = SsdPostprocessDetector(reordered, class_ids=[0], min_score=0.5)  # type: ignore[arg-type]
    for _, frame, _ in sampled[:5]:
        assert other.detect(frame) == detector.detect(frame)


def test_class_filter_none_keeps_other_classes(detector: SsdPostprocessDetector, assets_dir: Path) -> None:
    anything = SsdPostprocessDetector(detector.model, class_ids=None, min_score=0.5)
    dogs = cv2.imread(str(assets_dir / "data/photos/dlib_faces/dogs.jpg"))
    classes = {d.class_id for d in anything.detect(dogs)}
    assert 17 in classes  # COCO "dog" (labelmap line 19, id 17 after the "???" background)
    assert detector.detect(dogs) == []
