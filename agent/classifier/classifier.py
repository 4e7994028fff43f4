"""The face classifier the pipeline calls: embeddings in, (label, confidence) out.

Two parts, both in the payload (a dict): an SVC that *names* the face, and the gallery of
enrolled embeddings that decides whether it is anyone at all.

The named person is the SVM's own decision (argmax of its decision function), made by the SVC fitted
on all enrolled photos. The estimator is usually a `CalibratedClassifierCV(SVC, ensemble=False)`:
its probabilities are reported as `Prediction.probability`, but its `predict()` (the argmax of
sigmoids fitted per class on cross-validated scores) is never used: with 5 photos per person those
fits reorder the classes, and a held-out 30-person set lost 11 % of its picks to that. The
open-set decision uses the cosine similarity to the named person's nearest enrolled face because
the SVM probability does not separate strangers: leaving identities out on dlib_johns, strangers
got probabilities up to 0.87 while enrolled faces went down to 0.68, whereas similarities were
<= 0.44 for strangers and >= 0.75 for enrolled faces.

The payload is numpy arrays (`payload_kind` "arrays", agent/classifier/array_payload.py: no
scikit-learn at run time) or, in bundles from before that, a skops archive. Loading a skops payload
accepts exactly the types in TRUSTED_TYPES: never pickle, never trusted=True.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.classifier.array_payload import PAYLOAD_KIND as ARRAYS_KIND
from agent.classifier.array_payload import load_arrays
from agent.classifier.bundle import Manifest
from agent.classifier.errors import BundleError, RejectCode

# Re-exported: the trainer and tests know these labels as the classifier's.
from agent.classifier.labels import REJECTED_CLASS as REJECTED_CLASS
from agent.classifier.labels import RESERVED_LABELS as RESERVED_LABELS
from agent.classifier.labels import UNKNOWN as UNKNOWN
from agent.classifier.svm_arrays import ArraySVM

# Every non-default type a trainer-made payload may contain. skops refuses anything else.
TRUSTED_TYPES: list[str] = [
    "sklearn.svm._classes.SVC",
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
]


@dataclass(frozen=True, slots=True)
class Prediction:
    """`label` is a person or "unknown".

    `confidence` is the cosine similarity (clipped to [0, 1]) to the nearest enrolled face of the
    person the SVM picked; the label is that person when it reaches the bundle's threshold.
    `probability` is the calibrated probability for that person (None when the training set was too
    small to calibrate); it never changes the pick. `candidate` is the person the SVM picked, also
    when the label is "unknown" (None when a --negatives person won).
    """

    label: str
    confidence: float
    probability: float | None = None
    candidate: str | None = None


def dump_estimator(estimator: Any) -> bytes:
    import skops.io as sio

    return bytes(sio.dumps(estimator))


def load_estimator(payload: bytes) -> Any:
    """The estimator from a skops payload; raises BundleError for untrusted types or garbage.

    skops (with scikit-learn, SciPy and pandas) is imported here, not with the module: an agent
    that has no classifier yet does not carry its 60-100 MB (docs/benchmarks.md#memory)."""
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(data=payload)
    except Exception as exc:
        raise BundleError(RejectCode.BAD_PAYLOAD, f"payload is not a skops archive: {exc}") from None
    extra = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if extra:
        raise BundleError(RejectCode.UNTRUSTED_TYPES, f"payload contains untrusted types: {', '.join(extra)}")
    try:
        return sio.loads(payload, trusted=TRUSTED_TYPES)
    except Exception as exc:
        raise BundleError(RejectCode.BAD_PAYLOAD, f"payload does not load with skops: {exc}") from None


def load_payload(payload: bytes, kind: str) -> dict[str, Any]:
    """The payload dict of a bundle whose manifest says `payload_kind` is `kind`."""
    if kind == ARRAYS_KIND:
        return load_arrays(payload)
    loaded: dict[str, Any] = load_estimator(payload)
    return loaded


def make_payload(estimator: Any, gallery: npt.ArrayLike, gallery_labels: list[str]) -> dict[str, Any]:
    """The object the trainer saves with skops."""
    return {
        "estimator": estimator,
        "gallery": np.asarray(gallery, dtype=np.float32),
        "gallery_labels": np.asarray(gallery_labels, dtype=np.str_),
    }


class FaceClassifier:
    """An SVM over face embeddings with an open-set threshold."""

    def __init__(self, payload: Any, manifest: Manifest) -> None:
        if not isinstance(payload, dict) or set(payload) != {"estimator", "gallery", "gallery_labels"}:
            raise BundleError(RejectCode.BAD_PAYLOAD, "payload is not a facetrack classifier dict")
        estimator = payload["estimator"]
        gallery = payload["gallery"]
        gallery_labels = payload["gallery_labels"]
        if (
            not isinstance(gallery, np.ndarray)
            or not isinstance(gallery_labels, np.ndarray)
            or gallery.ndim != 2
            or gallery.shape[1] != manifest.dim
            or gallery_labels.shape != (gallery.shape[0],)
        ):
            raise BundleError(RejectCode.BAD_PAYLOAD, "payload gallery has the wrong shape")
        if not set(str(v) for v in gallery_labels) <= set(manifest.labels):
            raise BundleError(RejectCode.BAD_PAYLOAD, "payload gallery names people not in the manifest")
        features: int | None
        if isinstance(estimator, ArraySVM):
            classes, features = list(estimator.classes), estimator.dim
        else:
            classes = [str(c) for c in getattr(estimator, "classes_", [])]
            features = getattr(estimator, "n_features_in_", None)
        if classes != manifest.classes:
            raise BundleError(
                RejectCode.BAD_PAYLOAD,
                f"estimator classes {classes} do not match the manifest classes {manifest.classes}",
            )
        if sorted(set(manifest.classes) - {REJECTED_CLASS}) != sorted(manifest.labels):
            raise BundleError(RejectCode.BAD_MANIFEST, "manifest labels do not match its classes")
        if features != manifest.dim:
            raise BundleError(
                RejectCode.BAD_PAYLOAD,
                f"estimator expects {features} features but the manifest says dim {manifest.dim}",
            )
        if not isinstance(estimator, ArraySVM):
            _check_sklearn_svm(estimator)
        self._estimator = estimator
        self._gallery = gallery.astype(np.float64)
        self._gallery_labels = np.array([str(v) for v in gallery_labels], dtype=object)
        self.manifest = manifest

    @property
    def version(self) -> str:
        return self.manifest.model_version

    @property
    def labels(self) -> list[str]:
        return list(self.manifest.labels)

    @property
    def embedder_id(self) -> str:
        return self.manifest.embedder_id

    @property
    def dim(self) -> int:
        return self.manifest.dim

    @property
    def threshold(self) -> float:
        return self.manifest.threshold

    def predict(self, embeddings: npt.ArrayLike) -> list[Prediction]:
        """One Prediction per row; "unknown" below the threshold or when a --negatives person wins."""
        x = np.asarray(embeddings, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected embeddings of shape (n, {self.dim}), got {x.shape}")
        if x.shape[0] == 0:
            return []
        named, probabilities = decide(self._estimator, x)
        similarities = x @ self._gallery.T
        out: list[Prediction] = []
        for person, probability, sims in zip(named, probabilities, similarities, strict=True):
            if person == REJECTED_CLASS:
                nearest = float(np.clip(sims.max(), 0.0, 1.0)) if sims.size else 0.0
                out.append(Prediction(UNKNOWN, nearest, probability, None))
                continue
            mine = sims[self._gallery_labels == person]
            confidence = float(np.clip(mine.max(), 0.0, 1.0)) if mine.size else 0.0
            label = person if confidence >= self.threshold else UNKNOWN
            out.append(Prediction(label, confidence, probability, person))
        return out


def _check_sklearn_svm(estimator: Any) -> None:
    """A skops payload's estimator must decide as svm_pick reads it."""
    svm = svm_of(estimator)
    if not callable(getattr(svm, "decision_function", None)):
        raise BundleError(RejectCode.BAD_PAYLOAD, "estimator has no SVM decision function")
    if getattr(svm, "decision_function_shape", "ovr") != "ovr":
        # One column per class is what svm_pick reads; "ovo" gives one per pair of classes.
        raise BundleError(RejectCode.BAD_PAYLOAD, "SVM decision function is not one-vs-rest")


def svm_of(estimator: Any) -> Any:
    """The SVC whose decision names the face.

    For `CalibratedClassifierCV(ensemble=False)` that is the one SVC it refits on all photos
    (`calibrated_classifiers_[0].estimator`); the calibration is fitted on cross-validated scores
    and only maps them to probabilities. This is the one place that reads that attribute; the
    tests pin it (tests/test_classifier_pick.py).
    """
    calibrated = getattr(estimator, "calibrated_classifiers_", None)
    if calibrated is None:
        return estimator
    if len(calibrated) != 1:
        raise BundleError(
            RejectCode.BAD_PAYLOAD, "calibrated estimator is an ensemble; the trainer saves ensemble=False"
        )
    return calibrated[0].estimator


def svm_pick(estimator: Any, x: npt.NDArray[np.float64]) -> list[str]:
    """The SVM's own decision per row: the class with the largest decision value."""
    svm = svm_of(estimator)
    classes = [str(c) for c in svm.classes_]
    scores = np.asarray(svm.decision_function(x), dtype=np.float64)
    if scores.ndim == 1:  # two classes: positive means classes_[1]
        return [classes[int(v > 0)] for v in scores]
    return [classes[int(i)] for i in scores.argmax(axis=1)]


def decide(estimator: Any, x: npt.NDArray[np.float64]) -> tuple[list[str], list[float | None]]:
    """The SVM's pick per row and its calibrated probability (None when the model has none)."""
    if isinstance(estimator, ArraySVM):
        return estimator.decide(x)
    named = svm_pick(estimator, x)
    if getattr(estimator, "calibrated_classifiers_", None) is None:
        return named, [None] * len(named)
    proba = np.asarray(estimator.predict_proba(x), dtype=np.float64)
    index = {str(c): i for i, c in enumerate(estimator.classes_)}
    return named, [float(row[index[name]]) for row, name in zip(proba, named, strict=True)]
