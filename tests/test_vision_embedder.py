"""Face embedders on dlib's 5 x 11 "johns" face chips (150x150, already roughly aligned by dlib).

Measured with the default stack (BlazeFace back @ 0.6 + keypoint alignment + MobileFaceNet):
leave-one-out 1-NN accuracy 55/55 and a same-minus-different mean cosine gap of 0.66; the plain
centre crop of the chip (no detection) also scores 55/55 but its gap is only 0.28, which is why
the default detects and aligns. Thresholds allow one error and keep the gap well above the
centre-crop value, so a broken alignment or preprocessing (BGR fed as RGB, wrong scaling) fails.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.config import load_config
from agent.vision.embedder import (
    MobileFaceNetEmbedder,
    OpenFaceEmbedder,
    l2_normalize,
    openface_blob,
    openface_embedder_id,
)
from agent.vision.factory import build_embedder, build_face_detector
from agent.vision.inference import ModelLoadError, ModelNotFoundError
from agent.vision.types import BBox, FaceDetection, FaceDetector, Frame

JOHNS = "data/faces/dlib_johns"


@pytest.fixture(scope="module")
def johns(assets_dir: Path) -> tuple[list[Frame], np.ndarray]:
    images, labels = [], []
    for label, person in enumerate(sorted((assets_dir / JOHNS).iterdir())):
        for path in sorted(person.glob("*.jpg")):
            image = cv2.imread(str(path))
            assert image is not None and image.shape == (150, 150, 3)
            images.append(image)
            labels.append(label)
    assert len(images) == 55
    return images, np.array(labels)


@pytest.fixture(scope="module")
def stack(assets_dir: Path) -> tuple[FaceDetector, MobileFaceNetEmbedder]:
    config = load_config(
        assets_dir=str(assets_dir),
        models={"embedder_kind": "mobilefacenet", "embedder": "models/mobilefacenet_128d.tflite"},
    )
    embedder = build_embedder(config)
    assert isinstance(embedder, MobileFaceNetEmbedder)
    return build_face_detector(config), embedder


def _separation(vectors: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Leave-one-out nearest-neighbour accuracy and mean same minus mean different cosine."""
    similarity = vectors @ vectors.T
    others = ~np.eye(len(labels), dtype=bool)
    same = (labels[:, None] == labels[None, :]) & others
    different = labels[:, None] != labels[None, :]
    nearest = np.where(others, similarity, -np.inf).argmax(axis=1)
    accuracy = float((labels[nearest] == labels).mean())
    return accuracy, float(similarity[same].mean() - similarity[different].mean())


def _detect_and_embed(stack: tuple[FaceDetector, MobileFaceNetEmbedder], images: list[Frame]) -> np.ndarray:
    detector, embedder = stack
    rows = []
    for image in images:
        faces = detector.detect(image)
        assert faces, "every chip holds one face"
        rows.append(embedder.embed(image, [max(faces, key=lambda f: f.score)])[0])
    return np.stack(rows)


def test_detect_align_embed_separates_identities(
    stack: tuple[FaceDetector, MobileFaceNetEmbedder], johns: tuple[list[Frame], np.ndarray]
) -> None:
    images, labels = johns
    aligned = _detect_and_embed(stack, images)
    centre = stack[1].embed_crops(
        [cv2.resize(image, (112, 112), interpolation=cv2.INTER_AREA) for image in images]
    )
    aligned_acc, aligned_gap = _separation(aligned, labels)
    centre_acc, centre_gap = _separation(centre, labels)
    print(
        f"\njohns leave-one-out 1-NN: detect+align acc {aligned_acc:.3f} gap {aligned_gap:.3f}; "
        f"centre crop acc {centre_acc:.3f} gap {centre_gap:.3f}"
    )
    assert aligned_acc >= 54 / 55
    assert aligned_gap >= 0.55
    assert aligned_gap > centre_gap + 0.2


def test_embeddings_are_unit_vectors_with_a_stable_id(
    stack: tuple[FaceDetector, MobileFaceNetEmbedder], johns: tuple[list[Frame], np.ndarray]
) -> None:
    detector, embedder = stack
    image = johns[0][0]
    faces = detector.detect(image)
    vectors = embedder.embed(image, faces)
    assert vectors.shape == (len(faces), 128) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.dim == 128
    assert embedder.embedder_id == "mobilefacenet-128-arcface112-v1"
    assert embedder.embed(image, []).shape == (0, 128)


def test_batch_equals_one_by_one(
    stack: tuple[FaceDetector, MobileFaceNetEmbedder], johns: tuple[list[Frame], np.ndarray]
) -> None:
    embedder = stack[1]
    crops = [cv2.resize(image, (112, 112)) for image in johns[0][:5]]
    batch = embedder.embed_crops(crops)
    single = np.concatenate([embedder.embed_crops([crop]) for crop in crops])
    np.testing.assert_allclose(batch, single, atol=1e-5)


def test_margin_crop_when_the_detector_gives_no_keypoints(
    stack: tuple[FaceDetector, MobileFaceNetEmbedder], johns: tuple[list[Frame], np.ndarray]
) -> None:
    """An SSD face detection (no keypoints) still embeds: the box is cropped with a margin."""
    detector, embedder = stack
    image = johns[0][0]
    face = max(detector.detect(image), key=lambda f: f.score)
    plain = FaceDetection(face.box, face.score)
    crop = embedder.crops(image, [plain])[0]
    assert crop.shape == (112, 112, 3)
    vector = embedder.embed(image, [plain])
    assert vector.shape == (1, 128)
    margin = MobileFaceNetEmbedder(embedder.model, alignment="margin", margin=0.1)
    assert margin.embedder_id == "mobilefacenet-128-margin112m10-v1"
    np.testing.assert_allclose(vector, margin.embed(image, [face]), atol=1e-5)


def test_openface_preprocessing_without_weights() -> None:
    """The .t7 weights are not in the mirror: check the blob OpenFace gets, not its output."""
    crop = np.zeros((96, 96, 3), np.uint8)
    crop[..., 0] = 255  # pure blue in BGR
    crop[..., 2] = 51
    blob = openface_blob([crop, cv2.resize(crop, (150, 150))])
    assert blob.shape == (2, 3, 96, 96) and blob.dtype == np.float32
    # Channel 0 is red after the swap, scaled to [0, 1].
    np.testing.assert_allclose(blob[:, 0], 0.2, atol=1e-6)
    np.testing.assert_allclose(blob[:, 2], 1.0, atol=1e-6)
    np.testing.assert_allclose(blob[:, 1], 0.0, atol=1e-6)
    # The original script's crop: the bare detector box, resized.
    assert openface_embedder_id("margin", 0.0) == "openface-nn4.small2.v1-128-box96-v1"


def test_openface_missing_or_corrupt_weights_are_clear_errors(tmp_path: Path) -> None:
    missing = tmp_path / "openface.nn4.small2.v1.t7"
    with pytest.raises(ModelNotFoundError) as raised:
        OpenFaceEmbedder(missing)
    assert str(missing) in str(raised.value) and "assets fetch" in str(raised.value)
    for garbage in (b"\x00" * 100, b"not torch at all" * 20):
        missing.write_bytes(garbage)
        with pytest.raises(ModelLoadError, match=r"not a loadable Torch \.t7 network") as raised:
            OpenFaceEmbedder(missing)
        assert "\n" not in str(raised.value)


def test_openface_via_config_names_the_missing_file(assets_dir: Path) -> None:
    config = load_config(
        assets_dir=str(assets_dir),
        models={"embedder": "models/openface.nn4.small2.v1.t7", "embedder_kind": "openface"},
    )
    with pytest.raises(ModelNotFoundError, match=r"openface\.nn4\.small2\.v1\.t7"):
        build_embedder(config)


def test_l2_normalize_leaves_zero_rows_finite() -> None:
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
    assert BBox(0, 0, 1, 1).area == 1
