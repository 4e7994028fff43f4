"""Signals always stop the agent cleanly (issue 11, cases 3 end to end, 4 and 5), on real parts: the
agent process, real models, a real mosquitto, and a real clip played as a paced live stream (so
the input never ends before the test says so, however fast the machine is).

- SIGHUP is a clean stop like SIGTERM: exit 0, every started track ended, availability `stopped`.
- SIGTERM while the agent starts (its camera connected, models loading) exits 0, not 143.
- A second signal skips the wait for a broker that is down.
- A model bundle whose manifest is 200,000 nested JSON arrays is answered with model_rejected
  (bad_manifest), and the agent carries on.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.classifier.bundle import assemble, signed_region
from agent.devtools.mosquitto import MosquittoBroker, free_port
from tests.robustness_helpers import DEVICE, AgentProcess, PacedSource, Subscriber, assert_no_duplicate_seq


@pytest.fixture
def source(asset: Callable[[str], Path]) -> Iterator[PacedSource]:
    paced = PacedSource(asset("data/video/hamilton_clip.mp4"))
    yield paced
    paced.close()


def deep_manifest_bundle(levels: int = 200_000) -> bytes:
    """Valid header and lengths; the manifest is `levels` nested JSON arrays."""
    manifest = b"[" * levels + b"]" * levels
    return assemble(signed_region(manifest, b"payload"), b"\0" * 64)


def publish(broker: MosquittoBroker, topic: str, payload: bytes) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="robust-publisher")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(30)
    finally:
        client.loop_stop()
        client.disconnect()


def started_and_ended(events: list[dict[str, Any]]) -> tuple[set[int], set[int]]:
    started = {e["track_id"] for e in events if e["type"] == "track_started"}
    return started, {e["track_id"] for e in events if e["type"] == "track_ended"}


def test_sighup_is_a_clean_stop_and_a_deep_manifest_is_rejected(
    tmp_path: Path, mosquitto: MosquittoBroker, source: PacedSource
) -> None:
    sub = Subscriber(mosquitto)
    agent = AgentProcess(
        ["--input", source.url, "--broker", f"{mosquitto.host}:{mosquitto.port}"], tmp_path / "state"
    )
    try:
        sub.wait_for(lambda ev: any(e["type"] == "track_started" for e in ev))
        publish(mosquitto, f"facetrack/{DEVICE}/model", deep_manifest_bundle())
        sub.wait_for(lambda ev: any(e["type"] == "model_rejected" for e in ev))
        (rejected,) = [e for e in sub.events() if e["type"] == "model_rejected"]
        assert rejected["code"] == "bad_manifest" and "levels deep" in rejected["reason"]
        assert not agent.logged("mqtt_handler_failed"), agent.tail()
        agent.signal(signal.SIGHUP)
        assert agent.finish(timeout=60) == 0, agent.tail()
    finally:
        agent.kill()
    (stopping,) = agent.logged("agent_stopping")
    assert stopping["reason"] == "SIGHUP"
    sub.wait_topic("availability", lambda p: p == b"stopped", timeout=30)
    sub.close()
    events = sub.events()
    assert_no_duplicate_seq(events)
    assert sorted({e["seq"] for e in events}) == list(range(1, len({e["seq"] for e in events}) + 1))
    started, ended = started_and_ended(events)
    assert started and started == ended, "every track started must be ended on SIGHUP"


def test_sigterm_while_starting_exits_0(
    tmp_path: Path, mosquitto: MosquittoBroker, source: PacedSource
) -> None:
    """The camera is connected first, in the reader thread, while the main thread opens the state
    directory and loads the models: a SIGTERM sent the moment the camera connects lands there."""
    agent = AgentProcess(
        ["--input", source.url, "--broker", f"{mosquitto.host}:{mosquitto.port}"], tmp_path / "state"
    )
    try:
        assert source.accepted.wait(120), agent.tail()
        agent.signal(signal.SIGTERM)
        assert agent.finish(timeout=60) == 0, agent.tail()
    finally:
        agent.kill()
    stops = agent.logged("agent_stopping")
    assert [r["reason"] for r in stops] == ["SIGTERM"], agent.tail()
    assert not any("Traceback" in line for line in agent.lines)


def test_a_second_signal_skips_the_wait_for_a_broker_that_is_down(
    tmp_path: Path, source: PacedSource
) -> None:
    down = f"127.0.0.1:{free_port()}"  # nothing listens there
    agent = AgentProcess(
        ["--input", source.url, "--broker", down, "--flush-timeout", "3600"], tmp_path / "state"
    )
    try:
        agent.wait_log(lambda r: r.get("event") == "event" and r.get("type") == "track_started")
        agent.signal(signal.SIGTERM)
        flushing = agent.wait_event("agent_flushing")
        assert flushing["queued"] >= 1 and flushing["broker_connected"] is False
        agent.signal(signal.SIGTERM)
        # Without the second signal it would wait up to the hour it was given.
        assert agent.finish(timeout=60) == 0, agent.tail()
    finally:
        agent.kill()
    assert agent.logged("agent_stopping_now")
    (not_empty,) = agent.logged("outbox_not_empty")
    assert not_empty["queued"] >= 1
    # Every track still ended (queued in the outbox for the next start).
    stored = [r for r in agent.records if r.get("event") == "event"]
    started = {r["track_id"] for r in stored if r.get("type") == "track_started"}
    assert started == {r["track_id"] for r in stored if r.get("type") == "track_ended"}
