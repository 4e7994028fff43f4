"""The inbox `facetrack-trainer collect` writes: face crops and one index file (docs/enrolment.md).

    inbox/index.jsonl            one JSON line per face: id, path, device, track_id, ts, media_s,
                                 label, confidence, quality, embedder, embedding, sha256
    inbox/faces/<device>/<id>.jpg

A face is added once: a message sent twice (a lost PUBACK) has the same `id`, and the same crop
from one device replayed under a new id has the same sha256; both are dropped as duplicates.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

INDEX = "index.jsonl"
LOCK = ".collect.lock"
FACES = "faces"
_SAFE = re.compile(r"[A-Za-z0-9_-]{1,64}")


class InboxError(ValueError):
    """A message or an inbox that cannot be used; one line."""


@dataclass(frozen=True, slots=True)
class InboxFace:
    """One indexed face: `path` is relative to the inbox."""

    id: str
    path: str
    device: str
    track_id: int
    ts: str
    embedder: str
    embedding: npt.NDArray[np.float32]
    quality_score: float


def parse_message(payload: bytes) -> tuple[dict[str, Any], bytes]:
    """The index record (without path) and the JPEG bytes of one faces-topic message."""
    try:
        message = json.loads(payload)
        jpeg = base64.b64decode(message["jpeg"], validate=True)
        face_id = str(message["id"])
        device = str(message["device"])
        embedding = [float(v) for v in message["embedding"]]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise InboxError(f"not a face message: {type(exc).__name__}: {exc}") from None
    if not _SAFE.fullmatch(face_id) or not _SAFE.fullmatch(device):
        raise InboxError(f"face message with unsafe id {face_id[:70]!r} or device {device[:70]!r}")
    if not jpeg.startswith(b"\xff\xd8"):
        raise InboxError(f"face {face_id}: the crop is not a JPEG")
    record = {k: v for k, v in message.items() if k != "jpeg"}
    record["embedding"] = embedding
    record["sha256"] = hashlib.sha256(jpeg).hexdigest()
    return record, jpeg


class Inbox:
    """Appends faces to an inbox folder, skipping the ones it already holds."""

    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InboxError(f"inbox {root} cannot be created: {exc.strerror or exc}") from None
        # One writer per inbox: two collectors appending to one index would both add every face.
        self._lock = (root / LOCK).open("a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise InboxError(f"inbox {root} is in use by another `facetrack-trainer collect`") from None
        self._ids: set[str] = set()
        self._hashes: set[str] = set()
        for record in read_records(root):
            self._ids.add(str(record.get("id")))
            self._hashes.add(f"{record.get('device')}/{record.get('sha256')}")
        self.added = 0
        self.duplicates = 0

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._lock.close()

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, payload: bytes) -> bool:
        """Store one message's face; False for a duplicate. Raises InboxError for a bad message."""
        record, jpeg = parse_message(payload)
        content = f"{record['device']}/{record['sha256']}"
        if record["id"] in self._ids or content in self._hashes:
            self.duplicates += 1
            return False
        relative = Path(FACES) / record["device"] / f"{record['id']}.jpg"
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_suffix(".tmp")
        temp.write_bytes(jpeg)
        os.replace(temp, target)
        record["path"] = relative.as_posix()
        # The crop first, then its line: a crash in between leaves a file without a line (ignored
        # and overwritten when the face comes again), never a line without its file.
        with (self.root / INDEX).open("a", encoding="utf-8") as index:
            index.write(json.dumps(record, separators=(",", ":")) + "\n")
            index.flush()
            os.fsync(index.fileno())
        self._ids.add(record["id"])
        self._hashes.add(content)
        self.added += 1
        return True


def is_inbox(root: Path) -> bool:
    return (root / INDEX).is_file()


def read_records(root: Path) -> list[dict[str, Any]]:
    """Every line of the index whose crop still exists (a torn last line is skipped)."""
    path = root / INDEX
    if not path.is_file():
        return []
    out: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and (root / str(record.get("path", ""))).is_file():
            out.append(record)
    return out


def read_faces(root: Path) -> list[InboxFace]:
    faces: list[InboxFace] = []
    for r in read_records(root):
        faces.append(
            InboxFace(
                id=str(r["id"]),
                path=str(r["path"]),
                device=str(r.get("device", "")),
                track_id=int(r.get("track_id", -1)),
                ts=str(r.get("ts", "")),
                embedder=str(r.get("embedder", "")),
                embedding=np.asarray(r.get("embedding", []), dtype=np.float32),
                quality_score=float((r.get("quality") or {}).get("score", 0.0)),
            )
        )
    return faces


def remove_paths(root: Path, paths: set[str]) -> int:
    """Delete these crops and their index lines (discarded faces: biometric data is not kept)."""
    records = [r for r in read_records(root) if str(r.get("path")) not in paths]
    removed = 0
    for path in paths:
        target = root / path
        if target.is_file():
            target.unlink()
            removed += 1
    temp = root / (INDEX + ".tmp")
    temp.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records), encoding="utf-8")
    os.replace(temp, root / INDEX)
    return removed
