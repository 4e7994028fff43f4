"""Assignment, cascade order, IoU cost and the per-track gallery budget."""

from __future__ import annotations

import numpy as np

from agent.tracking.detection import filter_detections, non_max_suppression
from agent.tracking.iou_matching import iou_matrix
from agent.tracking.linear_assignment import INFEASIBLE, matching_cascade, min_cost_matching
from agent.tracking.nn_matching import FeatureGallery, nearest_neighbor_cosine


def test_min_cost_matching_is_optimal_and_respects_the_ceiling() -> None:
    cost = np.array([[0.1, 0.5], [0.2, 0.9]])
    rows, cols = min_cost_matching(cost, 0.6, np.arange(2), np.arange(2))
    # Greedy would give row 0 col 0 (0.1) and then reject row 1 (0.9 > 0.6); optimal total is
    # 0.5 + 0.2 with both under the ceiling.
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 1), (1, 0)]
    rows, cols = min_cost_matching(np.array([[0.7]]), 0.6, np.arange(1), np.arange(1))
    assert rows.size == 0 and cols.size == 0


def test_cascade_gives_the_recently_updated_track_first_pick() -> None:
    # Track 0 was missing 3 frames and is slightly closer to detection 0 than track 1, seen last
    # frame. A single Hungarian would give detection 0 to track 0; the cascade gives it to track 1.
    cost = np.array([[0.10], [0.15]])
    tsu = np.array([3, 1])
    rows, cols = matching_cascade(cost, 0.5, np.arange(2), tsu, np.arange(1))
    assert rows.tolist() == [1] and cols.tolist() == [0]
    rows, cols = min_cost_matching(cost, 0.5, np.arange(2), np.arange(1))
    assert rows.tolist() == [0]


def test_cascade_leaves_older_tracks_the_remaining_detections() -> None:
    cost = np.array([[0.1, 0.2], [0.1, INFEASIBLE], [0.3, 0.3]])
    tsu = np.array([2, 1, 5])
    rows, cols = matching_cascade(cost, 0.5, np.arange(3), tsu, np.arange(2))
    assert dict(zip(rows.tolist(), cols.tolist(), strict=True)) == {1: 0, 0: 1}


def test_iou_matrix_hand_values() -> None:
    a = np.array([[0.0, 0.0, 10.0, 10.0]])
    b = np.array([[5.0, 0.0, 10.0, 10.0], [20.0, 20.0, 5.0, 5.0], [0.0, 0.0, 10.0, 10.0]])
    # overlap 5x10 = 50, union 150
    np.testing.assert_allclose(iou_matrix(a, b), [[50 / 150, 0.0, 1.0]])


def test_gallery_budget_evicts_the_oldest() -> None:
    gallery = FeatureGallery(dim=4, budget=3)
    eye = np.eye(4, dtype=np.float32)
    features = [eye[0], eye[1], eye[2], eye[3], eye[0] * 0 + 0.5]
    for f in features:
        gallery.add(f)
    assert gallery.count == 3
    np.testing.assert_allclose(gallery.features(), np.stack(features[2:]))
    # eye[0] was evicted: its nearest neighbour distance is now to [0.5]*4 -> 1 - 0.5
    d = nearest_neighbor_cosine([gallery], eye[:1])
    assert d[0, 0] == np.float32(0.5)


def test_nearest_neighbor_cosine_takes_min_per_track_and_nan_for_empty() -> None:
    eye = np.eye(3, dtype=np.float32)
    g1 = FeatureGallery(3, 10)
    g1.add(eye[0])
    g1.add(eye[1])
    g2 = FeatureGallery(3, 10)
    g2.add(eye[2])
    d = nearest_neighbor_cosine([g1, None, g2], eye)
    np.testing.assert_allclose(d[0], [0, 0, 1])
    assert np.isnan(d[1]).all()
    np.testing.assert_allclose(d[2], [1, 1, 0])


def test_detector_side_filters() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 10, 10], [50, 50, 10, 10], [0, 0, 10, 0]], dtype=float)
    scores = np.array([0.9, 0.8, 0.4, 0.95])
    # box 1 overlaps box 0 with IoU 90/110 = 0.82 -> suppressed at 0.5; box 2 below confidence;
    # box 3 has zero height.
    assert filter_detections(boxes, scores, 0.5, 0.5).tolist() == [0]
    assert filter_detections(boxes, scores, 0.5, 1.0).tolist() == [0, 1]
    assert non_max_suppression(boxes[:3], scores[:3], 0.9).tolist() == [0, 1, 2]
