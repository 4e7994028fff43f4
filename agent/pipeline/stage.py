"""The tracking half of a frame: tracker, identity voting and event building (`TrackingStage.step`).

It runs on the event loop, overlapping the next frame's inference; pure Python and NumPy. It also
keeps the per-track face-check schedule the analyzer reads (`TrackingStage.hints`): unidentified
tracks every frame, identified ones (and strangers: 3 x min_votes faces, all unknown) every
`face_recheck_every` frames. A hint also carries the track's box predicted to the frame it is for
(frames in flight, coasting), from a smoothed per-frame velocity of the tracker's boxes.

Each frame is first checked for a scene cut against the one before it (in frame order, which is
why here and not in the analyzer's workers); at a cut the tracker ends every track no face
carries over (docs/scene-cuts.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from agent.classifier.labels import UNKNOWN
from agent.events.builder import EventBuilder
from agent.events.clock import FrameStamp
from agent.events.schema import EventBase
from agent.identity.voting import IdentityResolver
from agent.pipeline.analyzer import Analysis, TrackHint
from agent.pipeline.enrolment import FaceKeeper, KeptFace
from agent.tracking import Tracker, TrackerParams, TrackView
from agent.vision.scene_cut import SceneCutDetector, SceneCutParams

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
        cuts: SceneCutDetector | None = None,
        keeper: FaceKeeper | None = None,
    ) -> None:
        self.tracker = tracker
        # Frames are checked here, in order, because a cut is a change from the frame before.
        self.cuts = cuts
        # Cuts seen since start and the frame of the last one (a count, not a list: runs are long).
        self.cuts_seen = 0
        self.last_cut: int | None = None
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
        # Enrolment (docs/enrolment.md): the best faces of each track, handed out when it ends.
        self.keeper = keeper
        self._kept: list[KeptFace] = []

    @classmethod
    def from_config(cls, config: AgentConfig) -> TrackingStage:
        """A fresh stage (no tracks, no votes) for `config`'s device, tracker and identity settings."""
        cut = config.scene_cut
        return cls(
            Tracker(TrackerParams.from_config(config.tracker, config.detection)),
            IdentityResolver(config.identity.min_votes, config.identity.min_confidence),
            EventBuilder(config.device_id),
            config.pipeline.face_recheck_every,
            SceneCutDetector(SceneCutParams(cut.min_colour_change, cut.max_layout_correlation))
            if cut.enabled
            else None,
            FaceKeeper(
                config.enrolment.faces_per_track,
                config.enrolment.low_confidence,
                config.enrolment.min_frame_gap,
            )
            if config.enrolment.enabled
            else None,
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
        cut = self.cuts is not None and self.cuts.check(analysis.frame.image).cut
        fresh = len(analysis.boxes_tlwh) - analysis.held
        rows = slice(None)
        if cut:
            self.cuts_seen += 1
            self.last_cut = stamp.index
            # Held and coasted rows are the old shot's boxes: on the new shot they would start
            # tracks where nobody is. Velocities were measured on the old shot too.
            rows = slice(0, fresh)
            self._velocity.clear()
        features, faces = analysis.features, analysis.face_features
        update = self.tracker.update(
            analysis.boxes_tlwh[rows],
            analysis.scores[rows],
            None if features is None else features[rows],
            None if faces is None else faces[rows],
            scene_cut=cut,
        )
        t1 = time.perf_counter()
        events: list[EventBase] = []
        builder, resolver = self.builder, self.resolver
        builder.observe(update.tracks, stamp)
        for life in update.events:
            events.extend(builder.lifecycle(life, stamp))
            if life.kind == "deleted":
                self._end_faces(life.track_id)
                for change in resolver.remove(life.track_id):
                    events.extend(builder.identity(change, stamp))
        det_to_track = {t.detection_index: t.track_id for t in update.tracks if t.detection_index is not None}
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
        self._observe_faces(analysis, det_to_track, live, stamp)
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

    def take_kept_faces(self) -> list[KeptFace]:
        """The faces of the tracks that ended since the last call, worth naming (enrolment)."""
        kept, self._kept = self._kept, []
        return kept

    def _end_faces(self, track_id: int) -> None:
        if self.keeper is not None:
            self._kept.extend(self.keeper.finish(track_id, self.resolver.label_of(track_id)))

    def _observe_faces(
        self, analysis: Analysis, det_to_track: dict[int, int], live: list[int], stamp: FrameStamp
    ) -> None:
        keeper = self.keeper
        if keeper is None:
            return
        for det_index, candidate in analysis.candidates.items():
            track_id = det_to_track.get(det_index)
            if track_id is None:
                continue
            pred = analysis.predictions.get(det_index)
            keeper.observe(
                track_id,
                candidate,
                frame_index=stamp.index,
                media_s=stamp.media_s,
                wall_ts=stamp.shown.isoformat(),
                confidence=pred.confidence if pred is not None and pred.label != UNKNOWN else None,
            )
        # Tracks the tracker dropped without a "deleted" event (tentative ones) end here too.
        live_set = set(live)
        for track_id in keeper.track_ids():
            if track_id not in live_set:
                self._end_faces(track_id)

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
        if self.keeper is not None:
            for track_id in self.keeper.track_ids():
                self._end_faces(track_id)
        events = self.builder.end_all(stamp)
        self.resolver.retain([])
        self._tracks = []
        return events
