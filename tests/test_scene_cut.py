"""Scene cuts on real video, and what a cut does to the tracker.

The detector must find the three cuts of the demo clip (frames 20, 82, 211, checked by eye) and
fire on no frame of the single-shot clips (vtest.avi, MOT17-13 from a moving bus, MOT20-08).
Across a cut a track continues only on its own face; position alone never carries it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.config import load_config
from agent.events.clock import FrameStamp
from agent.pipeline.analyzer import Analysis, FacePrediction
from agent.pipeline.frame import SourceFrame
from agent.pipeline.stage import TrackingStage
from agent.tracking import Tracker, TrackerParams
from agent.vision.scene_cut import FrameSignature, SceneCutDetector, SceneCutParams

CLIPS = {
    "data/video/hamilton_clip.mp4": [20, 82, 211],
    "data/video/vtest.avi": [],
    "data/video/mot17-13_960x540.h265": [],
    "data/video/mot20-08_960x366.h264": [],
}


def _cuts(path: Path) -> tuple[list[int], int]:
    detector = SceneCutDetector()
    capture = cv2.VideoCapture(str(path))
    fired: list[int] = []
    index = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        if detector.check(image).cut:
            fired.append(index)
        index += 1
    capture.release()
    return fired, index


@pytest.mark.parametrize("clip", sorted(CLIPS))
def test_cuts_are_found_where_the_clip_cuts_and_nowhere_else(assets_dir: Path, clip: str) -> None:
    fired, frames = _cuts(assets_dir / clip)
    print(f"{clip}: {frames} frames, cuts at {fired}")
    assert frames > 100
    assert fired == CLIPS[clip]


def test_bench_json_is_the_json_alone_and_says_the_same() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.scene_cuts", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    clips = report["clips"]
    assert clips["data/video/hamilton_clip.mp4"]["fired_default"] == [20, 82, 211]
    assert all(clips[name]["fired_held_out"] == CLIPS[name] for name in CLIPS)
    assert "load_average_start" in report["run"]


def test_first_frame_is_no_cut_a_new_frame_size_is_one_and_a_black_frame_has_no_layout(
    assets_dir: Path,
) -> None:
    capture = cv2.VideoCapture(str(assets_dir / "data/video/vtest.avi"))
    ok, image = capture.read()
    capture.release()
    assert ok
    detector = SceneCutDetector()
    assert not detector.check(image).cut
    assert not detector.check(image.copy()).cut
    assert detector.check(cv2.resize(image, (320, 240))).cut
    black = np.zeros_like(image)
    assert FrameSignature.of(black).layout_correlation(FrameSignature.of(image)) == 0.0
    detector.reset()
    assert not detector.check(black).cut


def test_bad_input_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="BGR frame"):
        FrameSignature.of(np.zeros((10, 10), dtype=np.uint8))
    with pytest.raises(ValueError, match="min_colour_change"):
        SceneCutParams(min_colour_change=0.0)
    with pytest.raises(ValueError, match="max_layout_correlation"):
        SceneCutParams(max_layout_correlation=2.0)


# ---------------------------------------------------------------------------------------------
# the tracker across a cut (synthetic boxes and unit face vectors: the rule, not the models)


def _unit(v: list[float]) -> list[float]:
    a = np.asarray(v, dtype=np.float64)
    return list(a / np.linalg.norm(a))


FACE_A = _unit([1.0, 0.1, 0.0, 0.0])
FACE_B = _unit([0.0, 0.1, 1.0, 0.0])
NO_FACE = [float("nan")] * 4


def _run(tracker: Tracker, frames: int, boxes: list[list[float]], faces: list[list[float]]) -> None:
    for _ in range(frames):
        tracker.update(boxes, [0.9] * len(boxes), None, faces)


def test_a_cut_ends_a_track_that_only_its_position_would_carry() -> None:
    tracker = Tracker(TrackerParams(n_init=2))
    _run(tracker, 5, [[100, 50, 60, 160]], [FACE_A])
    (track,) = [t for t in tracker.update([[100, 50, 60, 160]], [0.9], None, [FACE_A]).tracks]
    # Next shot: somebody else exactly where he stood (face B), or a box with no face at all.
    for faces in ([FACE_B], [NO_FACE]):
        t2 = Tracker(TrackerParams(n_init=2))
        _run(t2, 5, [[100, 50, 60, 160]], [FACE_A])
        update = t2.update([[100, 50, 60, 160]], [0.9], None, faces, scene_cut=True)
        assert [(e.kind, e.track_id) for e in update.events] == [("deleted", track.track_id)]
        assert [t.track_id for t in update.tracks] != [track.track_id]
        # Without the cut the same frame would have continued him.
        t3 = Tracker(TrackerParams(n_init=2))
        _run(t3, 5, [[100, 50, 60, 160]], [FACE_A])
        assert [t.track_id for t in t3.update([[100, 50, 60, 160]], [0.9], None, faces).tracks] == [
            track.track_id
        ]


def test_a_cut_keeps_a_track_whose_own_face_is_on_the_new_shot_wherever_it_is() -> None:
    tracker = Tracker(TrackerParams(n_init=2))
    _run(tracker, 5, [[100, 50, 60, 160], [400, 60, 60, 160]], [FACE_A, FACE_B])
    ids = [t.track_id for t in tracker.update([[100, 50, 60, 160], [400, 60, 60, 160]], [0.9] * 2, None,
                                              [FACE_A, FACE_B]).tracks]  # fmt: skip
    # New shot: A is now big on the right, a stranger without a face stands where A was, and B is gone.
    update = tracker.update(
        [[300, 10, 150, 340], [100, 50, 60, 160]], [0.9, 0.9], None, [FACE_A, NO_FACE], scene_cut=True
    )
    assert [(e.kind, e.track_id) for e in update.events] == [("deleted", ids[1])]
    by_det = {t.detection_index: t.track_id for t in update.tracks}
    assert by_det[0] == ids[0], "A continues on his own face, at his new place"
    assert by_det[1] not in ids, "the stranger at A's old place starts a new track"
    # And the carried track keeps following A after the cut.
    update = tracker.update([[305, 12, 150, 340]], [0.9], None, [FACE_A])
    assert [(t.track_id, t.detection_index) for t in update.tracks if t.track_id == ids[0]] == [(ids[0], 0)]


# ---------------------------------------------------------------------------------------------
# the tracking stage on the demo clip's real cut (frames 19 -> 20): the named track ends there


def test_the_stage_ends_a_named_track_at_the_real_cut_and_the_next_box_starts_unnamed(
    assets_dir: Path,
) -> None:
    capture = cv2.VideoCapture(str(assets_dir / "data/video/hamilton_clip.mp4"))
    images = []
    for _ in range(21):
        ok, image = capture.read()
        assert ok
        images.append(image)
    capture.release()
    config = load_config(None, assets_dir=assets_dir, device_id="cut")
    stage = TrackingStage.from_config(config)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    box = np.array([[390.0, 30.0, 210.0, 320.0]])
    events = []
    for index in range(14, 21):
        # The same box on every frame (the next shot has somebody at the same place), and a face
        # vote for the name on the stage frames only.
        analysis = Analysis(
            frame=SourceFrame(index, images[index], t0 + timedelta(seconds=index / 30), 0.0),
            boxes_tlwh=box.copy(),
            scores=np.array([0.9]),
            features=None,
            face_features=None,
            predictions={0: FacePrediction("lin-manuel-miranda", 0.6)} if index < 20 else {},
        )
        result = stage.step(analysis, FrameStamp(index, t0 + timedelta(seconds=index / 30)))
        events.extend(result.events)
    assert stage.cuts_seen == 1 and stage.last_cut == 20
    kinds = [(e.frame, e.type, getattr(e, "label", None)) for e in events]
    assert (20, "track_ended", "lin-manuel-miranda") in kinds, kinds
    assert result.labels and set(result.labels.values()) == {"unknown"}
    # With cuts switched off the same frames keep the name on the box (the issue-22 demo bug).
    off = TrackingStage.from_config(
        load_config(None, assets_dir=assets_dir, device_id="cut", scene_cut={"enabled": False})
    )
    for index in range(14, 21):
        analysis = Analysis(
            frame=SourceFrame(index, images[index], t0, 0.0),
            boxes_tlwh=box.copy(),
            scores=np.array([0.9]),
            features=None,
            face_features=None,
            predictions={0: FacePrediction("lin-manuel-miranda", 0.6)} if index < 20 else {},
        )
        kept = off.step(analysis, FrameStamp(index, t0))
    assert set(kept.labels.values()) == {"lin-manuel-miranda"} and off.cuts is None
