"""A push delivered twice (the trainer publishes through every node of a broker cluster, so a
device gets one copy per node) is installed once and answered once. A copy arriving after the
answer is the contract's re-push: confirmed as `already_running`, never re-applied."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from structlog.testing import capture_logs

from agent.events.schema import EventBase, ModelApplied
from agent.runtime.model_service import ModelService
from tests.classifier_helpers import FACES, agent_config, bundle_from, embed_people, embedding
from trainer.dataset import FaceEmbedding
from trainer.training import train

V1 = "20260101T000000Z"
TOPIC = "facetrack/all/model"


@pytest.fixture(scope="module")
def emb(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FaceEmbedding:
    return embedding(assets_dir, tmp_path_factory.getbasetemp() / "embeddings")


@pytest.fixture(scope="module")
def signed(emb: FaceEmbedding, assets_dir: Path) -> tuple[bytes, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    x, y = embed_people(emb, assets_dir / FACES / "dlib_johns")
    return bundle_from(train(x, y), emb, key, version=V1), key


def _answers(events: list[EventBase]) -> list[tuple[str, str | None, bool | None]]:
    return [(e.type, getattr(e, "model_version", None), getattr(e, "already_running", None)) for e in events]


@pytest.mark.parametrize("second_copy", ["while_staged", "after_swap_before_frame"])
async def test_a_second_copy_before_the_answer_is_dropped(
    tmp_path: Path,
    assets_dir: Path,
    emb: FaceEmbedding,
    signed: tuple[bytes, Ed25519PrivateKey],
    second_copy: str,
) -> None:
    data, key = signed
    events: list[EventBase] = []
    service = ModelService(agent_config(assets_dir, tmp_path, [key]), events.append, embedder=emb.embedder)
    await service.handle_message(TOPIC, data)
    assert service.staged_version == V1
    with capture_logs() as logs:
        if second_copy == "while_staged":
            # Verified against the staged bundle it would be refused as a version clash.
            await service.handle_message(TOPIC, data)
        assert service.activate_pending()
        if second_copy == "after_swap_before_frame":
            # It must not turn the pending "applied" into "already running".
            await service.handle_message(TOPIC, data)
        assert not service.activate_pending()
        service.note_frame_classified(1, V1)
        service.note_frame_classified(2, V1)
    assert _answers(events) == [("model_applied", V1, False)]
    assert [log["event"] for log in logs].count("model_duplicate_delivery") == 1
    assert service.current_version == V1


async def test_a_copy_after_the_answer_is_confirmed_not_reapplied(
    tmp_path: Path, assets_dir: Path, emb: FaceEmbedding, signed: tuple[bytes, Ed25519PrivateKey]
) -> None:
    data, key = signed
    events: list[EventBase] = []
    service = ModelService(agent_config(assets_dir, tmp_path, [key]), events.append, embedder=emb.embedder)
    await service.handle_message(TOPIC, data)
    service.activate_pending()
    service.note_frame_classified(1, V1)
    await service.handle_message(TOPIC, data)
    assert not service.activate_pending(), "the same bundle was staged again"
    service.note_frame_classified(2, V1)
    assert _answers(events) == [("model_applied", V1, False), ("model_applied", V1, True)]
    first = events[0]
    assert isinstance(first, ModelApplied) and first.previous_version is None
