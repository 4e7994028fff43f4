"""The agent's one MQTT connection: drains the outbox, publishes availability and status,
and dispatches subscribed messages, reconnecting forever with backoff.

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
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiomqtt
import paho.mqtt.client as paho_mqtt
import structlog
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from structlog.typing import FilteringBoundLogger

from agent.config import MqttConfig
from agent.events.schema import EventBase
from agent.runtime.credentials import resolve_login, tls_context, tls_enabled
from agent.runtime.outbox import Outbox, OutboxRow
from agent.runtime.topics import Topics

E = TypeVar("E", bound=EventBase)
Handler = Callable[[str, bytes], Awaitable[None]]

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


class PublishRefused(aiomqtt.MqttError):
    """An MQTT 5 broker answered PUBACK with a failure reason code (e.g. 0x87 Not authorized)."""

    def __init__(self, topic: str, reason: ReasonCode) -> None:
        super().__init__(f"broker refused publish to {topic}: {reason} (0x{int(reason.value):02x})")
        self.topic = topic
        self.reason = reason


class MqttClient(aiomqtt.Client):
    """aiomqtt's client with two fixes the outbox and `facetrack-trainer publish` depend on
    (aiomqtt 2.x internals, pinned <3).

    - A refused PUBACK (MQTT 5 reason code >= 0x80) is an error, not a success: aiomqtt drops the
      reason code, and acking on it would delete an event the broker threw away.
    - CONNECT fails as soon as the socket dies: aiomqtt ignores a disconnect before CONNACK (a TLS
      alert for a missing client certificate) and waits its whole timeout.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refusals: dict[int, ReasonCode] = {}

    def _on_publish(
        self,
        client: paho_mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        if reason_code.is_failure:
            self._refusals[mid] = reason_code
        super()._on_publish(client, userdata, mid, reason_code, properties)

    async def publish_confirmed(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish and, at QoS >= 1, return only after a successful PUBACK; raise otherwise."""
        info = self._client.publish(topic, payload, qos, retain)
        if info.rc != paho_mqtt.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        try:
            if not info.is_published():
                confirmation = asyncio.Event()
                with self._pending_call(info.mid, confirmation, self._pending_publishes):
                    await self._wait_for(confirmation.wait(), timeout=None)
        finally:
            refused = self._refusals.pop(info.mid, None)
        if refused is not None:
            raise PublishRefused(topic, refused)

    def _on_disconnect(
        self,
        client: paho_mqtt.Client,
        userdata: Any,
        flags: paho_mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None = None,
    ) -> None:
        if not self._connected.done():
            lost = aiomqtt.MqttCodeError(reason_code, "Connection lost before CONNACK")
            self._connected.set_exception(lost)
            return
        super()._on_disconnect(client, userdata, flags, reason_code, properties)


class PahoLogTap(logging.Handler):
    """Forwards paho's warnings and errors (which carry the real cause, e.g. the TLS alert) to a
    callback. paho never logs the password, only whether one was sent."""

    def __init__(self, sink: Callable[[logging.LogRecord], None]) -> None:
        super().__init__(level=logging.WARNING)
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self._sink(record)


def _quiet(message: str) -> None:
    del message


def backoff_delay(attempt: int, min_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter, never below min_s nor above max_s.

    attempt 1 waits in [min_s, min_s], attempt 2 in [min_s, 2*min_s], ... capped at max_s.
    """
    max_s = max(max_s, min_s)
    ceiling = min(max_s, min_s * (2.0 ** min(max(attempt - 1, 0), 30)))
    return rng.uniform(min_s, ceiling)


@dataclass
class _Subscription:
    topic_filter: str
    handler: Handler
    qos: int = 1


@dataclass
class LinkStats:
    published: int = 0
    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    handler_errors: int = 0
    refused: int = 0
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
    ) -> None:
        self._config = config
        self._topics = topics
        self._outbox = outbox
        self._log: FilteringBoundLogger = (logger or structlog.get_logger("facetrack.mqtt")).bind(
            broker=f"{config.host}:{config.port}"
        )
        self._window = max(1, window)
        self._rng = rng or random.Random()
        self._client_id = config.client_id or f"facetrack-{topics.device_id}"
        # Config mistakes surface here as one line (ConfigError); a broker that is down does not.
        resolve_login(config)
        tls_context(config)
        self._subscriptions: list[_Subscription] = []
        self._client: MqttClient | None = None
        self._wake = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._stop_deadline = 0.0
        self._finished = asyncio.Event()
        self._running = False
        self._run_task: asyncio.Task[Any] | None = None
        self._force_stopped = False
        self._background: set[asyncio.Task[Any]] = set()
        self._stats = LinkStats()
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
    def stats(self) -> dict[str, Any]:
        s = self._stats
        return {
            "connected": self.connected,
            "published": s.published,
            "reconnects": max(0, s.connects - 1),
            "connects": s.connects,
            "connect_failures": s.connect_failures,
            "disconnects": s.disconnects,
            "handler_errors": s.handler_errors,
            "refused": s.refused,
            "last_error": s.last_error,
            "connected_for_s": round(time.monotonic() - s.connected_since, 3) if s.connected_since else None,
            "outbox_depth": self._outbox.depth,
            "events_dropped": self._outbox.dropped_total,
        }

    def emit(self, draft: E) -> E:
        """Append a draft event to the outbox (assigning its seq) and wake the drain loop."""
        event = self._outbox.append(draft)
        self._wake.set()
        return event

    def notify(self) -> None:
        """Wake the drain loop; call after `outbox.append`."""
        self._wake.set()

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        """Route messages matching `topic_filter` to `handler(topic, payload)`.

        Kept across reconnects. Handlers run one at a time in arrival order on the link's reader;
        an exception is logged and counted, and the link carries on.
        """
        aiomqtt.Wildcard(topic_filter)  # raises ValueError on a malformed filter, now, not later
        sub = _Subscription(topic_filter, handler, qos)
        self._subscriptions.append(sub)
        client = self._client
        if client is not None:
            self._spawn(self._subscribe_one(client, sub))

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
                self._log.info(
                    "mqtt_connecting",
                    attempt=attempt,
                    client_id=self._client_id,
                    protocol=self._config.protocol,
                    tls=tls_enabled(self._config),
                    username=self._config.username or None,
                )
                connected = False
                self._client_error = None
                try:
                    client = self._make_client()
                    async with client:
                        connected = True
                        session_began = time.monotonic()
                        try:
                            await self._session(client)
                        finally:
                            # Reset the backoff only after a stable session, so two agents that
                            # share a client id (and kick each other off) do not reconnect in a
                            # tight loop.
                            if time.monotonic() - session_began >= STABLE_SESSION_S:
                                attempt = 0
                except* aiomqtt.MqttError as group:
                    self._note_error(group, connected)
                except* OSError as group:
                    self._note_error(group, connected)
                except* Exception as group:
                    # Anything else (a full disk on ack, a TLS file that vanished) must not end the
                    # link for good: log it with its traceback and retry like a dropped connection.
                    self._note_error(group, connected)
                    self._log.error("mqtt_link_error", exc_info=group.exceptions[0])
                finally:
                    self._client = None
                    self._stats.connected_since = None
                if self._stop_requested.is_set():
                    break
                delay = backoff_delay(
                    max(attempt, 1), self._config.reconnect_min_s, self._config.reconnect_max_s, self._rng
                )
                self._log.info(
                    "mqtt_reconnect_wait",
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
        self._wake.set()
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

    def _note_error(self, group: BaseExceptionGroup[Any], connected: bool) -> None:
        exc = group.exceptions[0]
        error = f"{type(exc).__name__}: {exc}"
        if self._client_error and self._client_error not in error:
            error = f"{error} ({self._client_error})"
        self._stats.last_error = error
        if connected:
            self._stats.disconnects += 1
            self._log.warning("mqtt_disconnected", error=self._stats.last_error)
        else:
            self._stats.connect_failures += 1
            self._log.warning("mqtt_connect_failed", error=self._stats.last_error)

    def _make_client(self) -> MqttClient:
        cfg = self._config
        # The file's permissions were checked (and warned about) once, when the link was made.
        login = resolve_login(cfg, warn=_quiet)
        if login.password_dropped:
            self._log.warning("mqtt_password_ignored", reason="no mqtt.username set")
        v5 = cfg.protocol == "5"
        client = MqttClient(
            cfg.host,
            cfg.port,
            identifier=self._client_id,
            username=login.username,
            password=login.password.reveal() if login.password is not None else None,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            will=aiomqtt.Will(self._topics.availability, OFFLINE, qos=1, retain=True),
            clean_session=None if v5 else True,
            # paho rejects any clean_start other than its default on MQTT 3.1.1.
            clean_start=True if v5 else paho_mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            keepalive=cfg.keepalive_s,
            timeout=max(10.0, float(cfg.keepalive_s)),
            max_inflight_messages=max(20, self._window),
            # Built per connection attempt, so a renewed client certificate is used on reconnect.
            tls_context=tls_context(cfg),
            logger=self._paho_logger,
        )
        # A full window of in-flight publishes is our design, not the warning sign aiomqtt assumes.
        client.pending_calls_threshold = self._window + 10
        return client

    async def _session(self, client: MqttClient) -> None:
        self._stats.connects += 1
        self._stats.connected_since = time.monotonic()
        self._log.info("mqtt_connected", client_id=self._client_id, outbox_depth=self._outbox.depth)
        async with asyncio.TaskGroup() as group:
            # The reader ends the session: when the connection drops its iterator raises MqttError,
            # which cancels the drain and unwinds the whole group.
            reader = group.create_task(self._read(client))
            await client.publish(self._topics.availability, ONLINE, qos=1, retain=True)
            # Index over the live list: a subscribe() made during these awaits is still covered,
            # and there is no await between the last one and publishing the client below.
            index = 0
            while index < len(self._subscriptions):
                await self._subscribe_one(client, self._subscriptions[index])
                index += 1
            self._client = client
            drain = group.create_task(self._drain(client))
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
        self._log.info("mqtt_stopped", outbox_depth=self._outbox.depth, published=self._stats.published)

    async def _subscribe_one(self, client: aiomqtt.Client, sub: _Subscription) -> None:
        try:
            await client.subscribe(sub.topic_filter, qos=sub.qos)
        except aiomqtt.MqttError as exc:
            # A refused or timed-out SUBSCRIBE on a live connection: retried on the next connect.
            self._log.error("mqtt_subscribe_failed", topic_filter=sub.topic_filter, error=str(exc))

    async def _drain(self, client: MqttClient) -> None:
        """Publish queued events oldest first with a sliding window of in-flight QoS 1 messages;
        each event is deleted from the outbox only after its PUBACK, in seq order.

        Sliding, not batch-and-wait: a broker without TCP_NODELAY (mosquitto's default) holds
        back PUBACKs until our TCP ACK, which Linux delays by up to 40 ms when we have nothing to
        send; keeping PUBLISHes flowing piggybacks that ACK (measured in bench/outbox.py).
        """
        outbox = self._outbox
        events_topic = self._topics.events
        refusals = 0
        inflight: deque[tuple[OutboxRow, asyncio.Future[None]]] = deque()
        last_sent = 0
        try:
            while True:
                # After a refusal, stop-and-wait until one succeeds: nothing behind a refused event
                # may be accepted ahead of it, or subscribers would see seqs out of order.
                room = (1 if refusals else self._window) - len(inflight)
                if room > 0:
                    # Futures start in creation order and paho writes each PUBLISH in its first
                    # step, so the wire order is seq order.
                    for row in outbox.peek(room, after_seq=last_sent):
                        topic = row.topic or events_topic
                        inflight.append(
                            (row, asyncio.ensure_future(client.publish_confirmed(topic, row.payload)))
                        )
                        last_sent = row.seq
                if not inflight:
                    if self._stop_requested.is_set():
                        return
                    self._wake.clear()
                    # Re-check after clearing: an append between peek() and clear() must not be lost.
                    if not outbox.peek(1, after_seq=last_sent):
                        await self._wake.wait()
                    continue
                head = inflight[0][1]
                with contextlib.suppress(PublishRefused):
                    await head  # any other error ends the session; the finally below cleans up
                acked: list[int] = []
                refused: PublishRefused | None = None
                while inflight and inflight[0][1].done():
                    row, fut = inflight[0]
                    exc = fut.exception()
                    if isinstance(exc, PublishRefused):
                        refused = exc
                        break
                    if exc is not None:
                        raise exc
                    acked.append(row.seq)
                    inflight.popleft()
                if acked:
                    outbox.ack_many(acked)
                    self._stats.published += len(acked)
                if refused is None:
                    refusals = 0
                    continue
                # Keep the refused event and everything after it; later ones already in flight may
                # be accepted meanwhile and will be sent again (at least once).
                refused_seq = inflight[0][0].seq
                for _, fut in inflight:
                    fut.cancel()
                inflight.clear()
                last_sent = refused_seq - 1
                refusals += 1
                self._stats.refused += 1
                self._stats.last_error = str(refused)
                cfg = self._config
                delay = backoff_delay(refusals, cfg.reconnect_min_s, cfg.reconnect_max_s, self._rng)
                # Typically a broker ACL that forbids our topic: events stay queued (the outbox
                # bound still applies) until the operator fixes it; retry with backoff meanwhile.
                self._log.error(
                    "mqtt_publish_refused",
                    error=str(refused),
                    seq=refused_seq,
                    retry_in_s=round(delay, 3),
                    outbox_depth=outbox.depth,
                )
                if self._stop_requested.is_set():
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_requested.wait(), timeout=delay)
        finally:
            for _, fut in inflight:
                if not fut.done():
                    fut.cancel()
                elif not fut.cancelled():
                    fut.exception()  # retrieved so asyncio does not log "never retrieved"

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = message.topic.value
            raw = message.payload
            payload = raw if isinstance(raw, bytes | bytearray) else str(raw or "").encode()
            for sub in list(self._subscriptions):
                if not message.topic.matches(sub.topic_filter):
                    continue
                try:
                    await sub.handler(topic, bytes(payload))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._stats.handler_errors += 1
                    self._log.error(
                        "mqtt_handler_failed",
                        topic=topic,
                        topic_filter=sub.topic_filter,
                        error=f"{type(exc).__name__}: {exc}",
                        payload_bytes=len(payload),
                    )

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
