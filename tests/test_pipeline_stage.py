"""The per-frame pipeline: which people get a face look, and how model output becomes events.

The tracking-stage tests feed hand-made detections and classifier outputs to the real tracker (no
models). The analyzer tests run the real models on a real hamilton_clip.mp4 frame.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from agent.config import load_config
from agent.events.builder import EventBuilder
from agent.events.clock import FrameStamp
from agent.events.schema import IdentityEvent, TrackEnded, TrackStarted
from agent.identity.voting import IdentityResolver
from agent.pipeline.analyzer import Analysis, FacePrediction, FrameAnalyzer, TrackHint
from agent.pipeline.frame import SourceFrame
from agent.pipeline.stage import TrackingStage
from agent.tracking import ColorHistogramEncoder, Tracker, TrackerParams
from agent.vision.factory import VisionStack, build_vision_stack

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BOX = (100.0, 50.0, 80.0, 200.0)


def _frame(index: int) -> SourceFrame:
    return SourceFrame(index, np.zeros((4, 4, 3), np.uint8), T0 + timedelta(seconds=index / 25), 0.0)


def _analysis(index: int, boxes: list[tuple[float, ...]], preds: dict[int, FacePrediction]) -> Analysis:
    n = len(boxes)
    return Analysis(
        frame=_frame(index),
        boxes_tlwh=np.array(boxes, dtype=np.float64).reshape(n, 4),
        scores=np.full(n, 0.9),
        features=None,
        face_features=None,
        predictions=preds,
    )


def _stage(min_votes: int = 3, recheck: int = 10, max_age: int = 5) -> TrackingStage:
    return TrackingStage(
        Tracker(TrackerParams(n_init=3, max_age=max_age, opening_frames=0)),
        IdentityResolver(min_votes=min_votes, min_confidence=0.5),
        EventBuilder("dev"),
        face_recheck_every=recheck,
    )


def test_identity_flows_into_events_and_face_checks_become_periodic() -> None:
    stage = _stage(min_votes=3, recheck=10)
    events: list[Any] = []
    wanted: list[bool] = []
    for i in range(30):
        hints = stage.hints(i)
        wanted.append(bool(hints) and hints[0].needs_face)
        # The face model only runs when some track (or a newcomer) wants it.
        preds = {0: FacePrediction("ana", 0.9)} if (not hints or hints[0].needs_face) else {}
        events += stage.step(_analysis(i, [BOX], preds), FrameStamp(i, _frame(i).ts)).events
    events += stage.finish(FrameStamp(30, _frame(30).ts))

    kinds = [type(e).__name__ for e in events]
    assert kinds == ["TrackStarted", "IdentityEvent", "TrackEnded"]
    started, named, ended = events
    assert isinstance(started, TrackStarted) and started.frame == 2  # n_init = 3 hits
    assert isinstance(named, IdentityEvent) and named.label == "ana" and named.votes == 3
    assert isinstance(ended, TrackEnded) and ended.label == "ana" and ended.frames == 30
    # Frames 1-2: not yet named, a face every frame; afterwards one look every 10 frames.
    assert wanted[1:3] == [True, True]
    later = [i for i, w in enumerate(wanted) if w and i >= 3]
    assert later == [12, 22], later


def test_two_tracks_claiming_one_name_only_the_stronger_keeps_it() -> None:
    stage = _stage(min_votes=2)
    left, right = (10.0, 10.0, 50.0, 150.0), (300.0, 10.0, 50.0, 150.0)
    events: list[Any] = []
    for i in range(12):
        preds = {0: FacePrediction("ana", 0.6)}
        if i >= 2:  # from frame 5 on, its summed confidence beats the left track's
            preds[1] = FacePrediction("ana", 0.95)
        events += stage.step(_analysis(i, [left, right], preds), FrameStamp(i, _frame(i).ts)).events
    named = [(e.track_id, e.label) for e in events if isinstance(e, IdentityEvent)]
    # Left is named first; right's stronger claim takes the name and left reverts to unknown.
    assert named[0][1] == "ana"
    left_id = named[0][0]
    assert named[-2:] == [(left_id, "unknown"), (named[-1][0], "ana")] and named[-1][0] != left_id
    assert list(stage.resolver.holders().values()) == [named[-1][0]]
    # Both keep voting for "ana", yet the name does not trade back and forth.
    assert len(named) == 3


def test_without_classifier_tracks_still_flow() -> None:
    stage = _stage()
    events: list[Any] = []
    for i in range(10):
        events += stage.step(_analysis(i, [BOX] if i < 5 else [], {}), FrameStamp(i, _frame(i).ts)).events
    assert [type(e).__name__ for e in events] == ["TrackStarted"]
    # Deleted after max_age misses: ended, label null.
    for i in range(10, 20):
        events += stage.step(_analysis(i, [], {}), FrameStamp(i, _frame(i).ts)).events
    assert isinstance(events[-1], TrackEnded) and events[-1].label is None


# ---------------------------------------------------------------------------------------------
# the analyzer on real models


@pytest.fixture(scope="module")
def stack(assets_dir: Path) -> VisionStack:
    return build_vision_stack(load_config(None, assets_dir=assets_dir))


@pytest.fixture(scope="module")
def hamilton_frame(assets_dir: Path) -> SourceFrame:
    capture = cv2.VideoCapture(str(assets_dir / "data/video/hamilton_clip.mp4"))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 100)
    ok, image = capture.read()
    capture.release()
    assert ok
    return SourceFrame(100, np.asarray(image, np.uint8), T0, 0.0)


def test_analyzer_embeds_the_face_of_a_newcomer_and_skips_named_people(
    stack: VisionStack, hamilton_frame: SourceFrame
) -> None:
    analyzer = FrameAnalyzer(
        stack.person_detector, stack.face_detector, stack.embedder, ColorHistogramEncoder()
    )
    fresh = analyzer.analyze(hamilton_frame, [], None)
    assert len(fresh.boxes_tlwh) >= 1 and fresh.features is not None
    assert fresh.faces_checked and fresh.face_features is not None
    with_face = [i for i in range(len(fresh.boxes_tlwh)) if not np.isnan(fresh.face_features[i]).any()]
    assert with_face, "Lin-Manuel Miranda's face must be found and bound to his person box"
    row = fresh.face_features[with_face[0]]
    assert abs(float(np.linalg.norm(row)) - 1.0) < 1e-3
    # The face lies inside the person box it was bound to.
    face = fresh.faces[with_face[0]].box
    x, y, w, h = fresh.boxes_tlwh[with_face[0]]
    assert x - 1 <= face.x1 and face.x2 <= x + w + 1 and y - 1 <= face.y1 and face.y2 <= y + h + 1

    # Every person already tracked and named, none due for a re-check: no face model runs.
    hints = [TrackHint(tuple(float(v) for v in b), needs_face=False) for b in fresh.boxes_tlwh]  # type: ignore[misc]
    skipped = analyzer.analyze(hamilton_frame, hints, None)
    assert not skipped.faces_checked and skipped.face_features is None
    assert "face_ms" not in skipped.timings_ms and "person_ms" in skipped.timings_ms
