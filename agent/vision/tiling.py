"""Tiles: the person detector on overlapping squares of a big frame as well as on the whole frame.

A whole-frame pass shrinks a 960x540 frame to the SSD's 300x300 input, so a 60 px tall person
becomes 33 px tall, and the COCO SSD misses most people that small (docs/detection.md). Regions
(agent/vision/regions.py) only help where something moved, and a moving camera makes motion
everywhere, so every frame falls back to whole-frame passes. `TiledDetector` wraps the detector:
an image whose long side is at least `min_scale` detector inputs (a whole frame, not a region
crop) is
also cut into `rows` rows of square tiles overlapping by `overlap`, each run at (close to) the
detector's own size, and the boxes of all passes are merged as regions are: a box cut by a tile's
edge gives way to the whole one seen by the full pass or a neighbouring tile. Tiles are for small
people: a tile's box covering more than `MAX_TILE_SHARE` of the tile is left to the whole-frame
pass, which sees anyone that big well; on the MOT20-08 crowd clip such boxes are the crowd called
one person again, at the scale of a tile (bench.pipeline_video: the largest box kept fell from 36 %
of the frame to the size of a person).

With `only_crowds` the tiles run only after a whole-frame pass that filled every output slot of
the model with people (`SsdPostprocessDetector.detect_counting`): the SSD reports 10 boxes, so a
crowd of 150 can never give more than 10 people a pass, while a scene the whole frame sees fully
pays nothing. On MOT20-08 every slot is a person on 109 of 127 frames; on vtest.avi (at most 9
people a frame, the other slots cars or bags) on none, on MOT17-13 on 2 of 750. Once tiled, the
passes stay tiled while the tiles find at least as many people as the slots hold: a crowd whose
tiles stop for a frame (8 or 9 people and a bag in the slots) loses its tracks' hits
(docs/detection.md#tiles). With `crowd_shape`, a whole pass holding a box no person could make (the
crowd called one person, which the person-box filter drops later) is a crowd too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from agent.vision.person_boxes import PersonShape, plausible_people
from agent.vision.regions import Region, cut_by_region, merge_detections, to_frame
from agent.vision.types import Detection, Frame, PersonDetector

# Largest share of a tile one of its boxes may cover (see the module docstring).
MAX_TILE_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class TileParams:
    # Rows of square tiles; 0 switches tiling off.
    rows: int = 1
    # Share of a tile's side that neighbouring tiles overlap (a person cut by one is whole in the other).
    overlap: float = 0.25
    # Images whose long side is under this many detector inputs are not tiled: a region crop is
    # already at the detector's size.
    min_scale: float = 1.5
    # Tile only when the whole-frame pass was full of people (see the module docstring).
    only_crowds: bool = False
    # With only_crowds, a whole-frame pass holding a box no person could make (the crowd called one
    # person) is a crowd too; None = only full slots tell.
    crowd_shape: PersonShape | None = None

    def __post_init__(self) -> None:
        if self.rows < 0 or not 0.0 <= self.overlap < 1.0 or self.min_scale <= 0.0:
            raise ValueError(f"bad tile parameters {self}")


def tile_regions(frame_size: tuple[int, int], rows: int, overlap: float) -> tuple[Region, ...]:
    """Square tiles in `rows` rows covering the frame, neighbours overlapping by `overlap` of a side."""
    width, height = frame_size
    if rows <= 0:
        return ()
    # `rows` tiles of side s with overlap o cover s * (rows - (rows - 1) * o) = height.
    side = min(width, height, math.ceil(height / (rows - (rows - 1) * overlap)))
    columns = max(1, math.ceil((width - side * overlap) / (side * (1 - overlap))))
    xs = _starts(width, side, columns)
    ys = _starts(height, side, rows)
    return tuple(Region(x, y, x + side, y + side) for y in ys for x in xs)


def _starts(length: int, side: int, count: int) -> list[int]:
    if count <= 1 or length <= side:
        return [max(0, (length - side) // 2)]
    step = (length - side) / (count - 1)
    return [round(i * step) for i in range(count)]


@runtime_checkable
class SlotCountingDetector(Protocol):
    """A person detector that also tells whether people filled all of its output slots."""

    def detect(self, frame: Frame) -> list[Detection]: ...

    def detect_counting(self, frame: Frame) -> tuple[list[Detection], bool]: ...

    @property
    def slots(self) -> int: ...


class TiledDetector:
    """A person detector that also looks at tiles of big images (see the module docstring)."""

    def __init__(self, detector: PersonDetector, input_side: int, params: TileParams) -> None:
        self.detector = detector
        self.input_side = input_side
        self.params = params
        # Whole-frame passes that were tiled, and all of them (for benches and the status).
        self.tiled_passes = 0
        self.whole_passes = 0
        # The last tiled pass found a crowd: keep tiling (see the module docstring).
        self._in_crowd = False
        if params.only_crowds and not isinstance(detector, SlotCountingDetector):
            raise TypeError(f"{type(detector).__name__} cannot tell a crowd (no detect_counting)")

    @property
    def model(self) -> object:
        # The runtime reads the wrapped model's input size and backend through this.
        return getattr(self.detector, "model", None)

    def tiles(self, frame_size: tuple[int, int]) -> tuple[Region, ...]:
        width, height = frame_size
        if self.params.rows <= 0 or max(width, height) < self.params.min_scale * self.input_side:
            return ()
        return tile_regions(frame_size, self.params.rows, self.params.overlap)

    def detect(self, frame: Frame) -> list[Detection]:
        height, width = frame.shape[:2]
        tiles = self.tiles((width, height))
        if not tiles:
            return self.detector.detect(frame)
        self.whole_passes += 1
        if self.params.only_crowds and isinstance(self.detector, SlotCountingDetector):
            whole, full = self.detector.detect_counting(frame)
            if not (full or self._in_crowd or self._crowd_box(whole, (width, height))):
                return whole
        else:
            whole = self.detector.detect(frame)
        self.tiled_passes += 1
        merged = self._with_tiles(frame, whole, tiles)
        if isinstance(self.detector, SlotCountingDetector):
            self._in_crowd = len(merged) >= self.detector.slots
        return merged

    def _crowd_box(self, whole: list[Detection], frame_size: tuple[int, int]) -> bool:
        shape = self.params.crowd_shape
        return shape is not None and len(plausible_people(whole, frame_size, shape)) < len(whole)

    def _with_tiles(self, frame: Frame, whole: list[Detection], tiles: tuple[Region, ...]) -> list[Detection]:
        height, width = frame.shape[:2]
        found: list[tuple[Detection, bool]] = [(d, False) for d in whole]
        for tile in tiles:
            crop = frame[tile.y1 : tile.y2, tile.x1 : tile.x2]
            limit = MAX_TILE_SHARE * (tile.x2 - tile.x1) * (tile.y2 - tile.y1)
            for detection in self.detector.detect(crop):
                if detection.box.area > limit:
                    continue
                mapped = to_frame(detection, tile)
                found.append((mapped, cut_by_region(mapped.box, tile, (width, height))))
        return merge_detections(found)
