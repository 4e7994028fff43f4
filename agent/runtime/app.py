"""The running agent: wires source -> models -> tracker/identity -> events -> outbox -> MQTT.

Concurrency (one asyncio loop):
- the source reads and decodes frames in its own thread;
- the models run in an inference executor, one FrameAnalyzer (own TFLite interpreters) per worker,
  since interpreters are not thread-safe; an Edge TPU always gets one worker;
- tracking, identity voting and event building run on the loop, overlapping the next frame's
  inference (a producer task submits frame N+1 while the consumer task finishes frame N);
- annotated-video drawing and encoding run on one more thread;
- the MQTT link and the status publisher are loop tasks.

Stop (SIGINT/SIGTERM, end of file, --max-frames): stop reading, finish the frames in flight, end
every live track (track_ended), flush the outbox for up to `flush_timeout_s`, publish `stopped`.
Undelivered events stay in the SQLite outbox and go out on the next start.
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
from typing import Any

import structlog

from agent.config import AgentConfig
from agent.events.schema import EventBase
from agent.runtime.annotate import AnnotatedVideoWriter, draw
from agent.runtime.event_builder import EventBuilder, FrameStamp
from agent.runtime.identity import IdentityResolver
from agent.runtime.pipeline import (
    Analysis,
    ClassifierLike,
    FrameAnalyzer,
    StepResult,
    TrackHint,
    TrackingStage,
)
from agent.runtime.source import CaptureFactory, FrameSource, SourceFrame
from agent.runtime.status import StatusMonitor
from agent.tracking import ColorHistogramEncoder, Tracker, TrackerParams
from agent.vision.factory import VisionStack, build_vision_stack

# Frames submitted to inference ahead of the one being tracked: enough to keep the executor busy.
IN_FLIGHT = 2


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


class AgentApp:
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
    ) -> None:
        self.config = config
        self.log = logger if logger is not None else structlog.get_logger("facetrack.agent")
        self.max_frames = max_frames if max_frames and max_frames > 0 else None
        self.flush_timeout_s = flush_timeout_s
        self._vision = vision
        self._capture_factory = capture_factory
        self._install_signals = install_signal_handlers
        self._on_event = on_event
        # Frames the status fps and latencies average over (the benchmark uses the whole run).
        self._status_window = max(2, status_window)
        self._stop = asyncio.Event()
        self.stopped_by = "end of input"
        self.summary = RunSummary()

    def request_stop(self, reason: str = "signal") -> None:
        if not self._stop.is_set():
            self.stopped_by = reason
            self.log.info("agent_stopping", reason=reason)
            self._stop.set()

    # ------------------------------------------------------------------------------------------
    def open_source(self) -> FrameSource:
        """Open the input; raises SourceError (one line) for a missing or undecodable file."""
        cfg = self.config
        source = FrameSource(
            cfg.pipeline.input,
            frame_stride=cfg.pipeline.frame_stride,
            capture_factory=self._capture_factory,
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
        analyzers = [
            FrameAnalyzer(s.person_detector, s.face_detector, s.embedder, ColorHistogramEncoder())
            for s in stacks
        ]
        return analyzers, first

    async def run(self) -> int:
        """Run until the input ends or a stop is requested. Raises SourceError, OutputError,
        ModelLoadError, OutboxError, ConfigError for problems found while starting."""
        cfg = self.config
        log = self.log
        loop = asyncio.get_running_loop()
        started = time.monotonic()

        # First, before the slow imports and model loading: a bad input fails within a second.
        source = self.open_source()

        from agent.classifier.service import ModelService
        from agent.runtime.homeassistant import HomeAssistantAnnouncer
        from agent.runtime.mqtt_link import MqttLink
        from agent.runtime.outbox import Outbox
        from agent.runtime.topics import Topics

        writer: AnnotatedVideoWriter | None = None
        try:
            if cfg.pipeline.output:
                # Only every `frame_stride`-th frame is written: keep the video's real-time pace.
                stride = cfg.pipeline.frame_stride if not source.is_live else 1
                writer = AnnotatedVideoWriter(cfg.pipeline.output, (source.fps or 25.0) / stride)
                if source.size is not None:
                    writer.check(*source.size)
            analyzers, stack = self._build_analyzers()
            # Raises ConfigError for an unreadable trusted key; `emit` is only called later.
            service = ModelService(cfg, emit=lambda event: emit(event), embedder=stack.embedder)
            cfg.state_dir.mkdir(parents=True, exist_ok=True)
            outbox = Outbox(cfg.state_dir / "outbox.sqlite3", cfg.outbox.max_rows, cfg.outbox.max_bytes)
        except BaseException:
            source.stop()
            if writer is not None:
                writer.close()
            raise

        topics = Topics(cfg.mqtt.topic_prefix, cfg.device_id)
        link = MqttLink(cfg.mqtt, topics, outbox)
        summary = self.summary

        def emit(event: EventBase) -> None:
            stored = outbox.append(event, topic=topics.events)
            link.notify()
            summary.events += 1
            kind = str(getattr(stored, "type", "event"))
            summary.events_by_type[kind] = summary.events_by_type.get(kind, 0) + 1
            summary.last_seq = stored.seq
            log.info("event", **_event_fields(stored))
            if self._on_event is not None:
                self._on_event(stored)

        inference = ThreadPoolExecutor(max_workers=len(analyzers), thread_name_prefix="inference")
        drawing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="annotate")
        monitor = StatusMonitor(window=self._status_window)
        stage = TrackingStage(
            Tracker(TrackerParams.from_config(cfg.tracker, cfg.detection)),
            IdentityResolver(cfg.identity.min_votes, cfg.identity.min_confidence),
            EventBuilder(cfg.device_id),
            cfg.pipeline.face_recheck_every,
        )
        pool = _AnalyzerPool(analyzers)
        tasks: list[asyncio.Task[Any]] = []
        signals_installed: list[signal.Signals] = []
        try:
            await loop.run_in_executor(None, service.load_installed)
            for topic in service.topics(topics):
                link.subscribe(topic, service.handle_message)
            tasks.append(asyncio.create_task(link.run(), name="mqtt"))
            announcer = HomeAssistantAnnouncer(cfg.homeassistant, topics, link)
            await announcer.start()  # does nothing unless [homeassistant] enabled = true
            if self._install_signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    with contextlib.suppress(NotImplementedError, RuntimeError):
                        loop.add_signal_handler(sig, self.request_stop, sig.name)
                        signals_installed.append(sig)

            def status_fields() -> dict[str, Any]:
                live = stage.tracks
                return {
                    "state": "stopping" if self._stop.is_set() else "running",
                    "tracks": sum(1 for t in live if t.state == "confirmed"),
                    "tracks_tentative": sum(1 for t in live if t.state != "confirmed"),
                    "identified": sorted({stage.resolver.label_of(t.track_id) for t in live} - {"unknown"}),
                    "backend": stack.backend,
                    "backends": stack.backends,
                    "inference_workers": pool.size,
                    "model_version": service.current_version,
                    "outbox_depth": outbox.depth,
                    "events_dropped": outbox.dropped_total,
                    "last_seq": outbox.last_seq,
                    "frames_skipped": source.stats.frames_skipped,
                    "source": {
                        "input": cfg.pipeline.input,
                        "kind": source.kind,
                        "connected": source.stats.connected,
                        "reconnects": source.stats.reconnects,
                        "last_error": source.stats.last_error,
                    },
                    "mqtt": {
                        k: link.stats[k] for k in ("connected", "reconnects", "published", "last_error")
                    },
                }

            async def publish_status() -> None:
                while True:
                    await asyncio.sleep(cfg.status.interval_s)
                    await link.publish_status(monitor.snapshot(**status_fields()))

            tasks.append(asyncio.create_task(publish_status(), name="status"))
            log.info(
                "agent_started",
                device=cfg.device_id,
                input=cfg.pipeline.input,
                source=source.kind,
                backend=stack.backend,
                workers=pool.size,
                model=service.current_version,
                broker=f"{cfg.mqtt.host}:{cfg.mqtt.port}",
                outbox_depth=outbox.depth,
            )

            in_flight: asyncio.Queue[tuple[SourceFrame, asyncio.Future[Analysis]] | None] = asyncio.Queue(
                maxsize=IN_FLIGHT
            )

            async def produce() -> None:
                submitted = 0
                try:
                    while not self._stop.is_set():
                        if self.max_frames is not None and submitted >= self.max_frames:
                            self.stopped_by = "max frames"
                            break
                        next_frame = asyncio.ensure_future(source.next())
                        stop_wait = asyncio.ensure_future(self._stop.wait())
                        done, _ = await asyncio.wait(
                            {next_frame, stop_wait}, return_when=asyncio.FIRST_COMPLETED
                        )
                        stop_wait.cancel()
                        if next_frame not in done:
                            next_frame.cancel()
                            break
                        frame = next_frame.result()
                        if frame is None:
                            if source.stats.last_error and not source.is_live:
                                log.warning("source_ended_with_error", error=source.stats.last_error)
                            break
                        # Model swaps happen here, between frames: one frame, one classifier.
                        service.activate_pending()
                        clf = service.current
                        hints = stage.hints(frame.index)
                        future = loop.run_in_executor(inference, pool.analyze, frame, hints, clf)
                        await in_flight.put((frame, future))
                        submitted += 1
                finally:
                    await in_flight.put(None)

            pending_writes: list[Future[None]] = []
            last_stamp = FrameStamp(0, datetime.now(UTC))

            async def consume() -> None:
                nonlocal last_stamp
                while (item := await in_flight.get()) is not None:
                    frame, future = item
                    analysis = await future
                    stamp = FrameStamp(frame.index, datetime.now(UTC) if not source.is_live else frame.ts)
                    result = stage.step(analysis, stamp)
                    last_stamp = stamp
                    for event in result.events:
                        emit(event)
                    if analysis.classifier_version is not None:
                        service.note_frame_classified(frame.index, analysis.classifier_version)
                    timings = dict(analysis.timings_ms)
                    timings.update(result.timings_ms)
                    timings["capture_to_result_ms"] = (time.monotonic() - frame.captured_at) * 1000
                    monitor.frame_done(timings)
                    if writer is not None:
                        pending_writes.append(
                            drawing.submit(_annotate, writer, analysis, result, monitor.fps())
                        )
                        if len(pending_writes) > 8:
                            await asyncio.wrap_future(pending_writes.pop(0))

            producer = asyncio.create_task(produce(), name="produce")
            try:
                await consume()
            finally:
                if not producer.done():
                    # The consumer failed: the producer may be blocked on a full queue.
                    self._stop.set()
                    producer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await producer
            source.stop()
            for event in stage.finish(FrameStamp(last_stamp.index, datetime.now(UTC))):
                emit(event)
            for pending in pending_writes:
                await asyncio.wrap_future(pending)
            if writer is not None:
                writer.close()
            summary.frames = monitor.frames_processed
            summary.elapsed_s = time.monotonic() - started
            summary.fps = monitor.fps()
            summary.latency_ms = monitor.latency_ms()
            summary.frames_skipped = source.stats.frames_skipped
            summary.stopped_by = self.stopped_by
            summary.output = str(writer.path) if writer is not None else None
            # Let the link drain the outbox first, so the last status shows what really stayed queued.
            flush_deadline = time.monotonic() + self.flush_timeout_s
            # Polled: the outbox has no "drained" notification, and this runs once per process.
            for _ in range(int(self.flush_timeout_s / 0.02) + 1):
                if not (outbox.depth and link.connected and time.monotonic() < flush_deadline):
                    break
                await asyncio.sleep(0.02)
            await link.publish_status(monitor.snapshot(**status_fields()))
            await announcer.stop()
            await link.stop(max(0.0, flush_deadline - time.monotonic()))
            summary.outbox_depth = outbox.depth
            if outbox.depth:
                log.warning(
                    "outbox_not_empty", queued=outbox.depth, note="queued events are sent on the next start"
                )
            log.info(
                "agent_stopped",
                reason=self.stopped_by,
                frames=summary.frames,
                events=summary.events,
                fps=round(summary.fps, 2),
                outbox_depth=summary.outbox_depth,
            )
            return 0
        finally:
            for sig in signals_installed:
                loop.remove_signal_handler(sig)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            source.stop()
            if writer is not None:
                writer.close()
            inference.shutdown(wait=True, cancel_futures=True)
            drawing.shutdown(wait=True)
            outbox.close()


def _annotate(writer: AnnotatedVideoWriter, analysis: Analysis, result: StepResult, fps: float) -> None:
    image = analysis.frame.image
    draw(image, result.tracks, result.labels, list(analysis.faces.values()), fps)
    writer.write(image)


def _event_fields(event: EventBase) -> dict[str, Any]:
    data = event.model_dump(mode="json", exclude={"v", "device", "ts"})
    return {k: v for k, v in data.items() if v is not None}
