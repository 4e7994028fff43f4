"""aiomqtt's client, patched so a publish is confirmed only by a successful PUBACK."""

from __future__ import annotations

import asyncio
from typing import Any

import aiomqtt
import paho.mqtt.client as paho_mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode


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
