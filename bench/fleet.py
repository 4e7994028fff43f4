"""Benchmark a simulated fleet on one mosquitto or a broker cluster: connect, events, model push, memory.

    python -m bench.fleet [--devices 10,100,500] [--events 20] [--broker shipped|plain|cluster|both] [--json]

Each simulated device is the agent's real MQTT side, without video: its own SQLite outbox, its own
`MqttLink` (one MQTT connection, QoS 1, the agent's in-flight window) and its own `ModelService`
(signature check, skops load, install into its model store, model_applied / model_rejected). All
devices run as asyncio tasks in this one process; mosquitto runs on a free loopback port.

Brokers (--broker):
- shipped (default): deploy/mosquitto/facetrack.conf as `facetrack-broker.sh init` renders it:
  TLS 1.2 with client certificates (mutual TLS), a password per user, the fleet ACL, each client
  id bound to its user name (use_username_as_clientid). The script itself makes the CA, the server
  certificate and one certificate + password + ACL block per simulated device (`add-device`),
  exactly as for a real fleet; devices connect as themselves, the trainer as `trainer`, the
  availability monitor as `viewer`, the two back-end consumers as read-only users of their own
  (`add-user bench-consumer-1`, `-2`). Making the PKI for 500 devices takes minutes: `--pki-dir
  DIR` keeps it for the next run (init and the script keep what exists and re-render the config).
- plain: a plain-TCP loopback broker without users, with raised queue limits
  (max_queued_messages 0, max_inflight_messages 100): the cost of the transport alone.
- cluster: two ejabberd nodes in one cluster on loopback (agent.devtools.ejabberd), with the
  shipped files and rules rendered for ejabberd (deploy/ejabberd): TLS, a password per user, the
  per-device publish rules. Devices alternate between the nodes (device i lists node i % 2
  first, the other second), the availability monitor uses node 1; the trainer lists node 1
  first, collects the answers there and publishes the model through both nodes, as `publish
  --broker a,b` does. The nodes run with `+zdbbl` as docs/deploy.md says. ejabberd 23.01
  has no shared subscriptions: each back-end consumer (one per node) receives every event, and
  both must have every (device, seq) pair; duplicates are counted per consumer.
- both: each fleet size on the shipped broker, then on the plain one, back to back. A comma list
  (`--broker shipped,cluster`) runs those, each size on each, back to back.

Measured per fleet size N, each on a fresh broker; every completion is taken when the event that
completes it arrives (a timestamp in the message callback), never by polling:
- connect_s: from starting the N links until a `viewer` subscribed to facetrack/+/availability
  received every device's retained "online" (published right after CONNACK).
- events_per_s: every device queues `--events` events at once (QoS 1); from waking the links until
  two back-end consumers sharing `$share/bench/facetrack/+/events` received every (device, seq)
  pair. Every outbox must then be empty (each event PUBACKed and deleted); duplicates are counted.
- publish_all_s: `trainer.publish.publish_bundle(..., "all", expect=N)` (what `facetrack-trainer
  publish --device all` runs), wall time including the trainer's connect; last_applied_s: from
  the retained publish until the last device's model_applied reached the trainer.
- rss_per_device_kb: resident memory added per device (after the fleet connected, and after the
  model was installed everywhere, minus before the fleet existed). A real agent is one process per
  Pi, so its interpreter and libraries come on top; this is the per-connection cost on one host.
- loop_errors: what reached asyncio's exception handler or sys.unraisablehook during the round
  (bench/loop_errors.py); the first three are written to stderr in full.

The bundle is a real one: the trainer's `train` on the shared enrolment photos (the demo's people:
three reference photos and the knn training folders), embedded by the configured embedder, signed.
Simulated frames: a ticker calls `activate_pending()` / `note_frame_classified()` on every device
every `--frame-ms` (50 ms: a 20 fps agent), as the pipeline does between frames, so model_applied is
sent at the first frame after verification, as in the agent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from agent.config import AgentConfig, MqttConfig
from agent.devtools.ejabberd import EjabberdCluster, roles
from agent.devtools.mosquitto import MosquittoBroker, free_port
from agent.events.schema import EventBase, IdentityEvent, utc_now
from agent.runtime.credentials import resolve_login, tls_context
from agent.runtime.model_service import ModelService
from agent.runtime.mqtt_link import ONLINE, MqttClient, MqttLink
from agent.runtime.outbox import Outbox
from agent.runtime.topics import Topics
from bench.loop_errors import LoopErrors
from bench.machine import BenchRun

REPO_ROOT = Path(__file__).resolve().parent.parent
BROKER_SCRIPT = REPO_ROOT / "deploy" / "mosquitto" / "facetrack-broker.sh"
# Plain broker only: the burst must not hit mosquitto's default per-client queue of 1000.
PLAIN_BROKER_EXTRA = "max_queued_messages 0\nmax_inflight_messages 100\n"
# The two back-end consumers sharing the events: read-only users (add-user), one each, since the
# shipped broker takes a client's user name as its client id.
CONSUMERS = ("bench-consumer-1", "bench-consumer-2")


def device_name(index: int) -> str:
    return f"sim-{index:04d}"


@dataclass
class SimDevice:
    device_id: str
    outbox: Outbox
    link: MqttLink
    models: ModelService
    task: asyncio.Task[None] | None = None


@dataclass(frozen=True)
class Fleet:
    """Where clients connect and how each one logs in (MqttConfig, as the agent reads it).

    One port for a single broker, one per node for a cluster; `home` picks which node a client
    lists first (the others follow, as its failover order)."""

    host: str
    ports: tuple[int, ...]
    pids: tuple[int, ...]
    pki: Path | None

    @property
    def port(self) -> int:
        return self.ports[0]

    def brokers(self, home: int = 0) -> list[str]:
        order = self.ports[home % len(self.ports) :] + self.ports[: home % len(self.ports)]
        return [f"{self.host}:{port}" for port in order]

    def client_config(self, user: str | None, home: int = 0) -> MqttConfig:
        if self.pki is None or user is None:
            return MqttConfig(
                brokers=self.brokers(home), password_env="FACETRACK_BENCH_NO_PASSWORD", username=""
            )
        client = self.pki / "clients" / user
        return MqttConfig(
            brokers=self.brokers(home),
            username=user,
            password_file=client / "password",
            password_env="FACETRACK_BENCH_NO_PASSWORD",
            tls={
                "ca_file": client / "ca.crt",
                "cert_file": client / "client.crt",
                "key_file": client / "client.key",
            },
        )

    def client(self, user: str, identifier: str, home: int = 0) -> aiomqtt.Client:
        config = self.client_config(user, home)
        login = resolve_login(config)
        return MqttClient(
            self.host,
            self.ports[home % len(self.ports)],
            username=login.username,
            password=login.password.reveal() if login.password is not None else None,
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_context=tls_context(config),
            identifier=identifier,
        )


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (from /proc), to see whether the broker is the limit."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def make_pki(directory: Path, devices: int, quiet: bool) -> float:
    """The shipped broker's files for `devices` simulated devices, by facetrack-broker.sh itself.

    Idempotent (the script keeps existing clients), so a kept --pki-dir makes this instant.
    Returns the seconds it took.
    """
    if shutil.which("openssl") is None or shutil.which("mosquitto_passwd") is None:
        raise SystemExit(
            "bench.fleet: the shipped broker needs openssl and mosquitto_passwd (use --broker plain)"
        )
    began = time.monotonic()
    directory.mkdir(parents=True, exist_ok=True)
    # mosquitto started as root drops to the `mosquitto` user and must still reach these files.
    directory.chmod(0o755)

    def script(*args: str) -> None:
        subprocess.run([str(BROKER_SCRIPT), *args, "--dir", str(directory)], check=True, capture_output=True)

    # Always: init keeps the CA, certificates and clients, and re-renders facetrack.conf and the ACL
    # from deploy/mosquitto, so a kept --pki-dir runs the config as shipped now.
    script("init", "--server-name", "localhost", "--server-name", "127.0.0.1")
    # The broker binds each client id to its user name: every consumer is its own (read-only) user.
    for user in CONSUMERS:
        if not (directory / "clients" / user / "password").is_file():
            script("add-user", user)
    for index in range(devices):
        if not (directory / "clients" / device_name(index) / "password").is_file():
            if not quiet and index % 50 == 0:
                print(f"facetrack-broker.sh add-device {device_name(index)} ...", file=sys.stderr, flush=True)
            script("add-device", device_name(index))
    return time.monotonic() - began


@contextlib.contextmanager
def start_broker(kind: str, pki: Path | None) -> Iterator[Fleet]:
    if kind == "plain":
        with MosquittoBroker(extra_config=PLAIN_BROKER_EXTRA) as broker:
            yield Fleet(broker.host, (broker.port,), (_pid(broker._process),), None)
        return
    assert pki is not None
    if kind == "cluster":
        with EjabberdCluster(pki, roles(pki)) as cluster:
            pids = tuple(_pid(node.process) for node in cluster.nodes)
            yield Fleet(cluster.host, tuple(cluster.ports), pids, pki)
        return
    port = free_port()
    text = (pki / "facetrack.conf").read_text()
    if "listener 8883\n" not in text:
        raise SystemExit(f"bench.fleet: {pki / 'facetrack.conf'} has no 'listener 8883' line to move")
    # The rendered config as shipped; only its listener moves to a free loopback port.
    config = text.replace("listener 8883\n", f"listener {port} 127.0.0.1\n")
    with MosquittoBroker(port=port, extra_config=config, default_listener=False) as broker:
        # MosquittoBroker keeps its process private; the pid is only read for /proc.
        yield Fleet("127.0.0.1", (port,), (_pid(broker._process),), pki)


def _pid(process: subprocess.Popen[bytes] | None) -> int:
    assert process is not None
    return process.pid


def make_bundle(assets_dir: Path, key_dir: Path) -> tuple[bytes, str, dict[str, Any], Any]:
    """A real signed bundle: the trainer's SVM on real enrolment photos (the demo's people)."""
    from agent.devtools.demo import demo_people, train_bundle
    from agent.vision.factory import build_embedder

    config = AgentConfig(assets_dir=assets_dir)
    bundle, public_key, summary = train_bundle(config, demo_people(assets_dir), key_dir)
    return bundle, public_key, summary, build_embedder(config)


def make_device(
    index: int, root: Path, fleet: Fleet, public_key: str, assets_dir: Path, embedder: Any
) -> SimDevice:
    device_id = device_name(index)
    mqtt = fleet.client_config(device_id, home=index).model_copy(
        update={"reconnect_min_s": 0.2, "reconnect_max_s": 2.0}
    )
    config = AgentConfig(
        device_id=device_id,
        assets_dir=assets_dir,
        state_dir=root / device_id,
        classifier={"trusted_keys": [public_key]},
        mqtt=mqtt,
    )
    topics = Topics(config.mqtt.topic_prefix, device_id)
    outbox = Outbox(config.state_dir / "outbox.db", config.outbox.max_rows, config.outbox.max_bytes)
    link = MqttLink(config.mqtt, topics, outbox)

    def emit(event: EventBase) -> None:
        link.emit(event)

    models = ModelService(config, emit, embedder=embedder)
    for topic in models.topics(topics):
        link.subscribe(topic, models.handle_message)
    return SimDevice(device_id, outbox, link, models)


def draft(device_id: str, i: int) -> IdentityEvent:
    return IdentityEvent(
        device=device_id, ts=utc_now(), frame=i, track_id=i % 7, label="obama", confidence=0.87, votes=3
    )


class Arrivals:
    """Counts distinct keys as messages arrive; `done` is set, and `done_at` stamped, at the one
    that completes `expected` (so completion is timed by the event itself)."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen: set[Any] = set()
        self.messages = 0
        self.per_client: dict[int, int] = {}
        self.done = asyncio.Event()
        self.done_at = 0.0

    def add(self, key: Any, client: int = 0) -> None:
        self.messages += 1
        self.per_client[client] = self.per_client.get(client, 0) + 1
        self.seen.add(key)
        if len(self.seen) >= self.expected and not self.done.is_set():
            self.done_at = time.perf_counter()
            self.done.set()


async def consume_events(client: aiomqtt.Client, arrivals: Arrivals, index: int) -> None:
    async for message in client.messages:
        payload = message.payload
        assert isinstance(payload, bytes)
        event = json.loads(payload)
        if event.get("type") == "identity":
            arrivals.add((event["device"], event["seq"]), index)


async def consume_online(client: aiomqtt.Client, arrivals: Arrivals) -> None:
    async for message in client.messages:
        if message.payload == ONLINE:
            arrivals.add(str(message.topic).split("/")[1])


async def wait_for(event: asyncio.Event, timeout_s: float, what: str) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout_s)
    except TimeoutError:
        raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}") from None


async def settle(predicate: Any, timeout_s: float, what: str) -> None:
    """An untimed consistency check after a measurement (not part of any reported time)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.01)


async def run_fleet(
    n: int,
    events_per_device: int,
    kind: str,
    pki: Path | None,
    bundle: bytes,
    public_key: str,
    embedder: Any,
    frame_s: float,
    publish_wait_s: float = 600.0,
) -> dict[str, Any]:
    from trainer.publish import BrokerOptions, publish_bundle

    assets_dir = REPO_ROOT / "models" / "assets"
    with tempfile.TemporaryDirectory(prefix="facetrack-fleet-") as tmp, start_broker(kind, pki) as fleet:
        root = Path(tmp)
        viewer = "viewer" if pki is not None else ""
        rss_before = rss_kb()
        devices = [make_device(i, root, fleet, public_key, assets_dir, embedder) for i in range(n)]
        ticker_stop = asyncio.Event()

        async def ticker() -> None:
            frame = 0
            while not ticker_stop.is_set():
                frame += 1
                for device in devices:
                    device.models.activate_pending()
                    device.models.note_frame_classified(frame)
                await asyncio.sleep(frame_s)

        tick = asyncio.create_task(ticker())
        online = Arrivals(n)
        async with fleet.client(viewer, "bench-availability") as monitor:
            await monitor.subscribe("facetrack/+/availability", qos=1)
            watcher = asyncio.create_task(consume_online(monitor, online))
            started = time.perf_counter()
            for device in devices:
                device.task = asyncio.create_task(device.link.run())
            await wait_for(online.done, 600, f"{n} devices to come online")
            connect_s = online.done_at - started
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        # Online is published before the link subscribes to its model topics; wait for those too.
        await settle(lambda: all(d.link.connected for d in devices), 120, "every link's subscriptions")
        rss_connected = rss_kb()

        total = n * events_per_device
        arrivals = Arrivals(total)
        users = CONSUMERS if pki is not None else ("", "")
        clustered = len(fleet.ports) > 1
        # A cluster without shared subscriptions: each consumer (one per node) gets everything.
        own = [Arrivals(total), Arrivals(total)] if clustered else [arrivals, arrivals]
        async with (
            fleet.client(users[0], "bench-consumer-1", home=0) as c1,
            fleet.client(users[1], "bench-consumer-2", home=1) as c2,
        ):
            for client in (c1, c2):
                await client.subscribe(
                    "facetrack/+/events" if clustered else "$share/bench/facetrack/+/events", qos=1
                )
            consumers = [asyncio.create_task(consume_events(c, own[i], i)) for i, c in enumerate((c1, c2))]
            # Queue first, then wake every link at once: the drain is what is timed.
            for device in devices:
                for i in range(events_per_device):
                    device.outbox.append(draft(device.device_id, i))
            broker_cpu = sum(cpu_seconds(pid) for pid in fleet.pids)
            append_done = time.perf_counter()
            for device in devices:
                device.link.notify()
            for mine in own:
                await wait_for(mine.done, 600, f"{total} events at the consumers")
            events_s = max(mine.done_at for mine in own) - append_done
            broker_cpu = sum(cpu_seconds(pid) for pid in fleet.pids) - broker_cpu
            await settle(lambda: all(d.outbox.depth == 0 for d in devices), 60, "every outbox to empty")
            for task in consumers:
                task.cancel()
            await asyncio.gather(*consumers, return_exceptions=True)
        if clustered:
            duplicates = sum(mine.messages - len(mine.seen) for mine in own)
            split = [mine.messages for mine in own]
        else:
            duplicates = arrivals.messages - len(arrivals.seen)
            split = sorted(arrivals.per_client.values())

        trainer_config = fleet.client_config("trainer" if pki is not None else None)
        login = resolve_login(trainer_config)
        options = BrokerOptions(
            host=fleet.host,
            port=fleet.port,
            brokers=trainer_config.addresses(),
            username=login.username,
            password=login.password,
            tls_context=tls_context(trainer_config),
        )
        push_started = time.perf_counter()
        _, answers = await publish_bundle(bundle, "all", options, wait_s=publish_wait_s, expect=n)
        publish_all_s = time.perf_counter() - push_started
        applied = [a for a in answers if a.result == "applied"]
        rss_with_model = rss_kb()

        ticker_stop.set()
        await tick
        await asyncio.gather(*(d.link.stop(flush_timeout_s=1.0) for d in devices))
        await asyncio.gather(*(d.task for d in devices if d.task is not None), return_exceptions=True)
        for device in devices:
            with contextlib.suppress(Exception):
                device.outbox.close()
    return {
        "devices": n,
        "events": total,
        "connect_s": round(connect_s, 3),
        "events_per_s": round(total / events_s, 1),
        "events_s": round(events_s, 3),
        "duplicates": duplicates,
        "consumer_split": split,
        # Broker CPU seconds per wall second while the events flowed (1.0 = one core saturated).
        "broker_cpu_share": round(broker_cpu / events_s, 2),
        "publish_all_s": round(publish_all_s, 3),
        "last_applied_s": round(max(a.seen_after_s for a in applied), 3) if applied else None,
        "acks": len(answers),
        "applied": len(applied),
        "rss_per_device_kb": round((rss_connected - rss_before) / n, 1),
        "rss_per_device_with_model_kb": round((rss_with_model - rss_before) / n, 1),
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    header = (
        "broker",
        "devices",
        "connect s",
        "events",
        "events/s (QoS 1)",
        "dups",
        "broker CPU",
        "publish all s",
        "last applied s",
        "applied",
        "KB/device",
        "KB/device+model",
        "loop errors",
    )
    lines = [header] + [
        (
            r["broker"],
            str(r["devices"]),
            f"{r['connect_s']:.3f}",
            str(r["events"]),
            f"{r['events_per_s']:.1f}",
            str(r["duplicates"]),
            f"{r['broker_cpu_share']:.0%}",
            f"{r['publish_all_s']:.3f}",
            f"{r['last_applied_s']:.3f}" if r["last_applied_s"] is not None else "-",
            f"{r['applied']}/{r['devices']}",
            f"{r['rss_per_device_kb']:.1f}",
            f"{r['rss_per_device_with_model_kb']:.1f}",
            str(r["loop_errors"]),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)) for line in lines)


def describe_broker(kind: str) -> str:
    if kind == "cluster":
        return (
            "two ejabberd 23.01 nodes (mod_mqtt, one Erlang/mnesia cluster) on loopback, "
            "deploy/ejabberd/ejabberd.yml.in rendered from the same facetrack-broker.sh files: TLS, a "
            "password per user, the per-device publish rules; devices alternate between the nodes, "
            "one consumer per node (no shared subscriptions), each must get every event"
        )
    if kind == "plain":
        return "plain TCP on loopback, anonymous, max_queued_messages 0, max_inflight_messages 100"
    return (
        "deploy/mosquitto/facetrack.conf (rendered by facetrack-broker.sh init): TLS 1.2, "
        "client certificates, a password per user, the fleet ACL, client id = user name; one add-device per "
        "simulated device, one add-user per consumer"
    )


async def main_async(args: argparse.Namespace, sizes: list[int], bench_run: BenchRun) -> int:
    raise_fd_limit()
    quiet = args.json
    pki: Path | None = None
    pki_s = 0.0
    temporary_pki: Path | None = None
    kinds = ["shipped", "plain"] if args.broker == "both" else args.broker.split(",")
    if "shipped" in kinds or "cluster" in kinds:
        if args.pki_dir is not None:
            pki = args.pki_dir.resolve()
        else:
            # Not under a 0700 temp root: mosquitto started as root reads these as `mosquitto`.
            temporary_pki = Path(tempfile.mkdtemp(prefix="facetrack-fleet-pki-"))
            pki = temporary_pki
        pki_s = make_pki(pki, max(sizes), quiet)
    try:
        with tempfile.TemporaryDirectory(prefix="facetrack-fleet-keys-") as keys:
            bundle, public_key, summary, embedder = make_bundle(args.assets_dir, Path(keys))
        rows = []
        for n in sizes:
            # With both brokers, each size runs on both back to back, so they compare side by side.
            for kind in kinds:
                if not quiet:
                    print(f"fleet of {n} on the {kind} broker ...", file=sys.stderr, flush=True)
                with LoopErrors(f"{kind} {n}") as errors:
                    row = await run_fleet(
                        n,
                        args.events,
                        kind,
                        pki,
                        bundle,
                        public_key,
                        embedder,
                        args.frame_ms / 1000,
                        args.publish_wait,
                    )
                rows.append({"broker": kind, **row, "loop_errors": errors.count})
    finally:
        if temporary_pki is not None:
            shutil.rmtree(temporary_pki, ignore_errors=True)
    bench_run.finish()
    model = (
        f"model: real bundle, {summary['faces']} enrolment faces of {len(summary['people'])} people "
        f"({', '.join(summary['people'])}), {len(bundle)} bytes"
    )
    if args.json:
        document = {
            "run": bench_run.as_json(),
            "broker": args.broker,
            "pki_setup_s": round(pki_s, 1),
            "events_per_device": args.events,
            "frame_ms": args.frame_ms,
            "bundle": {"bytes": len(bundle), **summary},
            "results": rows,
        }
        print(json.dumps(document, indent=2))
    else:
        print(bench_run.header())
        for kind in kinds:
            setup = f" (PKI setup this run {pki_s:.1f} s)" if kind in ("shipped", "cluster") else ""
            print(f"{kind} broker: {describe_broker(kind)}{setup}")
        print(model)
        print(f"{args.events} events per device; simulated frame every {args.frame_ms:g} ms")
        print(format_table(rows))
    ok = all(r["applied"] == r["devices"] and r["duplicates"] == 0 for r in rows)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fleet",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--devices", default="10,100,500", help="comma-separated fleet sizes [10,100,500]")
    parser.add_argument("--events", type=int, default=20, help="events queued per device [20]")
    parser.add_argument(
        "--broker",
        default="shipped",
        help="shipped, plain, cluster, both (= shipped,plain) or a comma list of them: each size "
        "on each, back to back (see above) [shipped]",
    )
    parser.add_argument(
        "--pki-dir",
        type=Path,
        default=None,
        help="keep the shipped broker's CA, certificates and passwords here",
    )
    parser.add_argument("--frame-ms", type=float, default=50.0, help="simulated frame period [50]")
    parser.add_argument(
        "--publish-wait",
        type=float,
        default=600.0,
        help="seconds the fleet push waits for every device's answer; the row says how many applied [600]",
    )
    parser.add_argument("--assets-dir", type=Path, default=REPO_ROOT / "models" / "assets")
    parser.add_argument("--json", action="store_true", help="print one JSON document (alone on stdout)")
    args = parser.parse_args(argv)
    try:
        sizes = [int(part) for part in args.devices.split(",") if part.strip()]
    except ValueError:
        parser.error(f"--devices {args.devices!r} must be comma-separated integers")
    kinds = args.broker.split(",")
    if args.broker != "both" and (not kinds or any(k not in ("shipped", "plain", "cluster") for k in kinds)):
        parser.error(f"--broker {args.broker!r}: want shipped, plain, cluster, both or a comma list of them")
    if not sizes or min(sizes) < 1 or args.events < 1 or args.frame_ms <= 0:
        parser.error("fleet sizes, --events and --frame-ms must be positive")
    from agent.logging_setup import configure_logging

    configure_logging("error", "console")
    bench_run = BenchRun.start("bench.fleet", argv, with_mosquitto=True)
    return asyncio.run(main_async(args, sizes, bench_run))


if __name__ == "__main__":
    sys.exit(main())
