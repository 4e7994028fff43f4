"""Issue 11 item 9: a consumer tells a device's seq reset from a duplicate.

The consumer is the example in docs/mqtt-contract.md, run as written (its `consume` coroutine)
against a real mosquitto. The device is the agent's real outbox and MQTT link: three events, one of
them delivered twice (a redelivery after a lost PUBACK), then the outbox is replaced (a wiped state
directory) and three more events follow, numbered from 1 again under a new epoch; then the agent
restarts on that directory (a new epoch, seq carrying on) and an event of the previous run is
delivered again after the new run's first events.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from agent.config import MqttConfig
from agent.devtools.mosquitto import MosquittoBroker
from agent.events.schema import TrackStarted, utc_now
from agent.runtime.mqtt_link import MqttLink
from agent.runtime.outbox import Outbox
from agent.runtime.topics import Topics

DOC = Path(__file__).resolve().parent.parent / "docs" / "mqtt-contract.md"
DEVICE = "porch"


def _doc_consumer() -> dict[str, Any]:
    """The Python example of the contract page, executed as a module (not as __main__)."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    code = next(block for block in blocks if "def is_new" in block and "async def consume" in block)
    namespace: dict[str, Any] = {"__name__": "docs_consumer"}
    exec(compile(code, str(DOC), "exec"), namespace)
    return namespace


async def _emit(mosquitto: MosquittoBroker, outbox: Outbox, count: int) -> list[bytes]:
    """Send `count` events through a real MqttLink; returns the payloads as queued."""
    config = MqttConfig(
        host=mosquitto.host, port=mosquitto.port, reconnect_min_s=0.05, reconnect_max_s=0.4,
        password_env="FACETRACK_TEST_UNSET_PASSWORD",
    )  # fmt: skip
    link = MqttLink(config, Topics("facetrack", DEVICE), outbox)
    task = asyncio.create_task(link.run())
    payloads = []
    for i in range(count):
        event = link.emit(TrackStarted(device=DEVICE, ts=utc_now(), frame=i, track_id=i, bbox=[0, 0, 9, 9]))
        payloads.append(event.model_dump_json().encode())
    async with asyncio.timeout(20):
        while outbox.depth:  # noqa: ASYNC110  (polled: the outbox has no "drained" event)
            await asyncio.sleep(0.02)
    await link.stop(5)
    await task
    return payloads


async def test_doc_consumer_keeps_events_after_a_seq_reset_and_drops_duplicates(
    mosquitto: MosquittoBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _doc_consumer()
    consumer = asyncio.create_task(doc["consume"](mosquitto.host, mosquitto.port))
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="test-injector") as injector:
        # Wait until the consumer is subscribed: send canary events until one is printed.
        printed = ""
        async with asyncio.timeout(20):
            n = 0
            while "canary" not in printed:
                n += 1
                canary = {"device": "canary", "epoch": "c", "seq": n, "type": "probe"}
                await injector.publish("facetrack/canary/events", json.dumps(canary), qos=1)
                await asyncio.sleep(0.05)
                printed += capsys.readouterr().out

        state = tmp_path / "state"
        first = Outbox(state / "outbox.sqlite3", 1000, 1 << 20, owner=f"facetrack/{DEVICE}/events")
        first_epoch = first.epoch
        sent = await _emit(mosquitto, first, 3)
        # The broker got seq 2 again (its PUBACK was lost with the connection): a duplicate.
        await injector.publish(f"facetrack/{DEVICE}/events", sent[1], qos=1)
        first.close()
        # The state directory is wiped: a new outbox, seq from 1 again, under a new epoch.
        for leftover in state.iterdir():
            leftover.unlink()
        second = Outbox(state / "outbox.sqlite3", 1000, 1 << 20, owner=f"facetrack/{DEVICE}/events")
        assert second.epoch != first_epoch
        sent += await _emit(mosquitto, second, 3)
        second.close()
        # A restart on the same state directory: a new epoch (issue 24), seq carries on.
        third = Outbox(state / "outbox.sqlite3", 1000, 1 << 20, owner=f"facetrack/{DEVICE}/events")
        assert third.epoch not in (first_epoch, second.epoch)
        sent += await _emit(mosquitto, third, 2)
        third.close()
        # An event of the previous run sent again after the new run's first events (its PUBACK was
        # lost with the connection at the restart): a duplicate, though its epoch is not the last.
        await injector.publish(f"facetrack/{DEVICE}/events", sent[5], qos=1)
        # A marker after everything: once it is printed, everything before it was handled.
        marker = {"device": "canary", "epoch": "end", "seq": 1, "type": "end"}
        await injector.publish("facetrack/canary/events", json.dumps(marker), qos=1)
        async with asyncio.timeout(20):
            while "canary 1 end" not in printed:
                await asyncio.sleep(0.05)
                printed += capsys.readouterr().out
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    handled = [line.split() for line in printed.splitlines() if line.startswith(DEVICE)]
    # Every event once, in order: 1 2 3 of the first outbox, 1 2 3 of the new one, 4 5 after a restart.
    assert [int(fields[1]) for fields in handled] == [1, 2, 3, 1, 2, 3, 4, 5], printed
    events = [json.loads(p) for p in sent]
    assert [e["epoch"] for e in events] == (
        [first_epoch] * 3 + [events[3]["epoch"]] * 3 + [events[6]["epoch"]] * 2
    )
    # What deduplicating on seq alone (the old example) would have done: drop the whole new epoch.
    highest: dict[str, int] = {}
    kept = []
    for event in [*events[:3], events[1], *events[3:6]]:
        if 0 <= highest.get(event["device"], 0) - event["seq"] < 1000:
            continue
        highest[event["device"]] = event["seq"]
        kept.append(event["seq"])
    assert kept == [1, 2, 3]
