"""Enrolment hygiene: suspicious photos, found on the embeddings before anything is trained.

Three findings, each naming the files so the user can fix the folders:

- near-duplicates: two photos whose embeddings are almost identical (the same picture saved twice,
  or resized); they inflate one person's weight and make cross-validation look better than it is;
- probably misfiled: a photo much closer to another person's photos than to any other photo in its
  own folder. Found one at a time, most obvious first, and each is then counted with the person it
  resembles: a photo copied into a second folder also makes its original look misfiled (its nearest
  other-folder photo is its own copy), and that echo is not reported;
- inconsistent person: a person whose photos agree with each other less than typical photos of
  *different* people do (two people in one folder, or photos too poor to recognise). Judged with
  the misfiled photos moved where they belong: one stray photo otherwise raises "what different
  people reach" to the similarity of a photo with its copy, and most people then look inconsistent.

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


@dataclass(frozen=True, slots=True)
class Misfiled:
    photo: str
    folder: str
    closer_to: str
    closest_photo: str
    other: float  # similarity to closest_photo
    own: float  # similarity to the nearest other photo of its own folder


@dataclass
class Hygiene:
    near_duplicates: list[tuple[str, str, float]] = field(default_factory=list)
    misfiled: list[Misfiled] = field(default_factory=list)
    inconsistent: list[tuple[str, float, float]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.near_duplicates) + len(self.misfiled) + len(self.inconsistent)

    def lines(self) -> list[str]:
        out = [f"near-duplicate: {a} and {b} (similarity {s:.3f})" for a, b, s in self.near_duplicates]
        out += [
            f"probably misfiled: {m.photo} (in {m.folder}) looks like {m.closer_to} ({m.other:.3f}, "
            f"{'the same photo as ' if m.other >= DUPLICATE_SIMILARITY else ''}{m.closest_photo}), "
            f"not like its own folder ({m.own:.3f})"
            for m in self.misfiled
        ]
        out += [
            f"inconsistent person: {person}'s photos agree at {median:.3f} (median), below what "
            f"different people reach here ({limit:.3f}); two people in one folder, or poor photos?"
            for person, median, limit in self.inconsistent
        ]
        return out

    def suspects(self) -> list[str]:
        """The photos and people to look at first, most telling first, for a one-line message."""
        return [m.photo for m in self.misfiled] + [f"{p}/ (photos disagree)" for p, _, _ in self.inconsistent]

    def as_dict(self) -> dict[str, Any]:
        return {
            "near_duplicates": [
                {"a": a, "b": b, "similarity": round(s, 4)} for a, b, s in self.near_duplicates
            ],
            "misfiled": [
                {
                    "photo": m.photo,
                    "folder": m.folder,
                    "closer_to": m.closer_to,
                    "closest_photo": m.closest_photo,
                    "other": round(m.other, 4),
                    "own": round(m.own, 4),
                }
                for m in self.misfiled
            ],
            "inconsistent": [
                {"person": p, "median_similarity": round(m, 4), "impostor_q99": round(q, 4)}
                for p, m, q in self.inconsistent
            ],
        }


def _most_misfiled(
    sims: npt.NDArray[np.float64], y: npt.NDArray[np.str_], moved: set[int]
) -> tuple[int, int, float] | None:
    """(photo, its closest photo of another folder, nearest own similarity) of the photo that
    beats its own folder by the widest margin (at least MISFILED_MARGIN), or None."""
    n = len(y)
    same = y[:, None] == y[None, :]
    own = same & ~np.eye(n, dtype=bool)
    nearest_own = np.where(own, sims, -np.inf).max(axis=1)
    foreign = np.where(~same, sims, -np.inf)
    closest = foreign.argmax(axis=1)
    margin = foreign[np.arange(n), closest] - nearest_own
    # Undecidable without another photo in its folder or in any other folder.
    margin[~own.any(axis=1) | same.all(axis=1)] = -np.inf
    margin[list(moved)] = -np.inf
    best = int(np.argmax(margin))
    if not np.isfinite(margin[best]) or margin[best] < MISFILED_MARGIN:
        return None
    return best, int(closest[best]), float(nearest_own[best])


def check(x: npt.NDArray[np.float64], labels: Sequence[str], paths: Sequence[Path | str]) -> Hygiene:
    """Findings for enrolled faces `x` (one L2-normalised row per photo) with their labels and files."""
    result = Hygiene()
    n = len(labels)
    if n < 2:
        return result
    sims = np.asarray(x, dtype=np.float64) @ np.asarray(x, dtype=np.float64).T
    filed = np.asarray(labels)
    names = [str(p) for p in paths]
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)
    for i, j in zip(*np.nonzero(upper & (sims >= DUPLICATE_SIMILARITY)), strict=True):
        result.near_duplicates.append((names[i], names[j], float(sims[i, j])))
    # Where each photo belongs as far as the photos tell: misfiled ones move to whom they resemble.
    y = filed.copy()
    moved: set[int] = set()
    while (found := _most_misfiled(sims, y, moved)) is not None:
        i, j, nearest_own = found
        result.misfiled.append(
            Misfiled(names[i], str(filed[i]), str(y[j]), names[j], float(sims[i, j]), nearest_own)
        )
        y[i] = y[j]
        moved.add(i)
    same = y[:, None] == y[None, :]
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
