"""MqttLink against a real mosquitto with real subscribers: delivery, outages, availability, auth.

Nothing is mocked. "No PUBACK" is produced by freezing the broker process with SIGSTOP.

No assertion depends on this machine's speed (docs/testing.md): every wait is on a state change or
a message, with a timeout that only guards against a hang, and "nothing arrived" is checked by
waiting for a marker sent after whatever must not arrive.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import structlog

from agent.config import MqttConfig
from agent.devtools.mosquitto import MosquittoBroker, free_port
from agent.events.schema import TrackStarted, utc_now
from agent.runtime.mqtt_link import MqttLink, backoff_delay
from agent.runtime.outbox import Outbox
from agent.runtime.topics import Topics

REPO_ROOT = Path(__file__).resolve().parent.parent
DEVICE = "pi-1"
HANG_S = 120.0  # hang guard: a wait that takes this long is a bug, not a slow machine


def unread_by_broker(port: int) -> int:
    """Bytes clients sent to the (frozen) broker on `port` that it has not read: the receive
    queues of its established loopback sockets, from /proc/net/tcp."""
    total = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        if local_port == port and fields[3] == "01":  # ESTABLISHED
            total += int(fields[4].split(":")[1], 16)
    return total


def draft(frame: int) -> TrackStarted:
    return TrackStarted(device=DEVICE, ts=utc_now(), frame=frame, track_id=frame, bbox=[0.0, 0.0, 10.0, 20.0])


def fast_config(broker: MosquittoBroker, **overrides: Any) -> MqttConfig:
    values: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.4,
        "keepalive_s": 5,
        "password_env": "FACETRACK_TEST_UNSET_PASSWORD",
    }
    values.update(overrides)
    return MqttConfig(**values)


class Subscriber:
    """A real MQTT client that keeps reconnecting and records (topic, payload, retain)."""

    def __init__(self, broker: MosquittoBroker, topic_filter: str, client_id: str, persistent: bool) -> None:
        self.broker = broker
        self.topic_filter = topic_filter
        self.client_id = client_id
        self.persistent = persistent
        self.received: list[tuple[str, bytes, bool]] = []
        self._seqs: list[int] = []
        self.subscribed = asyncio.Event()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    self.broker.host,
                    self.broker.port,
                    identifier=self.client_id,
                    clean_session=not self.persistent,
                    keepalive=5,
                ) as client:
                    await client.subscribe(self.topic_filter, qos=1)
                    self.subscribed.set()
                    async for message in client.messages:
                        payload = message.payload
                        assert isinstance(payload, bytes)
                        self.received.append((message.topic.value, payload, message.retain))
                        if message.topic.value.endswith("/events"):
                            self._seqs.append(json.loads(payload)["seq"])
                        self._changed.set()
            except aiomqtt.MqttError:
                self.subscribed.clear()
                await asyncio.sleep(0.05)

    async def start(self) -> Subscriber:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.subscribed.wait(), HANG_S)
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await self._task

    def seqs(self) -> list[int]:
        return list(self._seqs)

    @property
    def events_received(self) -> int:
        return len(self._seqs)

    def payloads(self, topic: str) -> list[bytes]:
        return [p for t, p, _ in self.received if t == topic]

    async def wait_until(self, predicate: Callable[[], bool], within: float = HANG_S) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


def dedupe_in_order(seqs: list[int]) -> list[int]:
    seen: set[int] = set()
    out = []
    for seq in seqs:
        if seq not in seen:
            seen.add(seq)
            out.append(seq)
    return out


@pytest.fixture
def persistent_broker() -> Iterator[MosquittoBroker]:
    """A mosquitto that keeps persistent sessions across stop()/start(), so a subscriber that is
    offline during the restart still gets every QoS 1 message queued for it."""
    workdir = Path(tempfile.mkdtemp(prefix="facetrack-mosquitto-persist-"))
    # mosquitto drops root privileges to its own user before writing its database.
    workdir.chmod(0o777)
    broker = MosquittoBroker(
        workdir=workdir,
        extra_config=f"persistence true\npersistence_location {workdir}/\nmax_queued_messages 100000\n",
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.close()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
async def topics() -> Topics:
    return Topics(prefix="facetrack", device_id=DEVICE)


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "state" / "outbox.sqlite3", max_rows=100_000, max_bytes=64 << 20)
    yield box
    box.close()


async def start_link(link: MqttLink) -> asyncio.Task[None]:
    task = asyncio.create_task(link.run())
    return task


async def wait_for(predicate: Callable[[], bool], within: float = HANG_S) -> None:
    # Polling: the predicates read outbox/link state that has no event to wait on.
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def test_topics_layout() -> None:
    t = Topics(prefix="facetrack", device_id="pi-1")
    assert (t.events, t.availability, t.status, t.model, t.fleet_model, t.all_events) == (
        "facetrack/pi-1/events",
        "facetrack/pi-1/availability",
        "facetrack/pi-1/status",
        "facetrack/pi-1/model",
        "facetrack/all/model",
        "facetrack/+/events",
    )
    for bad in ("", "a/b", "all", "x+", "#"):
        with pytest.raises(ValueError):
            Topics(prefix="facetrack", device_id=bad)


def test_backoff_is_exponential_jittered_and_bounded() -> None:
    import random

    rng = random.Random(1)
    delays = [[backoff_delay(a, 0.5, 30.0, rng) for _ in range(200)] for a in range(1, 12)]
    assert all(0.5 <= d <= 30.0 for row in delays for d in row)
    assert max(delays[0]) == pytest.approx(0.5)
    assert max(delays[3]) <= 4.0 and max(delays[3]) > 3.0  # attempt 4: up to 0.5 * 2**3
    assert max(delays[10]) > 25.0  # capped at 30, and full jitter spreads the whole range
    assert min(delays[10]) < 5.0


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_delivers_every_event_in_seq_order_and_acks_only_after_puback(
    mosquitto: MosquittoBroker, topics: Topics, outbox: Outbox, protocol: str
) -> None:
    sub = await Subscriber(mosquitto, topics.all_events, "test-sub", persistent=False).start()
    link = MqttLink(fast_config(mosquitto, protocol=protocol), topics, outbox)
    task = await start_link(link)
    await wait_for(lambda: link.connected)

    n = 300
    for i in range(n):
        outbox.append(draft(i))
        link.notify()
    await sub.wait_until(lambda: len(sub.seqs()) >= n)
    assert sub.seqs() == list(range(1, n + 1))
    await wait_for(lambda: outbox.depth == 0)
    assert link.stats["published"] == n

    # Freeze the broker: the TCP connection stays up but no PUBACK can come back.
    assert mosquitto._process is not None
    pid = mosquitto._process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        for i in range(5):
            outbox.append(draft(n + i))
            link.notify()
        # Wait until the five PUBLISHes sit unread in the frozen broker's socket: the link has
        # sent them, and no PUBACK can have come back.
        sent = sum(len(row.payload) for row in outbox.peek(5))
        await wait_for(lambda: unread_by_broker(mosquitto.port) >= sent)
        assert outbox.depth == 5, "events left the outbox without a PUBACK"
    finally:
        os.kill(pid, signal.SIGCONT)
    await wait_for(lambda: outbox.depth == 0)
    await sub.wait_until(lambda: len(sub.seqs()) >= n + 5)
    assert sub.seqs() == list(range(1, n + 6))

    await link.stop()
    await task
    await sub.stop()


async def test_broker_restart_mid_stream_loses_nothing_and_resubscribes(
    persistent_broker: MosquittoBroker, topics: Topics, outbox: Outbox
) -> None:
    broker = persistent_broker
    sub = await Subscriber(broker, topics.all_events, "test-sub-persistent", persistent=True).start()
    link = MqttLink(fast_config(broker), topics, outbox)
    commands: list[bytes] = []

    async def on_model(topic: str, payload: bytes) -> None:
        commands.append(payload)

    link.subscribe(topics.model, on_model)
    task = await start_link(link)
    await wait_for(lambda: link.connected)

    n = 400
    for i in range(n):
        outbox.append(draft(i))
        link.notify()
        if i == 150:
            broker.stop()
            await wait_for(lambda: not link.connected)
        if i == 300:
            assert outbox.depth > 0, "events appended during the outage must queue on disk"
            broker.start()
        await asyncio.sleep(0.002 if 150 <= i < 300 else 0)
    await sub.wait_until(lambda: n in sub.seqs())
    received = sub.seqs()
    assert dedupe_in_order(received) == list(range(1, n + 1)), "an event is missing or out of order"
    await wait_for(lambda: outbox.depth == 0)
    assert link.stats["reconnects"] >= 1

    # The handler's subscription was renewed on the new connection.
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.publish(topics.model, b"after-restart", qos=1)
    await wait_for(lambda: commands == [b"after-restart"])

    await link.stop()
    await task
    await sub.stop()


async def test_broker_unreachable_at_start_queues_on_disk_then_delivers(
    persistent_broker: MosquittoBroker, topics: Topics, outbox: Outbox
) -> None:
    broker = persistent_broker
    # Register the subscriber's persistent session, then take the broker away.
    sub = await Subscriber(broker, topics.all_events, "test-sub-late", persistent=True).start()
    await sub.stop()
    broker.stop()

    with structlog.testing.capture_logs() as logs:
        link = MqttLink(fast_config(broker), topics, outbox)
        task = await start_link(link)
        for i in range(40):
            outbox.append(draft(i))
            link.notify()
        await wait_for(lambda: link.stats["connect_failures"] >= 2)
        assert not link.connected
        assert outbox.depth == 40
        assert link.stats["connect_failures"] >= 2
        assert link.stats["last_error"]
        broker.start()
        await wait_for(lambda: outbox.depth == 0)
    attempts = [e for e in logs if e["event"] == "mqtt_connecting"]
    waits = [e for e in logs if e["event"] == "mqtt_reconnect_wait"]
    assert len(attempts) >= 3 and len(waits) >= 2
    assert all(0.05 <= e["delay_s"] <= 0.4 for e in waits)

    sub = await Subscriber(broker, topics.all_events, "test-sub-late", persistent=True).start()
    await sub.wait_until(lambda: 40 in sub.seqs())
    assert dedupe_in_order(sub.seqs()) == list(range(1, 41))
    await link.stop()
    await task
    await sub.stop()


_AGENT = """
import asyncio, sys
from pathlib import Path
import structlog
from agent.config import MqttConfig
from agent.runtime.mqtt_link import MqttLink
from agent.runtime.outbox import Outbox
from agent.runtime.topics import Topics

structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))

async def main() -> None:
    outbox = Outbox(Path(sys.argv[2]), max_rows=1_000_000, max_bytes=1 << 30)
    pause_at = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    if pause_at:
        # Freeze the drain for good once the PUBACK of `pause_at` is in but before its rows are
        # deleted, and say so: the test's SIGKILL then lands mid-drain on any machine.
        real_ack_many = outbox.ack_many

        def ack_many(seqs):
            seqs = list(seqs)
            if max(seqs) >= pause_at:
                print("pausing", min(seqs), flush=True)
                import time
                time.sleep(3600)
            real_ack_many(seqs)

        outbox.ack_many = ack_many
    config = MqttConfig(host="127.0.0.1", port=int(sys.argv[1]), keepalive_s=5)
    link = MqttLink(config, Topics("facetrack", "pi-1"), outbox)
    task = asyncio.create_task(link.run())
    while not link.connected:
        await asyncio.sleep(0.01)
    print("connected", flush=True)
    await task

asyncio.run(main())
"""


async def test_availability_online_offline_on_kill_9_and_stopped_on_clean_stop(
    mosquitto: MosquittoBroker, topics: Topics, outbox: Outbox, tmp_path: Path
) -> None:
    sub = await Subscriber(mosquitto, topics.availability, "test-avail", persistent=False).start()

    script = tmp_path / "agent_proc.py"
    script.write_text(_AGENT)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        str(mosquitto.port),
        str(tmp_path / "child-outbox.sqlite3"),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), HANG_S)
        assert line.strip() == b"connected"
        await sub.wait_until(lambda: sub.payloads(topics.availability)[-1:] == [b"online"])
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await sub.wait_until(lambda: sub.payloads(topics.availability)[-1:] == [b"offline"])
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    # In-process link: online (retained), then a clean stop publishes "stopped" and no will fires.
    link = MqttLink(fast_config(mosquitto), topics, outbox)
    task = await start_link(link)
    await sub.wait_until(lambda: sub.payloads(topics.availability)[-1:] == [b"online"])
    late = await Subscriber(mosquitto, topics.availability, "test-avail-late", persistent=False).start()
    await late.wait_until(lambda: late.received != [])
    assert late.received[0] == (topics.availability, b"online", True)
    await late.stop()

    await link.stop()
    await task
    assert task.done() and not link.connected
    await sub.wait_until(lambda: sub.payloads(topics.availability)[-1:] == [b"stopped"])
    # A will would fire when the broker sees the link's connection close, which happened before
    # this marker was even sent: once the marker is in, nothing came between.
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as marker:
        await marker.publish(topics.availability, b"marker", qos=1, retain=False)
    await sub.wait_until(lambda: sub.payloads(topics.availability)[-1:] == [b"marker"])
    assert sub.payloads(topics.availability)[-2:] == [b"stopped", b"marker"], (
        "the will fired after a clean stop"
    )
    late = await Subscriber(mosquitto, topics.availability, "test-avail-late2", persistent=False).start()
    await late.wait_until(lambda: late.received != [])
    assert late.received[0] == (topics.availability, b"stopped", True)
    await late.stop()
    await sub.stop()


async def test_status_and_raw_publish_are_retained_and_best_effort(
    mosquitto: MosquittoBroker, topics: Topics, outbox: Outbox
) -> None:
    link = MqttLink(fast_config(mosquitto), topics, outbox)
    assert await link.publish_status({"fps": 1.0}) is False  # not connected: skipped, no error
    task = await start_link(link)
    await wait_for(lambda: link.connected)
    assert await link.publish_status({"fps": 12.5, "outbox_depth": outbox.depth}) is True
    assert await link.publish_raw("homeassistant/sensor/pi-1/config", b"{}", qos=1, retain=True) is True
    sub = await Subscriber(mosquitto, topics.status, "test-status", persistent=False).start()
    await sub.wait_until(lambda: sub.received != [])
    topic, payload, retained = sub.received[0]
    assert (topic, retained) == (topics.status, True)
    assert json.loads(payload) == {"fps": 12.5, "outbox_depth": 0}
    await link.stop()
    await task
    await sub.stop()


async def test_handler_errors_and_malformed_messages_do_not_kill_the_link(
    mosquitto: MosquittoBroker, topics: Topics, outbox: Outbox
) -> None:
    seen: list[dict[str, Any]] = []

    async def strict_json(topic: str, payload: bytes) -> None:
        seen.append(json.loads(payload))  # raises on garbage, as a real handler would

    link = MqttLink(fast_config(mosquitto), topics, outbox)
    task = await start_link(link)
    await wait_for(lambda: link.connected)
    link.subscribe(topics.model, strict_json)  # after start: subscribed on the live connection
    link.subscribe(topics.fleet_model, strict_json)
    # The SUBACKs come back in the background: publish a probe on each topic until it arrives.
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
        for topic in (topics.model, topics.fleet_model):
            probe = {"probe": topic}
            async with asyncio.timeout(HANG_S):
                while probe not in seen:
                    await client.publish(topic, json.dumps(probe).encode(), qos=1)
                    await asyncio.sleep(0.05)
    seen.clear()
    with structlog.testing.capture_logs() as logs:
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
            await client.publish(topics.model, b"\xff\xfe not json", qos=1)
            await client.publish(topics.model, b"", qos=1)
            await client.publish(topics.fleet_model, b'{"ok": 1}', qos=1)
        await wait_for(lambda: seen == [{"ok": 1}])
    assert link.connected
    assert link.stats["handler_errors"] == 2
    assert [e["topic"] for e in logs if e["event"] == "mqtt_handler_failed"] == [topics.model] * 2

    sub = await Subscriber(mosquitto, topics.events, "test-after-errors", persistent=False).start()
    outbox.append(draft(0))
    link.notify()
    await sub.wait_until(lambda: sub.seqs() == [1])
    with pytest.raises(ValueError):
        link.subscribe("bad/#/filter", strict_json)
    await link.stop()
    await task
    await sub.stop()


@pytest.fixture
def auth_broker(tmp_path: Path) -> Iterator[tuple[MosquittoBroker, str]]:
    password = "s3cr3t-Passw0rd-facetrack"
    workdir = Path(tempfile.mkdtemp(prefix="facetrack-mosquitto-auth-"))
    workdir.chmod(0o755)
    pwfile = workdir / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), "agent", password], check=True)
    pwfile.chmod(0o644)
    port = free_port()
    broker = MosquittoBroker(
        port=port,
        workdir=workdir,
        default_listener=False,
        extra_config=f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {pwfile}\n",
    )
    broker.start()
    try:
        yield broker, password
    finally:
        broker.close()
        shutil.rmtree(workdir, ignore_errors=True)


async def test_password_from_file_or_env_is_used_and_never_logged(
    auth_broker: tuple[MosquittoBroker, str],
    topics: Topics,
    outbox: Outbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker, password = auth_broker
    secret_file = tmp_path / "mqtt-password"
    secret_file.write_text(password + "\n")
    monkeypatch.setenv("FACETRACK_TEST_MQTT_PW", password)
    caplog.set_level("DEBUG")

    async def connect_and_send(cfg: MqttConfig, expect_ok: bool) -> MqttLink:
        link = MqttLink(cfg, topics, outbox)
        task = await start_link(link)
        if expect_ok:
            await wait_for(lambda: link.connected)
            outbox.append(draft(0))
            link.notify()
            await wait_for(lambda: outbox.depth == 0)
        else:
            await wait_for(lambda: link.stats["connect_failures"] >= 2)
            assert not link.connected
        await link.stop(flush_timeout_s=1)
        await task
        return link

    with structlog.testing.capture_logs() as logs:
        await connect_and_send(fast_config(broker, username="agent", password_file=secret_file), True)
        await connect_and_send(
            fast_config(broker, username="agent", password_env="FACETRACK_TEST_MQTT_PW"), True
        )
        wrong = tmp_path / "wrong"
        wrong.write_text("not-the-password")
        bad = await connect_and_send(fast_config(broker, username="agent", password_file=wrong), False)
        anonymous = await connect_and_send(fast_config(broker), False)
    assert "not authorized" in str(bad.stats["last_error"]).lower() or "5" in str(bad.stats["last_error"])
    assert anonymous.stats["last_error"]
    dumped = repr(logs) + caplog.text + repr(bad.stats)
    assert password not in dumped
    assert "not-the-password" not in dumped
    assert any(e["event"] == "mqtt_connected" for e in logs)


async def test_stop_returns_promptly_when_the_broker_never_answers(
    mosquitto: MosquittoBroker, topics: Topics, outbox: Outbox
) -> None:
    assert mosquitto._process is not None
    pid = mosquitto._process.pid
    # A frozen broker accepts the TCP connection (kernel backlog) but never sends CONNACK.
    os.kill(pid, signal.SIGSTOP)
    try:
        with structlog.testing.capture_logs() as logs:
            link = MqttLink(fast_config(mosquitto), topics, outbox)
            task = await start_link(link)
            link.emit(draft(0))
            # The link is inside its connection attempt, waiting for a CONNACK that cannot come.
            await wait_for(lambda: any(e["event"] == "mqtt_connecting" for e in logs))
        assert not link.connected
        # The broker stays frozen throughout: stop() cannot be waiting for it. (How long stop
        # takes is the flush timeout's business; HANG_S only catches a hang.)
        await asyncio.wait_for(link.stop(flush_timeout_s=0.2), HANG_S)
        assert task.done()
        await task  # ends normally, not with CancelledError
        assert outbox.depth == 1, "an undelivered event must stay queued for the next start"
    finally:
        os.kill(pid, signal.SIGCONT)


def _write_pki(directory: Path) -> dict[str, Path]:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate (EC P-256)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def issue(
        cn: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(issuer[0] if issuer else name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        issue("facetrack test CA", ca_key, None)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    files: dict[str, Path] = {}

    def dump(stem: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        files[f"{stem}_key"] = directory / f"{stem}.key"
        files[f"{stem}_cert"] = directory / f"{stem}.pem"
        files[f"{stem}_key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        files[f"{stem}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{stem}_key"].chmod(0o644)  # mosquitto reads it after dropping root

    dump("ca", ca_key, ca_cert)
    for stem, usage, san in (
        ("server", ExtendedKeyUsageOID.SERVER_AUTH, [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH, [x509.DNSName("pi-1")]),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            issue(stem, key, (ca_cert.subject, ca_key))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        dump(stem, key, cert)
    return files


@pytest.fixture
def tls_broker() -> Iterator[tuple[MosquittoBroker, dict[str, Path]]]:
    workdir = Path(tempfile.mkdtemp(prefix="facetrack-mosquitto-tls-"))
    workdir.chmod(0o755)
    pki = _write_pki(workdir)
    port = free_port()
    broker = MosquittoBroker(
        port=port,
        workdir=workdir,
        default_listener=False,
        extra_config=(
            f"listener {port} 127.0.0.1\nallow_anonymous true\nrequire_certificate true\n"
            f"cafile {pki['ca_cert']}\ncertfile {pki['server_cert']}\nkeyfile {pki['server_key']}\n"
        ),
    )
    broker.start()
    try:
        yield broker, pki
    finally:
        broker.close()
        shutil.rmtree(workdir, ignore_errors=True)


async def test_tls_with_ca_and_client_certificate(
    tls_broker: tuple[MosquittoBroker, dict[str, Path]], topics: Topics, outbox: Outbox
) -> None:
    broker, pki = tls_broker
    good = fast_config(
        broker,
        tls={"ca_file": pki["ca_cert"], "cert_file": pki["client_cert"], "key_file": pki["client_key"]},
    )
    link = MqttLink(good, topics, outbox)
    task = await start_link(link)
    link.emit(draft(0))
    await wait_for(lambda: outbox.depth == 0)
    assert link.stats["published"] == 1
    await link.stop()
    await task

    # Without the client certificate the broker refuses the handshake: the link keeps
    # retrying and the event stays queued.
    no_client_cert = fast_config(broker, tls={"ca_file": pki["ca_cert"]})
    link = MqttLink(no_client_cert, topics, outbox)
    task = await start_link(link)
    link.emit(draft(1))
    await wait_for(lambda: link.stats["connect_failures"] >= 2)
    assert outbox.depth == 1 and not link.connected
    await link.stop(flush_timeout_s=0.5)
    await task

    # A server certificate from an unknown CA is refused by the agent.
    client_files = {"cert_file": pki["client_cert"], "key_file": pki["client_key"]}
    wrong_ca = fast_config(broker, tls={"ca_file": pki["client_cert"], **client_files})
    link = MqttLink(wrong_ca, topics, outbox)
    task = await start_link(link)
    await wait_for(lambda: link.stats["connect_failures"] >= 2)
    assert "certificate" in str(link.stats["last_error"]).lower()
    await link.stop(flush_timeout_s=0.5)
    await task


@pytest.fixture
def acl_broker() -> Iterator[tuple[MosquittoBroker, Path]]:
    workdir = Path(tempfile.mkdtemp(prefix="facetrack-mosquitto-acl-"))
    workdir.chmod(0o755)
    acl = workdir / "acl"
    # Deployment mistake under test: the agent may announce itself but not publish events.
    acl.write_text("topic readwrite facetrack/pi-1/availability\ntopic read #\n")
    acl.chmod(0o644)
    broker = MosquittoBroker(workdir=workdir, extra_config=f"acl_file {acl}\n")
    broker.start()
    try:
        yield broker, acl
    finally:
        broker.close()
        shutil.rmtree(workdir, ignore_errors=True)


async def test_mqtt5_refused_puback_keeps_events_queued_until_the_acl_is_fixed(
    acl_broker: tuple[MosquittoBroker, Path], topics: Topics, outbox: Outbox
) -> None:
    broker, acl = acl_broker
    sub = await Subscriber(broker, topics.all_events, "test-acl-sub", persistent=False).start()
    with structlog.testing.capture_logs() as logs:
        link = MqttLink(fast_config(broker, protocol="5"), topics, outbox)
        task = await start_link(link)
        for i in range(3):
            link.emit(draft(i))
        await wait_for(lambda: link.stats["refused"] >= 2)
    assert outbox.depth == 3, "a refused event was deleted from the outbox"
    assert link.connected
    assert "not authorized" in str(link.stats["last_error"]).lower()
    assert any(e["event"] == "mqtt_publish_refused" and e["seq"] == 1 for e in logs)
    assert await link.publish_raw(topics.device("other"), b"x") is False
    assert sub.seqs() == []

    acl.write_text("topic readwrite facetrack/#\n")
    assert broker._process is not None
    broker._process.send_signal(signal.SIGHUP)  # mosquitto reloads its ACL file
    await wait_for(lambda: outbox.depth == 0)
    await sub.wait_until(lambda: sub.seqs() == [1, 2, 3])
    await link.stop()
    await task
    await sub.stop()


def test_readme_documents_every_event_type_and_field() -> None:
    """The README's MQTT section is the subscribers' contract: it must not drift from the models."""
    from agent.events.schema import (
        EventBase,
        IdentityEvent,
        ModelApplied,
        ModelRejected,
        TrackEnded,
        TrackStarted,
    )

    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("<!-- section: mqtt -->", 1)[1].split("<!-- /section: mqtt -->", 1)[0]
    rows = {line.split("|")[1].strip(): line for line in section.splitlines() if line.startswith("| `")}
    for name in EventBase.model_fields:
        assert f"| `{name}` |" in section, f"common field {name} is not documented"
    for model in (TrackStarted, IdentityEvent, TrackEnded, ModelApplied, ModelRejected):
        kind = model.model_fields["type"].default
        row = rows.get(f"`{kind}`")
        assert row is not None, f"event type {kind} is not documented"
        for name in set(model.model_fields) - set(EventBase.model_fields) - {"type"}:
            assert f"`{name}`" in row, f"{kind}.{name} is not documented"


async def test_bad_credentials_config_fails_at_start_in_one_line(
    mosquitto: MosquittoBroker, topics: Topics, outbox: Outbox, tmp_path: Path
) -> None:
    from agent.config import ConfigError
    from agent.runtime.credentials import resolve_password

    missing = tmp_path / "nope" / "password"
    with pytest.raises(
        ConfigError, match=r"^config error: mqtt.password_file .*nope/password cannot be read"
    ):
        MqttLink(fast_config(mosquitto, username="agent", password_file=missing), topics, outbox)
    binary = tmp_path / "binary-password"
    binary.write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(ConfigError, match="not UTF-8"):
        MqttLink(fast_config(mosquitto, username="agent", password_file=binary), topics, outbox)
    with pytest.raises(ConfigError, match=r"mqtt.tls.ca_file .* cannot be read"):
        MqttLink(fast_config(mosquitto, tls={"ca_file": tmp_path / "ca.pem"}), topics, outbox)
    key = tmp_path / "client.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match=r"key_file is set but mqtt\.tls\.cert_file is not"):
        MqttLink(fast_config(mosquitto, tls={"key_file": key}), topics, outbox)

    # The secret never shows in a repr, and the file's trailing newline is not part of it.
    secret_file = tmp_path / "pw"
    secret_file.write_text("hunter2-long-secret\n")
    secret = resolve_password(fast_config(mosquitto, password_file=secret_file))
    assert secret is not None and secret.reveal() == "hunter2-long-secret"
    assert "hunter2" not in repr(secret) and "hunter2" not in f"{secret}"
    # The file wins over the environment; an empty environment variable means no password.
    env = {"FACETRACK_MQTT_PASSWORD": "from-env"}
    assert resolve_password(MqttConfig(password_file=secret_file), env).reveal() == "hunter2-long-secret"  # type: ignore[union-attr]
    assert resolve_password(MqttConfig(), env).reveal() == "from-env"  # type: ignore[union-attr]
    assert resolve_password(MqttConfig(), {"FACETRACK_MQTT_PASSWORD": ""}) is None


async def test_kill_9_while_draining_then_restart_delivers_everything(
    mosquitto: MosquittoBroker, topics: Topics, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.sqlite3"
    n = 1500
    with Outbox(path, max_rows=1_000_000, max_bytes=1 << 30) as box:
        for i in range(n):
            box.append(draft(i))
    sub = await Subscriber(mosquitto, topics.events, "test-kill-drain", persistent=False).start()
    script = tmp_path / "agent_proc.py"
    script.write_text(_AGENT)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        str(mosquitto.port),
        str(path),
        "600",
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), HANG_S)).strip() == b"connected"
        paused = (await asyncio.wait_for(proc.stdout.readline(), HANG_S)).split()
        assert paused[0] == b"pausing"
        first_unacked = int(paused[1])
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    with sqlite3.connect(path) as probe:
        assert probe.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    outbox = Outbox(path, max_rows=1_000_000, max_bytes=1 << 30)
    left = [row.seq for row in outbox.peek(n)]
    # Exactly the tail from the first event whose delete the kill prevented: those were
    # delivered (PUBACK) but are sent again, at least once; nothing before them is.
    assert 1 < first_unacked <= 600
    assert left == list(range(first_unacked, n + 1)), "the outbox must hold exactly the unacknowledged tail"
    assert outbox.last_seq == n

    link = MqttLink(fast_config(mosquitto), topics, outbox)
    task = await start_link(link)
    await wait_for(lambda: outbox.depth == 0)
    await sub.wait_until(lambda: sub.events_received >= n and sub.seqs()[-1] == n)
    assert dedupe_in_order(sub.seqs()) == list(range(1, n + 1))
    assert link.emit(draft(0)).seq == n + 1
    await link.stop()
    await task
    outbox.close()
    await sub.stop()
