"""The link's subscriptions: what to SUBSCRIBE on each connection and whom to hand each message."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiomqtt
from structlog.typing import FilteringBoundLogger

Handler = Callable[[str, bytes], Awaitable[None]]


@dataclass
class Subscription:
    topic_filter: str
    handler: Handler
    qos: int = 1


class Subscriptions:
    """Outlives connections, so every reconnect subscribes to the same filters again."""

    def __init__(self, log: FilteringBoundLogger) -> None:
        self._log = log
        self._subs: list[Subscription] = []
        self.handler_errors = 0

    def add(self, topic_filter: str, handler: Handler, qos: int = 1) -> Subscription:
        aiomqtt.Wildcard(topic_filter)  # raises ValueError on a malformed filter, now, not later
        sub = Subscription(topic_filter, handler, qos)
        self._subs.append(sub)
        return sub

    async def subscribe_all(self, client: aiomqtt.Client) -> None:
        # Index over the live list: an add() made during these awaits is still covered. Returning
        # yields to no one, so the caller can publish its client before the next add().
        index = 0
        while index < len(self._subs):
            await self.subscribe_one(client, self._subs[index])
            index += 1

    async def subscribe_one(self, client: aiomqtt.Client, sub: Subscription) -> None:
        try:
            await client.subscribe(sub.topic_filter, qos=sub.qos)
        except aiomqtt.MqttError as exc:
            # A refused or timed-out SUBSCRIBE on a live connection: retried on the next connect.
            self._log.error("mqtt_subscribe_failed", topic_filter=sub.topic_filter, error=str(exc))

    async def read(self, client: aiomqtt.Client) -> None:
        """Dispatch messages until the connection drops (then the iterator raises MqttError)."""
        async for message in client.messages:
            topic = message.topic.value
            raw = message.payload
            payload = raw if isinstance(raw, bytes | bytearray) else str(raw or "").encode()
            for sub in list(self._subs):
                if not message.topic.matches(sub.topic_filter):
                    continue
                try:
                    await sub.handler(topic, bytes(payload))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.handler_errors += 1
                    self._log.error(
                        "mqtt_handler_failed",
                        topic=topic,
                        topic_filter=sub.topic_filter,
                        error=f"{type(exc).__name__}: {exc}",
                        payload_bytes=len(payload),
                    )
