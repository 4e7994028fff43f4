"""The models' half of a frame: person detection, appearance, and for the people who need a look,
face detection, quality, embedding and classification (`FrameAnalyzer.analyze`).

It runs in the inference executor; TFLite interpreters are not thread-safe, so one analyzer is used
by one worker at a time. Which people need a face look comes from the previous frame's tracks
(`TrackHint`, made by `agent.pipeline.stage.TrackingStage.hints`): a person box takes the hint of
the track it overlaps most, and one overlapping no track is someone new and always gets a look.
When nobody needs a face, the face models do not run at all.

On HD frames (docs/detection.md) a shared `DetectionScheduler` decides where the person detector
looks (motion, regions around tracks, periodic whole-frame passes; still tracks are held with
their last box), faces are looked for in the head region of each person box, and faces too small,
blurred or turned are counted and kept from voting.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from agent.identity.binding import bind_faces
from agent.pipeline.enrolment import FaceCandidate, margin_crop
from agent.pipeline.frame import SourceFrame
from agent.tracking import ColorHistogramEncoder
from agent.tracking.iou_matching import iou_matrix
from agent.vision.detection_schedule import DetectionScheduler, ScheduleParams, TrackBox, run_plan
from agent.vision.face_crops import faces_in_crops, head_region, may_show_a_face
from agent.vision.face_quality import FaceQuality, QualityParams, Reason, measure
from agent.vision.motion import MotionParams
from agent.vision.person_boxes import PersonShape, plausible_people
from agent.vision.types import (
    BBox,
    Detection,
    FaceDetection,
    FaceDetector,
    FaceEmbedder,
    Frame,
    PersonDetector,
)

if TYPE_CHECKING:
    from agent.config import DetectionConfig, PersonBoxConfig
    from agent.vision.factory import VisionStack

# A person box overlapping a known track less than this is treated as someone new.
NEWCOMER_IOU = 0.3


class ClassifierLike(Protocol):
    @property
    def version(self) -> str: ...

    def predict(self, embeddings: npt.ArrayLike) -> list[Any]:
        """One object with `.label` and `.confidence` per row."""
        ...


class AppearanceLike(Protocol):
    def encode(self, frame_bgr: Frame, boxes_tlwh: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True, slots=True)
class TrackHint:
    """What the analyzer needs to know about a live track from the previous frame."""

    tlwh: tuple[float, float, float, float]
    needs_face: bool
    track_id: int = -1
    confirmed: bool = False
    # Matched to a detection on its frame (a still track is held only while it keeps being found).
    updated: bool = False
    score: float = 1.0
    hits: int = 0
    # The box moved on to the hinted frame by the track's velocity (None: `tlwh`); a coasting
    # track is held there.
    predicted_tlwh: tuple[float, float, float, float] | None = None
    # Last frame a detector pass found the track (-1: never), and the frame this hint describes.
    detected_at: int = -1
    seen_at: int = -1


@dataclass(frozen=True, slots=True)
class DetectionOptions:
    """How the analyzer looks at a frame; `scheduler` is shared by every worker of one camera."""

    scheduler: DetectionScheduler | None = None
    # Margin of the head crop around each person box; None = faces on the whole frame.
    face_crop_margin: float | None = None
    quality: QualityParams | None = None
    # Person boxes no person could make are dropped before anything else sees them.
    person_shape: PersonShape | None = None
    # Longest side of the face crops kept for enrolment (docs/enrolment.md); None = keep none.
    enrolment_crop: int | None = None

    @classmethod
    def from_config(
        cls,
        detection: DetectionConfig,
        region_size: int = 300,
        person_boxes: PersonBoxConfig | None = None,
        enrolment_crop: int | None = None,
    ) -> DetectionOptions:
        params = ScheduleParams(
            motion=detection.motion,
            regions=detection.regions,
            regions_min_height=detection.regions_min_height,
            region_size=region_size,
            max_regions=detection.max_regions,
            full_frame_every=detection.full_frame_every,
            still_check_every=detection.still_check_every,
            coast_frames=detection.coast_frames,
            coast_min_hits=detection.coast_min_hits,
            motion_params=MotionParams(height=detection.motion_height, threshold=detection.motion_threshold),
        )
        quality = QualityParams(
            min_height=detection.face_min_height,
            min_sharpness=detection.face_min_sharpness,
            max_turn=detection.face_max_turn,
        )
        shape = (
            PersonShape(
                min_aspect=person_boxes.min_aspect,
                max_aspect=person_boxes.max_aspect,
                max_frame_share=person_boxes.max_frame_share,
                max_people_inside=person_boxes.max_people_inside,
            )
            if person_boxes is not None
            else None
        )
        return cls(
            # Without motion every frame gets the detector on the whole frame, as before.
            scheduler=DetectionScheduler(params) if detection.motion else None,
            face_crop_margin=detection.face_crop_margin if detection.face_crops else None,
            quality=quality if quality != QualityParams() else None,
            person_shape=shape if shape is not None and shape.checks_anything else None,
            enrolment_crop=enrolment_crop,
        )


@dataclass(frozen=True, slots=True)
class FacePrediction:
    label: str
    confidence: float


@dataclass(slots=True)
class Analysis:
    """The models' output for one frame (everything the tracking stage needs)."""

    frame: SourceFrame
    boxes_tlwh: npt.NDArray[np.float64]
    scores: npt.NDArray[np.float64]
    features: npt.NDArray[np.float32] | None
    face_features: npt.NDArray[np.float32] | None
    # detection index -> the face bound to it (every bound face, for drawing)
    faces: dict[int, FaceDetection] = field(default_factory=dict)
    # detection index -> classifier output, for the faces that were embedded this frame
    predictions: dict[int, FacePrediction] = field(default_factory=dict)
    classifier_version: str | None = None
    faces_checked: bool = False
    timings_ms: dict[str, float] = field(default_factory=dict)
    # Person detector runs on this frame (0: nothing moved and no track was due).
    person_passes: int = 1
    # Rows at the end of boxes_tlwh that are tracks' predicted boxes, not fresh detections.
    held: int = 0
    # The held rows are coasting tracks (they move: faces are looked for in them when due).
    coasted: bool = False
    # Faces kept from voting, per reason (small, blurred, turned).
    faces_skipped: dict[str, int] = field(default_factory=dict)
    # detection index -> an embedded face kept for enrolment (only with `enrolment_crop`)
    candidates: dict[int, FaceCandidate] = field(default_factory=dict)
    # CPU milliseconds of this worker thread inside the models (detectors, embedder, classifier,
    # with their pre- and post-processing): the agent's honest bound (docs/benchmarks.md).
    model_cpu_ms: float = 0.0


def _needing_face(boxes_tlwh: npt.NDArray[np.float64], hints: list[TrackHint]) -> npt.NDArray[np.bool_]:
    """Per person box: does it want a face look? A box takes the hint of the track it overlaps
    most; one overlapping no track by NEWCOMER_IOU is someone new and always does."""
    n = len(boxes_tlwh)
    if not hints:
        return np.ones(n, dtype=bool)
    if n == 0:
        return np.zeros(0, dtype=bool)
    hint_boxes = np.array([h.tlwh for h in hints], dtype=np.float64)
    iou = iou_matrix(boxes_tlwh, hint_boxes)
    best = iou.argmax(axis=1)
    hint_needs = np.array([h.needs_face for h in hints], dtype=bool)
    out: npt.NDArray[np.bool_] = (iou[np.arange(n), best] < NEWCOMER_IOU) | hint_needs[best]
    return out


class FrameAnalyzer:
    def __init__(
        self,
        person_detector: PersonDetector,
        face_detector: FaceDetector,
        embedder: FaceEmbedder,
        appearance: AppearanceLike | None,
        options: DetectionOptions | None = None,
        crop_face_detector: FaceDetector | None = None,
    ) -> None:
        self.person_detector = person_detector
        self.face_detector = face_detector
        self.embedder = embedder
        self.appearance = appearance
        self.options = options or DetectionOptions()
        # What looks at head crops (a variant suited to faces that fill the crop).
        self.crop_face_detector: FaceDetector = crop_face_detector or face_detector
        # The person detector's CPU on the frame being analysed (one analyzer, one thread).
        self._cpu_ms = 0.0

    @classmethod
    def from_stack(cls, stack: VisionStack, options: DetectionOptions | None = None) -> FrameAnalyzer:
        """An analyzer on one vision stack's models, with the tracker's colour-histogram appearance.
        Without `options` it looks at whole frames, as the original script did."""
        return cls(
            stack.person_detector,
            stack.face_detector,
            stack.embedder,
            ColorHistogramEncoder(),
            options,
            stack.crop_face_detector,
        )

    def _detect_people(
        self, frame: SourceFrame, hints: list[TrackHint]
    ) -> tuple[list[Detection], int, int, bool]:
        """Fresh detections followed by held track boxes; also the detector passes, the number
        held and whether the frame coasted."""
        scheduler = self.options.scheduler
        if scheduler is None:
            cpu0 = time.thread_time()
            found = self.person_detector.detect(frame.image)
            self._cpu_ms += (time.thread_time() - cpu0) * 1000
            return self._plausible(frame.image, found), 1, 0, False
        tracks = [
            TrackBox(
                h.track_id,
                BBox.from_tlwh(*h.tlwh),
                h.confirmed,
                h.updated,
                h.hits,
                h.detected_at,
                h.seen_at,
                BBox.from_tlwh(*h.predicted_tlwh) if h.predicted_tlwh is not None else None,
            )
            for h in hints
        ]
        plan = scheduler.plan(frame.index, frame.image, tracks)
        if plan.reason == "coast":
            # Nobody is looked for: the tracks found by their last pass stand on their predicted box.
            coasting = [
                Detection(tracks[i].predicted or tracks[i].box, hints[i].score, -1) for i in plan.held
            ]
            # A degenerate filtered box is no detection: that track misses the frame instead.
            coasting = [d for d in coasting if d.box.width > 0 and d.box.height > 0]
            return coasting, 0, len(coasting), True
        cpu0 = time.thread_time()
        detections = run_plan(self.person_detector, frame.image, plan.plan)
        self._cpu_ms += (time.thread_time() - cpu0) * 1000
        detections = self._plausible(frame.image, detections)
        if plan.plan.passes:
            scheduler.record(frame.index, [d.box for d in detections], tracks)
        held = [
            Detection(tracks[i].box, hints[i].score, -1)
            for i in plan.held
            # A region around someone else may have found this person anew.
            if all(tracks[i].box.iou(d.box) < NEWCOMER_IOU for d in detections)
        ]
        return detections + held, plan.plan.passes, len(held), False

    def _plausible(self, image: Frame, detections: list[Detection]) -> list[Detection]:
        shape = self.options.person_shape
        if shape is None:
            return detections
        return plausible_people(detections, (image.shape[1], image.shape[0]), shape)

    def _find_faces(
        self, image: Frame, detections: list[Detection], needing: set[int]
    ) -> list[FaceDetection]:
        margin = self.options.face_crop_margin
        if margin is None:
            return self.face_detector.detect(image)
        size = (image.shape[1], image.shape[0])
        min_height = self.options.quality.min_height if self.options.quality is not None else 0.0
        # Someone too small to show a face that may vote costs no face look.
        looked = [i for i in sorted(needing) if may_show_a_face(detections[i].box, min_height)]
        crops = [head_region(detections[i].box, size, margin=margin, person_index=i) for i in looked]
        return faces_in_crops(self.crop_face_detector, image, [c for c in crops if c is not None])

    def analyze(
        self,
        frame: SourceFrame,
        hints: list[TrackHint],
        classifier: ClassifierLike | None,
    ) -> Analysis:
        timings: dict[str, float] = {}
        image = frame.image
        # Models run inline on this thread (one interpreter thread per worker by default; OpenCV
        # on as many): its CPU time inside them is what they cost.
        self._cpu_ms = 0.0
        t0 = time.perf_counter()
        detections, passes, held, coasted = self._detect_people(frame, hints)
        t1 = time.perf_counter()
        timings["person_ms"] = (t1 - t0) * 1000
        n = len(detections)
        boxes = np.array([d.box.tlwh() for d in detections], dtype=np.float64).reshape(n, 4)
        scores = np.array([d.score for d in detections], dtype=np.float64)
        features = None
        if self.appearance is not None:
            features = self.appearance.encode(image, boxes) if n else None
            timings["appearance_ms"] = (time.perf_counter() - t1) * 1000
        analysis = Analysis(
            frame,
            boxes,
            scores,
            features,
            None,
            timings_ms=timings,
            person_passes=passes,
            held=held,
            coasted=coasted,
            model_cpu_ms=self._cpu_ms,
        )
        if classifier is not None:
            analysis.classifier_version = classifier.version

        # A still held box shows the same pixels as when it was last looked at: no new face to
        # see. A coasting one moves, and the face schedule does not wait for the next pass.
        fresh = n if coasted else n - held
        needing = {i for i in np.flatnonzero(_needing_face(boxes, hints)).tolist() if i < fresh}
        if not needing:
            return analysis
        analysis.faces_checked = True
        t2, cpu2 = time.perf_counter(), time.thread_time()
        faces = self._find_faces(image, detections, needing)
        t3 = time.perf_counter()
        timings["face_ms"] = (t3 - t2) * 1000
        analysis.model_cpu_ms += (time.thread_time() - cpu2) * 1000
        if not faces:
            return analysis
        persons = [d.box for d in detections]
        bindings = bind_faces([f.box for f in faces], persons)
        analysis.faces = {b.person_index: faces[b.face_index] for b in bindings}
        wanted = [(b.person_index, faces[b.face_index]) for b in bindings if b.person_index in needing]
        quality = self.options.quality
        crop_size = self.options.enrolment_crop
        measured: dict[int, FaceQuality] = {}
        if quality is not None or crop_size is not None:
            good: list[tuple[int, FaceDetection]] = []
            for det_index, face in wanted:
                measured[det_index] = measure(image, face)
                reason: Reason | None = measured[det_index].rejected(quality) if quality is not None else None
                if reason is None:
                    good.append((det_index, face))
                else:
                    analysis.faces_skipped[reason] = analysis.faces_skipped.get(reason, 0) + 1
            wanted = good
        if not wanted:
            return analysis
        cpu3 = time.thread_time()
        embeddings = self.embedder.embed(image, [face for _, face in wanted])
        t4, cpu4 = time.perf_counter(), time.thread_time()
        timings["embed_ms"] = (t4 - t3) * 1000
        analysis.model_cpu_ms += (cpu4 - cpu3) * 1000
        face_features = np.full((n, embeddings.shape[1]), np.nan, dtype=np.float32)
        for row, (det_index, _) in enumerate(wanted):
            face_features[det_index] = embeddings[row]
        analysis.face_features = face_features
        if crop_size is not None:
            for row, (det_index, face) in enumerate(wanted):
                crop = margin_crop(image, face.box, crop_size)
                if crop is not None:
                    analysis.candidates[det_index] = FaceCandidate(measured[det_index], embeddings[row], crop)
        if classifier is not None:
            predictions = classifier.predict(embeddings)
            timings["classify_ms"] = (time.perf_counter() - t4) * 1000
            analysis.model_cpu_ms += (time.thread_time() - cpu4) * 1000
            for (det_index, _), pred in zip(wanted, predictions, strict=True):
                analysis.predictions[det_index] = FacePrediction(str(pred.label), float(pred.confidence))
        return analysis
