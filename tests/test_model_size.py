"""Issue 24 item 5: a model message is bounded before the agent reads it whole (a 100 MB one cost
310 MB of memory, a retained 60 MB one at every start), on a real mosquitto.

- MQTT 5: the link announces a Maximum Packet Size on CONNECT, so the broker never sends a larger
  model; proved by a marker published after it on the same topic, which arrives alone.
- MQTT 3.1.1 (no such property): the model service refuses it on arrival, unparsed, with
  `model_rejected` code `too_large` and one log line.
- The shipped broker config (`deploy/mosquitto/facetrack.conf`) refuses a larger publish, so no
  subscriber gets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from structlog.testing import capture_logs

from agent.config import ClassifierConfig, MqttConfig, load_config
from agent.devtools.mosquitto import MosquittoBroker
from agent.events.schema import EventBase
from agent.runtime.model_service import ModelService
from agent.runtime.mqtt_client import MqttClient
from agent.runtime.mqtt_link import MqttLink
from agent.runtime.outbox import Outbox
from agent.runtime.topics import Topics

LIMIT = 256 * 1024
DEPLOY_CONF = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto" / "facetrack.conf"
TOPICS = Topics("facetrack", "cam1")


def config(broker: MosquittoBroker, protocol: str) -> MqttConfig:
    return MqttConfig(
        host=broker.host, port=broker.port, protocol=protocol, reconnect_min_s=0.05, reconnect_max_s=0.4,
        password_env="FACETRACK_TEST_UNSET_PASSWORD",
    )  # fmt: skip


async def test_an_mqtt5_agent_is_never_sent_a_model_over_its_limit(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    received: list[int] = []
    marker_seen = asyncio.Event()

    async def handler(topic: str, payload: bytes) -> None:
        received.append(len(payload))
        if payload == b"marker":
            marker_seen.set()

    outbox = Outbox(tmp_path / "outbox.sqlite3", 100, 1 << 20)
    link = MqttLink(config(mosquitto, "5"), TOPICS, outbox, max_bundle_bytes=LIMIT)
    link.subscribe(TOPICS.model, handler)
    task = asyncio.create_task(link.run())
    async with MqttClient(mosquitto.host, mosquitto.port, identifier="trainer") as trainer:
        async with asyncio.timeout(60):
            while not link.connected:  # noqa: ASYNC110  (the link has no "subscribed" event)
                await asyncio.sleep(0.02)
            # Retained, as a published model is: it would also come at every (re)connect.
            await trainer.publish_confirmed(TOPICS.model, b"x" * (4 * LIMIT), retain=True)
            await trainer.publish_confirmed(TOPICS.model, b"marker")
            await marker_seen.wait()
    await link.stop(1)
    await task
    outbox.close()
    assert received == [len(b"marker")], received


async def test_an_mqtt311_model_over_the_limit_is_rejected_unread_with_one_line(tmp_path: Path) -> None:
    cfg = load_config(state_dir=tmp_path / "state", classifier={"max_bundle_bytes": LIMIT})
    emitted: list[EventBase] = []
    service = ModelService(cfg, emitted.append)
    with capture_logs() as logs:
        await service.handle_message(TOPICS.model, b"\0" * (LIMIT + 1))
    rejected = [log for log in logs if log["event"] == "model_rejected"]
    assert len(rejected) == 1 and rejected[0]["code"] == "too_large", logs
    assert len(logs) == 1
    (event,) = emitted
    data: dict[str, Any] = event.model_dump()
    assert data["type"] == "model_rejected" and data["code"] == "too_large"
    assert str(LIMIT) in data["reason"]


def test_the_shipped_broker_config_matches_the_agents_limit() -> None:
    text = DEPLOY_CONF.read_text()
    limit = ClassifierConfig().max_bundle_bytes
    assert re.search(rf"^message_size_limit {limit}$", text, re.M)
    assert re.search(rf"^max_packet_size {limit + 64 * 1024}$", text, re.M)


async def test_the_shipped_broker_limit_keeps_a_larger_model_from_every_subscriber() -> None:
    lines = [line for line in DEPLOY_CONF.read_text().splitlines() if line.startswith("message_size_limit")]
    limit = ClassifierConfig().max_bundle_bytes
    v5 = aiomqtt.ProtocolVersion.V5
    with MosquittoBroker(extra_config="\n".join(lines)) as broker:
        # A v3.1.1 subscriber: it announces no limit of its own, so only the broker's stops it.
        async with aiomqtt.Client(broker.host, broker.port, identifier="device") as device:
            await device.subscribe(TOPICS.model, qos=1)
            # mosquitto 2.0 refuses the publish (an error PUBACK, or it drops the connection).
            with contextlib.suppress(aiomqtt.MqttError):
                async with MqttClient(broker.host, broker.port, identifier="trainer", protocol=v5) as trainer:
                    await trainer.publish_confirmed(TOPICS.model, b"x" * (limit + 1))
                    pytest.fail("the broker took a model over the limit")
            async with MqttClient(broker.host, broker.port, identifier="trainer2", protocol=v5) as trainer:
                await trainer.publish_confirmed(TOPICS.model, b"marker")
            async with asyncio.timeout(60):
                message = await anext(aiter(device.messages))
    assert message.payload == b"marker"
