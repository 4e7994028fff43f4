"""One agent per state directory (issue 11, case 2): an exclusive flock on <state_dir>/agent.lock.

Real files, real processes: a second agent on the same state directory exits 2 with one line that
names the holder, the first runs on undisturbed (its seqs contiguous, none sent twice), and a
holder killed with SIGKILL leaves no lock behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.devtools.mosquitto import MosquittoBroker
from agent.runtime.outbox import OutboxError
from agent.runtime.state_lock import LOCK_NAME, StateLock, StateLockError
from tests.robustness_helpers import AgentProcess, PacedSource, Subscriber, assert_no_duplicate_seq


@pytest.fixture
def source(asset: Callable[[str], Path]) -> Iterator[PacedSource]:
    paced = PacedSource(asset("data/video/hamilton_clip.mp4"))
    yield paced
    paced.close()


def test_a_second_lock_on_the_same_directory_is_refused_and_names_the_holder(tmp_path: Path) -> None:
    first = StateLock.acquire(tmp_path)
    try:
        with pytest.raises(StateLockError) as refused:
            StateLock.acquire(tmp_path)
        message = str(refused.value)
        assert f"pid {os.getpid()}" in message and "in use by another agent" in message
        assert "\n" not in message
        # The CLI reports OutboxError subclasses as one line with exit code 2.
        assert isinstance(refused.value, OutboxError)
    finally:
        first.release()
    StateLock.acquire(tmp_path).release()  # free again once released


def test_a_holder_killed_with_sigkill_leaves_no_lock(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from agent.runtime.state_lock import StateLock; "
            f"StateLock.acquire({str(tmp_path)!r}); print('locked', flush=True); time.sleep(3600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(StateLockError, match=f"pid {holder.pid}"):
            StateLock.acquire(tmp_path)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert (tmp_path / LOCK_NAME).exists()  # the stale file is there, and harmless
    StateLock.acquire(tmp_path).release()


def test_a_second_agent_on_the_same_state_dir_exits_2_and_the_first_is_undisturbed(
    tmp_path: Path, mosquitto: MosquittoBroker, source: PacedSource
) -> None:
    state = tmp_path / "state"
    broker = f"{mosquitto.host}:{mosquitto.port}"
    sub = Subscriber(mosquitto)
    first = AgentProcess(["--input", source.url, "--broker", broker], state)
    try:
        first.wait_event("agent_started")
        sub.wait_for(lambda ev: any(e["type"] == "track_started" for e in ev))
        second = subprocess.run(
            [sys.executable, "-m", "agent", "run", "--input", source.url, "--broker", broker,
             "--device-id", "robust", "--state-dir", str(state)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert second.returncode == 2, second.stderr[-2000:]
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr[-2000:]
        assert lines[0].startswith("facetrack-agent: state directory") and f"pid {first.pid} on " in lines[0]
        assert first.process.poll() is None, "the first agent must keep running"
        # It still produces events after the second one gave up.
        after = max(e["seq"] for e in sub.events())
        sub.wait_for(lambda ev: any(e["seq"] > after for e in ev))
        first.signal(signal.SIGTERM)
        assert first.finish(timeout=60) == 0, first.tail()
    finally:
        first.kill()
    sub.wait_topic("availability", lambda p: p == b"stopped", timeout=30)
    sub.close()
    events = sub.events()
    assert_no_duplicate_seq(events)
    seqs = sorted({e["seq"] for e in events})
    assert seqs == list(range(1, len(seqs) + 1))
