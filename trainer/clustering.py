"""Group face embeddings into people, and score a grouping against known identities (pure).

The rule: faces below the quality gate (shorter than `min_height`, or failing the agent's own gate)
are not grouped; the others go through average-linkage agglomerative clustering on cosine
distance, cut at `max_distance`. Two groups join while the mean distance between their members
stays below the cut, so one blurred face cannot chain two people together the way single linkage
would. Groups of one are "ungrouped".

Both numbers are chosen by `python -m bench.cluster` on the shared face sets, leaving whole people
out: picked on some people (the rule with the best recall whose pairwise precision stays >= 0.97 on
every set) and scored on the others (docs/enrolment.md#how-the-grouping-rule-was-chosen).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.cluster.hierarchy import fcluster, linkage

from trainer.cluster_cut import DEFAULT_DISTANCE as DEFAULT_DISTANCE
from trainer.cluster_cut import DEFAULT_MIN_HEIGHT as DEFAULT_MIN_HEIGHT

# The pairwise precision bench/cluster.py keeps when it picks the cut: a wrong merge puts one
# person's faces under another's name, which costs more than a person split in two groups.
PRECISION_TARGET = 0.97


def normalise(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    rows = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    out: npt.NDArray[np.float64] = rows / np.maximum(norms, 1e-12)
    return out


def group_faces(embeddings: npt.ArrayLike, max_distance: float = DEFAULT_DISTANCE) -> list[list[int]]:
    """Row indices per group, largest first (ties: the group with the earliest row first);
    singletons are returned as groups of one at the end."""
    x = normalise(embeddings)
    n = len(x)
    if n == 0:
        return []
    if n == 1:
        return [[0]]
    tree = linkage(x, method="average", metric="cosine")
    labels = fcluster(tree, t=max_distance, criterion="distance")
    groups: dict[int, list[int]] = {}
    for row, label in enumerate(labels.tolist()):
        groups.setdefault(int(label), []).append(row)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0]))


@dataclass(frozen=True, slots=True)
class Rule:
    max_distance: float = DEFAULT_DISTANCE
    min_height: float = DEFAULT_MIN_HEIGHT


def group_gated(
    embeddings: npt.ArrayLike, heights: Sequence[float], rule: Rule, passed: Sequence[bool] | None = None
) -> list[list[int]]:
    """Groups of two or more rows, largest first, among the faces at least `rule.min_height` tall
    (and `passed`, the agent's gate, when given); every other row is ungrouped."""
    x = np.asarray(embeddings, dtype=np.float64)
    kept = [i for i, h in enumerate(heights) if h >= rule.min_height and (passed is None or passed[i])]
    if len(kept) < 2:
        return []
    found = group_faces(x[kept], rule.max_distance)
    return [[kept[i] for i in rows] for rows in found if len(rows) >= 2]


@dataclass(frozen=True, slots=True)
class PairScore:
    precision: float
    recall: float
    predicted_pairs: int
    true_pairs: int


def pair_score(groups: Sequence[Sequence[int]], identities: Sequence[str]) -> PairScore:
    """Pairwise precision and recall: a pair is two faces of one person; predicted when both are
    in one group. Precision is 1.0 when no pair is predicted."""
    predicted = correct = 0
    for members in groups:
        counts: dict[str, int] = {}
        for row in members:
            counts[identities[row]] = counts.get(identities[row], 0) + 1
        k = len(members)
        predicted += k * (k - 1) // 2
        correct += sum(c * (c - 1) // 2 for c in counts.values())
    totals: dict[str, int] = {}
    for identity in identities:
        totals[identity] = totals.get(identity, 0) + 1
    true_pairs = sum(c * (c - 1) // 2 for c in totals.values())
    precision = correct / predicted if predicted else 1.0
    recall = correct / true_pairs if true_pairs else 1.0
    return PairScore(precision, recall, predicted, true_pairs)


@dataclass(frozen=True, slots=True)
class LabelledFaces:
    """One face set: embeddings, face heights and who each face is."""

    embeddings: npt.NDArray[np.float32]
    heights: list[float]
    identities: list[str]

    def subset(self, rows: Sequence[int]) -> LabelledFaces:
        return LabelledFaces(
            self.embeddings[list(rows)],
            [self.heights[i] for i in rows],
            [self.identities[i] for i in rows],
        )


def plateaus(
    sets: Sequence[LabelledFaces], cuts: Sequence[float], heights: Sequence[float], precision_target: float
) -> dict[float, list[float]]:
    """For each gate, the cuts finding the most pairs (summed over the sets) among the rules whose
    pairwise precision is >= the target on every set; empty when no rule qualifies."""
    found: dict[tuple[float, float], int] = {}
    for cut in cuts:
        for height in heights:
            rule = Rule(cut, height)
            scores = [pair_score(group_gated(s.embeddings, s.heights, rule), s.identities) for s in sets]
            if all(sc.precision >= precision_target for sc in scores):
                found[(cut, height)] = round(sum(sc.recall * sc.true_pairs for sc in scores))
    most = max(found.values(), default=0)
    out: dict[float, list[float]] = {}
    for (cut, height), pairs in found.items():
        if pairs == most:
            out.setdefault(height, []).append(cut)
    return {height: sorted(kept) for height, kept in out.items()}


def choose_rule(
    sets: Sequence[LabelledFaces], cuts: Sequence[float], heights: Sequence[float], precision_target: float
) -> Rule:
    """The gate with the widest plateau (ties: the lower gate) and the middle of its plateau: a
    margin on both sides, since the strict end splits people seen on video and the lenient end
    merges strangers the tuning people did not happen to include. When no rule qualifies: the
    smallest cut with the highest gate."""
    found = plateaus(sets, cuts, heights, precision_target)
    if not found:
        return Rule(min(cuts), max(heights))
    height = max(found, key=lambda h: (found[h][-1] - found[h][0], -h))
    return Rule(found[height][len(found[height]) // 2], height)
