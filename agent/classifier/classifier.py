"""The face classifier the pipeline calls: embeddings in, (label, confidence) out.

The estimator is a scikit-learn SVC (wrapped in CalibratedClassifierCV for probabilities) stored
with skops. Loading accepts exactly the types in TRUSTED_TYPES: never pickle, never trusted=True.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import skops.io as sio

from agent.classifier.bundle import Manifest
from agent.classifier.errors import BundleError, RejectCode

UNKNOWN = "unknown"
# Class name of the people trained from --negatives: never reported, always "unknown".
REJECTED_CLASS = "__rejected__"
RESERVED_LABELS = frozenset({UNKNOWN, REJECTED_CLASS})

# Every non-default type a trainer-made payload may contain. skops refuses anything else.
TRUSTED_TYPES: list[str] = [
    "sklearn.svm._classes.SVC",
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
]


@dataclass(frozen=True, slots=True)
class Prediction:
    """`label` is a person or "unknown"; `confidence` is the probability of the best enrolled person."""

    label: str
    confidence: float


def dump_estimator(estimator: Any) -> bytes:
    return bytes(sio.dumps(estimator))


def load_estimator(payload: bytes) -> Any:
    """The estimator from a skops payload; raises BundleError for untrusted types or garbage."""
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


class FaceClassifier:
    """An SVM over face embeddings with an open-set threshold."""

    def __init__(self, estimator: Any, manifest: Manifest) -> None:
        classes = [str(c) for c in getattr(estimator, "classes_", [])]
        if classes != manifest.classes:
            raise BundleError(
                RejectCode.BAD_PAYLOAD,
                f"estimator classes {classes} do not match the manifest classes {manifest.classes}",
            )
        if sorted(set(manifest.classes) - {REJECTED_CLASS}) != sorted(manifest.labels):
            raise BundleError(RejectCode.BAD_MANIFEST, "manifest labels do not match its classes")
        features = getattr(estimator, "n_features_in_", None)
        if features != manifest.dim:
            raise BundleError(
                RejectCode.BAD_PAYLOAD,
                f"estimator expects {features} features but the manifest says dim {manifest.dim}",
            )
        if not callable(getattr(estimator, "predict_proba", None)):
            raise BundleError(RejectCode.BAD_PAYLOAD, "estimator has no probability estimates")
        self._estimator = estimator
        self.manifest = manifest
        self._classes = np.array(manifest.classes, dtype=object)
        self._enrolled = np.array([c != REJECTED_CLASS for c in manifest.classes], dtype=bool)

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

    def probabilities(self, embeddings: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """(n, len(classes)) class probabilities, columns in manifest.classes order."""
        x = np.asarray(embeddings, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected embeddings of shape (n, {self.dim}), got {x.shape}")
        if x.shape[0] == 0:
            return np.zeros((0, len(self._classes)))
        return np.asarray(self._estimator.predict_proba(x), dtype=np.float64)

    def predict(self, embeddings: npt.ArrayLike) -> list[Prediction]:
        """One Prediction per row; "unknown" below the threshold or when a rejected person wins."""
        proba = self.probabilities(embeddings)
        out: list[Prediction] = []
        for row in proba:
            best = int(np.argmax(row))
            enrolled_scores = np.where(self._enrolled, row, -1.0)
            best_enrolled = int(np.argmax(enrolled_scores))
            confidence = float(row[best_enrolled])
            if self._enrolled[best] and confidence >= self.threshold:
                out.append(Prediction(str(self._classes[best]), confidence))
            else:
                out.append(Prediction(UNKNOWN, confidence))
        return out
