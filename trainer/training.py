"""SVM training with model selection, and the open-set threshold chosen on unseen identities.

The SVM's own decision names a face (its calibrated probability is reported, never used to pick);
its confidence is the cosine similarity to that person's nearest enrolled face (see
agent/classifier/classifier.py for why). The report puts the SVM's closed-set accuracy next to
1-NN's on the same folds and flags the SVM when it is lower. The "unknown"
threshold is set by leaving whole identities out: a model trained without person P scores P's
photos, which is exactly what a stranger would get. The threshold is the larger of (a) the lowest
value that keeps the fraction of those impostor faces accepted within the false-accept target and
(b) a one-sided normal tolerance bound: the value that, with 95 % confidence, at most the target
fraction of impostor similarities exceed if they are normal (mean + k * sd, k from the noncentral t
distribution; k -> the plain normal quantile as the sample grows). With a few dozen impostor faces
(a) cannot resolve a 1 % target, and a plain normal quantile (the earlier rule) trusted a mean and
sd from 3-9 identities: on 3 enrolled johns it let 1 of 34 unseen faces through, the tolerance
bound none, with the same true-accept rate (docs/recognition.md).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from scipy.stats import beta, nct, norm
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.svm import SVC

from agent.classifier.classifier import REJECTED_CLASS, UNKNOWN, decide, dump_estimator, make_payload
from agent.classifier.verify import sign_payload
from trainer.array_model import ExportError, export_payload

# Linear first: on L2-normalised embeddings it is usually best, and GridSearchCV breaks ties
# toward the earliest candidate, so tiny datasets with many perfect scores get the simplest model.
PARAM_GRID: list[dict[str, Any]] = [
    {"kernel": ["linear"], "C": [1.0, 10.0, 0.1, 100.0]},
    {"kernel": ["rbf"], "C": [1.0, 10.0, 100.0], "gamma": ["scale"]},
]
DEFAULT_PARAMS: dict[str, Any] = {"kernel": "linear", "C": 1.0}
# Used only when FAR cannot be measured (fewer than 3 identities and no negatives).
FALLBACK_THRESHOLD = 0.5
MAX_HOLDOUT_GROUPS = 30
MAX_LOO_SAMPLES = 300
# The false-accept rates the report gives the true-accept rate at, besides the chosen target.
REPORTED_FARS = (0.001, 0.01, 0.05)
# One-sided confidence of the FAR upper bound, and the level the advice about more data uses.
CONFIDENCE = 0.95

Array = npt.NDArray[np.float64]
# The confusion row of the --negatives photos; parentheses keep it apart from any folder name a
# user would choose, and the internal class name out of what users read.
NEGATIVES_ROW = "(negatives)"


class TrainingError(ValueError):
    """A dataset that cannot be trained, phrased as one line for the user."""


@dataclass
class TrainingResult:
    # What goes into the bundle payload (classifier.make_payload).
    model: dict[str, Any]
    classes: list[str]
    labels: list[str]
    threshold: float
    report: dict[str, Any] = field(default_factory=dict)
    # Cross-validated similarities behind the report, for its picture (trainer/plots.py):
    # enrolled faces correctly picked, and faces of identities left out (those the --negatives class
    # rejected at their nearest enrolled face, _Scored.threshold_score).
    genuine_scores: list[float] = field(default_factory=list)
    impostor_scores: list[float] = field(default_factory=list)
    # Every face the final model was fitted on (negatives too): the arrays payload is checked
    # against scikit-learn on them before signing (trainer/array_model.py).
    train_x: Array | None = None

    def summary(self) -> dict[str, Any]:
        """The part of the report that goes into the signed manifest."""
        keys = (
            "faces",
            "params",
            "cv",
            "threshold",
            "far_target",
            "estimated_far",
            "far_upper_95",
            "estimated_tar",
            "tar_at_far",
            "closed_set_accuracy",
            "nn1_accuracy",
            "impostor_faces",
            "genuine_faces",
            "negatives",
        )
        return {k: self.report[k] for k in keys if k in self.report}

    def sign(
        self,
        *,
        embedder_id: str,
        dim: int,
        private_key: Ed25519PrivateKey,
        version: str | None = None,
        training: dict[str, Any] | None = None,
        payload_kind: Literal["arrays", "skops"] = "arrays",
    ) -> bytes:
        """The signed bundle for this result; `training` defaults to `summary()`.

        "arrays" (the default) needs no scikit-learn on the agent, and raises TrainingError instead
        of signing when the arrays do not reproduce the estimator; "skops" makes the older kind."""
        if payload_kind == "arrays":
            probes = self.train_x if self.train_x is not None else self.model["gallery"]
            try:
                payload = export_payload(self.model, np.asarray(probes, dtype=np.float64))
            except ExportError as exc:
                raise TrainingError(f"refusing to sign: the exported model differs: {exc}") from None
        else:
            payload = dump_estimator(self.model)
        return sign_payload(
            payload,
            payload_kind=payload_kind,
            classes=self.classes,
            labels=self.labels,
            threshold=self.threshold,
            embedder_id=embedder_id,
            dim=dim,
            private_key=private_key,
            training=self.summary() if training is None else training,
            version=version,
        )


def _min_count(y: Sequence[str]) -> int:
    return min(Counter(y).values())


def single_photo_people(y: Sequence[str]) -> str:
    """Who has one photo only, for the messages that say so ("alice, bob" or "8 people: a, b, c, ...")."""
    names = sorted(str(label) for label, n in Counter(y).items() if n == 1 and label != REJECTED_CLASS)
    if len(names) <= 3:
        return ", ".join(names) or "negatives"
    return f"{len(names)} people: {', '.join(names[:3])}, ..."


def fit_estimator(x: Array, y: Sequence[str], params: dict[str, Any], seed: int = 0) -> Any:
    """An SVC with calibrated probabilities; calibration needs >= 2 photos per class for its CV."""
    min_count = _min_count(y)
    labels = np.asarray(y)
    if min_count >= 2:
        # An int cv (unshuffled stratified folds), not a splitter object: the estimator is saved
        # with skops and the agent trusts only the types listed in classifier.TRUSTED_TYPES.
        model = CalibratedClassifierCV(
            SVC(class_weight="balanced", **params), method="sigmoid", ensemble=False, cv=min(5, min_count)
        )
        return model.fit(x, labels)
    # A person with a single photo cannot be calibrated. libsvm's own probability=True still runs,
    # but on knn/train it ranked the true person LAST in 8/8 leave-one-out cases while the plain
    # SVC decision was right 8/8: use the decision alone and report no probability.
    return SVC(class_weight="balanced", **params).fit(x, labels)


def select_params(x: Array, y: Sequence[str], seed: int = 0) -> tuple[dict[str, Any], str]:
    """Cross-validated choice of kernel and C; skipped when a class has a single photo."""
    min_count = _min_count(y)
    if min_count < 2:
        return dict(DEFAULT_PARAMS), f"skipped: a single photo of {single_photo_people(y)}; linear C=1"
    folds = min(5, min_count)
    search = GridSearchCV(
        SVC(class_weight="balanced"),
        PARAM_GRID,
        cv=StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed),
        scoring="accuracy",
    )
    search.fit(x, np.asarray(y))
    params = {k: v for k, v in search.best_params_.items()}
    return params, f"{folds}-fold grid search, accuracy {search.best_score_:.3f}"


@dataclass(frozen=True, slots=True)
class _Scored:
    truth: str
    predicted: str  # the SVM's class (may be REJECTED_CLASS)
    score: float  # similarity to the predicted person's nearest enrolled face, in [0, 1]
    probability: float | None
    nearest: float  # similarity to the nearest enrolled face of anyone, in [0, 1]

    @property
    def threshold_score(self) -> float:
        """The similarity the threshold must stop for this face when it is a stranger. A face the
        --negatives class rejected counts at its nearest enrolled face: the threshold then holds
        for strangers unlike every negative too, instead of falling to 0 behind the class."""
        return self.nearest if self.predicted == REJECTED_CLASS else self.score


def _score(
    model: Any, x: Array, truths: Sequence[str], gallery: Array, gallery_labels: Sequence[str]
) -> list[_Scored]:
    """Score faces the way FaceClassifier.predict does (same rule, fold-local gallery)."""
    named, probabilities = decide(model, x)
    sims = x @ gallery.T
    owners = np.asarray(gallery_labels)
    out: list[_Scored] = []
    for person, probability, sim, truth in zip(named, probabilities, sims, truths, strict=True):
        mine = sim[owners == person]
        score = float(np.clip(mine.max(), 0.0, 1.0)) if mine.size else 0.0
        nearest = float(np.clip(sim.max(), 0.0, 1.0)) if sim.size else 0.0
        out.append(_Scored(truth, person, score, probability, nearest))
    return out


def _gallery(x: Array, y: Sequence[str]) -> tuple[Array, list[str]]:
    keep = [i for i, label in enumerate(y) if label != REJECTED_CLASS]
    return x[keep], [y[i] for i in keep]


def _accepted_as(s: _Scored, threshold: float) -> str:
    if s.predicted != REJECTED_CLASS and s.score >= threshold:
        return s.predicted
    return UNKNOWN


def _genuine_splits(y: Sequence[str], seed: int) -> list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]:
    """Sample-level splits for the closed-set estimate; every class keeps >= 1 training photo."""
    labels = np.asarray(y)
    min_count = _min_count(y)
    if min_count >= 2:
        folds = StratifiedKFold(n_splits=min(5, min_count), shuffle=True, random_state=seed)
        return list(folds.split(np.zeros(len(labels)), labels))
    counts = Counter(y)
    candidates = [i for i, label in enumerate(y) if counts[label] >= 2]
    rng = np.random.default_rng(seed)
    if len(candidates) > MAX_LOO_SAMPLES:
        candidates = sorted(rng.choice(candidates, MAX_LOO_SAMPLES, replace=False).tolist())
    everything = np.arange(len(labels))
    return [(np.delete(everything, i), np.array([i])) for i in candidates]


def _upper_95(false_accepts: int, trials: int) -> float | None:
    """One-sided 95 % Clopper-Pearson upper bound on a rate seen as false_accepts / trials."""
    if trials == 0:
        return None
    if false_accepts >= trials:
        return 1.0
    return float(beta.ppf(CONFIDENCE, false_accepts + 1, trials - false_accepts))


def faces_needed(far_target: float) -> int:
    """Unseen-identity faces needed for a 95 % upper bound at `far_target` if none is accepted.

    The "rule of three": with 0 false accepts in n trials the bound is 1 - 0.05^(1/n).
    """
    return math.ceil(math.log(1.0 - CONFIDENCE) / math.log(1.0 - far_target))


def _nn1_correct(x: Array, y: Sequence[str], splits: list[tuple[Any, Any]]) -> tuple[int, int]:
    """1-NN (cosine) right picks on enrolled faces over the same splits as the SVM."""
    right = total = 0
    labels = np.asarray(y)
    for train_idx, test_idx in splits:
        keep = [i for i in train_idx if labels[i] != REJECTED_CLASS]
        probe = [i for i in test_idx if labels[i] != REJECTED_CLASS]
        if not keep or not probe:
            continue
        nearest = np.argmax(x[probe] @ x[keep].T, axis=1)
        right += int(np.sum(labels[keep][nearest] == labels[probe]))
        total += len(probe)
    return right, total


def empirical_threshold(impostor_scores: Sequence[float], far_target: float) -> float:
    """Lowest threshold with (#impostor scores >= threshold) <= floor(far_target * n).

    A score < 0 is never accepted (kept for callers that mark rejected faces so).
    """
    if not impostor_scores:
        return FALLBACK_THRESHOLD
    ordered = sorted(impostor_scores, reverse=True)
    allowed = math.floor(far_target * len(ordered) + 1e-9)
    if allowed >= len(ordered):
        return 0.0
    blocker = ordered[allowed]
    if blocker < 0:
        return 0.0
    return min(1.0, float(np.nextafter(blocker, np.inf)))


def tail_threshold(impostor_scores: Sequence[float], far_target: float) -> float | None:
    """95 % one-sided normal tolerance bound for the (1 - far_target) quantile of the impostor
    similarities (None with fewer than 5 of them)."""
    values = np.array([s for s in impostor_scores if s >= 0], dtype=np.float64)
    n = len(values)
    if n < 5:
        return None
    mean, std = float(values.mean()), float(values.std(ddof=1))
    k = float(nct.ppf(CONFIDENCE, df=n - 1, nc=norm.ppf(1.0 - far_target) * math.sqrt(n))) / math.sqrt(n)
    return float(np.clip(mean + k * max(std, 1e-6), 0.0, 1.0))


def choose_threshold(impostor_scores: Sequence[float], far_target: float) -> float:
    empirical = empirical_threshold(impostor_scores, far_target)
    tail = tail_threshold(impostor_scores, far_target)
    return empirical if tail is None else max(empirical, tail)


def train(
    x: Array,
    y: Sequence[str],
    *,
    negatives: Array | None = None,
    negative_groups: Sequence[str] | None = None,
    far_target: float = 0.01,
    seed: int = 0,
) -> TrainingResult:
    """Train on enrolled faces `x`/`y` (+ negatives as REJECTED_CLASS) and measure FAR/TAR.

    `negative_groups` names the identity of each negative face (for leaving identities out).
    """
    labels = sorted(set(y))
    if not labels:
        raise TrainingError("no usable faces: every photo was skipped")
    neg = negatives if negatives is not None and len(negatives) else np.zeros((0, x.shape[1]))
    neg_groups = list(negative_groups or ["negatives"] * len(neg))
    if len(labels) + (1 if len(neg) else 0) < 2:
        raise TrainingError(
            f"only one person ({labels[0]}): add another person or --negatives so the SVM has two classes"
        )
    all_x = np.vstack([x, neg]) if len(neg) else x
    all_y = list(y) + [REJECTED_CLASS] * len(neg)
    # Identity of each face, for leave-identities-out; negatives are people too.
    groups = list(y) + [f"{REJECTED_CLASS}:{g}" for g in neg_groups]
    notes: list[str] = []

    params, cv_text = select_params(all_x, all_y, seed)
    min_count_all = _min_count(all_y)

    # Closed-set and genuine scores: sample-level cross-validation with the chosen parameters.
    genuine: list[_Scored] = []
    splits = _genuine_splits(all_y, seed)
    for train_idx, test_idx in splits:
        train_y = [all_y[i] for i in train_idx]
        if len(set(train_y)) < 2:
            continue
        model = fit_estimator(all_x[train_idx], train_y, params, seed)
        gallery, owners = _gallery(all_x[train_idx], train_y)
        genuine.extend(_score(model, all_x[test_idx], [all_y[i] for i in test_idx], gallery, owners))
    if not genuine:
        notes.append("no person has 2 photos: true-accept rate not measurable")

    # Open-set scores: leave whole identities out; their faces play strangers.
    impostors: list[_Scored] = []
    identities = sorted(set(groups))
    rng = np.random.default_rng(seed)
    if len(identities) > MAX_HOLDOUT_GROUPS:
        identities = sorted(rng.choice(identities, MAX_HOLDOUT_GROUPS, replace=False).tolist())
    group_array = np.asarray(groups)
    for identity in identities:
        held = np.flatnonzero(group_array == identity)
        kept = np.flatnonzero(group_array != identity)
        kept_y = [all_y[i] for i in kept]
        if len(set(kept_y)) < 2 or not any(c != REJECTED_CLASS for c in kept_y):
            continue
        model = fit_estimator(all_x[kept], kept_y, params, seed)
        gallery, owners = _gallery(all_x[kept], kept_y)
        impostors.extend(_score(model, all_x[held], [UNKNOWN] * len(held), gallery, owners))
    impostor_scores = [s.threshold_score for s in impostors]
    caught = sum(1 for s in impostors if s.predicted == REJECTED_CLASS)
    if caught:
        notes.append(
            f"{caught} of {len(impostors)} unseen-identity faces were rejected by the --negatives class; "
            "the threshold counts them at their nearest enrolled face, so it holds without that class too"
        )
    calibrated = min_count_all >= 2
    if impostors:
        threshold = choose_threshold(impostor_scores, far_target)
    else:
        threshold = FALLBACK_THRESHOLD
        notes.append(
            f"fewer than 3 identities (people + negatives): FAR not measurable, threshold {threshold}"
        )
    needed = faces_needed(far_target)
    if impostors and len(impostors) < needed:
        notes.append(
            f"only {len(impostors)} unseen-identity faces: a FAR of {far_target} cannot be shown at 95 % "
            f"confidence (that takes >= {needed} faces with none accepted), so the threshold leans on "
            "the normal tail fit. Add --negatives DIR with photos of people who are not enrolled "
            f"(e.g. {math.ceil(needed / 10)} people x 10 photos) or enrol more people, and check "
            "far_upper_95"
        )

    false_accepts = sum(1 for s in impostors if _accepted_as(s, threshold) != UNKNOWN)
    enrolled_genuine = [s for s in genuine if s.truth != REJECTED_CLASS]
    true_accepts = sum(1 for s in enrolled_genuine if _accepted_as(s, threshold) == s.truth)
    misidentified = sum(1 for s in enrolled_genuine if _accepted_as(s, threshold) not in (UNKNOWN, s.truth))
    closed_correct = sum(1 for s in enrolled_genuine if s.predicted == s.truth)
    nn1_right, nn1_total = _nn1_correct(all_x, all_y, splits)
    svm_accuracy = closed_correct / len(enrolled_genuine) if enrolled_genuine else None
    nn1_accuracy = nn1_right / nn1_total if nn1_total else None
    if svm_accuracy is not None and nn1_accuracy is not None and svm_accuracy < nn1_accuracy:
        notes.append(
            f"WARNING: the SVM picks the right person for {svm_accuracy:.4f} of held-out faces, "
            f"1-NN on the same embeddings for {nn1_accuracy:.4f}; check the hygiene list and the "
            "photos of the confused people"
        )
    tar_at_far: dict[str, dict[str, Any]] = {}
    for far in sorted({*REPORTED_FARS, far_target}):
        at = choose_threshold(impostor_scores, far) if impostors else FALLBACK_THRESHOLD
        accepted = sum(1 for s in enrolled_genuine if _accepted_as(s, at) == s.truth)
        tar_at_far[f"{far:g}"] = {
            "threshold": round(at, 4),
            "tar": round(accepted / len(enrolled_genuine), 4) if enrolled_genuine else None,
            "resolved": bool(impostors) and len(impostors) >= faces_needed(far),
        }

    rows = [*labels, *([NEGATIVES_ROW] if len(neg) else [])]
    columns = [*labels, UNKNOWN]
    matrix = [[0] * len(columns) for _ in rows]
    for s in genuine:
        truth = NEGATIVES_ROW if s.truth == REJECTED_CLASS else s.truth
        matrix[rows.index(truth)][columns.index(_accepted_as(s, threshold))] += 1
    people: dict[str, dict[str, Any]] = {}
    for label in labels:
        truth_n = sum(1 for s in genuine if s.truth == label)
        named = [s for s in genuine if _accepted_as(s, threshold) == label]
        hits = sum(1 for s in named if s.truth == label)
        people[label] = {
            "faces": int(sum(1 for t in y if t == label)),
            "precision": round(hits / len(named), 4) if named else None,
            "recall": round(hits / truth_n, 4) if truth_n else None,
        }

    estimator = fit_estimator(all_x, all_y, params, seed)
    classes = [str(c) for c in estimator.classes_]
    gallery, owners = _gallery(all_x, all_y)
    genuine_scores = [s.score for s in enrolled_genuine if s.predicted == s.truth]
    report: dict[str, Any] = {
        "faces": len(y),
        "negatives": len(neg),
        "params": params,
        "probabilities": "calibrated (sigmoid, cross-validated)"
        if calibrated
        else f"none: a single photo of {single_photo_people(all_y)}",
        "cv": cv_text,
        "threshold": round(threshold, 6),
        "threshold_empirical": round(empirical_threshold(impostor_scores, far_target), 6)
        if impostors
        else None,
        "threshold_tail": _round(tail_threshold(impostor_scores, far_target)),
        "highest_impostor_similarity": _round(max(impostor_scores)) if impostors else None,
        "lowest_genuine_similarity": _round(min(genuine_scores)) if genuine_scores else None,
        "far_target": far_target,
        "impostor_faces": len(impostors),
        "estimated_far": round(false_accepts / len(impostors), 4) if impostors else None,
        "far_upper_95": _round(_upper_95(false_accepts, len(impostors))),
        "genuine_faces": len(enrolled_genuine),
        "estimated_tar": round(true_accepts / len(enrolled_genuine), 4) if enrolled_genuine else None,
        "closed_set_accuracy": _round(svm_accuracy),
        "nn1_accuracy": _round(nn1_accuracy),
        "pick": "SVM decision function (SVC refit on all photos); probability reported only",
        "tar_at_far": tar_at_far,
        "misidentification_rate": round(misidentified / len(enrolled_genuine), 4)
        if enrolled_genuine
        else None,
        "people": people,
        "confusion": {"rows": rows, "columns": columns, "matrix": matrix},
        "notes": notes,
    }
    return TrainingResult(
        model=make_payload(estimator, gallery, owners),
        classes=classes,
        labels=labels,
        threshold=threshold,
        report=report,
        genuine_scores=genuine_scores,
        impostor_scores=impostor_scores,
        train_x=all_x,
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def format_report(report: dict[str, Any]) -> str:
    """The report as the text `train` prints."""
    lines: list[str] = []
    lines.append(f"faces: {report['faces']} enrolled, {report['negatives']} negatives")
    lines.append(f"model: SVC {report['params']} ({report['cv']})")
    width = max([len(p) for p in report["people"]] + [6])
    lines.append(f"{'person':<{width}}  faces  precision  recall")
    for person, row in report["people"].items():
        precision = "-" if row["precision"] is None else f"{row['precision']:.3f}"
        recall = "-" if row["recall"] is None else f"{row['recall']:.3f}"
        lines.append(f"{person:<{width}}  {row['faces']:>5}  {precision:>9}  {recall:>6}")
    confusion = report["confusion"]
    cell = max([len(c) for c in confusion["columns"]] + [5])
    rwidth = max([len(r) for r in confusion["rows"]] + [10])
    lines.append("confusion (rows: truth, columns: named as; cross-validated):")
    lines.append(" " * rwidth + "  " + " ".join(f"{c:>{cell}}" for c in confusion["columns"]))
    for name, row in zip(confusion["rows"], confusion["matrix"], strict=True):
        lines.append(f"{name:<{rwidth}}  " + " ".join(f"{v:>{cell}}" for v in row))

    def rate(key: str) -> str:
        value = report.get(key)
        return "n/a" if value is None else f"{value:.4f}"

    lines.append(
        f"similarity: highest unseen-identity face {rate('highest_impostor_similarity')}, "
        f"lowest correctly named enrolled face {rate('lowest_genuine_similarity')}"
    )
    lines.append(
        f"threshold {report['threshold']:.4f} for FAR target {report['far_target']}: "
        f"estimated FAR {rate('estimated_far')} over {report['impostor_faces']} unseen-identity faces "
        f"(95% upper bound {rate('far_upper_95')}), TAR {rate('estimated_tar')} over "
        f"{report['genuine_faces']} faces, closed-set accuracy {rate('closed_set_accuracy')}"
    )
    lines.append(
        f"closed-set accuracy: SVM {rate('closed_set_accuracy')}, 1-NN on the same embeddings "
        f"{rate('nn1_accuracy')} (cross-validated; the SVM's own decision picks the person)"
    )
    cells = []
    for far, row in report.get("tar_at_far", {}).items():
        tar = "n/a" if row["tar"] is None else f"{row['tar']:.4f}"
        cells.append(f"FAR {far}: TAR {tar} at {row['threshold']:.4f}{'' if row['resolved'] else '*'}")
    if cells:
        lines.append("true-accept rate at other targets: " + "; ".join(cells))
        lines.append("  (* too few unseen-identity faces to show that FAR; the tail fit extrapolates)")
    lines.extend(f"note: {n}" for n in report["notes"])
    return "\n".join(lines)
