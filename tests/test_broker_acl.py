"""The fleet broker config from deploy/mosquitto on a real mosquitto with TLS, passwords and the ACL.

The broker's files are made by deploy/mosquitto/facetrack-broker.sh itself (test CA, server and
client certificates, password file), so the script is exercised too. "Never reaches a subscriber"
is asserted by publishing a sentinel after the forbidden messages on an allowed topic in the same
order-preserving session: once the sentinel arrives, anything the broker had let through would have
arrived before it. The strongest witness is `auditor`, a test-only user appended to the generated ACL
with `topic read #`: a forbidden message that reached any subscriber would reach it too.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.devtools.mosquitto import MosquittoBroker, free_port
from agent.runtime.mqtt_link import MqttClient, PahoLogTap

# Hang guard for waits on the broker and the agent: it catches a hang, it does not time anything.
# Every "nothing else arrived" check here waits for a sentinel sent after it instead.
HANG_S = 120.0

REPO_ROOT = Path(__file__).resolve().parent.parent
BROKER_SCRIPT = REPO_ROOT / "deploy" / "mosquitto" / "facetrack-broker.sh"
DEVICES = ("pi-a", "pi-b")
# Test only, not shipped: reads every topic, so "no subscriber received it" covers all topics.
AUDITOR_ACL = "\n# test only\nuser auditor\ntopic read #\n"

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None or shutil.which("mosquitto_passwd") is None,
    reason="openssl and mosquitto_passwd (apt-get install openssl mosquitto) make the test PKI",
)


@dataclass(frozen=True)
class FleetBroker:
    host: str
    port: int
    dir: Path
    server: MosquittoBroker

    def client_dir(self, name: str) -> Path:
        return self.dir / "clients" / name

    def password(self, name: str) -> str:
        return (self.client_dir(name) / "password").read_text().strip()


def make_fleet_files(directory: Path, devices: tuple[str, ...]) -> None:
    def run(*args: str) -> None:
        subprocess.run([str(BROKER_SCRIPT), *args, "--dir", str(directory)], check=True, capture_output=True)

    run("init", "--server-name", "localhost", "--server-name", "127.0.0.1")
    for device in devices:
        run("add-device", device)
    run("add-user", "homeassistant")
    run("add-user", "dashboard")  # any other user name: read-only, like viewer
    run("add-user", "auditor")
    with (directory / "acl").open("a") as acl:
        acl.write(AUDITOR_ACL)


def fleet_broker_config(directory: Path, port: int) -> str:
    """deploy/mosquitto/facetrack.conf as init rendered it (mutual TLS on), on a loopback port."""
    text = (directory / "facetrack.conf").read_text()
    assert "listener 8883\n" in text
    assert "require_certificate true\n" in text and "use_identity_as_username false\n" in text
    return text.replace("listener 8883\n", f"listener {port} 127.0.0.1\n")


@pytest.fixture(scope="module")
def fleet_broker() -> Iterator[FleetBroker]:
    # Not under pytest's 0700 tmp root: mosquitto started as root drops to the `mosquitto` user and
    # must reach the files, as it does from /etc/mosquitto/facetrack (the script chowns what it needs).
    with start_fleet_broker() as fleet:
        yield fleet


@pytest.fixture(scope="module")
def foreign_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another fleet's CA and client certificates (same script, another directory)."""
    directory = tmp_path_factory.mktemp("foreign-pki")
    subprocess.run([str(BROKER_SCRIPT), "init", "--dir", str(directory)], check=True, capture_output=True)
    return directory


@contextmanager
def start_fleet_broker() -> Iterator[FleetBroker]:
    directory = Path(tempfile.mkdtemp(prefix="facetrack-fleet-broker-"))
    directory.chmod(0o755)
    make_fleet_files(directory, DEVICES)
    port = free_port()
    broker = MosquittoBroker(
        port=port, extra_config=fleet_broker_config(directory, port), default_listener=False
    )
    try:
        broker.start()
        yield FleetBroker("127.0.0.1", port, directory, broker)
    finally:
        broker.close()
        shutil.rmtree(directory, ignore_errors=True)


def tls_context(ca: Path | None, cert_dir: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca) if ca else None)
    if cert_dir is not None:
        context.load_cert_chain(cert_dir / "client.crt", cert_dir / "client.key")
    return context


@asynccontextmanager
async def connect(
    broker: FleetBroker,
    name: str | None,
    password: str | None = None,
    *,
    with_ca: bool = True,
    with_cert: bool = True,
    cert_of: str | None = None,
    cert_dir: Path | None = None,
    causes: list[str] | None = None,
) -> AsyncIterator[aiomqtt.Client]:
    """A TLS client as user `name` with its own certificate and password unless told otherwise.

    The agent's client: a connection the broker drops before CONNACK (a TLS alert) fails at once
    instead of after the timeout, and paho's log line with the alert is appended to `causes`.
    """
    cert_name = cert_of or name or "viewer"
    ca = broker.dir / "ca.crt" if with_ca else None
    context = tls_context(ca, (cert_dir or broker.client_dir(cert_name)) if with_cert else None)
    if password is None and name is not None:
        password = broker.password(name)
    paho_log = logging.Logger("test.paho", level=logging.WARNING)
    if causes is not None:
        paho_log.addHandler(PahoLogTap(lambda record: causes.append(record.getMessage())))
    client = MqttClient(
        "localhost",
        broker.port,
        username=name,
        password=password,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=context,
        timeout=30,
        logger=paho_log,
    )
    async with client:
        yield client


async def collect(
    client: aiomqtt.Client, until_topic: str, timeout_s: float = HANG_S
) -> list[tuple[str, bytes]]:
    """Messages received until one arrives on `until_topic` (the sentinel, included)."""
    received: list[tuple[str, bytes]] = []

    async def loop() -> None:
        async for message in client.messages:
            received.append((str(message.topic), bytes(message.payload)))  # type: ignore[arg-type]
            if str(message.topic) == until_topic:
                return

    await asyncio.wait_for(loop(), timeout_s)
    return received


async def collect_n(client: aiomqtt.Client, count: int, timeout_s: float = HANG_S) -> dict[str, bytes]:
    received: dict[str, bytes] = {}

    async def loop() -> None:
        async for message in client.messages:
            received[str(message.topic)] = bytes(message.payload)  # type: ignore[arg-type]
            if len(received) >= count:
                return

    await asyncio.wait_for(loop(), timeout_s)
    return received


async def test_device_publishes_its_events_and_receives_its_models(fleet_broker: FleetBroker) -> None:
    async with (
        connect(fleet_broker, "pi-a") as device,
        connect(fleet_broker, "trainer") as trainer,
        connect(fleet_broker, "viewer") as viewer,
    ):
        await device.subscribe("facetrack/pi-a/model", qos=1)
        await device.subscribe("facetrack/all/model", qos=1)
        await viewer.subscribe("facetrack/+/events", qos=1)
        await viewer.subscribe("facetrack/+/status", qos=1)
        await trainer.publish("facetrack/pi-a/model", b"model-for-a", qos=1)
        await trainer.publish("facetrack/all/model", b"model-for-all", qos=1)
        got = await collect(device, "facetrack/all/model")
        assert got == [("facetrack/pi-a/model", b"model-for-a"), ("facetrack/all/model", b"model-for-all")]

        await device.publish("facetrack/pi-a/status", b'{"fps": 9}', qos=1)
        await device.publish("facetrack/pi-a/events", b'{"seq": 1}', qos=1)
        got = await collect(viewer, "facetrack/pi-a/events")
        assert got == [("facetrack/pi-a/status", b'{"fps": 9}'), ("facetrack/pi-a/events", b'{"seq": 1}')]


async def test_device_cannot_write_other_devices_or_any_model_topic(fleet_broker: FleetBroker) -> None:
    forbidden = [
        "facetrack/pi-b/events",
        "facetrack/pi-b/status",
        "facetrack/pi-b/availability",
        "facetrack/pi-b/model",
        "facetrack/all/model",
        "facetrack/pi-a/model",
        "facetrack/all/events",
    ]
    async with (
        connect(fleet_broker, "pi-a") as device_a,
        connect(fleet_broker, "pi-b") as device_b,
        connect(fleet_broker, "trainer") as trainer,
    ):
        # pi-b sees its own topics and the fleet model; the trainer sees every device's events.
        await device_b.subscribe("facetrack/pi-b/#", qos=1)
        await device_b.subscribe("facetrack/all/model", qos=1)
        await trainer.subscribe("facetrack/+/events", qos=1)
        for topic in forbidden:
            await device_a.publish(topic, b"forged", qos=1)
        await device_a.publish("facetrack/pi-a/events", b"sentinel", qos=1)
        assert await collect(trainer, "facetrack/pi-a/events") == [("facetrack/pi-a/events", b"sentinel")]
        # pi-b's own sentinel proves its subscription works and that nothing forged came before it.
        await device_b.publish("facetrack/pi-b/events", b"b-sentinel", qos=1)
        assert await collect(device_b, "facetrack/pi-b/events") == [("facetrack/pi-b/events", b"b-sentinel")]


async def test_device_cannot_read_another_devices_topics(fleet_broker: FleetBroker) -> None:
    async with (
        connect(fleet_broker, "pi-a") as device_a,
        connect(fleet_broker, "trainer") as trainer,
    ):
        await device_a.subscribe("facetrack/+/model", qos=1)
        await device_a.subscribe("facetrack/+/events", qos=1)
        await trainer.publish("facetrack/pi-b/model", b"model-for-b", qos=1)
        await trainer.publish("facetrack/pi-a/model", b"model-for-a", qos=1)
        await device_a.publish("facetrack/pi-a/events", b"own", qos=1)
        got = await collect(device_a, "facetrack/pi-a/events")
        assert got == [("facetrack/pi-a/model", b"model-for-a"), ("facetrack/pi-a/events", b"own")]


async def test_trainer_pushes_models_and_reads_acknowledgements(fleet_broker: FleetBroker) -> None:
    async with (
        connect(fleet_broker, "pi-b") as device,
        connect(fleet_broker, "trainer") as trainer,
    ):
        await trainer.subscribe("facetrack/+/events", qos=1)
        await device.subscribe("facetrack/all/model", qos=1)
        await trainer.publish("facetrack/all/model", b"bundle", qos=1, retain=True)
        assert await collect(device, "facetrack/all/model") == [("facetrack/all/model", b"bundle")]
        ack = b'{"type": "model_applied", "device": "pi-b"}'
        await device.publish("facetrack/pi-b/events", ack, qos=1)
        assert await collect(trainer, "facetrack/pi-b/events") == [("facetrack/pi-b/events", ack)]
        await trainer.publish("facetrack/all/model", b"", qos=1, retain=True)  # clear the retained model


async def test_viewer_reads_but_cannot_publish(fleet_broker: FleetBroker) -> None:
    async with (
        connect(fleet_broker, "viewer") as viewer,
        connect(fleet_broker, "pi-a") as device,
        connect(fleet_broker, "trainer") as trainer,
    ):
        await device.subscribe("facetrack/pi-a/#", qos=1)
        await device.subscribe("facetrack/all/model", qos=1)
        await trainer.subscribe("facetrack/+/events", qos=1)
        for topic in ("facetrack/pi-a/events", "facetrack/pi-a/model", "facetrack/all/model"):
            await viewer.publish(topic, b"from-viewer", qos=1)
        await device.publish("facetrack/pi-a/events", b"sentinel", qos=1)
        assert await collect(device, "facetrack/pi-a/events") == [("facetrack/pi-a/events", b"sentinel")]
        assert await collect(trainer, "facetrack/pi-a/events") == [("facetrack/pi-a/events", b"sentinel")]


# What each user must not be able to write. The first lines of each list are what the old `%u`
# patterns let every user write under its own name (facetrack/<user>/..., its own discovery node).
FORBIDDEN_WRITES = {
    "viewer": [
        "facetrack/viewer/events",
        "facetrack/viewer/status",
        "facetrack/viewer/availability",
        "homeassistant/sensor/viewer/fps/config",
        "facetrack/pi-b/events",
        "facetrack/pi-b/status",
        "facetrack/pi-b/availability",
        "facetrack/pi-b/model",
        "facetrack/all/model",
        "homeassistant/sensor/pi-b/fps/config",
        "homeassistant/status",
    ],
    "homeassistant": [
        "facetrack/homeassistant/events",
        "facetrack/homeassistant/status",
        "facetrack/homeassistant/availability",
        "homeassistant/sensor/homeassistant/fps/config",
        "facetrack/pi-b/events",
        "facetrack/pi-b/status",
        "facetrack/pi-b/model",
        "facetrack/all/model",
        "homeassistant/event/pi-b/recognised/config",
    ],
    "trainer": [
        "facetrack/trainer/events",
        "facetrack/trainer/status",
        "facetrack/trainer/availability",
        "homeassistant/sensor/trainer/fps/config",
        "facetrack/pi-b/events",
        "facetrack/pi-b/status",
        "facetrack/pi-b/availability",
        "facetrack/all/events",
        "homeassistant/sensor/pi-b/fps/config",
        "homeassistant/status",
    ],
    "dashboard": [
        "facetrack/dashboard/events",
        "facetrack/dashboard/status",
        "homeassistant/sensor/dashboard/fps/config",
        "facetrack/pi-b/events",
        "facetrack/pi-b/model",
        "facetrack/all/model",
        "homeassistant/status",
    ],
    "pi-a": [
        "facetrack/pi-a/model",
        "facetrack/pi-b/events",
        "facetrack/pi-b/status",
        "facetrack/pi-b/availability",
        "facetrack/pi-b/model",
        "facetrack/all/model",
        "facetrack/all/events",
        "homeassistant/sensor/pi-b/fps/config",
        "homeassistant/status",
    ],
}


def read_everything() -> SubscribeOptions:
    # retainHandling=2: no retained messages from earlier tests, only what is published from now on.
    return SubscribeOptions(qos=1, retainHandling=2)


@pytest.mark.parametrize("user", list(FORBIDDEN_WRITES))
async def test_no_user_writes_outside_its_own_block(fleet_broker: FleetBroker, user: str) -> None:
    async with (
        connect(fleet_broker, "auditor") as auditor,
        connect(fleet_broker, user) as forger,
        connect(fleet_broker, "pi-b") as device,
    ):
        await auditor.subscribe("#", options=read_everything())
        for topic in FORBIDDEN_WRITES[user]:
            await forger.publish(topic, f"forged by {user}".encode(), qos=1)
        await device.publish("facetrack/pi-b/events", b"sentinel", qos=1)
        assert await collect(auditor, "facetrack/pi-b/events") == [("facetrack/pi-b/events", b"sentinel")]


async def test_the_auditor_sees_allowed_writes_and_an_added_user_only_reads(
    fleet_broker: FleetBroker,
) -> None:
    """Positive control for the test above: the auditor does receive what users may write."""
    allowed = [
        ("trainer", "facetrack/pi-a/model"),
        ("trainer", "facetrack/all/model"),
        ("homeassistant", "homeassistant/status"),
        ("pi-a", "homeassistant/sensor/pi-a/fps/config"),
        ("pi-a", "facetrack/pi-a/availability"),
        ("pi-a", "facetrack/pi-a/status"),
        ("pi-a", "facetrack/pi-a/events"),
    ]
    async with (
        connect(fleet_broker, "auditor") as auditor,
        connect(fleet_broker, "dashboard") as dashboard,
        connect(fleet_broker, "trainer") as trainer,
        connect(fleet_broker, "homeassistant") as hass,
        connect(fleet_broker, "pi-a") as device,
    ):
        await auditor.subscribe("#", options=read_everything())
        for pattern in ("facetrack/#", "homeassistant/#"):  # it may read only events/status/availability
            await dashboard.subscribe(pattern, options=read_everything())
        clients = {"trainer": trainer, "homeassistant": hass, "pi-a": device}
        for user, topic in allowed:
            await clients[user].publish(topic, b"ok", qos=1)
        assert await collect(auditor, "facetrack/pi-a/events") == [(topic, b"ok") for _, topic in allowed]
        assert await collect(dashboard, "facetrack/pi-a/events") == [
            (topic, b"ok")
            for topic in ("facetrack/pi-a/availability", "facetrack/pi-a/status", "facetrack/pi-a/events")
        ]


async def test_add_device_then_reload_admits_the_new_device_to_its_own_topics_only(
    fleet_broker: FleetBroker,
) -> None:
    import signal

    added = await asyncio.to_thread(
        subprocess.run,
        [str(BROKER_SCRIPT), "add-device", "pi-c", "--dir", str(fleet_broker.dir)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert "wrote ACL" in added.stdout and "systemctl reload mosquitto" in added.stdout, added.stdout
    with (fleet_broker.dir / "acl").open("a") as acl:
        acl.write(AUDITOR_ACL)  # the script regenerated the ACL without the test-only auditor
    assert fleet_broker.server._process is not None
    fleet_broker.server._process.send_signal(signal.SIGHUP)  # what `systemctl reload mosquitto` sends

    async def connect_when_reloaded() -> None:
        # The reload is asynchronous: retry until pi-c is let in (HANG_S guards a broker that never is).
        deadline = asyncio.get_running_loop().time() + HANG_S
        while asyncio.get_running_loop().time() < deadline:
            try:
                async with connect(fleet_broker, "pi-c"):
                    return
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)
        raise AssertionError("pi-c was not let in after SIGHUP")

    await connect_when_reloaded()
    async with (
        connect(fleet_broker, "auditor") as auditor,
        connect(fleet_broker, "pi-c") as device_c,
        connect(fleet_broker, "pi-a") as device_a,
    ):
        await auditor.subscribe("#", options=read_everything())
        for topic in (
            "facetrack/pi-a/events",
            "facetrack/pi-c/model",
            "facetrack/all/model",
            "homeassistant/status",
        ):
            await device_c.publish(topic, b"forged by pi-c", qos=1)
        await device_c.publish("homeassistant/sensor/pi-c/fps/config", b"{}", qos=1)
        await device_c.publish("facetrack/pi-c/events", b"c", qos=1)
        await device_a.publish("facetrack/pi-a/events", b"a", qos=1)  # pi-a's block survived the rewrite
        assert await collect(auditor, "facetrack/pi-a/events") == [
            ("homeassistant/sensor/pi-c/fps/config", b"{}"),
            ("facetrack/pi-c/events", b"c"),
            ("facetrack/pi-a/events", b"a"),
        ]


async def test_home_assistant_discovery_topics_are_allowed_for_the_devices_own_node(
    fleet_broker: FleetBroker,
) -> None:
    async with (
        connect(fleet_broker, "pi-a") as device,
        connect(fleet_broker, "homeassistant") as hass,
    ):
        await hass.subscribe("homeassistant/#", qos=1)
        await device.subscribe("homeassistant/status", qos=1)
        await device.publish("homeassistant/sensor/pi-b/fps/config", b"forged", qos=1)
        await device.publish("homeassistant/sensor/pi-a/fps/config", b"{}", qos=1)
        assert await collect(hass, "homeassistant/sensor/pi-a/fps/config") == [
            ("homeassistant/sensor/pi-a/fps/config", b"{}")
        ]
        await hass.publish("homeassistant/status", b"online", qos=1)
        assert await collect(device, "homeassistant/status") == [("homeassistant/status", b"online")]


@pytest.mark.parametrize(
    ("case", "kwargs", "reason"),
    [
        ("anonymous", {"name": None, "password": None}, "not authorized"),
        ("wrong password", {"name": "pi-a", "password": "not-the-password"}, "not authorized"),
        (
            "device password under another device's name",
            {"name": "pi-b", "password": "@pi-a"},
            "not authorized",
        ),
        ("does not trust the fleet CA", {"name": "pi-a", "with_ca": False}, "certificate verify failed"),
        # Mutual TLS is on in the shipped config: the right password alone is not enough.
        (
            "right password, no client certificate",
            {"name": "pi-a", "with_cert": False},
            "certificate required",
        ),
        (
            "right password, certificate from another CA",
            {"name": "viewer", "cert_dir": "@foreign"},
            "unknown ca",
        ),
    ],
)
async def test_connections_refused(
    fleet_broker: FleetBroker, foreign_pki: Path, case: str, kwargs: dict[str, object], reason: str
) -> None:
    if kwargs.get("password") == "@pi-a":
        kwargs = {**kwargs, "password": fleet_broker.password("pi-a")}
    if kwargs.get("cert_dir") == "@foreign":
        kwargs = {**kwargs, "cert_dir": foreign_pki / "clients" / "viewer"}
    causes: list[str] = []
    with pytest.raises((aiomqtt.MqttError, ssl.SSLError, OSError)) as refused:
        async with connect(fleet_broker, **kwargs, causes=causes) as client:  # type: ignore[arg-type]
            # TLS 1.3 reports a missing client certificate only once the first packet is read.
            await client.publish("facetrack/pi-a/events", b"x", qos=1)
    assert reason in " ".join([str(refused.value), *causes]).lower()


async def test_shared_subscription_delivers_each_event_to_exactly_one_consumer(
    fleet_broker: FleetBroker,
) -> None:
    shared = "$share/backend/facetrack/+/events"
    count = 40
    async with (
        connect(fleet_broker, "viewer") as consumer_1,
        connect(fleet_broker, "dashboard") as consumer_2,
        connect(fleet_broker, "pi-a") as device_a,
        connect(fleet_broker, "pi-b") as device_b,
    ):
        await consumer_1.subscribe(shared, qos=1)
        await consumer_2.subscribe(shared, qos=1)
        for i in range(count):
            device = device_a if i % 2 == 0 else device_b
            await device.publish(f"facetrack/{device_topic(i)}/events", str(i).encode(), qos=1)
        got: dict[int, list[int]] = {1: [], 2: []}
        # Sentinels each device sends after its events, per consumer: a consumer receives one
        # device's messages in the order that device sent them, so a duplicate of an event would
        # reach it before that device's sentinel does.
        sentinels: dict[int, set[str]] = {1: set(), 2: set()}

        async def drain(index: int, client: aiomqtt.Client) -> None:
            async for message in client.messages:
                payload = bytes(message.payload)  # type: ignore[arg-type]
                if payload.startswith(b"sentinel-"):
                    sentinels[index].add(payload.decode())
                else:
                    got[index].append(int(payload))

        tasks = [asyncio.create_task(drain(1, consumer_1)), asyncio.create_task(drain(2, consumer_2))]
        every = {"sentinel-pi-a", "sentinel-pi-b"}
        try:
            async with asyncio.timeout(HANG_S):
                # The group spreads the sentinels too: send them until both consumers have one of
                # each. Three per round, so a round-robin group does not give each consumer the
                # same device's sentinel every time.
                while not (sentinels[1] >= every and sentinels[2] >= every):
                    for device, name in ((device_a, "pi-a"), (device_b, "pi-b"), (device_b, "pi-b")):
                        await device.publish(f"facetrack/{name}/events", f"sentinel-{name}".encode(), qos=1)
                    await asyncio.sleep(0.02)
        finally:
            for task in tasks:
                task.cancel()
        assert sorted(got[1] + got[2]) == list(range(count))
        assert not set(got[1]) & set(got[2])
        assert got[1] and got[2], "mosquitto should spread the group's messages over both consumers"


def device_topic(i: int) -> str:
    return "pi-a" if i % 2 == 0 else "pi-b"


# ---------------------------------------------------------------------------------------------
# The real agent and `facetrack-trainer publish` over TLS with credentials, through the ACL.


def signed_bundle(assets_dir: Path, key_dir: Path) -> tuple[bytes, str, str]:
    """A real signed bundle (bundle, public key, version) for the agent's embedder.

    The SVM is trained on synthetic embeddings: this test is about transport and access control,
    and photo embedding would only add minutes.
    """
    import numpy as np

    from agent.classifier.bundle import parse_bundle
    from agent.classifier.keys import public_key_text
    from agent.config import AgentConfig
    from agent.runtime.key_files import write_key_pair
    from trainer.dataset import FaceEmbedding
    from trainer.training import train

    _, _, private_key = write_key_pair(key_dir, "fleet")
    embedding = FaceEmbedding.from_config(AgentConfig(assets_dir=assets_dir), cache_dir=None, pad=0.25)
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(3, embedding.dim))
    x = np.concatenate([c + 0.05 * rng.normal(size=(12, embedding.dim)) for c in centres])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = [name for name in ("ada", "grace", "alan") for _ in range(12)]
    result = train(x, y)
    bundle = result.sign(
        embedder_id=embedding.embedder_id,
        dim=embedding.dim,
        private_key=private_key,
    )
    return bundle, public_key_text(private_key.public_key()), parse_bundle(bundle).manifest.model_version


@dataclass(frozen=True)
class FleetBundle:
    path: Path
    public_key: str
    version: str


@pytest.fixture(scope="module")
def fleet_bundle(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FleetBundle:
    root = tmp_path_factory.mktemp("fleet-bundle")
    bundle, public_key, version = signed_bundle(assets_dir, root / "keys")
    (root / "model.ftm").write_bytes(bundle)
    return FleetBundle(root / "model.ftm", public_key, version)


def trainer_publish(broker: FleetBroker, bundle: Path, *args: str) -> tuple[int, str, str]:
    """`facetrack-trainer publish` as a real process (exit code, stdout, stderr)."""
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("FACETRACK_")}
    command = [str(Path(sys.executable).parent / "facetrack-trainer"), "publish", str(bundle), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=2 * HANG_S, check=False)
    return done.returncode, done.stdout, done.stderr


def trainer_tls_flags(broker: FleetBroker, name: str = "trainer", *, cert: bool = True) -> list[str]:
    client = broker.client_dir(name)
    flags = ["--broker", f"localhost:{broker.port}", "--tls-ca", str(client / "ca.crt")]
    if cert:
        flags += ["--tls-cert", str(client / "client.crt"), "--tls-key", str(client / "client.key")]
    return [*flags, "--username", name, "--password-file", str(client / "password")]


def test_trainer_publish_over_mutual_tls_and_its_one_line_errors(
    fleet_broker: FleetBroker, fleet_bundle: FleetBundle, tmp_path: Path
) -> None:
    password = fleet_broker.password("trainer")
    trainer = fleet_broker.client_dir("trainer")
    outputs: list[str] = []

    def publish(*args: str) -> tuple[int, str]:
        code, out, err = trainer_publish(fleet_broker, fleet_bundle.path, "--device", "pi-b", *args)
        outputs.extend((out, err))
        return code, out + err

    # With its certificate the trainer is let in and publishes (no agent runs: nobody answers).
    code, text = publish(*trainer_tls_flags(fleet_broker), "--wait", "0.5")
    assert code == 2 and "retained to facetrack/pi-b/model" in text and "no device answered" in text, text
    # The right password without a client certificate: the broker's TLS alert, in one line.
    code, text = publish(*trainer_tls_flags(fleet_broker, cert=False), "--wait", "0.5")
    assert code == 1 and "\n" not in text.strip(), text
    assert "certificate required" in text and "--tls-cert/--tls-key" in text, text
    # The viewer's certificate and password get in, but the broker refuses its model (MQTT 5 PUBACK).
    code, text = publish(*trainer_tls_flags(fleet_broker, "viewer"), "--wait", "0.5")
    assert (
        code == 1 and "refused publish to facetrack/pi-b/model" in text and "not authorized" in text.lower()
    )
    # Bad files are named by their flag, before any connection.
    crt, key, other_key = (
        trainer / "client.crt",
        trainer / "client.key",
        fleet_broker.client_dir("pi-a") / "client.key",
    )
    cases = [
        (
            ["--tls-cert", str(tmp_path / "nope.crt")],
            "--tls-cert",
            "cannot be read: No such file or directory",
        ),
        (["--tls-key", str(key)], "--tls-key", "is set but --tls-cert is not"),
        (
            ["--tls-cert", str(crt), "--tls-key", str(other_key)],
            "--tls-cert",
            "private key does not belong to the certificate",
        ),
        (
            ["--tls-cert", str(trainer / "password"), "--tls-key", str(key)],
            "--tls-cert",
            "needs a PEM certificate",
        ),
        (["--tls-ca", str(trainer / "password")], "--tls-ca", "is not a usable CA certificate"),
        (["--password-file", str(tmp_path)], "--password-file", "cannot be read"),
    ]
    base = [
        "--broker",
        f"localhost:{fleet_broker.port}",
        "--tls-ca",
        str(trainer / "ca.crt"),
        "--username",
        "trainer",
    ]
    for flags, flag, message in cases:
        code, text = publish(*base, *flags)
        line = text.strip()
        assert code == 1 and line.startswith(f"facetrack-trainer: error: {flag} ") and "\n" not in line, line
        assert message in line, line
    assert all(password not in text for text in outputs)
    asyncio.run(clear_retained(fleet_broker, "facetrack/pi-b/model"))


async def clear_retained(broker: FleetBroker, topic: str) -> None:
    async with connect(broker, "trainer") as trainer:
        await trainer.publish(topic, b"", qos=1, retain=True)


async def test_agent_and_trainer_end_to_end_over_tls(
    fleet_broker: FleetBroker, fleet_bundle: FleetBundle, assets_dir: Path, asset: Any, tmp_path: Path
) -> None:
    import json
    import os
    import signal
    import sys

    public_key, version = fleet_bundle.public_key, fleet_bundle.version
    client = fleet_broker.client_dir("pi-a")
    config = tmp_path / "config.toml"
    config.write_text(
        f'device_id = "pi-a"\nassets_dir = "{assets_dir}"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[pipeline]\ninput = "{asset("data/video/hamilton_clip.mp4")}"\nloop = true\n'
        f'[mqtt]\nhost = "localhost"\nport = {fleet_broker.port}\nusername = "pi-a"\n'
        f'password_file = "{client / "password"}"\nreconnect_min_s = 0.2\nreconnect_max_s = 1.0\n'
        f'[mqtt.tls]\nca_file = "{client / "ca.crt"}"\ncert_file = "{client / "client.crt"}"\n'
        f'key_file = "{client / "client.key"}"\n'
        f'[classifier]\ntrusted_keys = ["{public_key}"]\n'
        "[status]\ninterval_s = 1.0\n"
        "[homeassistant]\nenabled = true\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACETRACK_")}
    bin_dir = Path(sys.executable).parent
    async with connect(fleet_broker, "viewer") as viewer, connect(fleet_broker, "homeassistant") as hass:
        await viewer.subscribe("facetrack/pi-a/#", qos=1)
        await hass.subscribe("homeassistant/+/pi-a/+/config", qos=1)
        agent = await asyncio.create_subprocess_exec(
            str(bin_dir / "facetrack-agent"), "run", "--config", str(config), "--log-format", "json",
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            received: list[tuple[str, bytes]] = []

            async def until(predicate: Any, timeout_s: float) -> None:
                async def loop() -> None:
                    if any(predicate(t, p) for t, p in received):
                        return
                    async for message in viewer.messages:
                        received.append((str(message.topic), bytes(message.payload)))  # type: ignore[arg-type]
                        if predicate(*received[-1]):
                            return

                await asyncio.wait_for(loop(), timeout_s)

            # Over TLS as user pi-a: availability, status and events reach the viewer.
            # The clip loops: the agent runs until the test stops it (SIGTERM), however slow or
            # fast this machine is.
            await until(lambda t, p: t == "facetrack/pi-a/status", HANG_S)
            await until(lambda t, p: t == "facetrack/pi-a/events" and b"track_started" in p, HANG_S)
            # Over mutual TLS with the trainer's certificate and password, given as flags...
            args = ["--device", "pi-a", *trainer_tls_flags(fleet_broker), "--wait", "300", "--json"]
            code, out, err = await asyncio.to_thread(trainer_publish, fleet_broker, fleet_bundle.path, *args)
            assert code == 0, err[-2000:]
            (answer,) = json.loads(out)
            assert (answer["device"], answer["result"], answer["version"]) == ("pi-a", "applied", version)
            # ... and the same settings from an agent-style config.toml: the agent confirms it
            # already runs that bundle.
            own = fleet_broker.client_dir("trainer")
            trainer_config = tmp_path / "trainer.toml"
            trainer_config.write_text(
                f'[mqtt]\nhost = "localhost"\nport = {fleet_broker.port}\nusername = "trainer"\n'
                f'password_file = "{own / "password"}"\n'
                f'[mqtt.tls]\nca_file = "{own / "ca.crt"}"\ncert_file = "{own / "client.crt"}"\n'
                f'key_file = "{own / "client.key"}"\n'
            )
            args = ["--device", "pi-a", "--config", str(trainer_config), "--wait", "300", "--json"]
            code, out, err = await asyncio.to_thread(trainer_publish, fleet_broker, fleet_bundle.path, *args)
            assert code == 0, err[-2000:]
            (answer,) = json.loads(out)
            assert (answer["device"], answer["result"], answer["version"]) == ("pi-a", "current", version)
            await until(lambda t, p: t == "facetrack/pi-a/events" and b"model_applied" in p, HANG_S)
            assert agent.returncode is None, "the looped clip never ends on its own"
        finally:
            if agent.returncode is None:
                agent.send_signal(signal.SIGTERM)
            _, agent_err = await asyncio.wait_for(agent.communicate(), HANG_S)
        assert agent.returncode == 0, agent_err.decode()[-2000:]
        await until(lambda t, p: t == "facetrack/pi-a/availability" and p == b"stopped", HANG_S)
        events = [json.loads(p) for t, p in received if t == "facetrack/pi-a/events"]
        seqs = [e["seq"] for e in events]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert all(e["device"] == "pi-a" for e in events)
    # Clear the retained model so later tests on this broker start clean.
    async with connect(fleet_broker, "trainer") as trainer:
        await trainer.publish("facetrack/pi-a/model", b"", qos=1, retain=True)


def test_broker_script_is_idempotent_and_refuses_bad_device_ids(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BROKER_SCRIPT), *args, "--dir", str(tmp_path)], capture_output=True, text=True, check=False
        )

    assert run("init").returncode == 0
    assert run("add-device", "pi-x").returncode == 0
    files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    again = run("init"), run("add-device", "pi-x")
    assert all(r.returncode == 0 for r in again)
    assert "kept" in again[1].stdout
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == files
    assert sum(line.startswith("pi-x:") for line in (tmp_path / "passwd").read_text().splitlines()) == 1
    acl = (tmp_path / "acl").read_text().splitlines()
    assert acl.count("user pi-x") == 1 and "topic write facetrack/pi-x/events" in acl
    assert not [line for line in acl if line.startswith("pattern")]
    # A user made with add-user is read-only and keeps that role: it cannot become a device.
    assert run("add-user", "dash").returncode == 0
    acl = (tmp_path / "acl").read_text().splitlines()
    dash = acl[acl.index("user dash") + 1 :]
    dash = dash[: next((i for i, line in enumerate(dash) if not line.startswith("topic")), len(dash))]
    assert dash == [
        "topic read facetrack/+/events",
        "topic read facetrack/+/status",
        "topic read facetrack/+/availability",
    ]
    for args, message in (
        (("add-device", "dash"), "already exists as a reader"),
        (("add-user", "pi-x"), "already exists as a device"),
        (("add-user", "all"), "reserved"),
    ):
        result = run(*args)
        assert result.returncode == 1 and message in result.stderr, (args, result.stderr)
    # An ACL from before per-device blocks (%u patterns for every user) is replaced by init.
    (tmp_path / "acl").write_text("pattern write facetrack/%u/events\npattern read facetrack/%u/#\n")
    upgraded = run("init")
    acl = (tmp_path / "acl").read_text().splitlines()
    assert upgraded.returncode == 0 and "systemctl reload mosquitto" in upgraded.stdout
    assert not [line for line in acl if line.startswith("pattern")]
    assert acl.count("user pi-x") == 1 and acl.count("user dash") == 1 and acl.count("user viewer") == 1
    for bad, message in (
        ("all", "reserved"),
        ("trainer", "reserved"),
        ("a/b", "must be 1-64"),
        ("a+", "must be"),
    ):
        result = run("add-device", bad)
        assert result.returncode == 1 and message in result.stderr, (bad, result.stderr)
