"""Benchmark store-and-forward: outbox append/ack rates on disk and drain throughput through a real
mosquitto at QoS 1, pipelined (the agent's window) against stop-and-wait, in the same run.

    python -m bench.outbox [--events 2000] [--window 16] [--broker-nodelay] [--json]

A private mosquitto is started on a free loopback port. "drain" is measured from the link's
connect until the outbox is empty: every event is PUBACKed and deleted from disk. A real subscriber
checks that every seq arrived, in order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomqtt
import structlog

from agent.config import MqttConfig
from agent.devtools.mosquitto import MosquittoBroker
from agent.events.schema import IdentityEvent, utc_now
from agent.runtime.mqtt_link import MqttLink
from agent.runtime.outbox import Outbox
from agent.runtime.topics import Topics


def _draft(i: int) -> IdentityEvent:
    # A realistic identity event (~200 bytes of JSON).
    return IdentityEvent(
        device="bench",
        ts=utc_now(),
        frame=i,
        track_id=i % 50,
        label="lin-manuel-miranda",
        confidence=0.91,
        votes=5,
    )


def bench_outbox(directory: Path, events: int) -> dict[str, Any]:
    outbox = Outbox(directory / "append.sqlite3", max_rows=10**9, max_bytes=1 << 40)
    drafts = [_draft(i) for i in range(events)]
    began = time.perf_counter()
    latencies = []
    for d in drafts:
        t0 = time.perf_counter()
        outbox.append(d)
        latencies.append(time.perf_counter() - t0)
    append_s = time.perf_counter() - began
    began = time.perf_counter()
    for seq in range(1, events + 1):
        outbox.ack(seq)
    ack_one_s = time.perf_counter() - began
    for d in drafts:
        outbox.append(d)
    began = time.perf_counter()
    for start in range(events + 1, 2 * events + 1, 16):
        outbox.ack_many(range(start, min(start + 16, 2 * events + 1)))
    ack_window_s = time.perf_counter() - began
    outbox.close()
    latencies.sort()
    return {
        "events": events,
        "append_per_s": round(events / append_s, 1),
        "append_p50_ms": round(statistics.median(latencies) * 1000, 3),
        "append_p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 3),
        "ack_one_per_s": round(events / ack_one_s, 1),
        "ack_window16_per_s": round(events / ack_window_s, 1),
    }


async def bench_drain(broker: MosquittoBroker, directory: Path, events: int, window: int) -> dict[str, Any]:
    outbox = Outbox(directory / f"drain-{window}.sqlite3", max_rows=10**9, max_bytes=1 << 40)
    for i in range(events):
        outbox.append(_draft(i))
    topics = Topics("bench", f"w{window}")
    received: list[int] = []
    async with aiomqtt.Client(broker.host, broker.port, identifier=f"bench-sub-{window}") as sub:
        await sub.subscribe(topics.events, qos=1)
        config = MqttConfig(host=broker.host, port=broker.port, password_env="FACETRACK_BENCH_UNSET")
        link = MqttLink(config, topics, outbox, window=window)
        began = time.perf_counter()
        task = asyncio.create_task(link.run())
        while outbox.depth:  # noqa: ASYNC110  (polling keeps the link untouched)
            await asyncio.sleep(0.001)
        drained_s = time.perf_counter() - began
        async with asyncio.timeout(30):
            async for message in sub.messages:
                assert isinstance(message.payload, bytes)
                received.append(json.loads(message.payload)["seq"])
                if len(received) == events:
                    break
        await link.stop()
        await task
    outbox.close()
    in_order = received == list(range(1, events + 1))
    return {
        "window": window,
        "events": events,
        "drain_s": round(drained_s, 3),
        "events_per_s": round(events / drained_s, 1),
        "subscriber_in_order": in_order,
    }


async def run(events: int, window: int, broker_nodelay: bool) -> dict[str, Any]:
    extra = "set_tcp_nodelay true\n" if broker_nodelay else ""
    with (
        tempfile.TemporaryDirectory(prefix="facetrack-bench-outbox-") as tmp,
        MosquittoBroker(extra_config=extra) as broker,
    ):
        directory = Path(tmp)
        disk = bench_outbox(directory, events)
        pipelined = await bench_drain(broker, directory, events, window)
        stop_and_wait = await bench_drain(broker, directory, events, 1)
    return {
        "broker_tcp_nodelay": broker_nodelay,
        "outbox": disk,
        "drain_pipelined": pipelined,
        "drain_stop_and_wait": stop_and_wait,
        "pipelined_over_stop_and_wait": round(pipelined["events_per_s"] / stop_and_wait["events_per_s"], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.outbox", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000, help="events per measurement (default 2000)")
    parser.add_argument("--window", type=int, default=16, help="in-flight QoS 1 messages (default 16)")
    parser.add_argument(
        "--broker-nodelay",
        action="store_true",
        help="run mosquitto with set_tcp_nodelay true (its default is false, like most brokers)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    from agent.logging_setup import configure_logging

    # Logs to stderr: stdout holds the table, or with --json the JSON document alone.
    configure_logging("warning", "auto")
    if args.events < 1 or args.window < 1:
        parser.error("--events and --window must be positive")
    # The link logs every connect; keep the benchmark's output to its results.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    result = asyncio.run(run(args.events, args.window, args.broker_nodelay))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    d = result["outbox"]
    print(f"outbox on disk ({d['events']} events, WAL, appends synchronous=FULL, acks NORMAL)")
    p50, p99 = d["append_p50_ms"], d["append_p99_ms"]
    print(f"  append        {d['append_per_s']:>10.1f} ev/s   p50 {p50} ms  p99 {p99} ms")
    print(f"  ack one       {d['ack_one_per_s']:>10.1f} ev/s")
    print(f"  ack window 16 {d['ack_window16_per_s']:>10.1f} ev/s")
    nodelay = "on" if result["broker_tcp_nodelay"] else "off (default)"
    print(f"drain through mosquitto (broker TCP_NODELAY {nodelay}), QoS 1, PUBACK before delete")
    for key in ("drain_pipelined", "drain_stop_and_wait"):
        r = result[key]
        order = "in order" if r["subscriber_in_order"] else "OUT OF ORDER / MISSING"
        rate, took = r["events_per_s"], r["drain_s"]
        print(f"  window {r['window']:>3}     {rate:>10.1f} ev/s   ({took} s, subscriber {order})")
    print(f"  pipelined / stop-and-wait: {result['pipelined_over_stop_and_wait']}x")
    ok = (
        result["drain_pipelined"]["subscriber_in_order"]
        and result["drain_stop_and_wait"]["subscriber_in_order"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
