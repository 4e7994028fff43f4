"""Issue 24 item 7: every setting that passed validation and failed late is refused at start-up by
the real `facetrack-agent run`, with one line naming it and exit code 2; `--help` shows the
defaults of the config model itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import AgentConfig, ConfigError, load_config
from tests.robustness_helpers import REPO_ROOT

# (environment variable or flag, value, what the one line names); each failed late before.
LATE_FAILURES = [
    ("FACETRACK_TRACKER__NN_BUDGET", "1000000000", "tracker.nn_budget"),  # MemoryError mid-run
    (
        "FACETRACK_HOMEASSISTANT__DISCOVERY_PREFIX",
        "#/x",
        "homeassistant.discovery_prefix",
    ),  # crash on connect
    ("FACETRACK_MQTT__CLIENT_ID", "c" * 70_000, "mqtt.client_id"),  # retried forever
    ("FACETRACK_MQTT__RECONNECT_MIN_S", "1e-9", "mqtt.reconnect_min_s"),  # 12,854 attempts in 12 s
    ("FACETRACK_MQTT__RECONNECT_MIN_S", "inf", "mqtt.reconnect_min_s"),  # a NaN delay
    ("FACETRACK_MQTT__RECONNECT_MAX_S", "nan", "mqtt.reconnect_max_s"),
    ("FACETRACK_DETECTION__PERSON_CLASS_ID", str(2**70), "detection.person_class_id"),  # no detections ever
    ("FACETRACK_STATUS__INTERVAL_S", "inf", "status.interval_s"),
    ("--flush-timeout", "inf", "--flush-timeout"),  # an error at stop, no `stopped` status
    ("--flush-timeout", "nan", "--flush-timeout"),
    ("--flush-timeout", "-1", "--flush-timeout"),
]


def run_agent(tmp_path: Path, extra: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clip = REPO_ROOT / "models/assets/data/video/hamilton_clip.mp4"
    command = [sys.executable, "-m", "agent", "run", "--input", str(clip), "--state-dir", str(tmp_path / "s")]
    return subprocess.run(
        [*command, *extra],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(("name", "value", "named"), LATE_FAILURES)
def test_a_setting_that_failed_late_is_one_line_and_exit_2(
    tmp_path: Path, name: str, value: str, named: str
) -> None:
    if name.startswith("--"):
        result = run_agent(tmp_path, [name, value], {})
    else:
        result = run_agent(tmp_path, [], {name: value})
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], lines
    assert len(lines[0]) < 400, "the line quotes a shortened value"


def test_reconnect_min_above_max_is_refused() -> None:
    with pytest.raises(ConfigError, match="reconnect_min_s"):
        load_config(mqtt={"reconnect_min_s": 60, "reconnect_max_s": 30})


def test_the_bounds_admit_the_defaults_and_the_documented_config(tmp_path: Path) -> None:
    assert load_config(REPO_ROOT / "config.toml", pipeline={"input": "clip.mp4"}).mqtt.reconnect_min_s == 0.5
    assert load_config(mqtt={"client_id": "porch-cam_1"}).mqtt.client_id == "porch-cam_1"


def test_help_defaults_come_from_the_config_model() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agent", "run", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    text = " ".join(result.stdout.split())
    defaults = AgentConfig.model_fields
    cosine = defaults["tracker"].default.max_cosine_distance
    assert f"match a track [{cosine}]" in text  # was [0.2] while the default is 0.1
    assert f"person detection score [{defaults['detection'].default.confidence}]" in text
    assert "{config:" not in text
