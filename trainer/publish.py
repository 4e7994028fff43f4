"""Push a bundle to one device or the fleet (retained, QoS 1) and collect the devices' answers."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

import aiomqtt

from agent.classifier.bundle import parse_bundle

FLEET = "all"


@dataclass
class DeviceAnswer:
    device: str
    result: str  # "applied", "rejected" or "current" (the device already ran this very bundle)
    version: str | None
    reason: str
    apply_latency_s: float | None
    seen_after_s: float

    @property
    def failed(self) -> bool:
        return self.result == "rejected"


@dataclass
class BrokerOptions:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    tls: bool = False
    prefix: str = "facetrack"


def parse_broker(text: str, default_port: int = 1883) -> tuple[str, int]:
    """HOST, HOST:PORT or [IPv6]:PORT."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest.lstrip(":") or default_port)
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    return host, int(port)


def _tls_context(options: BrokerOptions) -> ssl.SSLContext | None:
    if not options.tls and options.ca_file is None:
        return None
    context = ssl.create_default_context(cafile=str(options.ca_file) if options.ca_file else None)
    return context


async def publish_bundle(
    data: bytes,
    device: str,
    options: BrokerOptions,
    *,
    wait_s: float,
    expect: int | None = None,
) -> tuple[str, list[DeviceAnswer]]:
    """Publish `data` and gather model_applied / model_rejected answers for its version.

    Waits `wait_s` seconds; returns early once the device (or `expect` devices) answered.
    """
    version = parse_bundle(data).manifest.model_version
    topic = f"{options.prefix}/{device}/model"
    answers: dict[str, DeviceAnswer] = {}
    wanted = 1 if device != FLEET else expect
    async with aiomqtt.Client(
        options.host,
        options.port,
        username=options.username,
        password=options.password,
        tls_context=_tls_context(options),
        identifier=f"facetrack-trainer-{int(time.time() * 1000) % 10**9}",
    ) as client:
        # Subscribe first so a fast device's answer cannot slip by before we listen.
        await client.subscribe(f"{options.prefix}/+/events", qos=1)
        started = time.monotonic()
        await client.publish(topic, data, qos=1, retain=True)
        try:
            async with asyncio.timeout(wait_s):
                async for message in client.messages:
                    answer = _answer(message.topic.value, message.payload, version, options.prefix, started)
                    if answer is None or (device != FLEET and answer.device != device):
                        continue
                    answers.setdefault(answer.device, answer)
                    if wanted is not None and len(answers) >= wanted:
                        break
        except TimeoutError:
            pass
    return topic, sorted(answers.values(), key=lambda a: a.device)


def _answer(topic: str, payload: object, version: str, prefix: str, started: float) -> DeviceAnswer | None:
    if not isinstance(payload, bytes | bytearray):
        return None
    try:
        event = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(event, dict) or event.get("type") not in ("model_applied", "model_rejected"):
        return None
    if event.get("model_version") != version:
        return None
    parts = topic.split("/")
    device = str(event.get("device") or (parts[-2] if len(parts) >= 2 else "?"))
    elapsed = round(time.monotonic() - started, 3)
    if event["type"] == "model_applied":
        latency = event.get("apply_latency_s")
        result = "current" if event.get("already_running") else "applied"
        note = "already running this bundle" if result == "current" else ""
        return DeviceAnswer(
            device, result, version, note, float(latency) if latency is not None else None, elapsed
        )
    return DeviceAnswer(device, "rejected", version, str(event.get("reason", "")), None, elapsed)


def format_table(answers: list[DeviceAnswer]) -> str:
    header = ("device", "result", "version", "apply latency", "reason")
    rows = [
        (
            a.device,
            a.result,
            a.version or "-",
            f"{a.apply_latency_s:.3f} s" if a.apply_latency_s is not None else "-",
            a.reason or "-",
        )
        for a in answers
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)
