"""`facetrack-trainer` end to end on real photos: keygen, train, evaluate (accuracy, TAR, FAR on
identities the model never saw), negatives, the embedding cache, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.classifier.bundle import parse_bundle
from agent.classifier.classifier import REJECTED_CLASS
from tests.classifier_helpers import FACES
from trainer.cli import main

JOHNS = ["John_Salley", "John_Savage", "John_Schneider", "John_Shimkus", "John_Simm"]


def _link_split(src: Path, dst_train: Path, dst_test: Path, people: list[str], n_train: int) -> None:
    """The first n_train photos (sorted) of each person to train, the rest to test."""
    for person in people:
        photos = sorted((src / person).iterdir())
        for target, chosen in ((dst_train, photos[:n_train]), (dst_test, photos[n_train:])):
            (target / person).mkdir(parents=True, exist_ok=True)
            for photo in chosen:
                (target / person / photo.name).symlink_to(photo)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, assets_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("trainer")
    faces = assets_dir / FACES
    paths = {
        "root": root,
        "cache": tmp_path_factory.getbasetemp() / "embeddings",
        "keys": root / "keys",
        "train": root / "johns_train",
        "test": root / "johns_test",
        "known3_train": root / "known3_train",
        "known3_test": root / "known3_test",
        "impostors": root / "impostors",
    }
    _link_split(faces / "dlib_johns", paths["train"], paths["test"], JOHNS, 8)
    _link_split(faces / "dlib_johns", paths["known3_train"], paths["known3_test"], JOHNS[:3], 8)
    # Impostors: two Johns the 3-person model never saw, the knn people and the reference photos.
    paths["impostors"].mkdir()
    for person in JOHNS[3:]:
        (paths["impostors"] / person).symlink_to(faces / "dlib_johns" / person)
    for person in sorted((faces / "knn" / "train").iterdir()):
        (paths["impostors"] / person.name).symlink_to(person)
    (paths["impostors"] / "refs").symlink_to(faces / "refs")
    assert main(["keygen", "--out", str(paths["keys"])]) == 0
    return paths


def _opts(work: dict[str, Path], assets_dir: Path) -> list[str]:
    return ["--assets-dir", str(assets_dir), "--cache-dir", str(work["cache"]), "--quiet"]


def _evaluate(
    work: dict[str, Path], assets_dir: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> dict:  # type: ignore[type-arg]
    capsys.readouterr()
    assert main(["evaluate", *args, "--json", *_opts(work, assets_dir)]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_keygen(work: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    private, public = work["keys"] / "facetrack.key", work["keys"] / "facetrack.pub"
    assert private.stat().st_mode & 0o777 == 0o600
    assert b"BEGIN PRIVATE KEY" in private.read_bytes()
    assert b"BEGIN PUBLIC KEY" in public.read_bytes()
    capsys.readouterr()
    assert main(["keygen", "--out", str(work["keys"])]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err


def test_train_and_evaluate_dlib_johns(
    work: dict[str, Path], assets_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = work["root"] / "johns.ftm"
    args = ["train", str(work["train"]), "--out", str(bundle), "--key", str(work["keys"] / "facetrack.key")]
    assert main([*args, *_opts(work, assets_dir)]) == 0
    out = capsys.readouterr().out
    assert "confusion" in out and "threshold" in out and "estimated FAR" in out
    manifest = parse_bundle(bundle.read_bytes()).manifest
    assert manifest.labels == JOHNS
    report = json.loads((work["root"] / "johns.ftm.report.json").read_text())
    assert report["faces"] == 40 and report["skipped"] == []
    assert set(report["people"]) == set(JOHNS)
    assert len(report["confusion"]["matrix"]) == 5

    # Re-running reads every embedding from the content-hash cache.
    assert main([*args, *_opts(work, assets_dir)]) == 0
    assert "embeddings: 40 from cache, 0 computed" in capsys.readouterr().out

    result = _evaluate(work, assets_dir, capsys, str(bundle), str(work["test"]))
    assert result["faces"] == 15 and result["skipped"] == 0 and result["enrolled_faces"] == 15
    # Measured with the default embedder (SFace): 15/15 picked and 15/15 accepted.
    assert result["accuracy"] == 1.0
    assert result["true_accept_rate"] == 1.0
    assert result["misidentification_rate"] == 0.0


def test_false_accepts_on_unseen_identities(
    work: dict[str, Path], assets_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = work["root"] / "known3.ftm"
    key = str(work["keys"] / "facetrack.key")
    assert (
        main(
            ["train", str(work["known3_train"]), "--out", str(bundle), "--key", key, *_opts(work, assets_dir)]
        )
        == 0
    )
    result = _evaluate(
        work, assets_dir, capsys, str(bundle), str(work["known3_test"]), "--impostors", str(work["impostors"])
    )
    # 22 unseen Johns + 9 knn photos + 3 reference photos: none of them may be given a name.
    assert result["impostor_faces"] == 34
    assert result["false_accept_rate"] == 0.0, result["false_accepts"]
    assert result["enrolled_faces"] == 9
    assert result["true_accept_rate"] == 1.0  # measured 9/9

    # The same people trained with the knn people as explicit negatives.
    neg_bundle = work["root"] / "known3_neg.ftm"
    negatives = str(assets_dir / FACES / "knn" / "train")
    args = [
        "train",
        str(work["known3_train"]),
        "--out",
        str(neg_bundle),
        "--key",
        key,
        "--negatives",
        negatives,
    ]
    assert main([*args, *_opts(work, assets_dir)]) == 0
    manifest = parse_bundle(neg_bundle.read_bytes()).manifest
    assert REJECTED_CLASS in manifest.classes and REJECTED_CLASS not in manifest.labels
    assert manifest.training["negatives"] == 9
    result = _evaluate(
        work,
        assets_dir,
        capsys,
        str(neg_bundle),
        str(work["known3_test"]),
        "--impostors",
        str(work["impostors"]),
    )
    assert result["false_accept_rate"] == 0.0, result["false_accepts"]
    assert result["true_accept_rate"] == 1.0  # measured 9/9


def test_knn_set_with_one_photo_people(
    work: dict[str, Path], assets_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    faces = assets_dir / FACES / "knn"
    test_dir = work["root"] / "knn_test"
    # The knn test photos are labelled by file name; two hold two people each (skipped).
    by_name = {
        "alex_lacamoire1.jpg": "alex_lacamoire",
        "obama1.jpg": "obama",
        "johnsnow_test1.jpg": "kit_harington",
        "obama_and_biden.jpg": "obama",
        "kit_with_rose.jpg": "kit_harington",
    }
    for name, person in by_name.items():
        (test_dir / person).mkdir(parents=True, exist_ok=True)
        (test_dir / person / name).symlink_to(faces / "test" / name)
    bundle = work["root"] / "knn.ftm"
    key = str(work["keys"] / "facetrack.key")
    assert (
        main(["train", str(faces / "train"), "--out", str(bundle), "--key", key, *_opts(work, assets_dir)])
        == 0
    )
    report = json.loads((work["root"] / "knn.ftm.report.json").read_text())
    assert report["cv"].startswith("skipped")  # alex_lacamoire has one photo
    result = _evaluate(work, assets_dir, capsys, str(bundle), str(test_dir))
    assert result["skipped"] == 2
    assert all("2 faces" in s for s in result["skipped_files"])
    assert result["enrolled_faces"] == 3
    assert result["accuracy"] == 1.0
    assert result["true_accept_rate"] == 1.0


def test_bad_input_is_one_line(
    work: dict[str, Path], assets_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert (
        main(["train", str(work["train"]), "--out", str(work["root"] / "x.ftm"), *_opts(work, assets_dir)])
        == 1
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("facetrack-trainer: error: no signing key") and "\n" not in err
    # The missing dataset is named before the missing key.
    assert main(["train", str(work["root"] / "nope"), "--out", "x.ftm", *_opts(work, assets_dir)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"facetrack-trainer: error: {work['root'] / 'nope'} is not a directory"
    key = str(work["keys"] / "facetrack.key")
    assert (
        main(["train", str(work["root"] / "nope"), "--out", "x.ftm", "--key", key, *_opts(work, assets_dir)])
        == 1
    )
    assert "is not a directory" in capsys.readouterr().err
    junk = work["root"] / "junk.ftm"
    junk.write_bytes(b"\x80\x04\x95junk")
    assert main(["evaluate", str(junk), str(work["test"]), *_opts(work, assets_dir)]) == 1
    assert "pickle" in capsys.readouterr().err
    with pytest.raises(SystemExit) as shown:
        main(["train", "--help"])
    assert shown.value.code == 0
    assert "--far-target" in capsys.readouterr().out


def test_unreadable_photos_and_unusable_cache(
    work: dict[str, Path], assets_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An undecodable photo is skipped as "unreadable", never as "no face"; a cache that cannot be
    created or written is one error line and exit 1, whatever it did to the photos."""
    dataset = tmp_path / "people"
    _link_split(assets_dir / FACES / "dlib_johns", dataset, tmp_path / "unused", JOHNS[:2], 8)
    (dataset / JOHNS[0] / "garbage.jpg").write_bytes(b"garbage bytes")
    (dataset / JOHNS[1] / "empty.png").write_bytes(b"")
    key = str(work["keys"] / "facetrack.key")
    bundle = tmp_path / "two.ftm"
    cache = tmp_path / "cache"
    opts = ["--assets-dir", str(assets_dir), "--quiet"]
    train = ["train", str(dataset), "--out", str(bundle), "--key", key, *opts]
    capsys.readouterr()
    assert main([*train, "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    garbage = f"{dataset / JOHNS[0] / 'garbage.jpg'} (unreadable: not a decodable image (13 bytes))"
    empty = f"{dataset / JOHNS[1] / 'empty.png'} (unreadable: empty file)"
    assert f"skipped: {garbage}" in out and f"skipped: {empty}" in out
    assert "no face" not in out
    report = json.loads((tmp_path / "two.ftm.report.json").read_text())
    assert report["faces"] == 16 and sorted(report["skipped"]) == sorted([garbage, empty])

    # A cache path under a regular file: one line before any photo is embedded; the bundle
    # already there is left alone.
    blocker = tmp_path / "afile"
    blocker.write_text("not a directory")
    before = bundle.read_bytes()
    for command in (train, ["evaluate", str(bundle), str(dataset), "--json", *opts]):
        assert main([*command, "--cache-dir", str(blocker / "x")]) == 1, command[0]
        captured = capsys.readouterr()
        err = captured.err.strip()
        assert err.startswith(f"facetrack-trainer: error: cannot use embedding cache {blocker / 'x'}: ")
        assert "Not a directory" in err and "--no-cache" in err and "\n" not in err
        assert captured.out == ""
    assert bundle.read_bytes() == before

    # Writing an entry fails mid-run (its name is taken by a directory): one line, exit 1.
    (entries,) = [p for p in cache.iterdir() if p.is_dir()]
    taken = sorted(entries.glob("*.npz"))[0]
    taken.unlink()
    taken.mkdir()
    assert main([*train, "--cache-dir", str(cache)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"facetrack-trainer: error: cannot use embedding cache {cache}: {taken}: ")
    assert "\n" not in err
    assert not list(entries.glob(".*.tmp.npz")), "the temp file is cleaned up"


def test_evaluate_without_a_single_face_fails(
    work: dict[str, Path], assets_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import cv2
    import numpy as np

    bundle = tmp_path / "one.ftm"
    dataset = tmp_path / "people"
    _link_split(assets_dir / FACES / "dlib_johns", dataset, tmp_path / "unused", JOHNS[:2], 8)
    opts = ["--assets-dir", str(assets_dir), "--cache-dir", str(work["cache"]), "--quiet"]
    key = str(work["keys"] / "facetrack.key")
    assert main(["train", str(dataset), "--out", str(bundle), "--key", key, *opts]) == 0
    faceless = tmp_path / "faceless" / JOHNS[0]
    faceless.mkdir(parents=True)
    assert cv2.imwrite(str(faceless / "wall.png"), np.full((240, 320, 3), 128, np.uint8))
    (faceless / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    capsys.readouterr()
    assert main(["evaluate", str(bundle), str(faceless.parent), "--json", *opts]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == (
        "facetrack-trainer: error: no usable face in any of 2 photo(s), nothing measured "
        "(1 no face, 1 unreadable)"
    )
