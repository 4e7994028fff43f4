"""Shared fixtures: a private real mosquitto per test, and the fetched real assets."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.devtools.mosquitto import MosquittoBroker

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def assets_dir() -> Path:
    """Where `facetrack-agent assets fetch` put the real models and data (`make setup` does it)."""
    root = Path(os.environ.get("FACETRACK_ASSETS_DIR", REPO_ROOT / "models" / "assets"))
    if not (root / "models").is_dir():
        pytest.fail(f"assets missing under {root}: run `make setup` (facetrack-agent assets fetch)")
    return root


@pytest.fixture
def asset(assets_dir: Path):  # type: ignore[no-untyped-def]
    """asset("models/x.tflite") -> Path, failing loudly when the file was not fetched."""

    def resolve(relative: str) -> Path:
        path = assets_dir / relative
        if not path.is_file():
            pytest.fail(f"asset {relative} missing under {assets_dir}: run `make setup`")
        return path

    return resolve


@pytest.fixture
def mosquitto() -> Iterator[MosquittoBroker]:
    """A real mosquitto on a free loopback port, private to one test; stop()/start() for outages."""
    broker = MosquittoBroker()
    broker.start()
    try:
        yield broker
    finally:
        broker.close()
