"""Issue 12 items 4-5: the trainer reports a missing model in one line and works from any folder;
`publish` refuses a corrupted or wrongly signed bundle before it becomes the retained model
message, and `publish --clear` removes a retained model sent to a mistyped device id.

Real trainer processes and a real mosquitto. The bundles are signed classifiers trained on
synthetic 128-d vectors: what is checked here is the file, not what the classifier says.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from paho.mqtt import client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.classifier.bundle import parse_bundle
from agent.devtools.mosquitto import MosquittoBroker
from agent.runtime.key_files import write_key_pair
from trainer.training import train

REPO_ROOT = Path(__file__).resolve().parent.parent


def _trainer(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainer.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def _one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


# -- item 4: a missing model ------------------------------------------------------------------------


def test_missing_model_is_one_line_exit_2(tmp_path: Path, assets_dir: Path) -> None:
    keys = tmp_path / "keys"
    _, _, _ = write_key_pair(keys, "t")
    photos = assets_dir / "data/faces/knn/train"
    result = _trainer(
        "train", str(photos), "--out", str(tmp_path / "m.ftm"), "--key", str(keys / "t.key"),
        "--assets-dir", str(tmp_path / "no-assets"), "--quiet", "--no-cache",
        cwd=tmp_path,
    )  # fmt: skip
    line = _one_line(result, 2)
    assert "face_detection_back.tflite" in line and "not found" in line


def test_default_assets_dir_works_outside_the_repository(tmp_path: Path) -> None:
    """Run from another folder, the default assets_dir is the checkout's models/assets, where
    `make setup` put them, not a models/assets under whatever folder the user is in."""
    probe = "from agent.config import AgentConfig; print(AgentConfig().assets_dir)"
    shown = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert Path(shown) == REPO_ROOT / "models" / "assets"
    assert (Path(shown) / "models").is_dir()


def test_agent_names_the_flag_when_a_model_is_missing(tmp_path: Path, asset: object) -> None:
    video = asset("data/video/vtest.avi")  # type: ignore[operator]
    result = subprocess.run(
        [
            sys.executable, "-m", "agent", "run", "--input", str(video),
            "--assets-dir", str(tmp_path / "elsewhere"), "--state-dir", str(tmp_path / "state"),
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    line = _one_line(result, 2)
    assert "not found" in line and "--assets-dir" in line


# -- item 5: publish checks what it sends, and can clear a retained model ----------------------------


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path, Path]:
    """(bundle, its public key file, another key's public key file)."""
    keys = tmp_path_factory.mktemp("keys")
    _, public, private = write_key_pair(keys, "fleet")
    _, other_public, _ = write_key_pair(keys, "other")
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(2, 128))
    x = np.vstack([c + 0.05 * rng.normal(size=(4, 128)) for c in centres])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    result = train(x, ["ada"] * 4 + ["bob"] * 4, far_target=0.01)
    data = result.sign(embedder_id="mobilefacenet-128-arcface112-v1", dim=128, private_key=private)
    return data, public, other_public


def _flip_payload_bit(data: bytes) -> bytes:
    parsed = parse_bundle(data)
    at = data.index(parsed.payload) + len(parsed.payload) // 2
    corrupt = bytearray(data)
    corrupt[at] ^= 0x01
    return bytes(corrupt)


def _retained(broker: MosquittoBroker, topic: str, wait_s: float = 1.0) -> list[bytes]:
    """The retained message on `topic` (delivered on subscribe), or [] when there is none."""
    got: list[bytes] = []
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{time.monotonic_ns()}")
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda _c, _u, m: got.append(bytes(m.payload))
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert subscribed.wait(5)
        # A retained message is sent right after the SUBACK; wait a moment for it to arrive.
        deadline = time.monotonic() + wait_s
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        client.loop_stop()
        client.disconnect()
    return got


def _publish(broker: MosquittoBroker, *args: str) -> subprocess.CompletedProcess[str]:
    return _trainer("publish", *args, "--broker", f"{broker.host}:{broker.port}", "--wait", "0.5")


def test_publish_refuses_a_bit_flipped_bundle(
    signed: tuple[bytes, Path, Path], mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    data, _, _ = signed
    bad = tmp_path / "bad.ftm"
    bad.write_bytes(_flip_payload_bit(data))
    line = _one_line(_publish(mosquitto, str(bad), "--device", "cam-1"), 1)
    assert "not sent" in line and "sha256" in line
    assert _retained(mosquitto, "facetrack/cam-1/model") == []


def test_publish_checks_the_signature_when_a_public_key_is_at_hand(
    signed: tuple[bytes, Path, Path], mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    data, public, other_public = signed
    good = tmp_path / "good.ftm"
    good.write_bytes(data)
    # Signed by another key than the one given: refused, nothing sent.
    line = _one_line(
        _publish(mosquitto, str(good), "--device", "cam-2", "--public-key", str(other_public)), 1
    )
    assert "not sent" in line and "unknown key" in line
    assert _retained(mosquitto, "facetrack/cam-2/model") == []
    # A signature that does not verify (a flipped signature byte), with the right key: refused.
    forged = tmp_path / "forged.ftm"
    forged.write_bytes(data[:-1] + bytes([data[-1] ^ 0x01]))
    line = _one_line(_publish(mosquitto, str(forged), "--device", "cam-2", "--public-key", str(public)), 1)
    assert "bad signature" in line
    assert _retained(mosquitto, "facetrack/cam-2/model") == []
    # The right key: sent (nobody answers: exit 2), and it is the retained model.
    sent = _publish(mosquitto, str(good), "--device", "cam-2", "--public-key", str(public))
    assert sent.returncode == 2 and "no device answered" in sent.stdout, sent.stderr
    assert "signature not checked" not in sent.stdout
    assert _retained(mosquitto, "facetrack/cam-2/model") == [data]


def test_publish_clear_removes_a_retained_model_sent_to_a_mistyped_device(
    signed: tuple[bytes, Path, Path], mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    data, _, _ = signed
    bundle = tmp_path / "model.ftm"
    bundle.write_bytes(data)
    sent = _publish(mosquitto, str(bundle), "--device", "kitchn")  # meant: kitchen
    assert sent.returncode == 2, sent.stderr
    assert "signature not checked" in sent.stdout  # said, since no public key was at hand
    assert _retained(mosquitto, "facetrack/kitchn/model") == [data]
    cleared = _publish(mosquitto, "--clear", "--device", "kitchn")
    assert cleared.returncode == 0, cleared.stderr
    assert "facetrack/kitchn/model" in cleared.stdout
    assert _retained(mosquitto, "facetrack/kitchn/model") == []
    # Neither or both of BUNDLE and --clear: a one-line error.
    line = _one_line(_publish(mosquitto, str(bundle), "--clear", "--device", "kitchn"), 1)
    assert "--clear" in line
