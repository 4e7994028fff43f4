"""Choose and check the grouping rule of `facetrack-trainer cluster`, leaving whole people out.

    python -m bench.cluster [--json]

Faces are found and embedded exactly as `cluster` does (trainer/photo_faces.py: the default
config's detector, alignment and SFace, photos padded by 0.5, the agent's quality numbers). Two
sets of people that share nobody:
- A: data/faces/dlib_johns, 5 people x 11 photos;
- B: data/faces/knn (train, and the single-face test photos), data/faces/refs (alex, obama,
  lin-manuel-miranda), and every face of the 9 VOC group photos and dogs.jpg in photos/dlib_faces
  (strangers: each face its own identity, so it can only cost precision).
photos/dlib_faces/bald_guys.jpg is a collage of 4 actors, each several times, with no labels: it
is not scored (a "stranger" per face would count true matches as wrong), only its groups shown.

The rule has two numbers: the cosine cut of average linkage and the smallest face height grouped
(faces failing the agent's own gate are never grouped). People of both sets are pooled and split
into 5 folds (4 seeds): on 4 folds the rule finding the most pairs while keeping pairwise
precision >= 0.97 on each set is chosen (clustering.choose_rule: the middle of the plateau of
equally good cuts), and scored on the fifth; pairs are summed over the held-out folds, per set and
pooled. The default rule (trainer/cluster_cut.py) is then scored on each whole set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import load_config
from agent.vision.face_quality import QualityParams
from trainer.clustering import (
    PRECISION_TARGET,
    LabelledFaces,
    PairScore,
    Rule,
    choose_rule,
    group_gated,
    pair_score,
    plateaus,
)
from trainer.dataset import FaceEmbedding, list_images
from trainer.photo_faces import PhotoFace, photo_faces

FOLDS = 5
SEEDS = 4
CUTS = [round(0.40 + 0.02 * i, 2) for i in range(16)]
# From the agent's own gate (detection.face_min_height, 20 px) up.
HEIGHTS = [20.0, 24.0, 32.0, 40.0, 48.0, 56.0, 64.0]
_KNN_TEST = {
    "alex_lacamoire1.jpg": "alex_lacamoire",
    "johnsnow_test1.jpg": "kit_harington",
    "obama1.jpg": "obama",
}
_REFS = {"alex-lacamoire.png": "alex_lacamoire", "obama_small.jpg": "obama", "lin-manuel-miranda.png": "lin"}
_COLLAGE = "bald_guys.jpg"


def _set_a(data: Path) -> list[tuple[Path, str]]:
    root = data / "faces" / "dlib_johns"
    return [(p, f"johns/{d.name}") for d in sorted(root.iterdir()) if d.is_dir() for p in list_images(d)]


def _set_b(data: Path) -> list[tuple[Path, str]]:
    items = [
        (p, d.name)
        for d in sorted((data / "faces" / "knn" / "train").iterdir())
        if d.is_dir()
        for p in list_images(d)
    ]
    items += [(data / "faces" / "knn" / "test" / name, who) for name, who in _KNN_TEST.items()]
    items += [(data / "faces" / "refs" / name, who) for name, who in _REFS.items()]
    return items


class _Faces:
    """Embeds photos and turns their faces into a scored set."""

    def __init__(self, embedding: FaceEmbedding, gate: QualityParams) -> None:
        self.embedding = embedding
        self.gate = gate

    def _row(self, face: PhotoFace) -> tuple[Any, float]:
        # A face the agent's own gate rejects is never grouped: height 0 puts it under any gate.
        height = face.quality.height if face.quality.rejected(self.gate) is None else 0.0
        return face.embedding, height

    def labelled(self, items: list[tuple[Path, str]], strangers: list[Path]) -> LabelledFaces:
        rows: list[Any] = []
        heights: list[float] = []
        ids: list[str] = []
        for path, who in items:
            faces = photo_faces(self.embedding, path)
            if len(faces) == 1:  # a labelled photo with several faces does not say which is whom
                row, height = self._row(faces[0])
                rows.append(row)
                heights.append(height)
                ids.append(who)
        for path in strangers:
            for face in photo_faces(self.embedding, path):
                row, height = self._row(face)
                rows.append(row)
                heights.append(height)
                ids.append(f"stranger/{path.name}/{face.index}")
        return LabelledFaces(np.asarray(rows, dtype=np.float32), heights, ids)


def _fmt(correct: float, predicted: int, true: int) -> dict[str, Any]:
    return {
        "precision": round(correct / predicted, 4) if predicted else 1.0,
        "recall": round(correct / true, 4) if true else 1.0,
        "correct_pairs": round(correct),
        "predicted_pairs": predicted,
        "true_pairs": true,
    }


def _add(total: list[float], score: PairScore) -> None:
    total[0] += score.precision * score.predicted_pairs
    total[1] += score.predicted_pairs
    total[2] += score.true_pairs


def held_out(sets: dict[str, LabelledFaces]) -> dict[str, Any]:
    """People of all sets pooled, 5 folds x 4 seeds: rule chosen on 4 folds, scored on the fifth."""
    people = sorted({who for s in sets.values() for who in s.identities})
    totals = {name: [0.0, 0.0, 0.0] for name in sets}
    rules: Counter[tuple[float, float]] = Counter()
    for seed in range(SEEDS):
        order = np.random.default_rng(seed).permutation(len(people))
        fold_of = {people[i]: k % FOLDS for k, i in enumerate(order)}
        for fold in range(FOLDS):
            tune, test = [], []
            for s in sets.values():
                rows = range(len(s.identities))
                tune.append(s.subset([i for i in rows if fold_of[s.identities[i]] != fold]))
                test.append(s.subset([i for i in rows if fold_of[s.identities[i]] == fold]))
            rule = choose_rule(tune, CUTS, HEIGHTS, PRECISION_TARGET)
            rules[(rule.max_distance, rule.min_height)] += 1
            for name, s in zip(sets, test, strict=True):
                _add(totals[name], pair_score(group_gated(s.embeddings, s.heights, rule), s.identities))
    pooled = [sum(t[k] for t in totals.values()) for k in range(3)]
    out: dict[str, Any] = {name: _fmt(t[0], int(t[1]), int(t[2])) for name, t in totals.items()}
    out["pooled"] = _fmt(pooled[0], int(pooled[1]), int(pooled[2]))
    out["rules_chosen"] = [
        {"max_distance": cut, "min_height": height, "folds": n} for (cut, height), n in rules.most_common()
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--assets-dir", type=Path, default=Path("models/assets"))
    args = parser.parse_args(argv)
    load_start = os.getloadavg()
    config = load_config(None, assets_dir=args.assets_dir)
    data = args.assets_dir / "data"
    embedding = FaceEmbedding.from_config(config, cache_dir=None, pad=0.5)
    gate = QualityParams(
        config.detection.face_min_height, config.detection.face_min_sharpness, config.detection.face_max_turn
    )
    faces = _Faces(embedding, gate)
    photos = data / "photos" / "dlib_faces"
    strangers = [p for p in list_images(photos) if p.name != _COLLAGE]
    sets = {
        "A (dlib_johns)": faces.labelled(_set_a(data), []),
        "B (knn, refs, strangers)": faces.labelled(_set_b(data), strangers),
    }
    default = Rule()
    out: dict[str, Any] = {
        "embedder": embedding.embedder_id,
        "precision_target": PRECISION_TARGET,
        "sets": {
            n: {"faces": len(s.identities), "identities": len(set(s.identities))} for n, s in sets.items()
        },
        "held_out": held_out(sets),
        "default": {"max_distance": default.max_distance, "min_height": default.min_height},
        "default_on": {},
    }
    total = [0.0, 0.0, 0.0]
    for name, s in sets.items():
        score = pair_score(group_gated(s.embeddings, s.heights, default), s.identities)
        _add(total, score)
        correct = score.precision * score.predicted_pairs
        out["default_on"][name] = _fmt(correct, score.predicted_pairs, score.true_pairs)
    out["default_on"]["pooled"] = _fmt(total[0], int(total[1]), int(total[2]))
    # The same cut with only the agent's gate (20 px): what the height gate buys.
    ungated = Rule(default.max_distance, HEIGHTS[0])
    out["default_cut_agent_gate_only"] = {}
    for name, s in sets.items():
        score = pair_score(group_gated(s.embeddings, s.heights, ungated), s.identities)
        correct = score.precision * score.predicted_pairs
        out["default_cut_agent_gate_only"][name] = _fmt(correct, score.predicted_pairs, score.true_pairs)
    everyone = choose_rule(list(sets.values()), CUTS, HEIGHTS, PRECISION_TARGET)
    flat = plateaus(list(sets.values()), CUTS, HEIGHTS, PRECISION_TARGET).get(everyone.min_height, [])
    out["chosen_on_all"] = {
        "max_distance": everyone.max_distance,
        "min_height": everyone.min_height,
        "plateau": flat,
    }
    collage = faces.labelled([], [photos / _COLLAGE])
    found = group_gated(collage.embeddings, collage.heights, default)
    out["collage"] = {"faces": len(collage.identities), "group_sizes": [len(g) for g in found]}
    load_end = os.getloadavg()
    out["load_average"] = {"start": [round(v, 2) for v in load_start], "end": [round(v, 2) for v in load_end]}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    _print(out)
    return 0


def _line(label: str, s: dict[str, Any]) -> str:
    return (
        f"  {label:<26} precision {s['precision']:.3f} recall {s['recall']:.3f}"
        f"  ({s['correct_pairs']} of {s['predicted_pairs']} predicted pairs right,"
        f" {s['true_pairs']} true pairs)"
    )


def _print(out: dict[str, Any]) -> None:
    load = out["load_average"]
    print(f"embedder {out['embedder']}; load average start {load['start']} end {load['end']}")
    for name, s in out["sets"].items():
        print(f"set {name}: {s['faces']} faces, {s['identities']} identities")
    print(
        f"held out ({FOLDS}-fold over people x {SEEDS} seeds; rule chosen on the other folds:"
        f" most pairs at precision >= {out['precision_target']} on each set):"
    )
    for name, s in out["held_out"].items():
        if name != "rules_chosen":
            print(_line(name, s))
    chosen = ", ".join(
        f"cut {r['max_distance']:.2f} min height {r['min_height']:g} x{r['folds']}"
        for r in out["held_out"]["rules_chosen"]
    )
    print(f"  rules chosen: {chosen}")
    d = out["default"]
    print(f"default rule (cut {d['max_distance']:.2f}, min height {d['min_height']:g} px) on each whole set:")
    for name, s in out["default_on"].items():
        print(_line(name, s))
    print(f"the same cut with the agent's gate only ({HEIGHTS[0]:g} px):")
    for name, s in out["default_cut_agent_gate_only"].items():
        print(_line(name, s))
    a = out["chosen_on_all"]
    print(
        f"rule chosen on all people: cut {a['max_distance']:.2f}, min height {a['min_height']:g} px"
        f" (middle of the cuts {a['plateau'][0]:.2f}..{a['plateau'][-1]:.2f}, all as good at that gate)"
    )
    c = out["collage"]
    print(f"{_COLLAGE} (4 actors, unlabelled, not scored): {c['faces']} faces, groups of {c['group_sizes']}")


if __name__ == "__main__":
    sys.exit(main())
