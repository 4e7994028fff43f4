"""What one agent run opens, in the order that reports a bad setup soonest, and closes again.

The state directory's lock, the input, the annotated video and the outbox come before the slow
imports and the models; a failure part-way closes what was already open, and `close` releases
everything, whether the run finished or failed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.config import AgentConfig
from agent.events.schema import EventBase
from agent.pipeline.analyzer import DetectionOptions, FrameAnalyzer
from agent.pipeline.stage import TrackingStage
from agent.runtime.analyzer_pool import AnalyzerPool
from agent.runtime.annotate import AnnotatedVideoWriter
from agent.runtime.blas_threads import limit_blas_threads
from agent.runtime.source import FrameSource
from agent.runtime.status import StatusMonitor
from agent.vision.factory import VisionStack, build_vision_stack, build_worker_stack

if TYPE_CHECKING:
    # Imported for real inside `AgentResources.open`, after the input is open: they are slow to import.
    from agent.runtime.face_publisher import FacePublisher
    from agent.runtime.face_store import FaceStore
    from agent.runtime.homeassistant import HomeAssistantAnnouncer
    from agent.runtime.model_service import ModelService
    from agent.runtime.mqtt_link import MqttLink
    from agent.runtime.outbox import Outbox
    from agent.runtime.state_lock import StateLock
    from agent.runtime.topics import Topics

# Bound on a best-effort publish while stopping (a broker that stopped answering).
STOP_PUBLISH_TIMEOUT_S = 2.0


@dataclass(slots=True)
class AgentResources:
    """What one `AgentApp.run` opened, and the loop tasks it started; `close` releases it."""

    source: FrameSource
    writer: AnnotatedVideoWriter | None
    stack: VisionStack
    pool: AnalyzerPool
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
    # Enrolment (docs/enrolment.md): None unless [enrolment] enabled = true.
    faces: FacePublisher | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        cfg: AgentConfig,
        *,
        open_source: Callable[[], FrameSource],
        vision: VisionStack | None,
        emit: Callable[[EventBase], None],
        status_window: int,
    ) -> AgentResources:
        """Open the input, output, models, model service and outbox; on failure close what was opened.
        `emit` receives the model service's events; it is only called once the caller has stored
        what this returns."""
        from agent.runtime.state_lock import StateLock

        # One agent per state directory, checked before a second one touches the camera or the
        # state directory's files.
        lock = StateLock.acquire(cfg.state_dir)
        try:
            # Then, before the slow imports and model loading: a bad input fails within a second.
            source = open_source()
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
            faces_store = _open_face_store(cfg)
            if faces_store is not None:
                undo.callback(faces_store.close)
            # Before the models' first run: BLAS threads would fight the inference workers.
            limit_blas_threads()
            analyzers, stack = build_analyzers(cfg, vision)
            # Raises ConfigError for an unreadable trusted key.
            service = ModelService(cfg, emit=emit, embedder=stack.embedder)
            link = MqttLink(cfg.mqtt, topics, outbox, max_bundle_bytes=cfg.classifier.max_bundle_bytes)
            inference = ThreadPoolExecutor(max_workers=len(analyzers), thread_name_prefix="inference")
            undo.callback(inference.shutdown, wait=True, cancel_futures=True)
            drawing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="annotate")
            undo.callback(drawing.shutdown, wait=True)
            resources = cls(
                source=source,
                writer=writer,
                stack=stack,
                pool=AnalyzerPool(analyzers),
                service=service,
                outbox=outbox,
                topics=topics,
                link=link,
                announcer=HomeAssistantAnnouncer(cfg.homeassistant, topics, link),
                stage=TrackingStage.from_config(cfg),
                monitor=StatusMonitor(window=status_window),
                inference=inference,
                drawing=drawing,
                lock=lock,
                faces=_face_publisher(cfg, faces_store, link, topics, stack),
            )
            undo.pop_all()
        return resources

    async def close(self) -> None:
        """Release everything, whether the run finished or failed part-way (stops are idempotent)."""
        # A clean run stopped the announcer already; a failed frame loop never got there.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.announcer.stop(), STOP_PUBLISH_TIMEOUT_S)
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.source.stop()
        if self.writer is not None:
            self.writer.close()
        self.inference.shutdown(wait=True, cancel_futures=True)
        self.drawing.shutdown(wait=True)
        self.outbox.close()
        if self.faces is not None:
            self.faces.store.close()
        self.lock.release()


def build_analyzers(
    config: AgentConfig, vision: VisionStack | None
) -> tuple[list[FrameAnalyzer], VisionStack]:
    """One analyzer per inference worker (`vision`, when given, is the only one), and the first stack."""
    first = vision or build_vision_stack(config)
    workers = 1 if first.backend == "edgetpu" or vision is not None else config.inference.workers
    # Extra workers share the first one's rarely used face detector and embedder.
    stacks = [first] + [build_worker_stack(config, first) for _ in range(workers - 1)]
    # One motion background and detection schedule for the camera, shared by the workers.
    crop = config.enrolment.crop_size if config.enrolment.enabled else None
    options = DetectionOptions.from_config(
        config.detection, _input_side(first), config.person_boxes, enrolment_crop=crop
    )
    analyzers = [FrameAnalyzer.from_stack(s, options) for s in stacks]
    return analyzers, first


def _input_side(stack: VisionStack) -> int:
    """The person detector's input height (the smallest useful region); 300 when unknown."""
    model = getattr(stack.person_detector, "model", None)
    shape = getattr(getattr(model, "input", None), "shape", None)
    return int(shape[1]) if shape is not None and len(shape) == 4 else 300


def _open_face_store(cfg: AgentConfig) -> FaceStore | None:
    if not cfg.enrolment.enabled:
        return None
    from agent.runtime.face_store import FaceBounds, FaceStore

    e = cfg.enrolment
    bounds = FaceBounds(e.max_faces, int(e.max_mb * 1024 * 1024), e.max_age_h * 3600.0)
    return FaceStore(cfg.state_dir / "faces.sqlite3", bounds)


def _face_publisher(
    cfg: AgentConfig, store: FaceStore | None, link: MqttLink, topics: Topics, stack: VisionStack
) -> FacePublisher | None:
    if store is None:
        return None
    import structlog

    from agent.runtime.face_publisher import FacePublisher

    return FacePublisher(
        store,
        link,
        topics.faces,
        device=cfg.device_id,
        embedder=stack.embedder.embedder_id,
        jpeg_quality=cfg.enrolment.jpeg_quality,
        log=structlog.get_logger("facetrack.faces"),
    )
