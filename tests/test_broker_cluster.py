"""Issue 23: a fleet on a clustered broker: two real ejabberd nodes (mod_mqtt) on loopback.

The nodes are started and stopped here (agent.devtools.ejabberd: own node names, cookie, mnesia
and config folders), with TLS, client certificates, passwords and the shipped per-device rules
rendered from the same facetrack-broker.sh folder the single mosquitto uses. A "device" is the
agent's real MQTT side without video, as in bench.fleet: its SQLite outbox, MqttLink (the broker
list) and ModelService (signature check, install, model_applied), with a frame ticker calling
activate_pending / note_frame_classified as the frame loop does. Consumers are the
docs/mqtt-contract.md example's `is_new`. Nothing is faked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.broker_address import BrokerAddress
from agent.config import AgentConfig
from agent.devtools.ejabberd import EjabberdCluster, ejabberd_installed, make_pki, roles
from agent.events.schema import EventBase, TrackStarted, utc_now
from agent.runtime.credentials import resolve_login, tls_context
from agent.runtime.model_service import ModelService
from agent.runtime.mqtt_client import MqttClient
from agent.runtime.mqtt_link import MqttLink
from agent.runtime.outbox import Outbox
from agent.runtime.topics import Topics
from tests.classifier_helpers import FACES, agent_config, bundle_from, embed_people, embedding
from trainer.dataset import FaceEmbedding
from trainer.publish import BrokerOptions, clear_retained, publish_bundle
from trainer.training import train

HANG_S = 120.0
DEVICES = ("cam-a1", "cam-a2", "cam-b1")
# Enough devices on node B that one push through node A sends it more than the 1 MB Erlang
# distribution buffer ejabberd 23.01 drops at by default (a bundle is ~45 KB): 26 of 30 there.
FLEET = tuple(f"fleet-{i:02d}" for i in range(30))
READERS = ("consumer-1", "consumer-2")
DOC = Path(__file__).resolve().parent.parent / "docs" / "mqtt-contract.md"


def _doc_is_new() -> Any:
    """`is_new` of the contract page's consumer example, executed as written."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    code = next(block for block in blocks if "def is_new" in block)
    namespace: dict[str, Any] = {"__name__": "docs_consumer"}
    exec(compile(code, str(DOC), "exec"), namespace)
    return namespace["is_new"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not ejabberd_installed():
        pytest.fail("ejabberd is not installed: run `make setup` (apt-get install ejabberd)")
    directory = tmp_path_factory.mktemp("cluster-pki")
    directory.chmod(0o755)
    make_pki(directory, DEVICES, READERS)
    return directory


@pytest.fixture(scope="module")
def fleet_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not ejabberd_installed():
        pytest.fail("ejabberd is not installed: run `make setup` (apt-get install ejabberd)")
    directory = tmp_path_factory.mktemp("cluster-fleet-pki")
    directory.chmod(0o755)
    make_pki(directory, [*FLEET, "fleet-late"], READERS)
    return directory


@pytest.fixture(scope="module")
def cluster(pki: Path) -> Iterator[EjabberdCluster]:
    """Shared by the tests that kill nothing."""
    with EjabberdCluster(pki, roles(pki)) as running:
        yield running


@pytest.fixture(scope="module")
def emb(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FaceEmbedding:
    return embedding(assets_dir, tmp_path_factory.getbasetemp() / "embeddings")


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def bundles(emb: FaceEmbedding, assets_dir: Path, key: Ed25519PrivateKey) -> list[bytes]:
    """Signed bundles of a real SVM on the five Johns, under increasing versions."""
    x, y = embed_people(emb, assets_dir / FACES / "dlib_johns")
    result = train(x, y)
    return [bundle_from(result, emb, key, version=f"2026120{i}T000000Z") for i in range(1, 6)]


def _mqtt(pki: Path, user: str, brokers: list[int]) -> dict[str, Any]:
    client = pki / "clients" / user
    return {
        "brokers": [f"127.0.0.1:{port}" for port in brokers],
        "username": user,
        "password_file": client / "password",
        "password_env": "FACETRACK_TEST_UNSET_PASSWORD",
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 1.0,
        "tls": {
            "ca_file": client / "ca.crt",
            "cert_file": client / "client.crt",
            "key_file": client / "client.key",
        },
    }


def _tls(pki: Path, user: str) -> ssl.SSLContext:
    client = pki / "clients" / user
    context = ssl.create_default_context(cafile=str(client / "ca.crt"))
    context.load_cert_chain(client / "client.crt", client / "client.key")
    return context


def _client(pki: Path, user: str, port: int, identifier: str) -> MqttClient:
    return MqttClient(
        "127.0.0.1",
        port,
        username=user,
        password=(pki / "clients" / user / "password").read_text().strip(),
        tls_context=_tls(pki, user),
        identifier=identifier,
        protocol=aiomqtt.ProtocolVersion.V5,
    )


class Device:
    """The agent's MQTT side: outbox, MqttLink over the broker list, ModelService, frame ticker."""

    def __init__(self, config: AgentConfig, emb: FaceEmbedding) -> None:
        self.config = config
        self.id = config.device_id
        self.topics = Topics(config.mqtt.topic_prefix, config.device_id)
        self.outbox = Outbox(config.state_dir / "outbox.sqlite3", 100_000, 1 << 26)
        self.link = MqttLink(config.mqtt, self.topics, self.outbox)
        self.service = ModelService(config, emit=self._emit, embedder=emb.embedder)
        for topic in self.service.topics(self.topics):
            self.link.subscribe(topic, self.service.handle_message)
        self.sent = 0
        self.model_answers: list[EventBase] = []
        self._tasks: list[asyncio.Task[None]] = []

    def _emit(self, event: EventBase) -> None:
        if event.type in ("model_applied", "model_rejected"):
            self.model_answers.append(event)
        self.outbox.append(event, topic=self.topics.events)
        self.sent += 1
        self.link.notify()

    def emit_tracks(self, count: int) -> None:
        for _ in range(count):
            frame = self.sent
            self._emit(
                TrackStarted(device=self.id, ts=utc_now(), frame=frame, track_id=frame, bbox=[0, 0, 9, 9])
            )

    async def _frames(self) -> None:
        index = 0
        while True:
            self.service.activate_pending()
            if self.service.current is not None:
                self.service.note_frame_classified(index, self.service.current.version)
            index += 1
            await asyncio.sleep(0.02)

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self.link.run()), asyncio.create_task(self._frames())]
        await _poll(lambda: self.link.connected)

    async def stop(self) -> None:
        await self.link.stop(3.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.outbox.close()


async def _poll(predicate: Any) -> None:
    """Hang guard around a state with no event of its own (the link's `connected`)."""
    async with asyncio.timeout(HANG_S):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


class Consumer:
    """The contract's consumer on one node: every event received, and those `is_new` kept.

    Two consumers may share `last` (what the contract's consumer stores with its work, in one
    database): then each event is handled once in total, whichever node delivered it first.
    """

    def __init__(self, pki: Path, user: str, port: int, last: dict[str, tuple[str, int]], handled: list[Any]):
        self.client = _client(pki, user, port, f"{user}-{port}")
        self.last = last
        self.handled = handled
        self.received: list[tuple[str, int]] = []
        self.changed = asyncio.Event()
        self._is_new = _doc_is_new()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Consumer:
        await self.client.__aenter__()
        await self.client.subscribe("facetrack/+/events", qos=1)
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(aiomqtt.MqttError):
            await self.client.__aexit__(None, None, None)

    async def _read(self) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            async for message in self.client.messages:
                assert isinstance(message.payload, bytes)
                event = json.loads(message.payload)
                if event.get("type") != "track_started":
                    continue
                self.received.append((event["device"], event["seq"]))
                if self._is_new(self.last, event):
                    self.handled.append((event["device"], event["epoch"], event["seq"]))
                self.changed.set()


async def _until(predicate: Any, *changed: asyncio.Event) -> None:
    async with asyncio.timeout(HANG_S):
        while not predicate():
            for event in changed:
                event.clear()
            waits = [asyncio.create_task(event.wait()) for event in changed]
            _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()


def _trainer(pki: Path, ports: list[int]) -> BrokerOptions:
    config = AgentConfig(mqtt=_mqtt(pki, "trainer", ports))
    login = resolve_login(config.mqtt)
    return BrokerOptions(
        username=login.username,
        password=login.password,
        tls_context=tls_context(config.mqtt),
        brokers=tuple(BrokerAddress("127.0.0.1", port) for port in ports),
    )


@contextlib.asynccontextmanager
async def _devices(
    pki: Path,
    tmp: Path,
    assets_dir: Path,
    key: Ed25519PrivateKey,
    emb: FaceEmbedding,
    plan: dict[str, list[int]],
) -> AsyncIterator[dict[str, Device]]:
    """One Device per entry, each with its own broker order (its first entry is its home node)."""
    devices = {}
    for name, ports in plan.items():
        config = agent_config(assets_dir, tmp / name, [key], device_id=name, mqtt=_mqtt(pki, name, ports))
        devices[name] = Device(config, emb)
    try:
        await asyncio.gather(*(device.start() for device in devices.values()))
        yield devices
    finally:
        await asyncio.gather(*(device.stop() for device in devices.values()), return_exceptions=True)


async def test_device_on_a_consumer_on_b_every_event_once(
    cluster: EjabberdCluster,
    pki: Path,
    tmp_path: Path,
    assets_dir: Path,
    key: Ed25519PrivateKey,
    emb: FaceEmbedding,
) -> None:
    a, b = cluster.ports
    last: dict[str, tuple[str, int]] = {}
    handled: list[Any] = []
    async with (
        Consumer(pki, "consumer-1", b, last, handled) as consumer,
        _devices(pki, tmp_path, assets_dir, key, emb, {"cam-a1": [a, b]}) as devices,
    ):
        device = devices["cam-a1"]
        assert device.link.stats["broker"] == f"127.0.0.1:{a}"
        device.emit_tracks(200)
        await _until(lambda: len(consumer.received) >= 200, consumer.changed)
        assert sorted(consumer.received) == [("cam-a1", seq) for seq in range(1, 201)]  # each once


async def test_model_published_on_b_is_applied_on_a(
    cluster: EjabberdCluster,
    pki: Path,
    tmp_path: Path,
    assets_dir: Path,
    key: Ed25519PrivateKey,
    emb: FaceEmbedding,
    bundles: list[bytes],
) -> None:
    a, b = cluster.ports
    async with _devices(pki, tmp_path, assets_dir, key, emb, {"cam-a1": [a, b]}) as devices:
        # The trainer on node B only; the device subscribed on node A.
        _, answers = await publish_bundle(bundles[0], "all", _trainer(pki, [b]), wait_s=HANG_S, expect=1)
        assert [(x.device, x.result) for x in answers] == [("cam-a1", "applied")]
        assert devices["cam-a1"].service.current_version == "20261201T000000Z"
    # Retained in the cluster: a device that connects afterwards (to B, where it was published)
    # gets it without a new publish.
    async with _devices(pki, tmp_path, assets_dir, key, emb, {"cam-b1": [b, a]}) as later:
        await _poll(lambda: later["cam-b1"].service.current_version == "20261201T000000Z")
    # The next tests' devices start with no model pushed at them (a retained one would answer first).
    await clear_retained("all", _trainer(pki, [b, a]))


async def test_doc_consumer_on_both_nodes_handles_every_event_once(
    cluster: EjabberdCluster,
    pki: Path,
    tmp_path: Path,
    assets_dir: Path,
    key: Ed25519PrivateKey,
    emb: FaceEmbedding,
) -> None:
    """ejabberd 23.01 has no shared subscriptions (the `$share` SUBSCRIBE is answered 0x9E and
    the connection closed, pinned below), so the contract's other way stands in for a `$share`
    group: two consumers, one per node, each receiving everything, sharing `last`."""
    a, b = cluster.ports
    last: dict[str, tuple[str, int]] = {}
    handled: list[Any] = []
    plan = {"cam-a1": [a, b], "cam-a2": [a, b], "cam-b1": [b, a]}
    async with (
        Consumer(pki, "consumer-1", a, last, handled) as c1,
        Consumer(pki, "consumer-2", b, last, handled) as c2,
        _devices(pki, tmp_path, assets_dir, key, emb, plan) as devices,
    ):
        for device in devices.values():
            device.emit_tracks(100)

        def every_event_received() -> bool:
            # Every event each device sent: its 100 tracks, and any model answer of its own.
            sent = sum(device.sent for device in devices.values())
            return len(c1.received) >= sent and len(c2.received) >= sent

        await _until(every_event_received, c1.changed, c2.changed)
        expected = [(d, s) for d in sorted(plan) for s in range(1, devices[d].sent + 1)]
        assert sorted((d, s) for d, _, s in handled) == expected
    # The broker answers a `$share` SUBSCRIBE by closing the connection with reason 0x9E (and no
    # SUBACK): wait for the close, not for the SUBACK.
    probe = _client(pki, "consumer-1", a, "share-probe")
    await probe.__aenter__()
    subscribing = asyncio.create_task(probe.subscribe("$share/workers/facetrack/+/events", qos=1))
    with pytest.raises(aiomqtt.MqttError) as lost:
        async with asyncio.timeout(HANG_S):
            async for _ in probe.messages:
                pass
    subscribing.cancel()
    await asyncio.gather(subscribing, return_exceptions=True)
    with contextlib.suppress(aiomqtt.MqttError):
        await probe.__aexit__(None, None, None)
    assert "Shared subscription not supported" in str(lost.value.__cause__)


async def test_node_killed_mid_run_devices_move_and_lose_nothing(
    pki: Path,
    tmp_path: Path,
    assets_dir: Path,
    key: Ed25519PrivateKey,
    emb: FaceEmbedding,
    bundles: list[bytes],
) -> None:
    """kill -9 of node A while its devices stream: they move to B, every seq arrives, dedupe on
    (device, epoch, seq) leaves each event once, and a model published afterwards (the trainer
    given both nodes, A first) reaches every device."""
    per_device = 300
    with EjabberdCluster(pki, roles(pki)) as cluster:
        a, b = cluster.ports
        last: dict[str, tuple[str, int]] = {}
        handled: list[Any] = []
        plan = {"cam-a1": [a, b], "cam-a2": [a, b], "cam-b1": [b, a]}
        async with (
            Consumer(pki, "consumer-2", b, last, handled) as consumer,
            _devices(pki, tmp_path, assets_dir, key, emb, plan) as devices,
        ):
            for device in devices.values():
                device.emit_tracks(per_device // 2)
            # Killed once half of every device's events have reached the consumer on B.
            await _until(lambda: len({r for r in consumer.received}) >= 3 * per_device // 2, consumer.changed)
            cluster.kill(0)
            for device in devices.values():
                device.emit_tracks(per_device - per_device // 2)
            await _poll(lambda: all(d.link.stats["broker"] == f"127.0.0.1:{b}" for d in devices.values()))
            await _until(lambda: len(set(consumer.received)) >= 3 * per_device, consumer.changed)
            expected = [(d, s) for d in sorted(plan) for s in range(1, per_device + 1)]
            assert sorted(set(consumer.received)) == expected  # 0 lost
            assert sorted((d, s) for d, _, s in handled) == expected  # 0 duplicated after dedupe
            assert all(d.link.stats["connects"] == 2 for n, d in devices.items() if n.startswith("cam-a"))
            _, answers = await publish_bundle(
                bundles[1], "all", _trainer(pki, [a, b]), wait_s=HANG_S, expect=3
            )
            assert sorted((x.device, x.result) for x in answers) == [(d, "applied") for d in sorted(plan)]


async def test_cluster_enforces_the_shipped_rules(cluster: EjabberdCluster, pki: Path) -> None:
    """deploy/mosquitto/acl as the cluster renders it: a device writes only its own topics and
    never a model, readers write nothing, the trainer writes models, a wrong password is refused."""
    a, b = cluster.ports
    refused = [
        ("cam-a1", a, "facetrack/cam-a2/events"),  # another device's events
        ("cam-a1", b, "facetrack/cam-a1/model"),  # a model, even its own
        ("cam-a1", a, "facetrack/all/model"),
        ("consumer-1", b, "facetrack/cam-a1/events"),  # readers read only
        ("viewer", a, "facetrack/cam-a1/status"),
    ]
    for user, port, topic in refused:
        async with _client(pki, user, port, f"{user}-acl") as client:
            with pytest.raises(aiomqtt.MqttError, match="refused publish"):
                await client.publish_confirmed(topic, b"{}", qos=1)
    allowed = [("cam-a1", b, "facetrack/cam-a1/status"), ("trainer", a, "facetrack/cam-b1/model")]
    for user, port, topic in allowed:
        async with _client(pki, user, port, f"{user}-acl") as client:
            await client.publish_confirmed(topic, b"", qos=1, retain=True)  # empty: clears nothing real
    # A wrong password is turned away at CONNECT. (ejabberd 23.01 checks a client certificate
    # when one is sent but cannot require one: docs/deploy.md, cluster limits.)
    wrong = MqttClient(
        "127.0.0.1",
        b,
        username="cam-a1",
        password="not-it",
        tls_context=_tls(pki, "cam-a1"),
        identifier="wrong",
    )
    with pytest.raises(aiomqtt.MqttError):
        async with wrong:
            pass


async def test_a_push_through_one_node_reaches_a_fleet_on_both(
    fleet_pki: Path,
    tmp_path: Path,
    assets_dir: Path,
    key: Ed25519PrivateKey,
    emb: FaceEmbedding,
    bundles: list[bytes],
) -> None:
    """Issue 23's lost pushes: 30 devices, 26 homed on node B, streaming events while the trainer
    (node A first, as `--broker a,b`) pushes a model. Every device applies it and answers once,
    every event reaches the consumer on A once, and a device that connects to B afterwards gets
    the retained model (B learnt the topic from the trainer's copy through it)."""
    pki = fleet_pki
    per_device = 40
    with EjabberdCluster(pki, roles(pki)) as cluster:
        a, b = cluster.ports
        plan = {name: ([a, b] if i % 8 == 0 else [b, a]) for i, name in enumerate(FLEET)}
        assert sum(ports[0] == b for ports in plan.values()) == 26
        last: dict[str, tuple[str, int]] = {}
        handled: list[Any] = []
        async with (
            Consumer(pki, "consumer-1", a, last, handled) as consumer,
            _devices(pki, tmp_path, assets_dir, key, emb, plan) as devices,
        ):
            for device in devices.values():
                device.emit_tracks(per_device)
            _, answers = await publish_bundle(
                bundles[2], "all", _trainer(pki, [a, b]), wait_s=HANG_S, expect=len(FLEET)
            )
            assert sorted((x.device, x.result) for x in answers) == [(d, "applied") for d in sorted(plan)]
            version = "20261203T000000Z"
            assert all(d.service.current_version == version for d in devices.values())
            await _until(lambda: len(set(consumer.received)) >= len(FLEET) * per_device, consumer.changed)
            expected = [(d, s) for d in sorted(plan) for s in range(1, per_device + 1)]
            assert sorted(consumer.received) == expected  # every event, each once
            # Applied once per device, though each got a copy through either node: one
            # model_applied that applied it; a copy arriving after that answer is confirmed as
            # already running (the contract's answer to a bundle pushed again), never applied again.
            for device in devices.values():
                answered = [(e.type, e.model_version, e.already_running) for e in device.model_answers]  # type: ignore[attr-defined]
                assert answered[0] == ("model_applied", version, False)
                assert set(answered[1:]) <= {("model_applied", version, True)}
        late = {"fleet-late": [b, a]}
        async with _devices(pki, tmp_path, assets_dir, key, emb, late) as later:
            await _poll(lambda: later["fleet-late"].service.current_version == version)
