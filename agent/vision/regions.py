"""Detector-sized regions of an HD frame, and merging what the detector found in them.

Shrinking a 1920x1080 frame to a 300x300 detector input makes a 100 px tall person 28 px tall,
too small for the COCO SSD. Cropping a square region around where something moved (or where a
person was last seen) and running the detector on that region at (close to) its native input
size keeps the person's pixels. This module is the pure geometry: which squares to crop, and how
boxes from several (overlapping) squares become one list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.vision.types import BBox, Detection


@dataclass(frozen=True, slots=True)
class Region:
    """A square crop of the frame, in integer frame pixels (x2, y2 exclusive)."""

    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def side(self) -> int:
        return max(self.x2 - self.x1, self.y2 - self.y1)

    def box(self) -> BBox:
        return BBox(float(self.x1), float(self.y1), float(self.x2), float(self.y2))

    def contains(self, box: BBox, margin: float = 0.0) -> bool:
        """Is `box` inside this region, at least `margin` pixels from every edge that is not also
        a frame edge (checked by the caller through `margin` alone: edges shared with the frame
        are treated like inner ones)?"""
        return (
            box.x1 >= self.x1 + margin
            and box.y1 >= self.y1 + margin
            and box.x2 <= self.x2 - margin
            and box.y2 <= self.y2 - margin
        )


def square_region(box: BBox, frame_size: tuple[int, int], min_side: int, grow: float) -> Region:
    """The square around `box` (grown by `grow` of its longer side), at least `min_side`, shifted
    to lie inside the frame; as tall as the frame at most (the caller treats that as "too big")."""
    width, height = frame_size
    side = max(float(min_side), max(box.width, box.height) * (1.0 + grow))
    side_i = int(min(round(side), width, height))
    cx, cy = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
    x1 = round(min(max(cx - side_i / 2, 0.0), float(width - side_i)))
    y1 = round(min(max(cy - side_i / 2, 0.0), float(height - side_i)))
    return Region(x1, y1, x1 + side_i, y1 + side_i)


@dataclass(frozen=True, slots=True)
class RegionPlan:
    """What to run the detector on for one frame: a full-frame pass, regions, or nothing."""

    full_frame: bool
    regions: tuple[Region, ...] = ()

    @property
    def passes(self) -> int:
        return 1 if self.full_frame else len(self.regions)


def plan_regions(
    frame_size: tuple[int, int],
    boxes: Sequence[BBox],
    *,
    min_side: int,
    grow: float = 0.25,
    max_regions: int = 4,
    max_side_share: float = 0.9,
) -> RegionPlan:
    """Square regions covering every box in `boxes` (motion blobs and live tracks).

    Boxes are placed largest first; a box already inside a planned region (with some margin) adds
    nothing. When a box needs a region nearly as tall as the frame, or more than `max_regions`
    regions would be needed, one full-frame pass is cheaper and sees as much: the plan says so.
    """
    if not boxes:
        return RegionPlan(full_frame=False)
    width, height = frame_size
    regions: list[Region] = []
    for box in sorted(boxes, key=lambda b: -b.area):
        if any(r.contains(box, margin=0.05 * r.side) for r in regions):
            continue
        region = square_region(box, frame_size, min_side, grow)
        if region.side >= max_side_share * min(width, height):
            return RegionPlan(full_frame=True)
        regions.append(region)
        if len(regions) > max_regions:
            return RegionPlan(full_frame=True)
    return RegionPlan(full_frame=False, regions=tuple(regions))


def to_frame(detection: Detection, region: Region) -> Detection:
    """A detection found in `region`'s crop, in frame pixels."""
    b = detection.box
    box = BBox(b.x1 + region.x1, b.y1 + region.y1, b.x2 + region.x1, b.y2 + region.y1)
    return Detection(box, detection.score, detection.class_id)


def cut_by_region(box: BBox, region: Region, frame_size: tuple[int, int], tolerance: float = 2.0) -> bool:
    """Does `box` touch an edge of `region` that is not an edge of the frame (the object may go on
    beyond the crop, so the box may be only part of it)?"""
    width, height = frame_size
    return (
        (region.x1 > 0 and box.x1 <= region.x1 + tolerance)
        or (region.y1 > 0 and box.y1 <= region.y1 + tolerance)
        or (region.x2 < width and box.x2 >= region.x2 - tolerance)
        or (region.y2 < height and box.y2 >= region.y2 - tolerance)
    )


def merge_detections(
    found: Sequence[tuple[Detection, bool]], *, iou_threshold: float = 0.5, cover_threshold: float = 0.7
) -> list[Detection]:
    """One list from detections of overlapping regions, best first.

    `found` pairs each detection (frame pixels) with whether a region edge cut it. Whole boxes
    win over cut ones, then higher scores. A box is dropped when it overlaps a kept one of the same
    class by more than `iou_threshold`, or when it is a cut box lying mostly (`cover_threshold` of
    its area) inside a kept one: the same person seen whole in one region and halved in another.
    """
    order = sorted(range(len(found)), key=lambda i: (found[i][1], -found[i][0].score))
    kept: list[Detection] = []
    for i in order:
        detection, cut = found[i]
        duplicate = False
        for other in kept:
            if other.class_id != detection.class_id:
                continue
            if detection.box.iou(other.box) > iou_threshold or (
                cut and detection.box.intersection_over_self(other.box) > cover_threshold
            ):
                duplicate = True
                break
        if not duplicate:
            kept.append(detection)
    return sorted(kept, key=lambda d: -d.score)
