"""End of a file while the broker is down (issue 11, case 8): the agent waits up to
--flush-timeout for the broker to take the queued events, as documented, and keeps whatever is
left in the outbox for the next start. Real agent, real clip, real mosquitto started mid-wait.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from agent.devtools.mosquitto import MosquittoBroker, free_port
from tests.robustness_helpers import AgentProcess

# Enough frames for a few events; the clip is a file, so it ends by itself.
FRAMES = "40"


def queued(state: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{state / 'outbox.sqlite3'}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])


def test_end_of_file_waits_for_a_broker_that_comes_back(tmp_path: Path, asset: Callable[[str], Path]) -> None:
    port = free_port()
    broker = MosquittoBroker(port=port)
    state = tmp_path / "state"
    clip = str(asset("data/video/hamilton_clip.mp4"))
    agent = AgentProcess(
        ["--input", clip, "--max-frames", FRAMES, "--broker", f"127.0.0.1:{port}", "--flush-timeout", "600"],
        state,
    )
    try:
        flushing = agent.wait_event("agent_flushing", timeout=300)
        assert flushing["queued"] >= 1 and flushing["broker_connected"] is False
        assert agent.process.poll() is None, "it must wait for the broker, not exit with events queued"
        broker.start()
        assert agent.finish(timeout=300) == 0, agent.tail()
    finally:
        agent.kill()
        broker.close()
    assert not agent.logged("outbox_not_empty")
    (stopped,) = agent.logged("agent_stopped")
    assert stopped["outbox_depth"] == 0 and stopped["events"] >= flushing["queued"]
    assert queued(state) == 0


def test_end_of_file_keeps_the_events_when_the_broker_stays_down(
    tmp_path: Path, asset: Callable[[str], Path]
) -> None:
    state = tmp_path / "state"
    clip = str(asset("data/video/hamilton_clip.mp4"))
    timeout_s = 3.0
    agent = AgentProcess(
        ["--input", clip, "--max-frames", FRAMES, "--broker", f"127.0.0.1:{free_port()}",
         "--flush-timeout", str(timeout_s)],
        state,
    )  # fmt: skip
    try:
        flushing = agent.wait_event("agent_flushing", timeout=300)
        assert agent.finish(timeout=300) == 0, agent.tail()
    finally:
        agent.kill()
    # A lower bound only, on the agent's own log clock: it waited (at least) the time it was given.
    (stopped,) = agent.logged("agent_stopped")
    waited = datetime.fromisoformat(stopped["timestamp"]) - datetime.fromisoformat(flushing["timestamp"])
    assert waited.total_seconds() >= timeout_s
    (left,) = agent.logged("outbox_not_empty")
    assert left["queued"] == flushing["queued"] == queued(state)
