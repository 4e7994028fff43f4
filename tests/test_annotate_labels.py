"""Issue 12 item 8: in crowded frames, track labels do not hide each other, and "?" is explained.

The crowded frame is real: the frame of vtest.avi (PETS09-S2L1) where the MOT15 public detections
of that footage put the most labels on top of each other when each sits above its box's corner
(how labels were placed before). The detections stand in for tracks, one per box.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from agent.runtime.annotate import LEGEND, LEGEND_BAND, draw, label_text, layout_labels
from agent.tracking import TrackView


def _tracks(rows: list[tuple[float, float, float, float]]) -> list[TrackView]:
    return [
        TrackView(i + 1, np.array(tlwh), "confirmed" if i % 3 else "tentative", 5, 5, 0, i)
        for i, tlwh in enumerate(rows)
    ]


def _naive_rects(tracks: list[TrackView], labels: dict[int, str]) -> list[tuple[int, int, int, int]]:
    """Where the labels went before: above the box's top-left corner, whatever was there."""
    rects = []
    for t in tracks:
        x, y = round(float(t.tlwh[0])), round(float(t.tlwh[1]))
        (tw, th), base = cv2.getTextSize(label_text(t, labels), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        rects.append((x, max(0, y - th - base - 2), tw + 4, th + base + 2))
    return rects


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _collisions(rects: list[tuple[int, int, int, int]]) -> int:
    return sum(_overlap(a, b) for a, b in itertools.combinations(rects, 2))


@pytest.fixture(scope="module")
def crowded(assets_dir: Path) -> tuple[int, Any, list[TrackView], dict[int, str]]:
    """(frame number, the real frame, its detections as tracks, names for some of them)."""
    boxes: dict[int, list[tuple[float, float, float, float]]] = defaultdict(list)
    for line in (assets_dir / "data/mot15/PETS09-S2L1/det/det.txt").read_text().splitlines():
        f, _, x, y, w, h, score, *_ = line.split(",")
        if float(score) >= 0.5:
            boxes[int(f)].append((float(x), float(y), float(w), float(h)))
    labels = {i: name for i, name in enumerate(["ada", "grace-hopper", "lin-manuel-miranda"], start=2)}

    def badness(frame: int) -> tuple[int, int]:
        return _collisions(_naive_rects(_tracks(boxes[frame]), labels)), -frame

    frame = max(boxes, key=badness)
    capture = cv2.VideoCapture(str(assets_dir / "data/video/vtest.avi"))
    capture.set(cv2.CAP_PROP_POS_FRAMES, frame - 1)  # MOT frames count from 1
    ok, image = capture.read()
    capture.release()
    assert ok
    return frame, image, _tracks(boxes[frame]), labels


def test_labels_on_a_crowded_real_frame_do_not_overlap(
    crowded: tuple[int, Any, list[TrackView], dict[int, str]], tmp_path: Path
) -> None:
    frame, image, tracks, labels = crowded
    # The frame is crowded: labels placed the old way hide each other.
    assert _collisions(_naive_rects(tracks, labels)) >= 2, frame
    height, width = image.shape[:2]
    placed = layout_labels((width, height), tracks, labels)
    assert {p.track_id for p in placed} == {t.track_id for t in tracks}
    rects = [p.rect for p in placed]
    assert _collisions(rects) == 0, rects
    for p in placed:
        x, y, w, h = p.rect
        assert x >= 0 and y >= 0 and x + w <= width and y + h <= height - LEGEND_BAND
        # Each label stays near its box: within a few label heights of the box's corner.
        assert abs(y - p.anchor[1]) <= 6 * h and abs(x - p.anchor[0]) <= width // 3
    drawn = draw(image.copy(), tracks, labels, fps=12.5)
    cv2.imwrite(str(tmp_path / f"vtest_{frame}.png"), drawn)
    assert not np.array_equal(drawn, image)


def test_every_label_says_who_or_unknown_and_the_legend_explains_the_question_mark() -> None:
    tracks = _tracks([(10, 40, 50, 120), (100, 40, 50, 120), (200, 40, 50, 120)])
    texts = [label_text(t, {2: "ada"}) for t in tracks]
    assert texts == ["#1 unknown ?", "#2 ada", "#3 unknown"]
    assert "?" in LEGEND and "not confirmed" in LEGEND
    image = np.zeros((240, 640, 3), dtype=np.uint8)
    draw(image, tracks, {2: "ada"}, fps=30.0)
    # The legend line sits along the bottom edge, the whole width it needs.
    assert image[220:238, 8:30].any() and image[220:238, 300:400].any()


def test_labels_stay_apart_however_many_people_stand_together() -> None:
    """Twenty people in one tight row: every label still gets a spot of its own in the frame."""
    tracks = _tracks([(20 + 12 * i, 100 + (i % 3), 40, 120) for i in range(20)])
    placed = layout_labels((640, 360), tracks, {})
    assert _collisions([p.rect for p in placed]) == 0
    assert any(p.moved for p in placed)
    # Boxes reaching the bottom of the frame: their labels stay clear of the legend's band.
    low = _tracks([(20 + 30 * i, 300, 60, 60) for i in range(12)])
    for p in layout_labels((640, 360), low, {}):
        assert p.rect[1] + p.rect[3] <= 360 - LEGEND_BAND
