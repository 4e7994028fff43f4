"""Push a bundle to one device or the fleet (retained, QoS 1) and collect the devices' answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import aiomqtt

from agent.broker_address import BrokerAddress
from agent.classifier.bundle import ParsedBundle, parse_bundle
from agent.classifier.errors import BundleError, RejectCode
from agent.classifier.signature import check_signed
from agent.config import MqttConfig
from agent.runtime.credentials import Login, Secret
from agent.runtime.mqtt_link import MqttClient, PahoLogTap
from agent.runtime.topics import FLEET, FleetTopics


class PublishError(Exception):
    """The broker could not be reached or refused us; one line, with the TLS/MQTT cause."""


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
    """Where and how to connect. The CLI fills it from an agent-style [mqtt] config with
    `agent.runtime.credentials` (resolve_login, tls_context), exactly as the agent connects."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: Secret | None = None
    prefix: str = "facetrack"
    protocol: Literal["3.1.1", "5"] = "5"
    # None = plain TCP; a context with a client certificate loaded = mutual TLS.
    tls_context: ssl.SSLContext | None = None
    # The nodes of a broker cluster, tried in order (the first that answers is used, as the
    # agent does); empty = host:port.
    brokers: tuple[BrokerAddress, ...] = ()
    # Set on connect: the broker that answered, for the report.
    used: str | None = field(default=None, compare=False)
    # Set by a publish to a list: every node the retained message went through, and the nodes
    # that could not take it (address: reason).
    published_via: list[str] = field(default_factory=list, compare=False)
    unreached: list[str] = field(default_factory=list, compare=False)

    @classmethod
    def from_mqtt(cls, mqtt: MqttConfig, login: Login, tls: ssl.SSLContext | None) -> BrokerOptions:
        """Connect as an agent with this `[mqtt]` would, with its resolved login and TLS context."""
        return cls(
            host=mqtt.host,
            port=mqtt.port,
            username=login.username,
            password=login.password,
            prefix=mqtt.topic_prefix,
            protocol=mqtt.protocol,
            tls_context=tls,
            brokers=mqtt.addresses(),
        )

    def addresses(self) -> tuple[BrokerAddress, ...]:
        return self.brokers or (BrokerAddress(self.host, self.port),)


def check_bundle(data: bytes, trusted_keys: dict[str, Any] | None) -> tuple[ParsedBundle, bool]:
    """What an agent would check before installing, done before a bundle becomes the retained model
    message (where a bad one would be refused by every agent at every restart): the structure, the
    payload's sha256 and size against the manifest, and, when public keys are at hand, the
    signature. The payload is not loaded here: that needs scikit-learn and skops, which cost
    seconds before anything is sent; every agent loads it before it runs it. Returns the parsed
    bundle and whether the signature was checked; raises BundleError saying why the bundle must
    not be sent."""
    parsed = parse_bundle(data)
    manifest = parsed.manifest
    if parsed.payload_sha256 != manifest.payload_sha256 or len(parsed.payload) != manifest.payload_size:
        raise BundleError(
            RejectCode.PAYLOAD_HASH_MISMATCH,
            f"payload sha256 {parsed.payload_sha256[:16]}... does not match the manifest's "
            f"{manifest.payload_sha256[:16]}...: the file was modified or corrupted after signing",
        )
    if not trusted_keys:
        return parsed, False
    check_signed(data, trusted_keys=trusted_keys, embedder_id=None, dim=None)
    return parsed, True


async def clear_retained(device: str, options: BrokerOptions) -> str:
    """Delete the retained model message of `device` (or of the fleet topic for "all"): an empty
    retained message replaces it, which agents ignore. Returns the topic cleared."""
    topic = FleetTopics(options.prefix).model_for(device)
    causes: list[str] = []
    paho_logger = logging.Logger("facetrack.trainer.paho", level=logging.WARNING)
    paho_logger.addHandler(PahoLogTap(lambda record: causes.append(record.getMessage())))
    try:
        async with connected(options, paho_logger) as client:
            await client.publish_confirmed(topic, b"", qos=1, retain=True)
            await _through_every_other_node(options, topic, b"", paho_logger)
    except aiomqtt.MqttError as exc:
        cause = causes[-1] if causes else ""
        raise PublishError(f"{exc} ({cause})" if cause and cause not in str(exc) else str(exc)) from None
    return topic


@contextlib.asynccontextmanager
async def connected(options: BrokerOptions, logger: logging.Logger) -> AsyncIterator[MqttClient]:
    """A connection to the first broker of the list that answers; MqttError naming each failure.

    The retained model is stored by the cluster, so any node will do; a node that is down (or
    refuses the login) is skipped, which is what lets `publish` work after a node was lost.
    """
    failures: list[str] = []
    addresses = options.addresses()
    for address in addresses:
        client = _client(options, address, logger)
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            failures.append(str(exc) if len(addresses) == 1 else f"{address}: {exc}")
            continue
        options.used = str(address)
        try:
            yield client
        finally:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.__aexit__(None, None, None)
        return
    raise aiomqtt.MqttError(
        failures[0] if len(failures) == 1 else "no broker answered: " + "; ".join(failures)
    )


async def _through_every_other_node(
    options: BrokerOptions, topic: str, data: bytes, logger: logging.Logger
) -> None:
    """Publish the retained `data` again through every other node of the list, all at once.

    A clustered broker may not route one publish to every device: ejabberd 23.01 drops what it
    routes to another node while the link between them is busy, and a node learns a retained
    topic only when it starts or when the topic is published through it, so its later
    subscribers would not get the model. Through every node, each device gets a copy from the
    node it is connected to (devices answer a push once however many copies arrive), and every
    node serves the retained model. A node that is down or refuses is noted, not fatal: the
    push went through `options.used` already.
    """
    options.published_via = [options.used] if options.used else []
    options.unreached = []
    others = [a for a in options.addresses() if str(a) != options.used]

    async def one(address: BrokerAddress) -> None:
        client = _client(options, address, logger)
        try:
            async with client:
                await client.publish_confirmed(topic, data, qos=1, retain=True)
        except aiomqtt.MqttError as exc:
            options.unreached.append(f"{address}: {exc}")
            return
        options.published_via.append(str(address))

    await asyncio.gather(*(one(address) for address in others))


def _client(options: BrokerOptions, address: BrokerAddress, logger: logging.Logger) -> MqttClient:
    return MqttClient(
        address.host,
        address.port,
        username=options.username,
        password=options.password.reveal() if options.password is not None else None,
        protocol=aiomqtt.ProtocolVersion.V5 if options.protocol == "5" else aiomqtt.ProtocolVersion.V311,
        tls_context=options.tls_context,
        # Random: the copies through the other nodes connect at once, and one cluster-wide client
        # id would take over the session that listens for the answers.
        identifier=f"facetrack-trainer-{secrets.token_hex(5)}",
        logger=logger,
    )


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
    topics = FleetTopics(options.prefix)
    topic = topics.model_for(device)
    answers: dict[str, DeviceAnswer] = {}
    wanted = 1 if device != FLEET else expect
    # paho logs the real cause of a failed connect (e.g. the TLS alert for a missing client
    # certificate) while the exception only says the connection was lost: keep the last line.
    causes: list[str] = []
    paho_logger = logging.Logger("facetrack.trainer.paho", level=logging.WARNING)
    paho_logger.addHandler(PahoLogTap(lambda record: causes.append(record.getMessage())))
    try:
        async with connected(options, paho_logger) as client:
            # Subscribe first so a fast device's answer cannot slip by before we listen.
            await client.subscribe(topics.all_events, qos=1)
            started = time.monotonic()
            # Confirmed: an MQTT 5 broker's "not authorized" PUBACK is an error, not silence.
            await client.publish_confirmed(topic, data, qos=1, retain=True)
            await _through_every_other_node(options, topic, data, paho_logger)
            try:
                async with asyncio.timeout(wait_s):
                    async for message in client.messages:
                        answer = _answer(
                            message.topic.value, message.payload, version, options.prefix, started
                        )
                        if answer is None or (device != FLEET and answer.device != device):
                            continue
                        answers.setdefault(answer.device, answer)
                        if wanted is not None and len(answers) >= wanted:
                            break
            except TimeoutError:
                pass
    except aiomqtt.MqttError as exc:
        cause = causes[-1] if causes else ""
        raise PublishError(f"{exc} ({cause})" if cause and cause not in str(exc) else str(exc)) from None
    return topic, sorted(answers.values(), key=lambda a: a.device)


def _answer(topic: str, payload: object, version: str, prefix: str, started: float) -> DeviceAnswer | None:
    if not isinstance(payload, bytes | bytearray):
        return None
    # Plain JSON, not agent.events.schema.parse_event: an answer only needs these few fields, and
    # one that does not validate as a whole (a newer agent's) must still be counted.
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
