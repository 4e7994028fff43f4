"""Which faces of a track are worth naming later: the best few by the face-quality gate's numbers.

Pure: the analyzer hands each embedded face's quality, embedding and crop to `FaceKeeper.observe`;
when a track ends, `FaceKeeper.finish` returns its kept faces if the track ended unknown (or, when
asked, named with a confidence that stayed low), else nothing. Only faces that passed the gate were
embedded, so every candidate is one the classifier could have used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from agent.classifier.labels import UNKNOWN
from agent.vision.face_quality import FaceQuality
from agent.vision.types import BBox, Frame

# Height (px) and sharpness (Laplacian variance of the aligned face) where a face counts as fully
# good; above them only turn separates faces. Rough doubles of the gate's defaults
# (docs/detection.md: 20 px, 6.8).
FULL_HEIGHT = 80.0
FULL_SHARPNESS = 40.0


# Margin around the face box in a kept crop, as a share of the box's longest side: `train` detects
# the face again in the crop, and a detector wants some head and background around a face.
CROP_MARGIN = 0.5


def margin_crop(image: Frame, box: BBox, size: int) -> Frame | None:
    """The face box grown by CROP_MARGIN on each side, clipped to the frame, scaled down so its
    longest side is at most `size`; a copy (the frame is reused). None for an empty box."""
    side = max(box.width, box.height)
    if side <= 1:
        return None
    pad = CROP_MARGIN * side
    height, width = image.shape[:2]
    x1, y1 = max(0, int(box.x1 - pad)), max(0, int(box.y1 - pad))
    x2, y2 = min(width, int(np.ceil(box.x2 + pad))), min(height, int(np.ceil(box.y2 + pad)))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    crop = image[y1:y2, x1:x2]
    scale = size / max(x2 - x1, y2 - y1)
    if scale < 1.0:
        new_size = (max(1, round((x2 - x1) * scale)), max(1, round((y2 - y1) * scale)))
        return np.asarray(cv2.resize(crop, new_size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    return np.array(crop, dtype=np.uint8, copy=True)


def quality_score(quality: FaceQuality) -> float:
    """One number to rank a track's faces: bigger, sharper and more frontal is better (0..1)."""
    size = min(quality.height / FULL_HEIGHT, 1.0)
    sharp = min(quality.sharpness / FULL_SHARPNESS, 1.0)
    frontal = max(0.0, 1.0 - quality.turn)
    return float(size * sharp * frontal)


@dataclass(frozen=True, slots=True, eq=False)
class FaceCandidate:
    """One embedded face of one frame: what the analyzer measured and cut out."""

    quality: FaceQuality
    embedding: npt.NDArray[np.float32]
    # BGR pixels of the face box with a margin, already scaled down to the crop size.
    crop: Frame


@dataclass(frozen=True, slots=True, eq=False)
class KeptFace:
    """A face worth naming, with where and when it was seen."""

    track_id: int
    frame_index: int
    media_s: float | None
    wall_ts: str
    label: str
    confidence: float
    score: float
    candidate: FaceCandidate


@dataclass(slots=True)
class _TrackFaces:
    # Best first; at most per_track, no two within min_gap frames of each other.
    kept: list[KeptFace] = field(default_factory=list)
    best_confidence: float = 0.0


class FaceKeeper:
    """Keeps the `per_track` best faces of each live track, at least `min_gap` frames apart (faces
    of consecutive frames are nearly the same picture); hands them out when the track ends."""

    def __init__(self, per_track: int, low_confidence: float = 0.0, min_gap: int = 1) -> None:
        self.per_track = max(1, per_track)
        self.low_confidence = low_confidence
        self.min_gap = max(1, min_gap)
        self._tracks: dict[int, _TrackFaces] = {}

    def observe(
        self,
        track_id: int,
        candidate: FaceCandidate,
        *,
        frame_index: int,
        media_s: float | None,
        wall_ts: str,
        confidence: float | None,
    ) -> None:
        faces = self._tracks.setdefault(track_id, _TrackFaces())
        if confidence is not None:
            faces.best_confidence = max(faces.best_confidence, confidence)
        score = quality_score(candidate.quality)
        near = [k for k in faces.kept if abs(k.frame_index - frame_index) < self.min_gap]
        if any(k.score >= score for k in near):
            return
        if len(faces.kept) - len(near) >= self.per_track and score <= faces.kept[-1].score:
            return
        kept = KeptFace(track_id, frame_index, media_s, wall_ts, UNKNOWN, 0.0, score, candidate)
        others = [k for k in faces.kept if abs(k.frame_index - frame_index) >= self.min_gap]
        faces.kept = sorted([*others, kept], key=lambda k: -k.score)[: self.per_track]

    def finish(self, track_id: int, label: str) -> list[KeptFace]:
        """The track ended as `label`: its kept faces (best first) if it is worth naming, else []."""
        faces = self._tracks.pop(track_id, None)
        if faces is None or not faces.kept:
            return []
        named_but_unsure = label != UNKNOWN and faces.best_confidence < self.low_confidence
        if label != UNKNOWN and not named_but_unsure:
            return []
        return [_relabel(kept, label, faces.best_confidence) for kept in faces.kept]

    def track_ids(self) -> list[int]:
        """The tracks holding faces, in id order (a copy: `finish` may be called while iterating)."""
        return sorted(self._tracks)


def _relabel(kept: KeptFace, label: str, confidence: float) -> KeptFace:
    return KeptFace(
        kept.track_id,
        kept.frame_index,
        kept.media_s,
        kept.wall_ts,
        label,
        confidence,
        kept.score,
        kept.candidate,
    )
