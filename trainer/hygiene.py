"""Enrolment hygiene: suspicious photos, found on the embeddings before anything is trained.

Three findings, each naming the files so the user can fix the folders:

- near-duplicates: two photos whose embeddings are almost identical (the same picture saved twice,
  or resized); they inflate one person's weight and make cross-validation look better than it is;
- probably misfiled: a photo much closer to another person's photos than to any other photo in its
  own folder;
- inconsistent person: a person whose photos agree with each other less than typical photos of
  *different* people do (two people in one folder, or photos too poor to recognise).

The limits are cosine similarities of L2-normalised embeddings; the ones below were checked on the
shared identity sets with both embedders (docs/recognition.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

# A copy of a johns chip resized to 120x120 scores 0.987 (SFace) / 0.990 (MobileFaceNet) against the
# original; dlib's johns hold 4 pairs of one picture cropped twice, at 0.974-1.000 (SFace), and the
# most similar other pair of one person there scores 0.950 (SFace) / 0.964 (MobileFaceNet).
DUPLICATE_SIMILARITY = 0.97
# "Much closer": the nearest photo of another person beats the nearest photo of its own by this.
MISFILED_MARGIN = 0.10
# A person is inconsistent when the median similarity among their photos is below this quantile of
# the similarities between different people's photos.
INCONSISTENT_QUANTILE = 0.99


@dataclass
class Hygiene:
    near_duplicates: list[tuple[str, str, float]] = field(default_factory=list)
    misfiled: list[tuple[str, str, str, float, float]] = field(default_factory=list)
    inconsistent: list[tuple[str, float, float]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.near_duplicates) + len(self.misfiled) + len(self.inconsistent)

    def lines(self) -> list[str]:
        out = [f"near-duplicate: {a} and {b} (similarity {s:.3f})" for a, b, s in self.near_duplicates]
        out += [
            f"probably misfiled: {path} (in {own}) is closer to {other} ({o:.3f}) than to its own "
            f"folder ({w:.3f})"
            for path, own, other, o, w in self.misfiled
        ]
        out += [
            f"inconsistent person: {person}'s photos agree at {median:.3f} (median), below what "
            f"different people reach here ({limit:.3f}); two people in one folder, or poor photos?"
            for person, median, limit in self.inconsistent
        ]
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "near_duplicates": [
                {"a": a, "b": b, "similarity": round(s, 4)} for a, b, s in self.near_duplicates
            ],
            "misfiled": [
                {"photo": p, "folder": own, "closer_to": other, "other": round(o, 4), "own": round(w, 4)}
                for p, own, other, o, w in self.misfiled
            ],
            "inconsistent": [
                {"person": p, "median_similarity": round(m, 4), "impostor_q99": round(q, 4)}
                for p, m, q in self.inconsistent
            ],
        }


def check(x: npt.NDArray[np.float64], labels: Sequence[str], paths: Sequence[Path | str]) -> Hygiene:
    """Findings for enrolled faces `x` (one L2-normalised row per photo) with their labels and files."""
    result = Hygiene()
    n = len(labels)
    if n < 2:
        return result
    sims = np.asarray(x, dtype=np.float64) @ np.asarray(x, dtype=np.float64).T
    y = np.asarray(labels)
    names = [str(p) for p in paths]
    same = y[:, None] == y[None, :]
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)
    for i, j in zip(*np.nonzero(upper & (sims >= DUPLICATE_SIMILARITY)), strict=True):
        result.near_duplicates.append((names[i], names[j], float(sims[i, j])))
    others = ~np.eye(n, dtype=bool)
    for i in range(n):
        own = others[i] & same[i]
        foreign = ~same[i]
        if not own.any() or not foreign.any():
            continue
        nearest_own = float(sims[i, own].max())
        j = int(np.flatnonzero(foreign)[np.argmax(sims[i, foreign])])
        if float(sims[i, j]) - nearest_own >= MISFILED_MARGIN:
            result.misfiled.append((names[i], str(y[i]), str(y[j]), float(sims[i, j]), nearest_own))
    between = sims[upper & ~same]
    if between.size == 0:
        return result
    limit = float(np.quantile(between, INCONSISTENT_QUANTILE))
    for person in sorted(set(labels)):
        rows = np.flatnonzero(y == person)
        if len(rows) < 2:
            continue
        block = sims[np.ix_(rows, rows)][np.triu(np.ones((len(rows), len(rows)), dtype=bool), k=1)]
        median = float(np.median(block))
        if median < limit:
            result.inconsistent.append((person, median, limit))
    return result
