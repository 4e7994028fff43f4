"""Shared helpers for the classifier, trainer and hot-reload tests (real models, real photos).

Embeddings are cached on disk by photo hash in one directory per pytest session, so each test
module pays the detector + embedder cost only for photos no earlier module embedded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.classifier.keys import public_key_text
from agent.config import AgentConfig
from trainer.dataset import FaceEmbedding, scan_people
from trainer.training import TrainingResult, train

FACES = "data/faces"


def agent_config(
    assets_dir: Path, state_dir: Path, keys: Sequence[Ed25519PrivateKey], **extra: Any
) -> AgentConfig:
    return AgentConfig(
        assets_dir=assets_dir,
        state_dir=state_dir,
        device_id=extra.pop("device_id", "cam-1"),
        classifier={"trusted_keys": [public_key_text(k.public_key()) for k in keys], "keep_versions": 3},
        **extra,
    )


def embedding(assets_dir: Path, cache_dir: Path) -> FaceEmbedding:
    return FaceEmbedding.from_config(AgentConfig(assets_dir=assets_dir), cache_dir=cache_dir, pad=0.5)


def embed_people(
    emb: FaceEmbedding, root: Path, *, only: Sequence[str] | None = None, take: slice | None = None
) -> tuple[npt.NDArray[np.float64], list[str]]:
    """Single-face embeddings and labels of root/<person>/ photos (sorted; `take` slices each person)."""
    people = scan_people(root)
    xs: list[npt.NDArray[np.float32]] = []
    ys: list[str] = []
    for person, paths in people.items():
        if only is not None and person not in only:
            continue
        chosen = paths[take] if take is not None else paths
        for sample in emb.samples([(p, person) for p in chosen], progress=False):
            if sample.embedding is not None:
                xs.append(sample.embedding)
                ys.append(person)
    return np.array(xs, dtype=np.float64).reshape(-1, emb.dim), ys


def bundle_from(
    result: TrainingResult,
    emb: FaceEmbedding,
    key: Ed25519PrivateKey,
    version: str | None = None,
    **override: Any,
) -> bytes:
    return result.sign(
        embedder_id=override.get("embedder_id", emb.embedder_id),
        dim=override.get("dim", emb.dim),
        private_key=key,
        version=version,
    )


def quick_train(x: npt.NDArray[np.float64], y: list[str]) -> TrainingResult:
    return train(x, y, far_target=0.01)
