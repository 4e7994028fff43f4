"""Turn tracker lifecycle and identity changes into the MQTT event payloads. Pure: no I/O, no clock.

The caller passes each frame's index and timestamps (`agent.events.clock.SourceClock` makes them);
events come back as drafts with `seq` 0 (the outbox numbers them). Rules:
- `track_started` when a track is confirmed (tentative tracks that die never reach subscribers);
- `identity` when a started track's identity is first established or changes, with why (`reason`);
  an identity settled while the track is still tentative is held back and sent right after its
  `track_started`;
- `track_ended` when a started track is deleted, or for every live track when the input ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt

from agent.classifier.labels import UNKNOWN
from agent.events.clock import FrameStamp
from agent.events.schema import EventBase, IdentityEvent, TrackEnded, TrackStarted
from agent.identity.voting import IdentityChange


class TrackLike(Protocol):
    """What the builder reads from the tracker's per-frame view of a track."""

    @property
    def track_id(self) -> int: ...
    @property
    def detection_index(self) -> int | None: ...


class TrackEventLike(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def track_id(self) -> int: ...
    @property
    def tlwh(self) -> Sequence[float] | npt.NDArray[np.float64]: ...


@dataclass(slots=True)
class _TrackRecord:
    first_seen: datetime
    last_seen: datetime
    first_media_s: float | None = None
    last_media_s: float | None = None
    frames: int = 0
    started: bool = False
    label: str | None = None
    pending_identity: IdentityChange | None = None


def _media(seconds: float | None) -> float | None:
    # Milliseconds are what a file's timestamps resolve; more digits would only be float noise.
    return None if seconds is None else round(max(0.0, seconds), 3)


def tlwh_to_xyxy(tlwh: Sequence[float] | npt.NDArray[np.float64]) -> list[float]:
    x, y, w, h = (float(v) for v in tlwh[:4])
    return [round(x, 1), round(y, 1), round(x + w, 1), round(y + h, 1)]


class EventBuilder:
    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        self._tracks: dict[int, _TrackRecord] = {}

    @property
    def live_track_ids(self) -> list[int]:
        return list(self._tracks)

    def _record(self, track_id: int, stamp: FrameStamp) -> _TrackRecord:
        """The track's record, created (first seen now) if the builder has not met it yet."""
        record = self._tracks.get(track_id)
        if record is None:
            record = self._tracks[track_id] = _TrackRecord(
                first_seen=stamp.shown,
                last_seen=stamp.shown,
                first_media_s=stamp.media_s,
                last_media_s=stamp.media_s,
            )
        return record

    def observe(self, tracks: Iterable[TrackLike], stamp: FrameStamp) -> None:
        """Book-keep a frame's tracks: a track is 'seen' on frames where it matched a detection."""
        for track in tracks:
            record = self._record(track.track_id, stamp)
            if track.detection_index is not None:
                record.frames += 1
                record.last_seen = stamp.shown
                record.last_media_s = stamp.media_s

    def lifecycle(self, event: TrackEventLike, stamp: FrameStamp) -> list[EventBase]:
        """Events for one tracker lifecycle event ('confirmed', 'deleted'; others are internal)."""
        if event.kind == "confirmed":
            record = self._record(event.track_id, stamp)
            if record.started:
                return []
            record.started = True
            out: list[EventBase] = [
                TrackStarted(
                    device=self.device_id,
                    ts=stamp.ts,
                    frame=stamp.index,
                    media_time=_media(stamp.media_s),
                    track_id=event.track_id,
                    bbox=tlwh_to_xyxy(event.tlwh),
                )
            ]
            if record.pending_identity is not None:
                pending, record.pending_identity = record.pending_identity, None
                out.extend(self.identity(pending, stamp))
            return out
        if event.kind == "deleted":
            return self.end(event.track_id, stamp)
        return []

    def identity(self, change: IdentityChange, stamp: FrameStamp) -> list[EventBase]:
        record = self._record(change.track_id, stamp)
        if not record.started:
            # Subscribers learn of a track from track_started; hold its identity until then.
            record.pending_identity = change if change.label != UNKNOWN else None
            record.label = None if change.label == UNKNOWN else change.label
            return []
        previous = record.label
        record.label = None if change.label == UNKNOWN else change.label
        if previous is None and record.label is None:
            return []
        return [
            IdentityEvent(
                device=self.device_id,
                ts=stamp.ts,
                frame=stamp.index,
                media_time=_media(stamp.media_s),
                track_id=change.track_id,
                label=change.label,
                confidence=change.confidence,
                votes=change.votes,
                previous_label=previous,
                reason=change.reason,
            )
        ]

    def end(self, track_id: int, stamp: FrameStamp) -> list[EventBase]:
        record = self._tracks.pop(track_id, None)
        if record is None or not record.started:
            return []
        return [
            TrackEnded(
                device=self.device_id,
                ts=stamp.ts,
                frame=stamp.index,
                media_time=_media(stamp.media_s),
                track_id=track_id,
                label=record.label,
                first_seen=record.first_seen,
                last_seen=record.last_seen,
                duration_s=round(max(0.0, (record.last_seen - record.first_seen).total_seconds()), 6),
                frames=record.frames,
                first_media_time=_media(record.first_media_s),
                last_media_time=_media(record.last_media_s),
            )
        ]

    def sweep(self, live_track_ids: Iterable[int], stamp: FrameStamp) -> list[EventBase]:
        """Close tracks the tracker no longer reports without having said 'deleted'."""
        live = set(live_track_ids)
        events: list[EventBase] = []
        for track_id in sorted(t for t in self._tracks if t not in live):
            events.extend(self.end(track_id, stamp))
        return events

    def end_all(self, stamp: FrameStamp) -> list[EventBase]:
        """The input ended: close every live track (in track id order)."""
        events: list[EventBase] = []
        for track_id in sorted(self._tracks):
            events.extend(self.end(track_id, stamp))
        return events
