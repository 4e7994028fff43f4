"""Issue 23: the agent's MQTT link with a list of brokers (real mosquittos on loopback).

Two independent mosquittos stand in for two entry points: the link connects to the first that
answers, stays there, and moves to the next when its broker goes away. Subscribers on both see
every seq; the outbox, not the broker, carries the events across the move. The cluster itself
(ejabberd, shared subscriptions and retained messages) is tests/test_broker_cluster.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import numpy as np
import pytest

from agent.broker_address import BrokerAddress, BrokerRotation, parse_addresses
from agent.config import ConfigError, MqttConfig, load_config
from agent.devtools.mosquitto import MosquittoBroker, free_port
from agent.events.schema import TrackStarted, utc_now
from agent.runtime.key_files import write_key_pair
from agent.runtime.mqtt_link import MqttLink
from agent.runtime.outbox import Outbox
from agent.runtime.topics import Topics
from trainer.training import train

REPO_ROOT = Path(__file__).resolve().parent.parent
HANG_S = 60.0
DEVICE = "cam-fo"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("a", [("a", 1883)]),
        ("a:1,b", [("a", 1), ("b", 1883)]),
        ("[::1]:8883,10.0.0.2:8883", [("::1", 8883), ("10.0.0.2", 8883)]),
        ("::1", [("::1", 1883)]),
    ],
)
def test_broker_lists_parse(given: str, expected: list[tuple[str, int]]) -> None:
    assert parse_addresses(given, 1883) == tuple(BrokerAddress(h, p) for h, p in expected)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"host": ""}, "mqtt.host = '': must be a host name"),
        ({"host": "a:1883,b:1883"}, "is a list: give several brokers as mqtt.brokers"),
        ({"host": "a:1883"}, "must be a host name without a port"),
        ({"brokers": "a:1883,,b"}, "empty entry"),
        ({"brokers": "a:0"}, "port must be a number from 1 to 65535"),
        ({"brokers": "a:99999"}, "port must be a number from 1 to 65535"),
        ({"brokers": "a:1883,a"}, "listed twice"),
        ({"brokers": " , "}, "empty entry"),
        ({"brokers": "bad host:1"}, "host is not a valid host name or IP address"),
    ],
)
def test_bad_broker_settings_are_one_line(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, mqtt=overrides)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_one_address_works_as_before(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("[mqtt]\nhost = 'broker.lan'\nport = 8883\n")
    assert load_config(toml).mqtt.addresses() == (BrokerAddress("broker.lan", 8883),)
    toml.write_text("[mqtt]\nport = 8883\nbrokers = ['a.lan', 'b.lan:9883']\n")
    assert load_config(toml).mqtt.describe_brokers() == "a.lan:8883,b.lan:9883"


def test_rotation_waits_only_after_every_broker_failed() -> None:
    one = BrokerRotation((BrokerAddress("a", 1),))
    one.failed()
    assert one.round_failed and one.current.host == "a"  # one broker: backoff every time, as before
    two = BrokerRotation((BrokerAddress("a", 1), BrokerAddress("b", 2)))
    two.failed()
    assert not two.round_failed and two.current.host == "b"  # straight on to the next
    two.failed()
    assert two.round_failed and two.current.host == "a"


class Collector:
    """Subscribes on one broker and records (seq, broker index) of each event of DEVICE."""

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.changed = asyncio.Event()

    async def run(self, broker: MosquittoBroker, ready: asyncio.Event) -> None:
        # The collector of a broker the test stops ends with it.
        with contextlib.suppress(aiomqtt.MqttError):
            await self._read(broker, ready)

    async def _read(self, broker: MosquittoBroker, ready: asyncio.Event) -> None:
        async with aiomqtt.Client(broker.host, broker.port, identifier=f"collector-{broker.port}") as client:
            await client.subscribe(f"facetrack/{DEVICE}/events", qos=1)
            ready.set()
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                self.seqs.append(int(json.loads(message.payload)["seq"]))
                self.changed.set()


async def _until(predicate: object, changed: asyncio.Event) -> None:
    async with asyncio.timeout(HANG_S):
        while not predicate():  # type: ignore[operator]
            changed.clear()
            await changed.wait()


@pytest.fixture
async def brokers() -> AsyncIterator[tuple[MosquittoBroker, MosquittoBroker]]:
    a, b = MosquittoBroker(), MosquittoBroker()
    a.start()
    b.start()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def _config(*ports: int) -> MqttConfig:
    return MqttConfig(
        brokers=[f"127.0.0.1:{port}" for port in ports],
        reconnect_min_s=0.05,
        reconnect_max_s=0.4,
        password_env="FACETRACK_TEST_UNSET_PASSWORD",
    )


async def test_link_moves_to_the_next_broker_and_loses_nothing(
    brokers: tuple[MosquittoBroker, MosquittoBroker], tmp_path: Path
) -> None:
    a, b = brokers
    outbox = Outbox(tmp_path / "outbox.db", 10_000, 1 << 24)
    link = MqttLink(_config(a.port, b.port), Topics("facetrack", DEVICE), outbox)
    seen = Collector()
    ready = [asyncio.Event(), asyncio.Event()]
    collectors = [asyncio.create_task(seen.run(broker, r)) for broker, r in zip(brokers, ready, strict=True)]
    await asyncio.gather(*(r.wait() for r in ready))
    task = asyncio.create_task(link.run())

    def emit(count: int, start: int) -> None:
        for i in range(start, start + count):
            link.emit(TrackStarted(device=DEVICE, ts=utc_now(), frame=i, track_id=i, bbox=[0, 0, 9, 9]))

    emit(30, 0)
    await _until(lambda: len(set(seen.seqs)) >= 30, seen.changed)
    assert link.stats["broker"] == f"127.0.0.1:{a.port}"  # the first that answers
    a.stop()  # the broker in use goes away; its collector's connection dies with it
    emit(30, 30)  # queued while the link moves
    await _until(lambda: len(set(seen.seqs)) >= 60, seen.changed)
    assert link.stats["broker"] == f"127.0.0.1:{b.port}"
    assert sorted(set(seen.seqs)) == list(range(1, 61))  # nothing lost across the move
    await link.stop(2.0)
    await task
    assert outbox.depth == 0  # every event acknowledged (by one broker or the other)
    for collector in collectors:
        collector.cancel()
    await asyncio.gather(*collectors, return_exceptions=True)
    outbox.close()


async def test_first_broker_down_at_start_takes_the_next(
    brokers: tuple[MosquittoBroker, MosquittoBroker], tmp_path: Path
) -> None:
    _, b = brokers
    dead = free_port()  # nothing listens here
    outbox = Outbox(tmp_path / "outbox.db", 1000, 1 << 20)
    link = MqttLink(_config(dead, b.port), Topics("facetrack", DEVICE), outbox)
    task = asyncio.create_task(link.run())
    async with asyncio.timeout(HANG_S):
        while not link.connected:  # noqa: ASYNC110  (the link has no "connected" event)
            await asyncio.sleep(0.02)
    stats = link.stats
    assert stats["broker"] == f"127.0.0.1:{b.port}"
    assert stats["connect_failures"] >= 1 and stats["brokers"] == [f"127.0.0.1:{dead}", f"127.0.0.1:{b.port}"]
    await link.stop(2.0)
    await task
    outbox.close()


def _trainer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainer.cli", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def bundle_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small signed bundle (synthetic embeddings: only its transport matters here)."""
    keys = tmp_path_factory.mktemp("keys")
    _, _, private = write_key_pair(keys, "fleet")
    rng = np.random.default_rng(3)
    x = np.vstack([c + 0.05 * rng.normal(size=(4, 128)) for c in rng.normal(size=(2, 128))])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    result = train(x, ["ada"] * 4 + ["bob"] * 4, far_target=0.01)
    path = keys / "model.ftm"
    path.write_bytes(result.sign(embedder_id="mobilefacenet-128-arcface112-v1", dim=128, private_key=private))
    return path


async def test_trainer_publish_takes_the_first_broker_that_answers(
    brokers: tuple[MosquittoBroker, MosquittoBroker], bundle_file: Path
) -> None:
    _, b = brokers
    dead = free_port()
    data = await asyncio.to_thread(bundle_file.read_bytes)
    ready = asyncio.Event()
    retained: list[bytes] = []
    async with aiomqtt.Client(b.host, b.port, identifier="retained-probe") as probe:
        # Subscribed before the publish: the message arrives live, then stays retained.
        await probe.subscribe("facetrack/cam-9/model", qos=1)
        ready.set()
        sent = await asyncio.to_thread(
            _trainer,
            *("publish", str(bundle_file), "--device", "cam-9", "--wait", "0.2"),
            *("--broker", f"127.0.0.1:{dead},127.0.0.1:{b.port}"),
        )
        assert sent.returncode == 2 and "no device answered" in sent.stdout, sent.stderr  # sent, nobody home
        async with asyncio.timeout(HANG_S):
            async for message in probe.messages:
                assert isinstance(message.payload, bytes)
                retained.append(message.payload)
                break
    assert retained == [data]
    # Every broker down: one line naming each.
    other = free_port()
    failed = await asyncio.to_thread(
        _trainer,
        *("publish", str(bundle_file), "--device", "cam-9", "--wait", "0.2"),
        *("--broker", f"127.0.0.1:{dead},127.0.0.1:{other}"),
    )
    lines = [line for line in failed.stderr.splitlines() if line.strip()]
    assert failed.returncode != 0 and len(lines) == 1, failed.stderr
    assert "no broker answered" in lines[0] and str(dead) in lines[0] and str(other) in lines[0]
    # A malformed list is one line too, before anything is sent.
    bad = await asyncio.to_thread(
        _trainer, "publish", str(bundle_file), "--device", "cam-9", "--broker", "127.0.0.1:1883,,b"
    )
    assert bad.returncode == 1 and "empty entry" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
