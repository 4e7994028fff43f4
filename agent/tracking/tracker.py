"""Deep SORT multi-target tracker (Wojke, Bewley, Paulus 2017), written from the paper.

Per frame: predict every track with the Kalman filter; gate track/detection pairs by Mahalanobis
distance; match confirmed tracks in a cascade ordered by time since update, on appearance (or on
motion when no appearance is given); match the rest (tentative tracks, and confirmed tracks that
missed only the last frame) by IoU; update, age and create tracks; report lifecycle events.
The matching (cascade, IoU stage, cost and gate assembly) is `association.Associator`; this module
owns the tracks: their filter state, galleries, lifecycle and the birth rule.

Pure: no I/O, no images. Appearance arrives as feature vectors.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from agent.tracking.association import Associator
from agent.tracking.cut_carry import face_carry_over
from agent.tracking.detection import tlwh_to_xyah, xyah_to_tlwh
from agent.tracking.kalman_filter import CHI2_95, KalmanFilter
from agent.tracking.lifecycle import TrackEvent, TrackUpdate, TrackView
from agent.tracking.nn_matching import FeatureGallery
from agent.tracking.score_window import ScoreWindow
from agent.tracking.track import TrackTable

if TYPE_CHECKING:
    from agent.config import DetectionConfig, TrackerConfig

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

MotionCost = Literal["iou", "mahalanobis"]


@dataclass(frozen=True, slots=True)
class TrackerParams:
    """Tracker settings. Defaults are the paper's, except where a measurement says otherwise.

    max_cosine_distance: appearance gate (the original script's --cosine_distance).
    nn_budget: features kept per track gallery; the oldest is evicted.
    max_iou_distance: 1 - IoU above which the IoU stage refuses a pair.
    max_age: consecutive misses a confirmed track survives; deleted on miss max_age + 1.
    n_init: consecutive hits that confirm a tentative track.
    max_face_distance: face-embedding cosine gate, used instead of max_cosine_distance when both the
        track and the detection have a face embedding.
    face_budget: face embeddings kept per track.
    gating_threshold: squared Mahalanobis gate (chi-square 0.95, 4 dof).
    motion_cost: cascade cost when no appearance is given: "mahalanobis" (squared Mahalanobis
        distance over the gate; uses the track's uncertainty, so a track coasting through an
        occlusion can still claim its detection) or "iou" (1 - IoU of the predicted box, SORT's).
        Measured on TUD-Campus: mahalanobis MOTA 63.8 / IDF1 74.8, iou 62.7 / 65.2.
    min_motion_iou: with motion_cost "mahalanobis", a cascade pair also needs this IoU between the
        predicted box and the detection, unless a face decides the pair or the colour distance is
        within far_cosine_fraction of max_cosine_distance (docs/tracking.md: on PETS09-S2L1 with
        our own detector, colour allowed anywhere inside the Mahalanobis gate added ID switches).
    far_cosine_fraction: see min_motion_iou.
    motion_weight: the paper's lambda when appearance is given: cost = lambda * motion + (1 - lambda)
        * appearance, each already gated by its own threshold. The paper uses 0; a little motion
        breaks ties between look-alikes (same clothes) in favour of the better-predicted one.
    std_weight_position, std_weight_velocity: Kalman noise, as fractions of the box height per
        frame (position/size measurement and process noise; velocity process noise). The paper's
        are 1/20 and 1/160.
    birth_quantile: a detection starts a new track only if its score reaches this quantile of the
        scores of the detections that confirmed tracks matched lately (the detector's scores for
        people); weaker ones still continue existing tracks (ByteTrack's rule: a weak box is more
        often clutter where nobody is, more often a person where a track predicts one). A
        quantile, not a score, so one setting fits detectors whose scores differ in scale (the
        Faster R-CNN boxes of MOT15 have a median of 0.96, COCO SSD on vtest.avi 0.67). Until a
        confirmed track has matched anything, every detection may start a track. 0 disables.
    min_confidence, nms_max_overlap: detector-side filters (--confidence, --nms_threshold), carried
        here so one object holds the original script's tracking flags. `update()` never reads them:
        they are applied by the detection filter (`detection.filter_detections`, as bench/mot.py does).
    """

    max_cosine_distance: float = 0.1
    nn_budget: int = 100
    max_iou_distance: float = 0.7
    max_age: int = 30
    n_init: int = 3
    max_face_distance: float = 0.5
    face_budget: int = 30
    gating_threshold: float = CHI2_95[4]
    motion_cost: MotionCost = "mahalanobis"
    motion_weight: float = 0.3
    min_motion_iou: float = 0.2
    far_cosine_fraction: float = 0.5
    std_weight_position: float = 1.0 / 20.0
    std_weight_velocity: float = 1.0 / 100.0
    birth_quantile: float = 0.3
    min_confidence: float = 0.5
    nms_max_overlap: float = 1.0

    def __post_init__(self) -> None:
        if self.n_init < 1 or self.max_age < 0 or self.nn_budget < 1 or self.face_budget < 1:
            raise ValueError("n_init, nn_budget, face_budget must be >= 1 and max_age >= 0")
        if self.max_cosine_distance < 0 or self.max_iou_distance < 0 or self.max_face_distance <= 0:
            raise ValueError("distance thresholds must be >= 0 (max_face_distance > 0)")
        if not 0.0 <= self.min_motion_iou <= 1.0:
            raise ValueError(f"min_motion_iou must be in [0, 1], got {self.min_motion_iou}")
        if not 0.0 <= self.far_cosine_fraction <= 1.0:
            raise ValueError(f"far_cosine_fraction must be in [0, 1], got {self.far_cosine_fraction}")
        if not 0.0 <= self.motion_weight <= 1.0:
            raise ValueError(f"motion_weight must be in [0, 1], got {self.motion_weight}")
        if not 0.0 <= self.birth_quantile <= 1.0:
            raise ValueError(f"birth_quantile must be in [0, 1], got {self.birth_quantile}")
        if self.std_weight_position <= 0 or self.std_weight_velocity <= 0:
            raise ValueError("std_weight_position and std_weight_velocity must be > 0")
        if self.motion_cost not in ("iou", "mahalanobis"):
            raise ValueError(f"motion_cost must be 'iou' or 'mahalanobis', got {self.motion_cost!r}")

    @classmethod
    def from_config(
        cls, cfg: TrackerConfig, detection: DetectionConfig | None = None, **overrides: Any
    ) -> TrackerParams:
        params = cls(
            max_cosine_distance=cfg.max_cosine_distance,
            nn_budget=cfg.nn_budget,
            max_iou_distance=cfg.max_iou_distance,
            max_age=cfg.max_age,
            n_init=cfg.n_init,
            max_face_distance=cfg.max_face_distance,
            face_budget=cfg.face_budget,
            std_weight_velocity=cfg.std_weight_velocity,
            birth_quantile=cfg.birth_quantile,
        )
        if detection is not None:
            params = replace(
                params, min_confidence=detection.confidence, nms_max_overlap=detection.nms_threshold
            )
        return replace(params, **overrides)


class Tracker:
    """Online multi-target tracker; call `update` once per frame, in order."""

    def __init__(self, params: TrackerParams | None = None, kalman: KalmanFilter | None = None):
        self.params = params or TrackerParams()
        self.kf = kalman or KalmanFilter(
            std_weight_position=self.params.std_weight_position,
            std_weight_velocity=self.params.std_weight_velocity,
        )
        self._associator = Associator(self.params, self.kf)
        self._tracks = TrackTable()
        self._next_id = 1
        self._frame = 0
        self._feature_dim: int | None = None
        self._face_dim: int | None = None
        self._scores = ScoreWindow()

    @property
    def frame_index(self) -> int:
        return self._frame

    def __len__(self) -> int:
        return len(self._tracks)

    def finish(self) -> list[TrackEvent]:
        """End of stream: delete every track; a "deleted" event for each confirmed one.

        The frame counter and id sequence continue, so ids stay unique if frames follow.
        """
        t = self._tracks
        events: list[TrackEvent] = []
        confirmed = t.confirmed.nonzero()[0]
        if confirmed.size:
            self._emit(t, "deleted", confirmed, events)
        self._tracks = TrackTable()
        return events

    def update(
        self,
        boxes_tlwh: npt.ArrayLike,
        scores: npt.ArrayLike,
        features: npt.ArrayLike | None,
        face_features: npt.ArrayLike | None = None,
        scene_cut: bool = False,
    ) -> TrackUpdate:
        """Advance one frame with this frame's detections and return live tracks and events.

        boxes_tlwh (n, 4) pixels; scores (n,); features (n, d) L2-normalised or None for motion
        only; face_features (n, k) with NaN rows where a detection has no face, or None.
        scene_cut: this frame starts a new shot (agent.vision.scene_cut); see `_cross_cut`.
        """
        boxes, score_array, feats, faces = self._validate(boxes_tlwh, scores, features, face_features)
        # Counted after validation: a refused frame leaves the tracker exactly as it was.
        self._frame += 1
        p = self.params
        t = self._tracks
        events: list[TrackEvent] = []
        if scene_cut and len(t):
            self._cross_cut(t, tlwh_to_xyah(boxes), faces, events)
        n, m = len(t), boxes.shape[0]
        measurements = tlwh_to_xyah(boxes)

        if n:
            t.mean, t.cov = self.kf.predict(t.mean, t.cov)
            t.age += 1
            t.time_since_update += 1

        matched_det = np.full(n, -1, dtype=np.intp)
        unmatched_cols = np.arange(m, dtype=np.intp)
        if n and m:
            innovation = self.kf.innovation(t.mean, t.cov)
            rows, cols = self._associator.associate(t, boxes, measurements, innovation, feats, faces)
            if p.birth_quantile > 0 and rows.size:
                # The scores of boxes that confirmed tracks (people, mostly) keep matching.
                self._scores.add(score_array[cols[t.confirmed[rows]]])
            if rows.size:
                matched_det[rows] = cols
                free = np.ones(m, dtype=np.bool_)
                free[cols] = False
                unmatched_cols = free.nonzero()[0]
                shared = (innovation[0][rows], innovation[1][rows], innovation[2][rows])
                self._apply_hits(t, rows, cols, measurements, shared, feats, faces, events)

        if n:
            self._apply_misses(t, matched_det, events)
            alive = (t.time_since_update == 0) | (t.confirmed & (t.time_since_update <= p.max_age))
            t.keep(alive)
            matched_det = matched_det[alive]

        if p.birth_quantile > 0 and unmatched_cols.size:
            floor = self._scores.quantile(p.birth_quantile)
            unmatched_cols = unmatched_cols[score_array[unmatched_cols] >= floor]
        if unmatched_cols.size:
            self._start_tracks(unmatched_cols, measurements, feats, faces, events)
            matched_det = np.concatenate([matched_det, unmatched_cols])

        return TrackUpdate(self._frame, self._views(matched_det), events)

    # -- lifecycle ---------------------------------------------------------------------------

    def _cross_cut(
        self,
        t: TrackTable,
        measurements: Array,
        faces: npt.NDArray[np.float32] | None,
        events: list[TrackEvent],
    ) -> None:
        """A scene cut: a track whose own faces match a face of the new shot restarts its motion
        at that detection (where it was before the cut says nothing); every other track ends now."""
        pairs = face_carry_over(t.face_galleries, faces, self.params.max_face_distance)
        carried = np.zeros(len(t), dtype=np.bool_)
        if pairs:
            rows = np.array([r for r, _ in pairs], dtype=np.intp)
            cols = np.array([c for _, c in pairs], dtype=np.intp)
            t.mean[rows], t.cov[rows] = self.kf.initiate(measurements[cols])
            t.time_since_update[rows] = 0
            carried[rows] = True
        ended = (~carried & t.confirmed).nonzero()[0]
        if ended.size:
            self._emit(t, "deleted", ended, events)
        t.keep(carried)

    def _apply_hits(
        self,
        t: TrackTable,
        rows: IntArray,
        cols: IntArray,
        measurements: Array,
        innovation: tuple[Array, Array, Array],
        feats: npt.NDArray[np.float32] | None,
        faces: npt.NDArray[np.float32] | None,
        events: list[TrackEvent],
    ) -> None:
        p = self.params
        t.mean[rows], t.cov[rows] = self.kf.update(t.mean[rows], t.cov[rows], measurements[cols], innovation)
        t.hits[rows] += 1
        t.time_since_update[rows] = 0
        newly_confirmed = rows[~t.confirmed[rows] & (t.hits[rows] >= p.n_init)]
        refound = rows[t.lost[rows]]
        if newly_confirmed.size:
            t.confirmed[newly_confirmed] = True
            self._emit(t, "confirmed", newly_confirmed, events)
        if refound.size:
            t.lost[refound] = False
            self._emit(t, "refound", refound, events)
        self._remember(t, rows, cols, feats, faces)

    def _apply_misses(self, t: TrackTable, matched_det: IntArray, events: list[TrackEvent]) -> None:
        missed = matched_det < 0
        newly_lost = (missed & t.confirmed & ~t.lost).nonzero()[0]
        if newly_lost.size:
            t.lost[newly_lost] = True
            self._emit(t, "lost", newly_lost, events)
        expired = (missed & t.confirmed & (t.time_since_update > self.params.max_age)).nonzero()[0]
        if expired.size:
            self._emit(t, "deleted", expired, events)

    def _start_tracks(
        self,
        cols: IntArray,
        measurements: Array,
        feats: npt.NDArray[np.float32] | None,
        faces: npt.NDArray[np.float32] | None,
        events: list[TrackEvent],
    ) -> None:
        t = self._tracks
        k = cols.size
        ids = np.arange(self._next_id, self._next_id + k, dtype=np.int64)
        self._next_id += k
        mean, cov = self.kf.initiate(measurements[cols])
        confirmed = self.params.n_init <= 1
        start = len(t)
        t.append(ids, mean, cov, confirmed)
        rows = np.arange(start, start + k, dtype=np.intp)
        if confirmed:
            self._emit(t, "confirmed", rows, events)
        self._remember(t, rows, cols, feats, faces)

    def _remember(
        self,
        t: TrackTable,
        rows: IntArray,
        cols: IntArray,
        feats: npt.NDArray[np.float32] | None,
        faces: npt.NDArray[np.float32] | None,
    ) -> None:
        """Add matched detections' features to their tracks' galleries (loop over matches only)."""
        p = self.params
        if feats is not None:
            galleries = t.galleries
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
                gallery = galleries[r]
                if gallery is None:
                    gallery = galleries[r] = FeatureGallery(feats.shape[1], p.nn_budget)
                gallery.add(feats[c])
        if faces is not None:
            face_galleries = t.face_galleries
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
                face = faces[c]
                if np.isnan(face).any():
                    continue
                gallery = face_galleries[r]
                if gallery is None:
                    gallery = face_galleries[r] = FeatureGallery(faces.shape[1], p.face_budget)
                gallery.add(face)

    def _emit(self, t: TrackTable, kind: str, rows: IntArray, events: list[TrackEvent]) -> None:
        boxes = xyah_to_tlwh(t.mean[rows])
        frame = self._frame
        for i, r in enumerate(rows.tolist()):
            events.append(
                TrackEvent(kind, int(t.ids[r]), boxes[i], int(t.age[r]), int(t.hits[r]), frame)  # type: ignore[arg-type]
            )

    def _views(self, matched_det: IntArray) -> list[TrackView]:
        t = self._tracks
        if not len(t):
            return []
        boxes = xyah_to_tlwh(t.mean)
        # Positional construction: keyword arguments cost twice as much on a frozen dataclass,
        # and this runs for every track every frame.
        return [
            TrackView(
                track_id,
                boxes[i],
                "confirmed" if confirmed else "tentative",
                hits,
                age,
                tsu,
                det if det >= 0 else None,
            )
            for i, (track_id, confirmed, hits, age, tsu, det) in enumerate(
                zip(
                    t.ids.tolist(),
                    t.confirmed.tolist(),
                    t.hits.tolist(),
                    t.age.tolist(),
                    t.time_since_update.tolist(),
                    matched_det.tolist(),
                    strict=True,
                )
            )
        ]

    # -- input checks ------------------------------------------------------------------------

    def _validate(
        self,
        boxes_tlwh: npt.ArrayLike,
        scores: npt.ArrayLike,
        features: npt.ArrayLike | None,
        face_features: npt.ArrayLike | None,
    ) -> tuple[Array, Array, npt.NDArray[np.float32] | None, npt.NDArray[np.float32] | None]:
        boxes = np.asarray(boxes_tlwh, dtype=np.float64)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes_tlwh must be (n, 4), got shape {boxes.shape}")
        n = boxes.shape[0]
        if not np.isfinite(boxes).all():
            raise ValueError("boxes_tlwh contains NaN or inf")
        if n and (boxes[:, 3] <= 0).any():
            raise ValueError("boxes_tlwh has a box with non-positive height")
        score_array = np.asarray(scores, dtype=np.float64)
        if score_array.shape != (n,):
            raise ValueError(f"scores must be ({n},), got shape {score_array.shape}")
        feats = _feature_rows("features", features, n, self._feature_dim)
        faces = _feature_rows("face_features", face_features, n, self._face_dim)
        if feats is not None:
            self._feature_dim = int(feats.shape[1])
        if faces is not None:
            self._face_dim = int(faces.shape[1])
        return boxes, score_array, feats, faces


def _feature_rows(
    name: str, values: npt.ArrayLike | None, n: int, known_dim: int | None
) -> npt.NDArray[np.float32] | None:
    """One (n, d) feature block checked against n detections and earlier frames' d, as unit rows."""
    if values is None:
        return None
    rows = np.asarray(values, dtype=np.float32)
    if rows.size == 0 and n == 0:
        return None
    if rows.ndim != 2 or rows.shape[0] != n:
        raise ValueError(f"{name} must be ({n}, d), got shape {rows.shape}")
    if known_dim is not None and rows.shape[1] != known_dim:
        raise ValueError(f"{name} have dimension {rows.shape[1]}, earlier frames had {known_dim}")
    return _unit_rows(rows)


def _unit_rows(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Rows scaled to unit length (NaN rows stay NaN, zero rows stay zero).

    Cosine distance as 1 - dot product needs unit vectors. The embedders normalise already, but
    features may come from any source (bench, tests, a future re-id model): this is the tracker's
    single guarantee. Not agent.vision's l2_normalize: the tracker must not import the image side.
    """
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: npt.NDArray[np.float32] = np.divide(x, norms, out=x.copy(), where=norms > 0)
    return out
