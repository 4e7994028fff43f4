"""Impossible person boxes: the shape rule, the people of the shared ground truth, and the COCO SSD
on real clips (the MOT20-08 crowd clip, hamilton_clip.mp4's close-ups), then the agent's whole
analyzer and tracker on the crowd clip. Counts come from the quantised SSD, which is
deterministic on the same frames: they are asserted exactly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.config import load_config
from agent.events.clock import FrameStamp
from agent.pipeline.analyzer import DetectionOptions
from agent.pipeline.frame import SourceFrame
from agent.pipeline.stage import TrackingStage
from agent.runtime.resources import build_analyzers
from agent.vision.factory import build_person_detector
from agent.vision.person_boxes import PersonShape, plausible_people
from agent.vision.types import BBox, Detection, Frame

CROWD = "data/video/mot20-08_960x366.h264"
CLOSE_UPS = "data/video/hamilton_clip.mp4"
SEQUENCES = {  # MOT15 frame sizes (seqinfo)
    "PETS09-S2L1": (768, 576),
    "TUD-Campus": (640, 480),
    "ETH-Sunnyday": (640, 480),
    "KITTI-13": (1242, 375),
}


def _frames(path: Path, limit: int = 10_000) -> Iterator[Frame]:
    capture = cv2.VideoCapture(str(path))
    try:
        for _ in range(limit):
            ok, image = capture.read()
            if not ok:
                return
            yield np.asarray(image, dtype=np.uint8)
    finally:
        capture.release()


# -- the rule ---------------------------------------------------------------------------------


def test_a_box_far_wider_than_tall_is_no_person() -> None:
    shape = PersonShape()
    frame = (960, 366)
    assert not shape.allows(BBox(10, 10, 950, 350), frame)  # the crowd box: 0.36 tall per wide
    assert shape.allows(BBox(100, 50, 140, 150), frame)  # a walker
    assert shape.allows(BBox(0, 0, 600, 350), frame)  # a close-up, 0.58
    assert not shape.allows(BBox(5, 5, 5, 40), frame)  # no width
    assert shape.allows(BBox(0, 0, 4, 200), frame)  # a sliver cut by the frame edge: no upper bound


def test_optional_bounds_and_bad_values() -> None:
    frame = (640, 360)
    close_up = BBox(20, 0, 620, 350)
    assert PersonShape().allows(close_up, frame)
    assert not PersonShape(max_frame_share=0.5).allows(close_up, frame)
    assert not PersonShape(max_aspect=6.0).allows(BBox(0, 0, 4, 200), frame)
    assert PersonShape(min_aspect=0.0).allows(BBox(10, 10, 950, 350), (960, 366))
    assert not PersonShape(min_aspect=0.0, max_people_inside=0).checks_anything
    for bad in (
        {"max_frame_share": 0.0},
        {"min_aspect": -1.0},
        {"min_aspect": 2.0, "max_aspect": 1.0},
        {"max_people_inside": -1},
    ):
        with pytest.raises(ValueError):
            PersonShape(**bad)  # type: ignore[arg-type]


def test_a_box_holding_two_smaller_people_is_a_group() -> None:
    frame = (768, 576)
    group = Detection(BBox(20, 70, 740, 500), 0.55, 0)
    walkers = [Detection(BBox(100 + 200 * i, 200, 150 + 200 * i, 330), 0.8, 0) for i in range(2)]
    kept = plausible_people([group, *walkers], frame, PersonShape())
    assert kept == walkers
    # One person inside (a face-sized or child-sized box in a close-up) does not make a group.
    assert plausible_people([group, walkers[0]], frame, PersonShape()) == [group, walkers[0]]
    assert plausible_people([group, *walkers], frame, PersonShape(max_people_inside=0)) == [group, *walkers]


def test_config_builds_the_shape_and_zero_switches_it_off(assets_dir: Path) -> None:
    config = load_config(None, assets_dir=assets_dir)
    options = DetectionOptions.from_config(config.detection, 300, config.person_boxes)
    assert options.person_shape == PersonShape(
        min_aspect=0.47, max_aspect=0.0, max_frame_share=1.0, max_people_inside=2
    )
    off = load_config(None, assets_dir=assets_dir, person_boxes={"min_aspect": 0, "max_people_inside": 0})
    assert DetectionOptions.from_config(off.detection, 300, off.person_boxes).person_shape is None


def test_no_person_of_the_shared_ground_truth_is_dropped(assets_dir: Path) -> None:
    """Every counted box of the four MOT15 ground truths, clipped to the frame as a detector's box
    is, passes (measured lowest height/width: 0.91, KITTI-13)."""
    shape = PersonShape()
    for name, (width, height) in SEQUENCES.items():
        rows = np.loadtxt(assets_dir / "data/mot15" / name / "gt/gt.txt", delimiter=",", ndmin=2)
        rows = rows[rows[:, 6] != 0]
        boxes = [
            BBox(max(x, 0.0), max(y, 0.0), min(x + w, width), min(y + h, height))
            for x, y, w, h in rows[:, 2:6]
        ]
        dropped = [b for b in boxes if b.width > 0 and b.height > 0 and not shape.allows(b, (width, height))]
        assert dropped == [], f"{name}: {len(dropped)} real people dropped, e.g. {dropped[:3]}"


# -- the COCO SSD on real clips ------------------------------------------------------------------


@pytest.fixture(scope="module")
def ssd_boxes(assets_dir: Path) -> Callable[[str], list[tuple[list[Detection], tuple[int, int]]]]:
    detector = build_person_detector(load_config(None, assets_dir=assets_dir))

    def run(video: str, frames: int = 300) -> list[tuple[list[Detection], tuple[int, int]]]:
        return [(detector.detect(f), (f.shape[1], f.shape[0])) for f in _frames(assets_dir / video, frames)]

    return run


def test_the_crowd_box_of_every_frame_is_dropped_and_nothing_else(ssd_boxes) -> None:  # type: ignore[no-untyped-def]
    """MOT20-08: the SSD returns one box over more than half the frame on each of its 127 frames;
    all 127 are dropped, no other box is (747 boxes in all)."""
    frames = ssd_boxes(CROWD)
    assert len(frames) == 127
    shape = PersonShape()
    big = dropped = total = 0
    for detections, (width, height) in frames:
        total += len(detections)
        big += sum(d.box.area > 0.5 * width * height for d in detections)
        kept = plausible_people(detections, (width, height), shape)
        dropped += len(detections) - len(kept)
        assert all(d.box.area <= 0.5 * width * height for d in kept)
    assert (total, big, dropped) == (747, 127, 127)


def test_close_ups_that_fill_the_frame_are_kept(ssd_boxes) -> None:  # type: ignore[no-untyped-def]
    """hamilton_clip.mp4 (640x360): 87 SSD boxes of the first 275 frames cover more than half the
    frame, all of them real people in close-up; none is dropped."""
    frames = ssd_boxes(CLOSE_UPS)
    shape = PersonShape()
    big = sum(d.box.area > 0.5 * w * h for ds, (w, h) in frames for d in ds)
    dropped = sum(len(ds) - len(plausible_people(ds, size, shape)) for ds, size in frames)
    assert (big, dropped) == (87, 0)


def test_the_scene_boxes_of_vtest_go_and_no_real_person_with_them(  # type: ignore[no-untyped-def]
    ssd_boxes, assets_dir: Path
) -> None:
    """vtest.avi (PETS09-S2L1, 768x576), first 600 frames: the SSD's boxes over the whole scene are
    as tall per wide as a close-up, but each holds the walkers it covers: 31 boxes go (the first at
    frame 305), and every box that matched a ground-truth person at IoU 0.5 stays (2461)."""
    rows = np.loadtxt(assets_dir / "data/mot15/PETS09-S2L1/gt/gt.txt", delimiter=",", ndmin=2)
    rows = rows[rows[:, 6] != 0]
    shape = PersonShape()
    dropped = matched_before = matched_after = 0
    for index, (detections, size) in enumerate(ssd_boxes("data/video/vtest.avi", 600)):
        gt = [BBox.from_tlwh(*r) for r in rows[rows[:, 0] == index + 1][:, 2:6]]
        kept = plausible_people(detections, size, shape)
        dropped += len(detections) - len(kept)
        matched_before += sum(any(d.box.iou(g) >= 0.5 for g in gt) for d in detections)
        matched_after += sum(any(d.box.iou(g) >= 0.5 for g in gt) for d in kept)
        assert all(d.box.area <= 0.5 * size[0] * size[1] for d in kept)
    assert (dropped, matched_after) == (VTEST_DROPPED, matched_before)


VTEST_DROPPED = 31


def test_no_track_covers_the_crowd_clip(assets_dir: Path) -> None:
    """The agent's own analyzer (built as the runtime builds it) and tracking stage on MOT20-08:
    no confirmed track's box covers half the frame. Without tiles, where the SSD's crowd box is at
    its largest; the tiled default path is tests/test_crowd_tracks.py."""
    config = load_config(None, assets_dir=assets_dir, inference={"workers": 1}, tiles={"rows": 0})
    analyzer = build_analyzers(config, None)[0][0]
    stage = TrackingStage.from_config(config)
    confirmed: set[int] = set()
    for index, image in enumerate(_frames(assets_dir / CROWD)):
        now = datetime.now(UTC)
        analysis = analyzer.analyze(SourceFrame(index, image, now, 0.0), stage.hints(index), None)
        result = stage.step(analysis, FrameStamp(index, now))
        area = image.shape[0] * image.shape[1]
        for track in result.tracks:
            if track.is_confirmed:
                confirmed.add(track.track_id)
                assert track.tlwh[2] * track.tlwh[3] <= 0.5 * area, f"track {track.track_id} covers the frame"
    assert confirmed, "the crowd clip gave no confirmed track at all"
