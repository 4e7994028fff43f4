"""`cluster`'s work on a folder: its faces, their groups, and the groups file `name` reads.

DIR is an inbox (`collect` wrote an index.jsonl: the devices' embeddings are used when they come
from the same embedder, else the crops are embedded again) or any folder of photos (searched
recursively, hidden folders skipped; faces detected and embedded as `train` does; a photo with no
face is skipped and said so). Every face of a photo is a member: a photo with one face is named by
its path, the faces of a photo with several by `path#k`, k = 1.. from left to right
(trainer/photo_faces.py); their crops go to DIR/.groups/faces/, for contact sheets and `name`.
Faces the quality gate rejects are listed as ungrouped. Results go to DIR/.groups/: groups.json and
one contact sheet PNG per group.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from agent.vision.face_quality import FaceQuality, QualityParams
from agent.vision.types import Frame
from trainer.clustering import Rule, group_gated
from trainer.contact_sheet import write_contact_sheet
from trainer.dataset import IMAGE_SUFFIXES, FaceEmbedding, UnreadableImage
from trainer.group_file import GROUPS_DIR, GROUPS_FILE, crop_name
from trainer.inbox import is_inbox, read_faces, read_records
from trainer.photo_faces import photo_faces


@dataclass(slots=True)
class Face:
    path: str  # relative to DIR, posix
    embedding: npt.NDArray[np.float32]
    device: str | None = None
    ts: str | None = None
    score: float = 0.0
    height: float = float("inf")  # unknown height: never held against the face
    passed: bool = True  # the agent's quality gate
    crop: Frame | None = None  # set for a face of a photo with several faces


@dataclass(slots=True)
class Group:
    id: str
    members: list[str]
    devices: list[str] = field(default_factory=list)
    first_seen: str | None = None
    last_seen: str | None = None
    probably: str | None = None
    sheet: str | None = None
    # Members ordered best first (quality score for an inbox, else as listed).
    best: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "members": self.members,
            "size": len(self.members),
            "devices": self.devices,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "probably": self.probably,
            "sheet": self.sheet,
            "best": self.best,
        }


@dataclass(slots=True)
class Clustering:
    root: Path
    groups: list[Group]
    ungrouped: list[str]
    skipped: list[str]
    embedder: str
    rule: Rule
    crops: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """What `cluster --json` prints: exactly groups (id, members) and ungrouped."""
        return {
            "groups": [{"id": g.id, "members": g.members} for g in self.groups],
            "ungrouped": self.ungrouped,
        }


def list_photos(root: Path) -> list[Path]:
    out: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(Path(folder) / f for f in sorted(files) if Path(f).suffix.lower() in IMAGE_SUFFIXES)
    return out


def _gate(quality: dict[str, Any] | None, gate: QualityParams) -> tuple[float, bool]:
    """An inbox record's height and verdict by the gate, from the numbers the agent sent."""
    if not quality or "height" not in quality:
        return float("inf"), True
    measured = FaceQuality(
        float(quality["height"]), float(quality.get("sharpness", 1e9)), float(quality.get("turn", 0.0))
    )
    return measured.height, measured.rejected(gate) is None


def load_faces(
    root: Path, embedding: FaceEmbedding, gate: QualityParams, *, progress: bool
) -> tuple[list[Face], list[str]]:
    """The faces of DIR and the lines saying which photos were skipped."""
    if is_inbox(root):
        faces: list[Face] = []
        again: list[Path] = []
        records = read_faces(root)
        quality = {str(r.get("path")): r.get("quality") for r in read_records(root)}
        for r in records:
            height, passed = _gate(quality.get(r.path), gate)
            if r.embedder == embedding.embedder_id and r.embedding.shape == (embedding.dim,):
                faces.append(Face(r.path, r.embedding, r.device, r.ts, r.quality_score, height, passed))
            else:
                again.append(root / r.path)
        by_path = {r.path: r for r in records}
        fresh, skipped = _embed(root, again, embedding, gate, progress=progress)
        for face in fresh:
            # A crop holds one face; embedded again, it keeps its record's path and metadata.
            record = by_path.get(face.path)
            if record is not None:  # not a crop in which several faces were found
                faces.append(
                    Face(
                        face.path,
                        face.embedding,
                        record.device,
                        record.ts,
                        record.quality_score,
                        face.height,
                        face.passed,
                    )
                )
        return faces, skipped
    return _embed(root, list_photos(root), embedding, gate, progress=progress)


def _embed(
    root: Path, paths: list[Path], embedding: FaceEmbedding, gate: QualityParams, *, progress: bool
) -> tuple[list[Face], list[str]]:
    faces: list[Face] = []
    skipped: list[str] = []
    for n, path in enumerate(paths, 1):
        if progress:
            print(f"\rfaces: {n}/{len(paths)} photos", end="", file=sys.stderr, flush=True)
        try:
            found = photo_faces(embedding, path)
        except UnreadableImage as exc:
            skipped.append(f"{path} (unreadable: {exc.reason})")
            continue
        if not found:
            skipped.append(f"{path} (no face)")
            continue
        name = path.relative_to(root).as_posix()
        for face in found:
            several = len(found) > 1
            faces.append(
                Face(
                    f"{name}#{face.index}" if several else name,
                    face.embedding,
                    height=face.quality.height,
                    passed=face.quality.rejected(gate) is None,
                    crop=face.crop if several else None,
                )
            )
    if progress and paths:
        print(file=sys.stderr)
    return faces, skipped


def cluster(
    root: Path,
    faces: list[Face],
    *,
    embedder: str,
    rule: Rule | None = None,
    probably: Callable[[npt.NDArray[np.float32]], str | None] | None = None,
    skipped: list[str] | None = None,
) -> Clustering:
    rule = rule or Rule()
    faces = sorted(faces, key=lambda f: f.path)
    found = (
        group_gated(
            np.asarray([f.embedding for f in faces], dtype=np.float32),
            [f.height for f in faces],
            rule,
            [f.passed for f in faces],
        )
        if faces
        else []
    )
    grouped = {i for rows in found for i in rows}
    ungrouped = [f.path for i, f in enumerate(faces) if i not in grouped]
    # Crops are biometric data: kept only for the faces a group may name.
    crops = {faces[i].path: faces[i].crop for i in sorted(grouped) if faces[i].crop is not None}
    groups: list[Group] = []
    for rows in found:
        members = [faces[i] for i in rows]
        seen = sorted(f.ts for f in members if f.ts)
        group = Group(
            id=f"g{len(groups) + 1}",
            members=[f.path for f in members],
            devices=sorted({f.device for f in members if f.device}),
            first_seen=seen[0] if seen else None,
            last_seen=seen[-1] if seen else None,
            # What `name` copies and contact sheets show: a file each, the crop for a face of a
            # photo with several faces.
            best=[
                crop_name(f.path) if f.crop is not None else f.path
                for f in sorted(members, key=lambda f: (-f.score, f.path))
            ],
        )
        if probably is not None:
            group.probably = probably(np.asarray([f.embedding for f in members], dtype=np.float32))
        groups.append(group)
    return Clustering(root, groups, sorted(ungrouped), skipped or [], embedder, rule, crops)


def save(result: Clustering, *, sheets: bool = True) -> Path:
    """DIR/.groups/groups.json and a contact sheet per group; returns the folder."""
    out = result.root / GROUPS_DIR
    out.mkdir(parents=True, exist_ok=True)
    for member, crop in result.crops.items():
        target = result.root / crop_name(member)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(target), crop):
            raise OSError(f"cannot write {target}")
    for group in result.groups:
        if sheets:
            sheet = out / f"{group.id}.png"
            title = f"{group.id}: {len(group.members)} faces" + (
                f", probably {group.probably}" if group.probably else ""
            )
            write_contact_sheet([result.root / m for m in group.best], sheet, title)
            group.sheet = sheet.relative_to(result.root).as_posix()
    document = {
        "embedder": result.embedder,
        "max_distance": result.rule.max_distance,
        "min_height": result.rule.min_height,
        "groups": [g.as_dict() for g in result.groups],
        "ungrouped": result.ungrouped,
    }
    temp = out / (GROUPS_FILE + ".tmp")
    temp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(temp, out / GROUPS_FILE)
    return out
