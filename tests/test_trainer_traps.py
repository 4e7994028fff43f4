"""Issue 22's smaller trainer traps, each as a user meets it: a real `facetrack-trainer` process,
real keys, a real mosquitto, real photos where photos matter.

Bundles for `publish`/`evaluate --json` are signed classifiers trained on synthetic 128-d vectors:
what is checked here is the command's behaviour, not what the classifier says.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from agent.devtools.mosquitto import MosquittoBroker
from agent.runtime.key_files import write_key_pair
from trainer.training import train

REPO_ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("sklearn", "skops", "cv2", "scipy", "matplotlib", "numpy")


def _trainer(*args: str, stdout: int = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainer.cli", *args],
        cwd=REPO_ROOT,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
    )


def _one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(bundle file, its public key, its private key)."""
    keys = tmp_path_factory.mktemp("keys")
    private_path, public, private = write_key_pair(keys, "fleet")
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(3, 128))
    x = np.vstack([c + 0.05 * rng.normal(size=(4, 128)) for c in centres])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    result = train(x, ["ada"] * 4 + ["bob"] * 4 + ["cy"] * 4, far_target=0.01)
    bundle = keys / "model.ftm"
    embedder = "sface-int8bq-128-arcface112-v1"  # the default config's, which evaluate checks
    bundle.write_bytes(result.sign(embedder_id=embedder, dim=128, private_key=private))
    return bundle, public, private_path


# -- publish: the signing key and the TLS key are not one flag ---------------------------------------


def test_publish_old_key_flag_says_what_it_means_now(signed: tuple[Path, Path, Path]) -> None:
    bundle, _, private = signed
    line = _one_line(_trainer("publish", str(bundle), "--device", "cam1", "--key", str(private)), 2)
    assert "--tls-key" in line and "--public-key" in line and "train" in line, line
    line = _one_line(_trainer("publish", str(bundle), "--device", "cam1", "--cert", "c.crt"), 2)
    assert "--tls-cert" in line, line
    line = _one_line(_trainer("publish", str(bundle), "--device", "cam1", "--ca", "ca.crt"), 2)
    assert "--tls-ca" in line, line


def test_publish_imports_neither_sklearn_nor_skops_nor_numpy(
    signed: tuple[Path, Path, Path], mosquitto: MosquittoBroker
) -> None:
    """The signature is checked with the key, the bundle sent, and none of the heavy libraries
    that cost seconds to import (9 s of publish's 7-11 s on this machine) was loaded."""
    bundle, public, _ = signed
    script = textwrap.dedent(
        f"""
        import sys
        from trainer.cli import main
        code = main(["publish", {str(bundle)!r}, "--device", "cam-i", "--public-key", {str(public)!r},
                     "--broker", "{mosquitto.host}:{mosquitto.port}", "--wait", "0.2"])
        print("exit", code)
        print("loaded", sorted(m for m in {HEAVY!r} if m in sys.modules))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert "exit 2" in done.stdout and "retained to facetrack/cam-i/model" in done.stdout, done.stderr
    assert "signature not checked" not in done.stdout
    assert "loaded []" in done.stdout, done.stdout


# -- --json | head: the reader leaving is not a traceback --------------------------------------------


def _closed_reader(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the trainer with stdout a pipe whose reader has already gone, as `... | head -0`."""
    child = subprocess.Popen(
        [sys.executable, "-m", "trainer.cli", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()
    with child.stderr:
        err = child.stderr.read()
    code = child.wait(timeout=300)
    return subprocess.CompletedProcess(child.args, code, "", err)


def test_publish_json_into_a_closed_pipe_ends_quietly(
    signed: tuple[Path, Path, Path], mosquitto: MosquittoBroker
) -> None:
    bundle, _, _ = signed
    done = _closed_reader(
        "publish", str(bundle), "--device", "cam-p", "--json",
        "--broker", f"{mosquitto.host}:{mosquitto.port}", "--wait", "0.2",
    )  # fmt: skip
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert done.returncode == 141, done.stderr


def test_evaluate_json_into_a_closed_pipe_ends_quietly(
    signed: tuple[Path, Path, Path], assets_dir: Path, tmp_path: Path
) -> None:
    bundle, _, _ = signed
    test_dir = tmp_path / "test"
    shutil.copytree(assets_dir / "data/faces/knn/train/obama", test_dir / "obama")
    done = _closed_reader(
        "evaluate", str(bundle), str(test_dir), "--json", "--quiet", "--no-cache",
        "--plot", str(tmp_path / "e.png"),
    )  # fmt: skip
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert done.returncode == 141, done.stderr


# -- train: fail before the work, and name what is wrong ---------------------------------------------


def _photos(assets_dir: Path, root: Path) -> Path:
    shutil.copytree(assets_dir / "data/faces/knn/train", root)
    return root


def test_train_out_unwritable_fails_before_training(
    signed: tuple[Path, Path, Path], assets_dir: Path, tmp_path: Path
) -> None:
    """--assets-dir points nowhere: had training started, the missing model would be the error."""
    _, _, private = signed
    photos = _photos(assets_dir, tmp_path / "photos")
    done = _trainer(
        "train", str(photos), "--out", "/proc/x.ftm", "--key", str(private),
        "--assets-dir", str(tmp_path / "no-models"), "--quiet", "--no-cache",
    )  # fmt: skip
    line = _one_line(done, 1)
    assert "cannot write --out /proc/x.ftm" in line, line
    assert "skipped:" not in done.stdout


def test_train_names_an_empty_person_folder(
    signed: tuple[Path, Path, Path], assets_dir: Path, tmp_path: Path
) -> None:
    _, _, private = signed
    photos = _photos(assets_dir, tmp_path / "photos")
    (photos / "lin-manuel-miranda").mkdir()
    done = _trainer(
        "train", str(photos), "--out", str(tmp_path / "m.ftm"), "--key", str(private),
        "--assets-dir", str(tmp_path / "no-models"), "--quiet", "--no-cache",
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if "lin-manuel-miranda" in line]
    assert len(lines) == 1 and "holds no photo" in lines[0] and "not enrolled" in lines[0], done.stdout


def test_a_single_photo_person_is_named() -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 128))
    x = np.vstack([centres[0], centres[1] + 0.05 * rng.normal(size=(3, 128)), centres[2]])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    report = train(x, ["zed", "ada", "ada", "ada", "amy"]).report
    assert "amy, zed" in report["cv"] and "amy, zed" in report["probabilities"], report
