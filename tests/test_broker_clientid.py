"""The deploy broker binds client ids to identities (deploy/mosquitto/facetrack.conf,
`use_username_as_clientid true`), on a real mosquitto with mutual TLS, passwords and the ACL made by
deploy/mosquitto/facetrack-broker.sh.

Two attacks by a device that holds valid credentials of its own must fail:
- connecting with another device's client id (`facetrack-pi-b`) to knock that device offline;
- connecting with a back-end consumer's client id to take over (and wipe) its persistent session.

No sleeps: mosquitto handles a client-id takeover while it processes the new CONNECT, before its
CONNACK, so once the attacker's connection is up, a PUBACK to the victim (or the messages its
session kept) proves the victim was not touched.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt
import pytest

from agent.devtools.mosquitto import MosquittoBroker, free_port
from agent.runtime.mqtt_link import MqttClient

REPO_ROOT = Path(__file__).resolve().parent.parent
BROKER_SCRIPT = REPO_ROOT / "deploy" / "mosquitto" / "facetrack-broker.sh"

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None or shutil.which("mosquitto_passwd") is None,
    reason="openssl and mosquitto_passwd (apt-get install openssl mosquitto) make the test PKI",
)


class Fleet:
    def __init__(self, directory: Path, port: int, broker: MosquittoBroker) -> None:
        self.dir = directory
        self.port = port
        self.broker = broker

    def password(self, name: str) -> str:
        return (self.dir / "clients" / name / "password").read_text().strip()


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    # Not under pytest's 0700 tmp root: mosquitto started as root drops to its own user.
    directory = Path(tempfile.mkdtemp(prefix="facetrack-clientid-"))
    directory.chmod(0o755)

    def script(*args: str) -> None:
        subprocess.run([str(BROKER_SCRIPT), *args, "--dir", str(directory)], check=True, capture_output=True)

    script("init", "--server-name", "localhost", "--server-name", "127.0.0.1")
    for device in ("pi-a", "pi-b"):
        script("add-device", device)
    script("add-user", "backend")  # a back-end consumer: read-only, its own user
    script("add-user", "backend-2")  # a second member of a shared subscription
    port = free_port()
    text = (directory / "facetrack.conf").read_text()
    assert "use_username_as_clientid true\n" in text, "the deploy config must bind client ids"
    broker = MosquittoBroker(
        port=port,
        extra_config=text.replace("listener 8883\n", f"listener {port} 127.0.0.1\n"),
        default_listener=False,
    )
    try:
        broker.start()
        yield Fleet(directory, port, broker)
    finally:
        broker.close()
        shutil.rmtree(directory, ignore_errors=True)


@asynccontextmanager
async def connect(
    fleet: Fleet,
    user: str,
    client_id: str,
    *,
    persistent: bool = False,
) -> AsyncIterator[MqttClient]:
    context = ssl.create_default_context(cafile=str(fleet.dir / "ca.crt"))
    context.load_cert_chain(
        fleet.dir / "clients" / user / "client.crt", fleet.dir / "clients" / user / "client.key"
    )
    client = MqttClient(
        "localhost",
        fleet.port,
        identifier=client_id,
        username=user,
        password=fleet.password(user),
        protocol=aiomqtt.ProtocolVersion.V311,
        clean_session=not persistent,
        tls_context=context,
        timeout=10,
    )
    async with client:
        yield client


async def test_a_device_cannot_knock_another_device_off_with_its_client_id(fleet: Fleet) -> None:
    async with connect(fleet, "pi-b", "facetrack-pi-b") as victim:
        await victim.subscribe("facetrack/pi-b/model", qos=1)
        # The agent's own client id for pi-b, used by pi-a with pi-a's valid credentials.
        async with connect(fleet, "pi-a", "facetrack-pi-b") as attacker:
            await attacker.publish("facetrack/pi-a/status", b"{}", qos=1)
            # Still connected: the broker acknowledges the victim's publish on the same socket.
            await asyncio.wait_for(victim.publish_confirmed("facetrack/pi-b/status", b"{}", qos=1), 10)
        await asyncio.wait_for(victim.publish_confirmed("facetrack/pi-b/events", b"{}", qos=1), 10)


async def test_a_device_cannot_take_over_a_consumers_persistent_session(fleet: Fleet) -> None:
    topic = "facetrack/pi-b/events"
    # The consumer sets up its persistent session (clean_session false) and goes away.
    async with connect(fleet, "backend", "backend", persistent=True) as consumer:
        await consumer.subscribe("facetrack/+/events", qos=1)
    # Three events arrive while it is offline: the broker queues them in its session.
    async with connect(fleet, "pi-b", "facetrack-pi-b") as device:
        for seq in (1, 2, 3):
            await device.publish_confirmed(topic, f'{{"seq": {seq}}}'.encode(), qos=1)
    # pi-a, with its own valid credentials, asks for the consumer's id: first resuming the
    # session (to drain it), then with a clean session (to wipe it).
    async with connect(fleet, "pi-a", "backend", persistent=True) as attacker:
        await attacker.publish("facetrack/pi-a/status", b"{}", qos=1)
    async with connect(fleet, "pi-a", "backend") as attacker:
        await attacker.publish("facetrack/pi-a/status", b"{}", qos=1)
    # The consumer comes back and gets all three.
    received: list[bytes] = []
    async with connect(fleet, "backend", "backend", persistent=True) as consumer:

        async def take_three() -> None:
            async for message in consumer.messages:
                assert message.topic.value == topic
                received.append(bytes(message.payload))  # type: ignore[arg-type]
                if len(received) == 3:
                    return

        await asyncio.wait_for(take_three(), 20)
    assert received == [b'{"seq": 1}', b'{"seq": 2}', b'{"seq": 3}']


async def test_two_connections_of_one_user_replace_each_other(fleet: Fleet) -> None:
    """The price of the binding, pinned so the docs stay true: one connection per user name, so
    every consumer (and each member of a shared subscription) needs its own user."""
    async with connect(fleet, "backend", "dashboard-1") as first:
        await first.subscribe("facetrack/+/events", qos=1)
        async with connect(fleet, "backend", "dashboard-2") as second:
            await second.publish("facetrack/pi-a/status", b"{}", qos=0)
            with pytest.raises(aiomqtt.MqttError):

                async def read_one() -> None:
                    async for _ in first.messages:
                        return

                # The broker closed the first connection when the second arrived.
                await asyncio.wait_for(read_one(), 20)


async def test_a_shared_subscription_takes_one_user_per_member(fleet: Fleet) -> None:
    """Load-balanced consumers still work: each member logs in as its own user."""
    group = "$share/workers/facetrack/+/events"
    got: dict[str, list[bytes]] = {"backend": [], "backend-2": []}
    async with (
        connect(fleet, "backend", "backend") as first,
        connect(fleet, "backend-2", "backend-2") as second,
        connect(fleet, "pi-a", "facetrack-pi-a") as device,
    ):
        await first.subscribe(group, qos=1)
        await second.subscribe(group, qos=1)
        sent = [f'{{"seq": {seq}}}'.encode() for seq in range(1, 21)]
        for payload in sent:
            await device.publish_confirmed("facetrack/pi-a/events", payload, qos=1)

        async def drain(name: str, client: MqttClient) -> None:
            async for message in client.messages:
                got[name].append(bytes(message.payload))  # type: ignore[arg-type]
                if sum(len(v) for v in got.values()) >= len(sent):
                    return

        tasks = [asyncio.create_task(drain(n, c)) for n, c in (("backend", first), ("backend-2", second))]
        done, pending = await asyncio.wait(tasks, timeout=20, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        assert done, "the shared subscription delivered nothing"
    assert sorted(got["backend"] + got["backend-2"]) == sorted(sent)
