"""ModelService: receives bundles over MQTT, verifies and installs them, swaps them in between frames.

Threading: every public method runs on the event loop thread. Verification (signature, skops load)
and the disk install run in an executor, so the video loop never waits for them. The new classifier
is only *staged*; the pipeline calls `activate_pending()` at the top of a frame, so a frame is always
classified by exactly one model and no frame is skipped for a reload.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from agent.classifier.bundle import parse_bundle
from agent.classifier.classifier import FaceClassifier
from agent.classifier.errors import BundleError, RejectCode
from agent.classifier.keys import KeyFileError
from agent.classifier.verify import VerifiedBundle, verify_bundle
from agent.config import AgentConfig, ConfigError
from agent.events.schema import EventBase, ModelApplied, ModelRejected, utc_now
from agent.runtime.key_files import load_trusted_keys
from agent.runtime.model_store import ModelStore
from agent.runtime.topics import Topics
from agent.vision.types import FaceEmbedder


@dataclass(frozen=True, slots=True)
class _Staged:
    bundle: VerifiedBundle
    arrived: float
    previous_version: str | None
    already_running: bool = False


class ModelService:
    """The agent's classifier slot: `current` is what the pipeline uses for the frame at hand."""

    def __init__(
        self,
        config: AgentConfig,
        emit: Callable[[EventBase], None],
        logger: Any = None,
        *,
        embedder: FaceEmbedder | None = None,
        executor: Executor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._emit = emit
        self._log = logger if logger is not None else structlog.get_logger("facetrack.classifier")
        self._executor = executor
        self._clock = clock
        try:
            self._trusted = load_trusted_keys(config.classifier.trusted_keys)
        except KeyFileError as exc:
            raise ConfigError(f"config error: classifier.trusted_keys: {exc}") from None
        self._embedder_id: str | None = None
        self._dim: int | None = None
        if embedder is not None:
            self._embedder_id, self._dim = embedder.embedder_id, embedder.dim
        self.store = ModelStore(config.state_dir / "models", config.classifier.keep_versions)
        self._current: FaceClassifier | None = None
        self._current_bundle: VerifiedBundle | None = None
        self._staged: _Staged | None = None
        self._awaiting_first_frame: _Staged | None = None
        self._last_frame = 0
        self._lock = asyncio.Lock()

    # -- what the pipeline reads -----------------------------------------------------------------

    @property
    def current(self) -> FaceClassifier | None:
        return self._current

    @property
    def current_version(self) -> str | None:
        return self._current.version if self._current is not None else None

    @property
    def staged_version(self) -> str | None:
        return self._staged.bundle.version if self._staged is not None else None

    def topics(self, topics: Topics) -> list[str]:
        """The topics to subscribe `handle_message` to: this device's and the fleet's model topic."""
        return [topics.model, topics.fleet_model]

    # -- lifecycle ---------------------------------------------------------------------------------

    def load_installed(self) -> FaceClassifier | None:
        """Load the newest installed bundle that still verifies (keys may have been rotated out)."""
        self._ensure_embedder()
        result = self.store.load_newest(self._verifier(running_version=None))
        for path, reason in result.skipped:
            self._log.warning("model_store_skipped", file=str(path), reason=reason)
        if result.bundle is None:
            self._log.info("model_none_installed", store=str(self.store.root))
            self._current = None
            return None
        self._current = result.bundle.classifier
        self._current_bundle = result.bundle
        self._log.info(
            "model_loaded",
            version=result.bundle.version,
            labels=result.bundle.classifier.labels,
            file=str(result.path),
        )
        return self._current

    async def handle_message(self, topic: str, payload: bytes) -> None:
        """A bundle arrived on a model topic: verify, install and stage it, or emit model_rejected."""
        arrived = self._clock()
        if not payload:
            # An empty retained message is how an operator clears the topic; nothing to install.
            self._log.info("model_topic_cleared", topic=topic)
            return
        limit = self._config.classifier.max_bundle_bytes
        if len(payload) > limit:
            # Only over MQTT 3.1.1 (or a broker that ignores our Maximum Packet Size): an MQTT 5
            # broker never sends it. Not parsed, not even for its claimed version.
            self._reject(
                topic,
                None,
                RejectCode.TOO_LARGE,
                f"model message of {len(payload)} bytes exceeds classifier.max_bundle_bytes={limit}",
            )
            return
        async with self._lock:
            pending = self._staged or self._awaiting_first_frame
            if pending is not None and payload == pending.bundle.data:
                # The same push again before its answer went out: a trainer publishing through
                # every node of a cluster reaches a device once per node. The pending answer
                # covers it; verifying it against itself would refuse it as a version clash.
                self._log.info("model_duplicate_delivery", topic=topic, version=pending.bundle.version)
                return
            running = self._current_bundle
            if self._staged is None and running is not None and payload == running.data:
                # The very bundle we run: the retained message redelivered after a restart or a
                # reconnect, or the same file published again. Confirm it (model_applied with
                # already_running) rather than report a rejection every time the agent restarts.
                self._awaiting_first_frame = _Staged(running, arrived, running.version, already_running=True)
                self._log.info("model_already_running", topic=topic, version=running.version)
                return
            loop = asyncio.get_running_loop()
            newest = self.staged_version or self.current_version
            try:
                bundle = await loop.run_in_executor(self._executor, self._verify_and_install, payload, newest)
            except BundleError as exc:
                # Parsed again only on this rare path: the accepted path parses once, in the executor.
                claimed = _claimed_version(payload)
                if exc.code == RejectCode.OLDER_VERSION and self._installed_before(claimed, payload):
                    # A bundle this device installed and has since replaced: the retained message
                    # on the other model topic (fleet vs own), redelivered on every start. Old
                    # news, not a push to refuse; reporting it would raise an alarm each restart.
                    self._log.info("model_superseded_replay", topic=topic, version=claimed)
                    return
                self._reject(topic, claimed, exc.code, exc.reason)
                return
            except OSError as exc:
                self._reject(
                    topic, _claimed_version(payload), RejectCode.INSTALL_FAILED, f"could not install: {exc}"
                )
                return
            self._staged = _Staged(bundle, arrived, self.current_version)
            self._log.info(
                "model_staged",
                topic=topic,
                version=bundle.version,
                labels=bundle.classifier.labels,
                verify_install_s=round(self._clock() - arrived, 4),
            )

    def activate_pending(self) -> bool:
        """Swap in a staged classifier; call between frames. True when the model changed."""
        staged = self._staged
        if staged is None:
            return False
        self._staged = None
        self._current = staged.bundle.classifier
        self._current_bundle = staged.bundle
        self._awaiting_first_frame = staged
        self._log.info("model_activated", version=staged.bundle.version, previous=staged.previous_version)
        return True

    def note_frame_classified(self, frame_index: int, model_version: str | None = None) -> None:
        """After a frame was classified: the first one under a new model completes model_applied.

        Pass `model_version` (the version that classified this frame) when frames are in flight
        across a swap, so a frame still classified by the previous model does not count.
        """
        self._last_frame = max(0, frame_index)
        staged = self._awaiting_first_frame
        if staged is None:
            return
        if model_version is not None and model_version != staged.bundle.version:
            return
        self._awaiting_first_frame = None
        latency = max(0.0, self._clock() - staged.arrived)
        manifest = staged.bundle.manifest
        self._emit(
            ModelApplied(
                device=self._config.device_id,
                ts=utc_now(),
                frame=self._last_frame,
                model_version=manifest.model_version,
                labels=list(manifest.labels),
                apply_latency_s=round(latency, 6),
                previous_version=staged.previous_version,
                already_running=staged.already_running,
            )
        )
        self._log.info("model_applied", version=manifest.model_version, apply_latency_s=round(latency, 4))

    # -- internals ---------------------------------------------------------------------------------

    def _installed_before(self, version: str | None, payload: bytes) -> bool:
        if version is None:
            return False
        try:
            return self.store.path_for(version).read_bytes() == payload
        except (OSError, ValueError):
            return False

    def _ensure_embedder(self) -> None:
        if self._embedder_id is not None:
            return
        # Built only to learn its id and dimension; pass `embedder=` to reuse the pipeline's.
        from agent.vision.factory import build_embedder

        embedder = build_embedder(self._config)
        self._embedder_id, self._dim = embedder.embedder_id, embedder.dim

    def _verifier(self, running_version: str | None) -> Callable[[bytes], VerifiedBundle]:
        def verify(data: bytes) -> VerifiedBundle:
            return verify_bundle(
                data,
                trusted_keys=self._trusted,
                embedder_id=self._embedder_id,
                dim=self._dim,
                running_version=running_version,
                # The device's clock: a future-dated bundle would block every later update.
                now=datetime.now(UTC),
            )

        return verify

    def _verify_and_install(self, payload: bytes, newest: str | None) -> VerifiedBundle:
        self._ensure_embedder()
        bundle = self._verifier(newest)(payload)
        protect = {v for v in (self.current_version, newest) if v is not None}
        self.store.install(bundle.data, bundle.version, protect=protect)
        return bundle

    def _reject(self, topic: str, claimed: str | None, code: RejectCode, reason: str) -> None:
        self._log.warning(
            "model_rejected",
            topic=topic,
            version=claimed,
            code=str(code),
            reason=reason,
            running=self.current_version,
        )
        self._emit(
            ModelRejected(
                device=self._config.device_id,
                ts=utc_now(),
                frame=self._last_frame,
                model_version=claimed,
                reason=reason,
                running_version=self.current_version,
                code=str(code),
            )
        )


def _claimed_version(payload: bytes) -> str | None:
    """The version a bundle claims, when it parses at all (unverified: for the rejection event)."""
    try:
        return parse_bundle(payload).manifest.model_version
    except BundleError:
        return None
