"""bench.mot_select's held-out rule on a made-up score table, and its CLI on real MOT15 sequences."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import mot_select
from bench.mot_select import Table, adoption, select


def scores(a: float, b: float, c: float) -> dict[str, dict[str, float]]:
    return {n: {"mota": v, "idf1": v} for n, v in zip("ABC", (a, b, c), strict=True)}


def test_a_value_that_wins_in_sample_but_loses_held_out_is_not_adopted() -> None:
    # k = 1 beats the reference on every sequence in sample; k = 2, 3, 4 each win big on two
    # sequences and lose on the third, so whichever sequence is held out, the training pair
    # picks the one that loses on it.
    rows: list[tuple[dict[str, Any], Any]] = [
        ({"k": 0}, scores(1, 1, 1)),
        ({"k": 1}, scores(2, 2, 2)),
        ({"k": 2}, scores(-5, 10, 10)),
        ({"k": 3}, scores(10, -5, 10)),
        ({"k": 4}, scores(10, 10, -5)),
    ]
    table = Table(rows, scores(0, 0, 0), {"k": [0, 1, 2, 3, 4]})
    free, report = adoption(table, list("ABC"))
    assert free == () and report["k"]["adopted"] is False
    assert report["k"]["held_out_with"][0] == -5.0 and report["k"]["held_out_without"][0] == 1.0
    setting, _ = select(table, list("ABC"))
    assert setting == {"k": 0}


def test_a_value_that_wins_held_out_is_adopted() -> None:
    rows: list[tuple[dict[str, Any], Any]] = [
        ({"k": 0, "j": 0}, scores(1, 1, 1)),
        ({"k": 1, "j": 0}, scores(2, 3, 2)),
        ({"k": 0, "j": 1}, scores(1, 1, 0.5)),
        ({"k": 1, "j": 1}, scores(2, 3, 1.5)),
    ]
    table = Table(rows, scores(0, 0, 0), {"k": [0, 1], "j": [0, 1]})
    free, report = adoption(table, list("ABC"))
    assert free == ("k",) and report["k"]["adopted"] and not report["j"]["adopted"]
    assert select(table, list("ABC"))[0] == {"k": 1, "j": 0}


def test_nothing_is_adopted_unless_it_beats_sort_on_every_held_out_fold() -> None:
    # k = 1 is better than the reference everywhere, held out too, but still loses to SORT on
    # one sequence: the gate keeps the reference.
    rows: list[tuple[dict[str, Any], Any]] = [
        ({"k": 0}, scores(-3, -3, -3)),
        ({"k": 1}, scores(2, 2, -1)),
    ]
    table = Table(rows, scores(0, 0, 0), {"k": [0, 1]})
    free, report = adoption(table, list("ABC"))
    assert report["k"]["held_out_with"][0] == -1.0 and report["k"]["held_out_without"][0] == -3.0
    assert free == () and report["k"]["adopted"] is False


def test_cli_prints_in_sample_and_held_out_per_sequence(
    assets_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = assets_dir / "data" / "mot15"
    grid = json.dumps({"direction_weight": [0.0, 0.2], "birth_quantile": [0.0, 0.3]})
    args = [str(root / "TUD-Campus"), str(root / "KITTI-13"), str(root / "ETH-Sunnyday"), "--grid", grid]
    assert mot_select.main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["settings_tried"] == 4
    assert [row["sequence"] for row in out["sequences"]] == ["TUD-Campus", "KITTI-13", "ETH-Sunnyday"]
    for row in out["sequences"]:
        assert {"sort", "in_sample", "held_out", "held_out_setting", "held_out_values"} <= set(row)
    # The live SORT run reproduces the published reference.
    assert out["sequences"][0]["sort"]["mota"] == 62.67
    assert set(out["adoption"]) == {"direction_weight", "birth_quantile"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--grid", '{"no_such_field": [1]}'], "no_such_field"),
        (["--grid", '{"birth_quantile": [2.0]}'], "birth_quantile must be in [0, 1]"),
        (["--grid", "[1, 2]"], "--grid must be a JSON object"),
    ],
)
def test_cli_one_line_for_bad_input(
    assets_dir: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    root = assets_dir / "data" / "mot15"
    assert mot_select.main([str(root / "TUD-Campus"), str(root / "KITTI-13"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_cli_refuses_a_sequence_without_ground_truth(
    assets_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = assets_dir / "data" / "mot15"
    assert mot_select.main([str(root / "TUD-Campus"), str(root / "Venice-2")]) == 2
    assert "no ground truth (gt/gt.txt) for Venice-2" in capsys.readouterr().err
