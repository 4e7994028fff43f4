"""Tiles over whole frames: the geometry, and the COCO SSD on the real MOT20-08 crowd clip with and
without tiles (counts of the deterministic quantised model, asserted exactly)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.config import load_config
from agent.pipeline.frame import SourceFrame
from agent.runtime.resources import build_analyzers
from agent.vision.factory import build_person_detector, build_vision_stack
from agent.vision.person_boxes import PersonShape
from agent.vision.tiling import TiledDetector, TileParams, tile_regions
from agent.vision.types import BBox, Detection, Frame

CROWD = "data/video/mot20-08_960x366.h264"


@pytest.mark.parametrize(
    ("size", "rows"), [((960, 540), 1), ((960, 366), 2), ((1920, 1080), 2), ((768, 576), 1)]
)
def test_tiles_are_squares_covering_the_frame_with_overlap(size: tuple[int, int], rows: int) -> None:
    width, height = size
    tiles = tile_regions(size, rows, 0.25)
    covered = np.zeros((height, width), dtype=bool)
    for tile in tiles:
        assert tile.x2 - tile.x1 == tile.y2 - tile.y1  # square: the SSD is not stretched
        assert tile.x1 >= 0 and tile.x2 <= width and tile.y1 >= 0 and tile.y2 <= height
        covered[tile.y1 : tile.y2, tile.x1 : tile.x2] = True
    assert covered.all()
    assert len({t.y1 for t in tiles}) == rows


def test_no_tiles_when_off_or_on_a_region_crop() -> None:
    assert tile_regions((960, 540), 0, 0.25) == ()
    tiled = TiledDetector(_FindsNothing(), 300, TileParams(rows=1))
    assert tiled.tiles((300, 300)) == ()  # a region crop is already detector-sized
    assert len(tiled.tiles((960, 366))) == 4
    with pytest.raises(ValueError):
        TileParams(overlap=1.0)


def test_only_crowds_tiles_a_pass_only_when_people_filled_the_detectors_slots() -> None:
    quiet = TiledDetector(_Slots(full=False), 300, TileParams(rows=1, only_crowds=True))
    crowd_detector = _Slots(full=True)
    crowd = TiledDetector(crowd_detector, 300, TileParams(rows=1, only_crowds=True))
    frame = np.zeros((366, 960, 3), dtype=np.uint8)
    quiet.detect(frame)
    crowd.detect(frame)
    assert (quiet.tiled_passes, quiet.whole_passes) == (0, 1)
    assert (crowd.tiled_passes, crowd.whole_passes) == (1, 1)
    assert crowd_detector.runs == 1 + 4  # the whole frame, then its 4 tiles
    # The tiles found fewer people than the slots hold: the crowd is gone, the next quiet pass is whole.
    crowd_detector.full = False
    crowd.detect(frame)
    assert (crowd.tiled_passes, crowd.whole_passes) == (1, 2)
    with pytest.raises(TypeError):
        TiledDetector(_FindsNothing(), 300, TileParams(rows=1, only_crowds=True))


def test_a_crowd_called_one_person_switches_tiles_on_when_asked() -> None:
    """A whole pass whose only box is 900x300 (wider than any person), slots not full."""
    frame = np.zeros((366, 960, 3), dtype=np.uint8)
    for shape, tiled in ((None, 0), (PersonShape(), 1)):
        detector = _Slots(full=False, found=[Detection(BBox(30, 30, 930, 330), 0.6, 0)])
        tiles = TiledDetector(detector, 300, TileParams(rows=1, only_crowds=True, crowd_shape=shape))
        tiles.detect(frame)
        assert tiles.tiled_passes == tiled


class _Slots:
    """Finds nobody; says whether its output slots were full of people."""

    slots = 10

    def __init__(self, full: bool, found: list[Detection] | None = None) -> None:
        self.full = full
        self.found = found or []
        self.runs = 0

    def detect(self, frame: Frame) -> list[Detection]:
        self.runs += 1
        return []

    def detect_counting(self, frame: Frame) -> tuple[list[Detection], bool]:
        self.runs += 1
        return list(self.found), self.full


def test_the_ssd_says_when_people_filled_its_slots(assets_dir: Path) -> None:
    """MOT20-08, first 20 frames: all 10 output slots of the COCO SSD are people on 18 of
    them; on vtest.avi's first 20 frames (7-9 people, and cars or bags in the other slots) never."""
    detector = build_person_detector(load_config(None, assets_dir=assets_dir))
    crowd = [detector.detect_counting(f)[1] for f in _first_frames(assets_dir / CROWD, 20)]
    street = [detector.detect_counting(f)[1] for f in _first_frames(assets_dir / "data/video/vtest.avi", 20)]
    assert (sum(crowd), sum(street)) == (CROWDED_20, 0)


CROWDED_20 = 18


class _FindsNothing:
    """Only the tile geometry is under test here; the detector itself is tested on real frames below."""

    def detect(self, frame: Frame) -> list[Detection]:
        return []


def _first_frames(path: Path, count: int) -> list[np.ndarray]:  # type: ignore[type-arg]
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < count:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    return frames


def test_tiles_find_more_of_the_crowd(assets_dir: Path) -> None:
    """MOT20-08, first 20 frames: one whole-frame pass finds 106 boxes, the whole frame plus 4
    tiles 344 (the crowd box of each frame included; the person-box filter drops it later)."""
    config = load_config(None, assets_dir=assets_dir)
    plain = build_person_detector(config)
    tiled = TiledDetector(plain, 300, TileParams(rows=1))
    frames = _first_frames(assets_dir / CROWD, 20)
    whole = sum(len(plain.detect(f)) for f in frames)
    with_tiles = sum(len(tiled.detect(f)) for f in frames)
    assert (whole, with_tiles) == (WHOLE_20, TILED_20)


def test_the_config_wraps_the_detector(assets_dir: Path) -> None:
    off = build_vision_stack(load_config(None, assets_dir=assets_dir, tiles={"rows": 0}))
    assert not isinstance(off.person_detector, TiledDetector)
    on = build_vision_stack(load_config(None, assets_dir=assets_dir, tiles={"rows": 1}))
    assert isinstance(on.person_detector, TiledDetector)
    assert on.person_detector.model is not None


WHOLE_20 = 106
TILED_20 = 344


def test_the_agents_analyzer_tiles_a_whole_frame_pass(assets_dir: Path) -> None:
    """The analyzer the runtime builds: the first frame of MOT20-08 (motion unknown, so a
    whole-frame pass) gives more people with `[tiles] rows = 1` than without, and no box over half
    the frame either way (the person-box filter runs after the tiles are merged)."""
    frame = _first_frames(assets_dir / CROWD, 1)[0]
    found = []
    for rows in (0, 1):
        config = load_config(None, assets_dir=assets_dir, inference={"workers": 1}, tiles={"rows": rows})
        analyzer = build_analyzers(config, None)[0][0]
        analysis = analyzer.analyze(SourceFrame(0, frame, datetime.now(UTC), 0.0), [], None)
        assert analysis.person_passes == 1
        areas = analysis.boxes_tlwh[:, 2] * analysis.boxes_tlwh[:, 3]
        assert (areas <= 0.5 * frame.shape[0] * frame.shape[1]).all()
        found.append(len(analysis.boxes_tlwh))
    assert found[1] > found[0]
