"""Benchmark a simulated fleet on one mosquitto: event throughput, fleet-wide model push, memory.

    python -m bench.fleet [--devices 10,100,500] [--events 20] [--json]

Each simulated device is the agent's real MQTT side, without video: its own SQLite outbox, its own
`MqttLink` (one MQTT connection, QoS 1, the agent's in-flight window) and its own `ModelService`
(signature check, skops load, install into its model store, model_applied / model_rejected). All
devices run as asyncio tasks in this one process; a private mosquitto runs on a free loopback port.

Measured per fleet size N:
- connect_s: from starting the N links until every one is connected.
- events_per_s: every device queues `--events` events at once (QoS 1); from waking the links until
  two back-end consumers sharing `$share/bench/facetrack/+/events` received all N x events. Every
  outbox must also be empty (each event PUBACKed and deleted).
- publish_all_s: `trainer.publish.publish_bundle(..., "all", expect=N)` (what `facetrack-trainer
  publish --device all` runs): from the retained publish until every device's model_applied arrived.
- rss_per_device_kb: resident memory added per device (RSS after the fleet connected and after the
  model was installed everywhere, minus before the fleet existed). A real agent is one process per
  Pi, so its interpreter and libraries come on top; this is the per-connection cost on one host.

Simulated "frames": a ticker calls `activate_pending()` / `note_frame_classified()` on every
device every 50 ms, as the pipeline does between frames, so model_applied is sent as in the agent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from agent.config import AgentConfig, MqttConfig
from agent.devtools.mosquitto import MosquittoBroker
from agent.events.schema import EventBase, IdentityEvent, utc_now
from agent.runtime.model_service import ModelService
from agent.runtime.mqtt_link import MqttLink
from agent.runtime.outbox import Outbox
from agent.runtime.topics import Topics

REPO_ROOT = Path(__file__).resolve().parent.parent
# Bench-only broker settings: the burst must not hit mosquitto's default per-client queue of 1000.
BROKER_EXTRA = "max_queued_messages 0\nmax_inflight_messages 100\n"


@dataclass
class SimDevice:
    device_id: str
    outbox: Outbox
    link: MqttLink
    models: ModelService
    task: asyncio.Task[None] | None = None


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (from /proc), to see whether the broker is the limit."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def make_bundle(assets_dir: Path, key_dir: Path) -> tuple[bytes, str, Any]:
    """A real signed bundle for the real embedder (SVM trained on synthetic embeddings)."""
    import numpy as np

    from agent.classifier.keys import public_key_text, write_key_pair
    from trainer.dataset import FaceEmbedding
    from trainer.training import train

    _, _, private_key = write_key_pair(key_dir, "bench")
    embedding = FaceEmbedding.from_config(AgentConfig(assets_dir=assets_dir), cache_dir=None, pad=0.25)
    rng = np.random.default_rng(3)
    names = ["ada", "grace", "alan", "edsger"]
    centres = rng.normal(size=(len(names), embedding.dim))
    x = np.concatenate([c + 0.05 * rng.normal(size=(10, embedding.dim)) for c in centres])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    result = train(x, [n for n in names for _ in range(10)])
    bundle = result.sign(
        embedder_id=embedding.embedder_id,
        dim=embedding.dim,
        private_key=private_key,
    )
    return bundle, public_key_text(private_key.public_key()), embedding.embedder


def make_device(
    index: int, root: Path, broker: MosquittoBroker, public_key: str, assets_dir: Path, embedder: Any
) -> SimDevice:
    device_id = f"sim-{index:04d}"
    config = AgentConfig(
        device_id=device_id,
        assets_dir=assets_dir,
        state_dir=root / device_id,
        classifier={"trusted_keys": [public_key]},
        mqtt=MqttConfig(
            host=broker.host,
            port=broker.port,
            reconnect_min_s=0.2,
            reconnect_max_s=2.0,
            password_env="FACETRACK_BENCH_NO_PASSWORD",
        ),
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
        device=device_id, ts=utc_now(), frame=i, track_id=i % 7, label="ada", confidence=0.87, votes=3
    )


async def wait_until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


async def consume(client: aiomqtt.Client, counts: list[int], index: int) -> None:
    async for _ in client.messages:
        counts[index] += 1


async def run_fleet(
    n: int, events_per_device: int, bundle: bytes, public_key: str, embedder: Any
) -> dict[str, Any]:
    from trainer.publish import BrokerOptions, publish_bundle

    assets_dir = REPO_ROOT / "models" / "assets"
    with (
        tempfile.TemporaryDirectory(prefix="facetrack-fleet-") as tmp,
        MosquittoBroker(extra_config=BROKER_EXTRA) as broker,
    ):
        root = Path(tmp)
        rss_before = rss_kb()
        devices = [make_device(i, root, broker, public_key, assets_dir, embedder) for i in range(n)]
        ticker_stop = asyncio.Event()

        async def ticker() -> None:
            frame = 0
            while not ticker_stop.is_set():
                frame += 1
                for device in devices:
                    device.models.activate_pending()
                    device.models.note_frame_classified(frame)
                await asyncio.sleep(0.05)

        tick = asyncio.create_task(ticker())
        started = time.perf_counter()
        for device in devices:
            device.task = asyncio.create_task(device.link.run())
        await wait_until(lambda: all(d.link.connected for d in devices), 300, f"{n} devices to connect")
        connect_s = time.perf_counter() - started
        rss_connected = rss_kb()

        counts = [0, 0]
        total = n * events_per_device
        async with (
            aiomqtt.Client(broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5) as c1,
            aiomqtt.Client(broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5) as c2,
        ):
            for client in (c1, c2):
                await client.subscribe("$share/bench/facetrack/+/events", qos=1)
            consumers = [asyncio.create_task(consume(c, counts, i)) for i, c in enumerate((c1, c2))]
            # Queue first, then wake every link at once: the drain is what is timed.
            for device in devices:
                for i in range(events_per_device):
                    device.outbox.append(draft(device.device_id, i))
            # MosquittoBroker keeps its process private; the pid is only read here for /proc.
            broker_pid = broker._process.pid if broker._process is not None else 0
            broker_cpu = cpu_seconds(broker_pid)
            append_done = time.perf_counter()
            for device in devices:
                device.link.notify()
            await wait_until(lambda: sum(counts) >= total, 600, f"{total} events at the consumers")
            events_s = time.perf_counter() - append_done
            broker_cpu = cpu_seconds(broker_pid) - broker_cpu
            await wait_until(lambda: all(d.outbox.depth == 0 for d in devices), 60, "every outbox to empty")
            for task in consumers:
                task.cancel()
            await asyncio.gather(*consumers, return_exceptions=True)
        split = sorted(counts)

        push_started = time.perf_counter()
        _, answers = await publish_bundle(
            bundle, "all", BrokerOptions(host=broker.host, port=broker.port), wait_s=600, expect=n
        )
        publish_all_s = time.perf_counter() - push_started
        applied = sum(1 for a in answers if a.result == "applied")
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
        "consumer_split": split,
        # Broker CPU seconds per wall second while the events flowed (1.0 = one core saturated).
        "broker_cpu_share": round(broker_cpu / events_s, 2),
        "publish_all_s": round(publish_all_s, 3),
        "acks": len(answers),
        "applied": applied,
        "rss_per_device_kb": round((rss_connected - rss_before) / n, 1),
        "rss_per_device_with_model_kb": round((rss_with_model - rss_before) / n, 1),
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    header = (
        "devices",
        "connect s",
        "events",
        "events/s (QoS 1)",
        "broker CPU",
        "publish all s",
        "acks",
        "KB/device",
        "KB/device+model",
    )
    lines = [header] + [
        (
            str(r["devices"]),
            f"{r['connect_s']:.2f}",
            str(r["events"]),
            f"{r['events_per_s']:.0f}",
            f"{r['broker_cpu_share']:.0%}",
            f"{r['publish_all_s']:.2f}",
            f"{r['applied']}/{r['devices']}",
            f"{r['rss_per_device_kb']:.0f}",
            f"{r['rss_per_device_with_model_kb']:.0f}",
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)) for line in lines)


async def main_async(sizes: list[int], events: int, as_json: bool) -> int:
    raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="facetrack-fleet-keys-") as keys:
        bundle, public_key, embedder = make_bundle(REPO_ROOT / "models" / "assets", Path(keys))
    rows = []
    for n in sizes:
        if not as_json:
            print(f"fleet of {n} ...", file=sys.stderr, flush=True)
        rows.append(await run_fleet(n, events, bundle, public_key, embedder))
    if as_json:
        print(json.dumps({"events_per_device": events, "results": rows}, indent=2))
    else:
        print(format_table(rows))
    return 0 if all(r["applied"] == r["devices"] for r in rows) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", default="10,100,500", help="comma-separated fleet sizes [10,100,500]")
    parser.add_argument("--events", type=int, default=20, help="events queued per device [20]")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    try:
        sizes = [int(part) for part in args.devices.split(",") if part.strip()]
    except ValueError:
        parser.error(f"--devices {args.devices!r} must be comma-separated integers")
    if not sizes or min(sizes) < 1 or args.events < 1:
        parser.error("fleet sizes and --events must be positive")
    from agent.logging_setup import configure_logging

    configure_logging("error", "console")
    return asyncio.run(main_async(sizes, args.events, args.json))


if __name__ == "__main__":
    sys.exit(main())
