"""The outbox drain: moves queued events to the broker over one live connection, deleting each
only after its PUBACK."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

from structlog.typing import FilteringBoundLogger

from agent.runtime.mqtt_client import MqttClient, PublishRefused
from agent.runtime.outbox import Outbox, OutboxRow


class OutboxDrain:
    """Drains `outbox` on each connection `run()` is given; `notify()` wakes it for new rows.

    Outlives connections: the counters and the wake-up survive a reconnect. The stop event is the
    link's, so a drain that sees it with nothing in flight ends instead of waiting.
    """

    def __init__(
        self,
        outbox: Outbox,
        events_topic: str,
        window: int,
        stop_requested: asyncio.Event,
        retry_delay: Callable[[int], float],
        on_refused: Callable[[str], None],
        log: FilteringBoundLogger,
    ) -> None:
        self._outbox = outbox
        self._events_topic = events_topic
        self._window = max(1, window)
        self._stop_requested = stop_requested
        self._retry_delay = retry_delay
        # Not a counter of ours: the link reports one last_error for refusals and dropped
        # connections alike, whichever came last.
        self._on_refused = on_refused
        self._log = log
        self._wake = asyncio.Event()
        self.published = 0
        self.refused = 0

    def notify(self) -> None:
        """Wake the drain; call after appending to the outbox."""
        self._wake.set()

    async def run(self, client: MqttClient) -> None:
        """Publish queued events oldest first with a sliding window of in-flight QoS 1 messages;
        each event is deleted from the outbox only after its PUBACK, in seq order.

        Sliding, not batch-and-wait: a broker without TCP_NODELAY (mosquitto's default) holds
        back PUBACKs until our TCP ACK, which Linux delays by up to 40 ms when we have nothing to
        send; keeping PUBLISHes flowing piggybacks that ACK (measured in bench/outbox.py).
        """
        outbox = self._outbox
        events_topic = self._events_topic
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
                    self.published += len(acked)
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
                self.refused += 1
                self._on_refused(str(refused))
                delay = self._retry_delay(refusals)
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
