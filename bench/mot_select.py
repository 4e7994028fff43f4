"""Choose tracker settings by leave-one-sequence-out against the original SORT.

    python -m bench.mot_select [SEQ_DIR ...] [--grid JSON] [--json]

Without SEQ_DIR it takes every MOT15 sequence with ground truth under the assets
($FACETRACK_ASSETS_DIR or models/assets, data/mot15/*/gt/gt.txt). It runs our tracker (motion
only) with every combination of the settings in the grid and the original SORT
(agent.tracking.baselines.Sort, which reproduces the original code's scores) on every sequence,
and scores each run (bench/mot_score.py: py-motmetrics' arithmetic, fast).

A setting's margin on a set of sequences is its worst difference to the original SORT over those
sequences and over MOTA and IDF1 (ties broken by the mean difference): a setting that wins big on
one sequence and loses on another has a negative margin.

The selection, run on a set of training sequences:
1. adoption: each key's first value is its reference (the feature off, or the value before).
   Every subset of keys is tried as the keys allowed to leave their references; the subset with
   the best held-out margin (leave-one-out over the training sequences) wins, the smaller on a
   tie (maximin: the worst held-out difference to SORT, over folds and both metrics, decides,
   the mean only breaks ties). A key is adopted only when freeing it pays held out, and only if
   the winning subset beats SORT on every held-out fold on both MOTA and IDF1 (worst > 0);
   otherwise nothing is adopted. A setting that wins in-sample and loses held-out is not;
2. the default: the setting with the best margin on the training sequences, among those whose
   non-adopted keys are at their first values.

Held out: for each sequence in turn, the whole selection (adoption included) runs on the others
and the setting it picks is scored on that sequence. In sample: the selection on all sequences,
scored on each. The chosen setting is re-scored with py-motmetrics itself before it is printed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from agent.tracking import TrackerParams
from bench import mot
from bench.mot_score import clear_mot_idf1

METRICS = ("mota", "idf1")
# First value of each key = the reference it must beat held out. The reference is the original
# SORT's behaviour written in our tracker (IoU cost, a track dropped after one miss, SORT's
# confirmation and opening rules), so a part is adopted only if departing from SORT pays held out.
DEFAULT_GRID: dict[str, list[Any]] = {
    # Score-based births are left out: the 0.3 quantile this grid adopted on the four shared
    # sequences lost 16 MOTA points on TUD-Stadtmitte and KITTI-17 (issue 20); what a score means
    # depends on the detector, so sequences of one detector cannot choose it. Same for ByteTrack's
    # low-score split. Held at 0 (off).
    "birth_quantile": [0.0],
    # SORT's min_hits 3 counts the matches after the birth detection: 4 boxes before a report.
    "n_init": [4],
    # SORT reports every matched box of its first min_hits frames.
    "opening_frames": [3],
    "motion_cost": ["iou", "mahalanobis"],
    "motion_max_age": [1, 3, 10, 30],
    "min_motion_iou": [0.2, 0.3],
    "direction_weight": [0.0, 0.2],
    # Chosen by the earlier leave-one-out (docs/tracking.md), not re-chosen here.
    "std_weight_velocity": [0.01],
}

Scores = dict[str, dict[str, float]]
Setting = dict[str, Any]


@dataclass(frozen=True)
class Table:
    """Every setting's scores on every sequence, and the original SORT's."""

    rows: list[tuple[Setting, Scores]]
    sort: Scores
    grid: dict[str, list[Any]]


def margin(scores: Scores, sort: Scores, names: Sequence[str]) -> tuple[float, float]:
    """(worst, mean) difference to the original SORT over `names` and MOTA, IDF1."""
    diffs = [scores[n][k] - sort[n][k] for n in names for k in METRICS]
    return min(diffs), sum(diffs) / len(diffs)


def best(
    rows: Sequence[tuple[Setting, Scores]], sort: Scores, names: Sequence[str]
) -> tuple[Setting, Scores]:
    return max(rows, key=lambda r: margin(r[1], sort, names))


def held_out_margin(
    rows: Sequence[tuple[Setting, Scores]], sort: Scores, names: Sequence[str]
) -> tuple[float, float]:
    """Leave-one-out over `names` by best margin: (worst, mean) of the held-out differences."""
    diffs: list[float] = []
    for held in names:
        _, scores = best(rows, sort, [n for n in names if n != held])
        diffs += [scores[held][k] - sort[held][k] for k in METRICS]
    return min(diffs), sum(diffs) / len(diffs)


def _allowed(table: Table, free: Sequence[str]) -> list[tuple[Setting, Scores]]:
    """The rows whose keys outside `free` are at their reference (first) values."""
    fixed = {k: v[0] for k, v in table.grid.items() if k not in free}
    return [r for r in table.rows if all(r[0][k] == v for k, v in fixed.items())]


def adoption(table: Table, names: Sequence[str]) -> tuple[tuple[str, ...], dict[str, dict[str, Any]]]:
    """Which keys may leave their reference values, judged held out on `names`.

    Every subset of the grid's keys is tried as the set of free keys (the others held at their
    first values); the subset whose leave-one-out over `names` has the best held-out margin wins,
    the smaller subset on a tie: a key is adopted only if freeing it pays held out, together with
    the others freed. Per key, the report gives the held-out margin of the winning subset with and
    without it.
    """
    keys = [k for k, v in table.grid.items() if len(v) > 1]
    scored: dict[tuple[str, ...], tuple[float, float]] = {}
    for size in range(len(keys) + 1):
        for subset in itertools.combinations(keys, size):
            scored[subset] = held_out_margin(_allowed(table, subset), table.sort, names)
    # max() keeps the first of equals, and subsets come smallest first.
    winner = max(scored, key=lambda s: scored[s])
    if scored[winner][0] <= 0:
        # Nothing beats SORT held out on every fold and both metrics: no key leaves its reference.
        winner = ()
    report: dict[str, dict[str, Any]] = {}
    for key in keys:
        with_key = tuple(k for k in keys if k in winner or k == key)
        without = tuple(k for k in winner if k != key)
        report[key] = {
            "reference": table.grid[key][0],
            "held_out_with": [round(x, 2) for x in scored[with_key]],
            "held_out_without": [round(x, 2) for x in scored[without]],
            "adopted": key in winner,
        }
    return winner, report


def select(table: Table, names: Sequence[str]) -> tuple[Setting, dict[str, dict[str, Any]]]:
    """The whole selection on the training sequences `names`: adoption, then the best setting."""
    free, report = adoption(table, names)
    setting, _ = best(_allowed(table, free), table.sort, names)
    return setting, report


def run_grid(sequences: Sequence[mot.Sequence_], grid: dict[str, list[Any]]) -> list[tuple[Setting, Scores]]:
    base = TrackerParams()
    rows = []
    combos = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    for setting in tqdm(combos, desc="settings", unit="setting", file=sys.stderr):
        params = replace(base, **setting)
        scores = {s.name: clear_mot_idf1(s.gt or [], mot.run_deep_sort(s, params)[0]) for s in sequences}
        rows.append((setting, scores))
    return rows


def _from_cache(
    path: Path, grid: dict[str, list[Any]], names: list[str]
) -> list[tuple[Setting, Scores]] | None:
    """The grid's rows from a cache of the same sequences holding every one of its settings
    (a cache of a larger grid serves any grid inside it), else None."""
    if not path.is_file():
        return None
    cached = json.loads(path.read_text())
    if cached.get("sequences") != names:
        return None
    by_setting = {json.dumps(setting, sort_keys=True): scores for setting, scores in cached["rows"]}
    rows = []
    for values in itertools.product(*grid.values()):
        setting = dict(zip(grid, values, strict=True))
        scores = by_setting.get(json.dumps(setting, sort_keys=True))
        if scores is None:
            return None
        rows.append((setting, scores))
    return rows


def default_sequences() -> list[Path]:
    assets = Path(os.environ.get("FACETRACK_ASSETS_DIR", "models/assets"))
    return sorted(p.parent.parent for p in (assets / "data" / "mot15").glob("*/gt/gt.txt"))


def detection_only_sequences() -> list[Path]:
    """The mirror's MOT15 sequences with detections and no ground truth: a sanity check only."""
    assets = Path(os.environ.get("FACETRACK_ASSETS_DIR", "models/assets"))
    folders = (p.parent.parent for p in (assets / "data" / "mot15").glob("*/det/det.txt"))
    return sorted(p for p in folders if not (p / "gt" / "gt.txt").is_file())


def _track_counts(outputs: Sequence[mot.FrameOutput]) -> dict[str, float]:
    """How many ids a run reported and how many boxes: fragmentation shows as more, shorter ids."""
    ids = {i for frame_ids, _ in outputs for i in frame_ids}
    boxes = sum(len(frame_ids) for frame_ids, _ in outputs)
    return {"ids": len(ids), "boxes": boxes, "boxes_per_id": round(boxes / max(1, len(ids)), 1)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.mot_select",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "sequences",
        nargs="*",
        type=Path,
        help="MOT15 sequence folders with det/det.txt and gt/gt.txt (default: every one in the assets)",
    )
    parser.add_argument(
        "--grid",
        type=json.loads,
        default=DEFAULT_GRID,
        help="JSON object: TrackerParams field -> list of values, the first being the reference "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--testbeds",
        action="store_true",
        help="also score the chosen setting and the original SORT on py-motmetrics' two testbeds "
        "(bench.mot --motmetrics-testbeds: another tracker's boxes as detections), out of the selection",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        help="JSON file keeping the grid's scores: read when it holds this grid and these "
        "sequences, written otherwise (re-running the selection then takes seconds)",
    )
    parser.add_argument("--json", action="store_true", help="print the JSON document alone on stdout")
    args = parser.parse_args(argv)
    try:
        paths = args.sequences or default_sequences()
        if len(paths) < 2:
            raise ValueError("need at least two sequences with ground truth (run `make setup`)")
        if not isinstance(args.grid, dict) or not all(isinstance(v, list) and v for v in args.grid.values()):
            raise ValueError("--grid must be a JSON object of non-empty lists")
        sequences = [mot.load_sequence(p, 0.0, 1.0) for p in paths]
        missing = [s.name for s in sequences if s.gt is None]
        if missing:
            raise ValueError(f"no ground truth (gt/gt.txt) for {', '.join(missing)}")
        if len({s.name for s in sequences}) != len(sequences):
            raise ValueError("two sequences share a folder name")
        for values in itertools.product(*args.grid.values()):
            replace(TrackerParams(), **dict(zip(args.grid, values, strict=True)))
    except (OSError, ValueError, TypeError) as exc:
        print(f"bench.mot_select: {exc}", file=sys.stderr)
        return 2
    names = [s.name for s in sequences]
    sort = {s.name: clear_mot_idf1(s.gt or [], mot.run_sort(s)[0]) for s in sequences}
    rows = _from_cache(args.cache, args.grid, names) if args.cache is not None else None
    if rows is None:
        rows = run_grid(sequences, args.grid)
        if args.cache is not None:
            args.cache.write_text(json.dumps({"sequences": names, "rows": rows}))
    table = Table(rows, sort, args.grid)

    chosen, verdicts = select(table, names)
    adopted = [k for k, v in verdicts.items() if v["adopted"]]
    in_sample = next(scores for setting, scores in table.rows if setting == chosen)
    per_sequence = []
    for held in names:
        training = [n for n in names if n != held]
        setting, _ = select(table, training)
        scores = next(s for st, s in table.rows if st == setting)
        # The adopted keys' values chosen without this sequence (which keys: from all of them).
        _, values_scores = best(_allowed(table, adopted), table.sort, training)
        per_sequence.append(
            {
                "sequence": held,
                "sort": sort[held],
                "in_sample": in_sample[held],
                "held_out": scores[held],
                "held_out_setting": setting,
                "held_out_values": values_scores[held],
            }
        )
    params = replace(TrackerParams(), **chosen)
    verified = mot.evaluate(sequences, lambda s: mot.run_deep_sort(s, params))
    testbeds: dict[str, dict[str, Any]] = {}
    if args.testbeds:
        for seq in mot.load_motmetrics_testbeds(0.0, 1.0):
            testbeds[seq.name] = {
                "sort": clear_mot_idf1(seq.gt or [], mot.run_sort(seq)[0]),
                "chosen": clear_mot_idf1(seq.gt or [], mot.run_deep_sort(seq, params)[0]),
            }
    sanity: dict[str, dict[str, dict[str, float]]] = {}
    if args.testbeds:
        for path in detection_only_sequences():
            seq = mot.load_sequence(path, 0.0, 1.0)
            sanity[seq.name] = {
                "sort": _track_counts(mot.run_sort(seq)[0]),
                "chosen": _track_counts(mot.run_deep_sort(seq, params)[0]),
            }
    result = {
        "grid": args.grid,
        "settings_tried": len(table.rows),
        "adoption": verdicts,
        "chosen": chosen,
        "chosen_margin": round(margin(in_sample, sort, names)[0], 2),
        "sequences": per_sequence,
        "testbeds": testbeds,
        "detection_only": sanity,
        "chosen_motmetrics": {
            n: {k: verified[n][k] for k in ("mota", "idf1", "idsw", "fp", "fn")} for n in names
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"{len(table.rows)} settings on {len(names)} sequences; margin = worst of (ours - original SORT) over"
    )
    print("sequences x {MOTA, IDF1}; held out = the whole selection run without that sequence")
    print("adoption on all sequences: held-out margin worst / mean, key freed / key at its reference")
    for key, v in verdicts.items():
        with_key, without = v["held_out_with"], v["held_out_without"]
        print(
            f"  {key:<20} freed {with_key[0]:+6.2f} / {with_key[1]:+6.2f}   at {v['reference']!r:<7} "
            f"{without[0]:+6.2f} / {without[1]:+6.2f}   {'adopted' if v['adopted'] else 'not adopted'}"
        )
    print(f"chosen: {json.dumps(chosen)}  in-sample margin {result['chosen_margin']:+.2f}")
    print("held out: the whole selection without the sequence; values held out: the adopted keys'")
    print("values chosen without it (which keys to adopt decided on all sequences)")
    head = f"{'SORT MOTA/IDF1':>15} {'in-sample':>15} {'held out':>15} {'values held out':>15}"
    print(f"{'sequence':<14} {head}  held-out setting")
    kinds = ("sort", "in_sample", "held_out", "held_out_values")
    for row in per_sequence:
        cells = " ".join(f"{row[k]['mota']:6.2f} /{row[k]['idf1']:6.2f}".rjust(15) for k in kinds)
        setting = json.dumps({k: v for k, v in row["held_out_setting"].items() if k in verdicts})
        print(f"{row['sequence']:<14} {cells}  {setting}")
    for name, row in testbeds.items():
        ours, ref = row["chosen"], row["sort"]
        print(
            f"out of the selection: {name:<18} SORT {ref['mota']:6.2f} /{ref['idf1']:6.2f}   "
            f"chosen {ours['mota']:6.2f} /{ours['idf1']:6.2f}"
        )
    for name, row in sanity.items():
        ours, ref = row["chosen"], row["sort"]
        print(
            f"no ground truth: {name:<14} ids / reported boxes / boxes per id  SORT {ref['ids']:4.0f} / "
            f"{ref['boxes']:5.0f} / {ref['boxes_per_id']:5.1f}   chosen {ours['ids']:4.0f} / "
            f"{ours['boxes']:5.0f} / {ours['boxes_per_id']:5.1f}"
        )
    print("chosen, re-scored with py-motmetrics:")
    for n in names:
        v = verified[n]
        counts = f"IDSW {v['idsw']:3d}  FP {v['fp']:4d}  FN {v['fn']:4d}"
        print(f"  {n:<14} MOTA {v['mota']:6.2f}  IDF1 {v['idf1']:6.2f}  {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
