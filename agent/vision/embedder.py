"""Face embedders: SFace through OpenCV (`cv2.FaceRecognizerSF`), MobileFaceNet on TFLite, and
OpenFace nn4.small2 through OpenCV DNN. docs/recognition.md compares the first two.

Each has a stable `embedder_id` naming model, dimension and preprocessing (crop, size, scaling):
a classifier trained on one id must never be fed vectors from another.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from agent.vision.alignment import Alignment, align_face
from agent.vision.inference import (
    Backend,
    ModelLoadError,
    ModelNotFoundError,
    TfliteModel,
    missing_model_message,
)
from agent.vision.types import FaceDetection, FloatArray, Frame


def l2_normalize(vectors: npt.NDArray[Any]) -> FloatArray:
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    normalized: FloatArray = array / np.maximum(norms, np.float32(1e-12))
    return normalized


class _AlignedCropEmbedder:
    """What every embedder shares: crop each face its way, then embed the crops as one batch."""

    size: int
    alignment: Alignment
    margin: float

    def crops(self, frame: Frame, faces: Sequence[FaceDetection]) -> list[Frame]:
        return [align_face(frame, f, size=self.size, mode=self.alignment, margin=self.margin) for f in faces]

    def embed(self, frame: Frame, faces: list[FaceDetection]) -> FloatArray:
        return self.embed_crops(self.crops(frame, faces))

    def embed_crops(self, crops: Sequence[Frame]) -> FloatArray:
        raise NotImplementedError


class MobileFaceNetEmbedder(_AlignedCropEmbedder):
    """MobileFaceNet: 112x112 RGB, (x - 127.5) / 128, 128-d, on ArcFace-template aligned faces."""

    name = "mobilefacenet"
    size = 112

    def __init__(
        self,
        model: TfliteModel,
        *,
        alignment: Alignment = "keypoints",
        margin: float = 0.1,
        max_batch: int = 16,
    ) -> None:
        shape = model.input.shape
        if len(shape) != 4 or shape[1:] != (self.size, self.size, 3):
            raise ValueError(f"{model.path.name}: input {shape} is not [N, 112, 112, 3]")
        self.model = model
        self.alignment: Alignment = alignment
        self.margin = margin
        self.max_batch = max_batch
        self._dim = int(model.outputs[0].shape[-1])

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def backend(self) -> Backend:
        return self.model.backend

    @property
    def embedder_id(self) -> str:
        crop = "arcface112" if self.alignment == "keypoints" else f"{self.alignment}112"
        if self.alignment == "margin":
            crop += f"m{round(self.margin * 100)}"
        return f"{self.name}-{self.dim}-{crop}-v1"

    def embed_crops(self, crops: Sequence[Frame]) -> FloatArray:
        """Embed already aligned 112x112 BGR crops (what `crops` returns), in batches."""
        if not crops:
            return np.zeros((0, self.dim), dtype=np.float32)
        rows: list[FloatArray] = []
        for start in range(0, len(crops), self.max_batch):
            batch = np.stack([_rgb(c, self.size) for c in crops[start : start + self.max_batch]])
            tensor = (batch.astype(np.float32) - 127.5) / 128.0
            rows.append(self.model.run(tensor)[0].reshape(len(batch), -1))
        return l2_normalize(np.concatenate(rows, axis=0))


class _OpenCvEmbedder(_AlignedCropEmbedder):
    """An embedder that OpenCV runs (DNN module): CPU only, 128-d, one network guarded by a lock,
    since OpenCV's forward pass is not safe to run from two threads at once."""

    def __init__(
        self, path: Path, what: str, load: Callable[[str], Any], alignment: Alignment, margin: float
    ) -> None:
        if not path.is_file():
            raise ModelNotFoundError(missing_model_message(path))
        try:
            self._net = load(str(path))
        except cv2.error as exc:
            lines = str(exc).strip().splitlines()
            reason = lines[-1] if lines else "unreadable"
            raise ModelLoadError(f"model file {path} is not a loadable {what}: {reason}") from None
        self._lock = threading.Lock()
        self.path = path
        self.alignment: Alignment = alignment
        self.margin = margin

    @property
    def dim(self) -> int:
        return 128

    @property
    def backend(self) -> Backend:
        # There is no Edge TPU build of the OpenCV-run networks.
        return "cpu"


class OpenFaceEmbedder(_OpenCvEmbedder):
    """OpenFace nn4.small2.v1 (`.t7`): 96x96 RGB scaled to [0, 1], 128-d, as the original script did.

    The original cropped the detector's box without alignment; `alignment` can improve on that,
    but changes the id.
    """

    name = "openface-nn4.small2.v1"
    size = 96

    def __init__(self, path: Path, *, alignment: Alignment = "margin", margin: float = 0.0) -> None:
        super().__init__(path, "Torch .t7 network", cv2.dnn.readNetFromTorch, alignment, margin)
        if self._net.empty():
            raise ModelLoadError(f"model file {path} is not a loadable Torch .t7 network: no layers")

    @property
    def embedder_id(self) -> str:
        return openface_embedder_id(self.alignment, self.margin)

    def embed_crops(self, crops: Sequence[Frame]) -> FloatArray:
        if not crops:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            self._net.setInput(openface_blob(crops))
            output = np.asarray(self._net.forward(), dtype=np.float32)
        return l2_normalize(output.reshape(len(crops), -1))


class SFaceEmbedder(_OpenCvEmbedder):
    """SFace (OpenCV model zoo, int8 block-quantized ONNX): 112x112 BGR, 128-d.

    SFace was trained on faces that `FaceRecognizerSF.alignCrop` warps onto the ArcFace 5-point
    template. BlazeFace has no mouth corners, so the crop comes from `align_face`: a least-squares
    similarity of eyes, nose tip and mouth centre onto the same template, which is where alignCrop's
    two mouth corners average to. tests/test_vision_sface.py pins that the two crops agree.
    `FaceRecognizerSF.feature` swaps BGR to RGB itself and returns an unnormalised vector.
    """

    name = "sface"
    size = 112

    def __init__(self, path: Path, *, alignment: Alignment = "keypoints", margin: float = 0.1) -> None:
        what = f"SFace ONNX network (OpenCV {cv2.__version__}; the int8 files need 4.11 or later)"
        super().__init__(path, what, lambda file: cv2.FaceRecognizerSF.create(file, ""), alignment, margin)

    @property
    def embedder_id(self) -> str:
        crop = "arcface112" if self.alignment == "keypoints" else f"{self.alignment}112"
        if self.alignment == "margin":
            crop += f"m{round(self.margin * 100)}"
        return f"{self.name}-int8bq-{self.dim}-{crop}-v1"

    def embed_crops(self, crops: Sequence[Frame]) -> FloatArray:
        """Embed already aligned 112x112 BGR crops (what `crops` returns), one forward pass each."""
        if not crops:
            return np.zeros((0, self.dim), dtype=np.float32)
        rows: list[FloatArray] = []
        with self._lock:
            for crop in crops:
                if crop.shape[:2] != (self.size, self.size):
                    crop = np.asarray(
                        cv2.resize(crop, (self.size, self.size), interpolation=cv2.INTER_AREA), dtype=np.uint8
                    )
                rows.append(np.array(self._net.feature(crop), dtype=np.float32).reshape(1, -1))
        return l2_normalize(np.concatenate(rows, axis=0))


def openface_embedder_id(alignment: Alignment, margin: float) -> str:
    crop = "box96" if alignment == "margin" and margin == 0.0 else f"{alignment}96"
    if alignment == "margin" and margin != 0.0:
        crop += f"m{round(margin * 100)}"
    return f"{OpenFaceEmbedder.name}-128-{crop}-v1"


def openface_blob(crops: Sequence[Frame]) -> npt.NDArray[np.float32]:
    """(N, 3, 96, 96) RGB in [0, 1]: OpenFace's Torch preprocessing, from BGR crops."""
    blob = cv2.dnn.blobFromImages(
        list(crops),
        scalefactor=1.0 / 255,
        size=(OpenFaceEmbedder.size, OpenFaceEmbedder.size),
        mean=(0, 0, 0),
        swapRB=True,
        crop=False,
    )
    return np.asarray(blob, dtype=np.float32)


def _rgb(crop: Frame, size: int) -> Frame:
    if crop.shape[:2] != (size, size):
        crop = np.asarray(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA), dtype=np.uint8)
    return np.asarray(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), dtype=np.uint8)
