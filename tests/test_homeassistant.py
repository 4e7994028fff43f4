"""Home Assistant discovery: payloads, their topics, the templates, and the announcer on a real broker.

Home Assistant itself is not run: its side is a plain MQTT client that subscribes like HA does
(`homeassistant/#`) and sends HA's birth message. The value templates are rendered with Jinja2's
immutable sandbox, as Home Assistant renders them, against real event and status payloads.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiomqtt
from jinja2.sandbox import ImmutableSandboxedEnvironment

from agent.config import HomeAssistantConfig, MqttConfig
from agent.devtools.mosquitto import MosquittoBroker
from agent.events.schema import IdentityEvent, TrackStarted, utc_now
from agent.runtime.homeassistant import (
    EVENT_TYPE_RECOGNISED,
    HomeAssistantAnnouncer,
    discovery_configs,
)
from agent.runtime.mqtt_link import MqttLink
from agent.runtime.outbox import Outbox
from agent.runtime.topics import Topics

DEVICE = "pi-kitchen"
TOPICS = Topics("facetrack", DEVICE)


def render(template: str, payload: str) -> str:
    """Render a value template the way Home Assistant does: `value` and `value_json` in scope."""
    env = ImmutableSandboxedEnvironment()
    try:
        value_json: Any = json.loads(payload)
    except ValueError:
        value_json = None
    return env.from_string(template).render(value=payload, value_json=value_json).strip()


def by_topic(messages: list[Any]) -> dict[str, dict[str, Any]]:
    return {m.topic: m.payload for m in messages}


def test_discovery_topics_and_ids_follow_home_assistant_conventions() -> None:
    configs = by_topic(discovery_configs(TOPICS))
    assert set(configs) == {
        "homeassistant/sensor/pi-kitchen/fps/config",
        "homeassistant/sensor/pi-kitchen/tracks/config",
        "homeassistant/sensor/pi-kitchen/model_version/config",
        "homeassistant/sensor/pi-kitchen/outbox_depth/config",
        "homeassistant/event/pi-kitchen/identity/config",
    }
    unique_ids = [c["unique_id"] for c in configs.values()]
    assert len(set(unique_ids)) == len(unique_ids)
    assert all(u.startswith("facetrack_pi-kitchen_") for u in unique_ids)
    devices = {json.dumps(c["device"], sort_keys=True) for c in configs.values()}
    assert len(devices) == 1, "every entity must belong to the one device"
    device = configs["homeassistant/sensor/pi-kitchen/fps/config"]["device"]
    assert device["identifiers"] == ["facetrack_pi-kitchen"]
    for config in configs.values():
        assert config["availability"][0]["topic"] == "facetrack/pi-kitchen/availability"
        assert config["availability"][0]["payload_available"] == "online"
    for object_id in ("fps", "tracks", "model_version", "outbox_depth"):
        assert configs[f"homeassistant/sensor/pi-kitchen/{object_id}/config"]["state_topic"] == (
            "facetrack/pi-kitchen/status"
        )
    event = configs["homeassistant/event/pi-kitchen/identity/config"]
    assert event["state_topic"] == "facetrack/pi-kitchen/events"
    assert event["event_types"] == [EVENT_TYPE_RECOGNISED]
    custom = by_topic(discovery_configs(TOPICS, discovery_prefix="ha"))
    assert all(topic.startswith("ha/") for topic in custom)


def test_templates_turn_status_and_events_into_entity_states() -> None:
    configs = by_topic(discovery_configs(TOPICS))
    status = json.dumps({"fps": 12.5, "tracks": 3, "model_version": "2026-11-29T23:00Z", "outbox_depth": 0})
    for object_id, expected in (("fps", "12.5"), ("tracks", "3"), ("model_version", "2026-11-29T23:00Z")):
        template = configs[f"homeassistant/sensor/pi-kitchen/{object_id}/config"]["value_template"]
        assert render(template, status) == expected

    no_model = json.dumps({"fps": 0.0, "tracks": 0, "model_version": None, "outbox_depth": 3})
    assert render(
        configs["homeassistant/sensor/pi-kitchen/model_version/config"]["value_template"], no_model
    ) == ("none")
    assert (
        render(configs["homeassistant/sensor/pi-kitchen/outbox_depth/config"]["value_template"], no_model)
        == "3"
    )

    availability = configs["homeassistant/sensor/pi-kitchen/fps/config"]["availability"][0]["value_template"]
    assert [render(availability, p) for p in ("online", "offline", "stopped")] == [
        "online",
        "offline",
        "offline",
    ]

    event_template = configs["homeassistant/event/pi-kitchen/identity/config"]["value_template"]
    identity = IdentityEvent(
        device=DEVICE, seq=7, ts=utc_now(), frame=40, track_id=3, label="ada", confidence=0.91, votes=4
    )
    fired = json.loads(render(event_template, identity.model_dump_json()))
    assert fired == {"event_type": "recognised", "label": "ada", "confidence": 0.91, "track_id": 3, "seq": 7}
    # Other events and identities lost to "unknown" render empty: Home Assistant ignores those.
    lost = identity.model_copy(update={"label": "unknown", "previous_label": "ada"})
    started = TrackStarted(device=DEVICE, seq=8, ts=utc_now(), frame=41, track_id=4, bbox=[0, 0, 1, 1])
    assert render(event_template, lost.model_dump_json()) == ""
    assert render(event_template, started.model_dump_json()) == ""


HANG_S = 120.0  # hang guard only: every wait below is on a message or a state change


async def _until(predicate: Any) -> None:
    # Polling: the announcer's counter and the link's state have no event to wait on.
    async with asyncio.timeout(HANG_S):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def _collect(
    client: aiomqtt.Client, count: int, timeout_s: float = HANG_S
) -> list[tuple[str, bytes, bool]]:
    got: list[tuple[str, bytes, bool]] = []

    async def loop() -> None:
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            got.append((message.topic.value, message.payload, message.retain))
            if len(got) >= count:
                return

    await asyncio.wait_for(loop(), timeout_s)
    return got


def _link(broker: MosquittoBroker, tmp_path: Path) -> MqttLink:
    config = MqttConfig(
        host=broker.host, port=broker.port, reconnect_min_s=0.05, reconnect_max_s=0.2, keepalive_s=5
    )
    return MqttLink(config, TOPICS, Outbox(tmp_path / "outbox.db", max_rows=100, max_bytes=1 << 20))


class BirthTap:
    """The test's own handler for Home Assistant's status topic on the agent's link, subscribed
    after the announcer's. The link runs handlers one at a time, in arrival order and in the order
    they subscribed, so once the tap has seen a message the announcer has finished handling it."""

    def __init__(self, link: MqttLink, topic: str = "homeassistant/status") -> None:
        self.topic = topic
        self.seen: list[bytes] = []
        link.subscribe(topic, self)

    async def __call__(self, topic: str, payload: bytes) -> None:
        self.seen.append(payload)

    async def send(self, client: aiomqtt.Client, payload: bytes) -> None:
        """Publish on the status topic and wait until the link has handled it."""
        before = len(self.seen)
        await client.publish(self.topic, payload, qos=1)
        await _until(lambda: payload in self.seen[before:])

    async def ready(self, client: aiomqtt.Client) -> None:
        """The tap's SUBACK comes back in the background: probe until a probe gets through."""
        async with asyncio.timeout(HANG_S):
            while b"probe" not in self.seen:
                await client.publish(self.topic, b"probe", qos=1)
                await asyncio.sleep(0.05)


async def test_announcer_publishes_retained_discovery_and_reannounces_on_ha_birth(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    link = _link(mosquitto, tmp_path)
    announcer = HomeAssistantAnnouncer(HomeAssistantConfig(enabled=True), TOPICS, link, poll_s=0.05)
    expected = {m.topic: m.encode() for m in announcer.messages}
    link_task = asyncio.create_task(link.run())
    try:
        await announcer.start()
        tap = BirthTap(link)
        await _until(lambda: announcer.announcements >= 1)
        assert announcer.announcements == 1
        # Home Assistant starting later still finds every config: they are retained.
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as hass:
            await hass.subscribe("homeassistant/+/+/+/config", qos=1)
            got = await _collect(hass, len(expected))
            assert {topic: payload for topic, payload, _ in got} == expected
            assert all(retain for _, _, retain in got)
            await tap.ready(hass)
            await tap.send(hass, b"offline")
            assert announcer.announcements == 1, "only `online` triggers a re-announcement"
            await tap.send(hass, b"online")
            assert announcer.announcements == 2
            again = await _collect(hass, len(expected))
            assert {topic: payload for topic, payload, _ in again} == expected
    finally:
        await announcer.stop()
        await link.stop(flush_timeout_s=1)
        await link_task


async def test_announcer_reannounces_after_the_broker_lost_its_retained_configs(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    link = _link(mosquitto, tmp_path)
    announcer = HomeAssistantAnnouncer(HomeAssistantConfig(enabled=True), TOPICS, link, poll_s=0.05)
    link_task = asyncio.create_task(link.run())
    try:
        await announcer.start()
        await _until(lambda: announcer.announcements >= 1)
        assert announcer.announcements == 1, "one connection, one announcement"
        mosquitto.stop()  # persistence is off: the retained configs are gone with it
        mosquitto.start()
        await _until(lambda: announcer.announcements >= 2)
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as hass:
            await hass.subscribe("homeassistant/#", qos=1)
            got = await _collect(hass, len(announcer.messages))
        assert {t for t, _, _ in got} == {m.topic for m in announcer.messages}
    finally:
        await announcer.stop()
        await link.stop(flush_timeout_s=1)
        await link_task


async def test_disabled_announcer_publishes_nothing(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    link = _link(mosquitto, tmp_path)
    announcer = HomeAssistantAnnouncer(HomeAssistantConfig(), TOPICS, link, poll_s=0.05)
    link_task = asyncio.create_task(link.run())
    try:
        await announcer.start()
        tap = BirthTap(link)
        await _until(lambda: link.connected)
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as hass:
            await tap.ready(hass)
            await hass.subscribe("homeassistant/#", qos=1)
            await tap.send(hass, b"online")
            # Whatever the link had published by now reaches Home Assistant before this marker.
            assert await link.publish_raw("homeassistant/zz-marker", b"marker", qos=1)
            got = await _collect(hass, 2)
            assert [(t, p) for t, p, _ in got] == [
                ("homeassistant/status", b"online"),
                ("homeassistant/zz-marker", b"marker"),
            ], "only HA's own birth message and the marker may arrive"
        assert announcer.announcements == 0
    finally:
        await announcer.stop()
        await link.stop(flush_timeout_s=1)
        await link_task
