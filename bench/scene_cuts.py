"""Measure the scene-cut detector on the real clips: where it fires, and its margins.

    python -m bench.scene_cuts [--json]

hamilton_clip.mp4 is an edited clip with cuts at frames 20, 82 and 211 (the first frame of each
new shot, checked by eye); vtest.avi, MOT17-13 (a camera on a moving bus) and MOT20-08 are single
shots: the detector must fire on none of their frames. For every clip: the frames it fired on,
and the two signals (colour change, layout correlation) at the true cuts and at the most
cut-like uncut frames. Leave one clip out: each clip is judged by thresholds placed halfway between
the other clips' largest uncut colour change and smallest cut colour change (the same for the
layout correlation); with hamilton left out no cut is left to place them, so it is judged by the
defaults.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import cv2

from agent.config import load_config
from agent.vision.scene_cut import SceneCutDetector, SceneCutParams
from bench.machine import BenchRun

CLIPS: dict[str, tuple[int, ...]] = {
    "data/video/hamilton_clip.mp4": (20, 82, 211),
    "data/video/vtest.avi": (),
    "data/video/mot17-13_960x540.h265": (),
    "data/video/mot20-08_960x366.h264": (),
}


def signals(path: Path) -> list[tuple[int, float, float]]:
    """(frame, colour change, layout correlation) for every frame after the first."""
    detector = SceneCutDetector()
    capture = cv2.VideoCapture(str(path))
    out: list[tuple[int, float, float]] = []
    index = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        check = detector.check(image)
        if index:
            out.append((index, round(check.colour_change, 4), round(check.layout_correlation, 4)))
        index += 1
    capture.release()
    return out


def fired(rows: list[tuple[int, float, float]], params: SceneCutParams) -> list[int]:
    return [
        f
        for f, change, corr in rows
        if change >= params.min_colour_change and corr <= params.max_layout_correlation
    ]


def held_out_params(measured: dict[str, dict[str, Any]], left_out: str) -> SceneCutParams:
    others = [m for name, m in measured.items() if name != left_out]
    cut_changes = [c for m in others for c in m["cut_changes"]]
    cut_corrs = [c for m in others for c in m["cut_correlations"]]
    if not cut_changes:
        return SceneCutParams()
    uncut_change = max(m["uncut_max_change"] for m in others)
    uncut_corr = min(m["uncut_min_correlation"] for m in others)
    return SceneCutParams(
        min_colour_change=round((uncut_change + min(cut_changes)) / 2, 3),
        max_layout_correlation=round((uncut_corr + max(cut_corrs)) / 2, 3),
    )


def measure(assets_dir: Path) -> dict[str, Any]:
    measured: dict[str, dict[str, Any]] = {}
    all_rows: dict[str, list[tuple[int, float, float]]] = {}
    for relative, cuts in CLIPS.items():
        rows = signals(assets_dir / relative)
        all_rows[relative] = rows
        at_cuts = [r for r in rows if r[0] in cuts]
        uncut = [r for r in rows if r[0] not in cuts]
        measured[relative] = {
            "frames": len(rows) + 1,
            "true_cuts": list(cuts),
            "fired_default": fired(rows, SceneCutParams()),
            "cut_changes": [r[1] for r in at_cuts],
            "cut_correlations": [r[2] for r in at_cuts],
            "uncut_max_change": max(r[1] for r in uncut),
            "uncut_min_correlation": min(r[2] for r in uncut),
        }
    for relative in CLIPS:
        params = held_out_params(measured, relative)
        measured[relative]["held_out_params"] = [params.min_colour_change, params.max_layout_correlation]
        measured[relative]["fired_held_out"] = fired(all_rows[relative], params)
    return {
        "defaults": [SceneCutParams().min_colour_change, SceneCutParams().max_layout_correlation],
        "clips": measured,
    }


def format_report(result: dict[str, Any]) -> str:
    lines = [
        f"defaults: min_colour_change {result['defaults'][0]}, max_layout_correlation {result['defaults'][1]}"
    ]
    lines.append(
        "clip | frames | true cuts | fired (defaults) | fired (held out, thresholds) | "
        "cuts: change/corr | uncut: max change, min corr"
    )
    for name, m in result["clips"].items():
        cut_text = ", ".join(
            f"{a:.3f}/{b:.3f}" for a, b in zip(m["cut_changes"], m["cut_correlations"], strict=True)
        )
        lines.append(
            f"{Path(name).name} | {m['frames']} | {m['true_cuts']} | {m['fired_default']} | "
            f"{m['fired_held_out']} {m['held_out_params']} | {cut_text or '-'} | "
            f"{m['uncut_max_change']:.3f}, {m['uncut_min_correlation']:.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scene_cuts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the JSON document alone on stdout")
    args = parser.parse_args(argv)
    run = BenchRun.start("bench.scene_cuts", argv)
    result = measure(load_config(None).assets_dir)
    run.finish()
    if args.json:
        json.dump({"run": run.as_json(), **result}, sys.stdout, indent=2)
        print()
        return 0
    print(run.header())
    print(format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
