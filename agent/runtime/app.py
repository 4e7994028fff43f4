"""The running agent: wires source -> models -> tracker/identity -> events -> outbox -> MQTT.

Concurrency (one asyncio loop):
- the source reads and decodes frames in its own thread;
- the models run in an inference executor, one FrameAnalyzer (own TFLite interpreters) per worker,
  since interpreters are not thread-safe; an Edge TPU always gets one worker;
- tracking, identity voting and event building run on the loop, overlapping the next frame's
  inference (a producer task submits frame N+1 while the consumer task finishes frame N);
- annotated-video drawing and encoding run on one more thread;
- the MQTT link and the status publisher are loop tasks.

Stop (SIGINT/SIGTERM/SIGHUP, end of file, --max-frames): stop reading, finish the frames in flight,
end every live track (track_ended), wait up to `flush_timeout_s` for the broker to take the queued
events (also while it is down), publish `stopped`. Undelivered events stay in the SQLite outbox and
go out on the next start. A second signal skips the wait. The handlers are installed before the
input opens and the models load, so a signal at any moment is a clean stop (exit 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import signal
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from agent.config import AgentConfig
from agent.events.clock import FrameStamp, SourceClock
from agent.events.schema import EventBase
from agent.pipeline.analyzer import Analysis, ClassifierLike, DetectionOptions, FrameAnalyzer, TrackHint
from agent.pipeline.frame import SourceFrame
from agent.pipeline.stage import StepResult, TrackingStage
from agent.runtime.annotate import AnnotatedVideoWriter, draw
from agent.runtime.source import CaptureFactory, FrameSource
from agent.runtime.status import StatusMonitor, run_state
from agent.vision.factory import VisionStack, build_vision_stack

if TYPE_CHECKING:
    # Imported for real inside `AgentApp._start`, after the input is open: they are slow to import.
    from agent.runtime.homeassistant import HomeAssistantAnnouncer
    from agent.runtime.model_service import ModelService
    from agent.runtime.mqtt_link import MqttLink
    from agent.runtime.outbox import Outbox
    from agent.runtime.state_lock import StateLock
    from agent.runtime.topics import Topics

# stopped_by prefix for an input that failed after it had started decoding (exit code 1).
INPUT_ERROR = "input error"

# Frames submitted to inference ahead of the one being tracked: enough to keep the executor busy.
IN_FLIGHT = 2

# Signals that stop the agent cleanly. SIGHUP too: a closed terminal or `kill -HUP` must not kill it
# without track_ended and `stopped` (there is no reload: a restart re-reads everything).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Bound on a best-effort publish while stopping (a broker that stopped answering).
STOP_PUBLISH_TIMEOUT_S = 2.0


@dataclass(slots=True)
class RunSummary:
    frames: int = 0
    events: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    fps: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    frames_skipped: int = 0
    outbox_depth: int = 0
    last_seq: int = 0
    stopped_by: str = "end of input"
    output: str | None = None


class _AnalyzerPool:
    """One FrameAnalyzer per inference worker; a worker borrows one for a frame."""

    def __init__(self, analyzers: list[FrameAnalyzer]) -> None:
        self._free: queue.SimpleQueue[FrameAnalyzer] = queue.SimpleQueue()
        for analyzer in analyzers:
            self._free.put(analyzer)
        self.size = len(analyzers)

    def analyze(self, frame: SourceFrame, hints: list[TrackHint], clf: ClassifierLike | None) -> Analysis:
        analyzer = self._free.get()
        try:
            return analyzer.analyze(frame, hints, clf)
        finally:
            self._free.put(analyzer)


# A frame handed from the producer to the consumer with its pending inference; None ends the stream.
_InFlight = tuple[SourceFrame, asyncio.Future[Analysis]] | None


@dataclass(slots=True)
class _Resources:
    """What one `AgentApp.run` opened and the state its tasks share; `AgentApp._close` releases it."""

    source: FrameSource
    writer: AnnotatedVideoWriter | None
    stack: VisionStack
    pool: _AnalyzerPool
    service: ModelService
    outbox: Outbox
    topics: Topics
    link: MqttLink
    announcer: HomeAssistantAnnouncer
    stage: TrackingStage
    monitor: StatusMonitor
    inference: ThreadPoolExecutor
    drawing: ThreadPoolExecutor
    lock: StateLock
    in_flight: asyncio.Queue[_InFlight] = field(default_factory=lambda: asyncio.Queue(maxsize=IN_FLIGHT))
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    pending_writes: list[Future[None]] = field(default_factory=list)


class AgentApp:
    # Set by `run` for its duration; every `_` method below runs inside it.
    _res: _Resources

    def __init__(
        self,
        config: AgentConfig,
        *,
        logger: Any = None,
        max_frames: int | None = None,
        flush_timeout_s: float = 10.0,
        vision: VisionStack | None = None,
        capture_factory: CaptureFactory | None = None,
        install_signal_handlers: bool = True,
        on_event: Callable[[EventBase], None] | None = None,
        status_window: int = 120,
        on_frame: Callable[[int, str | None], None] | None = None,
    ) -> None:
        self.config = config
        self.log = logger if logger is not None else structlog.get_logger("facetrack.agent")
        self.max_frames = max_frames if max_frames and max_frames > 0 else None
        self.flush_timeout_s = flush_timeout_s
        self._vision = vision
        self._capture_factory = capture_factory
        self._install_signals = install_signal_handlers
        self._on_event = on_event
        # Called on the event loop after each frame is tracked and its events emitted, with the frame
        # index and the classifier version it ran under (bench/reload.py times frames with it).
        self._on_frame = on_frame
        # Frames the status fps and latencies average over (the benchmark uses the whole run).
        self._status_window = max(2, status_window)
        self._stop = asyncio.Event()
        # Set by a second stop signal: skip waiting for the broker.
        self._hurry = asyncio.Event()
        self.stopped_by = "end of input"
        self.summary = RunSummary()
        # Frame times: video time for a file, capture time for a live source.
        self._clock = SourceClock()
        self._last_stamp: FrameStamp | None = None
        # Set as the frames end, and once they are done: the status says "stopping", then "stopped".
        self._winding_down = False
        self._finished = False
        # Since start: faces kept from voting per reason, and person detector runs.
        self.faces_skipped: dict[str, int] = {}
        self.person_passes = 0

    def request_stop(self, reason: str = "signal") -> None:
        if not self._stop.is_set():
            self.stopped_by = reason
            self.log.info("agent_stopping", reason=reason)
            self._stop.set()

    def _on_signal(self, name: str) -> None:
        if not self._stop.is_set():
            self.request_stop(name)
        elif not self._hurry.is_set():
            self.log.warning("agent_stopping_now", reason=name, note="not waiting for the broker")
            self._hurry.set()

    def _install_signal_handlers(self) -> list[signal.Signals]:
        installed: list[signal.Signals] = []
        if not self._install_signals:
            return installed
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_signal, sig.name)
                installed.append(sig)
        return installed

    # ------------------------------------------------------------------------------------------
    def open_source(self) -> FrameSource:
        """Open the input; raises SourceError (one line) for a missing or undecodable file."""
        cfg = self.config
        source = FrameSource(
            cfg.pipeline.input,
            frame_stride=cfg.pipeline.frame_stride,
            loop=cfg.pipeline.loop,
            capture_factory=self._capture_factory,
            # Shared with MQTT (one backoff policy, one pair of knobs) until [pipeline] gets its own.
            reconnect_min_s=cfg.mqtt.reconnect_min_s,
            reconnect_max_s=cfg.mqtt.reconnect_max_s,
            logger=self.log,
        )
        source.start()
        return source

    def _build_analyzers(self) -> tuple[list[FrameAnalyzer], VisionStack]:
        cfg = self.config
        first = self._vision or build_vision_stack(cfg)
        workers = 1 if first.backend == "edgetpu" or self._vision is not None else cfg.inference.workers
        stacks = [first] + [build_vision_stack(cfg) for _ in range(workers - 1)]
        # One motion background and detection schedule for the camera, shared by the workers.
        options = DetectionOptions.from_config(cfg.detection, _input_side(first))
        analyzers = [FrameAnalyzer.from_stack(s, options) for s in stacks]
        return analyzers, first

    async def run(self) -> int:
        """Run until the input ends or a stop is requested. Raises SourceError, OutputError,
        ModelLoadError, OutboxError, ConfigError for problems found while starting."""
        started = time.monotonic()
        # First: a signal while the input opens or the models load is then a clean stop, handled
        # as soon as the loop runs again (the frame loop sees the stop before its first frame).
        signals = self._install_signal_handlers()
        try:
            self._res = self._start()
            try:
                await self._start_tasks()
                await self._process_frames()
                await self._finish(started)
                # A file that broke off mid-way still published what it decoded, but must not look
                # like a clean run to whoever started it.
                return 1 if self.stopped_by.startswith(INPUT_ERROR) else 0
            finally:
                await self._close()
                # Callers keep the app to read `summary`: don't keep the models and the outbox alive.
                del self._res
        finally:
            loop = asyncio.get_running_loop()
            for sig in signals:
                loop.remove_signal_handler(sig)

    # -- start -----------------------------------------------------------------------------------
    def _start(self) -> _Resources:
        """Open the input, output, models, model service and outbox; on failure close what was opened."""
        cfg = self.config
        from agent.runtime.state_lock import StateLock

        # One agent per state directory, checked before a second one touches the camera or the
        # state directory's files.
        lock = StateLock.acquire(cfg.state_dir)
        try:
            # Then, before the slow imports and model loading: a bad input fails within a second.
            source = self.open_source()
        except BaseException:
            lock.release()
            raise

        from agent.runtime.homeassistant import HomeAssistantAnnouncer
        from agent.runtime.model_service import ModelService
        from agent.runtime.mqtt_link import MqttLink
        from agent.runtime.outbox import Outbox
        from agent.runtime.topics import Topics

        with contextlib.ExitStack() as undo:
            undo.callback(lock.release)
            undo.callback(source.stop)
            writer: AnnotatedVideoWriter | None = None
            if cfg.pipeline.output:
                # Only every `frame_stride`-th frame is written: keep the video's real-time pace.
                stride = cfg.pipeline.frame_stride if not source.is_live else 1
                writer = AnnotatedVideoWriter(cfg.pipeline.output, (source.fps or 25.0) / stride)
                undo.callback(writer.close)
                if source.size is not None:
                    writer.check(*source.size)
            # The outbox (and so the state directory) before the models too: a state_dir that
            # cannot be used, or belongs to another device, is reported before seconds of loading.
            topics = Topics(cfg.mqtt.topic_prefix, cfg.device_id)
            outbox = Outbox(
                cfg.state_dir / "outbox.sqlite3",
                cfg.outbox.max_rows,
                cfg.outbox.max_bytes,
                owner=topics.events,
            )
            undo.callback(outbox.close)
            analyzers, stack = self._build_analyzers()
            # Raises ConfigError for an unreadable trusted key; `_emit` is only called once `run`
            # has stored what this returns.
            service = ModelService(cfg, emit=self._emit, embedder=stack.embedder)
            link = MqttLink(cfg.mqtt, topics, outbox)
            inference = ThreadPoolExecutor(max_workers=len(analyzers), thread_name_prefix="inference")
            undo.callback(inference.shutdown, wait=True, cancel_futures=True)
            drawing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="annotate")
            undo.callback(drawing.shutdown, wait=True)
            resources = _Resources(
                source=source,
                writer=writer,
                stack=stack,
                pool=_AnalyzerPool(analyzers),
                service=service,
                outbox=outbox,
                topics=topics,
                link=link,
                announcer=HomeAssistantAnnouncer(cfg.homeassistant, topics, link),
                stage=TrackingStage.from_config(cfg),
                monitor=StatusMonitor(window=self._status_window),
                inference=inference,
                drawing=drawing,
                lock=lock,
            )
            undo.pop_all()
        return resources

    async def _start_tasks(self) -> None:
        """Load the installed model, start the MQTT link, discovery, signal handlers and status task."""
        r = self._res
        cfg = self.config
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, r.service.load_installed)
        for topic in r.service.topics(r.topics):
            r.link.subscribe(topic, r.service.handle_message)
        r.tasks.append(asyncio.create_task(r.link.run(), name="mqtt"))
        await r.announcer.start()  # does nothing unless [homeassistant] enabled = true
        r.tasks.append(asyncio.create_task(self._publish_status_loop(), name="status"))
        self.log.info(
            "agent_started",
            device=cfg.device_id,
            input=cfg.pipeline.input,
            source=r.source.kind,
            backend=r.stack.backend,
            workers=r.pool.size,
            model=r.service.current_version,
            broker=f"{cfg.mqtt.host}:{cfg.mqtt.port}",
            outbox_depth=r.outbox.depth,
            # Relative to the working directory: say where, since another folder means another outbox.
            state_dir=str(cfg.state_dir.resolve()),
        )

    # -- events and status -----------------------------------------------------------------------
    def _emit(self, event: EventBase) -> None:
        r = self._res
        summary = self.summary
        stored = r.link.emit(event)
        summary.events += 1
        kind = str(getattr(stored, "type", "event"))
        summary.events_by_type[kind] = summary.events_by_type.get(kind, 0) + 1
        summary.last_seq = stored.seq
        self.log.info("event", **_event_fields(stored))
        if self._on_event is not None:
            self._on_event(stored)

    def _status_fields(self) -> dict[str, Any]:
        r = self._res
        live = r.stage.tracks
        confirmed = sum(1 for t in live if t.is_confirmed)
        link = r.link.stats
        return {
            "state": run_state(finished=self._finished, stopping=self._stop.is_set() or self._winding_down),
            "tracks": confirmed,
            "tracks_tentative": len(live) - confirmed,
            # The resolver drops every track the tracker no longer reports, so its holders are live.
            "identified": sorted(r.stage.resolver.holders()),
            "backend": r.stack.backend,
            "backends": r.stack.backends,
            "inference_workers": r.pool.size,
            "model_version": r.service.current_version,
            "outbox_depth": r.outbox.depth,
            "events_dropped": r.outbox.dropped_total,
            # Not None while the disk refuses writes; events_unstored wait in memory meanwhile.
            "outbox_error": r.outbox.write_error,
            "events_unstored": r.outbox.unstored,
            "last_seq": r.outbox.last_seq,
            "frames_skipped": r.source.stats.frames_skipped,
            "faces_skipped": dict(sorted(self.faces_skipped.items())),
            "person_detector_runs": self.person_passes,
            "source": {
                "input": self.config.pipeline.input,
                "kind": r.source.kind,
                "connected": r.source.stats.connected,
                "reconnects": r.source.stats.reconnects,
                "last_error": r.source.stats.last_error,
            },
            "mqtt": {k: link[k] for k in ("connected", "reconnects", "published", "last_error")},
        }

    async def _publish_status_loop(self) -> None:
        r = self._res
        while True:
            await asyncio.sleep(self.config.status.interval_s)
            await r.link.publish_status(r.monitor.snapshot(**self._status_fields()))

    # -- frames ----------------------------------------------------------------------------------
    async def _process_frames(self) -> None:
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

    async def _produce(self) -> None:
        """Read frames and submit them to inference, at most IN_FLIGHT ahead of the consumer."""
        r = self._res
        loop = asyncio.get_running_loop()
        submitted = 0
        # One waiter for the whole run, raced against each frame read.
        stop_wait = asyncio.ensure_future(self._stop.wait())
        try:
            while not self._stop.is_set():
                if self.max_frames is not None and submitted >= self.max_frames:
                    self.stopped_by = "max frames"
                    break
                next_frame = asyncio.ensure_future(r.source.next())
                done, _ = await asyncio.wait({next_frame, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if next_frame not in done:
                    next_frame.cancel()
                    break
                frame = next_frame.result()
                if frame is None:
                    if r.source.stats.last_error and not r.source.is_live:
                        self.log.warning("source_ended_with_error", error=r.source.stats.last_error)
                        self.stopped_by = f"{INPUT_ERROR}: {r.source.stats.last_error}"
                    break
                # Model swaps happen here, between frames: one frame, one classifier.
                r.service.activate_pending()
                clf = r.service.current
                hints = r.stage.hints(frame.index)
                future = loop.run_in_executor(r.inference, r.pool.analyze, frame, hints, clf)
                await r.in_flight.put((frame, future))
                submitted += 1
        except asyncio.CancelledError:
            # Only `_process_frames` cancels us, once the consumer is gone: nobody would take the
            # end marker from a full queue, so waiting to put it would hang the stop for good.
            stop_wait.cancel()
            raise
        except BaseException:
            stop_wait.cancel()
            await r.in_flight.put(None)
            raise
        stop_wait.cancel()
        await r.in_flight.put(None)

    async def _consume(self) -> None:
        """Track each analysed frame in order, emit its events, and hand it to the video writer."""
        r = self._res
        while (item := await r.in_flight.get()) is not None:
            frame, future = item
            analysis = await future
            self.person_passes += analysis.person_passes
            for reason, count in analysis.faces_skipped.items():
                self.faces_skipped[reason] = self.faces_skipped.get(reason, 0) + count
            now = datetime.now(UTC) if not r.source.is_live else frame.ts
            stamp = self._last_stamp = self._clock.stamp(frame.index, now, frame.media_s)
            result = r.stage.step(analysis, stamp)
            for event in result.events:
                self._emit(event)
            if analysis.classifier_version is not None:
                r.service.note_frame_classified(frame.index, analysis.classifier_version)
            timings = dict(analysis.timings_ms)
            timings.update(result.timings_ms)
            timings["capture_to_result_ms"] = (time.monotonic() - frame.captured_at) * 1000
            r.monitor.frame_done(timings)
            if self._on_frame is not None:
                self._on_frame(frame.index, analysis.classifier_version)
            if r.writer is not None:
                r.pending_writes.append(
                    r.drawing.submit(_annotate, r.writer, analysis, result, r.monitor.fps())
                )
                if len(r.pending_writes) > 8:
                    await asyncio.wrap_future(r.pending_writes.pop(0))

    # -- stop ------------------------------------------------------------------------------------
    async def _finish(self, started: float) -> None:
        """End the live tracks, finish the video, fill `summary`, flush the outbox, publish the final
        status and stop the link."""
        r = self._res
        summary = self.summary
        r.source.stop()
        self._winding_down = True  # status: "stopping" while the outbox flushes, whatever ended the run
        # The tracks still alive end on the last frame tracked.
        last = self._last_stamp
        end = FrameStamp(
            r.stage.last_index,
            datetime.now(UTC),
            media_s=last.media_s if last is not None else None,
            seen=last.seen if last is not None else None,
        )
        for event in r.stage.finish(end):
            self._emit(event)
        for pending in r.pending_writes:
            await asyncio.wrap_future(pending)
        if r.writer is not None:
            r.writer.close()
        summary.frames = r.monitor.frames_processed
        summary.elapsed_s = time.monotonic() - started
        summary.fps = r.monitor.fps()
        summary.latency_ms = r.monitor.latency_ms()
        summary.frames_skipped = r.source.stats.frames_skipped
        summary.stopped_by = self.stopped_by
        summary.output = str(r.writer.path) if r.writer is not None else None
        # Let the link drain the outbox first, so the last status shows what really stayed queued.
        # A broker that is down gets the whole timeout to come back (the link keeps reconnecting).
        flush_deadline = time.monotonic() + self.flush_timeout_s
        if r.outbox.depth and self.flush_timeout_s > 0:
            self.log.info(
                "agent_flushing",
                queued=r.outbox.depth,
                timeout_s=self.flush_timeout_s,
                broker_connected=r.link.connected,
            )
        # Polled: the outbox has no "drained" notification, and this runs once per process.
        for _ in range(int(self.flush_timeout_s / 0.02) + 1):
            if not (r.outbox.depth and time.monotonic() < flush_deadline) or self._hurry.is_set():
                break
            await asyncio.sleep(0.02)
        if self._hurry.is_set():
            flush_deadline = time.monotonic()
        self._finished = True
        # Both best effort and bounded: a broker that stopped answering must not hold the stop.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                r.link.publish_status(r.monitor.snapshot(**self._status_fields())), STOP_PUBLISH_TIMEOUT_S
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(r.announcer.stop(), STOP_PUBLISH_TIMEOUT_S)
        await r.link.stop(max(0.0, flush_deadline - time.monotonic()))
        summary.outbox_depth = r.outbox.depth
        if r.outbox.depth:
            self.log.warning(
                "outbox_not_empty", queued=r.outbox.depth, note="queued events are sent on the next start"
            )
        self.log.info(
            "agent_stopped",
            reason=self.stopped_by,
            frames=summary.frames,
            events=summary.events,
            fps=round(summary.fps, 2),
            outbox_depth=summary.outbox_depth,
        )

    async def _close(self) -> None:
        """Release everything, whether the run finished or failed part-way (stops are idempotent)."""
        r = self._res
        # `_finish` stops it on a clean run; a failed frame loop never gets there.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(r.announcer.stop(), STOP_PUBLISH_TIMEOUT_S)
        for task in r.tasks:
            task.cancel()
        for task in r.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        r.source.stop()
        if r.writer is not None:
            r.writer.close()
        r.inference.shutdown(wait=True, cancel_futures=True)
        r.drawing.shutdown(wait=True)
        r.outbox.close()
        r.lock.release()


def _input_side(stack: VisionStack) -> int:
    """The person detector's input height (the smallest useful region); 300 when unknown."""
    model = getattr(stack.person_detector, "model", None)
    shape = getattr(getattr(model, "input", None), "shape", None)
    return int(shape[1]) if shape is not None and len(shape) == 4 else 300


def _annotate(writer: AnnotatedVideoWriter, analysis: Analysis, result: StepResult, fps: float) -> None:
    image = analysis.frame.image
    draw(image, result.tracks, result.labels, list(analysis.faces.values()), fps)
    writer.write(image)


def _event_fields(event: EventBase) -> dict[str, Any]:
    data = event.model_dump(mode="json", exclude={"v", "device", "ts"})
    return {k: v for k, v in data.items() if v is not None}
