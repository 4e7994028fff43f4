"""Person boxes no person could make, dropped between the person detector and the tracker.

The COCO SSD sometimes calls a whole crowd one "person": on the MOT20-08 crowd clip (960x366) it
returns a box over 90-96 % of the frame, 2.8 times as wide as it is tall, and that box became a
track over everyone for the whole clip (issue 20). A box is implausible when its height over width
is below `min_aspect` (far wider than any standing, walking or close-up person), above
`max_aspect`, or when it covers more than `max_frame_share` of the frame.

Measured (bench/person_boxes.py, docs/detection.md#impossible-person-boxes): people in the ground
truth of the four shared MOT15 sequences are never wider than tall (lowest height/width 0.91), the
close-ups of hamilton_clip.mp4 reach 0.58 while covering up to 88 % of the frame, and the crowd
boxes of MOT20-08 stay at or below 0.38; `min_aspect` is the geometric mean of 0.58 and 0.38.
So the shape, not the share of the frame, tells them apart:
the frame-share and upper aspect checks are off by default (a close-up fills the frame; a person
cut by the frame's edge is a sliver) and stay available for fixed cameras where they hold.

On a 4:3 frame the crowd box is not wide enough to tell: on vtest.avi (768x576) the SSD returns 47
boxes over 64-72 % of the frame, 0.57-0.65 tall per wide, as close-ups are. What gives them away is
what they hold: a box that holds `max_people_inside` or more other person boxes, each mostly
(`INSIDE_SHARE`) inside it and at most `INSIDE_AREA` of its size, is a group, not a person. On
vtest that drops 48 boxes and not one that matched a ground-truth person; on hamilton_clip.mp4's
close-ups it drops none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.vision.types import BBox, Detection

# A box counts as inside a larger one when this share of it lies inside, and it is this small
# relative to the larger one (a person, not the same person found twice).
INSIDE_SHARE = 0.8
INSIDE_AREA = 0.25


@dataclass(frozen=True, slots=True)
class PersonShape:
    """What a person box may look like, relative to the frame it was found in."""

    # Height over width below this is wider than any person seen upright (0 switches it off).
    min_aspect: float = 0.47
    # Height over width above this is thinner than a person (0 switches it off).
    max_aspect: float = 0.0
    # Largest share of the frame's area one person may cover (1.0 switches it off).
    max_frame_share: float = 1.0
    # A box holding this many smaller person boxes is a group (0 switches it off).
    max_people_inside: int = 2

    def __post_init__(self) -> None:
        if not 0.0 < self.max_frame_share <= 1.0:
            raise ValueError(f"max_frame_share {self.max_frame_share} must be in (0, 1]")
        if self.min_aspect < 0.0 or self.max_aspect < 0.0:
            raise ValueError("aspect bounds must be >= 0")
        if self.max_people_inside < 0:
            raise ValueError(f"max_people_inside {self.max_people_inside} must be >= 0")
        if self.max_aspect and self.max_aspect <= self.min_aspect:
            raise ValueError(f"aspect bounds [{self.min_aspect}, {self.max_aspect}] are empty")

    @property
    def checks_anything(self) -> bool:
        return (
            self.min_aspect > 0.0
            or self.max_aspect > 0.0
            or self.max_frame_share < 1.0
            or self.max_people_inside > 0
        )

    def allows(self, box: BBox, frame_size: tuple[int, int]) -> bool:
        """Could a person have made `box` in a frame of `frame_size` (width, height)?"""
        width, height = frame_size
        if box.width <= 0.0 or box.height <= 0.0:
            return False
        if box.area > self.max_frame_share * width * height:
            return False
        aspect = box.height / box.width
        return aspect >= self.min_aspect and (not self.max_aspect or aspect <= self.max_aspect)


def plausible_people(
    detections: Sequence[Detection], frame_size: tuple[int, int], shape: PersonShape
) -> list[Detection]:
    """The detections a person could have made, in their order."""
    kept = [d for d in detections if shape.allows(d.box, frame_size)]
    if shape.max_people_inside <= 0:
        return kept
    return [d for d in kept if _people_inside(d.box, kept) < shape.max_people_inside]


def _people_inside(box: BBox, detections: Sequence[Detection]) -> int:
    return sum(
        1
        for other in detections
        if other.box is not box
        and other.box.area <= INSIDE_AREA * box.area
        and other.box.intersection_over_self(box) >= INSIDE_SHARE
    )
