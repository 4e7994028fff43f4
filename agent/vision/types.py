"""Plain data passed between the vision stages. Frames are BGR uint8 arrays (OpenCV's layout)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

Frame = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class BBox:
    """Axis-aligned box in frame pixels, (x1, y1) top-left inclusive, (x2, y2) bottom-right."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return max(0.0, self.x2 - self.x1)

    @property
    def height(self) -> float:
        return max(0.0, self.y2 - self.y1)

    @property
    def area(self) -> float:
        return self.width * self.height

    def tlwh(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.width, self.height)

    @classmethod
    def from_tlwh(cls, x: float, y: float, w: float, h: float) -> BBox:
        return cls(x, y, x + w, y + h)

    def iou(self, other: BBox) -> float:
        ix = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def intersection_over_self(self, other: BBox) -> float:
        """Share of this box that lies inside `other` (how much a face lies inside a person)."""
        ix = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        return ix * iy / self.area if self.area > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Detection:
    """An object detection (a person, for the COCO detector)."""

    box: BBox
    score: float
    class_id: int


@dataclass(frozen=True, slots=True)
class FaceDetection:
    """A face box; `keypoints` is (K, 2) pixel coordinates, or None when the model gives none.

    BlazeFace gives 6 keypoints in this order: right eye, left eye (from the subject's view),
    nose tip, mouth centre, right ear tragion, left ear tragion.
    """

    box: BBox
    score: float
    keypoints: FloatArray | None = field(default=None, compare=False)


class PersonDetector(Protocol):
    def detect(self, frame: Frame) -> list[Detection]: ...


class FaceDetector(Protocol):
    def detect(self, frame: Frame) -> list[FaceDetection]: ...


class FaceEmbedder(Protocol):
    @property
    def embedder_id(self) -> str:
        """Stable id: name, dimension and preprocessing; classifiers record it."""
        ...

    @property
    def dim(self) -> int: ...

    def embed(self, frame: Frame, faces: list[FaceDetection]) -> FloatArray:
        """(len(faces), dim) float32, each row L2-normalised."""
        ...
