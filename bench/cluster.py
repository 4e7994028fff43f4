"""Choose and check the grouping rule of `facetrack-trainer cluster`, leaving whole people out.

    python -m bench.cluster [--json]

Faces are found and embedded exactly as `train` and `cluster` do (the default config's detector,
alignment and SFace, photos padded by 0.5). Two sets of people that share nobody:
- A: data/faces/dlib_johns, 5 people x 11 photos;
- B: data/faces/knn (train, and the single-face test photos), data/faces/refs (alex, obama,
  lin-manuel-miranda), and every face of photos/dlib_faces (group photos of strangers: each face
  its own identity, so it can only cost precision).
Both sets are pooled and split by person into 5 folds (4 seeds): the cut is chosen on 4 folds (the
largest cosine distance on a grid whose pairwise precision stays at or above 0.97) and scored on the
held-out fold; pairs are summed over the held-out folds. The default (trainer/clustering.py) is the
median of the chosen cuts; the curve of each set under every cut is printed too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import load_config
from trainer.clustering import DEFAULT_DISTANCE, PRECISION_TARGET, choose_distance, group_faces, pair_score
from trainer.dataset import FaceEmbedding, list_images

FOLDS = 5
SEEDS = 4
GRID = [round(0.30 + 0.02 * i, 2) for i in range(31)]
_KNN_TEST = {
    "alex_lacamoire1.jpg": "alex_lacamoire",
    "johnsnow_test1.jpg": "kit_harington",
    "obama1.jpg": "obama",
}
_REFS = {"alex-lacamoire.png": "alex_lacamoire", "obama_small.jpg": "obama", "lin-manuel-miranda.png": "lin"}


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


def embed(
    embedding: FaceEmbedding, items: list[tuple[Path, str]], strangers: list[Path]
) -> tuple[Any, list[str]]:
    rows: list[Any] = []
    ids: list[str] = []
    for path, who in items:
        faces = embedding.faces_in(path)
        if len(faces) == 1:
            rows.append(faces[0])
            ids.append(who)
    for path in strangers:
        for k, face in enumerate(embedding.faces_in(path)):
            rows.append(face)
            ids.append(f"stranger/{path.name}/{k}")
    return np.asarray(rows, dtype=np.float32), ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--assets-dir", type=Path, default=Path("models/assets"))
    args = parser.parse_args(argv)
    config = load_config(None, assets_dir=args.assets_dir)
    data = args.assets_dir / "data"
    embedding = FaceEmbedding.from_config(config, cache_dir=None, pad=0.5)
    strangers = list_images(data / "photos" / "dlib_faces")
    sets = {
        "A (dlib_johns)": embed(embedding, _set_a(data), []),
        "B (knn, refs, strangers)": embed(embedding, _set_b(data), strangers),
    }
    out: dict[str, Any] = {
        "embedder": embedding.embedder_id,
        "precision_target": PRECISION_TARGET,
        "folds": [],
    }
    (x_a, y_a), (x_b, y_b) = sets.values()
    x_all = np.concatenate([x_a, x_b])
    y_all = y_a + y_b
    people = sorted(set(y_all))
    totals = np.zeros(3)  # correct pairs, predicted pairs, true pairs over the held-out folds
    for seed in range(SEEDS):
        order = np.random.default_rng(seed).permutation(len(people))
        fold_of = {people[i]: k % FOLDS for k, i in enumerate(order)}
        for fold in range(FOLDS):
            held = np.array([fold_of[y] == fold for y in y_all])
            y_tune = [y for y, h in zip(y_all, held, strict=True) if not h]
            y_test = [y for y, h in zip(y_all, held, strict=True) if h]
            cut = choose_distance(x_all[~held], y_tune, GRID, PRECISION_TARGET)
            score = pair_score(group_faces(x_all[held], cut), y_test)
            totals += (score.precision * score.predicted_pairs, score.predicted_pairs, score.true_pairs)
            totals_recall = score.recall * score.true_pairs
            out["folds"].append(
                {
                    "seed": seed,
                    "fold": fold,
                    "cut": cut,
                    "people_held_out": len(set(y_test)),
                    "faces_held_out": len(y_test),
                    "precision": round(score.precision, 4),
                    "recall": round(score.recall, 4),
                    "true_pairs": score.true_pairs,
                    "correct_pairs": round(totals_recall),
                    "predicted_pairs": score.predicted_pairs,
                }
            )
    correct = sum(f["correct_pairs"] for f in out["folds"])
    predicted = sum(f["predicted_pairs"] for f in out["folds"])
    true = sum(f["true_pairs"] for f in out["folds"])
    cuts = sorted(f["cut"] for f in out["folds"])
    out["held_out"] = {
        "precision": round(correct / predicted, 4) if predicted else 1.0,
        "recall": round(correct / true, 4) if true else 1.0,
        "pairs": true,
        "cuts": {"min": cuts[0], "median": cuts[len(cuts) // 2], "max": cuts[-1]},
    }
    out["default_cut"] = DEFAULT_DISTANCE
    out["default_on"] = {}
    for name, (x, y) in sets.items():
        s = pair_score(group_faces(x, DEFAULT_DISTANCE), y)
        out["default_on"][name] = {"precision": round(s.precision, 4), "recall": round(s.recall, 4)}
    out["curve"] = {
        name: [
            (cut, round((s := pair_score(group_faces(x, cut), y)).precision, 3), round(s.recall, 3))
            for cut in GRID
        ]
        for name, (x, y) in sets.items()
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    h = out["held_out"]
    print(
        f"embedder {out['embedder']}; {len(people)} identities, {len(y_all)} faces;"
        f" {FOLDS}-fold over people x {SEEDS} seeds:"
        f" cut chosen on the other folds at pairwise precision >= {PRECISION_TARGET}"
    )
    print(
        f"held out: pairwise precision {h['precision']:.3f} recall {h['recall']:.3f}"
        f" over {h['pairs']} true pairs;"
        f" chosen cuts min {h['cuts']['min']:.2f} median {h['cuts']['median']:.2f} max {h['cuts']['max']:.2f}"
    )
    for name, s in out["default_on"].items():
        print(
            f"default cut {DEFAULT_DISTANCE:.2f} on {name}:"
            f" precision {s['precision']:.3f} recall {s['recall']:.3f}"
        )
    print("cut   " + "   ".join(f"{name[:1]}: prec  rec" for name in sets))
    for i, cut in enumerate(GRID):
        row = "   ".join(f"   {out['curve'][n][i][1]:.3f} {out['curve'][n][i][2]:.3f}" for n in sets)
        print(f"{cut:.2f} {row}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
