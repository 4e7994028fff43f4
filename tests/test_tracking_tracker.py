"""Tracker behaviour: lifecycle and its events, gating, appearance vs motion, face evidence, bad input."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from agent.config import DetectionConfig, TrackerConfig
from agent.tracking import Tracker, TrackerParams, TrackUpdate
from agent.tracking.detection import tlwh_to_xyah

BOX = np.array([[100.0, 50.0, 40.0, 100.0]])
NONE = np.empty((0, 4))


def step(tracker: Tracker, boxes: np.ndarray, features: np.ndarray | None = None) -> TrackUpdate:
    return tracker.update(boxes, np.ones(len(boxes)), features)


def kinds(update: TrackUpdate) -> list[tuple[str, int]]:
    return [(e.kind, e.track_id) for e in update.events]


def test_lifecycle_events_each_exactly_once() -> None:
    tracker = Tracker(TrackerParams(n_init=3, max_age=2, opening_frames=0))
    log: list[tuple[int, str, int]] = []

    def run(boxes: np.ndarray) -> TrackUpdate:
        update = step(tracker, boxes)
        log.extend((update.frame_index, e.kind, e.track_id) for e in update.events)
        return update

    u = run(BOX)
    assert [(t.track_id, t.state, t.hits, t.age, t.detection_index) for t in u.tracks] == [
        (1, "tentative", 1, 1, 0)
    ]
    run(BOX)
    u = run(BOX)  # third hit confirms
    assert u.tracks[0].state == "confirmed" and u.tracks[0].hits == 3
    run(NONE)  # frame 4: lost
    u = run(NONE)  # frame 5: still lost, no new event
    assert u.tracks[0].time_since_update == 2 and u.tracks[0].detection_index is None
    u = run(BOX)  # frame 6: refound
    assert u.tracks[0].track_id == 1 and u.tracks[0].time_since_update == 0
    run(NONE)  # frame 7: lost again
    run(NONE)  # 8
    u = run(NONE)  # 9: third miss > max_age=2 -> deleted
    assert u.tracks == []
    assert log == [
        (3, "confirmed", 1),
        (4, "lost", 1),
        (6, "refound", 1),
        (7, "lost", 1),
        (9, "deleted", 1),
    ]
    deleted = next(e for e in u.events if e.kind == "deleted")
    assert deleted.hits == 4 and deleted.age == 9
    np.testing.assert_allclose(deleted.tlwh, BOX[0], atol=1.0)


def test_finish_deletes_confirmed_tracks_once_and_keeps_ids_unique() -> None:
    tracker = Tracker(TrackerParams(n_init=2, opening_frames=0))
    step(tracker, np.vstack([BOX, BOX + 300]))
    step(tracker, np.vstack([BOX, BOX + 300]))
    step(tracker, np.vstack([BOX, BOX + 300, BOX + 150]))  # third box still tentative
    events = tracker.finish()
    assert sorted((e.kind, e.track_id) for e in events) == [("deleted", 1), ("deleted", 2)]
    assert len(tracker) == 0 and tracker.finish() == []
    assert step(tracker, BOX).tracks[0].track_id == 4


def test_track_gallery_keeps_only_the_last_nn_budget_features() -> None:
    tracker = Tracker(TrackerParams(n_init=1, nn_budget=2))
    looks = [unit([1, 0, 0, 0]), unit([1, 0.1, 0, 0]), unit([1, 0.2, 0, 0]), unit([1, 0.3, 0, 0])]
    for look in looks:
        tracker.update(BOX, np.ones(1), look[None, :])
    gallery = tracker._tracks.galleries[0]
    assert gallery is not None and gallery.count == 2
    np.testing.assert_allclose(gallery.features(), np.stack(looks[2:]), rtol=1e-6)


def test_tentative_track_dies_silently_on_first_miss() -> None:
    tracker = Tracker(TrackerParams(n_init=3, opening_frames=0))
    u1 = step(tracker, BOX)
    u2 = step(tracker, BOX)
    u3 = step(tracker, NONE)
    assert u1.events == u2.events == u3.events == []
    assert u3.tracks == []
    # The next detection starts a new id: the dead tentative track is not resurrected.
    assert step(tracker, BOX).tracks[0].track_id == 2


def test_n_init_one_confirms_on_birth() -> None:
    tracker = Tracker(TrackerParams(n_init=1))
    u = step(tracker, BOX)
    assert u.tracks[0].state == "confirmed" and kinds(u) == [("confirmed", 1)]


def place_after_gap(offset_in_gate_units: float, min_motion_iou: float) -> list[int]:
    """A confirmed track misses 2 frames, so only the (gated) cascade can match it; then a detection
    arrives at a chosen Mahalanobis distance along x. Returns ids of matched tracks."""
    tracker = Tracker(
        TrackerParams(n_init=1, max_age=10, motion_cost="mahalanobis", min_motion_iou=min_motion_iou)
    )
    step(tracker, BOX)
    step(tracker, NONE)
    step(tracker, NONE)
    # Predict once more as update() will; S[0] is the innovation variance in x.
    t = tracker._tracks
    mean, cov = tracker.kf.predict(t.mean, t.cov)
    _, s, _ = tracker.kf.innovation(mean, cov)
    sigma_x = float(np.sqrt(s[0, 0]))
    dx = offset_in_gate_units * np.sqrt(tracker.params.gating_threshold) * sigma_x
    u = step(tracker, BOX + np.array([[dx, 0, 0, 0]]))
    return [t.track_id for t in u.tracks if t.detection_index is not None]


def test_gating_refuses_a_detection_beyond_the_chi2_gate() -> None:
    assert place_after_gap(0.95, min_motion_iou=0.0) == [1]  # inside: the old track takes it
    assert place_after_gap(1.05, min_motion_iou=0.0) == [2]  # outside: a new track is born


def test_motion_only_reacquisition_needs_some_overlap_with_the_prediction() -> None:
    # 0.95 gate units is about 69 px here, more than the 40 px box width: inside the gate but no
    # overlap, so by default a new track is born; a 14 px step (IoU 0.48) is still taken.
    assert place_after_gap(0.95, min_motion_iou=0.2) == [2]
    assert place_after_gap(0.2, min_motion_iou=0.2) == [1]


def test_tracks_report_detection_index_and_filtered_box() -> None:
    tracker = Tracker(TrackerParams(n_init=1))
    boxes = np.array([[10.0, 10.0, 20.0, 40.0], [300.0, 10.0, 20.0, 40.0]])
    step(tracker, boxes)
    u = step(tracker, boxes[::-1].copy())
    by_id = {t.track_id: t for t in u.tracks}
    assert by_id[1].detection_index == 1 and by_id[2].detection_index == 0
    np.testing.assert_allclose(by_id[1].tlwh, boxes[0], atol=1e-6)
    assert u.confirmed_tracks() == u.tracks


def bounce_scenario() -> list[list[tuple[str, float]]]:
    """Two people walk towards each other, are hidden together for 3 frames, then both turn back.

    A constant-velocity model expects them to keep going, so motion alone swaps their ids.
    """
    frames: list[list[tuple[str, float]]] = []
    for f in range(25):
        a = 40 + 6 * f if f <= 10 else 100 - 6 * (f - 10)
        b = 160 - 6 * f if f <= 10 else 100 + 6 * (f - 10)
        frames.append([] if 10 < f <= 13 else [("A", a), ("B", b)])
    return frames


def ids_per_person(
    appearance: dict[str, np.ndarray] | None,
    faces: dict[str, np.ndarray] | None = None,
    params: TrackerParams | None = None,
) -> dict[str, set[int]]:
    tracker = Tracker(params or TrackerParams(n_init=2))
    seen: dict[str, set[int]] = {"A": set(), "B": set()}
    for dets in bounce_scenario():
        boxes = np.array([[x, 50.0, 40.0, 100.0] for _, x in dets]).reshape(-1, 4)
        feats = np.array([appearance[n] for n, _ in dets]).reshape(len(dets), 4) if appearance else None
        face = np.array([faces[n] for n, _ in dets]).reshape(len(dets), 5) if faces else None
        u = tracker.update(boxes, np.ones(len(dets)), feats, face)
        for t in u.confirmed_tracks():
            assert t.detection_index is not None
            seen[dets[t.detection_index][0]].add(t.track_id)
    return seen


def unit(v: list[float]) -> np.ndarray:
    a = np.array(v, dtype=np.float32)
    return a / np.linalg.norm(a)


def test_crossing_paths_motion_alone_swaps_ids_appearance_keeps_them() -> None:
    motion = ids_per_person(None)
    assert motion["A"] == motion["B"] == {1, 2}  # both people wore both ids: a swap
    looks = {"A": unit([1, 0, 0, 0]), "B": unit([0, 1, 0, 0])}
    kept = ids_per_person(looks)
    assert kept == {"A": {1}, "B": {2}}


def test_faces_keep_ids_apart_when_clothes_look_the_same() -> None:
    same_clothes = {"A": unit([1, 1, 0, 0]), "B": unit([1, 1, 0, 0])}
    assert ids_per_person(same_clothes)["A"] == {1, 2}  # histogram cannot tell them apart
    faces = {"A": unit([1, 0.2, 0, 0, 0]), "B": unit([0, 0.2, 1, 0, 0])}
    assert ids_per_person(same_clothes, faces) == {"A": {1}, "B": {2}}


def test_unnormalised_features_are_normalised() -> None:
    looks = {"A": np.array([5.0, 0, 0, 0]), "B": np.array([0, 0.1, 0, 0])}
    faces = {"A": np.array([40.0, 8, 0, 0, 0]), "B": np.array([0, 0.2, 1, 0, 0])}
    assert ids_per_person(looks, faces) == {"A": {1}, "B": {2}}


def test_faceless_detections_fall_back_to_appearance() -> None:
    looks = {"A": unit([1, 0, 0, 0]), "B": unit([0, 1, 0, 0])}
    no_face = {"A": np.full(5, np.nan), "B": np.full(5, np.nan)}
    assert ids_per_person(looks, no_face) == {"A": {1}, "B": {2}}


def test_params_from_config_map_the_original_flags() -> None:
    cfg = TrackerConfig(
        max_cosine_distance=0.3,
        nn_budget=50,
        max_iou_distance=0.6,
        max_age=40,
        n_init=2,
        max_face_distance=0.4,
    )
    detection = DetectionConfig(confidence=0.6, nms_threshold=0.8)
    p = TrackerParams.from_config(cfg, detection)
    got = (p.max_cosine_distance, p.nn_budget, p.max_iou_distance, p.max_age, p.n_init, p.max_face_distance)
    assert got == (0.3, 50, 0.6, 40, 2, 0.4)
    assert (p.min_confidence, p.nms_max_overlap) == (0.6, 0.8)
    with pytest.raises(ValueError, match="n_init"):
        TrackerParams(n_init=0)


@pytest.mark.parametrize(
    ("boxes", "scores", "features", "message"),
    [
        (np.zeros((2, 3)), np.ones(2), None, r"boxes_tlwh must be \(n, 4\)"),
        (np.array([[0, 0, 10, np.nan]]), np.ones(1), None, "NaN"),
        (np.array([[0, 0, 10, 0.0]]), np.ones(1), None, "non-positive height"),
        (BOX, np.ones(2), None, r"scores must be \(1,\)"),
        (BOX, np.ones(1), np.ones((2, 8)), r"features must be \(1, d\)"),
    ],
)
def test_bad_input_is_one_clear_error(
    boxes: np.ndarray, scores: np.ndarray, features: np.ndarray | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Tracker().update(boxes, scores, features)


def test_feature_dimensions_must_not_change_and_a_refused_frame_changes_nothing() -> None:
    tracker = Tracker()
    tracker.update(BOX, np.ones(1), np.ones((1, 8)) / np.sqrt(8), np.ones((1, 128)) / np.sqrt(128))
    with pytest.raises(ValueError, match="dimension 4"):
        tracker.update(BOX, np.ones(1), np.ones((1, 4)) / 2)
    with pytest.raises(ValueError, match="face_features have dimension 512"):
        tracker.update(BOX, np.ones(1), np.ones((1, 8)) / np.sqrt(8), np.ones((1, 512)))
    assert tracker.frame_index == 1
    u = tracker.update(BOX, np.ones(1), None)
    assert u.frame_index == 2 and u.tracks[0].hits == 2


def test_empty_frames_and_many_tracks_stay_consistent() -> None:
    rng = np.random.default_rng(1)
    tracker = Tracker(TrackerParams(n_init=2, max_age=5, opening_frames=0))
    counts: Counter[str] = Counter()
    for f in range(200):
        n = int(rng.integers(0, 12))
        boxes = np.column_stack(
            [rng.uniform(0, 600, n), rng.uniform(0, 400, n), rng.uniform(10, 60, n), rng.uniform(30, 150, n)]
        )
        u = tracker.update(boxes, np.ones(n), None)
        counts.update(e.kind for e in u.events)
        det_rows = [t.detection_index for t in u.tracks if t.detection_index is not None]
        assert sorted(det_rows) == list(range(n))  # every detection is matched or starts a track
        assert len({t.track_id for t in u.tracks}) == len(u.tracks)
        assert u.frame_index == f + 1
    # every deleted track was lost first
    assert counts["deleted"] <= counts["lost"]
    assert tlwh_to_xyah(BOX)[0, 2] == pytest.approx(0.4)


def test_opening_frames_report_at_once_and_drop_what_misses_before_n_init() -> None:
    tracker = Tracker(TrackerParams(n_init=4, opening_frames=3))
    u1 = step(tracker, np.vstack([BOX, BOX + 300]))
    assert [t.state for t in u1.tracks] == ["confirmed", "confirmed"]
    assert kinds(u1) == [("confirmed", 1), ("confirmed", 2)]
    # The second box misses with 1 hit: gone at once, as a tentative track would be.
    u2 = step(tracker, BOX)
    assert kinds(u2) == [("deleted", 2)] and [t.track_id for t in u2.tracks] == [1]
    for _ in range(3):
        step(tracker, BOX)
    # Past the opening frames a newcomer waits for n_init hits as usual.
    u6 = step(tracker, np.vstack([BOX, BOX + 300]))
    assert [(t.track_id, t.state) for t in u6.tracks] == [(1, "confirmed"), (3, "tentative")]


def test_a_track_without_appearance_coasts_motion_max_age_one_with_it_max_age() -> None:
    def misses_survived(features: np.ndarray | None) -> int:
        tracker = Tracker(TrackerParams(n_init=1, max_age=8, motion_max_age=2, opening_frames=0))
        step(tracker, BOX, features)
        for k in range(1, 20):
            if not step(tracker, NONE, None if features is None else np.empty((0, 4))).tracks:
                return k - 1
        return 20

    assert misses_survived(None) == 2
    assert misses_survived(np.ones((1, 4)) / 2.0) == 8
