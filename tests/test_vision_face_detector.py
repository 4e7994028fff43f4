"""Face detectors on dlib's hand-labelled group photos (PASCAL VOC images, 43 labelled faces).

Thresholds sit one face below what was measured (see README "models"): back@0.6 found 41/43
faces with 1 false positive; full_range@0.6 found 41/43 with none. A decoding or anchor bug drops
recall far below that, so these tests fail on a real regression, not on noise.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.config import load_config
from agent.vision.blazeface import BlazeFaceDetector
from agent.vision.factory import build_face_detector
from agent.vision.inference import load_model
from agent.vision.types import BBox, FaceDetection, Frame

PHOTOS = "data/photos/dlib_faces"


@dataclass
class LabelledFace:
    box: BBox
    # Eye centres (image-left first), nose tip and mouth centre from the 68-point landmarks.
    landmarks: np.ndarray | None


@dataclass
class LabelledPhoto:
    name: str
    image: Frame
    faces: list[LabelledFace]


def _parse(xml_path: Path) -> dict[str, list[LabelledFace]]:
    photos: dict[str, list[LabelledFace]] = {}
    for image in ET.parse(xml_path).getroot().iter("image"):
        faces = []
        for box in image.iter("box"):
            if box.get("ignore") == "1":
                continue
            rect = BBox.from_tlwh(*(float(box.get(k, 0)) for k in ("left", "top", "width", "height")))
            parts = {
                int(p.get("name", -1)): (float(p.get("x", 0)), float(p.get("y", 0))) for p in box.iter("part")
            }
            landmarks = None
            if len(parts) == 68:
                pts = np.array([parts[i] for i in range(68)])
                landmarks = np.array(
                    [pts[36:42].mean(0), pts[42:48].mean(0), pts[30], pts[48:68].mean(0)], dtype=np.float32
                )
            faces.append(LabelledFace(rect, landmarks))
        photos[str(image.get("file"))] = faces
    return photos


@pytest.fixture(scope="module")
def labelled(assets_dir: Path) -> list[LabelledPhoto]:
    root = assets_dir / PHOTOS
    boxes = {**_parse(root / "training.xml"), **_parse(root / "testing.xml")}
    landmarks = {
        **_parse(root / "training_with_face_landmarks.xml"),
        **_parse(root / "testing_with_face_landmarks.xml"),
    }
    photos = []
    for name, faces in sorted(boxes.items()):
        image = cv2.imread(str(root / name))
        assert image is not None, name
        marked = landmarks.get(name, [])
        for face in faces:  # the landmark files repeat the same boxes with 68 parts each
            match = [m for m in marked if m.box == face.box]
            face.landmarks = match[0].landmarks if match else None
        photos.append(LabelledPhoto(name, image, faces))
    assert sum(len(p.faces) for p in photos) == 43
    return photos


@pytest.fixture(scope="module")
def detectors(assets_dir: Path) -> dict[str, BlazeFaceDetector]:
    config = load_config(assets_dir=str(assets_dir))
    default = build_face_detector(config)
    assert isinstance(default, BlazeFaceDetector)
    full = BlazeFaceDetector(
        load_model(assets_dir / "models/face_detection_full_range.tflite", threads=config.inference.threads),
        min_score=config.detection.face_confidence,
    )
    return {"default": default, "full_range": full}


def _match(found: list[FaceDetection], truth: list[LabelledFace]) -> list[tuple[FaceDetection, LabelledFace]]:
    """Greedy one-to-one matching at IoU >= 0.5, best score first."""
    pairs = []
    free = list(truth)
    for face in sorted(found, key=lambda f: -f.score):
        best = max(free, key=lambda t: face.box.iou(t.box), default=None)
        if best is not None and face.box.iou(best.box) >= 0.5:
            pairs.append((face, best))
            free.remove(best)
    return pairs


def _recall_precision(
    detector: BlazeFaceDetector, photos: list[LabelledPhoto]
) -> tuple[float, float, list[tuple[FaceDetection, LabelledFace]]]:
    matched, found, labelled = [], 0, 0
    for photo in photos:
        faces = detector.detect(photo.image)
        found += len(faces)
        labelled += len(photo.faces)
        matched += _match(faces, photo.faces)
    return len(matched) / labelled, len(matched) / max(found, 1), matched


@pytest.mark.parametrize(
    ("name", "min_recall", "min_precision"), [("default", 40 / 43, 0.95), ("full_range", 40 / 43, 0.97)]
)
def test_face_recall_and_precision_on_labelled_photos(
    detectors: dict[str, BlazeFaceDetector],
    labelled: list[LabelledPhoto],
    name: str,
    min_recall: float,
    min_precision: float,
) -> None:
    recall, precision, _ = _recall_precision(detectors[name], labelled)
    print(
        f"\n{name} ({detectors[name].variant}): face recall {recall:.3f}, "
        f"precision {precision:.3f} at IoU>=0.5"
    )
    assert recall >= min_recall
    assert precision >= min_precision


def test_default_detector_is_the_measured_best_variant(
    detectors: dict[str, BlazeFaceDetector], labelled: list[LabelledPhoto], assets_dir: Path
) -> None:
    """The configured variant must be the one that handles both small faces in group photos and
    faces that fill the frame (the johns chips): each variant is measured here on both."""
    config = load_config(assets_dir=str(assets_dir))
    chips = [cv2.imread(str(p)) for p in sorted((assets_dir / "data/faces/dlib_johns").glob("*/*.jpg"))]
    assert len(chips) == 55
    worst_case: dict[str, float] = {}
    for variant in ("back", "full_range", "short_range"):
        detector = BlazeFaceDetector(
            load_model(assets_dir / f"models/face_detection_{variant}.tflite", threads=1),
            min_score=config.detection.face_confidence,
        )
        recall, _, _ = _recall_precision(detector, labelled)
        chip_rate = sum(len(detector.detect(chip)) == 1 for chip in chips) / len(chips)
        print(f"\n{variant}: group-photo recall {recall:.3f}, single face on {chip_rate:.3f} of the chips")
        worst_case[variant] = min(recall, chip_rate)
    assert max(worst_case, key=worst_case.__getitem__) == detectors["default"].variant


def test_keypoints_land_on_the_labelled_landmarks(
    detectors: dict[str, BlazeFaceDetector], labelled: list[LabelledPhoto]
) -> None:
    """Eyes, nose and mouth within a fraction of the inter-ocular distance of dlib's landmarks."""
    _, _, matched = _recall_precision(detectors["default"], labelled)
    errors = []
    for face, truth in matched:
        if truth.landmarks is None or face.keypoints is None:
            continue
        iod = float(np.linalg.norm(truth.landmarks[1] - truth.landmarks[0]))
        errors.append(np.linalg.norm(face.keypoints[:4] - truth.landmarks, axis=1) / iod)
    table = np.array(errors)
    print(
        f"\nkeypoint error / inter-ocular distance over {len(table)} faces "
        f"(eyeR, eyeL, nose, mouth): {table.mean(0).round(3)}"
    )
    # Measured: 39 faces, means 0.140 0.135 0.164 0.125 (float model, deterministic here). One face
    # of slack, as for the recall above, and 0.015 on the worst mean for another CPU's float
    # kernels; a swapped eye order or a wrong anchor offset gives > 0.5.
    assert len(table) >= 38
    assert table.mean(0).max() < 0.18


def test_no_face_on_dogs(detectors: dict[str, BlazeFaceDetector], assets_dir: Path) -> None:
    image = cv2.imread(str(assets_dir / PHOTOS / "dogs.jpg"))
    for name, detector in detectors.items():
        assert detector.detect(image) == [], name


def test_faces_of_a_tiny_or_blank_frame_are_empty(detectors: dict[str, BlazeFaceDetector]) -> None:
    assert detectors["default"].detect(np.zeros((1, 1, 3), np.uint8)) == []
    assert detectors["default"].detect(np.full((480, 640, 3), 127, np.uint8)) == []
