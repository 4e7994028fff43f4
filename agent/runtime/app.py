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
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from agent.config import AgentConfig
from agent.events.schema import EventBase
from agent.runtime.frame_loop import INPUT_ERROR, FrameCounts, FrameLoop
from agent.runtime.resources import STOP_PUBLISH_TIMEOUT_S, AgentResources
from agent.runtime.source import CaptureFactory, FrameSource
from agent.runtime.status import peak_rss_mb, rss_mb, run_state
from agent.vision.factory import VisionStack

# Signals that stop the agent cleanly. SIGHUP too: a closed terminal or `kill -HUP` must not kill it
# without track_ended and `stopped` (there is no reload: a restart re-reads everything).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


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
    # CPU milliseconds the inference workers spent inside the models, over every frame processed.
    model_cpu_ms: float = 0.0
    # The process's resident set at its peak (ru_maxrss).
    peak_rss_mb: float = 0.0


class AgentApp:
    # Set by `run` for its duration; every `_` method below runs inside it.
    _res: AgentResources
    _frames: FrameLoop

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
        # Set as the frames end, and once they are done: the status says "stopping", then "stopped".
        self._winding_down = False
        self._finished = False
        self._counts = FrameCounts()

    @property
    def faces_skipped(self) -> dict[str, int]:
        """Since start: faces kept from voting, per reason (small, blurred, turned)."""
        return self._counts.faces_skipped

    @property
    def person_passes(self) -> int:
        """Since start: person detector runs."""
        return self._counts.person_passes

    def request_stop(self, reason: str = "signal") -> None:
        if not self._stop.is_set():
            self.stopped_by = reason
            self.log.info("agent_stopping", reason=reason)
            self._stop.set()

    def _input_ended(self, reason: str) -> None:
        """The frames ended without a stop request: --max-frames, or an input that broke off."""
        self.stopped_by = reason

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

    async def run(self) -> int:
        """Run until the input ends or a stop is requested. Raises SourceError, OutputError,
        ModelLoadError, OutboxError, ConfigError for problems found while starting."""
        started = time.monotonic()
        # First: a signal while the input opens or the models load is then a clean stop, handled
        # as soon as the loop runs again (the frame loop sees the stop before its first frame).
        signals = self._install_signal_handlers()
        try:
            self._res = AgentResources.open(
                self.config,
                open_source=self.open_source,
                vision=self._vision,
                emit=self._emit,
                status_window=self._status_window,
            )
            self._frames = FrameLoop(
                self._res,
                stop=self._stop,
                emit=self._emit,
                counts=self._counts,
                input_ended=self._input_ended,
                max_frames=self.max_frames,
                on_frame=self._on_frame,
                log=self.log,
            )
            try:
                await self._start_tasks()
                await self._frames.run()
                await self._finish(started)
                # A file that broke off mid-way still published what it decoded, but must not look
                # like a clean run to whoever started it.
                return 1 if self.stopped_by.startswith(INPUT_ERROR) else 0
            finally:
                await self._res.close()
                # Callers keep the app to read `summary`: don't keep the models and the outbox alive.
                del self._frames
                del self._res
        finally:
            loop = asyncio.get_running_loop()
            for sig in signals:
                loop.remove_signal_handler(sig)

    # -- start -----------------------------------------------------------------------------------
    async def _start_tasks(self) -> None:
        """Load the installed model, start the MQTT link, discovery, signal handlers and status task."""
        r = self._res
        cfg = self.config
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, r.service.load_installed)
        for topic in r.service.topics(r.topics):
            r.link.subscribe(topic, r.service.handle_message)
        r.tasks.append(asyncio.create_task(r.link.run(), name="mqtt"))
        if r.faces is not None:
            r.tasks.append(asyncio.create_task(r.faces.run(), name="faces"))
        await r.announcer.start()  # does nothing unless [homeassistant] enabled = true
        r.tasks.append(asyncio.create_task(self._publish_status_loop(), name="status"))
        self.log.info(
            "agent_started",
            device=cfg.device_id,
            input=r.source.shown,
            source=r.source.kind,
            backend=r.stack.backend,
            workers=r.pool.size,
            model=r.service.current_version,
            broker=cfg.mqtt.describe_brokers(),
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
            "enrolment": _enrolment_status(r),
            "rss_mb": rss_mb(),
            "peak_rss_mb": peak_rss_mb(),
            # Redacted: every viewer of the retained status may read it (camera URLs carry passwords).
            "source": r.source.status(),
            "mqtt": {k: link[k] for k in ("connected", "broker", "reconnects", "published", "last_error")},
        }

    async def _publish_status_loop(self) -> None:
        r = self._res
        while True:
            await asyncio.sleep(self.config.status.interval_s)
            await r.link.publish_status(r.monitor.snapshot(**self._status_fields()))

    # -- stop ------------------------------------------------------------------------------------
    async def _finish(self, started: float) -> None:
        """End the live tracks, finish the video, fill `summary`, flush the outbox, publish the final
        status and stop the link."""
        r = self._res
        summary = self.summary
        # Not waited for here: a stalled stream's last read ends while the outbox flushes, and
        # resources.close() joins the reader (which alone releases the capture).
        r.source.request_stop()
        self._winding_down = True  # status: "stopping" while the outbox flushes, whatever ended the run
        await self._frames.finish()
        summary.frames = r.monitor.frames_processed
        summary.elapsed_s = time.monotonic() - started
        summary.fps = r.monitor.fps()
        summary.latency_ms = r.monitor.latency_ms()
        summary.frames_skipped = r.source.stats.frames_skipped
        summary.stopped_by = self.stopped_by
        summary.output = str(r.writer.path) if r.writer is not None else None
        summary.model_cpu_ms = self._counts.model_cpu_ms
        summary.peak_rss_mb = peak_rss_mb()
        # Let the link drain the outbox first, so the last status shows what really stayed queued.
        # A broker that is down gets the whole timeout to come back (the link keeps reconnecting).
        flush_deadline = time.monotonic() + self.flush_timeout_s
        if (r.outbox.depth or _faces_queued(r)) and self.flush_timeout_s > 0:
            self.log.info(
                "agent_flushing",
                queued=r.outbox.depth,
                timeout_s=self.flush_timeout_s,
                broker_connected=r.link.connected,
            )
        # Polled: the outbox has no "drained" notification, and this runs once per process.
        for _ in range(int(self.flush_timeout_s / 0.02) + 1):
            queued = r.outbox.depth or _faces_queued(r)
            if not (queued and time.monotonic() < flush_deadline) or self._hurry.is_set():
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


def _event_fields(event: EventBase) -> dict[str, Any]:
    data = event.model_dump(mode="json", exclude={"v", "device", "ts"})
    return {k: v for k, v in data.items() if v is not None}


def _faces_queued(r: AgentResources) -> int:
    return r.faces.depth if r.faces is not None and r.link.connected else 0


def _enrolment_status(r: AgentResources) -> dict[str, Any] | None:
    """Faces kept for naming: queued on disk, published, and dropped by the bounds (None when off)."""
    faces = r.faces
    if faces is None:
        return None
    return {
        "faces_queued": faces.store.depth,
        "faces_bytes": faces.store.bytes,
        "faces_published": faces.published,
        "faces_dropped": faces.store.dropped_total,
        "faces_unstored": faces.unstored,
    }
