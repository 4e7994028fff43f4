"""Is a face good enough to say who it is? Size, sharpness and turn, measured before embedding.

- height: the face box's height in frame pixels;
- sharpness: variance of the Laplacian of the face aligned to the embedder's 112x112 template
  (grey). Measured on the aligned crop, so it compares faces of any size on one scale: a small
  face upscaled to 112 px, or a motion-blurred one, has little high-frequency energy left;
- turn: how far the nose tip sits from the middle of the eyes, along the eye line, in units of the
  eye distance (BlazeFace keypoints). About 0 for a frontal face, 0.5 or more for a profile.
Faces without keypoints (an SSD face detector) get turn 0: nothing is known, nothing is held
against them.

The thresholds come from `python -m bench.face_quality` (docs/detection.md): the point where the
embedder stops naming the shared identity photos reliably.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from agent.vision.alignment import align_face
from agent.vision.types import FaceDetection, Frame

Reason = Literal["small", "blurred", "turned"]
REASONS: tuple[Reason, ...] = ("small", "blurred", "turned")


@dataclass(frozen=True, slots=True)
class QualityParams:
    # 0 switches a check off.
    min_height: float = 0.0
    min_sharpness: float = 0.0
    max_turn: float = 0.0


@dataclass(frozen=True, slots=True)
class FaceQuality:
    height: float
    sharpness: float
    turn: float

    def rejected(self, params: QualityParams) -> Reason | None:
        """Why this face should not vote, or None; the first failing check in REASONS order."""
        if params.min_height > 0 and self.height < params.min_height:
            return "small"
        if params.min_sharpness > 0 and self.sharpness < params.min_sharpness:
            return "blurred"
        if params.max_turn > 0 and self.turn > params.max_turn:
            return "turned"
        return None


def turn_of(face: FaceDetection) -> float:
    """|nose offset from the eyes' midpoint along the eye line| / eye distance (0 = frontal)."""
    points = face.keypoints
    if points is None or len(points) < 3:
        return 0.0
    right_eye, left_eye, nose = (np.asarray(points[i], dtype=np.float64) for i in range(3))
    axis = left_eye - right_eye
    distance = float(np.hypot(axis[0], axis[1]))
    if distance < 1e-6:
        return 1.0
    offset = float(np.dot(nose - (right_eye + left_eye) / 2, axis / distance))
    return abs(offset) / distance


def sharpness_of(frame: Frame, face: FaceDetection) -> float:
    """Variance of the Laplacian of the grey 112x112 aligned face."""
    crop = align_face(frame, face, mode="keypoints" if face.keypoints is not None else "margin")
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def measure(frame: Frame, face: FaceDetection) -> FaceQuality:
    return FaceQuality(height=face.box.height, sharpness=sharpness_of(frame, face), turn=turn_of(face))
