"""When a frame happened, as events report it: its index, the agent's time and the time it shows.

Pure: the caller reads the clocks and passes the times in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class FrameStamp:
    """A frame's index and times. `ts`: when the agent handled it (the events' `ts`). `media_s`: its
    position in a video file (None for live sources). `seen`: the time the frame shows, on the
    source's clock (what first_seen/last_seen use); defaults to `ts`."""

    index: int
    ts: datetime
    media_s: float | None = None
    seen: datetime | None = None

    @property
    def shown(self) -> datetime:
        return self.seen if self.seen is not None else self.ts


@dataclass(slots=True)
class SourceClock:
    """Maps frames to `FrameStamp`s: video time for a file, the wall clock for a live source.

    A file's timeline is laid onto the wall clock at its first frame (`anchor` = that frame's
    wall-clock time minus its position), so first_seen/last_seen read as plausible times while
    their differences are exactly seconds of video, whatever the processing speed.
    """

    anchor: datetime | None = None

    def stamp(self, index: int, ts: datetime, media_s: float | None) -> FrameStamp:
        if media_s is None:
            return FrameStamp(index, ts)
        if self.anchor is None:
            self.anchor = ts - timedelta(seconds=media_s)
        return FrameStamp(index, ts, media_s=media_s, seen=self.anchor + timedelta(seconds=media_s))
