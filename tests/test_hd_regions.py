"""Person detection on HD frames: motion mask, region planning, box merging, and the analyzer on
real 1080p frames built from vtest.avi at test time (counted detector runs, never timings)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.config import ConfigError, load_config
from agent.events.clock import FrameStamp
from agent.pipeline.analyzer import DetectionOptions, FrameAnalyzer
from agent.pipeline.frame import SourceFrame
from agent.pipeline.stage import TrackingStage
from agent.vision.detection_schedule import DetectionScheduler, ScheduleParams, TrackBox
from agent.vision.factory import build_person_detector
from agent.vision.motion import MotionDetector
from agent.vision.regions import Region, merge_detections, plan_regions, square_region
from agent.vision.types import BBox, Detection, Frame
from bench import hd_scenes as scenes

HD = (1920, 1080)


# -- pure geometry -----------------------------------------------------------------------------


def test_square_region_is_detector_sized_inside_the_frame() -> None:
    region = square_region(BBox(1900, 1000, 1910, 1070), HD, min_side=300, grow=0.25)
    assert region == Region(1620, 780, 1920, 1080)
    big = square_region(BBox(100, 100, 300, 700), HD, min_side=300, grow=0.25)
    assert big.side == 750 and big.contains(BBox(100, 100, 300, 700))


def test_plan_covers_every_box_and_reuses_regions() -> None:
    person = BBox(500, 400, 560, 560)
    arm = BBox(540, 450, 570, 480)  # inside the person's region: no second region
    far = BBox(1500, 100, 1540, 200)
    plan = plan_regions(HD, [arm, person, far], min_side=300)
    assert not plan.full_frame and len(plan.regions) == 2
    for box in (person, arm, far):
        assert any(r.contains(box) for r in plan.regions)


def test_plan_falls_back_to_one_full_pass() -> None:
    many = [BBox(100 + 350 * i, 100, 140 + 350 * i, 200) for i in range(5)]
    assert plan_regions(HD, many, min_side=300, max_regions=4).full_frame
    tall = BBox(800, 0, 1100, 1060)
    assert plan_regions(HD, [tall], min_side=300).full_frame
    assert plan_regions(HD, [], min_side=300).passes == 0


def test_merge_keeps_the_whole_box_over_the_cut_one() -> None:
    whole = Detection(BBox(100, 100, 160, 300), 0.6, 0)
    cut = Detection(BBox(100, 100, 160, 200), 0.9, 0)  # the same person halved by a region edge
    other = Detection(BBox(400, 100, 460, 300), 0.7, 0)
    merged = merge_detections([(cut, True), (whole, False), (other, False), (whole, False)])
    assert merged == [other, whole]


# -- motion ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moving_frames(assets_dir: Path) -> list[Frame]:
    """40 frames of vtest.avi upscaled to cover 1920x1080 (people walking)."""
    return list(scenes.covered_clip(assets_dir / "data/video/vtest.avi", 40))


@pytest.fixture(scope="module")
def still_frames(moving_frames: list[Frame]) -> list[Frame]:
    """The first of those held for 40 frames, with fresh sensor noise (sigma 3) on each."""
    return list(scenes.still_clip(moving_frames[0], 40))


def test_motion_ignores_sensor_noise_and_finds_walkers(
    moving_frames: list[Frame], still_frames: list[Frame]
) -> None:
    still = MotionDetector()
    results = [still.update(f) for f in still_frames]
    assert not results[0].known  # the first frame: nothing to compare with
    assert all(r.known and not r.boxes for r in results[1:])
    moving = MotionDetector()
    results = [moving.update(f) for f in moving_frames]
    assert all(r.known and r.boxes for r in results[2:])
    # A scene change (another picture) makes motion unknown again.
    flipped = np.ascontiguousarray(moving_frames[-1][::-1, ::-1])
    assert not moving.update(flipped).known


# -- the analyzer on real 1080p frames ---------------------------------------------------------


class CountingDetector:
    """The real COCO SSD, counting its runs (the test measures work, not time)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.runs = 0

    def detect(self, frame: Frame) -> list[Detection]:
        self.runs += 1
        result: list[Detection] = self.inner.detect(frame)
        return result


class NoFaces:
    def detect(self, frame: Frame) -> list[Any]:
        return []


def _run(assets_dir: Path, frames: list[Frame]) -> tuple[int, list[Any], list[int]]:
    """Analyzer + tracker over the frames; returns (detector runs, events, live track ids at end)."""
    config = load_config(None, assets_dir=assets_dir)
    detector = CountingDetector(build_person_detector(config))
    # Faces are not what this test is about: a face detector that finds none keeps it lean.
    analyzer = FrameAnalyzer(
        detector,
        NoFaces(),
        None,
        None,
        DetectionOptions.from_config(config.detection),  # type: ignore[arg-type]
    )
    stage = TrackingStage.from_config(config)
    events: list[Any] = []
    for index, image in enumerate(frames):
        frame = SourceFrame(index, image, datetime.now(UTC), 0.0)
        analysis = analyzer.analyze(frame, stage.hints(index), None)
        events += stage.step(analysis, FrameStamp(index, datetime.now(UTC))).events
    return detector.runs, events, [t.track_id for t in stage.tracks if t.is_confirmed]


def test_still_scene_runs_the_detector_far_less_than_a_moving_one(
    assets_dir: Path, moving_frames: list[Frame], still_frames: list[Frame]
) -> None:
    moving_runs, moving_events, _ = _run(assets_dir, moving_frames)
    still_runs, still_events, still_tracks = _run(assets_dir, still_frames)
    assert moving_runs >= len(moving_frames)  # someone walks on every frame
    assert still_runs * 3 <= moving_runs, (still_runs, moving_runs)
    # The still scene's people were found (the first frame is a full pass) and kept.
    assert still_tracks and any(e.type == "track_started" for e in still_events)
    assert any(e.type == "track_started" for e in moving_events)


def test_people_standing_still_keep_one_track_each(assets_dir: Path, still_frames: list[Frame]) -> None:
    runs, events, live = _run(assets_dir, still_frames + still_frames[1:] * 2)  # ~120 frames
    started = [e.track_id for e in events if e.type == "track_started"]
    ended = [e for e in events if e.type == "track_ended"]
    assert started and sorted(started) == sorted(live), (started, live)
    assert ended == []
    assert runs < 120 / 2


def test_scheduler_holds_still_tracks_and_checks_them_periodically(still_frames: list[Frame]) -> None:
    scheduler = DetectionScheduler(ScheduleParams(full_frame_every=0, still_check_every=5))
    track = TrackBox(track_id=7, box=BBox(800, 400, 880, 640), confirmed=True, updated=True)
    plans = [scheduler.plan(i, f, [track]) for i, f in enumerate(still_frames[:11])]
    assert plans[0].plan.full_frame and plans[0].reason == "motion unknown"
    checked = [i for i, p in enumerate(plans[1:], start=1) if p.plan.passes]
    assert checked == [5, 10]
    assert all(p.held == (0,) for i, p in enumerate(plans[1:], start=1) if i not in checked)
    # A lost track (missed on its last frame) is searched for on every frame.
    lost = TrackBox(track_id=7, box=track.box, confirmed=True, updated=False)
    assert scheduler.plan(11, still_frames[11], [lost]).plan.regions


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("max_regions = 0", "detection.max_regions = 0: Input should be greater than or equal to 1"),
        ("still_check_every = 0", "detection.still_check_every = 0"),
        ("motion = 'sometimes'", "detection.motion = 'sometimes'"),
        ("face_max_turn = -1", "detection.face_max_turn = -1"),
        ("regionz = true", "did you mean 'regions'?"),
    ],
)
def test_bad_detection_settings_are_one_line(tmp_path: Path, line: str, fragment: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[detection]\n{line}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message and fragment in message, message


def test_agent_keeps_the_people_of_a_still_1080p_scene_with_frames_in_flight(
    assets_dir: Path, tmp_path: Path, mosquitto: Any, still_frames: list[Frame]
) -> None:
    """The real agent (two inference workers, frames in flight, so the tracks the scheduler sees
    lag the frames it plans): the people standing in a still scene get tracks that last, while
    the person detector runs on a fraction of the frames."""
    from agent.runtime.app import AgentApp

    video = tmp_path / "still_1080p.mp4"
    frames = 60
    assert scenes.write_video(video, iter(still_frames + still_frames[:20]), 10.0) == frames
    config = load_config(
        None,
        assets_dir=assets_dir,
        device_id="still",
        state_dir=tmp_path / "state",
        mqtt={"port": mosquitto.port},
        pipeline={"input": str(video)},
        status={"interval_s": 3600.0},
    )
    events: list[Any] = []
    app = AgentApp(config, install_signal_handlers=False, on_event=events.append, flush_timeout_s=5.0)
    assert asyncio.run(app.run()) == 0
    started = [e for e in events if e.type == "track_started"]
    ended = [e for e in events if e.type == "track_ended"]
    assert len(started) >= 2, events
    # Nobody left: every track lasts until the input ends, on its last frame.
    assert {e.track_id for e in ended} == {e.track_id for e in started}
    assert all(e.frame == frames - 1 for e in ended), [(e.track_id, e.frame) for e in ended]
    assert app.person_passes <= frames / 3, app.person_passes
