"""`facetrack-trainer cluster` on a pile of real phone-like photos: every face of a group photo is
a member of its own (PATH#k), and the shared labelled faces group with the precision the issue
asks for, measured here on the grouping the command printed."""

from __future__ import annotations

import json
import shutil
from contextlib import redirect_stdout
from io import StringIO
from itertools import combinations
from pathlib import Path
from typing import Any

import cv2
import pytest

from trainer.cli import main
from trainer.groups import crop_name

# Labelled by file name in the shared set (data/faces/knn/test, data/faces/refs).
_NAMED = {
    "alex_lacamoire1.jpg": "alex_lacamoire",
    "johnsnow_test1.jpg": "kit_harington",
    "obama1.jpg": "obama",
    "alex-lacamoire.png": "alex_lacamoire",
    "obama_small.jpg": "obama",
    "lin-manuel-miranda.png": "lin",
}
_TWO_FACES = ["kit_with_rose.jpg", "obama_and_biden.jpg"]


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def pile(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """knn's people, the references, and strangers' group photos, all in one folder tree."""
    root = tmp_path_factory.mktemp("pile")
    data = assets_dir / "data"
    shutil.copytree(data / "faces" / "knn" / "train", root / "train")
    for name in [*_NAMED, *_TWO_FACES]:
        source = data / "faces" / ("refs" if (data / "faces" / "refs" / name).exists() else "knn/test") / name
        shutil.copy(source, root / name)
    strangers = root / "strangers"
    strangers.mkdir()
    for photo in sorted((data / "photos" / "dlib_faces").glob("20*.jpg")):
        shutil.copy(photo, strangers / photo.name)
    return root


@pytest.fixture(scope="module")
def document(pile: Path) -> dict[str, Any]:
    """What `cluster --json` printed for the pile (run once for the module's tests)."""
    out = StringIO()
    with redirect_stdout(out):
        code = main(["cluster", str(pile), "--json", "--quiet", "--no-cache", "--no-sheets"])
    assert code == 0
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def _identity(member: str) -> str | None:
    """Who a member is, where the shared data says so; None for the two-face test photos."""
    path, _, k = member.partition("#")
    parts = path.split("/")
    if parts[0] == "train":
        return parts[1]
    if parts[0] == "strangers":
        return f"stranger/{path}#{k}"  # each face in a group photo of strangers is its own person
    return _NAMED.get(path)


def test_every_face_of_a_group_photo_is_a_member(pile: Path, document: dict[str, Any]) -> None:
    assert list(document) == ["groups", "ungrouped"]
    members = [m for g in document["groups"] for m in g["members"]] + document["ungrouped"]
    assert len(members) == len(set(members))
    for photo in _TWO_FACES:  # two faces each: PHOTO#1 and PHOTO#2, left to right
        assert sorted(m for m in members if m.startswith(photo)) == [f"{photo}#1", f"{photo}#2"]
    # Two faces of one photo are two people: never in one group. Here each joins a group (seen:
    # kit_with_rose #1 with rose_leslie, #2 with kit_harington; obama_and_biden #1 biden, #2 obama).
    for group in document["groups"]:
        photos = [m.partition("#")[0] for m in group["members"] if "#" in m]
        assert len(photos) == len(set(photos)), group
    for photo in _TWO_FACES:
        joined = [g for g in document["groups"] if any(m.startswith(photo) for m in g["members"])]
        assert len(joined) == 2, joined
    # A single-face photo keeps its plain path.
    assert "obama1.jpg" in members and "train/biden/biden.jpg" in members
    # Every path names a file under DIR, or a face of one.
    assert all((pile / m.partition("#")[0]).is_file() for m in members)


def test_the_labelled_pile_groups_with_precision_095(document: dict[str, Any]) -> None:
    groups = [g["members"] for g in document["groups"]]
    everyone = [m for g in groups for m in g] + document["ungrouped"]
    labelled = [m for m in everyone if _identity(m) is not None]
    group_of = {m: i for i, g in enumerate(groups) for m in g}
    predicted = correct = true = 0
    for a, b in combinations(labelled, 2):
        same = _identity(a) == _identity(b)
        together = a in group_of and group_of.get(a) == group_of.get(b)
        true += same
        predicted += together
        correct += same and together
    assert true == 14  # obama 4, alex 3, kit 3, biden 2, rose 2 photos: 6 + 3 + 3 + 1 + 1 pairs
    precision = correct / predicted
    recall = correct / true
    # bench/cluster.py, default rule on this set: precision 1.000, recall 1.000.
    assert precision >= 0.95, (precision, groups)
    assert recall >= 0.85, (recall, groups)


def test_a_named_face_of_a_group_photo_is_its_crop(
    pile: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "cluster", str(pile), "--quiet", "--no-cache")
    assert code == 0, err
    saved = json.loads((pile / ".groups" / "groups.json").read_text())
    assert saved["max_distance"] == 0.56 and saved["min_height"] == 40.0
    group = next(g for g in saved["groups"] if any("#" in m for m in g["members"]))
    crops = [b for b in group["best"] if b.startswith(".groups/faces/")]
    assert crops and all((pile / c).is_file() for c in crops)
    assert len(crops) == sum("#" in m for m in group["members"])
    photos = tmp_path / "photos"
    code, _, err = _run(
        capsys,
        "name",
        group["id"],
        "--as",
        "someone",
        "--photos",
        str(photos),
        "--from",
        str(pile),
        "--best",
        "50",
    )
    assert code == 0, err
    copied = sorted((photos / "someone").iterdir())
    assert len(copied) == len(group["members"])
    # The crop of a face of a two-face photo is that face, not the photo it came from.
    for member in group["members"]:
        if "#" in member:
            photo = cv2.imread(str(pile / member.partition("#")[0]))
            crop = cv2.imread(str(pile / crop_name(member)))
            assert photo is not None and crop is not None
            assert crop.shape[0] * crop.shape[1] < photo.shape[0] * photo.shape[1] / 2
