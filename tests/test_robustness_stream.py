"""Issue 24 items 1 and 4 on the real agent process and a real mosquitto: camera credentials never
leave the device, and a live stream that goes silent is reported and never crashes the stop.

The stalled camera is a real clip served as a YUV4MPEG2 stream over TCP that sends 90 frames and
then goes silent with its connection open (`PacedSource(stall_after=90)`), as in the report.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.devtools.mosquitto import MosquittoBroker, free_port
from tests.robustness_helpers import AgentProcess, PacedSource, Subscriber

SECRETS = ("camadmin", "CamPa55word", "SeCrEtToKeN")
# The report's runs: 3 of 8 crashed. `make test-faults` runs 20.
STALL_RUNS = int(os.environ.get("FACETRACK_STALL_RUNS", "2"))


def _stopped(payload: bytes) -> bool:
    return json.loads(payload).get("state") == "stopped"


def test_a_credentialled_camera_url_is_redacted_in_status_logs_and_errors(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    # A camera that is not there: every retry, the status and the last error name the URL.
    url = f"rtsp://camadmin:CamPa55word@127.0.0.1:{free_port()}/live?token=SeCrEtToKeN&channel=1"
    sub = Subscriber(mosquitto)
    agent = AgentProcess(
        ["--input", url, "--broker", f"{mosquitto.host}:{mosquitto.port}", "--flush-timeout", "1"],
        tmp_path / "state",
    )
    try:
        agent.wait_event("agent_started")
        agent.wait_event("source_retry")
        # A status with the stream's error in it (published every second here).
        status = sub.wait_topic("status", lambda p: bool(json.loads(p)["source"]["last_error"]))
        agent.signal(signal.SIGTERM)
        assert agent.finish() == 0
        sub.wait_topic("status", _stopped)
    finally:
        agent.kill()
        sub.close()
    source = json.loads(status)["source"]
    assert source["input"] == "rtsp://***@127.0.0.1:" + url.split(":")[3].split("/")[0] + (
        "/live?token=***&channel=1"
    )
    assert "***@" in source["last_error"]
    leaks = [line for line in agent.lines if any(secret in line for secret in SECRETS)]
    assert not leaks, leaks[:3]
    messages = [payload.decode(errors="replace") for _, payload in sub.messages]
    assert messages and not [m for m in messages if any(secret in m for secret in SECRETS)]


def test_a_bad_setting_with_a_credentialled_url_is_redacted_in_the_error(tmp_path: Path) -> None:
    agent = AgentProcess(
        ["--input", "rtsp://camadmin:CamPa55word@cam/live", "--frame-stride", "0"], tmp_path / "state"
    )
    assert agent.finish() == 2
    assert agent.lines and not [line for line in agent.lines if "CamPa55word" in line]


@pytest.mark.parametrize("run", range(STALL_RUNS))
def test_sigterm_with_a_stalled_stream_is_rc_0_and_the_status_says_stalled(
    mosquitto: MosquittoBroker, tmp_path: Path, asset: Callable[[str], Path], run: int
) -> None:
    source = PacedSource(asset("data/video/hamilton_clip.mp4"), fps=30.0, stall_after=90)
    sub = Subscriber(mosquitto)
    agent = AgentProcess(
        ["--input", source.url, "--broker", f"{mosquitto.host}:{mosquitto.port}", "--flush-timeout", "2"],
        tmp_path / "state",
    )
    try:
        assert source.stalled.wait(120), "the agent never read the 90 frames"
        # Within a few seconds of silence the retained status says so (it said connected for 30 s).
        stalled = sub.wait_topic(
            "status", lambda p: json.loads(p)["source"]["connected"] is False and source.stalled.is_set()
        )
        assert json.loads(stalled)["source"]["last_error"]
        began = time.monotonic()
        agent.signal(signal.SIGTERM)
        code = agent.finish()
        took = time.monotonic() - began
        # Informational (no timed assertion): the bench of record is in docs/operations.md.
        print(f"stalled stream, run {run}: SIGTERM to exit {took:.2f} s, rc {code}")
        assert code == 0, agent.tail()
        assert agent.logged("agent_stopped")
        sub.wait_topic("status", _stopped)
    finally:
        agent.kill()
        sub.close()
        source.close()
