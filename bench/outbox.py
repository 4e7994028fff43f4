"""Benchmark store-and-forward: outbox append/ack rates on disk and drain throughput through a real
mosquitto at QoS 1, pipelined (the agent's window) against stop-and-wait, in the same run.

    python -m bench.outbox [--events 2000] [--window 16] [--rounds 5] [--broker-nodelay] [--json]

A private mosquitto is started on a free loopback port. "drain" is measured from the link's
connect until the outbox is empty: every event is PUBACKed and deleted from disk. A real subscriber
checks that every seq arrived, in order. Window 16 and window 1 drains are interleaved round by
round (the order alternating), each on a fresh outbox; the median, min and max over rounds are
reported, and the ratio is taken per round, so a load spike from another process hits both alike.
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

from agent.config import MqttConfig
from agent.devtools.mosquitto import MosquittoBroker
from agent.events.schema import IdentityEvent, utc_now
from agent.logging_setup import configure_logging
from agent.runtime.mqtt_link import MqttLink
from agent.runtime.outbox import Outbox
from agent.runtime.topics import Topics
from bench.machine import BenchRun


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


async def bench_drain(
    broker: MosquittoBroker, directory: Path, events: int, window: int, round_index: int = 0
) -> dict[str, Any]:
    outbox = Outbox(directory / f"drain-{round_index}-{window}.sqlite3", max_rows=10**9, max_bytes=1 << 40)
    for i in range(events):
        outbox.append(_draft(i))
    topics = Topics("bench", f"r{round_index}w{window}")
    received: list[int] = []
    subscriber = f"bench-sub-{round_index}-{window}"
    async with aiomqtt.Client(broker.host, broker.port, identifier=subscriber) as sub:
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


def _spread(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 3),
        "min": round(ordered[0], 3),
        "max": round(ordered[-1], 3),
        "runs": [round(v, 3) for v in values],
    }


async def run(events: int, window: int, rounds: int, broker_nodelay: bool, quiet: bool) -> dict[str, Any]:
    """Disk rates once, then `rounds` rounds of (window, 1) drains, the order alternating each round
    so neither window always goes first; the ratio is taken within each round."""
    extra = "set_tcp_nodelay true\n" if broker_nodelay else ""
    pipelined: list[dict[str, Any]] = []
    stop_and_wait: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="facetrack-bench-outbox-") as tmp,
        MosquittoBroker(extra_config=extra) as broker,
    ):
        directory = Path(tmp)
        disk = bench_outbox(directory, events)
        for index in range(rounds):
            order = [window, 1] if index % 2 == 0 else [1, window]
            for w in order:
                result = await bench_drain(broker, directory, events, w, index)
                (pipelined if w == window else stop_and_wait).append(result)
            if not quiet:
                print(
                    f"round {index + 1}/{rounds}: window {window} {pipelined[-1]['events_per_s']} ev/s, "
                    f"window 1 {stop_and_wait[-1]['events_per_s']} ev/s",
                    file=sys.stderr,
                    flush=True,
                )
    ratios = [p["events_per_s"] / s["events_per_s"] for p, s in zip(pipelined, stop_and_wait, strict=True)]
    return {
        "broker_tcp_nodelay": broker_nodelay,
        "events": events,
        "window": window,
        "rounds": rounds,
        "outbox": disk,
        "drain_pipelined_events_per_s": _spread([r["events_per_s"] for r in pipelined]),
        "drain_stop_and_wait_events_per_s": _spread([r["events_per_s"] for r in stop_and_wait]),
        "pipelined_over_stop_and_wait": _spread(ratios),
        "subscriber_in_order": all(r["subscriber_in_order"] for r in pipelined + stop_and_wait),
        "drains": pipelined + stop_and_wait,
    }


def _fmt(s: dict[str, Any], unit: str) -> str:
    runs = ", ".join(f"{v:g}" for v in s["runs"])
    return f"median {s['median']:g}{unit}  (min {s['min']:g}, max {s['max']:g}; rounds: {runs})"


def format_report(result: dict[str, Any]) -> str:
    d = result["outbox"]
    lines = [f"outbox on disk ({d['events']} events, WAL, appends synchronous=FULL, acks NORMAL), once"]
    p50, p99 = d["append_p50_ms"], d["append_p99_ms"]
    lines.append(f"  append        {d['append_per_s']:>10.1f} ev/s   p50 {p50} ms  p99 {p99} ms")
    lines.append(f"  ack one       {d['ack_one_per_s']:>10.1f} ev/s")
    lines.append(f"  ack window 16 {d['ack_window16_per_s']:>10.1f} ev/s")
    nodelay = "on" if result["broker_tcp_nodelay"] else "off (default)"
    lines.append(
        f"drain through mosquitto (broker TCP_NODELAY {nodelay}), QoS 1, PUBACK before delete, "
        f"{result['events']} events per drain, {result['rounds']} interleaved rounds (order alternates)"
    )
    lines.append(f"  window {result['window']:<3} ev/s: {_fmt(result['drain_pipelined_events_per_s'], '')}")
    lines.append(f"  window 1   ev/s: {_fmt(result['drain_stop_and_wait_events_per_s'], '')}")
    lines.append(
        f"  window {result['window']} / window 1 (per round): "
        f"{_fmt(result['pipelined_over_stop_and_wait'], 'x')}"
    )
    order = "every seq, in order" if result["subscriber_in_order"] else "OUT OF ORDER / MISSING"
    lines.append(f"  subscriber received {order} in every drain")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.outbox", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000, help="events per drain (default 2000)")
    parser.add_argument("--window", type=int, default=16, help="in-flight QoS 1 messages (default 16)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument(
        "--broker-nodelay",
        action="store_true",
        help="run mosquitto with set_tcp_nodelay true (its default is false, like most brokers)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object (alone on stdout)")
    args = parser.parse_args(argv)
    if args.events < 1 or args.window < 1 or args.rounds < 1:
        parser.error("--events, --window and --rounds must be positive")
    # The link logs every connect; keep the benchmark's output to its results (logs go to stderr).
    configure_logging("error", "console")
    bench_run = BenchRun.start("bench.outbox", argv, with_mosquitto=True)
    result = asyncio.run(run(args.events, args.window, args.rounds, args.broker_nodelay, args.json))
    bench_run.finish()
    if args.json:
        print(json.dumps({"run": bench_run.as_json(), **result}, indent=2))
    else:
        print(bench_run.header())
        print(format_report(result))
    return 0 if result["subscriber_in_order"] else 1


if __name__ == "__main__":
    sys.exit(main())
