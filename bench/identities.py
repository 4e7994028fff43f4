"""The identity sets in shared/ as one held-out protocol, for the recognition benchmarks.

The issue's 40-person set (30 enrolled with 5 photos each, 10 unseen) is not in shared/. This is
the most faithful version the shared data allows:

- enrolled people, each split into enrolment photos and held-out photos:
  - the 5 dlib "johns" (11 chips each): the first 5 enrolled, the other 6 held out;
  - Lin-Manuel Miranda: his reference photo + 3 frames of hamilton_clip.mp4 (90-120) enrolled,
    5 later frames (150-210) held out;
  - obama, kit_harington, alex_lacamoire (knn examples): the knn training photos (+ the reference
    photo where there is one) enrolled, the knn test photo of that person held out;
- unseen people, never enrolled: biden and rose_leslie (knn training photos) and every face found
  in dlib's 9 labelled group photos and bald_guys.jpg (each face a different stranger).

Photos are materialised as files (symlinks, or JPEGs for the video frames) under a work folder so
the trainer's own `FaceEmbedding` embeds them exactly as `facetrack-trainer train` would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from trainer.dataset import FaceEmbedding, list_images

JOHNS = ["John_Salley", "John_Savage", "John_Schneider", "John_Shimkus", "John_Simm"]
# Frames 90-210 show him on stage (0-60 show the audience, 240-270 the Obamas in it).
HAMILTON_ENROL = [90, 105, 120]
HAMILTON_HELD_OUT = [150, 165, 180, 195, 210]
KNN_ENROLLED = {
    "obama": "obama1.jpg",
    "kit_harington": "johnsnow_test1.jpg",
    "alex_lacamoire": "alex_lacamoire1.jpg",
}
KNN_REFS = {"obama": "obama_small.jpg", "alex_lacamoire": "alex-lacamoire.png"}
KNN_UNSEEN = ["biden", "rose_leslie"]
GROUP_PHOTOS = "data/photos/dlib_faces"


@dataclass
class Protocol:
    """Folders on disk: enrol/<person>/, held_out/<person>/, unseen/<person>/ and strangers/."""

    root: Path
    enrol: Path
    held_out: Path
    unseen: Path
    strangers: Path


@dataclass
class Embedded:
    """Single-face embeddings per split (rows L2-normalised) and their labels."""

    enrol_x: npt.NDArray[np.float64]
    enrol_y: list[str]
    held_x: npt.NDArray[np.float64]
    held_y: list[str]
    unseen_x: npt.NDArray[np.float64]
    unseen_groups: list[str]
    skipped: list[str] = field(default_factory=list)


def _link(target: Path, source: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to(source.resolve())


def _frame(video: Path, index: int) -> npt.NDArray[np.uint8]:
    capture = cv2.VideoCapture(str(video))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise SystemExit(f"cannot read frame {index} of {video}: run `make setup`")
    return np.asarray(frame, dtype=np.uint8)


def build(assets: Path, root: Path) -> Protocol:
    """Lay the protocol's folders out under `root` (idempotent)."""
    faces = assets / "data/faces"
    proto = Protocol(root, root / "enrol", root / "held_out", root / "unseen", root / "strangers")
    for person in JOHNS:
        photos = list_images(faces / "dlib_johns" / person)
        for photo in photos[:5]:
            _link(proto.enrol / person / photo.name, photo)
        for photo in photos[5:]:
            _link(proto.held_out / person / photo.name, photo)
    lmm = "lin_manuel_miranda"
    _link(proto.enrol / lmm / "ref.png", faces / "refs/lin-manuel-miranda.png")
    video = assets / "data/video/hamilton_clip.mp4"
    for split, indices in ((proto.enrol, HAMILTON_ENROL), (proto.held_out, HAMILTON_HELD_OUT)):
        for index in indices:
            path = split / lmm / f"frame{index:03d}.jpg"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(path), _frame(video, index))
    for person, test_photo in KNN_ENROLLED.items():
        for photo in list_images(faces / "knn/train" / person):
            _link(proto.enrol / person / photo.name, photo)
        if person in KNN_REFS:
            _link(proto.enrol / person / KNN_REFS[person], faces / "refs" / KNN_REFS[person])
        _link(proto.held_out / person / test_photo, faces / "knn/test" / test_photo)
    for person in KNN_UNSEEN:
        for photo in list_images(faces / "knn/train" / person):
            _link(proto.unseen / person / photo.name, photo)
    for photo in list_images(assets / GROUP_PHOTOS):
        if photo.name != "dogs.jpg":
            _link(proto.strangers / photo.name, photo)
    return proto


def _single(
    emb: FaceEmbedding, folder: Path, skipped: list[str]
) -> tuple[list[npt.NDArray[np.float32]], list[str]]:
    xs: list[npt.NDArray[np.float32]] = []
    ys: list[str] = []
    for person in sorted(p for p in folder.iterdir() if p.is_dir()):
        for sample in emb.samples([(p, person.name) for p in list_images(person)], progress=False):
            if sample.embedding is None:
                skipped.append(f"{sample.path.relative_to(folder.parent)} ({sample.faces} faces)")
                continue
            xs.append(sample.embedding)
            ys.append(person.name)
    return xs, ys


def embed(proto: Protocol, emb: FaceEmbedding) -> Embedded:
    """Embed every split; each face in a group photo becomes its own unseen identity."""
    skipped: list[str] = []
    ex, ey = _single(emb, proto.enrol, skipped)
    hx, hy = _single(emb, proto.held_out, skipped)
    ux, ug = _single(emb, proto.unseen, skipped)
    for photo in list_images(proto.strangers):
        for i, row in enumerate(emb.faces_in(photo)):
            ux.append(row)
            ug.append(f"{photo.stem}#{i}")

    def stack(rows: list[npt.NDArray[np.float32]]) -> npt.NDArray[np.float64]:
        return np.array(rows, dtype=np.float64).reshape(-1, emb.dim)

    return Embedded(stack(ex), ey, stack(hx), hy, stack(ux), ug, skipped)
