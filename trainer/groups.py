"""`cluster`'s work on a folder: its faces, their groups, and the groups file `name` reads.

DIR is an inbox (`collect` wrote an index.jsonl: the devices' embeddings are used when they come
from the same embedder, else the crops are embedded again) or any folder of photos (searched
recursively, hidden folders skipped; faces detected and embedded as `train` does; a photo with no
face or several is skipped and said so). Results go to DIR/.groups/: groups.json and one contact
sheet PNG per group.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from trainer.cluster_cut import DEFAULT_DISTANCE
from trainer.clustering import group_faces
from trainer.contact_sheet import write_contact_sheet
from trainer.dataset import IMAGE_SUFFIXES, FaceEmbedding, describe_skipped
from trainer.group_file import GROUPS_DIR, GROUPS_FILE
from trainer.inbox import is_inbox, read_faces


@dataclass(slots=True)
class Face:
    path: str  # relative to DIR, posix
    embedding: npt.NDArray[np.float32]
    device: str | None = None
    ts: str | None = None
    score: float = 0.0


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
    max_distance: float

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


def load_faces(root: Path, embedding: FaceEmbedding, *, progress: bool) -> tuple[list[Face], list[str]]:
    """The faces of DIR and the lines saying which photos were skipped."""
    if is_inbox(root):
        faces: list[Face] = []
        again: list[Path] = []
        records = read_faces(root)
        for r in records:
            if r.embedder == embedding.embedder_id and r.embedding.shape == (embedding.dim,):
                faces.append(Face(r.path, r.embedding, r.device, r.ts, r.quality_score))
            else:
                again.append(root / r.path)
        by_path = {r.path: r for r in records}
        fresh, skipped = _embed(root, again, embedding, progress=progress)
        for face in fresh:
            r = by_path[face.path]
            faces.append(Face(face.path, face.embedding, r.device, r.ts, r.quality_score))
        return faces, skipped
    return _embed(root, list_photos(root), embedding, progress=progress)


def _embed(
    root: Path, paths: list[Path], embedding: FaceEmbedding, *, progress: bool
) -> tuple[list[Face], list[str]]:
    faces: list[Face] = []
    skipped: list[str] = []
    for sample in embedding.samples([(p, None) for p in paths], desc="faces", progress=progress):
        if sample.embedding is None:
            skipped.append(describe_skipped(sample))
            continue
        faces.append(Face(sample.path.relative_to(root).as_posix(), sample.embedding))
    return faces, skipped


def cluster(
    root: Path,
    faces: list[Face],
    *,
    embedder: str,
    max_distance: float = DEFAULT_DISTANCE,
    probably: Callable[[npt.NDArray[np.float32]], str | None] | None = None,
    skipped: list[str] | None = None,
) -> Clustering:
    faces = sorted(faces, key=lambda f: f.path)
    found = (
        group_faces(np.asarray([f.embedding for f in faces], dtype=np.float32), max_distance) if faces else []
    )
    groups: list[Group] = []
    ungrouped: list[str] = []
    for rows in found:
        if len(rows) < 2:
            ungrouped.extend(faces[i].path for i in rows)
            continue
        members = [faces[i] for i in rows]
        seen = sorted(f.ts for f in members if f.ts)
        group = Group(
            id=f"g{len(groups) + 1}",
            members=[f.path for f in members],
            devices=sorted({f.device for f in members if f.device}),
            first_seen=seen[0] if seen else None,
            last_seen=seen[-1] if seen else None,
            best=[f.path for f in sorted(members, key=lambda f: (-f.score, f.path))],
        )
        if probably is not None:
            group.probably = probably(np.asarray([f.embedding for f in members], dtype=np.float32))
        groups.append(group)
    return Clustering(root, groups, sorted(ungrouped), skipped or [], embedder, max_distance)


def save(result: Clustering, *, sheets: bool = True) -> Path:
    """DIR/.groups/groups.json and a contact sheet per group; returns the folder."""
    out = result.root / GROUPS_DIR
    out.mkdir(parents=True, exist_ok=True)
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
        "max_distance": result.max_distance,
        "groups": [g.as_dict() for g in result.groups],
        "ungrouped": result.ungrouped,
    }
    temp = out / (GROUPS_FILE + ".tmp")
    temp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(temp, out / GROUPS_FILE)
    return out
