"""Photos -> face embeddings, with the agent's own detector, alignment and embedder.

Each photo's faces and embeddings are cached by the sha256 of the file's bytes under a directory
named after the embedder and detector settings, so re-running `train`/`evaluate` on the same
photos costs a hash per file, and changing the model or settings can never reuse stale vectors.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from agent.config import AgentConfig
from agent.vision.types import FaceDetection, FaceDetector, FaceEmbedder, Frame

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
CACHE_FORMAT = 1


class DatasetError(ValueError):
    """A dataset problem phrased as one line for the user."""


class UnreadableImage(DatasetError):
    """One photo could not be read or decoded; `reason` says why (the photo is skipped, not fatal)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.reason = reason


class CacheError(DatasetError):
    """The embedding cache directory cannot be created or written (fatal: it is the user's setting)."""


@dataclass(frozen=True, slots=True)
class FaceSample:
    """One photo's outcome: `embedding` is set only when exactly one face was found; `error` is
    set (and `faces` is 0) when the photo could not be read or decoded."""

    path: Path
    label: str | None
    faces: int
    embedding: npt.NDArray[np.float32] | None
    error: str | None = None

    @property
    def usable(self) -> bool:
        return self.embedding is not None


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def scan_people(root: Path, *, allow_loose: bool = False) -> dict[str, list[Path]]:
    """label -> photos for a folder with one sub-folder per person.

    With `allow_loose`, photos directly in `root` form one group named after `root` (negatives
    may be a flat folder of strangers).
    """
    if not root.is_dir():
        raise DatasetError(f"{root} is not a directory")
    people: dict[str, list[Path]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = list_images(folder)
        if images:
            people[folder.name] = images
    loose = list_images(root)
    if loose and allow_loose:
        people.setdefault(root.name, []).extend(loose)
    if not people:
        hint = "" if allow_loose else " (one sub-folder of photos per person)"
        raise DatasetError(f"{root} contains no photos{hint}")
    return people


def empty_folders(root: Path) -> list[Path]:
    """The person folders of `root` that hold no photo `list_images` would read."""
    if not root.is_dir():
        return []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [folder for folder in folders if not list_images(folder)]


def read_photo(path: Path) -> bytes:
    """A photo's bytes; raises UnreadableImage."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UnreadableImage(path, exc.strerror or str(exc)) from exc


def decode_photo(path: Path, data: bytes) -> Frame:
    """The BGR image in `data` (read from `path`); raises UnreadableImage."""
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:  # raised instead of returning None for an empty buffer
        image = None
    if image is None:
        what = "empty file" if not data else f"not a decodable image ({len(data)} bytes)"
        raise UnreadableImage(path, what)
    return np.asarray(image, dtype=np.uint8)


def pad_image(image: Frame, fraction: float) -> Frame:
    """Add a black border of `fraction` x the longest side: tight face crops then look like a
    face in a scene, which is what the detector was trained on (measured on dlib_johns' 150x150
    chips: 47/55 single faces unpadded, 55/55 with 0.5)."""
    if fraction <= 0:
        return image
    border = round(max(image.shape[:2]) * fraction)
    padded = cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_CONSTANT, value=0)
    return np.asarray(padded, dtype=np.uint8)


class EmbeddingCache:
    """`<root>/<settings key>/<sha256>.npz` holding the embeddings of a photo's faces, one row each.

    Older entries also hold a `faces` count (always the row count); it is ignored, so existing
    caches stay valid without a format bump.
    """

    def __init__(self, root: Path | None, settings: dict[str, object]) -> None:
        key = hashlib.sha256(json.dumps({"v": CACHE_FORMAT, **settings}, sort_keys=True).encode()).hexdigest()
        self.root = root
        self.dir = None if root is None else root / f"{settings.get('embedder_id', 'emb')}-{key[:12]}"
        self.hits = 0
        self.misses = 0
        self._ready = False

    def _failed(self, exc: OSError) -> CacheError:
        # os.replace names the temp file first; the entry it could not become is the news.
        path = exc.filename2 or exc.filename
        where = f"{path}: " if path else ""
        return CacheError(f"cannot use embedding cache {self.root}: {where}{exc.strerror or exc}")

    def ensure(self) -> None:
        """Create the cache directory (once), so an unusable one fails before any photo is embedded."""
        if self.dir is None or self._ready:
            return
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._failed(exc) from exc
        self._ready = True

    def get(self, digest: str) -> npt.NDArray[np.float32] | None:
        if self.dir is None:
            return None
        path = self.dir / f"{digest}.npz"
        try:
            with np.load(path, allow_pickle=False) as data:
                embeddings = np.asarray(data["embeddings"], dtype=np.float32)
        except (OSError, KeyError, ValueError):
            return None
        self.hits += 1
        return embeddings

    def put(self, digest: str, embeddings: npt.NDArray[np.float32]) -> None:
        if self.dir is None:
            return
        self.ensure()
        final = self.dir / f"{digest}.npz"
        temp = self.dir / f".{digest}.{os.getpid()}.tmp.npz"
        try:
            np.savez(temp, embeddings=embeddings)
            os.replace(temp, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
            raise self._failed(exc) from exc


class FaceEmbedding:
    """Detector + embedder + cache: photo in, embeddings of its faces out."""

    def __init__(
        self,
        detector: FaceDetector,
        embedder: FaceEmbedder,
        *,
        cache_dir: Path | None,
        pad: float,
        settings: dict[str, object],
    ) -> None:
        self.detector = detector
        self.embedder = embedder
        self.pad = pad
        self.cache = EmbeddingCache(cache_dir, {"embedder_id": embedder.embedder_id, "pad": pad, **settings})

    @classmethod
    def from_config(cls, config: AgentConfig, *, cache_dir: Path | None, pad: float) -> FaceEmbedding:
        from agent.vision.factory import build_embedder, build_face_detector

        settings: dict[str, object] = {
            "face_detector": config.models.face_detector.name,
            "face_detector_kind": config.models.face_detector_kind,
            "face_confidence": config.detection.face_confidence,
            "alignment": config.models.face_alignment,
            "margin": config.models.face_margin,
        }
        return cls(
            build_face_detector(config),
            build_embedder(config),
            cache_dir=cache_dir,
            pad=pad,
            settings=settings,
        )

    @property
    def embedder_id(self) -> str:
        return self.embedder.embedder_id

    @property
    def dim(self) -> int:
        return self.embedder.dim

    def faces_in(self, path: Path) -> npt.NDArray[np.float32]:
        """(n_faces, dim) embeddings of every face in the photo.

        Raises UnreadableImage when the file cannot be read or decoded, CacheError when the
        embedding cache cannot be written.
        """
        data = read_photo(path)
        digest = hashlib.sha256(data).hexdigest()
        cached = self.cache.get(digest)
        if cached is not None:
            return cached
        self.cache.misses += 1
        frame = pad_image(decode_photo(path, data), self.pad)
        faces: list[FaceDetection] = self.detector.detect(frame)
        embeddings = np.asarray(self.embedder.embed(frame, faces), dtype=np.float32).reshape(-1, self.dim)
        self.cache.put(digest, embeddings)
        return embeddings

    def samples(
        self, items: Sequence[tuple[Path, str | None]], *, desc: str = "embedding", progress: bool = True
    ) -> list[FaceSample]:
        """One FaceSample per photo, with a progress bar. An unreadable photo is a sample with
        `error` set; an unusable cache raises CacheError before the first photo is embedded."""
        self.cache.ensure()
        out: list[FaceSample] = []
        for path, label in tqdm(items, desc=desc, unit="photo", disable=not progress or None, leave=False):
            try:
                embeddings = self.faces_in(path)
            except UnreadableImage as exc:
                out.append(FaceSample(path, label, 0, None, error=exc.reason))
                continue
            single = embeddings[0] if len(embeddings) == 1 else None
            out.append(FaceSample(path, label, len(embeddings), single))
        return out


def labelled(people: dict[str, list[Path]]) -> list[tuple[Path, str | None]]:
    return [(path, label) for label, paths in people.items() for path in paths]


def split_usable(samples: Iterable[FaceSample]) -> tuple[list[FaceSample], list[FaceSample]]:
    usable: list[FaceSample] = []
    skipped: list[FaceSample] = []
    for sample in samples:
        (usable if sample.usable else skipped).append(sample)
    return usable, skipped


def skip_kind(sample: FaceSample) -> str:
    """Why a photo was not used, in one of three words: "unreadable", "no face", "several faces"."""
    if sample.error is not None:
        return "unreadable"
    return "no face" if sample.faces == 0 else "several faces"


def describe_skipped(sample: FaceSample) -> str:
    if sample.error is not None:
        why = f"unreadable: {sample.error}"
    else:
        why = "no face" if sample.faces == 0 else f"{sample.faces} faces"
    return f"{sample.path} ({why})"
