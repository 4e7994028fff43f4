"""The trained model as the "arrays" payload, checked against scikit-learn before it may be signed.

The agent evaluates the arrays with numpy (agent/classifier/svm_arrays.py); it must name the same
person with the same probability as the scikit-learn estimator the report was measured with. The
check runs on the training faces and on random points on and off the unit sphere, and a payload
that differs is never signed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from agent.classifier.array_payload import dump_arrays
from agent.classifier.classifier import decide
from agent.classifier.svm_arrays import ArraySVM, from_estimator

# The probabilities must agree to this (absolute): both sides compute in float64.
PROBABILITY_TOLERANCE = 1e-9
RANDOM_POINTS = 200


class ExportError(ValueError):
    """The arrays do not reproduce the scikit-learn model; the bundle must not be signed."""


def probe_points(x: npt.NDArray[np.float64], seed: int) -> npt.NDArray[np.float64]:
    """The training faces, random unit vectors (what an embedder emits) and random points at the
    faces' scale, mixed between pairs of faces."""
    rng = np.random.default_rng(seed)
    sphere = rng.standard_normal((RANDOM_POINTS, x.shape[1]))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    pick = rng.integers(0, len(x), size=(RANDOM_POINTS, 2))
    mix = rng.random((RANDOM_POINTS, 1))
    between = mix * x[pick[:, 0]] + (1 - mix) * x[pick[:, 1]]
    return np.vstack([x, sphere, between])


def check_same(estimator: Any, arrays: ArraySVM, x: npt.NDArray[np.float64]) -> None:
    """Raise ExportError unless `arrays` picks and scores every row of `x` as `estimator` does."""
    want_names, want_proba = decide(estimator, x)
    got_names, got_proba = arrays.decide(x)
    for row, (a, b) in enumerate(zip(want_names, got_names, strict=True)):
        if a != b:
            raise ExportError(f"point {row}: scikit-learn names {a!r}, the arrays {b!r}")
    for row, (p, q) in enumerate(zip(want_proba, got_proba, strict=True)):
        if (p is None) != (q is None) or (
            p is not None and q is not None and abs(p - q) > PROBABILITY_TOLERANCE
        ):
            raise ExportError(f"point {row}: scikit-learn probability {p}, the arrays {q}")


def export_payload(model: dict[str, Any], train_x: npt.NDArray[np.float64], seed: int = 0) -> bytes:
    """The "arrays" payload of `model` (classifier.make_payload's dict), checked first."""
    estimator = model["estimator"]
    try:
        arrays = from_estimator(estimator)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    check_same(estimator, arrays, probe_points(np.asarray(train_x, dtype=np.float64), seed))
    return dump_arrays(arrays, model["gallery"], [str(v) for v in model["gallery_labels"]])
