"""Face alignment: hand-computed warps onto the 112x112 ArcFace template."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from agent.vision.alignment import (
    ARCFACE_TEMPLATE_112,
    align_face,
    alignment_matrix,
    margin_matrix,
    similarity_from_eyes,
    similarity_least_squares,
)
from agent.vision.types import BBox, FaceDetection

# Template eyes: (38.2946, 51.5988) and (73.5318, 51.5988), 35.2372 px apart, exactly level.
EYE_Y = 51.5988
EYE_DISTANCE = 73.5318 - 38.2946


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.asarray(points, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]


def test_template_eyes_are_level_and_centred() -> None:
    assert ARCFACE_TEMPLATE_112[0, 1] == ARCFACE_TEMPLATE_112[1, 1] == pytest.approx(EYE_Y, abs=1e-4)
    assert (ARCFACE_TEMPLATE_112[0, 0] + ARCFACE_TEMPLATE_112[1, 0]) / 2 == pytest.approx(55.9132, abs=1e-4)


def test_level_eyes_100px_apart_by_hand() -> None:
    # Eyes at (100, 200) and (200, 200): scale 35.2372 / 100, no rotation,
    # shift = template eye - scale * eye = (38.2946 - 35.2372, 51.5988 - 70.4744).
    matrix = similarity_from_eyes([[100, 200], [200, 200]])
    expected = np.array([[0.352372, 0.0, 3.0574], [0.0, 0.352372, -18.8756]])
    np.testing.assert_allclose(matrix, expected, atol=1e-4)


def test_tilted_eyes_are_levelled_and_placed() -> None:
    # Eye vector (60, 80): 100 px long at atan2(80, 60) = 53.13 degrees; the warp turns it back.
    eyes = np.array([[300.0, 100.0], [360.0, 180.0]])
    matrix = similarity_from_eyes(eyes)
    scale = math.hypot(matrix[0, 0], matrix[1, 0])
    assert scale == pytest.approx(EYE_DISTANCE / 100, abs=1e-6)
    assert math.degrees(math.atan2(matrix[1, 0], matrix[0, 0])) == pytest.approx(-53.1301, abs=1e-3)
    np.testing.assert_allclose(_apply(matrix, eyes), ARCFACE_TEMPLATE_112[:2], atol=1e-4)


def test_least_squares_inverts_an_exact_similarity() -> None:
    # Keypoints = template scaled x2, rotated 30 degrees, shifted (50, 60): the fit must undo it.
    angle = math.radians(30)
    rotation = 2.0 * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    keypoints = ARCFACE_TEMPLATE_112 @ rotation.T + [50.0, 60.0]
    matrix = similarity_least_squares(keypoints)
    np.testing.assert_allclose(_apply(matrix, keypoints), ARCFACE_TEMPLATE_112, atol=1e-4)
    assert math.hypot(matrix[0, 0], matrix[1, 0]) == pytest.approx(0.5, abs=1e-6)


def test_least_squares_ignores_the_ear_keypoints() -> None:
    keypoints = np.vstack([ARCFACE_TEMPLATE_112 + 10.0, [[0.0, 0.0], [999.0, 999.0]]])
    matrix = similarity_least_squares(keypoints)
    np.testing.assert_allclose(matrix, [[1, 0, -10], [0, 1, -10]], atol=1e-4)


def test_margin_crop_by_hand() -> None:
    # Box 100 x 80 centred at (60, 60); side = 100 * (1 + 2 * 0.1) = 120 -> scale 112 / 120.
    matrix = margin_matrix(BBox(10, 20, 110, 100), 112, 0.1)
    scale = 112 / 120
    np.testing.assert_allclose(matrix, [[scale, 0, 56 - 60 * scale], [0, scale, 56 - 60 * scale]], atol=1e-9)
    np.testing.assert_allclose(_apply(matrix, [[60, 60]]), [[56, 56]], atol=1e-9)


def test_no_keypoints_means_margin_crop() -> None:
    face = FaceDetection(BBox(10, 20, 110, 100), 0.9)
    np.testing.assert_allclose(
        alignment_matrix(face, 112, "keypoints", 0.1), margin_matrix(face.box, 112, 0.1)
    )


def test_warped_pixels_put_the_eyes_on_the_template() -> None:
    """Two bright dots drawn at tilted eye positions end up at the template's eye pixels."""
    image = np.zeros((400, 400, 3), np.uint8)
    eyes = np.array([[150.0, 150.0], [230.0, 210.0]], dtype=np.float32)  # 100 px apart, tilted 36.9 deg
    for x, y in eyes:
        cv2.circle(image, (int(x), int(y)), 4, (255, 255, 255), -1)
    keypoints = np.vstack([eyes, [[190.0, 230.0], [180.0, 280.0], [0.0, 0.0], [0.0, 0.0]]]).astype(np.float32)
    face = FaceDetection(BBox(100, 100, 300, 320), 0.9, keypoints)
    crop = align_face(image, face, mode="eyes")
    assert crop.shape == (112, 112, 3)
    gray = crop[..., 0].astype(np.float64)
    for template_eye in ARCFACE_TEMPLATE_112[:2]:
        x0, y0 = (round(float(v)) for v in template_eye)
        window = gray[y0 - 5 : y0 + 6, x0 - 5 : x0 + 6]
        ys, xs = np.nonzero(window > 64)
        weights = window[ys, xs]
        centre = np.array(
            [(xs * weights).sum() / weights.sum() + x0 - 5, (ys * weights).sum() / weights.sum() + y0 - 5]
        )
        np.testing.assert_allclose(centre, template_eye, atol=0.6)


def test_coincident_eyes_are_rejected() -> None:
    with pytest.raises(ValueError, match="coincide"):
        similarity_from_eyes([[5, 5], [5, 5]])
