"""The adaptive detection schedule (coasting, agent/vision/detection_schedule.py) on real vtest.avi
frames, and the analyzer's model CPU measure: counted detector passes and plan reasons, never
timings."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from agent.config import load_config
from agent.events.clock import FrameStamp
from agent.pipeline.analyzer import Analysis, DetectionOptions, FrameAnalyzer
from agent.pipeline.frame import SourceFrame
from agent.pipeline.stage import TrackingStage
from agent.tracking import ColorHistogramEncoder
from agent.vision.detection_schedule import DetectionScheduler, ScheduleParams, TrackBox
from agent.vision.factory import build_person_detector
from agent.vision.types import BBox, Frame

WIDTH, HEIGHT = 768, 576


@pytest.fixture(scope="module")
def vtest_frames(assets_dir: Path) -> list[Frame]:
    capture = cv2.VideoCapture(str(assets_dir / "data/video/vtest.avi"))
    frames: list[Frame] = []
    while len(frames) < 120:
        ok, image = capture.read()
        assert ok, "vtest.avi ended early"
        frames.append(np.asarray(image, dtype=np.uint8))
    capture.release()
    return frames


def _everywhere(detected_at: int, seen_at: int, *, hits: int = 10, confirmed: bool = True) -> TrackBox:
    """A track whose box covers the whole frame: every motion is over it (none is new)."""
    box = BBox(0, 0, WIDTH, HEIGHT)
    return TrackBox(1, box, confirmed, True, hits, detected_at, seen_at, box)


def test_coasting_skips_at_most_k_frames_in_a_row(vtest_frames: list[Frame]) -> None:
    scheduler = DetectionScheduler(ScheduleParams(full_frame_every=0, coast_frames=2))
    reasons = []
    last_pass = 0
    for index, frame in enumerate(vtest_frames[:30]):
        # The tracker saw the previous frame, and the track was found by the last pass.
        plan = scheduler.plan(index, frame, [_everywhere(last_pass, max(index - 1, 0))])
        if plan.plan.passes:
            last_pass = index
        reasons.append(plan.reason)
    assert reasons[0] == "motion unknown"
    coasted = [i for i, r in enumerate(reasons) if r == "coast"]
    assert coasted, reasons
    # Never more than 2 coasted frames in a row: the third always gets the detector.
    runs = "".join("c" if r == "coast" else "d" for r in reasons)
    assert "ccc" not in runs and "cc" in runs, runs


def _scheduler_after_six_passes(frames: list[Frame]) -> DetectionScheduler:
    """A scheduler whose detector ran on frames 0-5 (people walk on every vtest frame)."""
    scheduler = DetectionScheduler(ScheduleParams(full_frame_every=0, coast_frames=3, coast_min_hits=5))
    assert all(scheduler.plan(index, frames[index], []).plan.passes for index in range(6))
    return scheduler


@pytest.mark.parametrize(
    ("why", "track"),
    [
        ("unconfirmed", _everywhere(5, 5, confirmed=False)),
        ("young", _everywhere(5, 5, hits=2)),
        # Found by the pass on frame 4, missed by the one on frame 5 (which its hint has seen).
        ("just missed a pass", _everywhere(4, 5)),
    ],
)
def test_an_uncertain_track_gets_the_detector(vtest_frames: list[Frame], why: str, track: TrackBox) -> None:
    scheduler = _scheduler_after_six_passes(vtest_frames)
    assert scheduler.plan(6, vtest_frames[6], [track]).plan.passes, why
    # The same frame coasts when the track is well established and was found by the last pass.
    control = _scheduler_after_six_passes(vtest_frames)
    plan = control.plan(6, vtest_frames[6], [_everywhere(5, 5)])
    assert plan.reason == "coast" and plan.held == (0,)


def test_new_motion_away_from_the_tracks_gets_the_detector(vtest_frames: list[Frame]) -> None:
    scheduler = DetectionScheduler(ScheduleParams(full_frame_every=0, coast_frames=3))
    corner = BBox(0, 0, 40, 40)  # people walk all over vtest, not only in this corner
    for index in range(20):
        track = TrackBox(1, corner, True, True, 10, max(index - 1, 0), max(index - 1, 0), corner)
        plan = scheduler.plan(index, vtest_frames[index], [track])
        assert plan.reason != "coast" and (index == 0 or plan.motion.boxes)


class NoFaces:
    """Faces are not what these tests are about: a face detector that finds none keeps them lean."""

    def detect(self, frame: Frame) -> list[Any]:
        return []


def _run(assets_dir: Path, frames: list[Frame], coast: int) -> tuple[int, list[Any]]:
    config = load_config(None, assets_dir=assets_dir, detection={"coast_frames": coast})
    analyzer = FrameAnalyzer(
        build_person_detector(config),
        NoFaces(),
        None,  # type: ignore[arg-type]
        ColorHistogramEncoder(),
        DetectionOptions.from_config(config.detection),
    )
    stage = TrackingStage.from_config(config)
    passes = 0
    analyses = []
    for index, image in enumerate(frames):
        frame = SourceFrame(index, image, datetime.now(UTC), 0.0)
        analysis = analyzer.analyze(frame, stage.hints(index), None)
        stage.step(analysis, FrameStamp(index, datetime.now(UTC)))
        passes += analysis.person_passes
        analyses.append(analysis)
    return passes, analyses


def test_coasting_frames_hold_tracks_and_detector_frames_measure_cpu(
    assets_dir: Path, vtest_frames: list[Frame]
) -> None:
    """On real vtest frames with the real detector: frames that coast ran no person detector (their
    rows are held tracks), and every frame that ran it measured its CPU."""
    _, analyses = _run(assets_dir, vtest_frames, coast=3)
    coasted = [a for a in analyses if a.coasted]
    detected = [a for a in analyses if a.person_passes]
    assert detected and all(a.model_cpu_ms > 0 for a in detected)
    assert coasted and all(a.held == len(a.boxes_tlwh) and a.person_passes == 0 for a in coasted)


def test_hints_move_a_shrinking_track_on_and_keep_its_size_positive() -> None:
    """A person walking away shrinks by 20 px a frame: the hint 30 frames ahead moves the box on
    and keeps at least half its size, so a coasting frame never feeds the tracker a box of zero
    height."""
    config = load_config(None)
    stage = TrackingStage.from_config(config)
    for index in range(8):
        height = 200.0 - 20.0 * index
        boxes = np.array([[100.0 + 4.0 * index, 50.0, height / 2, height]])
        image = np.zeros((576, 768, 3), dtype=np.uint8)
        analysis = Analysis(
            SourceFrame(index, image, datetime.now(UTC), 0.0), boxes, np.array([0.9]), None, None
        )
        stage.step(analysis, FrameStamp(index, datetime.now(UTC)))
    (hint,) = stage.hints(37)
    assert hint.predicted_tlwh is not None
    assert hint.predicted_tlwh[0] > hint.tlwh[0]  # moved on to the right
    assert hint.predicted_tlwh[3] == pytest.approx(hint.tlwh[3] / 2)
    assert hint.predicted_tlwh[2] == pytest.approx(hint.tlwh[2] / 2)
    assert hint.detected_at == 7 and hint.seen_at == 7 and hint.confirmed
