"""The tracker on real MOTChallenge data (TUD-Campus, SORT's published detections), scored with
py-motmetrics: it must beat SORT's published numbers with the default configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.tracking import TrackerParams
from bench import mot

# SORT on these exact detections, py-motmetrics at IoU 0.5 (see models/assets/SOURCES.md).
SORT_MOTA = 62.7
SORT_IDF1 = 60.6


@pytest.fixture(scope="module")
def mot15(assets_dir: Path) -> Path:
    root = assets_dir / "data" / "mot15"
    if not (root / "TUD-Campus" / "gt" / "gt.txt").is_file():
        pytest.fail(f"MOT15 data missing under {root}: run `make setup`")
    return root


def test_default_tracker_beats_published_sort_on_tud_campus(mot15: Path) -> None:
    params = TrackerParams()
    seq = mot.load_sequence(mot15 / "TUD-Campus", params.min_confidence, params.nms_max_overlap)
    assert seq.n_frames == 71 and seq.gt is not None
    results = mot.evaluate([seq], lambda s: mot.run_deep_sort(s, params))["TUD-Campus"]
    assert results["mota"] > SORT_MOTA, results
    assert results["idf1"] > SORT_IDF1, results


def test_bench_cli_json_reports_metrics_with_gt_and_fps_without(
    mot15: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = mot.main([str(mot15 / "TUD-Campus"), str(mot15 / "KITTI-13"), "--json", "--baseline", "sort"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"TUD-Campus", "KITTI-13", "overall", "baseline_sort"}
    assert {"mota", "idf1", "idsw", "fp", "fn", "fps", "cpu_fps"} <= set(out["TUD-Campus"])
    assert "mota" not in out["KITTI-13"] and out["KITTI-13"]["fps"] > 0
    assert out["overall"]["frames"] == 71 + 340
    # The overall metrics cover the sequences with ground truth (only TUD-Campus here).
    assert out["overall"]["mota"] == out["TUD-Campus"]["mota"]
    assert set(out["baseline_sort"]) == {"TUD-Campus", "KITTI-13", "overall"}


def test_bench_cli_rejects_a_folder_without_detections(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert mot.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no det/det.txt" in err and len(err.strip().splitlines()) == 1


def test_faces_help_when_clothes_look_alike_and_do_not_hurt_otherwise(mot15: Path) -> None:
    """Synthetic features drawn from TUD-Campus ground truth (bench.mot.simulate_features)."""
    params = TrackerParams()
    seq = mot.load_sequence(mot15 / "TUD-Campus", params.min_confidence, params.nms_max_overlap)

    def score(face_rate: float, lookalikes: bool) -> dict[str, float]:
        feats = mot.simulate_features(seq, face_rate, lookalikes, seed=0)
        return mot.evaluate([seq], lambda s: mot.run_deep_sort(s, params, feats))["TUD-Campus"]

    plain, plain_faces = score(0.0, False), score(0.3, False)
    twins, twins_faces = score(0.0, True), score(0.3, True)
    assert twins_faces["idf1"] > twins["idf1"] + 2.0, (twins, twins_faces)
    assert plain_faces["mota"] >= plain["mota"] - 1.0 and plain_faces["idf1"] >= plain["idf1"] - 1.0


def test_bench_cli_one_line_errors_for_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "det").mkdir()
    det = tmp_path / "det" / "det.txt"
    det.write_text("1,-1,1,2,3\n")
    assert mot.main([str(tmp_path)]) == 2
    assert "expected at least 7 comma-separated columns, got 5" in capsys.readouterr().err
    det.write_text("1,-1,10,10,20,abc,0.9\n")
    assert mot.main([str(tmp_path)]) == 2
    assert "could not convert string 'abc'" in capsys.readouterr().err
    det.write_text("")
    assert mot.main([str(tmp_path)]) == 2
    assert "no detections and no ground truth" in capsys.readouterr().err
