"""A bundle trained on SFace embeddings travels sign -> publish -> agent -> model_applied over a real
mosquitto, and a bundle trained on the other embedder (MobileFaceNet) is refused with
embedder_mismatch while the SFace model keeps serving. Both bundles are made by the real
`facetrack-trainer train` from real photos; the agent side is the real ModelService on the real
MqttLink, with the embedder built from the agent's config (the default, SFace)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agent.classifier.bundle import parse_bundle
from agent.classifier.errors import RejectCode
from agent.config import EMBEDDER_EXAMPLES
from agent.devtools.mosquitto import MosquittoBroker
from agent.events.schema import EventBase, ModelApplied, ModelRejected
from agent.runtime.model_service import ModelService
from agent.runtime.mqtt_link import MqttLink
from agent.runtime.outbox import Outbox
from agent.runtime.topics import Topics
from agent.vision.factory import build_embedder
from tests.classifier_helpers import FACES, agent_config
from trainer.cli import main as trainer
from trainer.publish import BrokerOptions, publish_bundle


def _train(assets_dir: Path, tmp: Path, kind: str, version: str, cache: Path) -> Path:
    config = tmp / f"{kind}.toml"
    config.write_text(f'[models]\nembedder_kind = "{kind}"\nembedder = "{EMBEDDER_EXAMPLES[kind]}"\n')
    out = tmp / f"{kind}.ftm"
    args = [
        "train",
        str(assets_dir / FACES / "dlib_johns"),
        "--out",
        str(out),
        "--key",
        str(tmp / "keys" / "facetrack.key"),
        "--config",
        str(config),
        "--assets-dir",
        str(assets_dir),
        "--cache-dir",
        str(cache),
        "--model-version",
        version,
        "--quiet",
    ]
    assert trainer(args) == 0
    return out


@pytest.fixture(scope="module")
def bundles(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("sface_bundles")
    assert trainer(["keygen", "--out", str(tmp / "keys")]) == 0
    cache = tmp_path_factory.getbasetemp() / "embeddings"
    return {
        "sface": _train(assets_dir, tmp, "sface", "20260101T000000Z", cache),
        "mobilefacenet": _train(assets_dir, tmp, "mobilefacenet", "20260201T000000Z", cache),
        "keys": tmp / "keys",
    }


async def test_sface_bundle_applies_and_the_other_embedders_is_refused(
    bundles: dict[str, Path], mosquitto: MosquittoBroker, tmp_path: Path, assets_dir: Path
) -> None:
    from agent.runtime.key_files import load_private_key

    key = load_private_key(bundles["keys"] / "facetrack.key")
    sface_data = bundles["sface"].read_bytes()
    mfn_data = bundles["mobilefacenet"].read_bytes()
    assert parse_bundle(sface_data).manifest.embedder_id == "sface-int8bq-128-arcface112-v1"
    assert parse_bundle(mfn_data).manifest.embedder_id == "mobilefacenet-128-arcface112-v1"
    report = json.loads(bundles["sface"].with_name("sface.ftm.report.json").read_text())
    assert report["embedder_id"] == "sface-int8bq-128-arcface112-v1"

    config = agent_config(assets_dir, tmp_path / "state", [key], mqtt={"port": mosquitto.port})
    embedder = build_embedder(config)
    assert embedder.embedder_id == "sface-int8bq-128-arcface112-v1"
    topics = Topics(config.mqtt.topic_prefix, config.device_id)
    outbox = Outbox(config.state_dir / "outbox.sqlite3", 1000, 1 << 20)
    link = MqttLink(config.mqtt, topics, outbox)
    events: list[EventBase] = []

    def emit(event: EventBase) -> None:
        events.append(outbox.append(event, topic=topics.events))
        link.notify()

    service = ModelService(config, emit=emit, embedder=embedder)
    for topic in service.topics(topics):
        link.subscribe(topic, service.handle_message)
    stop = asyncio.Event()

    async def frames() -> None:
        # The pipeline's part: activate a staged model between frames and report the first frame.
        index = 0
        while not stop.is_set():
            service.activate_pending()
            if service.current is not None:
                service.note_frame_classified(index, service.current.version)
            index += 1
            await asyncio.sleep(0.02)

    tasks = [asyncio.create_task(link.run()), asyncio.create_task(frames())]
    try:
        for _ in range(250):
            if link.connected:
                break
            await asyncio.sleep(0.02)
        assert link.connected
        await asyncio.sleep(0.2)
        options = BrokerOptions(port=mosquitto.port)
        _, answers = await publish_bundle(sface_data, "cam-1", options, wait_s=15)
        assert [(a.result, a.version) for a in answers] == [("applied", "20260101T000000Z")]
        (applied,) = [e for e in events if isinstance(e, ModelApplied)]
        assert applied.model_version == "20260101T000000Z"
        assert service.current is not None and service.current.embedder_id == embedder.embedder_id

        _, refused = await publish_bundle(mfn_data, "cam-1", options, wait_s=15)
        assert [(a.result, a.version) for a in refused] == [("rejected", "20260201T000000Z")]
        (rejected,) = [e for e in events if isinstance(e, ModelRejected)]
        assert rejected.code == RejectCode.EMBEDDER_MISMATCH == "embedder_mismatch"
        assert "mobilefacenet-128-arcface112-v1" in rejected.reason
        # The SFace model keeps serving.
        assert service.current_version == "20260101T000000Z"
    finally:
        stop.set()
        await link.stop(2.0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        outbox.close()
