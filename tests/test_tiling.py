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
from agent.vision.tiling import TiledDetector, TileParams, tile_regions
from agent.vision.types import Detection, Frame

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
    off = build_vision_stack(load_config(None, assets_dir=assets_dir))
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
