"""Build the configured person detector, face detector and embedder (Edge TPU or CPU)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2

from agent.config import AgentConfig
from agent.vision.blazeface import BlazeFaceDetector
from agent.vision.embedder import MobileFaceNetEmbedder, OpenFaceEmbedder, SFaceEmbedder
from agent.vision.inference import Backend, ModelLoadError, TfliteModel, load_model
from agent.vision.person_boxes import PersonShape
from agent.vision.ssd_detector import SsdFaceDetector, SsdPostprocessDetector
from agent.vision.tiling import TiledDetector, TileParams
from agent.vision.types import FaceDetector, FaceEmbedder, PersonDetector


@dataclass
class VisionStack:
    person_detector: PersonDetector
    face_detector: FaceDetector
    embedder: FaceEmbedder
    # "edgetpu" when any model runs on the Coral, else "cpu"; per model in `backends`.
    backend: str
    backends: dict[str, str] = field(default_factory=dict)
    # Face detector for head crops of person boxes ([detection] face_crop_detector); None = the
    # face detector above.
    crop_face_detector: FaceDetector | None = None


def _load(config: AgentConfig, path: Path) -> TfliteModel:
    return load_model(
        config.resolve_asset(path),
        threads=config.inference.threads,
        allow_cpu_fallback=config.inference.allow_cpu_fallback,
    )


def build_person_detector(config: AgentConfig) -> SsdPostprocessDetector:
    return SsdPostprocessDetector(
        _load(config, config.models.person_detector),
        class_ids=[config.detection.person_class_id],
        min_score=config.detection.confidence,
        nms_threshold=config.detection.nms_threshold,
    )


def with_tiles(config: AgentConfig, detector: SsdPostprocessDetector) -> PersonDetector:
    """`detector`, looking at tiles of whole frames too when [tiles] rows > 0."""
    tiles = config.tiles
    if tiles.rows <= 0:
        return detector
    side = int(detector.model.input.shape[1])
    boxes = config.person_boxes
    shape = (
        PersonShape(boxes.min_aspect, boxes.max_aspect, boxes.max_frame_share, boxes.max_people_inside)
        if tiles.crowd_boxes
        else None
    )
    params = TileParams(tiles.rows, tiles.overlap, tiles.min_scale, tiles.only_crowds, shape)
    return TiledDetector(detector, side, params)


def build_face_detector(config: AgentConfig) -> BlazeFaceDetector | SsdFaceDetector:
    model = _load(config, config.models.face_detector)
    if config.models.face_detector_kind == "ssd":
        return SsdFaceDetector(
            SsdPostprocessDetector(
                model,
                class_ids=None,
                min_score=config.detection.face_confidence,
                nms_threshold=config.detection.face_nms_threshold,
            )
        )
    return _blazeface(config, model, "models.face_detector")


def build_crop_face_detector(config: AgentConfig) -> BlazeFaceDetector | None:
    """The BlazeFace variant for head crops, when one is configured and the face detector is one."""
    detection = config.detection
    if (
        not (detection.face_crops and detection.face_crop_detector)
        or config.models.face_detector_kind != "blazeface"
    ):
        return None
    return _blazeface(
        config, _load(config, Path(detection.face_crop_detector)), "detection.face_crop_detector"
    )


def _blazeface(config: AgentConfig, model: TfliteModel, key: str) -> BlazeFaceDetector:
    try:
        return BlazeFaceDetector(
            model,
            min_score=config.detection.face_confidence,
            nms_threshold=config.detection.face_nms_threshold,
        )
    except ValueError as exc:  # not a BlazeFace: one line naming the setting, not a traceback
        raise ModelLoadError(f"{exc} (check {key})") from None


def build_embedder(config: AgentConfig) -> MobileFaceNetEmbedder | OpenFaceEmbedder | SFaceEmbedder:
    """The configured embedder; its crop follows the face detector (no keypoints -> margin crop)."""
    models = config.models
    alignment = "margin" if models.face_detector_kind == "ssd" else models.face_alignment
    if models.embedder_kind == "openface":
        # OpenFace was trained on its own (larger) face template, not ArcFace's; the original
        # script fed it the bare detector box, so that is what its users' classifiers expect.
        return OpenFaceEmbedder(config.resolve_asset(models.embedder), alignment="margin", margin=0.0)
    if models.embedder_kind == "sface":
        # OpenCV runs SFace on its own process-wide thread pool, which defaults to every core. The
        # agent already runs one network per inference worker, so more threads per network only
        # oversubscribe a Pi: give OpenCV the same per-model budget as the TFLite interpreters.
        cv2.setNumThreads(config.inference.threads)
        return SFaceEmbedder(
            config.resolve_asset(models.embedder), alignment=alignment, margin=models.face_margin
        )
    return MobileFaceNetEmbedder(
        _load(config, models.embedder), alignment=alignment, margin=models.face_margin
    )


def build_worker_stack(config: AgentConfig, first: VisionStack) -> VisionStack:
    """The models of one more inference worker: its own person detector and head-crop face
    detector (run on most frames, so not shared), and `first`'s whole-frame face detector and
    embedder. Those run rarely (faces only for people not yet named) and each serialises its own
    calls; SFace alone is about 100 MB resident (docs/benchmarks.md#memory), a copy per worker
    would put a 1 GB Pi over budget."""
    person = build_person_detector(config)
    crop = build_crop_face_detector(config)
    backends = dict(first.backends)
    backends["person_detector"] = person.model.backend
    if crop is not None:
        backends["crop_face_detector"] = crop.model.backend
    backend = "edgetpu" if "edgetpu" in backends.values() else "cpu"
    return VisionStack(
        with_tiles(config, person), first.face_detector, first.embedder, backend, backends, crop
    )


def build_vision_stack(config: AgentConfig) -> VisionStack:
    """Load all three models; raises ModelLoadError (one line, names the file) on any problem."""
    person = build_person_detector(config)
    face = build_face_detector(config)
    embedder = build_embedder(config)
    backends: dict[str, Backend] = {
        "person_detector": person.model.backend,
        "face_detector": face.model.backend,
        "embedder": embedder.backend,
    }
    crop = build_crop_face_detector(config)
    if crop is not None:
        backends["crop_face_detector"] = crop.model.backend
    backend = "edgetpu" if "edgetpu" in backends.values() else "cpu"
    return VisionStack(with_tiles(config, person), face, embedder, backend, dict(backends), crop)
