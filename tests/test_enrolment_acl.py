"""The shipped broker ACL (deploy/mosquitto) and the faces topics: only the trainer reads faces.

A real mosquitto with the fleet's TLS, passwords and ACL, made by deploy/mosquitto/facetrack-broker.sh
(the helpers of test_broker_acl.py). "Never reaches a subscriber" is proved by a sentinel the same
publisher sends afterwards on a topic the subscriber may read: once it arrives, a face the broker had
let through would have arrived before it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.test_broker_acl import FleetBroker, collect, connect, start_fleet_broker

pytestmark = pytest.mark.usefixtures("fleet_broker")


@pytest.fixture(scope="module")
def fleet_broker() -> Iterator[FleetBroker]:
    with start_fleet_broker() as fleet:
        yield fleet


async def test_only_the_trainer_reads_faces_and_a_device_writes_only_its_own(
    fleet_broker: FleetBroker,
) -> None:
    async with (
        connect(fleet_broker, "pi-a") as device_a,
        connect(fleet_broker, "pi-b") as device_b,
        connect(fleet_broker, "trainer") as trainer,
        connect(fleet_broker, "viewer") as viewer,
        connect(fleet_broker, "homeassistant") as homeassistant,
    ):
        await trainer.subscribe("facetrack/+/faces", qos=1)
        # Consumers of events, and another device, ask for every device's faces.
        for client in (viewer, homeassistant):
            await client.subscribe("facetrack/+/faces", qos=1)
            await client.subscribe("facetrack/+/events", qos=1)
        await device_b.subscribe("facetrack/+/faces", qos=1)
        await device_b.subscribe("facetrack/pi-a/faces", qos=1)
        await device_b.subscribe("facetrack/pi-b/model", qos=1)
        # pi-a forges a face for pi-b (refused), then publishes its own face and an event.
        await device_a.publish("facetrack/pi-b/faces", b"forged", qos=1)
        await device_a.publish("facetrack/pi-a/faces", b"face-a", qos=1)
        await device_a.publish("facetrack/pi-a/events", b"sentinel", qos=1)
        assert await collect(trainer, "facetrack/pi-a/faces") == [("facetrack/pi-a/faces", b"face-a")]
        for client in (viewer, homeassistant):
            got = await collect(client, "facetrack/pi-a/events")
            assert got == [("facetrack/pi-a/events", b"sentinel")], (
                "faces reached a user that is not the trainer"
            )
        # The broker routed face-a before the trainer had it; pi-b's sentinel (which it may read)
        # is sent after that, so a face let through to pi-b would arrive before it.
        await trainer.publish("facetrack/pi-b/model", b"sentinel", qos=1)
        got = await collect(device_b, "facetrack/pi-b/model")
        assert got == [("facetrack/pi-b/model", b"sentinel")], "a device read another device's faces"
        # The trainer got pi-a's face and nothing forged: pi-b's own face arrives after nothing else.
        await device_b.publish("facetrack/pi-b/faces", b"face-b", qos=1)
        assert await collect(trainer, "facetrack/pi-b/faces") == [("facetrack/pi-b/faces", b"face-b")]


async def test_the_trainer_cannot_write_faces(fleet_broker: FleetBroker) -> None:
    async with (
        connect(fleet_broker, "trainer") as trainer,
        connect(fleet_broker, "pi-a") as device_a,
    ):
        await trainer.subscribe("facetrack/+/faces", qos=1)
        await trainer.publish("facetrack/pi-a/faces", b"forged", qos=1)
        await device_a.publish("facetrack/pi-a/faces", b"real", qos=1)
        assert await collect(trainer, "facetrack/pi-a/faces") == [("facetrack/pi-a/faces", b"real")]
