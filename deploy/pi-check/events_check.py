"""pi-check's subscriber, on the host: collect what the agent in the arm64 root publishes, and check it.

    python deploy/pi-check/events_check.py --port PORT --device ID --out events.jsonl --ready FILE

Subscribes before the agent starts (FILE is written once the subscription is acknowledged), ends on
the positive signal the agent sends last: availability `stopped` after an `online` (events and
availability are QoS 1 from one client, so they arrive in order). Exit 0 when at least one
track_started and one track_ended arrived, every event parses against the event schema, and `seq`
runs 1, 2, 3 ... without gaps or duplicates; else exit 1 with one line saying what was wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.events.schema import parse_event


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--device", required=True)
    parser.add_argument("--out", type=Path, required=True, help="every event received, one JSON a line")
    parser.add_argument("--ready", type=Path, required=True, help="written once subscribed")
    parser.add_argument("--timeout", type=float, default=3600.0, help="give up after S seconds")
    args = parser.parse_args()

    events: list[bytes] = []
    availability: list[str] = []
    done = threading.Event()
    events_topic = f"facetrack/{args.device}/events"
    availability_topic = f"facetrack/{args.device}/availability"

    def on_connect(client: mqtt.Client, *_: object) -> None:
        client.subscribe([(events_topic, 1), (availability_topic, 1)])

    def on_subscribe(*_: object) -> None:
        args.ready.write_text("subscribed\n")

    def on_message(_client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.topic == events_topic:
            events.append(message.payload)
            return
        state = message.payload.decode(errors="replace")
        availability.append(state)
        if state == "stopped" and "online" in availability:
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pi-check-{args.device}")
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect("127.0.0.1", args.port)
    client.loop_start()
    finished = done.wait(args.timeout)
    client.loop_stop()
    client.disconnect()

    args.out.write_bytes(b"".join(payload + b"\n" for payload in events))
    if not finished:
        print(f"events: no `stopped` from the agent within {args.timeout:.0f} s", file=sys.stderr)
        return 1
    try:
        parsed = [parse_event(payload) for payload in events]
    except ValueError as exc:
        print(f"events: an event does not match the schema: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    seqs = [event.seq for event in parsed]
    counts = Counter(event.type for event in parsed)
    print(
        f"events received: {len(parsed)} ("
        + ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))
        + f"), seq {seqs[0] if seqs else '-'}..{seqs[-1] if seqs else '-'}, availability "
        + " -> ".join(availability)
    )
    if seqs != list(range(1, len(seqs) + 1)):
        print(f"events: seq is not 1..{len(seqs)} without gaps or duplicates: {seqs}", file=sys.stderr)
        return 1
    if not (counts["track_started"] and counts["track_ended"]):
        print("events: expected at least one track_started and one track_ended", file=sys.stderr)
        return 1
    for event in parsed:
        print("  " + json.dumps(event.model_dump(mode="json", include={"seq", "type", "frame", "track_id"})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
