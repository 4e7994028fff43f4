"""Issue 22, What to build 3: the trainer refuses what it cannot stand behind.

Real photos (knn/train plus the lin-manuel-miranda reference, as in the README quick start), the
real detector and embedder, a real signing key. One photo of obama copied into biden's folder is
the misfiling a user makes; on landed main it gave a bundle with TAR 0.0 and exit 0, and hygiene
called 4 of the 6 people inconsistent.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from agent.config import load_config
from agent.runtime.key_files import write_key_pair
from trainer import hygiene
from trainer.cli import main
from trainer.dataset import FaceEmbedding, labelled, scan_people, split_usable

FACES = "data/faces"


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, assets_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("refusal")
    clean = root / "clean"
    shutil.copytree(assets_dir / FACES / "knn/train", clean)
    (clean / "lin-manuel-miranda").mkdir()
    shutil.copy(assets_dir / FACES / "refs/lin-manuel-miranda.png", clean / "lin-manuel-miranda")
    misfiled = root / "misfiled"
    shutil.copytree(clean, misfiled)
    shutil.copy(clean / "obama/obama.jpg", misfiled / "biden/copy_obama.jpg")
    _, _, _ = write_key_pair(root / "keys", "t")
    return {"root": root, "clean": clean, "misfiled": misfiled, "key": root / "keys/t.key"}


def _opts(photos: dict[str, Path], assets_dir: Path) -> list[str]:
    return ["--key", str(photos["key"]), "--assets-dir", str(assets_dir), "--quiet",
            "--cache-dir", str(photos["root"] / "cache")]  # fmt: skip


def test_hygiene_names_the_one_misfiled_photo_and_no_inconsistent_person(
    photos: dict[str, Path], assets_dir: Path
) -> None:
    config = load_config(None, assets_dir=assets_dir)
    embedding = FaceEmbedding.from_config(config, cache_dir=photos["root"] / "cache", pad=0.5)
    usable, _ = split_usable(embedding.samples(labelled(scan_people(photos["misfiled"])), progress=False))
    x = np.array([s.embedding for s in usable], dtype=np.float64)
    found = hygiene.check(x, [str(s.label) for s in usable], [s.path for s in usable])
    assert [(Path(m.photo).name, m.folder, m.closer_to) for m in found.misfiled] == [
        ("copy_obama.jpg", "biden", "obama")
    ]
    assert Path(found.misfiled[0].closest_photo).name == "obama.jpg"
    assert found.inconsistent == []
    assert any("the same photo as" in line and "copy_obama.jpg" in line for line in found.lines())


def test_a_bundle_below_the_floor_is_not_written_and_the_photo_is_named(
    photos: dict[str, Path], assets_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = photos["root"] / "hyg.ftm"
    args = ["train", str(photos["misfiled"]), "--out", str(bundle), *_opts(photos, assets_dir)]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "not written" in err and "--min-tar 0.5" in err, err
    assert "biden/copy_obama.jpg" in err and "--force" in err, err
    assert not bundle.exists() and not bundle.with_name("hyg.ftm.report.json").exists()
    # --force writes it, and says so.
    assert main([*args, "--force"]) == 0
    assert "written anyway (--force)" in capsys.readouterr().out
    assert bundle.exists()


def test_the_clean_folders_pass_the_floor(
    photos: dict[str, Path], assets_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = photos["root"] / "clean.ftm"
    assert main(["train", str(photos["clean"]), "--out", str(bundle), *_opts(photos, assets_dir)]) == 0
    out = capsys.readouterr().out
    assert "suspicious:" not in out and "TAR 1.0000 over 8 faces" in out, out


def test_negatives_give_a_real_threshold_reported_like_any_other(
    photos: dict[str, Path], assets_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """knn/train with the dlib Johns as --negatives: the SVM's negatives class catches every
    left-out face, and on landed main the threshold fell to 0.0000 behind it ("highest unseen-identity
    face -1.0000"), so a stranger unlike the negatives would be named at any similarity."""
    bundle = photos["root"] / "neg.ftm"
    negatives = assets_dir / FACES / "dlib_johns"
    args = ["train", str(photos["clean"]), "--negatives", str(negatives), "--out", str(bundle)]
    assert main([*args, *_opts(photos, assets_dir)]) == 0
    out = capsys.readouterr().out
    assert "__rejected__" not in out and "(negatives)" in out, out
    report = json.loads(bundle.with_name("neg.ftm.report.json").read_text())
    highest = report["highest_impostor_similarity"]
    assert 0.0 < highest < report["threshold"] < report["lowest_genuine_similarity"], report
    assert report["estimated_far"] == 0.0 and report["estimated_tar"] == 1.0
    assert all(row["threshold"] > 0.0 for row in report["tar_at_far"].values()), report["tar_at_far"]
