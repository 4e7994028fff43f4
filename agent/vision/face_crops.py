"""Faces looked for where a person's head is, at the face detector's own resolution.

BlazeFace shrinks whatever it is given to 256x256 (128 or 192 for the other variants): on a whole
1920x1080 frame a 70 px face becomes 9 px and is lost. Given the head region of a person box
instead (the top of the box, a square as wide as the person plus a margin), the same face fills a
good part of the detector's input. Boxes and keypoints are mapped back to frame pixels, so the
embedder aligns the face from the full-resolution frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agent.vision.types import BBox, FaceDetection, FaceDetector, Frame

# Crops smaller than this (pixels) are grown to it around their centre: less than that holds no
# face an embedder could use, and a tiny crop upscaled 10x only makes the detector guess.
MIN_CROP_SIDE = 48


# A face is at most this share of its person box's width (shoulders are 2.5-3 face heights wide;
# a close-up box is wider still). A person box narrower than 2.5x the smallest face that may vote
# cannot show such a face, so it gets no face look at all.
FACE_SHARE_OF_PERSON_WIDTH = 0.4


def may_show_a_face(person: BBox, min_face_height: float) -> bool:
    """Could this person box hold a face at least `min_face_height` px tall?"""
    return person.width * FACE_SHARE_OF_PERSON_WIDTH >= min_face_height


@dataclass(frozen=True, slots=True)
class HeadCrop:
    """A crop of the frame (integer pixels, x2/y2 exclusive) for person `person_index`."""

    person_index: int
    x1: int
    y1: int
    x2: int
    y2: int


def head_region(
    person: BBox, frame_size: tuple[int, int], *, margin: float = 0.2, person_index: int = 0
) -> HeadCrop | None:
    """The square at the top of a person box where the head is, grown by `margin` of the box's
    width on each side and above, clipped to the frame.

    A standing person is about three times taller than wide, so the square covers head and
    shoulders; a close-up (box as wide as tall) is covered whole. None for an empty box.
    """
    width, height = frame_size
    if person.width <= 0 or person.height <= 0:
        return None
    side = max(person.width * (1.0 + 2.0 * margin), float(MIN_CROP_SIDE))
    cx = (person.x1 + person.x2) / 2
    top = person.y1 - margin * person.width
    x1 = int(np.floor(max(0.0, cx - side / 2)))
    x2 = int(np.ceil(min(float(width), cx + side / 2)))
    y1 = int(np.floor(max(0.0, top)))
    y2 = int(np.ceil(min(float(height), top + side)))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    return HeadCrop(person_index, x1, y1, x2, y2)


def shift_face(face: FaceDetection, dx: float, dy: float) -> FaceDetection:
    box = BBox(face.box.x1 + dx, face.box.y1 + dy, face.box.x2 + dx, face.box.y2 + dy)
    keypoints = None
    if face.keypoints is not None:
        keypoints = (face.keypoints + np.array([dx, dy], dtype=np.float32)).astype(np.float32)
    return FaceDetection(box, face.score, keypoints)


def faces_in_crops(
    detector: FaceDetector, frame: Frame, crops: Sequence[HeadCrop], *, iou_threshold: float = 0.3
) -> list[FaceDetection]:
    """Every face found in the crops, in frame pixels; a face seen in two overlapping crops (two
    people side by side) is kept once, with its best score."""
    found: list[FaceDetection] = []
    for crop in crops:
        image = frame[crop.y1 : crop.y2, crop.x1 : crop.x2]
        found.extend(shift_face(f, float(crop.x1), float(crop.y1)) for f in detector.detect(image))
    found.sort(key=lambda f: -f.score)
    kept: list[FaceDetection] = []
    for face in found:
        if all(face.box.iou(other.box) <= iou_threshold for other in kept):
            kept.append(face)
    return kept
