"""Every face of one photo, with what `cluster` needs to decide about it: its embedding, the
quality gate's numbers (agent/vision/face_quality.py) and a crop to show or to name it by.

Faces are numbered 1.. from left to right, so a photo's numbering does not change between runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from agent.vision.face_quality import FaceQuality, measure
from agent.vision.types import FaceDetection, Frame
from trainer.dataset import FaceEmbedding, decode_photo, pad_image, read_photo

# Context kept around a face box in its crop, as a share of the box's size: enough for a person to
# recognise the face on a contact sheet and for the detector to find it again when it is named.
CROP_MARGIN = 0.5


@dataclass(frozen=True, slots=True)
class PhotoFace:
    index: int  # 1-based, left to right
    embedding: npt.NDArray[np.float32]
    quality: FaceQuality
    crop: Frame


def _crop(frame: Frame, face: FaceDetection) -> Frame:
    box = face.box
    dx, dy = box.width * CROP_MARGIN, box.height * CROP_MARGIN
    h, w = frame.shape[:2]
    x1, y1 = max(0, int(box.x1 - dx)), max(0, int(box.y1 - dy))
    x2, y2 = min(w, int(box.x2 + dx) + 1), min(h, int(box.y2 + dy) + 1)
    return np.ascontiguousarray(frame[y1:y2, x1:x2])


def photo_faces(embedding: FaceEmbedding, path: Path) -> list[PhotoFace]:
    """The faces of one photo, left to right. Raises UnreadableImage."""
    # Padded as `train` pads: the same detections, so the same faces as training would see.
    frame = pad_image(decode_photo(path, read_photo(path)), embedding.pad)
    found: list[FaceDetection] = sorted(embedding.detector.detect(frame), key=lambda f: (f.box.x1, f.box.y1))
    if not found:
        return []
    rows = np.asarray(embedding.embedder.embed(frame, found), dtype=np.float32).reshape(-1, embedding.dim)
    return [
        PhotoFace(k + 1, rows[k], measure(frame, face), _crop(frame, face)) for k, face in enumerate(found)
    ]
