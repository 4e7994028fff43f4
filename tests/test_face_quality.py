"""Face quality before identity, on real faces: the labelled chips shrunk and blurred, and the demo
clip's own head turns. Thresholds are the configured defaults (measured by bench/face_quality.py);
this file prints what it measures so a change of model or threshold shows up in the log."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.config import load_config
from agent.pipeline.analyzer import DetectionOptions, FrameAnalyzer
from agent.pipeline.frame import SourceFrame
from agent.vision.blazeface import BlazeFaceDetector
from agent.vision.face_quality import FaceQuality, QualityParams, measure, turn_of
from agent.vision.factory import build_vision_stack
from agent.vision.inference import load_model
from agent.vision.types import BBox, FaceDetection, Frame
from bench import hd_scenes as scenes


@pytest.fixture(scope="module")
def params(assets_dir: Path) -> QualityParams:
    quality = DetectionOptions.from_config(load_config(None, assets_dir=assets_dir).detection).quality
    assert (
        quality is not None and quality.min_height > 0 and quality.min_sharpness > 0 and quality.max_turn > 0
    )
    return quality


@pytest.fixture(scope="module")
def detector(assets_dir: Path) -> BlazeFaceDetector:
    return BlazeFaceDetector(load_model(assets_dir / "models/face_detection_back.tflite"))


def _padded_face(detector: BlazeFaceDetector, chip: Frame) -> tuple[Frame, FaceDetection]:
    border = int(chip.shape[0] * 1.5)
    padded = np.asarray(cv2.copyMakeBorder(chip, *(border,) * 4, cv2.BORDER_REPLICATE))
    faces = detector.detect(padded)
    assert faces, "no face in a labelled chip"
    return padded, max(faces, key=lambda f: f.score)


def test_turn_from_keypoints() -> None:
    def face(nose_x: float) -> FaceDetection:
        points = np.array([[40, 50], [60, 50], [nose_x, 60], [50, 70], [30, 52], [70, 52]], np.float32)
        return FaceDetection(BBox(30, 35, 70, 80), 0.9, points)

    assert turn_of(face(50)) == pytest.approx(0.0)
    assert turn_of(face(58)) == pytest.approx(0.4)
    assert turn_of(face(38)) == pytest.approx(0.6)
    assert turn_of(FaceDetection(BBox(0, 0, 10, 10), 0.9)) == 0.0  # no keypoints: nothing held against it


def test_reasons_in_order() -> None:
    p = QualityParams(min_height=20, min_sharpness=7, max_turn=0.6)
    assert FaceQuality(50, 100, 0.1).rejected(p) is None
    assert FaceQuality(10, 1, 0.9).rejected(p) == "small"
    assert FaceQuality(50, 3, 0.9).rejected(p) == "blurred"
    assert FaceQuality(50, 100, 0.9).rejected(p) == "turned"
    assert FaceQuality(1, 0, 9).rejected(QualityParams()) is None  # every check off


def test_shrunk_and_blurred_chips_are_rejected_sharp_ones_pass(
    assets_dir: Path, detector: BlazeFaceDetector, params: QualityParams
) -> None:
    chips = scenes.johns_chips(assets_dir)[::5]  # 11 chips, each John at least twice
    verdicts: dict[str, list[str | None]] = {"sharp": [], "tiny": [], "blurred": []}
    for _, _, chip in chips:
        image, face = _padded_face(detector, chip)
        verdicts["sharp"].append(measure(image, face).rejected(params))
        small = np.asarray(cv2.resize(chip, (16, 16), interpolation=cv2.INTER_AREA))
        face_small = detector.detect(np.asarray(cv2.copyMakeBorder(small, *(24,) * 4, cv2.BORDER_REPLICATE)))
        if face_small:
            padded = np.asarray(cv2.copyMakeBorder(small, *(24,) * 4, cv2.BORDER_REPLICATE))
            verdicts["tiny"].append(measure(padded, face_small[0]).rejected(params))
        # Face about 96 px, Gaussian blur sigma 4 (bench/face_quality.py: accuracy 0.18 there).
        blurred = np.asarray(cv2.GaussianBlur(cv2.resize(chip, (110, 110)), (0, 0), 4.0))
        padded_b = np.asarray(cv2.copyMakeBorder(blurred, *(66,) * 4, cv2.BORDER_REPLICATE))
        faces_b = detector.detect(padded_b)
        if faces_b:
            verdicts["blurred"].append(measure(padded_b, faces_b[0]).rejected(params))
    print("quality verdicts:", verdicts)
    assert verdicts["sharp"] == [None] * len(chips)
    assert all(v in ("small", "blurred") for v in verdicts["tiny"])
    assert verdicts["blurred"] and all(v == "blurred" for v in verdicts["blurred"])


def test_the_demo_clips_three_quarter_views_vote(
    assets_dir: Path, detector: BlazeFaceDetector, params: QualityParams
) -> None:
    """Barack Obama, enrolled in the demo, sits in three-quarter view in the last shot (frames
    211-274, his face centred in x 300-410, y 40-150; bench/face_quality.py labels the clip shot by
    shot): his faces must vote (issue 22: a turn limit of 0.6 held back every one of them)."""
    capture = cv2.VideoCapture(str(assets_dir / "data/video/hamilton_clip.mp4"))
    obama: list[str | None] = []
    turned_frames: list[int] = []
    verdicts: list[str | None] = []
    index = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frame = np.asarray(image, dtype=np.uint8)
        for face in detector.detect(frame):
            q = measure(frame, face)
            verdict = q.rejected(params)
            verdicts.append(verdict)
            cx, cy = (face.box.x1 + face.box.x2) / 2, (face.box.y1 + face.box.y2) / 2
            if index >= 211 and 300 <= cx <= 410 and 40 <= cy <= 150:
                obama.append(verdict)
            if verdict == "turned":
                turned_frames.append(index)
        index += 1
    capture.release()
    print(
        f"hamilton: {len(verdicts)} faces, {len(turned_frames)} turned (frames {turned_frames}); "
        f"Obama {len(obama)} faces, verdicts {sorted(set(map(str, obama)))}"
    )
    assert len(obama) >= 30 and obama.count(None) >= 0.9 * len(obama)
    assert verdicts.count(None) >= 0.7 * len(verdicts)


def test_analyzer_counts_skipped_faces_per_reason(assets_dir: Path) -> None:
    """The whole analyzer (person detector, head crops, quality gate, embedder) over the demo
    clip: faces turned beyond face_max_turn (full profiles) are counted as turned and never
    embedded; every other face votes."""
    config = load_config(None, assets_dir=assets_dir)
    analyzer = FrameAnalyzer.from_stack(
        build_vision_stack(config), DetectionOptions.from_config(config.detection)
    )
    capture = cv2.VideoCapture(str(assets_dir / "data/video/hamilton_clip.mp4"))
    skipped: dict[str, int] = {}
    voted = 0
    index = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frame = SourceFrame(index, np.asarray(image, dtype=np.uint8), datetime.now(UTC), 0.0)
        # No hints: every person is new and wants a face look on every frame.
        analysis = analyzer.analyze(frame, [], None)
        index += 1
        for reason, count in analysis.faces_skipped.items():
            skipped[reason] = skipped.get(reason, 0) + count
        if analysis.face_features is not None:
            voted += int(np.isfinite(analysis.face_features[:, 0]).sum())
        # Every face bound to a person either voted or was counted as skipped.
        assert len(analysis.faces) == sum(analysis.faces_skipped.values()) + (
            int(np.isfinite(analysis.face_features[:, 0]).sum()) if analysis.face_features is not None else 0
        )
    capture.release()
    print(f"hamilton through the analyzer: {voted} faces voted, skipped {skipped}")
    assert set(skipped) <= {"small", "blurred", "turned"}
    assert skipped.get("turned", 0) >= 20 and voted >= 100, (skipped, voted)
