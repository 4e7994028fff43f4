"""SFace (cv2.FaceRecognizerSF) on real faces: the crop matches what SFace's own alignCrop makes from
5 landmarks, vectors are unit length with a stable id, and it separates dlib's 5 "johns".

Measured (BlazeFace back + keypoint alignment + SFace int8bq): leave-one-out 1-NN 55/55 on the
johns, same-minus-different mean cosine gap 0.69 (0.70 with alignCrop's own crops); on every 5th
chip our crop and alignCrop's differ by 0.5-5.4 grey levels on average, and their embeddings agree
at cosine >= 0.985.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.config import ConfigError, load_config
from agent.vision.alignment import ARCFACE_TEMPLATE_112
from agent.vision.embedder import SFaceEmbedder
from agent.vision.factory import build_embedder, build_face_detector
from agent.vision.inference import ModelLoadError, ModelNotFoundError
from agent.vision.types import FaceDetection, FaceDetector, Frame

SFACE = "models/face_recognition_sface_2021dec_int8bq.onnx"


@pytest.fixture(scope="module")
def stack(assets_dir: Path) -> tuple[FaceDetector, SFaceEmbedder]:
    config = load_config(assets_dir=str(assets_dir))
    embedder = build_embedder(config)
    assert isinstance(embedder, SFaceEmbedder), "SFace is the default embedder"
    return build_face_detector(config), embedder


@pytest.fixture(scope="module")
def johns(assets_dir: Path) -> tuple[list[Frame], np.ndarray]:
    images, labels = [], []
    for label, person in enumerate(sorted((assets_dir / "data/faces/dlib_johns").iterdir())):
        for path in sorted(person.glob("*.jpg")):
            images.append(np.asarray(cv2.imread(str(path)), dtype=np.uint8))
            labels.append(label)
    return images, np.array(labels)


def _padded(image: Frame) -> Frame:
    return np.asarray(cv2.copyMakeBorder(image, 75, 75, 75, 75, cv2.BORDER_CONSTANT, value=0), dtype=np.uint8)


def _yunet_row(face: FaceDetection) -> np.ndarray:
    """The 15-value face row alignCrop reads (box, 5 landmarks, score), from BlazeFace keypoints.

    BlazeFace gives the mouth centre only; the two corners are placed where the template puts
    them relative to the eyes (same offset along the eye line), so their mean is the centre.
    """
    assert face.keypoints is not None
    right_eye, left_eye, nose, mouth = (face.keypoints[i].astype(np.float64) for i in range(4))
    t = ARCFACE_TEMPLATE_112
    half = (70.7299 - 41.5493) / 2 / float(t[1, 0] - t[0, 0])
    along = (left_eye - right_eye) * half
    points = [right_eye, left_eye, nose, mouth - along, mouth + along]
    box = face.box
    return np.array(
        [box.x1, box.y1, box.width, box.height, *np.concatenate(points), face.score], dtype=np.float32
    )


def test_crop_matches_sface_align_crop(
    stack: tuple[FaceDetector, SFaceEmbedder], johns: tuple[list[Frame], np.ndarray], assets_dir: Path
) -> None:
    detector, embedder = stack
    recognizer = cv2.FaceRecognizerSF.create(str(assets_dir / SFACE), "")
    diffs, agreements = [], []
    for image in johns[0][::5]:
        frame = _padded(image)
        face = max(detector.detect(frame), key=lambda f: f.score)
        ours = embedder.crops(frame, [face])[0]
        theirs = np.asarray(recognizer.alignCrop(frame, _yunet_row(face)), dtype=np.uint8)
        assert ours.shape == theirs.shape == (112, 112, 3)
        diffs.append(float(np.abs(ours.astype(np.float64) - theirs.astype(np.float64)).mean()))
        a, b = embedder.embed_crops([ours, theirs])
        agreements.append(float(a @ b))
    assert max(diffs) < 8.0, diffs
    assert min(agreements) >= 0.97, agreements


def test_unit_vectors_stable_id_and_separation(
    stack: tuple[FaceDetector, SFaceEmbedder], johns: tuple[list[Frame], np.ndarray]
) -> None:
    detector, embedder = stack
    images, labels = johns
    vectors = []
    for image in images:
        frame = _padded(image)
        faces = sorted(detector.detect(frame), key=lambda f: -f.score)[:1]
        vectors.append(embedder.embed(frame, faces)[0])
    x = np.stack(vectors)
    assert x.dtype == np.float32 and x.shape == (55, 128)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert embedder.embedder_id == "sface-int8bq-128-arcface112-v1" and embedder.dim == 128
    assert embedder.embed(images[0], []).shape == (0, 128)
    sims = x @ x.T
    others = ~np.eye(len(labels), dtype=bool)
    nearest = np.where(others, sims, -np.inf).argmax(axis=1)
    assert int((labels[nearest] == labels).sum()) == 55
    same = (labels[:, None] == labels[None, :]) & others
    gap = sims[same].mean() - sims[labels[:, None] != labels[None, :]].mean()
    assert gap >= 0.6, gap


def test_embedding_is_deterministic_one_by_one(stack: tuple[FaceDetector, SFaceEmbedder]) -> None:
    embedder = stack[1]
    rng = np.random.default_rng(3)
    crops = [rng.integers(0, 255, (112, 112, 3), dtype=np.uint8) for _ in range(3)]
    np.testing.assert_allclose(
        embedder.embed_crops(crops), np.concatenate([embedder.embed_crops([c]) for c in crops]), atol=1e-6
    )


def test_missing_and_broken_model_files_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as missing:
        SFaceEmbedder(tmp_path / "nope.onnx")
    assert "nope.onnx" in str(missing.value)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    with pytest.raises(ModelLoadError) as bad:
        SFaceEmbedder(broken)
    assert "broken.onnx" in str(bad.value) and "\n" not in str(bad.value)


def test_embedder_kind_and_file_must_agree() -> None:
    with pytest.raises(ConfigError) as error:
        load_config(models={"embedder_kind": "mobilefacenet"})
    assert "is not a .tflite file" in str(error.value) and "mobilefacenet_128d.tflite" in str(error.value)
    config = load_config(
        models={"embedder_kind": "mobilefacenet", "embedder": "models/mobilefacenet_128d.tflite"}
    )
    assert config.models.embedder_kind == "mobilefacenet"


def test_sface_gets_the_per_model_thread_budget(assets_dir: Path) -> None:
    """OpenCV's pool is process-wide and defaults to every core; the agent's layout (workers x
    threads) must hold for SFace as for the TFLite models, or a Pi is oversubscribed."""
    previous = cv2.getNumThreads()
    try:
        for threads in (1, 2):
            build_embedder(load_config(assets_dir=str(assets_dir), inference={"threads": threads}))
            assert cv2.getNumThreads() == threads
    finally:
        cv2.setNumThreads(previous)
