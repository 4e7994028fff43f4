"""A contact sheet: the faces of one group as a grid of thumbnails in one PNG."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

THUMB = 96
COLUMNS = 8
MAX_FACES = 48


def write_contact_sheet(images: Sequence[Path], out: Path, title: str) -> int:
    """Thumbnails of up to MAX_FACES readable images, with `title` on top; returns how many."""
    thumbs: list[np.ndarray] = []
    for path in images[:MAX_FACES]:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        scale = THUMB / max(image.shape[:2])
        resized = cv2.resize(
            image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        )
        tile = np.full((THUMB, THUMB, 3), 255, dtype=np.uint8)
        y, x = (THUMB - resized.shape[0]) // 2, (THUMB - resized.shape[1]) // 2
        tile[y : y + resized.shape[0], x : x + resized.shape[1]] = resized
        thumbs.append(tile)
    columns = max(1, min(COLUMNS, len(thumbs)))
    rows = max(1, math.ceil(len(thumbs) / columns))
    header = 28
    sheet = np.full((header + rows * THUMB, columns * THUMB, 3), 255, dtype=np.uint8)
    cv2.putText(sheet, title[:60], (4, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for k, tile in enumerate(thumbs):
        r, c = divmod(k, columns)
        sheet[header + r * THUMB : header + (r + 1) * THUMB, c * THUMB : (c + 1) * THUMB] = tile
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), sheet):
        raise OSError(f"cannot write {out}")
    return len(thumbs)
