"""The optional association parts: ByteTrack's low-score stage, OC-SORT's re-update, direction and
recovery, BoT-SORT's camera-motion compensation (tracker side and the estimator on real frames),
and the one-way import graph of the tracking package."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.tracking import Tracker, TrackerParams
from agent.tracking.camera_motion import warp_states
from agent.tracking.kalman_filter import KalmanFilter
from agent.tracking.observation_centric import direction_cost, reupdate
from agent.vision.camera_motion import CameraMotionEstimator

TRACKING = Path(__file__).resolve().parent.parent / "agent" / "tracking"


def confirmed_ids(update_tracks: list[object]) -> list[int]:
    return [t.track_id for t in update_tracks if t.state == "confirmed"]  # type: ignore[attr-defined]


def box_at(x: float) -> np.ndarray:
    return np.array([[x, 100.0, 40.0, 100.0]])


def test_association_and_tracker_import_params_not_each_other() -> None:
    def imported(name: str) -> set[str]:
        tree = ast.parse((TRACKING / name).read_text())
        return {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}

    assert "agent.tracking.tracker" not in imported("association.py")
    assert "agent.tracking.params" in imported("association.py")
    assert "agent.tracking.tracker" not in imported("params.py")
    assert "agent.tracking.association" not in imported("params.py")


def test_low_score_box_continues_a_track_but_never_starts_one() -> None:
    params = replace(TrackerParams(), n_init=2, birth_quantile=0.0, low_score_quantile=0.5, max_age=5)
    tracker = Tracker(params)
    # A confirmed track whose matches had scores 0.9: the low quantile is 0.9, so 0.3 is low.
    for i in range(4):
        update = tracker.update(box_at(100 + 2 * i), [0.9], None)
    assert confirmed_ids(update.tracks) == [1]
    # The weak box on the track continues it; the weak box far away starts nothing.
    boxes = np.vstack([box_at(108), box_at(400)])
    update = tracker.update(boxes, [0.3, 0.3], None)
    assert [(t.track_id, t.detection_index) for t in update.tracks] == [(1, 0)]
    # The same far box with a high score does start a track.
    update = tracker.update(boxes, [0.3, 0.9], None)
    assert [(t.track_id, t.detection_index) for t in update.tracks] == [(1, 0), (2, 1)]


def test_without_the_split_a_weak_box_starts_a_track() -> None:
    tracker = Tracker(replace(TrackerParams(), n_init=2, birth_quantile=0.0))
    for i in range(4):
        tracker.update(box_at(100 + 2 * i), [0.9], None)
    update = tracker.update(np.vstack([box_at(108), box_at(400)]), [0.3, 0.3], None)
    assert len(update.tracks) == 2


def test_reupdate_follows_the_straight_path_and_ends_on_the_observation() -> None:
    kf = KalmanFilter()
    z0 = np.array([[100.0, 100.0, 0.4, 100.0]])
    mean, cov = kf.initiate(z0)
    z1 = np.array([[130.0, 100.0, 0.4, 100.0]])
    out_mean, out_cov = reupdate(kf, mean, cov, z0, z1, np.array([3]))
    # Three steps of +10 px: the velocity learnt is towards the new observation, and the state
    # lands near it (the last virtual observation is the real one).
    assert out_mean[0, 4] > 3.0
    assert abs(out_mean[0, 0] - 130.0) < 5.0
    assert np.all(out_cov[:, 0] < cov[:, 0])


def test_reupdate_after_gap_drops_the_velocity_built_while_coasting() -> None:
    def run(reupdate_after_gap: bool) -> float:
        tracker = Tracker(
            replace(
                TrackerParams(),
                n_init=1,
                max_age=10,
                motion_cost="mahalanobis",
                reupdate_after_gap=reupdate_after_gap,
            )
        )
        for i in range(10):  # walking right, 5 px a frame
            tracker.update(box_at(100 + 5 * i), [1.0], None)
        for _ in range(4):  # hidden for 4 frames
            tracker.update(np.empty((0, 4)), [], None)
        # Found again standing where it was last seen: it stopped behind the occluder.
        tracker.update(box_at(145), [1.0], None)
        update = tracker.update(box_at(145), [1.0], None)
        return float(update.tracks[0].tlwh[0])

    # Re-updated, the filter has learnt that the person stopped; coasting keeps it walking.
    assert abs(run(True) - 145.0) < abs(run(False) - 145.0)


def test_direction_cost_is_zero_along_the_track_and_one_against_it() -> None:
    centres = np.array([[[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]], [[5.0, 5.0]] * 4])
    detections = np.array([[10.0, 0.0], [-10.0, 0.0], [3.0, 10.0]])
    cost = direction_cost(centres, detections)
    np.testing.assert_allclose(cost[0], [0.0, 1.0, 0.5], atol=1e-9)
    # A track that has not moved has no direction: no cost either way.
    np.testing.assert_allclose(cost[1], 0.0)


def test_recovery_matches_a_stopped_target_on_its_last_observed_box() -> None:
    def run(recovery_min_iou: float) -> list[int]:
        params = replace(
            TrackerParams(), n_init=1, max_age=10, birth_quantile=0.0, recovery_min_iou=recovery_min_iou
        )
        tracker = Tracker(params)
        for i in range(10):  # running right, 12 px a frame
            tracker.update(box_at(100 + 12 * i), [1.0], None)
        for _ in range(3):
            tracker.update(np.empty((0, 4)), [], None)
        # The prediction ran on ~36 px; the person stopped where last seen.
        update = tracker.update(box_at(208), [1.0], None)
        return [t.track_id for t in update.tracks if t.detection_index == 0]

    assert run(0.3) == [1]
    assert run(0.0) != [1]


def test_camera_warp_moves_predictions_with_the_picture() -> None:
    kf = KalmanFilter()
    mean, cov = kf.initiate(np.array([[100.0, 50.0, 0.5, 80.0]]))
    shift = np.array([[1.0, 0.0, 30.0], [0.0, 1.0, -10.0]])
    moved, moved_cov = warp_states(mean, cov, shift)
    np.testing.assert_allclose(moved[0, :4], [130.0, 40.0, 0.5, 80.0])
    np.testing.assert_allclose(moved_cov, cov)
    zoom = np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    zoomed, zoomed_cov = warp_states(mean, cov, zoom)
    np.testing.assert_allclose(zoomed[0, :4], [200.0, 100.0, 0.5, 160.0])
    np.testing.assert_allclose(zoomed_cov[:, :, 3], 4.0 * cov[:, :, 3])


def test_a_panning_camera_keeps_the_ids_only_with_its_warp() -> None:
    """Three people standing still while the camera pans 25 px a frame, then stops: without the
    warp the filter learns a velocity and overshoots when the pan stops."""

    def run(with_warp: bool) -> set[int]:
        tracker = Tracker(replace(TrackerParams(), n_init=1, birth_quantile=0.0))
        people = np.array(
            [[100.0, 100.0, 40.0, 100.0], [160.0, 100.0, 40.0, 100.0], [220.0, 100.0, 40.0, 100.0]]
        )
        ids: set[int] = set()
        offset = 0.0
        for frame in range(30):
            pan = 25.0 if frame < 15 else 0.0
            offset += pan
            boxes = people - np.array([offset, 0.0, 0.0, 0.0])
            warp = np.array([[1.0, 0.0, -pan], [0.0, 1.0, 0.0]]) if with_warp else None
            update = tracker.update(
                boxes + 1000.0 * np.array([1.0, 0, 0, 0]), np.ones(3), None, None, camera_warp=warp
            )
            ids.update(t.track_id for t in update.tracks if t.detection_index is not None)
        return ids

    assert run(True) == {1, 2, 3}
    assert len(run(False)) > 3


def test_bad_camera_warp_is_refused_and_leaves_the_tracker_as_it_was() -> None:
    tracker = Tracker()
    tracker.update(box_at(100), [1.0], None)
    for bad in (np.eye(3), np.full((2, 3), np.nan), np.zeros((2, 3))):
        with pytest.raises(ValueError, match="camera_warp"):
            tracker.update(box_at(100), [1.0], None, None, camera_warp=bad)
    assert tracker.frame_index == 1


def test_estimator_recovers_a_known_shift_of_a_real_frame(assets_dir: Path) -> None:
    capture = cv2.VideoCapture(str(assets_dir / "data" / "video" / "vtest.avi"))
    ok, frame = capture.read()
    capture.release()
    assert ok
    estimator = CameraMotionEstimator()
    first = estimator.estimate(frame)
    np.testing.assert_allclose(first, [[1, 0, 0], [0, 1, 0]])
    shift = np.array([[1.0, 0.0, 12.0], [0.0, 1.0, -8.0]])
    h, w = frame.shape[:2]
    moved = cv2.warpAffine(frame, shift, (w, h), borderMode=cv2.BORDER_REFLECT)
    warp = estimator.estimate(moved)
    np.testing.assert_allclose(warp[:, 2], [12.0, -8.0], atol=1.0)
    np.testing.assert_allclose(warp[:, :2], np.eye(2), atol=0.01)
    assert estimator.last_inliers >= 20


def test_estimator_says_no_motion_on_a_blank_picture() -> None:
    estimator = CameraMotionEstimator()
    blank = np.zeros((240, 320, 3), dtype=np.uint8)
    estimator.estimate(blank)
    np.testing.assert_allclose(estimator.estimate(blank), [[1, 0, 0], [0, 1, 0]])


def test_a_weak_detection_starts_a_track_only_with_weak_birth_n_init_and_needs_more_hits() -> None:
    def run(weak_birth_n_init: int) -> list[int]:
        params = replace(TrackerParams(), n_init=2, birth_quantile=0.5, weak_birth_n_init=weak_birth_n_init)
        tracker = Tracker(params)
        for i in range(3):  # a confirmed track sets the score scale at 0.9
            tracker.update(box_at(100 + 2 * i), [0.9], None)
        confirmed_at: list[int] = []
        for i in range(6):  # a far, weak, lasting detection
            update = tracker.update(np.vstack([box_at(106 + 2 * i), box_at(400)]), [0.9, 0.3], None)
            confirmed_at += [i + 1 for e in update.events if e.kind == "confirmed"]
        return confirmed_at

    assert run(0) == []
    assert run(4) == [4]


def test_the_new_settings_reach_the_tracker_from_the_config_and_defaults_agree() -> None:
    from agent.config import TrackerConfig

    cfg = TrackerConfig(
        weak_birth_n_init=5,
        low_score_quantile=0.2,
        reupdate_after_gap=True,
        direction_weight=0.1,
        recovery_min_iou=0.3,
    )
    p = TrackerParams.from_config(cfg)
    got = (
        p.weak_birth_n_init,
        p.low_score_quantile,
        p.reupdate_after_gap,
        p.direction_weight,
        p.recovery_min_iou,
    )
    assert got == (5, 0.2, True, 0.1, 0.3)
    # The shipped config and the tracker's own defaults are the same choice, except the three
    # settings the agent keeps for its own detector and its events (docs/tracking.md).
    defaults, from_defaults = TrackerParams(), TrackerParams.from_config(TrackerConfig())
    agent_only = {"n_init": 3, "opening_frames": 0, "birth_quantile": 0.3}
    assert {k: getattr(from_defaults, k) for k in agent_only} == agent_only
    assert replace(defaults, **agent_only) == from_defaults


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("low_score_quantile", 1.5),
        ("low_match_iou", -0.1),
        ("recovery_min_iou", 2.0),
        ("direction_weight", -1.0),
    ],
)
def test_out_of_range_settings_are_refused_by_name(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        replace(TrackerParams(), **{field: value})


def test_negative_weak_birth_n_init_is_refused() -> None:
    with pytest.raises(ValueError, match="weak_birth_n_init"):
        TrackerParams(weak_birth_n_init=-1)
