"""make pi-check's own parts that run on any machine: its command line, and the subscriber that
judges the agent's events (against a real mosquitto). The check itself (arm64 root, emulation) is
`make pi-check`, not part of the suite: it takes tens of minutes and needs root (docs/pi-check.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.devtools.mosquitto import MosquittoBroker

REPO_ROOT = Path(__file__).resolve().parent.parent
PI_CHECK = REPO_ROOT / "deploy" / "pi-check" / "pi-check.sh"
EVENTS_CHECK = REPO_ROOT / "deploy" / "pi-check" / "events_check.py"
NOBODY = 65534


def test_help_names_every_stage_and_what_it_needs() -> None:
    result = subprocess.run([str(PI_CHECK), "--help"], capture_output=True, text=True, check=True, timeout=30)
    for stage in ("host", "base", "root", "install", "models", "agent", "trainer", "tests", "summary"):
        assert f"\n  {stage} " in result.stdout, stage
    assert "Needs root" in result.stdout
    assert "shellcheck" not in result.stdout


def test_a_bad_option_gets_one_line() -> None:
    result = subprocess.run(
        [str(PI_CHECK), "--fast"], capture_output=True, text=True, check=False, timeout=30
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "pi-check: unknown option '--fast' (see --help)"


def test_without_root_it_stops_before_touching_anything(tmp_path: Path) -> None:
    as_user: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv is not None, "setpriv (util-linux) is needed to drop root for this test"
        as_user = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    work = tmp_path / "work"
    env = {**os.environ, "PI_CHECK_DIR": str(work)}
    result = subprocess.run([*as_user, str(PI_CHECK)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "pi-check: needs root (apt-get, debootstrap, chroot, mount)" in result.stderr
    assert not work.exists()


def _event(seq: int, kind: str, frame: int) -> bytes:
    now = datetime.now(UTC).isoformat()
    body: dict[str, object] = {
        "v": 1,
        "device": "pi-check",
        "seq": seq,
        "ts": now,
        "frame": frame,
        "type": kind,
    }
    body["track_id"] = 1
    if kind == "track_started":
        body["bbox"] = [1.0, 2.0, 30.0, 40.0]
    else:
        body.update(label=None, first_seen=now, last_seen=now, duration_s=0.5, frames=3)
    return json.dumps(body).encode()


def _run_subscriber(
    tmp_path: Path, broker: MosquittoBroker, payloads: list[bytes]
) -> subprocess.CompletedProcess[str]:
    ready = tmp_path / "ready"
    subscriber = subprocess.Popen(
        [
            sys.executable,
            str(EVENTS_CHECK),
            "--port",
            str(broker.port),
            "--device",
            "pi-check",
            "--out",
            str(tmp_path / "events.jsonl"),
            "--ready",
            str(ready),
            "--timeout",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    deadline = time.monotonic() + 30
    while not ready.exists():  # the subscription is acknowledged: nothing published later is missed
        assert subscriber.poll() is None, subscriber.communicate()
        assert time.monotonic() < deadline, "the subscriber never subscribed"
        time.sleep(0.05)
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    messages = [("availability", b"online"), *(("events", p) for p in payloads), ("availability", b"stopped")]
    for leaf, payload in messages:
        client.publish(f"facetrack/pi-check/{leaf}", payload, qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()
    stdout, stderr = subscriber.communicate(timeout=60)
    return subprocess.CompletedProcess(subscriber.args, subscriber.returncode, stdout, stderr)


def test_the_subscriber_accepts_a_complete_ordered_run(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    result = _run_subscriber(
        tmp_path, mosquitto, [_event(1, "track_started", 3), _event(2, "track_ended", 19)]
    )
    assert result.returncode == 0, result.stderr
    assert "events received: 2 (track_ended 1, track_started 1), seq 1..2" in result.stdout
    assert len((tmp_path / "events.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize(
    ("seqs", "message"),
    [
        ((1, 3), "seq is not 1..2 without gaps or duplicates: [1, 3]"),
        ((1, 1), "seq is not 1..2 without gaps or duplicates: [1, 1]"),
    ],
)
def test_the_subscriber_fails_a_gap_or_a_duplicate(
    tmp_path: Path, mosquitto: MosquittoBroker, seqs: tuple[int, int], message: str
) -> None:
    result = _run_subscriber(
        tmp_path, mosquitto, [_event(seqs[0], "track_started", 3), _event(seqs[1], "track_ended", 19)]
    )
    assert result.returncode == 1
    assert message in result.stderr


def test_the_subscriber_fails_a_run_without_a_track(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    result = _run_subscriber(tmp_path, mosquitto, [])
    assert result.returncode == 1
    assert "expected at least one track_started and one track_ended" in result.stderr
