"""The annotated frame: boxes and names where the tracks are, the fps line clear of them."""

from __future__ import annotations

import numpy as np

from agent.runtime.annotate import draw
from agent.tracking import TrackView


def _track(track_id: int, tlwh: tuple[float, float, float, float], missed: int = 0) -> TrackView:
    return TrackView(track_id, np.array(tlwh), "confirmed", 5, 5, missed, 0 if missed == 0 else None)


def test_boxes_labels_and_fps_are_drawn_where_expected() -> None:
    image = np.zeros((360, 640, 3), dtype=np.uint8)
    draw(
        image, [_track(1, (40, 0, 300, 350)), _track(2, (400, 50, 100, 200), missed=1)], {1: "ada"}, fps=30.0
    )
    # Track 1's box edge is drawn; track 2 missed this frame and is not.
    assert image[200, 40].any() and image[200, 340].any()
    assert not image[150, 400].any() and not image[150, 500].any()
    # The label of a box touching the top edge stays inside the frame, at the top.
    assert image[0:18, 42:120].any()
    # The fps line sits bottom-left, below every label, so it never hides a name.
    assert image[340:355, 8:30].any()
    assert not image[30:330, 8:30].any()
