"""Deep SORT multi-target tracker (Wojke, Bewley, Paulus 2017), written from the paper.

Per frame: predict every track with the Kalman filter; gate track/detection pairs by Mahalanobis
distance; match confirmed tracks in a cascade ordered by time since update, on appearance (or on
motion when no appearance is given); match the rest (tentative tracks, and confirmed tracks that
missed only the last frame) by IoU; update, age and create tracks; report lifecycle events.
The matching (cascade, IoU stage, cost and gate assembly, and the optional ByteTrack and OC-SORT
stages) is `association.Associator`; this module owns the tracks: their filter state, galleries,
lifecycle, the birth rule and the score split between high and low detections.

Pure: no I/O, no images. Appearance arrives as feature vectors.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from agent.tracking.association import Associator
from agent.tracking.camera_motion import as_warp, scale_of, warp_points, warp_states
from agent.tracking.cut_carry import face_carry_over
from agent.tracking.detection import tlwh_to_xyah, xyah_to_tlwh
from agent.tracking.kalman_filter import KalmanFilter
from agent.tracking.lifecycle import TrackEvent, TrackUpdate, TrackView
from agent.tracking.nn_matching import FeatureGallery
from agent.tracking.observation_centric import reupdate
from agent.tracking.params import TrackerParams
from agent.tracking.score_window import ScoreWindow
from agent.tracking.track import TrackTable

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


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
        *,
        scene_cut: bool = False,
        camera_warp: npt.ArrayLike | None = None,
    ) -> TrackUpdate:
        """Advance one frame with this frame's detections and return live tracks and events.

        boxes_tlwh (n, 4) pixels; scores (n,); features (n, d) L2-normalised or None for motion
        only; face_features (n, k) with NaN rows where a detection has no face, or None.
        scene_cut: this frame starts a new shot (agent.vision.scene_cut); see `_cross_cut`.
        only; face_features (n, k) with NaN rows where a detection has no face, or None;
        camera_warp (2, 3) the picture's motion from the previous frame to this one (a similarity
        transform, agent.vision.camera_motion), or None for a still camera.
        """
        boxes, score_array, feats, faces = self._validate(boxes_tlwh, scores, features, face_features)
        warp = as_warp(camera_warp) if camera_warp is not None else None
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
            if warp is not None:
                self._follow_camera(t, warp)
            t.age += 1
            t.time_since_update += 1

        matched_det = np.full(n, -1, dtype=np.intp)
        unmatched_cols = np.arange(m, dtype=np.intp)
        low = None
        if p.low_score_quantile > 0 and m:
            low = score_array < self._scores.quantile(p.low_score_quantile)
        if n and m:
            innovation = self.kf.innovation(t.mean, t.cov)
            rows, cols = self._associator.associate(t, boxes, measurements, innovation, feats, faces, low)
            if (p.birth_quantile > 0 or p.low_score_quantile > 0) and rows.size:
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
            alive = (t.time_since_update == 0) | (
                t.confirmed & (t.hits >= p.n_init) & (t.time_since_update <= self._age_limits(t))
            )
            t.keep(alive)
            matched_det = matched_det[alive]

        if low is not None and unmatched_cols.size:
            # ByteTrack: a low-score box may continue a track, never start one.
            unmatched_cols = unmatched_cols[~low[unmatched_cols]]
        weak = np.zeros(unmatched_cols.size, dtype=np.bool_)
        if p.birth_quantile > 0 and unmatched_cols.size:
            floor = self._scores.quantile(p.birth_quantile)
            weak = score_array[unmatched_cols] < floor
            if p.weak_birth_n_init == 0:
                unmatched_cols, weak = unmatched_cols[~weak], weak[~weak]
        if unmatched_cols.size:
            needed = np.where(weak, p.weak_birth_n_init, p.n_init)
            if self._frame <= p.opening_frames:
                # Nothing came before the stream's first frames to vouch for or against a box, so
                # they are reported at once (SORT does); `_apply_misses` still drops one that
                # misses before n_init hits, as it would a tentative track.
                needed = np.ones_like(needed)
            self._start_tracks(unmatched_cols, needed, measurements, feats, faces, events)
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
            # OC-SORT's memory of the old shot would pull the new motion the old way.
            t.forget_observations(rows)
            carried[rows] = True
        ended = (~carried & t.confirmed).nonzero()[0]
        if ended.size:
            self._emit(t, "deleted", ended, events)
        t.keep(carried)

    @staticmethod
    def _follow_camera(t: TrackTable, warp: Array) -> None:
        """Move predictions, and the OC-SORT memory of past observations, with the picture."""
        t.mean, t.cov = warp_states(t.mean, t.cov, warp)
        t.observed_mean, t.observed_cov = warp_states(t.observed_mean, t.observed_cov, warp)
        t.observed_centres = warp_points(t.observed_centres, warp)
        t.observation[:, :2] = warp_points(t.observation[:, :2], warp)
        t.observation[:, 3] *= scale_of(warp)

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
        if p.reupdate_after_gap:
            back = t.time_since_update[rows] > 1
            if back.any():
                r, c = rows[back], cols[back]
                t.mean[r], t.cov[r] = reupdate(
                    self.kf,
                    t.observed_mean[r],
                    t.observed_cov[r],
                    t.observation[r],
                    measurements[c],
                    t.time_since_update[r],
                )
        t.observe(rows, measurements[cols])
        t.hits[rows] += 1
        t.time_since_update[rows] = 0
        newly_confirmed = rows[~t.confirmed[rows] & (t.hits[rows] >= t.needed_hits[rows])]
        refound = rows[t.lost[rows]]
        if newly_confirmed.size:
            t.confirmed[newly_confirmed] = True
            self._emit(t, "confirmed", newly_confirmed, events)
        if refound.size:
            t.lost[refound] = False
            self._emit(t, "refound", refound, events)
        self._remember(t, rows, cols, feats, faces)

    def _apply_misses(self, t: TrackTable, matched_det: IntArray, events: list[TrackEvent]) -> None:
        p = self.params
        missed = matched_det < 0
        # A track confirmed in the opening frames with fewer than n_init hits has no miss to spare.
        dies = (t.time_since_update > self._age_limits(t)) | (t.hits < p.n_init)
        newly_lost = (missed & t.confirmed & ~t.lost & ~dies).nonzero()[0]
        if newly_lost.size:
            t.lost[newly_lost] = True
            self._emit(t, "lost", newly_lost, events)
        expired = (missed & t.confirmed & dies).nonzero()[0]
        if expired.size:
            self._emit(t, "deleted", expired, events)

    def _age_limits(self, t: TrackTable) -> IntArray:
        """Misses each track survives: max_age for a track with colour or face features to be
        re-identified by, motion_max_age for one that has only its motion (beyond a few frames,
        overlap with a coasted prediction says little about who it is)."""
        p = self.params
        if p.motion_max_age >= p.max_age:
            return np.full(len(t), p.max_age, dtype=np.intp)
        seen = [g is not None or f is not None for g, f in zip(t.galleries, t.face_galleries, strict=True)]
        return np.where(np.array(seen, dtype=np.bool_), p.max_age, p.motion_max_age)

    def _start_tracks(
        self,
        cols: IntArray,
        needed: npt.NDArray[np.int64],
        measurements: Array,
        feats: npt.NDArray[np.float32] | None,
        faces: npt.NDArray[np.float32] | None,
        events: list[TrackEvent],
    ) -> None:
        """Tentative tracks from detections `cols`, each confirmed after its `needed` hits."""
        t = self._tracks
        k = cols.size
        ids = np.arange(self._next_id, self._next_id + k, dtype=np.int64)
        self._next_id += k
        mean, cov = self.kf.initiate(measurements[cols])
        start = len(t)
        t.append(ids, mean, cov, needed)
        rows = np.arange(start, start + k, dtype=np.intp)
        confirmed = rows[t.confirmed[rows]]
        if confirmed.size:
            self._emit(t, "confirmed", confirmed, events)
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
