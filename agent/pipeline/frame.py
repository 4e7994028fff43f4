"""A decoded frame as a source delivers it: the pipeline's input, made by `agent.runtime.source`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class SourceFrame:
    index: int  # position in the source (files) or frames captured so far (live)
    image: npt.NDArray[np.uint8]
    ts: datetime  # wall clock when captured (UTC)
    captured_at: float  # time.monotonic() when captured
    # Files: the frame's position in the video, in seconds. None for live sources.
    media_s: float | None = None
