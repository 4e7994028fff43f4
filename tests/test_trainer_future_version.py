"""Issue 24 item 6, the trainer's half: it refuses to sign a version far in the future (a bundle
dated 2999 blocked every later update on the devices), with one line and a failing exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.robustness_helpers import REPO_ROOT


def trainer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from trainer.cli import main; sys.exit(main())", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_train_refuses_a_version_far_in_the_future(tmp_path: Path) -> None:
    assert trainer("keygen", "--out", str(tmp_path / "keys")).returncode == 0
    photos = REPO_ROOT / "models/assets/data/faces/knn/train"
    result = trainer(
        "train", str(photos), "--out", str(tmp_path / "m.ftm"), "--key", str(tmp_path / "keys/facetrack.key"),
        "--model-version", "29990101T000000Z",
    )  # fmt: skip
    assert result.returncode != 0, result.stderr  # the code of its other user errors (1 today)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "29990101T000000Z" in lines[0] and "ahead" in lines[0], lines
    assert not (tmp_path / "m.ftm").exists()
