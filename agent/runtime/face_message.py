"""A kept face as the JSON message published on `<prefix>/<device>/faces` (docs/enrolment.md).

{"v": 1, "id": "<uuid>", "device", "track_id", "frame", "media_s", "ts" (the time the frame shows),
 "label" ("unknown" or a low-confidence name), "confidence", "quality": {"height", "sharpness",
 "turn", "score"}, "embedder", "embedding": [floats], "jpeg": "<base64>"}

`id` is made once, when the face is kept: a face sent twice (a lost PUBACK) keeps its id, and the
trainer's `collect` drops the second copy.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import cv2

from agent.pipeline.enrolment import KeptFace

FORMAT_VERSION = 1


class FaceEncodeError(ValueError):
    """The crop could not be encoded as JPEG."""


def encode_face(face: KeptFace, *, device: str, embedder: str, jpeg_quality: int) -> bytes:
    ok, jpeg = cv2.imencode(".jpg", face.candidate.crop, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
        raise FaceEncodeError(f"track {face.track_id}: crop of shape {face.candidate.crop.shape} not encoded")
    quality = face.candidate.quality
    message: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "id": uuid.uuid4().hex,
        "device": device,
        "track_id": face.track_id,
        "frame": face.frame_index,
        "media_s": None if face.media_s is None else round(face.media_s, 3),
        "ts": face.wall_ts,
        "label": face.label,
        "confidence": round(face.confidence, 4),
        "quality": {
            "height": round(quality.height, 1),
            "sharpness": round(quality.sharpness, 2),
            "turn": round(quality.turn, 3),
            "score": round(face.score, 4),
        },
        "embedder": embedder,
        "embedding": [round(float(v), 6) for v in face.candidate.embedding],
        "jpeg": base64.b64encode(jpeg.tobytes()).decode("ascii"),
    }
    return json.dumps(message, separators=(",", ":")).encode()
