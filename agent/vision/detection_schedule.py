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
- nothing moving and no track due: the detector does not run at all;
- coasting (`coast_frames` k > 0): when every live track is confirmed with `coast_min_hits`
  hits, none has just missed a pass, and no motion lies away from the tracks, the detector skips
  the frame and the tracks found by their last pass are held on their predicted boxes, for at
  most k frames in a row. The detector runs again as soon as one of those fails: new motion away
  from live tracks, a track that missed the last pass it has seen (once: a track lost for longer
  is looked for by the regular passes), an unconfirmed or young track, k frames coasted. The
  seed loop coasted 2 frames in 3 whatever happened; docs/benchmarks.md#detection-schedule has
  the held-out choice of k and the triggers.
On frames shorter than `regions_min_height` regions gain too little resolution to pay for several
detector runs: whatever needs a look gets one full-frame pass instead.

Shared by every inference worker (one motion background per camera), hence the lock: frames may
reach it slightly out of order, which a running-average background does not mind.
"""

from __future__ import annotations

import threading
from collections import deque
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
    # Frames in a row the detector may skip while every track coasts (0: never coast).
    coast_frames: int = 0
    # Hits a confirmed track needs before it may coast (its velocity is known by then).
    coast_min_hits: int = 5
    # Frames a track's hint may lag the frame planned (frames in flight) on top of coast_frames.
    coast_lag: int = 2
    # Share of each motion box the (grown) track boxes must cover; less is new motion.
    coast_motion_cover: float = 0.5
    # Track boxes are grown by this share of their height before covering motion.
    coast_margin: float = 0.25
    # A track that just missed a pass gets the detector on the next frame (False: the next regular
    # pass looks for it).
    coast_recheck_missed: bool = True
    motion_params: MotionParams = field(default_factory=MotionParams)


@dataclass(frozen=True, slots=True)
class TrackBox:
    """A live track as the previous frame left it."""

    track_id: int
    box: BBox
    confirmed: bool
    # Matched to a detection on its last frame (else it is lost and must be searched for).
    updated: bool
    hits: int = 0
    # Last frame a detector pass (not a held box) found the track; -1: unknown (never coasts).
    detected_at: int = -1
    # The frame the hint describes (the tracker's last frame when the plan was made).
    seen_at: int = -1
    # `box` moved on to the planned frame by the track's velocity (None: not known).
    predicted: BBox | None = None


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
        # Frames planned with at least one detector pass, most recent last (for coasting).
        self._passes: deque[int] = deque(maxlen=64)
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
            planned = self._plan(frame_index, frame, tracks)
            if planned.plan.passes:
                self._passes.append(frame_index)
            return planned

    def _coasting(
        self, frame_index: int, motion: Motion, tracks: Sequence[TrackBox]
    ) -> tuple[int, ...] | None:
        """The tracks to hold on their predicted boxes when the frame may coast, else None (the
        triggers of the module docstring)."""
        p = self.params
        if p.coast_frames <= 0 or not tracks or not motion.known or not self._passes:
            return None
        if frame_index - self._passes[-1] > p.coast_frames:
            return None
        held: list[int] = []
        for i, track in enumerate(tracks):
            if not track.confirmed or track.hits < p.coast_min_hits:
                return None
            seen = [done for done in self._passes if done <= track.seen_at]
            if track.detected_at >= (seen[-1] if seen else 0):
                # Found by the last pass its hint has seen: held, unless that is too long ago.
                if frame_index - track.detected_at > p.coast_frames + p.coast_lag:
                    return None
                held.append(i)
            elif p.coast_recheck_missed and (len(seen) < 2 or track.detected_at >= seen[-2]):
                # Just missed a pass: occluded, gone, or badly predicted; look again at once.
                return None
            # Else lost for longer: not held (it keeps missing), and the next pass looks for it.
        grown = [_grow(t.predicted or t.box, p.coast_margin) for t in tracks]
        if any(_covered(m, grown) < p.coast_motion_cover for m in motion.boxes):
            return None
        return tuple(held)

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
        coasting = self._coasting(frame_index, motion, tracks)
        if coasting is not None:
            return FramePlan(RegionPlan(full_frame=False), coasting, motion, "coast")
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


def _grow(box: BBox, share: float) -> BBox:
    pad = share * box.height
    return BBox(box.x1 - pad, box.y1 - pad, box.x2 + pad, box.y2 + pad)


def _covered(box: BBox, covers: Sequence[BBox]) -> float:
    """Share of `box` inside the union of `covers` (overlaps between covers counted once, capped)."""
    return min(1.0, sum(box.intersection_over_self(c) for c in covers))


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
