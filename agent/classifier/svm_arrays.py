"""The trained SVM as plain arrays, evaluated with numpy exactly as scikit-learn evaluates it.

This is the one module that reproduces scikit-learn internals (pinned against scikit-learn by
tests/test_svm_arrays.py, and by the trainer before it signs, trainer/array_model.py):

- `SVC.decision_function` with `decision_function_shape="ovr"` (sklearn/svm/_base.py). libsvm
  trains one-vs-one; for k > 2 classes sklearn turns the k(k-1)/2 pairwise values into k columns
  with `sklearn.utils.multiclass._ovr_decision_function`: the votes each class won plus its summed
  pairwise confidence squashed into (-1/3, 1/3). For two classes it is the single pairwise value,
  positive meaning `classes_[1]` (sklearn negates libsvm's dual coefficients and intercept for
  that case, so the public `dual_coef_` and `intercept_` read here already carry that sign).
- `_CalibratedClassifier.predict_proba` with sigmoid calibrators (sklearn/calibration.py): each
  class's ovr column goes through `expit(-(a * d + b))`; with two classes the one calibrator gives
  `classes_[1]` and the other is its complement; with more the columns are normalised to sum to 1
  (uniform where they sum to 0), and values in (1, 1 + 1e-5] become exactly 1 (as of
  scikit-learn 1.9; the pins in the tests catch a change).

Reading a fitted estimator (`from_estimator`) only reads attributes: scikit-learn is not imported
here, so the agent never loads it for an arrays bundle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

KERNELS = ("linear", "rbf", "poly", "sigmoid")


@dataclass(frozen=True, slots=True, eq=False)
class ArraySVM:
    """A fitted SVC (one-vs-one inside, one-vs-rest decision) and its optional sigmoid calibration.

    `dual_coef` (k-1, n_sv), `intercept` (k(k-1)/2,), `n_support` (k,) are SVC's public
    `dual_coef_`, `intercept_`, `n_support_`. `calibration` is (k, 2) rows of (a, b) per class,
    (1, 2) for two classes, or None when the model has no probabilities.
    """

    classes: tuple[str, ...]
    support_vectors: Array
    dual_coef: Array
    intercept: Array
    n_support: npt.NDArray[np.int64]
    kernel: str
    gamma: float
    coef0: float
    degree: int
    calibration: Array | None

    @property
    def dim(self) -> int:
        return int(self.support_vectors.shape[1])

    def kernel_matrix(self, x: Array) -> Array:
        """K(x_i, sv_j), computed as libsvm's dense kernels do."""
        dots = x @ self.support_vectors.T
        if self.kernel == "linear":
            return dots
        if self.kernel == "rbf":
            squared: Array = (
                np.einsum("ij,ij->i", x, x)[:, None]
                + np.einsum("ij,ij->i", self.support_vectors, self.support_vectors)[None, :]
                - 2.0 * dots
            )
            return np.exp(-self.gamma * squared)
        if self.kernel == "poly":
            return np.power(self.gamma * dots + self.coef0, self.degree)
        return np.tanh(self.gamma * dots + self.coef0)

    def ovo_decision(self, x: Array) -> Array:
        """libsvm's pairwise decision values (n, k(k-1)/2), pairs (0,1), (0,2), ..., (k-2,k-1)."""
        kernel = self.kernel_matrix(x)
        starts = np.concatenate([[0], np.cumsum(self.n_support)])
        k = len(self.classes)
        out = np.empty((x.shape[0], k * (k - 1) // 2), dtype=np.float64)
        pair = 0
        for i in range(k):
            si = slice(int(starts[i]), int(starts[i + 1]))
            for j in range(i + 1, k):
                sj = slice(int(starts[j]), int(starts[j + 1]))
                # Class i's vectors carry their coefficient against j in row j-1, class j's
                # against i in row i (libsvm's layout, as SVC documents for dual_coef_).
                out[:, pair] = (
                    kernel[:, si] @ self.dual_coef[j - 1, si]
                    + kernel[:, sj] @ self.dual_coef[i, sj]
                    + self.intercept[pair]
                )
                pair += 1
        return out

    def decision_function(self, x: Array) -> Array:
        """SVC.decision_function(x), ovr shape: (n,) for two classes, (n, k) otherwise."""
        ovo = self.ovo_decision(x)
        if len(self.classes) == 2:
            return ovo[:, 0]
        return ovr_from_ovo(ovo < 0, -ovo, len(self.classes))

    def predict_proba(self, x: Array, decision: Array | None = None) -> Array | None:
        """CalibratedClassifierCV(ensemble=False).predict_proba(x), or None without calibration."""
        if self.calibration is None:
            return None
        scores = self.decision_function(x) if decision is None else decision
        if scores.ndim == 1:
            scores = scores[:, None]
        k = len(self.classes)
        proba = np.zeros((x.shape[0], k), dtype=np.float64)
        for column, (a, b) in enumerate(self.calibration):
            proba[:, column + 1 if k == 2 else column] = _expit(-(a * scores[:, column] + b))
        if k == 2:
            proba[:, 0] = 1.0 - proba[:, 1]
        else:
            total = np.sum(proba, axis=1)[:, np.newaxis]
            proba = np.divide(proba, total, out=np.full_like(proba, 1.0 / k), where=total != 0)
        proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
        return proba

    def decide(self, x: Array) -> tuple[list[str], list[float | None]]:
        """The SVM's pick per row (argmax of the ovr decision) and its calibrated probability."""
        scores = self.decision_function(x)
        # Two classes: one column, positive means classes[1].
        picks = (scores > 0).astype(np.intp) if scores.ndim == 1 else scores.argmax(axis=1)
        named = [self.classes[int(i)] for i in picks]
        proba = self.predict_proba(x, scores)
        if proba is None:
            return named, [None] * len(named)
        return named, [float(proba[row, int(i)]) for row, i in enumerate(picks)]


def ovr_from_ovo(predictions: npt.NDArray[np.bool_], confidences: Array, n_classes: int) -> Array:
    """sklearn.utils.multiclass._ovr_decision_function: votes plus squashed summed confidences."""
    votes = np.zeros((predictions.shape[0], n_classes))
    sum_of_confidences = np.zeros((predictions.shape[0], n_classes))
    k = 0
    for i in range(n_classes):
        for j in range(i + 1, n_classes):
            sum_of_confidences[:, i] -= confidences[:, k]
            sum_of_confidences[:, j] += confidences[:, k]
            votes[predictions[:, k] == 0, i] += 1
            votes[predictions[:, k] == 1, j] += 1
            k += 1
    transformed: Array = sum_of_confidences / (3 * (np.abs(sum_of_confidences) + 1))
    return votes + transformed


def _expit(z: Array) -> Array:
    with np.errstate(over="ignore"):
        out: Array = 1.0 / (1.0 + np.exp(-z))
    return out


def from_estimator(estimator: Any) -> ArraySVM:
    """The arrays of a fitted SVC or CalibratedClassifierCV(SVC, ensemble=False, method="sigmoid").

    Raises ValueError for anything else (an ensemble, isotonic calibration, an ovo-shaped SVC)."""
    calibrated = getattr(estimator, "calibrated_classifiers_", None)
    calibration: Array | None = None
    if calibrated is None:
        svm = estimator
    else:
        if len(calibrated) != 1:
            raise ValueError("calibrated estimator is an ensemble; arrays need ensemble=False")
        svm = calibrated[0].estimator
        pairs = []
        for calibrator in calibrated[0].calibrators:
            if type(calibrator).__name__ != "_SigmoidCalibration":
                raise ValueError(f"calibrator {type(calibrator).__name__} is not sigmoid")
            pairs.append((float(calibrator.a_), float(calibrator.b_)))
        calibration = np.array(pairs, dtype=np.float64).reshape(-1, 2)
    if type(svm).__name__ != "SVC" or svm.decision_function_shape != "ovr":
        raise ValueError("the estimator is not a one-vs-rest SVC")
    if svm.kernel not in KERNELS:
        raise ValueError(f"kernel {svm.kernel!r} cannot be exported")
    return ArraySVM(
        classes=tuple(str(c) for c in svm.classes_),
        support_vectors=np.ascontiguousarray(svm.support_vectors_, dtype=np.float64),
        dual_coef=np.ascontiguousarray(svm.dual_coef_, dtype=np.float64),
        intercept=np.ascontiguousarray(svm.intercept_, dtype=np.float64),
        n_support=np.asarray(svm.n_support_, dtype=np.int64),
        kernel=str(svm.kernel),
        gamma=float(svm._gamma),
        coef0=float(svm.coef0),
        degree=int(svm.degree),
        calibration=calibration,
    )
