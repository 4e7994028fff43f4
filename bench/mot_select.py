"""Choose tracker settings by leave-one-sequence-out against the original SORT.

    python -m bench.mot_select SEQ_DIR [SEQ_DIR ...] [--grid JSON] [--json]

Runs our tracker (motion only) with every combination of the settings in the grid on every
sequence with ground truth, and scores each run (bench/mot_score.py: py-motmetrics' arithmetic,
fast). A setting's margin on a set of sequences is its worst difference to the original SORT
(bench.mot.REFERENCE_SORT, reproduced exactly by agent.tracking.baselines.Sort) over those
sequences and over MOTA and IDF1: a setting that wins big on one sequence and loses on another has
a negative margin. Ties are broken by the mean difference.

For each sequence in turn, the setting with the best margin on the others is picked and scored on
the held-out one: the leave-one-sequence-out table says how a choice made without a sequence does
on it. The setting with the best margin on all sequences is the candidate default; it is re-scored
with py-motmetrics itself before it is printed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from agent.tracking import TrackerParams
from bench import mot
from bench.mot_score import clear_mot_idf1

METRICS = ("mota", "idf1")
DEFAULT_GRID: dict[str, list[Any]] = {
    "std_weight_velocity": [1 / 160, 0.01, 1 / 80, 1 / 64],
    "birth_quantile": [0.0, 0.2, 0.3],
    "max_age": [10, 30],
    "n_init": [3, 4],
}

Scores = dict[str, dict[str, float]]


def margin(scores: Scores, names: Sequence[str]) -> tuple[float, float]:
    """(worst, mean) difference to the original SORT over `names` and MOTA, IDF1."""
    diffs = [scores[n][k] - mot.REFERENCE_SORT[n][k] for n in names for k in METRICS]
    return min(diffs), sum(diffs) / len(diffs)


def run_grid(
    sequences: Sequence[mot.Sequence_], grid: dict[str, list[Any]]
) -> list[tuple[dict[str, Any], Scores]]:
    base = TrackerParams()
    rows = []
    combos = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    for i, setting in enumerate(combos, 1):
        params = replace(base, **setting)
        scores = {s.name: clear_mot_idf1(s.gt or [], mot.run_deep_sort(s, params)[0]) for s in sequences}
        rows.append((setting, scores))
        print(f"\r{i}/{len(combos)} settings", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.mot_select",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sequences", nargs="+", type=Path, help="MOT15 sequence folders with gt/gt.txt")
    parser.add_argument(
        "--grid",
        type=json.loads,
        default=DEFAULT_GRID,
        help="JSON object: TrackerParams field -> list of values (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    try:
        sequences = [mot.load_sequence(p, 0.0, 1.0) for p in args.sequences]
        unknown = [s.name for s in sequences if s.gt is None or s.name not in mot.REFERENCE_SORT]
        if unknown:
            raise ValueError(f"no ground truth or no reference SORT score for {', '.join(unknown)}")
        replace(TrackerParams(), **{k: v[0] for k, v in args.grid.items()})
    except (OSError, ValueError, TypeError) as exc:
        print(f"bench.mot_select: {exc}", file=sys.stderr)
        return 2
    names = [s.name for s in sequences]
    rows = run_grid(sequences, args.grid)
    loso = []
    for held in names:
        train = [n for n in names if n != held]
        setting, scores = max(rows, key=lambda r: margin(r[1], train))
        loso.append(
            {
                "held_out": held,
                "setting": setting,
                "train_margin": round(margin(scores, train)[0], 2),
                "held_out_scores": scores[held],
                "sort": mot.REFERENCE_SORT[held],
            }
        )
    best, best_scores = max(rows, key=lambda r: margin(r[1], names))
    params = replace(TrackerParams(), **best)
    verified = mot.evaluate(sequences, lambda s: mot.run_deep_sort(s, params))
    result = {
        "grid": args.grid,
        "settings_tried": len(rows),
        "leave_one_out": loso,
        "chosen": best,
        "chosen_margin": round(margin(best_scores, names)[0], 2),
        "chosen_motmetrics": {
            n: {k: verified[n][k] for k in ("mota", "idf1", "idsw", "fp", "fn")} for n in names
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{len(rows)} settings; margin = worst of (ours - original SORT) over sequences x {{MOTA, IDF1}}")
    print("leave one sequence out: chosen on the other sequences, scored on the held-out one")
    for row in loso:
        s, ref = row["held_out_scores"], row["sort"]
        print(
            f"  {row['held_out']:<14} {json.dumps(row['setting'])}  train margin {row['train_margin']:+.2f}  "
            f"held out MOTA {s['mota']:.2f} ({s['mota'] - ref['mota']:+.2f})  "
            f"IDF1 {s['idf1']:.2f} ({s['idf1'] - ref['idf1']:+.2f})"
        )
    print(f"chosen on all: {json.dumps(best)}  margin {result['chosen_margin']:+.2f}  (py-motmetrics):")
    for n in names:
        v, ref = verified[n], mot.REFERENCE_SORT[n]
        print(
            f"  {n:<14} MOTA {v['mota']:6.2f} vs SORT {ref['mota']:6.2f}   "
            f"IDF1 {v['idf1']:6.2f} vs SORT {ref['idf1']:6.2f}   IDSW {v['idsw']:3d} vs {ref['idsw']:3d}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
