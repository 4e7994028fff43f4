"""Which part of each frame the person detector looks at, and when.

Per frame, from the motion mask and the live tracks of the previous frame:
- motion unknown (first frame, new frame size, scene change) or a periodic full pass due: the
  detector runs once on the whole frame;
- otherwise it runs on detector-sized regions around motion and around live tracks that moved,
  missed or are still tentative;
- a confirmed track that was matched on its last frame and has no motion over it is "still": it
  is checked (a region around it) every `still_check_every` frames and held (its last box is
  reported again) in between, so a person standing still keeps their track at a fraction of the
  cost;
- a person found where no track was (a newcomer) is looked for again on the next
  `newcomer_frames` frames, whatever the motion says: the tracker needs a few hits in a row to
  confirm a track, and with frames in flight the tracks the scheduler sees lag a frame or two;
- nothing moving and no track due: the detector does not run at all.
On frames shorter than `regions_min_height` regions gain too little resolution to pay for several
detector runs: whatever needs a look gets one full-frame pass instead.

Shared by every inference worker (one motion background per camera), hence the lock: frames may
reach it slightly out of order, which a running-average background does not mind.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.vision.motion import Motion, MotionDetector, MotionParams
from agent.vision.regions import Region, RegionPlan, cut_by_region, merge_detections, plan_regions, to_frame
from agent.vision.types import BBox, Detection, Frame, PersonDetector

# Share of a track's box that motion must cover for the track to count as moving.
MOVING_SHARE = 0.1
# A detection overlapping every known track less than this is someone new.
NEWCOMER_IOU = 0.3


@dataclass(frozen=True, slots=True)
class ScheduleParams:
    motion: bool = True
    regions: bool = True
    regions_min_height: int = 720
    # Detector input side (300 for the COCO SSD): the smallest region.
    region_size: int = 300
    max_regions: int = 4
    # A full-frame pass at least every this many frames (0: only when motion is unknown).
    full_frame_every: int = 50
    # A still track is checked every this many frames (1: every frame, i.e. never held).
    still_check_every: int = 25
    # Frames a newcomer's box stays a region to look at (tracker n_init + frames in flight).
    newcomer_frames: int = 5
    motion_params: MotionParams = field(default_factory=MotionParams)


@dataclass(frozen=True, slots=True)
class TrackBox:
    """A live track as the previous frame left it."""

    track_id: int
    box: BBox
    confirmed: bool
    # Matched to a detection on its last frame (else it is lost and must be searched for).
    updated: bool


@dataclass(frozen=True, slots=True)
class FramePlan:
    plan: RegionPlan
    # Indices (into the tracks given) of still tracks whose last box stands for this frame.
    held: tuple[int, ...]
    motion: Motion
    reason: str


class DetectionScheduler:
    def __init__(self, params: ScheduleParams) -> None:
        self.params = params
        self._motion = MotionDetector(params.motion_params) if params.motion else None
        self._last_full: int | None = None
        # (frame index, box) of recent detections that matched no track.
        self._newcomers: list[tuple[int, BBox]] = []
        self._lock = threading.Lock()

    def record(self, frame_index: int, detections: Sequence[BBox], tracks: Sequence[TrackBox]) -> None:
        """Remember this frame's detections that overlap no known track (someone new)."""
        fresh = [
            (frame_index, box) for box in detections if all(box.iou(t.box) < NEWCOMER_IOU for t in tracks)
        ]
        with self._lock:
            horizon = frame_index - self.params.newcomer_frames
            self._newcomers = [(i, b) for i, b in self._newcomers if i > horizon] + fresh

    def plan(self, frame_index: int, frame: Frame, tracks: Sequence[TrackBox]) -> FramePlan:
        with self._lock:
            return self._plan(frame_index, frame, tracks)

    def _plan(self, frame_index: int, frame: Frame, tracks: Sequence[TrackBox]) -> FramePlan:
        p = self.params
        height, width = frame.shape[:2]
        motion = self._motion.update(frame) if self._motion is not None else Motion((), known=False)
        due = p.full_frame_every > 0 and (
            self._last_full is None or frame_index - self._last_full >= p.full_frame_every
        )
        if not motion.known or due:
            self._last_full = frame_index if self._last_full is None else max(self._last_full, frame_index)
            reason = "motion unknown" if not motion.known else "periodic"
            return FramePlan(RegionPlan(full_frame=True), (), motion, reason)
        wanted: list[BBox] = list(motion.boxes)
        # A newcomer the tracks now know about is looked after as a track.
        self._newcomers = [
            (i, b) for i, b in self._newcomers if all(b.iou(t.box) < NEWCOMER_IOU for t in tracks)
        ]
        wanted += [b for i, b in self._newcomers if 0 < frame_index - i <= p.newcomer_frames]
        held: list[int] = []
        for i, track in enumerate(tracks):
            still = track.confirmed and track.updated and not motion.overlaps(track.box, MOVING_SHARE)
            # All still tracks are due on the same frames, so their regions share detector runs.
            if still and p.still_check_every > 1 and frame_index % p.still_check_every:
                held.append(i)
            else:
                wanted.append(track.box)
        if not wanted:
            return FramePlan(RegionPlan(full_frame=False), tuple(held), motion, "still")
        if not (p.regions and height >= p.regions_min_height):
            # One pass over the whole frame sees the still tracks too: none is held.
            return FramePlan(RegionPlan(full_frame=True), (), motion, "small frame")
        plan = plan_regions((width, height), wanted, min_side=p.region_size, max_regions=p.max_regions)
        if plan.full_frame:
            return FramePlan(plan, (), motion, "too many regions")
        return FramePlan(plan, tuple(held), motion, "regions")


def run_plan(detector: PersonDetector, frame: Frame, plan: RegionPlan) -> list[Detection]:
    """The detector on the whole frame or on each region (boxes merged, in frame pixels)."""
    if plan.full_frame:
        return detector.detect(frame)
    if not plan.regions:
        return []
    height, width = frame.shape[:2]
    found: list[tuple[Detection, bool]] = []
    for region in plan.regions:
        crop = frame[region.y1 : region.y2, region.x1 : region.x2]
        for detection in detector.detect(crop):
            mapped = to_frame(detection, region)
            found.append((mapped, cut_by_region(mapped.box, region, (width, height))))
    return merge_detections(found)


__all__ = ["DetectionScheduler", "FramePlan", "Region", "ScheduleParams", "TrackBox", "run_plan"]
