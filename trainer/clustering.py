"""Group face embeddings into people, and score a grouping against known identities (pure).

The rule: average-linkage agglomerative clustering on cosine distance, cut at DEFAULT_DISTANCE. Two
groups join while the mean distance between their members stays below the cut, so one blurred face
cannot chain two people together the way single linkage would. Groups of one are "ungrouped".

DEFAULT_DISTANCE is chosen by `python -m bench.cluster` on the shared face sets, leaving whole
people out: the cut is picked on one set of people (the largest with pairwise precision >= 0.97)
and scored on the other (docs/enrolment.md#how-the-grouping-rule-was-chosen).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.cluster.hierarchy import fcluster, linkage

from trainer.cluster_cut import DEFAULT_DISTANCE as DEFAULT_DISTANCE

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


def choose_distance(
    embeddings: npt.ArrayLike, identities: Sequence[str], grid: Sequence[float], precision_target: float
) -> float:
    """The largest cut on `grid` whose grouping keeps pairwise precision >= the target (the first
    grid value when none does)."""
    best = grid[0]
    for cut in sorted(grid):
        if pair_score(group_faces(embeddings, cut), identities).precision >= precision_target:
            best = cut
    return best
