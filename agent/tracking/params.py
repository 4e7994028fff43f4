"""The tracker's settings, in one immutable object shared by the tracker and the association.

Its own module so that the import graph is one-way: tracker -> association -> params.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from agent.tracking.kalman_filter import CHI2_95

if TYPE_CHECKING:
    from agent.config import DetectionConfig, TrackerConfig

MotionCost = Literal["iou", "mahalanobis"]


@dataclass(frozen=True, slots=True)
class TrackerParams:
    """Tracker settings. Defaults are the paper's, except where a measurement says otherwise.

    max_cosine_distance: appearance gate (the original script's --cosine_distance).
    nn_budget: features kept per track gallery; the oldest is evicted.
    max_iou_distance: 1 - IoU above which the IoU stage refuses a pair.
    max_age: consecutive misses a confirmed track survives; deleted on miss max_age + 1.
    motion_max_age: the same for a track that has no appearance (colour or face) features, only
        its motion: chosen by leave-one-sequence-out against SORT on MOT15 (motion only), where
        longer coasting re-attaches tracks to the wrong boxes; with colour features (vtest.avi)
        max_age 30 keeps 6 more IDF1 points than 10 (docs/tracking.md). Capped by max_age.
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
    weak_birth_n_init: with birth_quantile on, a detection under its floor may still start a
        track, one that needs this many consecutive hits to be confirmed (clutter seldom lasts,
        a person whose score is low for the detector, partly hidden or far, does). 0: a weak
        detection never starts a track.
    low_score_quantile: ByteTrack's split (Zhang et al. 2022). A detection whose score is below
        this quantile of the same recent tracked scores is "low": it is left out of the cascade
        and the IoU stage, then offered by IoU (>= low_match_iou) only to the tracks matched in
        the previous frame that are still free, and never starts a track. 0 disables (every
        detection is matched in the first stages, as in Deep SORT).
    low_match_iou: ByteTrack's second-association IoU floor for low detections.
    reupdate_after_gap: OC-SORT's observation-centric re-update (Cao et al. 2023): when a track
        that missed frames matches again, its filter restarts from the state of its last
        observation and is re-run along a straight virtual path of observations to the new one,
        so the velocity it drifted to while coasting does not survive the occlusion.
    direction_weight: OC-SORT's observation-centric momentum: the cascade's motion cost of a
        pair grows by this weight times the angle (as a fraction of pi) between the track's
        direction over its last observations and the direction from its last observation to the
        detection. 0 disables. 0.2 (the paper's inertia weight) adopted by leave-one-sequence-out
        (docs/tracking.md).
    recovery_min_iou: OC-SORT's observation-centric recovery: after every other stage, a
        confirmed track still free may take a free detection overlapping its last observed box by
        at least this IoU (a target stopped or turned while the filter coasted on). 0 disables.
    opening_frames: tracks born in a stream's first this many frames are confirmed at birth, as
        SORT reports every matched box of its first min_hits frames (nothing earlier can vouch for
        or against them, and waiting n_init frames loses every person present at the start); one
        that misses before n_init hits is dropped like a tentative track. 0 disables.
    min_confidence, nms_max_overlap: detector-side filters (--confidence, --nms_threshold), carried
        here so one object holds the original script's tracking flags. `update()` never reads them:
        they are applied by the detection filter (`detection.filter_detections`, as bench/mot.py does).
    """

    max_cosine_distance: float = 0.1
    nn_budget: int = 100
    max_iou_distance: float = 0.7
    max_age: int = 30
    motion_max_age: int = 10
    n_init: int = 4
    max_face_distance: float = 0.5
    face_budget: int = 30
    gating_threshold: float = CHI2_95[4]
    motion_cost: MotionCost = "iou"
    motion_weight: float = 0.3
    min_motion_iou: float = 0.2
    far_cosine_fraction: float = 0.5
    std_weight_position: float = 1.0 / 20.0
    std_weight_velocity: float = 1.0 / 100.0
    birth_quantile: float = 0.0
    weak_birth_n_init: int = 0
    low_score_quantile: float = 0.0
    low_match_iou: float = 0.5
    reupdate_after_gap: bool = False
    direction_weight: float = 0.0
    recovery_min_iou: float = 0.0
    opening_frames: int = 3
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
        for name in ("low_score_quantile", "low_match_iou", "recovery_min_iou"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.motion_max_age < 0:
            raise ValueError(f"motion_max_age must be >= 0, got {self.motion_max_age}")
        if self.opening_frames < 0:
            raise ValueError(f"opening_frames must be >= 0, got {self.opening_frames}")
        if self.weak_birth_n_init < 0:
            raise ValueError(f"weak_birth_n_init must be >= 0, got {self.weak_birth_n_init}")
        if not 0.0 <= self.direction_weight <= 1.0:
            raise ValueError(f"direction_weight must be in [0, 1], got {self.direction_weight}")
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
            motion_max_age=cfg.motion_max_age,
            n_init=cfg.n_init,
            max_face_distance=cfg.max_face_distance,
            face_budget=cfg.face_budget,
            std_weight_velocity=cfg.std_weight_velocity,
            birth_quantile=cfg.birth_quantile,
            weak_birth_n_init=cfg.weak_birth_n_init,
            low_score_quantile=cfg.low_score_quantile,
            reupdate_after_gap=cfg.reupdate_after_gap,
            direction_weight=cfg.direction_weight,
            recovery_min_iou=cfg.recovery_min_iou,
            opening_frames=cfg.opening_frames,
            motion_cost=cfg.motion_cost,
            min_motion_iou=cfg.min_motion_iou,
        )
        if detection is not None:
            params = replace(
                params, min_confidence=detection.confidence, nms_max_overlap=detection.nms_threshold
            )
        return replace(params, **overrides)
