"""Face crops for embedders: a similarity warp onto the ArcFace 112x112 template, or a margin crop.

The template is InsightFace's 5-point ArcFace layout, with both eyes (and both mouth corners) set to
their mean height so an aligned face is exactly level, and the mouth corners merged into the mouth
centre BlazeFace gives.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from agent.vision.types import BBox, FaceDetection, FloatArray, Frame

Alignment = Literal["keypoints", "eyes", "margin"]

TEMPLATE_SIZE = 112
_EYE_Y = (51.6963 + 51.5014) / 2
_MOUTH_Y = (92.3655 + 92.2041) / 2
# Image-left eye (the subject's right), image-right eye, nose tip, mouth centre; 112x112 pixels.
ARCFACE_TEMPLATE_112: FloatArray = np.array(
    [
        [38.2946, _EYE_Y],
        [73.5318, _EYE_Y],
        [56.0252, 71.7366],
        [(41.5493 + 70.7299) / 2, _MOUTH_Y],
    ],
    dtype=np.float32,
)
# BlazeFace keypoints 0..3 are right eye, left eye, nose tip, mouth centre: the template's order.
TEMPLATE_KEYPOINTS = 4

Matrix = npt.NDArray[np.float64]


def template(size: int) -> FloatArray:
    """The template scaled to a `size` x `size` crop."""
    return (ARCFACE_TEMPLATE_112 * (size / TEMPLATE_SIZE)).astype(np.float32)


def similarity_from_eyes(eyes: npt.ArrayLike, size: int = TEMPLATE_SIZE) -> Matrix:
    """2x3 similarity putting both eyes exactly on the template's eye positions (closed form)."""
    src = np.asarray(eyes, dtype=np.float64).reshape(2, 2)
    dst = template(size)[:2].astype(np.float64)
    src_vec = src[1] - src[0]
    dst_vec = dst[1] - dst[0]
    src_len = float(np.hypot(*src_vec))
    if src_len < 1e-6:
        raise ValueError("eye keypoints coincide")
    scale = float(np.hypot(*dst_vec)) / src_len
    angle = np.arctan2(dst_vec[1], dst_vec[0]) - np.arctan2(src_vec[1], src_vec[0])
    cos, sin = scale * np.cos(angle), scale * np.sin(angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    translation = dst[0] - rotation @ src[0]
    return np.hstack([rotation, translation[:, None]])


def similarity_least_squares(points: npt.ArrayLike, size: int = TEMPLATE_SIZE) -> Matrix:
    """2x3 similarity (no reflection) that best maps eyes, nose and mouth onto the template.

    Closed-form least squares (Umeyama 1991): spreads the keypoint error over all four points
    instead of trusting the eyes alone.
    """
    src = np.asarray(points, dtype=np.float64).reshape(-1, 2)[:TEMPLATE_KEYPOINTS]
    dst = template(size)[: len(src)].astype(np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    variance = float((src_c**2).sum()) / len(src)
    if variance < 1e-9:
        raise ValueError("keypoints coincide")
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(singular) @ sign)) / variance
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def margin_matrix(box: BBox, size: int, margin: float) -> Matrix:
    """2x3 scale+shift cropping a square around the box, grown by `margin` of its side each way."""
    side = max(box.width, box.height) * (1.0 + 2.0 * margin)
    if side <= 0:
        raise ValueError(f"empty face box {box}")
    cx, cy = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
    scale = size / side
    return np.array([[scale, 0.0, size / 2 - cx * scale], [0.0, scale, size / 2 - cy * scale]])


def alignment_matrix(face: FaceDetection, size: int, mode: Alignment, margin: float) -> Matrix:
    """The warp for one face; faces without keypoints always get the margin crop."""
    keypoints = face.keypoints
    if mode == "margin" or keypoints is None or len(keypoints) < 2:
        return margin_matrix(face.box, size, margin)
    if mode == "eyes" or len(keypoints) < TEMPLATE_KEYPOINTS:
        return similarity_from_eyes(keypoints[:2], size)
    return similarity_least_squares(keypoints, size)


def align_face(
    frame: Frame,
    face: FaceDetection,
    *,
    size: int = TEMPLATE_SIZE,
    mode: Alignment = "keypoints",
    margin: float = 0.1,
) -> Frame:
    """A `size` x `size` BGR crop of the face; pixels outside the frame repeat the border."""
    matrix = alignment_matrix(face, size, mode, margin)
    warped = cv2.warpAffine(
        frame, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return np.asarray(warped, dtype=np.uint8)
