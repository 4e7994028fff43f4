"""Signed model push over a real mosquitto: the agent-side ModelService verifies, installs and
swaps bundles; bad ones are refused with a precise reason while the old model keeps serving; a
kill during install never leaves a broken model; and the full agent swaps models mid-video.

No assertion here depends on this machine's speed (docs/testing.md): the full-agent tests loop the
clip and stop the agent once what they wait for has happened, order is asserted by frame index and
seq, and how fast a model applies is measured in bench/reload.py, not here. Timeouts are hang guards.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np
import numpy.typing as npt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from structlog.testing import capture_logs

from agent.classifier.classifier import UNKNOWN
from agent.classifier.errors import RejectCode
from agent.classifier.keys import key_id
from agent.classifier.verify import verify_bundle
from agent.config import AgentConfig
from agent.devtools.mosquitto import MosquittoBroker
from agent.events.schema import EventBase, ModelApplied, ModelRejected, parse_event
from agent.runtime.model_service import ModelService
from agent.runtime.mqtt_link import MqttLink
from agent.runtime.outbox import Outbox
from agent.runtime.topics import Topics
from tests.classifier_helpers import FACES, agent_config, bundle_from, embed_people, embedding
from trainer.dataset import FaceEmbedding
from trainer.publish import BrokerOptions, publish_bundle
from trainer.training import train

REPO = Path(__file__).resolve().parent.parent
V_OLD = "20260101T000000Z"
V_NEW = "20260201T000000Z"
V_NEXT = "20260301T000000Z"
LMM = "lin-manuel-miranda"
HANG_S = 300.0  # hang guard for waits on the real agent (models on one busy core)


async def until(predicate: Any, changed: asyncio.Event | None = None, within: float = HANG_S) -> None:
    """Wait until predicate() holds: woken by `changed` when given, else polled (a hang guard)."""
    async with asyncio.timeout(within):
        while not predicate():
            if changed is None:
                await asyncio.sleep(0.02)
            else:
                changed.clear()
                if not predicate():
                    await changed.wait()


@pytest.fixture(scope="module")
def emb(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FaceEmbedding:
    return embedding(assets_dir, tmp_path_factory.getbasetemp() / "embeddings")


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def models(emb: FaceEmbedding, assets_dir: Path) -> dict[str, Any]:
    """Model A: the five Johns. Model B: the Johns plus the three reference people (one photo
    each), among them Lin-Manuel Miranda, who is on stage in hamilton_clip.mp4."""
    x_johns, y_johns = embed_people(emb, assets_dir / FACES / "dlib_johns")
    refs = assets_dir / FACES / "refs"
    x_refs = np.stack([emb.faces_in(p)[0] for p in sorted(refs.iterdir())]).astype(np.float64)
    y_refs = [p.stem.split("_")[0] if "obama" in p.stem else p.stem for p in sorted(refs.iterdir())]
    a = train(x_johns, y_johns)
    b = train(np.vstack([x_johns, x_refs]), [*y_johns, *y_refs])
    return {"a": a, "b": b, "probe": x_johns[::11]}


def _service(config: AgentConfig, emb: FaceEmbedding, events: list[EventBase]) -> ModelService:
    return ModelService(config, emit=events.append, embedder=emb.embedder)


class Agent:
    """ModelService + the real MqttLink + outbox, and a stand-in frame loop that classifies real
    embeddings every 20 ms (activate_pending at the top, note_frame_classified after)."""

    def __init__(self, config: AgentConfig, emb: FaceEmbedding, probe: npt.NDArray[np.float64]) -> None:
        self.config = config
        self.topics = Topics(config.mqtt.topic_prefix, config.device_id)
        self.outbox = Outbox(config.state_dir / "outbox.sqlite3", 1000, 1 << 20)
        self.link = MqttLink(config.mqtt, self.topics, self.outbox)
        self.events: list[EventBase] = []
        self.service = ModelService(config, emit=self._emit, embedder=emb.embedder)
        self.probe = probe
        self.frames: list[tuple[int, str | None, list[str]]] = []

    def _emit(self, event: EventBase) -> None:
        self.events.append(self.outbox.append(event, topic=self.topics.events))
        self.link.notify()

    async def frame_loop(self) -> None:
        index = 0
        while True:
            self.service.activate_pending()
            clf = self.service.current
            labels = [p.label for p in clf.predict(self.probe)] if clf is not None else []
            self.frames.append((index, clf.version if clf else None, labels))
            if clf is not None:
                self.service.note_frame_classified(index, clf.version)
            index += 1
            await asyncio.sleep(0.02)

    def of(self, kind: type[EventBase]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
async def agent(
    mosquitto: MosquittoBroker,
    tmp_path: Path,
    assets_dir: Path,
    emb: FaceEmbedding,
    key: Ed25519PrivateKey,
    models: dict[str, Any],
) -> AsyncIterator[Agent]:
    config = agent_config(assets_dir, tmp_path / "state", [key], mqtt={"port": mosquitto.port})
    agent = Agent(config, emb, models["probe"])
    # The device already runs model A (installed by an earlier push).
    agent.service.store.install(bundle_from(models["a"], emb, key, version=V_OLD), V_OLD)
    assert agent.service.load_installed() is not None
    for topic in agent.service.topics(agent.topics):
        agent.link.subscribe(topic, agent.service.handle_message)
    tasks = [asyncio.create_task(agent.link.run()), asyncio.create_task(agent.frame_loop())]
    # `connected` turns true only once every subscription made before run() has its SUBACK.
    await until(lambda: agent.link.connected)
    yield agent
    await agent.link.stop(2.0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    agent.outbox.close()


async def test_publish_applies_and_prints_table(
    agent: Agent,
    mosquitto: MosquittoBroker,
    emb: FaceEmbedding,
    key: Ed25519PrivateKey,
    models: dict[str, Any],
) -> None:
    data = bundle_from(models["b"], emb, key, version=V_NEW)
    options = BrokerOptions(port=mosquitto.port)
    topic, answers = await publish_bundle(data, "cam-1", options, wait_s=HANG_S)
    assert topic == "facetrack/cam-1/model"
    assert [(a.device, a.result, a.version) for a in answers] == [("cam-1", "applied", V_NEW)]
    # How fast is bench/reload.py's business; here the answer carries a latency at all.
    assert answers[0].apply_latency_s is not None and answers[0].apply_latency_s >= 0
    applied = agent.of(ModelApplied)
    assert len(applied) == 1 and applied[0].labels == models["b"].labels
    assert applied[0].previous_version == V_OLD and not applied[0].already_running
    assert agent.service.current_version == V_NEW
    # Frames kept coming and each one was classified by exactly one model, old then new.
    versions = [v for _, v, _ in agent.frames]
    swap = versions.index(V_NEW)
    assert set(versions[:swap]) == {V_OLD} and set(versions[swap:]) == {V_NEW}
    assert [i for i, _, _ in agent.frames] == list(range(len(agent.frames)))
    assert (agent.config.state_dir / "models" / f"{V_NEW}.ftm").read_bytes() == data

    # Re-publishing the same bundle (here to the fleet topic) confirms it: "current", not a failure.
    _, again = await publish_bundle(data, "all", options, wait_s=HANG_S, expect=1)
    assert [(a.device, a.result) for a in again] == [("cam-1", "current")]
    assert "already running" in again[0].reason
    assert agent.of(ModelApplied)[-1].already_running
    # A different bundle reusing the running version number is refused.
    clash = bundle_from(models["a"], emb, key, version=V_NEW)
    _, clashed = await publish_bundle(clash, "cam-1", options, wait_s=HANG_S)
    assert [(a.result, a.version) for a in clashed] == [("rejected", V_NEW)]
    assert "already running (with different content)" in clashed[0].reason
    assert agent.service.current.labels == models["b"].labels  # type: ignore[union-attr]
    # A restarted agent picks up the newest installed model, and the retained message it then
    # receives again is confirmed, not reported as a rejection.
    restart_events: list[EventBase] = []
    restarted = _service(agent.config, emb, restart_events)
    assert restarted.load_installed() is not None and restarted.current_version == V_NEW
    await restarted.handle_message("facetrack/cam-1/model", data)
    restarted.activate_pending()
    restarted.note_frame_classified(0, V_NEW)
    assert [(e.type, e.already_running) for e in restart_events] == [("model_applied", True)]  # type: ignore[attr-defined]


def _bad_bundles(
    model: Any, emb: FaceEmbedding, key: Ed25519PrivateKey, *, version: str, older: str, running: str
) -> list[tuple[str, bytes, RejectCode, str]]:
    """(name, bundle, code, reason fragment) for the eight ways a bundle must be refused by an agent
    running `running`: each is otherwise a good bundle of `model` at `version` (newer than
    `running`), except "older version", which is good but at `older`."""
    good = bundle_from(model, emb, key, version=version)
    sig_flip = good[:-10] + bytes([good[-10] ^ 0xFF]) + good[-9:]
    manifest_len = int.from_bytes(good[10:14], "big")
    payload_at = 14 + manifest_len + 8 + 200
    tampered = good[:payload_at] + bytes([good[payload_at] ^ 0xFF]) + good[payload_at + 1 :]
    return [
        ("bad signature", sig_flip, RejectCode.BAD_SIGNATURE, "bad signature"),
        (
            "unknown key",
            bundle_from(model, emb, Ed25519PrivateKey.generate(), version=version),
            RejectCode.UNKNOWN_KEY,
            "unknown key",
        ),
        ("payload tampered", tampered, RejectCode.PAYLOAD_HASH_MISMATCH, "modified after signing"),
        ("truncated", good[: len(good) - 1000], RejectCode.TRUNCATED, "truncated bundle"),
        (
            "wrong dim",
            bundle_from(model, emb, key, version=version, dim=512),
            RejectCode.EMBEDDER_MISMATCH,
            "dimension 512",
        ),
        (
            "older version",
            bundle_from(model, emb, key, version=older),
            RejectCode.OLDER_VERSION,
            f"older than the running {running}",
        ),
        ("random bytes", os.urandom(3000), RejectCode.NOT_A_BUNDLE, "not a facetrack bundle"),
        ("pickle renamed", pickle.dumps(model.model), RejectCode.NOT_A_BUNDLE, "pickle"),
    ]


async def test_bad_bundles_rejected_old_model_serving(
    agent: Agent,
    mosquitto: MosquittoBroker,
    emb: FaceEmbedding,
    key: Ed25519PrivateKey,
    models: dict[str, Any],
) -> None:
    cases = _bad_bundles(models["b"], emb, key, version=V_NEW, older="20251231T000000Z", running=V_OLD)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        await client.subscribe("facetrack/+/events", qos=1)
        for name, data, code, fragment in cases:
            await client.publish("facetrack/cam-1/model", data, qos=1, retain=True)
            event = await _next_model_event(client)
            assert isinstance(event, ModelRejected), name
            assert event.code == code, f"{name}: {event.code} {event.reason}"
            assert fragment in event.reason, f"{name}: {event.reason}"
            assert event.running_version == V_OLD, name
            assert agent.service.current_version == V_OLD, name
    # Still serving model A on every frame, and nothing but model A in the store.
    assert {v for _, v, _ in agent.frames} == {V_OLD}
    assert agent.frames[-1][2] == sorted(models["a"].labels)
    assert [p.name for p in (agent.config.state_dir / "models").iterdir()] == [f"{V_OLD}.ftm"]
    assert not agent.of(ModelApplied)


async def test_a_superseded_bundle_replayed_is_not_a_rejection(
    agent: Agent,
    mosquitto: MosquittoBroker,
    emb: FaceEmbedding,
    key: Ed25519PrivateKey,
    models: dict[str, Any],
) -> None:
    """The device ran A (from the fleet topic), then got B on its own topic. On every restart the
    broker redelivers both retained messages; A is older than B, but it is the very bundle this
    device installed and replaced, so it is ignored, not reported as a rejection each time. An
    older bundle the device never had is still refused with older_version."""
    replaced = agent.service.store.path_for(V_OLD).read_bytes()
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        await client.subscribe("facetrack/+/events", qos=1)
        await client.publish(
            "facetrack/cam-1/model", bundle_from(models["b"], emb, key, version=V_NEW), qos=1
        )
        applied = await _next_model_event(client)
        assert isinstance(applied, ModelApplied) and applied.model_version == V_NEW
        await client.publish("facetrack/all/model", replaced, qos=1, retain=True)
        # The agent handles model messages one at a time in arrival order, so the answer to the
        # next bundle is the proof that the replayed one was handled, and answered with nothing.
        never_had = bundle_from(models["a"], emb, key, version="20260115T000000Z")
        await client.publish("facetrack/all/model", never_had, qos=1, retain=True)
        rejected = await _next_model_event(client)
        assert isinstance(rejected, ModelRejected) and rejected.code == "older_version"
        assert rejected.model_version == "20260115T000000Z", "the replayed bundle was answered"
        await client.publish("facetrack/all/model", b"", qos=1, retain=True)
    assert agent.service.current_version == V_NEW
    assert len(agent.of(ModelRejected)) == 1


async def test_a_bundle_dated_2999_is_refused_and_does_not_block_later_ones(
    agent: Agent,
    mosquitto: MosquittoBroker,
    emb: FaceEmbedding,
    key: Ed25519PrivateKey,
    models: dict[str, Any],
) -> None:
    """Issue 24 item 6: a validly signed bundle dated 2999 was installed, and every later update was
    then refused as older_version, with no recovery short of deleting the models. Now it is refused
    (future_version, with how to recover) and the next real bundle applies."""
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        await client.subscribe("facetrack/+/events", qos=1)
        future = bundle_from(models["b"], emb, key, version="29990101T000000Z")
        await client.publish("facetrack/cam-1/model", future, qos=1)
        rejected = await _next_model_event(client)
        assert isinstance(rejected, ModelRejected) and rejected.code == "future_version"
        assert "ahead of this clock" in rejected.reason and "train again" in rejected.reason
        await client.publish(
            "facetrack/cam-1/model", bundle_from(models["b"], emb, key, version=V_NEW), qos=1
        )
        applied = await _next_model_event(client)
        assert isinstance(applied, ModelApplied) and applied.model_version == V_NEW
    assert not agent.service.store.path_for("29990101T000000Z").exists()


def test_a_future_dated_bundle_installed_before_is_skipped_at_start(
    tmp_path: Path, assets_dir: Path, emb: FaceEmbedding, key: Ed25519PrivateKey, models: dict[str, Any]
) -> None:
    """The recovery for a device that installed one before this fix: it is skipped at start (with
    the reason in the log) and the newest sane bundle runs, so the next push applies."""
    config = agent_config(assets_dir, tmp_path / "state", [key])
    store = ModelService(config, emit=lambda _e: None, embedder=emb.embedder).store
    store.install(bundle_from(models["a"], emb, key, version=V_OLD), V_OLD)
    store.install(bundle_from(models["b"], emb, key, version="29990101T000000Z"), "29990101T000000Z")
    service = ModelService(config, emit=lambda _e: None, embedder=emb.embedder)
    with capture_logs() as logs:
        service.load_installed()
    assert service.current_version == V_OLD
    skipped = [log for log in logs if log["event"] == "model_store_skipped"]
    assert len(skipped) == 1 and "ahead of this clock" in skipped[0]["reason"], logs


async def _next_model_event(client: aiomqtt.Client, timeout_s: float = HANG_S) -> EventBase:
    async with asyncio.timeout(timeout_s):
        async for message in client.messages:
            event = parse_event(bytes(message.payload))  # type: ignore[arg-type]
            if event.type in ("model_applied", "model_rejected"):
                return event
    raise AssertionError("no model event")


KILL_CHILD = r"""
import asyncio, json, os, signal, sys
from pathlib import Path
from agent.config import AgentConfig
from agent.runtime.model_service import ModelService
from agent.classifier.verify import verify_bundle

config = AgentConfig(**json.loads(Path(sys.argv[1]).read_text()))
data = Path(sys.argv[2]).read_bytes()
point = sys.argv[3]
service = ModelService(config, emit=lambda event: None)
service.load_installed()

def die():
    os.kill(os.getpid(), signal.SIGKILL)

real_write, real_fsync, real_replace, real_unlink = os.write, os.fsync, os.replace, Path.unlink
if point == "mid-write":
    os.write = lambda fd, b: (real_write(fd, bytes(b[: len(b) // 2])), die())
elif point == "before-fsync":
    os.fsync = lambda fd: die()
elif point == "before-rename":
    os.replace = lambda a, b: die()
elif point == "after-rename":
    os.replace = lambda a, b: (real_replace(a, b), die())
elif point == "during-prune":
    Path.unlink = lambda self, missing_ok=False: die()
asyncio.run(service.handle_message("facetrack/cam-1/model", data))
print("install finished without being killed")
"""


@pytest.mark.parametrize(
    ("point", "expected"),
    [
        ("mid-write", V_OLD),
        ("before-fsync", V_OLD),
        ("before-rename", V_OLD),
        ("after-rename", V_NEW),
        ("during-prune", V_NEW),
    ],
)
def test_kill_during_install_runs_old_or_new(
    point: str,
    expected: str,
    tmp_path: Path,
    assets_dir: Path,
    emb: FaceEmbedding,
    key: Ed25519PrivateKey,
    models: dict[str, Any],
) -> None:
    config = agent_config(assets_dir, tmp_path / "state", [key])
    service = _service(config, emb, [])
    # Three installed versions (keep_versions 3), so installing a fourth also prunes one.
    for version in ("20251201T000000Z", "20251215T000000Z", V_OLD):
        service.store.install(bundle_from(models["a"], emb, key, version=version), version)
    bundle_path = tmp_path / "new.ftm"
    bundle_path.write_bytes(bundle_from(models["b"], emb, key, version=V_NEW))
    config_path = tmp_path / "config.json"
    config_path.write_text(config.model_dump_json())
    child = subprocess.run(
        [sys.executable, "-c", KILL_CHILD, str(config_path), str(bundle_path), point],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=HANG_S,
    )
    assert child.returncode == -9, (child.returncode, child.stdout, child.stderr[-2000:])
    models_dir = config.state_dir / "models"
    if point in ("mid-write", "before-fsync", "before-rename"):
        assert list(models_dir.glob("*.tmp-*")), "the kill should have left a temp file behind"
    # Restart: the newest valid model runs, a complete one, and leftovers are cleaned up.
    events: list[EventBase] = []
    restarted = _service(config, emb, events)
    clf = restarted.load_installed()
    assert clf is not None and clf.version == expected
    labels = [p.label for p in clf.predict(models["probe"])]
    assert labels == sorted(models["a"].labels)
    assert not list(models_dir.glob("*.tmp-*"))
    # Every file left under its final name is a complete, verifiable bundle.
    trusted = {key_id(key.public_key()): key.public_key()}
    for path in models_dir.glob("*.ftm"):
        verify_bundle(path.read_bytes(), trusted_keys=trusted, embedder_id=emb.embedder_id, dim=emb.dim)
    assert not events


def _hamilton_agent_config(
    assets_dir: Path, tmp_path: Path, key: Ed25519PrivateKey, broker: MosquittoBroker
) -> AgentConfig:
    """An agent config for hamilton_clip.mp4, looped (the agent is stopped by the test once what
    it waits for has happened), on `broker`."""
    video = assets_dir / "data" / "video" / "hamilton_clip.mp4"
    return agent_config(
        assets_dir,
        tmp_path / "state",
        [key],
        mqtt={"port": broker.port},
        pipeline={"input": str(video), "loop": True},
        status={"interval_s": 60},
    )


class Recorder:
    """Every event the real AgentApp emits, with a wake-up for waiters."""

    def __init__(self) -> None:
        self.events: list[EventBase] = []
        self.changed = asyncio.Event()

    def __call__(self, event: EventBase) -> None:
        self.events.append(event)
        self.changed.set()

    def of(self, kind: str) -> list[Any]:
        return [e for e in self.events if e.type == kind]  # type: ignore[attr-defined]

    async def wait(self, predicate: Any) -> None:
        await until(lambda: predicate(self), self.changed)


def _recording_agent(config: AgentConfig) -> tuple[Any, Recorder]:
    """The real AgentApp, with every event it emits recorded."""
    from agent.runtime.app import AgentApp

    recorder = Recorder()
    return AgentApp(config, install_signal_handlers=False, on_event=recorder), recorder


async def test_agent_swaps_model_mid_video(
    mosquitto: MosquittoBroker,
    tmp_path: Path,
    assets_dir: Path,
    emb: FaceEmbedding,
    key: Ed25519PrivateKey,
    models: dict[str, Any],
) -> None:
    """The real agent (AgentApp: real models, real video, real broker) runs model A; a push of
    model B after the first track starts is applied between two frames while the video keeps
    playing, no frame is skipped, and the identity events after the swap use B's labels
    (Lin-Manuel Miranda, whom A does not know)."""
    config = _hamilton_agent_config(assets_dir, tmp_path, key, mosquitto)
    from agent.runtime.model_store import ModelStore

    ModelStore(config.state_dir / "models").install(bundle_from(models["a"], emb, key, version=V_OLD), V_OLD)
    app, rec = _recording_agent(config)
    run = asyncio.create_task(app.run())
    await rec.wait(lambda r: r.of("track_started"))
    data = bundle_from(models["b"], emb, key, version=V_NEW)
    _, answers = await publish_bundle(data, "cam-1", BrokerOptions(port=mosquitto.port), wait_s=HANG_S)
    assert [(a.device, a.result, a.version) for a in answers] == [("cam-1", "applied", V_NEW)]
    (applied,) = rec.of("model_applied")
    # The clip loops: it plays on until B has named him, then the agent is stopped.
    await rec.wait(lambda r: any(e.label == LMM and e.frame > applied.frame for e in r.of("identity")))
    assert not run.done(), "the looped clip never ends on its own"
    app.request_stop("test done")
    assert await asyncio.wait_for(run, HANG_S) == 0

    assert len(rec.of("model_applied")) == 1
    first_track = rec.of("track_started")[0]
    assert first_track.frame < applied.frame < app.summary.frames, "the swap must happen mid-video"
    assert applied.seq > first_track.seq
    assert app.summary.frames_skipped == 0
    identities = rec.of("identity")
    new_only = set(models["b"].labels) - set(models["a"].labels)
    assert all(e.label not in new_only for e in identities if e.frame < applied.frame)
    after = [e.label for e in identities if e.frame > applied.frame]
    assert LMM in after, after
    assert set(after) <= {*models["b"].labels, UNKNOWN}


async def test_agent_rejects_bad_bundles_mid_video(
    mosquitto: MosquittoBroker,
    tmp_path: Path,
    assets_dir: Path,
    emb: FaceEmbedding,
    key: Ed25519PrivateKey,
    models: dict[str, Any],
) -> None:
    """The real agent (AgentApp: real models, real video, real broker) runs model B, which knows
    Lin-Manuel Miranda; the eight bad bundles arrive on its model topic while it processes the
    clip (looped: it plays on until the test has what it waits for). Each is refused with its own
    code and reason, B keeps serving every frame, and the identity events after the last refusal
    still name him."""
    from agent.runtime.model_store import ModelStore

    config = _hamilton_agent_config(assets_dir, tmp_path, key, mosquitto)
    ModelStore(config.state_dir / "models").install(bundle_from(models["b"], emb, key, version=V_NEW), V_NEW)
    cases = _bad_bundles(models["b"], emb, key, version=V_NEXT, older=V_OLD, running=V_NEW)
    app, rec = _recording_agent(config)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        await client.subscribe("facetrack/cam-1/events", qos=1)
        run = asyncio.create_task(app.run())
        await rec.wait(lambda r: r.of("track_started"))
        received: list[ModelRejected] = []
        for name, data, code, fragment in cases:
            await client.publish("facetrack/cam-1/model", data, qos=1, retain=True)
            event = await _next_model_event(client)
            assert isinstance(event, ModelRejected), (name, event)
            assert (event.code, event.running_version) == (code, V_NEW), f"{name}: {event.reason}"
            assert fragment in event.reason, f"{name}: {event.reason}"
            received.append(event)
        assert not run.done(), "the looped clip never ends on its own"
    last = received[-1].frame
    await rec.wait(lambda r: any(e.label == LMM and e.frame > last for e in r.of("identity")))
    app.request_stop("test done")
    assert await asyncio.wait_for(run, HANG_S) == 0

    rejected = rec.of("model_rejected")
    assert [(e.seq, e.code) for e in rejected] == [(e.seq, e.code) for e in received]
    assert not rec.of("model_applied")
    assert app.summary.frames_skipped == 0
    assert [p.name for p in (config.state_dir / "models").iterdir()] == [f"{V_NEW}.ftm"]
    identities = rec.of("identity")
    assert {e.label for e in identities} <= {*models["b"].labels, UNKNOWN}
    # Refused mid-video: the first refusal came after the first frames, the last before the end.
    assert 0 < received[0].frame <= last < app.summary.frames


async def test_publish_cli_table_and_exit_codes(
    agent: Agent,
    mosquitto: MosquittoBroker,
    tmp_path: Path,
    emb: FaceEmbedding,
    key: Ed25519PrivateKey,
    models: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from trainer.cli import main

    broker = f"127.0.0.1:{mosquitto.port}"
    newer, older = tmp_path / "newer.ftm", tmp_path / "older.ftm"
    newer.write_bytes(bundle_from(models["b"], emb, key, version=V_NEW))
    older.write_bytes(bundle_from(models["a"], emb, key, version="20251201T000000Z"))

    code = await asyncio.to_thread(
        main, ["publish", str(newer), "--device", "cam-1", "--broker", broker, "--wait", "300"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith(f"published {newer} (version {V_NEW}) retained to facetrack/cam-1/model")
    assert lines[1].split() == ["device", "result", "version", "apply", "latency", "reason"]
    assert lines[2].split()[:3] == ["cam-1", "applied", V_NEW]

    code = await asyncio.to_thread(
        main, ["publish", str(older), "--device", "all", "--broker", broker, "--wait", "300", "--expect", "1"]
    )
    out = capsys.readouterr().out
    assert code == 1, out
    assert "rejected" in out and f"older than the running {V_NEW}" in out

    code = await asyncio.to_thread(
        main, ["publish", str(newer), "--device", "cam-9", "--broker", broker, "--wait", "1"]
    )
    assert code == 2
    assert "no device answered within 1 s" in capsys.readouterr().out
    assert agent.service.current_version == V_NEW


async def test_publish_cli_takes_the_broker_from_config(
    agent: Agent,
    mosquitto: MosquittoBroker,
    tmp_path: Path,
    emb: FaceEmbedding,
    key: Ed25519PrivateKey,
    models: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`publish --config` reads host, port, protocol and topic prefix from an agent-style
    config.toml; flags override it. (TLS and credentials from --config: tests/test_broker_acl.py.)"""
    from agent.devtools.mosquitto import free_port
    from trainer.cli import main

    newer = tmp_path / "newer.ftm"
    newer.write_bytes(bundle_from(models["b"], emb, key, version=V_NEW))
    config = tmp_path / "trainer.toml"
    config.write_text(
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\nprotocol = "3.1.1"\n'
        'topic_prefix = "elsewhere"\n'
    )
    # No --broker: the config's broker is reached, and its prefix is where the model goes (the
    # agent listens under facetrack/, so nobody answers).
    code = await asyncio.to_thread(
        main, ["publish", str(newer), "--device", "cam-1", "--config", str(config), "--wait", "1"]
    )
    out = capsys.readouterr().out
    assert code == 2, out
    assert out.splitlines()[0].endswith("retained to elsewhere/cam-1/model")
    assert agent.service.current_version == V_OLD
    # --prefix overrides the config: the agent applies it.
    args = ["publish", str(newer), "--device", "cam-1", "--config", str(config), "--prefix", "facetrack"]
    code = await asyncio.to_thread(main, [*args, "--wait", "300"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.splitlines()[2].split()[:3] == ["cam-1", "applied", V_NEW]
    assert agent.service.current_version == V_NEW
    # The port comes from the config too: a closed one is one line naming it.
    dead = free_port()
    config.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {dead}\n')
    code = await asyncio.to_thread(
        main, ["publish", str(newer), "--device", "cam-1", "--config", str(config)]
    )
    err = capsys.readouterr().err.strip()
    assert (
        code == 1 and err.startswith(f"facetrack-trainer: error: MQTT 127.0.0.1:{dead}: ") and "\n" not in err
    )
    # A bad value in the file is reported as the file's.
    config.write_text('[mqtt]\nprotocol = "4"\n')
    code = await asyncio.to_thread(
        main, ["publish", str(newer), "--device", "cam-1", "--config", str(config)]
    )
    err = capsys.readouterr().err.strip()
    assert code == 1 and f"config error in {config}: mqtt.protocol = '4'" in err and "\n" not in err
