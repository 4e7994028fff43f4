"""HD test scenes built from the shared assets at run time (never stored): a real background, faces
pasted at chosen heights on synthetic person boxes, the demo clip placed in a 1920x1080 frame, and
a still scene (one frame held, with sensor noise).

Used by bench/hd.py and the tests; every builder is deterministic (seeded).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.vision.types import BBox, FaceDetector, Frame

HD = (1920, 1080)


def read_frames(video: Path, count: int, start: int = 0) -> list[Frame]:
    capture = cv2.VideoCapture(str(video))
    if start:
        capture.set(cv2.CAP_PROP_POS_FRAMES, start)
    frames: list[Frame] = []
    while len(frames) < count:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(np.asarray(image, dtype=np.uint8))
    capture.release()
    if not frames:
        raise RuntimeError(f"{video}: no frames decoded")
    return frames


def cover(image: Frame, size: tuple[int, int] = HD) -> Frame:
    """`image` scaled to cover `size` and cropped at the centre (no distortion)."""
    width, height = size
    scale = max(width / image.shape[1], height / image.shape[0])
    resized = cv2.resize(
        image, (round(image.shape[1] * scale), round(image.shape[0] * scale)), interpolation=cv2.INTER_CUBIC
    )
    y0 = (resized.shape[0] - height) // 2
    x0 = (resized.shape[1] - width) // 2
    return np.ascontiguousarray(resized[y0 : y0 + height, x0 : x0 + width])


def empty_background(vtest: Path, size: tuple[int, int] = HD) -> Frame:
    """vtest.avi's campus path without its pedestrians (per-pixel median of 60 frames spread over
    the clip), upscaled to cover `size`: a real background with nobody on it."""
    capture = cv2.VideoCapture(str(vtest))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or 795
    frames = []
    for index in np.linspace(0, total - 1, 60).astype(int):
        capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, image = capture.read()
        if ok:
            frames.append(image)
    capture.release()
    median = np.median(np.stack(frames), axis=0).astype(np.uint8)
    return cover(median, size)


@dataclass(frozen=True, slots=True)
class PastedFace:
    label: str
    source: str
    face: BBox
    # A person-shaped box under the face (3 face heights wide, 7.5 tall, clipped to the frame):
    # what the person detector would give for someone standing there.
    person: BBox


@dataclass(frozen=True, slots=True)
class Chip:
    """A labelled face photo and where BlazeFace boxes the face in it (shares of the side)."""

    label: str
    source: str
    image: Frame
    height_share: float
    width_share: float
    cx_share: float
    cy_share: float


def measure_chips(detector: FaceDetector, chips: list[tuple[str, str, Frame]]) -> list[Chip]:
    """Each square chip with its face box as the detector sees it at full resolution (on the chip
    padded with its own border); chips where it finds no face are left out. Face heights in the
    benchmarks are then in the unit the quality gate uses: the detector's box height."""
    out: list[Chip] = []
    for label, source, image in chips:
        side = image.shape[0]
        border = int(side * 0.6)
        padded = np.asarray(cv2.copyMakeBorder(image, *(border,) * 4, cv2.BORDER_REPLICATE))
        faces = detector.detect(padded)
        if not faces:
            continue
        box = max(faces, key=lambda f: f.score).box
        out.append(
            Chip(
                label,
                source,
                image,
                box.height / side,
                box.width / side,
                ((box.x1 + box.x2) / 2 - border) / side,
                ((box.y1 + box.y2) / 2 - border) / side,
            )
        )
    return out


def paste_faces(
    background: Frame,
    chips: list[Chip],
    face_height: int,
    seed: int = 0,
) -> Iterator[tuple[Frame, list[PastedFace]]]:
    """Frames with the chips pasted so their face is `face_height` px tall, as many per frame as
    fit side by side on one row of synthetic people (each in its own column, heads at random
    heights). Yields (frame, faces) until every chip was used once."""
    rng = np.random.default_rng(seed)
    frame_w, frame_h = background.shape[1], background.shape[0]
    column = int(face_height * 4.5)
    per_frame = max(1, (frame_w - column // 2) // column)
    for start in range(0, len(chips), per_frame):
        frame = background.copy()
        faces: list[PastedFace] = []
        for slot, chip in enumerate(chips[start : start + per_frame]):
            side = max(2, round(face_height / chip.height_share))
            resized = cv2.resize(chip.image, (side, side), interpolation=cv2.INTER_AREA)
            cx = column // 2 + slot * column + column // 4
            body_h = 7.5 * face_height
            top_max = max(0, int(frame_h - body_h))
            head_top = int(rng.integers(face_height // 2, max(face_height // 2 + 1, top_max + 1)))
            y0 = min(head_top, frame_h - side)
            x0 = min(max(0, int(cx - side * chip.cx_share)), frame_w - side)
            frame[y0 : y0 + side, x0 : x0 + side] = resized
            fcx, fcy = x0 + side * chip.cx_share, y0 + side * chip.cy_share
            half_w, half_h = side * chip.width_share / 2, face_height / 2
            face = BBox(fcx - half_w, fcy - half_h, fcx + half_w, fcy + half_h)
            top = face.y1 - 0.15 * face_height
            person = BBox(
                max(0.0, fcx - 1.5 * face_height),
                max(0.0, top),
                min(float(frame_w), fcx + 1.5 * face_height),
                min(float(frame_h), top + body_h),
            )
            faces.append(PastedFace(chip.label, chip.source, face, person))
        yield frame, faces


def johns_chips(assets: Path) -> list[tuple[str, str, Frame]]:
    """dlib's 5 x 11 labelled face chips: (label, file name, image)."""
    root = assets / "data" / "faces" / "dlib_johns"
    chips: list[tuple[str, str, Frame]] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.glob("*.jpg")):
            image = cv2.imread(str(path))
            if image is not None:
                chips.append((folder.name, path.name, np.asarray(image, dtype=np.uint8)))
    return chips


def place(frame: Frame, scale: float, background: Frame | None = None, size: tuple[int, int] = HD) -> Frame:
    """`frame` scaled so it covers `scale` of an HD frame's height, centred on `background` (or
    black): the demo clip as a 1080p camera further away would see it."""
    width, height = size
    canvas = background.copy() if background is not None else np.zeros((height, width, 3), np.uint8)
    factor = scale * min(width / frame.shape[1], height / frame.shape[0])
    w, h = round(frame.shape[1] * factor), round(frame.shape[0] * factor)
    resized = cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)
    x0, y0 = (width - w) // 2, (height - h) // 2
    canvas[y0 : y0 + h, x0 : x0 + w] = resized
    return canvas


def write_video(path: Path, frames: Iterator[Frame], fps: float) -> int:
    """Write frames with OpenCV's MPEG-4 encoder; returns how many were written."""
    writer: cv2.VideoWriter | None = None
    count = 0
    for frame in frames:
        if writer is None:
            fourcc = cv2.VideoWriter.fourcc(*"mp4v")
            writer = cv2.VideoWriter(str(path), fourcc, fps, (frame.shape[1], frame.shape[0]))
            if not writer.isOpened():
                raise RuntimeError(f"cannot write {path}")
        writer.write(frame)
        count += 1
    if writer is not None:
        writer.release()
    return count


def _clip(video: Path, frames: int | None, transform: Callable[[Frame], Frame]) -> Iterator[Frame]:
    capture = cv2.VideoCapture(str(video))
    done = 0
    while frames is None or done < frames:
        ok, image = capture.read()
        if not ok:
            break
        yield transform(np.asarray(image, dtype=np.uint8))
        done += 1
    capture.release()


def placed_clip(video: Path, scale: float, frames: int | None = None) -> Iterator[Frame]:
    """Every frame of `video` placed at `scale` in a black 1920x1080 frame."""
    return _clip(video, frames, lambda image: place(image, scale))


def covered_clip(video: Path, frames: int | None = None, size: tuple[int, int] = HD) -> Iterator[Frame]:
    """Every frame of `video` upscaled to cover an HD frame (the moving 1080p scene)."""
    return _clip(video, frames, lambda image: cover(image, size))


def named_by_nearest_centre(
    embedding: np.ndarray[Any, Any], gallery: np.ndarray[Any, Any], labels: list[str], index: int
) -> bool:
    """Leave-one-out recognition: is gallery row `index`'s person the one whose mean embedding
    (without that row) is nearest to `embedding`?"""
    best, best_sim = "", -2.0
    for name in sorted(set(labels)):
        rows = [j for j, lab in enumerate(labels) if lab == name and j != index]
        centre = gallery[rows].mean(axis=0)
        sim = float(embedding @ centre / np.linalg.norm(centre))
        if sim > best_sim:
            best, best_sim = name, sim
    return best == labels[index]


def still_clip(first: Frame, frames: int, noise_sigma: float = 3.0, seed: int = 0) -> Iterator[Frame]:
    """One frame held for `frames` frames with fresh Gaussian sensor noise on each."""
    rng = np.random.default_rng(seed)
    base = first.astype(np.int16)
    for _ in range(frames):
        noise = rng.normal(0.0, noise_sigma, size=first.shape).astype(np.int16)
        yield np.clip(base + noise, 0, 255).astype(np.uint8)
