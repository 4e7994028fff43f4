"""The frame loop of one agent run: read frames, run the models on them, track them in order.

A producer task reads frames and submits each to the inference executor, at most IN_FLIGHT ahead;
the consumer (the caller's task) tracks each analysed frame in order on the event loop, so tracking
frame N overlaps the inference of frame N+1, emits its events and hands it to the video writer.
Model swaps happen between frames: one frame, one classifier.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent.events.clock import FrameStamp, SourceClock
from agent.events.schema import EventBase
from agent.pipeline.analyzer import Analysis
from agent.pipeline.frame import SourceFrame
from agent.pipeline.stage import StepResult
from agent.runtime.annotate import AnnotatedVideoWriter, draw

if TYPE_CHECKING:
    from agent.runtime.resources import AgentResources

# stopped_by prefix for an input that failed after it had started decoding (exit code 1).
INPUT_ERROR = "input error"

# Frames submitted to inference ahead of the one being tracked: enough to keep the executor busy.
IN_FLIGHT = 2

# A frame handed from the producer to the consumer with its pending inference; None ends the stream.
_InFlight = tuple[SourceFrame, asyncio.Future[Analysis]] | None


@dataclass(slots=True)
class FrameCounts:
    """Since start: person detector runs, faces kept from voting per reason (status fields), and
    the inference workers' CPU milliseconds inside the models (the honest bound's numerator)."""

    person_passes: int = 0
    faces_skipped: dict[str, int] = field(default_factory=dict)
    model_cpu_ms: float = 0.0

    def add(self, analysis: Analysis) -> None:
        self.person_passes += analysis.person_passes
        self.model_cpu_ms += analysis.model_cpu_ms
        for reason, count in analysis.faces_skipped.items():
            self.faces_skipped[reason] = self.faces_skipped.get(reason, 0) + count


class FrameLoop:
    def __init__(
        self,
        resources: AgentResources,
        *,
        stop: asyncio.Event,
        emit: Callable[[EventBase], None],
        counts: FrameCounts,
        input_ended: Callable[[str], None],
        max_frames: int | None,
        on_frame: Callable[[int, str | None], None] | None,
        log: Any,
    ) -> None:
        self._res = resources
        # Set by a stop request; the loop sets it too when the consumer fails.
        self._stop = stop
        self._emit = emit
        self._counts = counts
        # Told why the frames ended when no stop was requested ("max frames", an input error).
        self._input_ended = input_ended
        self._max_frames = max_frames
        self._on_frame = on_frame
        self._log = log
        self._in_flight: asyncio.Queue[_InFlight] = asyncio.Queue(maxsize=IN_FLIGHT)
        self._pending_writes: list[Future[None]] = []
        # Frame times: video time for a file, capture time for a live source.
        self._clock = SourceClock()
        self._last_stamp: FrameStamp | None = None

    async def run(self) -> None:
        """Run the producer and the consumer until the input ends, a stop is requested or one fails."""
        producer = asyncio.create_task(self._produce(), name="produce")
        try:
            await self._consume()
        finally:
            if not producer.done():
                # The consumer failed: the producer may be blocked on a full queue.
                self._stop.set()
                producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer

    async def finish(self) -> None:
        """End the tracks still alive on the last frame tracked, then finish the video."""
        r = self._res
        last = self._last_stamp
        end = FrameStamp(
            r.stage.last_index,
            datetime.now(UTC),
            media_s=last.media_s if last is not None else None,
            seen=last.seen if last is not None else None,
        )
        for event in r.stage.finish(end):
            self._emit(event)
        self._keep_faces()
        for pending in self._pending_writes:
            await asyncio.wrap_future(pending)
        if r.writer is not None:
            r.writer.close()

    async def _produce(self) -> None:
        """Read frames and submit them to inference, at most IN_FLIGHT ahead of the consumer."""
        r = self._res
        loop = asyncio.get_running_loop()
        submitted = 0
        # One waiter for the whole run, raced against each frame read.
        stop_wait = asyncio.ensure_future(self._stop.wait())
        try:
            while not self._stop.is_set():
                if self._max_frames is not None and submitted >= self._max_frames:
                    self._input_ended("max frames")
                    break
                next_frame = asyncio.ensure_future(r.source.next())
                done, _ = await asyncio.wait({next_frame, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if next_frame not in done:
                    next_frame.cancel()
                    break
                frame = next_frame.result()
                if frame is None:
                    if r.source.stats.last_error and not r.source.is_live:
                        self._log.warning("source_ended_with_error", error=r.source.stats.last_error)
                        self._input_ended(f"{INPUT_ERROR}: {r.source.stats.last_error}")
                    break
                # Model swaps happen here, between frames: one frame, one classifier.
                r.service.activate_pending()
                clf = r.service.current
                hints = r.stage.hints(frame.index)
                future = loop.run_in_executor(r.inference, r.pool.analyze, frame, hints, clf)
                await self._in_flight.put((frame, future))
                submitted += 1
        except asyncio.CancelledError:
            # Only `run` cancels us, once the consumer is gone: nobody would take the end marker
            # from a full queue, so waiting to put it would hang the stop for good.
            stop_wait.cancel()
            raise
        except BaseException:
            stop_wait.cancel()
            await self._in_flight.put(None)
            raise
        stop_wait.cancel()
        await self._in_flight.put(None)

    async def _consume(self) -> None:
        """Track each analysed frame in order, emit its events, and hand it to the video writer."""
        r = self._res
        while (item := await self._in_flight.get()) is not None:
            frame, future = item
            analysis = await future
            self._counts.add(analysis)
            now = datetime.now(UTC) if not r.source.is_live else frame.ts
            stamp = self._last_stamp = self._clock.stamp(frame.index, now, frame.media_s)
            result = r.stage.step(analysis, stamp)
            for event in result.events:
                self._emit(event)
            self._keep_faces()
            if analysis.classifier_version is not None:
                r.service.note_frame_classified(frame.index, analysis.classifier_version)
            timings = dict(analysis.timings_ms)
            timings.update(result.timings_ms)
            timings["capture_to_result_ms"] = (time.monotonic() - frame.captured_at) * 1000
            r.monitor.frame_done(timings)
            if self._on_frame is not None:
                self._on_frame(frame.index, analysis.classifier_version)
            if r.writer is not None:
                self._pending_writes.append(
                    r.drawing.submit(_annotate, r.writer, analysis, result, r.monitor.fps())
                )
                if len(self._pending_writes) > 8:
                    await asyncio.wrap_future(self._pending_writes.pop(0))

    def _keep_faces(self) -> None:
        """Store the kept faces of tracks that ended (after their events: a face never delays one)."""
        faces = self._res.faces
        kept = self._res.stage.take_kept_faces()
        if faces is not None and kept:
            faces.keep(kept)


def _annotate(writer: AnnotatedVideoWriter, analysis: Analysis, result: StepResult, fps: float) -> None:
    image = analysis.frame.image
    draw(image, result.tracks, result.labels, list(analysis.faces.values()), fps)
    writer.write(image)
