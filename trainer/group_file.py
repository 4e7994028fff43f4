"""The groups file `cluster` writes and `name`, `merge`, `discard` and `review` edit.

Kept apart from `trainer.groups` (faces, embeddings, contact sheets) so that the commands that only
edit the file import no OpenCV, NumPy or SciPy: `facetrack-trainer --help` and `publish` stay fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

GROUPS_DIR = ".groups"
GROUPS_FILE = "groups.json"
FACES_DIR = "faces"  # under DIR/.groups: the crops of faces from photos with several faces


def crop_name(member: str) -> str:
    """Where the crop of a face of a photo with several faces (`PATH#k`) is kept, relative to DIR."""
    return f"{GROUPS_DIR}/{FACES_DIR}/" + member.replace("/", "__").replace("#", ".face") + ".jpg"


def read_groups(root: Path) -> dict[str, Any]:
    path = root / GROUPS_DIR / GROUPS_FILE
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def write_groups(root: Path, document: dict[str, Any]) -> None:
    out = root / GROUPS_DIR
    temp = out / (GROUPS_FILE + ".tmp")
    temp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(temp, out / GROUPS_FILE)
