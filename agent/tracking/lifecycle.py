"""What the tracker tells the rest of the agent after each frame: plain, immutable data.

`TrackEvent` is a lifecycle change (the agent turns it into MQTT events); `TrackView` is a read-only
snapshot of one live track; `TrackUpdate` bundles both for one frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

TrackStateName = Literal["tentative", "confirmed"]
EventKind = Literal["confirmed", "lost", "refound", "deleted"]


@dataclass(frozen=True, slots=True)
class TrackView:
    """One live track after a frame. `tlwh` is the filtered box (top-left x, y, width, height).

    `detection_index` is the row of this frame's input matched to the track, None when it missed.
    """

    track_id: int
    tlwh: npt.NDArray[np.float64]
    state: TrackStateName
    hits: int
    age: int
    time_since_update: int
    detection_index: int | None

    @property
    def is_confirmed(self) -> bool:
        return self.state == "confirmed"


@dataclass(frozen=True, slots=True)
class TrackEvent:
    """A lifecycle change of a confirmed track.

    confirmed: reached n_init hits. lost: missed a frame (once, when it starts missing).
    refound: matched again after being lost. deleted: removed after max_age misses.
    `frame_index` is the tracker's own frame counter (1 for the first update).
    """

    kind: EventKind
    track_id: int
    tlwh: npt.NDArray[np.float64]
    age: int
    hits: int
    frame_index: int


@dataclass(frozen=True, slots=True)
class TrackUpdate:
    frame_index: int
    tracks: list[TrackView] = field(default_factory=list)
    events: list[TrackEvent] = field(default_factory=list)

    def confirmed_tracks(self, updated_only: bool = True) -> list[TrackView]:
        """Confirmed tracks, by default only those matched to a detection this frame (what SORT reports)."""
        return [
            t
            for t in self.tracks
            if t.state == "confirmed" and (not updated_only or t.time_since_update == 0)
        ]
