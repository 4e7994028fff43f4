"""SORT baseline (agent/tracking/baselines): it must reproduce the original SORT's scores exactly on
the same detections, so every "beats SORT" claim compares against the real thing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.tracking.baselines import Sort, SortKalmanFilter
from bench import mot

SEQUENCES = ["TUD-Campus", "ETH-Sunnyday", "KITTI-13", "PETS09-S2L1"]


@pytest.fixture(scope="module")
def sequences(assets_dir: Path) -> dict[str, mot.Sequence_]:
    root = assets_dir / "data" / "mot15"
    out = {}
    for name in SEQUENCES:
        if not (root / name / "gt" / "gt.txt").is_file():
            pytest.fail(f"MOT15 ground truth missing under {root / name}: run `make setup`")
        out[name] = mot.load_sequence(root / name, 0.5, 1.0)
    return out


@pytest.mark.parametrize("name", SEQUENCES)
def test_sort_baseline_reproduces_the_original_exactly(
    sequences: dict[str, mot.Sequence_], name: str
) -> None:
    result = mot.evaluate([sequences[name]], mot.run_sort)[name]
    ref = mot.REFERENCE_SORT[name]
    # FP, FN and ID switches are counts: equal, not close. TUD-Campus and ETH-Sunnyday are SORT's
    # own published rows; KITTI-13 and PETS09-S2L1 are the original code's output (SOURCES.md).
    assert (result["fp"], result["fn"], result["idsw"]) == (ref["fp"], ref["fn"], ref["idsw"]), result
    assert result["mota"] == pytest.approx(ref["mota"], abs=0.005)
    assert result["idf1"] == pytest.approx(ref["idf1"], abs=0.005)


def test_sort_kalman_noise_is_the_papers() -> None:
    """Numbers written out by hand: R = diag(1, 1, 10, 10), Q = diag(1, 1, 1, 1, .01, .01, 1e-4),
    P0 = diag(10, 10, 10, 10, 1e4, 1e4, 1e4); state [u, v, s, r, u', v', s']."""
    kf = SortKalmanFilter()
    # A 20 x 40 box at top-left (0, 0): centre (10, 20), area 800, aspect 0.5.
    z = np.array([[10.0, 20.0, 800.0, 0.5]])
    mean, cov = kf.initiate(z)
    np.testing.assert_array_equal(mean[0], [10, 20, 800, 0.5, 0, 0, 0])
    np.testing.assert_array_equal(np.diag(cov[0]), [10, 10, 10, 10, 1e4, 1e4, 1e4])
    mean[0, 4:] = [2.0, -1.0, 5.0]
    mean, cov = kf.predict(mean, cov)
    # u, v, s move by their velocities; r has none.
    np.testing.assert_allclose(mean[0], [12, 19, 805, 0.5, 2, -1, 5])
    # var(u) = 10 + 1e4 (velocity) + 1 (Q); cov(u, u') = 1e4; var(u') = 1e4 + 0.01; var(r) = 10 + 1.
    assert cov[0, 0, 0] == pytest.approx(10011.0)
    assert cov[0, 0, 4] == pytest.approx(1e4)
    assert cov[0, 4, 4] == pytest.approx(10000.01)
    assert cov[0, 2, 2] == pytest.approx(10011.0)
    assert cov[0, 6, 6] == pytest.approx(10000.0001)
    assert cov[0, 3, 3] == pytest.approx(11.0)
    assert not cov[0, 3, [0, 1, 2, 4, 5, 6]].any()  # r couples to nothing
    # Update with the same box: the gain on u is var(u) / (var(u) + R_u) = 10011 / 10012.
    new_mean, new_cov = kf.update(mean, cov, z)
    assert new_mean[0, 0] == pytest.approx(12 + (10 - 12) * 10011 / 10012)
    # Area measurement noise is 10: gain 10011 / 10021.
    assert new_mean[0, 2] == pytest.approx(805 + (800 - 805) * 10011 / 10021)
    # Aspect: var 11, R 10 -> gain 11 / 21.
    assert new_cov[0, 3, 3] == pytest.approx(11 * 10 / 21)


def test_sort_stops_an_area_velocity_that_would_collapse_the_box() -> None:
    kf = SortKalmanFilter()
    mean, cov = kf.initiate(np.array([[10.0, 20.0, 100.0, 0.5]]))
    mean[0, 6] = -150.0
    mean, _ = kf.predict(mean, cov)
    assert mean[0, 2] == 100.0 and mean[0, 6] == 0.0


def test_sort_reports_a_track_on_its_fourth_matched_frame_after_the_first_frames() -> None:
    box = np.array([[100.0, 100.0, 20.0, 40.0]])
    tracker = Sort()
    shown = [len(tracker.update(np.empty((0, 4)) if f < 3 else box)[0]) for f in range(10)]
    # Frames 1-3 empty; born on frame 4 (streak 0), matched on 5, 6, 7 -> streak 3 on frame 7.
    assert shown == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    # In the first min_hits frames every matched target is reported at once.
    first = Sort()
    assert [len(first.update(box)[0]) for _ in range(5)] == [1, 1, 1, 1, 1]


def test_sort_deletes_after_max_age_misses_and_restarts_the_streak() -> None:
    box = np.array([[100.0, 100.0, 20.0, 40.0]])
    none = np.empty((0, 4))
    tracker = Sort()
    for _ in range(5):
        ids, _ = tracker.update(box)
    assert ids == [1]
    tracker.update(none)  # one miss: survives (max_age 1)
    assert len(tracker) == 1
    ids, _ = tracker.update(box)
    assert ids == []  # matched again, but its streak restarted
    tracker.update(none)
    tracker.update(none)  # second consecutive miss: deleted
    assert len(tracker) == 0
