"""`facetrack-trainer collect`, `cluster`, `name`, `merge` and `discard` on real photos and a real
inbox layout: their output, the files they leave, and one clear line for every bad input."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from trainer.cli import main
from trainer.inbox import Inbox, InboxError, parse_message, read_records


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def johns(assets_dir: Path, tmp_path: Path) -> Path:
    """dlib's johns (5 people x 11 photos) as one mixed folder of photos, names kept in the path."""
    root = tmp_path / "pile"
    shutil.copytree(assets_dir / "data" / "faces" / "dlib_johns", root)
    return root


def test_cluster_json_groups_a_pile_of_photos_into_its_people(
    johns: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "cluster", str(johns), "--json", "--quiet", "--no-cache")
    assert code == 0, err
    document = json.loads(out)  # exactly one JSON document on stdout
    assert list(document) == ["groups", "ungrouped"]
    groups = document["groups"]
    assert [list(g) for g in groups] == [["id", "members"]] * len(groups)
    sizes = [len(g["members"]) for g in groups]
    assert sizes == sorted(sizes, reverse=True)
    # Every photo once, as given under DIR; each group is one person (its folder name).
    members = [m for g in groups for m in g["members"]] + document["ungrouped"]
    assert sorted(members) == sorted(p.relative_to(johns).as_posix() for p in johns.rglob("*.jpg"))
    for group in groups:
        assert len({m.split("/")[0] for m in group["members"]}) == 1, group
    # bench/cluster.py: precision 1.000, recall 1.000 on this set at the default cut.
    assert len(groups) == 5 and document["ungrouped"] == []
    saved = json.loads((johns / ".groups" / "groups.json").read_text())
    assert [g["id"] for g in saved["groups"]] == [g["id"] for g in groups]
    assert all((johns / g["sheet"]).is_file() for g in saved["groups"])


def test_name_merge_discard(johns: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "cluster", str(johns), "--quiet", "--no-cache")[0] == 0
    groups = json.loads((johns / ".groups" / "groups.json").read_text())["groups"]
    person = groups[0]["members"][0].split("/")[0]
    photos = tmp_path / "photos"
    code, out, err = _run(
        capsys, "name", "g1", "--as", "john", "--photos", str(photos), "--from", str(johns), "--best", "4"
    )
    assert code == 0, err
    copied = sorted(p.name for p in (photos / "john").iterdir())
    assert len(copied) == 4 and all(name.startswith(person + "__") for name in copied)
    code, out, err = _run(capsys, "merge", "g2", "g3", "--from", str(johns))
    assert code == 0 and "now holds 22 faces" in out, out + err
    code, out, err = _run(capsys, "discard", "g4", "--from", str(johns))
    assert code == 0, err
    # Not an inbox: discarding drops the group, never the user's photos.
    assert "0 face crops deleted" in out and len(list(johns.rglob("*.jpg"))) == 55
    left = json.loads((johns / ".groups" / "groups.json").read_text())["groups"]
    assert [g["id"] for g in left] == ["g2", "g1", "g5"] and left[1]["named"] == "john"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["name", "g1", "--as", "../evil", "--photos", "P"], "is not a usable person name"),
        (["name", "g1", "--as", "unknown", "--photos", "P"], "is not a usable person name"),
        (["name", "g9", "--as", "alice", "--photos", "P"], "no group g9 (groups: g1"),
        (["merge", "g1", "--from", "D"], "merge needs two or more groups"),
        (["discard", "g7"], "no group g7"),
        (["cluster", "missing-dir"], "missing-dir is not a directory"),
        (["cluster", "D", "--max-distance", "0"], "--max-distance 0"),
        (["cluster", "D", "--model", "nope.ftm"], "--model nope.ftm"),
        (["collect", "--for", "0"], "--for 0: give a number of seconds above 0"),
        (["collect", "--broker", "host:port"], "broker 'host:port': port must be a number"),
    ],
)
def test_bad_inputs_get_one_line(
    args: list[str],
    message: str,
    johns: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _run(capsys, "cluster", str(johns), "--quiet", "--no-sheets", "--no-cache")[0] == 0
    args = [str(johns) if a == "D" else a for a in args]
    if args[0] in ("name", "discard") and "--from" not in args:
        args += ["--from", str(johns)]
    code, _, err = _run(capsys, *args)
    assert code in (1, 2)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("facetrack-trainer: error: ") and message in lines[0], err


def test_name_before_cluster_says_what_to_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(
        capsys, "name", "g1", "--as", "alice", "--photos", str(tmp_path / "p"), "--from", str(tmp_path)
    )
    assert code == 2 and "run `facetrack-trainer cluster" in err


def test_cluster_a_folder_without_faces(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cv2.imwrite(str(tmp_path / "grey.png"), np.full((200, 200, 3), 128, dtype=np.uint8))
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    code, _, err = _run(capsys, "cluster", str(tmp_path), "--quiet", "--no-cache")
    assert code == 1
    assert "skipped" in err and "grey.png (no face)" in err and "broken.jpg (unreadable" in err
    assert "no usable face in" in err.strip().splitlines()[-1]


def _message(face_id: str, device: str = "cam1", jpeg: bytes | None = None) -> bytes:
    ok, encoded = cv2.imencode(".jpg", np.zeros((16, 16, 3), dtype=np.uint8))
    assert ok
    body = {
        "v": 1, "id": face_id, "device": device, "track_id": 3, "frame": 5, "media_s": 0.2, "ts": "t",
        "label": "unknown", "confidence": 0.0, "quality": {"score": 0.5}, "embedder": "e",
        "embedding": [0.1, 0.2],
        "jpeg": base64.b64encode(jpeg if jpeg is not None else encoded.tobytes()).decode(),
    }  # fmt: skip
    return json.dumps(body).encode()


def test_inbox_drops_duplicates_and_refuses_bad_messages(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "inbox")
    assert inbox.add(_message("a1"))
    assert not inbox.add(_message("a1")), "the same message twice (a lost PUBACK)"
    assert not inbox.add(_message("a2")), "the same crop from the same device under a new id"
    assert inbox.add(_message("b1", device="cam2")), "the same pixels from another device is another face"
    with pytest.raises(InboxError, match="in use by another"):
        Inbox(tmp_path / "inbox")
    inbox.close()
    again = Inbox(tmp_path / "inbox")
    assert len(again) == 2 and not again.add(_message("a1")), "duplicates are known after a restart"
    for bad in (
        b"{not json",
        _message("../../etc"),
        _message("x1", device="cam/1"),
        _message("x2", jpeg=b"GIF89a"),
        json.dumps({"id": "x3"}).encode(),
    ):
        with pytest.raises(InboxError):
            again.add(bad)
    again.close()
    records = read_records(tmp_path / "inbox")
    assert [r["path"] for r in records] == ["faces/cam1/a1.jpg", "faces/cam2/b1.jpg"]
    assert parse_message(_message("z9"))[0]["id"] == "z9"
