"""Subscribe to every device's faces topic and write what arrives into an inbox (`collect`).

The subscription is QoS 1 with a clean session: faces published while nobody collects wait in the
devices' face stores (within their bounds), not on the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass

import aiomqtt

from agent.runtime.mqtt_link import MqttClient, PahoLogTap
from agent.runtime.topics import FleetTopics
from trainer.inbox import Inbox, InboxError
from trainer.publish import BrokerOptions, PublishError, connected


@dataclass(slots=True)
class CollectReport:
    received: int = 0
    added: int = 0
    duplicates: int = 0
    bad: int = 0
    stopped_by: str = "time"


async def collect(
    options: BrokerOptions,
    inbox: Inbox,
    *,
    for_s: float | None,
    on_ready: Callable[[str], None],
    on_bad: Callable[[str, str], None],
    stop: asyncio.Event | None = None,
) -> CollectReport:
    """Until `for_s` passes or `stop` is set (SIGINT/SIGTERM set it too)."""
    topic = FleetTopics(options.prefix).all_faces
    report = CollectReport()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    causes: list[str] = []
    paho_logger = logging.Logger("facetrack.trainer.paho", level=logging.WARNING)
    paho_logger.addHandler(PahoLogTap(lambda record: causes.append(record.getMessage())))
    try:
        # The first broker of the list that answers, as `publish` and the agent connect.
        async with connected(options, paho_logger) as client:
            granted = await client.subscribe(topic, qos=1)
            codes = [code if isinstance(code, int) else int(code.value) for code in granted or ()]
            if any(code >= 0x80 for code in codes):
                # MQTT 5 SUBACK 0x87: the broker's ACL does not let this user read faces.
                raise PublishError(f"the broker refused the subscription to {topic} (reason {codes[0]:#x})")
            on_ready(topic)
            reader = asyncio.ensure_future(_read(client, inbox, report, on_bad))
            stopper = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait(
                {reader, stopper}, timeout=for_s, return_when=asyncio.FIRST_COMPLETED
            )
            report.stopped_by = "signal" if stopper in done else "time"
            for task in (reader, stopper):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if reader in done and reader.exception() is not None:
                raise reader.exception()  # type: ignore[misc]
    except aiomqtt.MqttError as exc:
        cause = causes[-1] if causes else ""
        raise PublishError(f"{exc} ({cause})" if cause and cause not in str(exc) else str(exc)) from None
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    return report


async def _read(
    client: MqttClient, inbox: Inbox, report: CollectReport, on_bad: Callable[[str, str], None]
) -> None:
    async for message in client.messages:
        report.received += 1
        payload = message.payload
        data = payload if isinstance(payload, bytes | bytearray) else str(payload).encode()
        try:
            if inbox.add(bytes(data)):
                report.added += 1
            else:
                report.duplicates += 1
        except InboxError as exc:
            report.bad += 1
            on_bad(str(message.topic), str(exc))
