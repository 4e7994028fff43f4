"""Home Assistant MQTT discovery: announce the agent as a device with status sensors and an event.

Off unless `[homeassistant] enabled = true`. Discovery follows Home Assistant's conventions:
retained JSON configs on `<discovery_prefix>/<component>/<node_id>/<object_id>/config` with
`unique_id`, a shared `device` block and `availability`, re-published whenever Home Assistant
announces itself with `online` on `<discovery_prefix>/status` (its birth message).

Nothing new is published for Home Assistant: sensors read the retained status JSON and the event
entity reads the ordinary events topic, turning `identity` events into `{"event_type": ...}` with a
template (other events render empty, which Home Assistant ignores). So an event queued in the
outbox during an outage still fires in Home Assistant when it is delivered.

`discovery_configs` is pure; `HomeAssistantAnnouncer` is the small async edge using the MQTT link.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from structlog.typing import FilteringBoundLogger

from agent import __version__
from agent.config import HomeAssistantConfig
from agent.runtime.topics import Topics

BIRTH_ONLINE = b"online"
EVENT_TYPE_RECOGNISED = "recognised"

# `stopped` (a clean exit) and the `offline` will both mean unavailable to Home Assistant.
_AVAILABILITY_TEMPLATE = "{{ 'online' if value == 'online' else 'offline' }}"
# Only identity events with a real name fire; the rendered JSON's extra keys become attributes.
_IDENTITY_TEMPLATE = (
    "{% if value_json.type == 'identity' and value_json.label not in ('unknown', none) %}"
    "{{ {'event_type': '" + EVENT_TYPE_RECOGNISED + "', 'label': value_json.label, "
    "'confidence': value_json.confidence, 'track_id': value_json.track_id, "
    "'seq': value_json.seq} | tojson }}"
    "{% endif %}"
)


@dataclass(frozen=True)
class DiscoveryMessage:
    topic: str
    payload: dict[str, Any]

    def encode(self) -> bytes:
        return json.dumps(self.payload, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class _Sensor:
    object_id: str
    name: str
    value_template: str
    extra: tuple[tuple[str, Any], ...] = ()


_SENSORS = (
    _Sensor(
        "fps",
        "Frames per second",
        "{{ value_json.fps }}",
        (("unit_of_measurement", "fps"), ("state_class", "measurement")),
    ),
    _Sensor(
        "tracks",
        "Tracked people",
        "{{ value_json.tracks }}",
        (("state_class", "measurement"), ("icon", "mdi:account-group")),
    ),
    # null until the first classifier is installed.
    _Sensor(
        "model_version",
        "Model version",
        "{{ value_json.model_version or 'none' }}",
        (("icon", "mdi:face-recognition"),),
    ),
    _Sensor(
        "outbox_depth",
        "Queued events",
        "{{ value_json.outbox_depth }}",
        (("state_class", "measurement"), ("entity_category", "diagnostic")),
    ),
)


def node_id(topics: Topics) -> str:
    """The discovery node id: the device id, which the fleet ACL also lets the device write under."""
    return topics.device_id


def discovery_configs(
    topics: Topics, discovery_prefix: str = "homeassistant", sw_version: str = __version__
) -> list[DiscoveryMessage]:
    """Every retained discovery message for one agent (pure: same input, same bytes)."""
    prefix = discovery_prefix.rstrip("/")
    node = node_id(topics)
    base_id = f"facetrack_{node}"
    device = {
        "identifiers": [base_id],
        "name": f"facetrack {node}",
        "manufacturer": "facetrack",
        "model": "facetrack-agent",
        "sw_version": sw_version,
    }
    common: dict[str, Any] = {
        "device": device,
        "origin": {"name": "facetrack", "sw_version": sw_version},
        "availability": [
            {
                "topic": topics.availability,
                "value_template": _AVAILABILITY_TEMPLATE,
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        ],
        "qos": 1,
    }
    messages = [
        DiscoveryMessage(
            f"{prefix}/sensor/{node}/{sensor.object_id}/config",
            {
                **common,
                "name": sensor.name,
                "unique_id": f"{base_id}_{sensor.object_id}",
                "state_topic": topics.status,
                "value_template": sensor.value_template,
                **dict(sensor.extra),
            },
        )
        for sensor in _SENSORS
    ]
    messages.append(
        DiscoveryMessage(
            f"{prefix}/event/{node}/identity/config",
            {
                **common,
                "name": "Recognised person",
                "unique_id": f"{base_id}_identity",
                "state_topic": topics.events,
                "value_template": _IDENTITY_TEMPLATE,
                "event_types": [EVENT_TYPE_RECOGNISED],
                "icon": "mdi:face-recognition",
            },
        )
    )
    return messages


class Publisher(Protocol):
    """The part of `MqttLink` the announcer uses."""

    @property
    def connected(self) -> bool: ...

    @property
    def stats(self) -> dict[str, Any]: ...

    def subscribe(self, topic_filter: str, handler: Any, qos: int = 1) -> None: ...

    async def publish_raw(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> bool: ...


class HomeAssistantAnnouncer:
    """Publishes discovery after every (re)connect and whenever Home Assistant comes online.

    `start()` subscribes and starts a watcher task; `stop()` cancels it. With the config disabled
    both do nothing, so the caller can wire it unconditionally.
    """

    def __init__(
        self,
        config: HomeAssistantConfig,
        topics: Topics,
        link: Publisher,
        logger: FilteringBoundLogger | None = None,
        *,
        poll_s: float = 0.5,
    ) -> None:
        self._config = config
        self._topics = topics
        self._link = link
        self._log: FilteringBoundLogger = logger or structlog.get_logger("facetrack.homeassistant")
        self._poll_s = poll_s
        self._messages = discovery_configs(topics, config.discovery_prefix)
        self._task: asyncio.Task[None] | None = None
        self._announced_for_connect = 0
        self.announcements = 0

    @property
    def birth_topic(self) -> str:
        return f"{self._config.discovery_prefix.rstrip('/')}/status"

    @property
    def messages(self) -> list[DiscoveryMessage]:
        return list(self._messages)

    async def start(self) -> None:
        if not self._config.enabled or self._task is not None:
            return
        self._link.subscribe(self.birth_topic, self._on_birth, qos=1)
        self._task = asyncio.create_task(self._watch_connections(), name="homeassistant-announcer")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def announce(self) -> bool:
        """Publish every discovery config (retained, QoS 1); False if any did not reach the broker."""
        ok = True
        for message in self._messages:
            ok = await self._link.publish_raw(message.topic, message.encode(), qos=1, retain=True) and ok
        if ok:
            self.announcements += 1
            self._log.info("homeassistant_announced", entities=len(self._messages))
        return ok

    async def _on_birth(self, topic: str, payload: bytes) -> None:
        if payload.strip() == BIRTH_ONLINE:
            await self.announce()

    async def _watch_connections(self) -> None:
        # The link has no connect callback; a new value of its connect counter is a new session.
        while True:
            connects = int(self._link.stats.get("connects", 0))
            if self._link.connected and connects != self._announced_for_connect and await self.announce():
                self._announced_for_connect = connects
            await asyncio.sleep(self._poll_s)
