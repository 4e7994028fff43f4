"""The agent's one MQTT connection: drains the outbox, publishes availability and status,
and dispatches subscribed messages, reconnecting forever with backoff.

With several brokers (the nodes of a cluster, `[mqtt] brokers`) the link uses the first that
answers and stays on it; when its connection is lost or a connect fails it tries the next at once,
and waits the backoff only after every broker failed in a row. The outbox is per device, not per
broker, so a move loses nothing: unacknowledged events are sent again to the next broker.

Delivery is at-least-once: an event leaves the outbox only after its PUBACK, so an event whose
PUBACK was lost with the connection is sent again after reconnect. Subscribers dedupe by `seq`.
MQTT sessions are clean on purpose: the outbox, not the broker, is the durable queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiomqtt
import structlog
from structlog.typing import FilteringBoundLogger

from agent.broker_address import BrokerAddress, BrokerRotation
from agent.config import ClassifierConfig, MqttConfig
from agent.events.schema import EventBase
from agent.runtime.credentials import resolve_login, tls_context, tls_enabled
from agent.runtime.link_client import link_client

# Re-exported: bench/fleet.py and the tests import the client from the link.
from agent.runtime.mqtt_client import MqttClient as MqttClient
from agent.runtime.mqtt_client import PublishRefused as PublishRefused
from agent.runtime.outbox import Outbox
from agent.runtime.outbox_drain import OutboxDrain
from agent.runtime.subscriptions import Handler, Subscriptions
from agent.runtime.topics import Topics

E = TypeVar("E", bound=EventBase)

ONLINE = b"online"
OFFLINE = b"offline"
STOPPED = b"stopped"

# In-flight QoS 1 publishes per window: enough to hide a LAN round trip, small enough that a
# reconnect re-sends little. paho's own in-flight limit is raised to match.
DEFAULT_WINDOW = 16
# After the flush timeout: time for the retained `stopped` publish and the DISCONNECT.
STOP_GRACE_S = 2.0
# A session shorter than this does not reset the reconnect backoff.
STABLE_SESSION_S = 10.0


DEFAULT_MAX_BUNDLE_BYTES: int = ClassifierConfig.model_fields["max_bundle_bytes"].default


class PahoLogTap(logging.Handler):
    """Forwards paho's warnings and errors (which carry the real cause, e.g. the TLS alert) to a
    callback. paho never logs the password, only whether one was sent."""

    def __init__(self, sink: Callable[[logging.LogRecord], None]) -> None:
        super().__init__(level=logging.WARNING)
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self._sink(record)


def backoff_delay(attempt: int, min_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter, never below min_s nor above max_s.

    attempt 1 waits in [min_s, min_s], attempt 2 in [min_s, 2*min_s], ... capped at max_s.
    """
    max_s = max(max_s, min_s)
    ceiling = min(max_s, min_s * (2.0 ** min(max(attempt - 1, 0), 30)))
    return rng.uniform(min_s, ceiling)


@dataclass
class LinkStats:
    """Connection counters; the drain and the subscriptions keep their own."""

    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    last_error: str | None = None
    connected_since: float | None = None


class MqttLink:
    """One long-lived task (`run()`) owning the MQTT connection; everything else is cheap calls.

    Use from the event loop thread only.
    """

    def __init__(
        self,
        config: MqttConfig,
        topics: Topics,
        outbox: Outbox,
        logger: FilteringBoundLogger | None = None,
        *,
        window: int = DEFAULT_WINDOW,
        rng: random.Random | None = None,
        max_bundle_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
    ) -> None:
        self._config = config
        self._max_bundle_bytes = max_bundle_bytes
        self._topics = topics
        self._outbox = outbox
        self._rotation = BrokerRotation(config.addresses())
        self._broker: BrokerAddress | None = None
        self._log: FilteringBoundLogger = logger or structlog.get_logger("facetrack.mqtt")
        self._window = max(1, window)
        self._rng = rng or random.Random()
        self._client_id = config.client_id or f"facetrack-{topics.device_id}"
        # Config mistakes surface here as one line (ConfigError); a broker that is down does not.
        resolve_login(config)
        tls_context(config)
        self._subscriptions = Subscriptions(self._log)
        self._client: MqttClient | None = None
        self._stop_requested = asyncio.Event()
        self._stop_deadline = 0.0
        self._finished = asyncio.Event()
        self._running = False
        self._run_task: asyncio.Task[Any] | None = None
        self._force_stopped = False
        self._background: set[asyncio.Task[Any]] = set()
        self._stats = LinkStats()
        self._drain = OutboxDrain(
            outbox,
            topics.events,
            self._window,
            self._stop_requested,
            retry_delay=self._retry_delay,
            on_refused=self._on_refused,
            log=self._log,
        )
        self._client_error: str | None = None
        # A private, unregistered stdlib logger per link: paho's messages end up in our structlog.
        self._paho_logger = logging.Logger("facetrack.mqtt.paho", level=logging.WARNING)
        self._paho_logger.addHandler(PahoLogTap(self._on_paho_log))

    # -- public API ----------------------------------------------------------------------------

    @property
    def topics(self) -> Topics:
        return self._topics

    @property
    def connected(self) -> bool:
        return self._client is not None

    @property
    def broker(self) -> str | None:
        """host:port of the broker the link is connected to (None while not connected)."""
        return str(self._broker) if self._broker is not None and self._client is not None else None

    @property
    def stats(self) -> dict[str, Any]:
        s = self._stats
        return {
            "connected": self.connected,
            "broker": self.broker,
            "brokers": [str(address) for address in self._rotation.addresses],
            "published": self._drain.published,
            "reconnects": max(0, s.connects - 1),
            "connects": s.connects,
            "connect_failures": s.connect_failures,
            "disconnects": s.disconnects,
            "handler_errors": self._subscriptions.handler_errors,
            "refused": self._drain.refused,
            "last_error": s.last_error,
            "connected_for_s": round(time.monotonic() - s.connected_since, 3) if s.connected_since else None,
            "outbox_depth": self._outbox.depth,
            "events_dropped": self._outbox.dropped_total,
        }

    def emit(self, draft: E) -> E:
        """Append a draft event to the outbox (assigning its seq) and wake the drain loop."""
        event = self._outbox.append(draft)
        self._drain.notify()
        return event

    def notify(self) -> None:
        """Wake the drain loop; call after `outbox.append`."""
        self._drain.notify()

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        """Route messages matching `topic_filter` to `handler(topic, payload)`.

        Kept across reconnects. Handlers run one at a time in arrival order on the link's reader;
        an exception is logged and counted, and the link carries on.
        """
        sub = self._subscriptions.add(topic_filter, handler, qos)
        client = self._client
        if client is not None:
            self._spawn(self._subscriptions.subscribe_one(client, sub))

    async def publish_status(self, payload: dict[str, Any]) -> bool:
        """Retained JSON on the status topic; best effort: False when offline or it failed."""
        body = json.dumps(payload, separators=(",", ":"), default=str).encode()
        return await self.publish_raw(self._topics.status, body, qos=1, retain=True)

    async def publish_raw(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> bool:
        """Publish outside the outbox (discovery, acks); waits for PUBACK at QoS 1. Best effort."""
        client = self._client
        if client is None:
            return False
        try:
            await client.publish_confirmed(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError as exc:
            self._log.warning("mqtt_publish_failed", topic=topic, error=str(exc))
            return False
        return True

    async def run(self) -> None:
        """Connect, drain, dispatch; reconnect with backoff until `stop()`. Never raises MqttError."""
        if self._running:
            raise RuntimeError("MqttLink.run() is already running")
        self._running = True
        self._run_task = asyncio.current_task()
        self._finished.clear()
        attempt = 0
        try:
            while not self._stop_requested.is_set():
                attempt += 1
                address = self._rotation.current
                self._log.info(
                    "mqtt_connecting",
                    broker=str(address),
                    attempt=attempt,
                    client_id=self._client_id,
                    protocol=self._config.protocol,
                    tls=tls_enabled(self._config),
                    username=self._config.username or None,
                )
                connected = False
                self._client_error = None
                try:
                    client = self._make_client(address)
                    async with client:
                        connected = True
                        self._broker = address
                        session_began = time.monotonic()
                        try:
                            await self._session(client)
                        finally:
                            # Reset the backoff (and the round of brokers) only after a stable
                            # session, so two agents that share a client id (and kick each other
                            # off) do not reconnect in a tight loop, on one broker or across several.
                            if time.monotonic() - session_began >= STABLE_SESSION_S:
                                attempt = 0
                                self._rotation.start_round()
                except* aiomqtt.MqttError as group:
                    self._note_error(group, connected, address)
                except* OSError as group:
                    self._note_error(group, connected, address)
                except* Exception as group:
                    # Anything else (a full disk on ack, a TLS file that vanished) must not end the
                    # link for good: log it with its traceback and retry like a dropped connection.
                    self._note_error(group, connected, address)
                    self._log.error("mqtt_link_error", exc_info=group.exceptions[0])
                finally:
                    self._client = None
                    self._broker = None
                    self._stats.connected_since = None
                if self._stop_requested.is_set():
                    break
                self._rotation.failed()
                if not self._rotation.round_failed:
                    # Another broker of the list has not failed yet in this round: go there now.
                    self._log.warning(
                        "mqtt_failover",
                        failed=str(address),
                        next=str(self._rotation.current),
                        error=self._stats.last_error,
                        outbox_depth=self._outbox.depth,
                    )
                    continue
                self._rotation.start_round()
                delay = backoff_delay(
                    max(attempt, 1), self._config.reconnect_min_s, self._config.reconnect_max_s, self._rng
                )
                self._log.info(
                    "mqtt_reconnect_wait",
                    next=str(self._rotation.current),
                    attempt=attempt,
                    delay_s=round(delay, 3),
                    error=self._stats.last_error,
                    outbox_depth=self._outbox.depth,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_requested.wait(), timeout=delay)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self._force_stopped or task is None:
                raise
            # Our own stop() gave up waiting and cancelled us: that is a normal end of run().
            task.uncancel()
        finally:
            self._running = False
            self._client = None
            for task in list(self._background):
                task.cancel()
            self._finished.set()

    async def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Flush what reaches the broker within the timeout, publish retained `stopped`, disconnect
        cleanly (so the broker does not fire the `offline` will). Undelivered events stay queued."""
        self._stop_deadline = time.monotonic() + max(0.0, flush_timeout_s)
        self._stop_requested.set()
        self._drain.notify()
        if not self._running:
            return
        try:
            # The margin covers the `stopped` publish and the DISCONNECT after the flush.
            await asyncio.wait_for(self._finished.wait(), timeout=flush_timeout_s + STOP_GRACE_S)
        except TimeoutError:
            # Typically a CONNECT stuck on an unreachable host: give up on the goodbye, end run().
            self._log.warning("mqtt_stop_timeout", flush_timeout_s=flush_timeout_s)
            task = self._run_task
            if task is not None and not task.done():
                self._force_stopped = True
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(self._finished.wait(), timeout=STOP_GRACE_S)

    # -- internals -----------------------------------------------------------------------------

    def _on_paho_log(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self._client_error = message
        self._log.debug("mqtt_client_log", message=message, level=record.levelname.lower())

    def _retry_delay(self, attempt: int) -> float:
        cfg = self._config
        return backoff_delay(attempt, cfg.reconnect_min_s, cfg.reconnect_max_s, self._rng)

    def _on_refused(self, error: str) -> None:
        self._stats.last_error = error

    def _note_error(self, group: BaseExceptionGroup[Any], connected: bool, address: BrokerAddress) -> None:
        exc = group.exceptions[0]
        error = f"{type(exc).__name__}: {exc}"
        if self._client_error and self._client_error not in error:
            error = f"{error} ({self._client_error})"
        self._stats.last_error = error
        if connected:
            self._stats.disconnects += 1
            self._log.warning("mqtt_disconnected", broker=str(address), error=self._stats.last_error)
        else:
            self._stats.connect_failures += 1
            self._log.warning("mqtt_connect_failed", broker=str(address), error=self._stats.last_error)

    def _make_client(self, address: BrokerAddress | None = None) -> MqttClient:
        client, password_dropped = link_client(
            self._config,
            address or self._rotation.current,
            client_id=self._client_id,
            will=aiomqtt.Will(self._topics.availability, OFFLINE, qos=1, retain=True),
            window=self._window,
            max_bundle_bytes=self._max_bundle_bytes,
            logger=self._paho_logger,
        )
        if password_dropped:
            self._log.warning("mqtt_password_ignored", reason="no mqtt.username set")
        return client

    async def _session(self, client: MqttClient) -> None:
        self._stats.connects += 1
        self._stats.connected_since = time.monotonic()
        self._log.info(
            "mqtt_connected",
            broker=str(self._broker),
            client_id=self._client_id,
            outbox_depth=self._outbox.depth,
        )
        async with asyncio.TaskGroup() as group:
            # The reader ends the session: when the connection drops its iterator raises MqttError,
            # which cancels the drain and unwinds the whole group.
            reader = group.create_task(self._subscriptions.read(client))
            await client.publish(self._topics.availability, ONLINE, qos=1, retain=True)
            # No await between the last SUBSCRIBE and publishing the client: a subscribe() from then
            # on is sent by subscribe() itself, before that by subscribe_all().
            await self._subscriptions.subscribe_all(client)
            self._client = client
            drain = group.create_task(self._drain.run(client))
            await self._stop_requested.wait()
            remaining = self._stop_deadline - time.monotonic()
            if not drain.done():
                try:
                    await asyncio.wait_for(asyncio.shield(drain), timeout=max(0.0, remaining))
                except TimeoutError:
                    drain.cancel()
                    self._log.warning("mqtt_stop_flush_incomplete", outbox_depth=self._outbox.depth)
            self._client = None
            await client.publish(self._topics.availability, STOPPED, qos=1, retain=True)
            reader.cancel()
        self._log.info("mqtt_stopped", outbox_depth=self._outbox.depth, published=self._drain.published)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
