"""Issue 12 item 6 and issue 15 item 12: `--trusted-key` on the agent's command line, and no input
means no run (one line, exit 2) instead of silently analysing the demo clip.

Real `facetrack-agent run` processes, real models, a real mosquitto. The model is a real signed
classifier trained on synthetic 128-d vectors for the agent's own embedder id, installed in the
agent's state directory as a pushed model would be.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.classifier.bundle import parse_bundle
from agent.config import load_config
from agent.devtools.mosquitto import MosquittoBroker
from agent.runtime.cli import NO_INPUT
from agent.runtime.key_files import write_key_pair
from agent.runtime.model_store import ModelStore
from agent.vision.factory import build_vision_stack
from trainer.training import train

REPO_ROOT = Path(__file__).resolve().parent.parent


def _agent(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "run", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_without_an_input_the_agent_says_so_and_exits_2(tmp_path: Path) -> None:
    done = _agent("--state-dir", str(tmp_path / "state"), "--max-frames", "1", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"facetrack-agent: {NO_INPUT}"]
    assert not (tmp_path / "state").exists()  # it never started: no outbox made
    # The documented default configuration has no input either.
    config = load_config(REPO_ROOT / "config.toml")
    assert config.pipeline.input == ""


def test_an_input_in_the_config_file_is_enough(tmp_path: Path, asset: Any) -> None:
    toml = tmp_path / "agent.toml"
    toml.write_text(f'[pipeline]\ninput = "{asset("data/video/vtest.avi")}"\n')
    config = load_config(toml)
    assert config.pipeline.input.endswith("vtest.avi")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, assets_dir: Path) -> tuple[Path, Path, str]:
    """(state dir holding an installed signed model, its public key file, the model version)."""
    root = tmp_path_factory.mktemp("trusted")
    _, public, private = write_key_pair(root / "keys", "site")
    stack = build_vision_stack(load_config(None, assets_dir=assets_dir))
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(2, stack.embedder.dim))
    x = np.vstack([c + 0.05 * rng.normal(size=(4, stack.embedder.dim)) for c in centres])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    result = train(x, ["ada"] * 4 + ["bob"] * 4, far_target=0.01)
    data = result.sign(embedder_id=stack.embedder.embedder_id, dim=stack.embedder.dim, private_key=private)
    version = parse_bundle(data).manifest.model_version
    state = root / "state"
    ModelStore(state / "models", 3).install(data, version)
    return state, public, version


def _started(stderr: str) -> dict[str, Any]:
    for line in stderr.splitlines():
        record = json.loads(line)
        if record.get("event") == "agent_started":
            return dict(record)
    raise AssertionError(stderr[-2000:])


def test_trusted_key_flag_lets_the_agent_run_a_model_signed_with_it(
    installed: tuple[Path, Path, str], mosquitto: MosquittoBroker, asset: Any
) -> None:
    state, public, version = installed
    common = (
        "--input", str(asset("data/video/vtest.avi")), "--max-frames", "2",
        "--broker", f"{mosquitto.host}:{mosquitto.port}", "--device-id", "keyed",
        "--state-dir", str(state), "--log-format", "json",
    )  # fmt: skip
    # Without the key, the installed model does not verify and the agent runs without one.
    plain = _agent(*common)
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert _started(plain.stderr)["model"] is None
    # With it, the agent runs the model signed by that key.
    keyed = _agent(*common, "--trusted-key", str(public))
    assert keyed.returncode == 0, keyed.stderr[-2000:]
    assert _started(keyed.stderr)["model"] == version


def test_trusted_key_flag_names_a_missing_file_in_one_line(tmp_path: Path) -> None:
    done = _agent("--input", "clip.mp4", "--trusted-key", str(tmp_path / "nope.pub"), cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--trusted-key" in lines[0] and "nope.pub" in lines[0]
