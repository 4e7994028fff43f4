"""Part-based colour-histogram appearance features on synthetic frames with known clothing colours."""

from __future__ import annotations

import numpy as np
import pytest

from agent.tracking import ColorHistogramEncoder

# BGR clothing colours
RED, RED2, BLUE, GREY, DENIM = (30, 30, 220), (40, 20, 200), (220, 60, 30), (40, 40, 40), (140, 80, 40)


def person_frame() -> tuple[np.ndarray, np.ndarray]:
    """A grey frame with four 'people' (shirt over trousers): red/grey, a second red/grey,
    blue/grey, and red/denim."""
    frame = np.full((240, 420, 3), 128, dtype=np.uint8)
    boxes = np.array(
        [[10, 20, 60, 200], [110, 20, 60, 200], [210, 20, 60, 200], [310, 20, 60, 200]], dtype=float
    )
    clothes = [(RED, GREY), (RED2, GREY), (BLUE, GREY), (RED, DENIM)]
    for (x, y, w, h), (shirt, trousers) in zip(boxes.astype(int), clothes, strict=True):
        frame[y : y + h // 5, x : x + w] = (90, 160, 200)  # head/skin
        frame[y + h // 5 : y + h // 2, x : x + w] = shirt
        frame[y + h // 2 : y + h, x : x + w] = trousers
    # Camera noise, so colours spread over neighbouring bins as in a real frame.
    noise = np.random.default_rng(0).normal(0, 8, frame.shape)
    return np.clip(frame + noise, 0, 255).astype(np.uint8), boxes


def test_features_are_unit_norm_and_separate_shirts_and_trousers() -> None:
    frame, boxes = person_frame()
    enc = ColorHistogramEncoder()
    feats = enc.encode(frame, boxes)
    assert feats.shape == (4, enc.dim) and enc.dim == 2 * (16 * 8 + 8) and feats.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-5)
    distance = 1.0 - feats @ feats.T
    # Two red shirts over grey trousers: within the default gate (max_cosine_distance 0.1).
    assert distance[0, 1] < 0.1
    # Same trousers, shirts red vs blue (0.28 measured); same red shirt, trousers grey vs denim
    # (0.44): both well beyond the gate; a person differing in both parts is further still (0.71).
    assert distance[0, 2] > 0.25 and distance[1, 2] > 0.25
    assert distance[0, 3] > 0.4
    assert distance[2, 3] > distance[0, 2] and distance[2, 3] > distance[0, 3]


def test_each_part_is_normalised_on_its_own() -> None:
    """A part's weight in the distance does not depend on how many pixels it has."""
    frame, boxes = person_frame()
    enc = ColorHistogramEncoder()
    feats = enc.encode(frame, boxes)
    half = enc.part_dim
    np.testing.assert_allclose(np.linalg.norm(feats[:, :half], axis=1), np.sqrt(0.5), rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(feats[:, half:], axis=1), np.sqrt(0.5), rtol=1e-5)


def test_boxes_outside_or_at_the_edge_are_safe() -> None:
    frame, _ = person_frame()
    enc = ColorHistogramEncoder()
    boxes = np.array(
        [[-50, -50, 20, 20], [400, 200, 100, 100], [5000, 5000, 10, 10], [0, 235, 40, 10]], dtype=float
    )
    feats = enc.encode(frame, boxes)
    assert np.isfinite(feats).all()
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-5)
    assert enc.encode(frame, np.empty((0, 4))).shape == (0, enc.dim)
    with pytest.raises(ValueError, match="HxWx3"):
        enc.encode(frame[:, :, 0], boxes)


def test_bad_parts_are_refused() -> None:
    with pytest.raises(ValueError, match="parts"):
        ColorHistogramEncoder(parts=((0.5, 0.4),))
    with pytest.raises(ValueError, match="parts"):
        ColorHistogramEncoder(parts=())
    with pytest.raises(ValueError, match="width_fraction"):
        ColorHistogramEncoder(width_fraction=0.0)
