"""bench.pipeline_video: `--json` alone on stdout, any video with MOTChallenge ground truth, the
config's detection options reaching the analyzer, and one line for each bad input. Real video
(vtest.avi and PETS09-S2L1's ground truth), real models; asserts on outputs, not on speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import pipeline_video

REPO_ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.pipeline_video", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_json_is_the_document_alone_with_trackers_and_detector() -> None:
    done = _run("--frames", "12", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)  # raises if a log line reached stdout
    assert document["frames"] == 12
    assert set(document["trackers"]) == {"agent", "motion only", "original SORT"}
    for scores in document["trackers"].values():
        assert {"mota", "idf1", "confirmed_tracks"} <= set(scores)
    detector = document["detector"]
    assert 0.0 < detector["recall"] <= 1.0 and 0.0 < detector["precision"] <= 1.0
    assert detector["model"] == "coco_ssd_mobilenet_v1_1.0_quant.tflite"


def test_any_video_with_a_ground_truth_folder_and_the_config_reaches_the_detector(
    assets_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same clip named explicitly, its ground truth copied elsewhere; a stricter
    `detection.confidence` gives fewer boxes, so `--set` reaches the agent's detection path."""
    video = assets_dir / "data/video/vtest.avi"
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / "gt.txt").write_bytes((assets_dir / "data/mot15/PETS09-S2L1/gt/gt.txt").read_bytes())
    counts = []
    for confidence in ("0.5", "0.6"):
        override = f"detection.confidence={confidence}"
        code = pipeline_video.main(
            ["--video", str(video), "--gt", str(tmp_path), "--frames", "8", "--json", "--set", override]
        )
        assert code == 0
        document = json.loads(capsys.readouterr().out)
        assert document["ground_truth"] == str(tmp_path) and document["frames"] == 8
        counts.append(document["detector"]["detections"])
    assert counts[0] > counts[1]


def test_no_ground_truth_counts_tracks_only(assets_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = assets_dir / "data/video/mot20-08_960x366.h264"
    assert pipeline_video.main(["--video", str(video), "--gt", "none", "--frames", "10", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert "recall" not in document["detector"] and "mota" not in document["trackers"]["agent"]
    # The crowd box the SSD returns on every frame of this clip never reaches the tracker.
    assert document["detector"]["largest_box_frame_share"] < 0.5
    # A crowd: every whole-frame pass is tiled ([tiles] only_crowds, docs/detection.md#tiles).
    assert document["detector"]["tiled_passes"] == 10


def test_bad_inputs_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.avi"
    assert pipeline_video.main(["--video", str(missing), "--gt", "none"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    (tmp_path / "clip.avi").write_bytes(b"not a video")
    assert pipeline_video.main(["--video", str(tmp_path / "clip.avi"), "--gt", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no gt/gt.txt" in err and err.strip().count("\n") == 0
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / "gt.txt").write_text("1,2,3\n")
    assert pipeline_video.main(["--video", str(tmp_path / "clip.avi"), "--gt", str(tmp_path)]) == 2
    assert "7 comma-separated columns" in capsys.readouterr().err
    (tmp_path / "gt" / "gt.txt").write_text("1,1,10,10,20,40,1,-1,-1,-1\n")
    assert pipeline_video.main(["--video", str(tmp_path / "clip.avi"), "--gt", str(tmp_path)]) == 2
    assert "cannot open video" in capsys.readouterr().err or "no frame" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        pipeline_video.main(["--video", str(missing)])  # --video without --gt: argparse's usage line
    assert pipeline_video.main(["--set", "detection.confidence=7", "--frames", "1"]) == 2
