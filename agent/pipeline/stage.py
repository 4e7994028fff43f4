"""The tracking half of a frame: tracker, identity voting and event building (`TrackingStage.step`).

It runs on the event loop, overlapping the next frame's inference; pure Python and NumPy. It also
keeps the per-track face-check schedule the analyzer reads (`TrackingStage.hints`): unidentified
tracks every frame, identified ones (and strangers: 3 x min_votes faces, all unknown) every
`face_recheck_every` frames. A hint also carries the track's box predicted to the frame it is for
(frames in flight, coasting), from a smoothed per-frame velocity of the tracker's boxes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from agent.events.builder import EventBuilder
from agent.events.clock import FrameStamp
from agent.events.schema import EventBase
from agent.identity.voting import IdentityResolver
from agent.pipeline.analyzer import Analysis, TrackHint
from agent.tracking import Tracker, TrackerParams, TrackView

if TYPE_CHECKING:
    from agent.config import AgentConfig

# Weight of the newest frame-to-frame box change in a track's smoothed velocity.
VELOCITY_SMOOTHING = 0.5
# A predicted box keeps at least this share of its width and height. Moving the size too scored
# better than moving the position alone on the tune half of vtest (docs/benchmarks.md).
MIN_PREDICTED_SIZE = 0.5


@dataclass(slots=True)
class StepResult:
    events: list[EventBase]
    tracks: list[TrackView]
    labels: dict[int, str]
    timings_ms: dict[str, float]


class TrackingStage:
    """Tracker + identity voting + event building; keeps the per-track face-check schedule."""

    def __init__(
        self,
        tracker: Tracker,
        resolver: IdentityResolver,
        builder: EventBuilder,
        face_recheck_every: int,
    ) -> None:
        self.tracker = tracker
        self.resolver = resolver
        self.builder = builder
        self.face_recheck_every = max(1, face_recheck_every)
        self._tracks: list[TrackView] = []
        self._last_face_check: dict[int, int] = {}
        # Last detection score per track: a held still track reports it again.
        self._scores: dict[int, float] = {}
        # Per track: last frame a detector pass (not a held box) found it, and the velocity of its
        # box in pixels per frame (tlwh).
        self._detected_at: dict[int, int] = {}
        self._velocity: dict[int, npt.NDArray[np.float64]] = {}
        # Index of the last frame stepped: tracks alive at the end of input end on it.
        self.last_index = 0

    @classmethod
    def from_config(cls, config: AgentConfig) -> TrackingStage:
        """A fresh stage (no tracks, no votes) for `config`'s device, tracker and identity settings."""
        return cls(
            Tracker(TrackerParams.from_config(config.tracker, config.detection)),
            IdentityResolver(config.identity.min_votes, config.identity.min_confidence),
            EventBuilder(config.device_id),
            config.pipeline.face_recheck_every,
        )

    @property
    def tracks(self) -> list[TrackView]:
        return list(self._tracks)

    def hints(self, frame_index: int) -> list[TrackHint]:
        """Which live tracks want a face look on `frame_index` (recorded as a check when due)."""
        out: list[TrackHint] = []
        for track in self._tracks:
            tid = track.track_id
            if not self.resolver.is_identified(tid) and not self.resolver.is_stranger(tid):
                needs = True
            else:
                last = self._last_face_check.get(tid, -(10**9))
                needs = frame_index - last >= self.face_recheck_every
            if needs:
                self._last_face_check[tid] = frame_index
            box = np.asarray(track.tlwh[:4], dtype=np.float64)
            ahead = max(0, frame_index - self.last_index)
            velocity = self._velocity.get(tid)
            predicted = box.copy()
            if velocity is not None:
                predicted += ahead * velocity
                # A shrinking box extrapolated over a few frames could reach zero height, which no
                # detection has: it shrinks to half its size at most.
                predicted[2:] = np.maximum(predicted[2:], MIN_PREDICTED_SIZE * box[2:])
            out.append(
                TrackHint(
                    tlwh=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                    predicted_tlwh=(
                        float(predicted[0]),
                        float(predicted[1]),
                        float(predicted[2]),
                        float(predicted[3]),
                    ),
                    needs_face=needs,
                    track_id=tid,
                    confirmed=track.is_confirmed,
                    updated=track.detection_index is not None,
                    score=self._scores.get(tid, 1.0),
                    hits=track.hits,
                    detected_at=self._detected_at.get(tid, -1),
                    seen_at=self.last_index,
                )
            )
        return out

    def step(self, analysis: Analysis, stamp: FrameStamp) -> StepResult:
        t0 = time.perf_counter()
        update = self.tracker.update(
            analysis.boxes_tlwh, analysis.scores, analysis.features, analysis.face_features
        )
        t1 = time.perf_counter()
        events: list[EventBase] = []
        builder, resolver = self.builder, self.resolver
        builder.observe(update.tracks, stamp)
        for life in update.events:
            events.extend(builder.lifecycle(life, stamp))
            if life.kind == "deleted":
                for change in resolver.remove(life.track_id):
                    events.extend(builder.identity(change, stamp))
        det_to_track = {t.detection_index: t.track_id for t in update.tracks if t.detection_index is not None}
        fresh = len(analysis.boxes_tlwh) - analysis.held
        for det, tid in det_to_track.items():
            if det < fresh:
                self._detected_at[tid] = stamp.index
        self._update_velocities(update.tracks, stamp.index)
        self._scores = {tid: float(analysis.scores[det]) for det, tid in det_to_track.items()}
        for det_index, pred in sorted(analysis.predictions.items()):
            track_id = det_to_track.get(det_index)
            if track_id is None:
                continue
            self._last_face_check[track_id] = stamp.index
            for change in resolver.observe(track_id, pred.label, pred.confidence):
                events.extend(builder.identity(change, stamp))
        live = [t.track_id for t in update.tracks]
        for change in resolver.retain(live):
            events.extend(builder.identity(change, stamp))
        events.extend(builder.sweep(live, stamp))
        live_set = set(live)
        for tid in [t for t in self._last_face_check if t not in live_set]:
            del self._last_face_check[tid]
        for tid in [t for t in self._detected_at if t not in live_set]:
            del self._detected_at[tid]
        for tid in [t for t in self._velocity if t not in live_set]:
            del self._velocity[tid]
        self._tracks = update.tracks
        self.last_index = stamp.index
        labels = {t.track_id: resolver.label_of(t.track_id) for t in update.tracks}
        t2 = time.perf_counter()
        return StepResult(
            events, update.tracks, labels, {"track_ms": (t1 - t0) * 1000, "identity_ms": (t2 - t1) * 1000}
        )

    def _update_velocities(self, tracks: list[TrackView], index: int) -> None:
        """Smoothed per-frame change of each track's box since the previous step."""
        gap = index - self.last_index
        if gap <= 0:
            return
        previous = {t.track_id: np.asarray(t.tlwh[:4], dtype=np.float64) for t in self._tracks}
        for track in tracks:
            before = previous.get(track.track_id)
            if before is None:
                continue
            step = (np.asarray(track.tlwh[:4], dtype=np.float64) - before) / gap
            old = self._velocity.get(track.track_id)
            self._velocity[track.track_id] = (
                step if old is None else VELOCITY_SMOOTHING * step + (1 - VELOCITY_SMOOTHING) * old
            )

    def finish(self, stamp: FrameStamp) -> list[EventBase]:
        """End of input: every live track ends (track_ended carries its label)."""
        events = self.builder.end_all(stamp)
        self.resolver.retain([])
        self._tracks = []
        return events
