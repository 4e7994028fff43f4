"""Colour-histogram appearance features on synthetic frames with known clothing colours."""

from __future__ import annotations

import numpy as np
import pytest

from agent.tracking import ColorHistogramEncoder


def person_frame() -> tuple[np.ndarray, np.ndarray]:
    """A grey frame with three 'people': red shirt, a second red shirt, and a blue shirt."""
    frame = np.full((240, 320, 3), 128, dtype=np.uint8)
    boxes = np.array([[10, 20, 60, 200], [120, 20, 60, 200], [220, 20, 60, 200]], dtype=float)
    colours = [(30, 30, 220), (40, 20, 200), (220, 60, 30)]  # BGR
    for (x, y, w, h), shirt in zip(boxes.astype(int), colours, strict=True):
        frame[y : y + h // 5, x : x + w] = (90, 160, 200)  # head/skin
        frame[y + h // 5 : y + 3 * h // 5, x : x + w] = shirt
        frame[y + 3 * h // 5 : y + h, x : x + w] = (40, 40, 40)  # trousers
    # Camera noise, so colours spread over neighbouring bins as in a real frame.
    noise = np.random.default_rng(0).normal(0, 8, frame.shape)
    return np.clip(frame + noise, 0, 255).astype(np.uint8), boxes


def test_features_are_unit_norm_and_separate_colours() -> None:
    frame, boxes = person_frame()
    enc = ColorHistogramEncoder()
    feats = enc.encode(frame, boxes)
    assert feats.shape == (3, enc.dim) and feats.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-5)
    distance = 1.0 - feats @ feats.T
    assert distance[0, 1] < 0.2  # two red shirts: within the default max_cosine_distance
    assert distance[0, 2] > 0.5 and distance[1, 2] > 0.5  # red vs blue: far apart


def test_boxes_outside_or_at_the_edge_are_safe() -> None:
    frame, _ = person_frame()
    enc = ColorHistogramEncoder()
    boxes = np.array([[-50, -50, 20, 20], [300, 200, 100, 100], [5000, 5000, 10, 10]], dtype=float)
    feats = enc.encode(frame, boxes)
    assert np.isfinite(feats).all()
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-5)
    assert enc.encode(frame, np.empty((0, 4))).shape == (0, enc.dim)
    with pytest.raises(ValueError, match="HxWx3"):
        enc.encode(frame[:, :, 0], boxes)
