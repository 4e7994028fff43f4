"""Issue 12 item 7: machine-readable output is machine-readable.

- every `--json` mode prints the JSON document alone on stdout (logs go to stderr);
- with `--log-format json`, every stderr line of the agent is a JSON object, OpenCV's own
  `[ WARN:... ]` lines included (a camera index that does not exist makes OpenCV warn);
- argparse usage errors are one line, like config errors.

Real processes, the smallest workloads that exercise each path. The camera test runs the agent
on a V4L2 index no device has here: that is the real "camera gone" path, not a simulation.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.devtools.mosquitto import MosquittoBroker

REPO_ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    "args",
    [
        ["-m", "bench.models", "--json", "--repeat", "1"],
        [
            "-m",
            "bench.mot",
            "models/assets/data/mot15/TUD-Campus",
            "--baseline",
            "sort",
            "--json",
            "--repeat",
            "1",
        ],
        ["-m", "bench.outbox", "--json", "--events", "20"],
        ["-m", "bench.fleet", "--json", "--devices", "2", "--events", "2"],
        ["-m", "agent", "schema"],
    ],
    ids=["bench.models", "bench.mot", "bench.outbox", "bench.fleet", "agent schema"],
)
def test_json_output_is_the_json_document_alone(args: list[str]) -> None:
    done = _run(args)
    assert done.returncode == 0, done.stderr[-2000:]
    json.loads(done.stdout)  # the whole of stdout, nothing before or after


def test_agent_json_logs_keep_opencv_native_lines_off_stderr(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    index = next(str(i) for i in range(9, 64) if not Path(f"/dev/video{i}").exists())
    env = dict(os.environ, FACETRACK_MQTT__RECONNECT_MIN_S="0.2", FACETRACK_MQTT__RECONNECT_MAX_S="0.5")
    env.pop("OPENCV_LOG_LEVEL", None)
    agent = subprocess.Popen(
        [
            sys.executable, "-m", "agent", "run", "--input", index,
            "--broker", f"{mosquitto.host}:{mosquitto.port}", "--device-id", "nocam",
            "--state-dir", str(tmp_path / "state"), "--log-format", "json", "--flush-timeout", "1",
        ],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert agent.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    try:
        # The reader thread tries the camera, OpenCV fails (and would warn), the agent logs a retry;
        # SIGTERM once the agent has started (its signal handlers are in place) and retried twice.
        while time.monotonic() < deadline:
            line = agent.stderr.readline()
            if not line:
                break
            lines.append(line)
            text = "".join(lines)
            if "agent_started" in text and '"attempt": 2' in text:
                break
    finally:
        agent.send_signal(signal.SIGTERM)
        _, err = agent.communicate(timeout=60)
    lines += err.splitlines(keepends=True)
    assert any("cannot open camera" in line for line in lines), "".join(lines)[-2000:]
    for line in lines:
        if line.strip():
            json.loads(line)  # no raw `[ WARN:0@0.05] global cap_v4l.cpp ...` line
    assert agent.returncode == 0


@pytest.mark.parametrize(
    "args",
    [
        ["-m", "agent", "run", "--confidence", "high"],
        ["-m", "agent", "run", "--no-such-flag"],
        ["-m", "agent"],
        ["-m", "trainer.cli", "train"],
        ["-m", "trainer.cli", "publish", "model.ftm", "--wait", "soon"],
    ],
)
def test_usage_errors_are_one_line(args: list[str]) -> None:
    done = _run(args, timeout=60)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "error:" in lines[0] and "--help" in lines[0]
