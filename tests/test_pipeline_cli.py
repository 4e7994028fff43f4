"""`facetrack-agent run` flags: the original script's spellings, precedence, and --help."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from agent.broker_address import BrokerAddress
from agent.config import load_config
from agent.runtime import cli

REPO_ROOT = Path(__file__).resolve().parent.parent


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize("style", ["legacy", "dashed"])
def test_original_flags_map_onto_the_config(style: str, tmp_path: Path) -> None:
    cos, nms = ("--cosine_distance", "--nms_threshold") if style == "legacy" else (
        "--cosine-distance", "--nms-threshold")  # fmt: skip
    args = _parse(
        ["--input", "clip.mp4", "--output", "out.mp4", "--confidence", "0.6", cos, "0.3", nms, "0.8",
         "--broker", "mqtt.lan:8883", "--device-id", "porch", "--state-dir", str(tmp_path),
         "--frame-stride", "2", "--max-frames", "50"]
    )  # fmt: skip
    config = load_config(None, **cli.overrides_from_args(args))
    assert config.pipeline.input == "clip.mp4" and config.pipeline.output == "out.mp4"
    assert config.detection.confidence == 0.6 and config.detection.nms_threshold == 0.8
    assert config.tracker.max_cosine_distance == 0.3
    assert config.mqtt.addresses() == (BrokerAddress("mqtt.lan", 8883),)
    assert config.device_id == "porch" and config.state_dir == tmp_path
    assert config.pipeline.frame_stride == 2 and args.max_frames == 50


def test_flags_beat_environment_beat_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text(
        "[detection]\nconfidence = 0.3\n[tracker]\nmax_cosine_distance = 0.4\n[mqtt]\nport = 1884\n"
    )
    monkeypatch.setenv("FACETRACK_DETECTION__CONFIDENCE", "0.35")
    monkeypatch.setenv("FACETRACK_MQTT__PORT", "1885")
    args = _parse(["--config", str(toml), "--confidence", "0.7"])
    config = load_config(args.config, **cli.overrides_from_args(args))
    assert config.detection.confidence == 0.7  # flag
    assert config.mqtt.port == 1885  # env over file
    assert config.tracker.max_cosine_distance == 0.4  # file over default


def test_broker_without_port_keeps_the_configured_port() -> None:
    config = load_config(None, **cli.overrides_from_args(_parse(["--broker", "10.0.0.5"])))
    assert config.mqtt.addresses() == (BrokerAddress("10.0.0.5", 1883),)


def test_bad_flag_values_are_usage_errors() -> None:
    for argv in (["--broker", "host:99999"], ["--frame-stride", "0"], ["--max-frames", "x"]):
        with pytest.raises(SystemExit) as info:
            _parse(argv)
        assert info.value.code == 2


def test_help_explains_itself() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agent", "run", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    for text in (
        "--cosine_distance",
        "--cosine-distance",
        "--nms_threshold",
        "--broker HOST[:PORT]",
        "examples:",
    ):
        assert text in result.stdout
