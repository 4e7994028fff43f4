"""A disk that fills up mid-run (issue 11, case 1), on a real tmpfs (skipped, with the reason,
where one cannot be mounted), with real SQLite files, the real agent and a real mosquitto.

What a Pi with a full SD card needs, and what is checked here: the agent keeps watching; events
the disk refuses wait in memory and are published, in seq order, while the broker is up; the
failure is one log line and shows in the status; a signal still stops it; and no seq is ever given
to two different events, not even across a restart while the disk is still full.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.config import load_config
from agent.devtools.mosquitto import MosquittoBroker, free_port
from agent.events.schema import TrackStarted, utc_now
from agent.runtime.app import AgentApp
from agent.runtime.outbox import Outbox
from tests.robustness_helpers import (
    AgentProcess,
    PacedSource,
    Subscriber,
    assert_no_duplicate_seq,
    can_mount_tmpfs,
    fill_disk,
    small_tmpfs,
)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs."""
    reason = can_mount_tmpfs(tmp_path)
    if reason is not None:
        pytest.skip(reason)
    with small_tmpfs(tmp_path / "disk", "1m") as mount:
        yield mount


@pytest.fixture
def source(asset: Callable[[str], Path]) -> Iterator[PacedSource]:
    paced = PacedSource(asset("data/video/hamilton_clip.mp4"))
    yield paced
    paced.close()


def draft(frame: int) -> TrackStarted:
    return TrackStarted(device="pi-1", ts=utc_now(), frame=frame, track_id=frame, bbox=[1.0, 2.0, 30.0, 40.0])


def append_until_refused(outbox: Outbox, first_frame: int, limit: int = 2000) -> list[int]:
    """Append until the disk refuses a write; the seqs given, the last one the first unstored."""
    seqs = []
    for frame in range(first_frame, first_frame + limit):
        seqs.append(outbox.append(draft(frame)).seq)
        if outbox.write_error is not None:
            return seqs
    raise AssertionError(f"the disk took {limit} events: not full")


def test_outbox_on_a_full_disk_keeps_events_in_memory_and_never_reuses_a_seq(disk: Path) -> None:
    path = disk / "state" / "outbox.sqlite3"
    outbox = Outbox(path, max_rows=10_000, max_bytes=1 << 24)
    stored = [outbox.append(draft(i)).seq for i in range(5)]
    filler = fill_disk(disk)
    seqs = stored + append_until_refused(outbox, 5)
    assert "full" in (outbox.write_error or ""), outbox.write_error
    more = [outbox.append(draft(100 + i)).seq for i in range(10)]
    seqs += more
    # Contiguous seqs, nothing lost: the queue is stored rows then the ones in memory, in order.
    assert seqs == list(range(1, len(seqs) + 1))
    assert outbox.unstored >= 11 and outbox.depth == len(seqs)
    assert [r.seq for r in outbox.peek(10_000)] == seqs
    assert [r.seq for r in outbox.peek(5, after_seq=seqs[-8])] == seqs[-7:-2]
    # Acks of rows in memory and on disk both take them out of the queue for this process.
    outbox.ack_many([1, 2, seqs[-1]])
    assert [r.seq for r in outbox.peek(10_000)] == seqs[2:-1]
    unstored = outbox.unstored
    outbox.close()  # what waited in memory is lost, and counted
    # A restart while the disk is still full: the seqs handed out are not handed out again.
    reopened = Outbox(path, max_rows=10_000, max_bytes=1 << 24)
    assert reopened.last_seq == seqs[-1]
    assert reopened.append(draft(999)).seq == seqs[-1] + 1
    assert reopened.write_error is not None
    # Space comes back: the next write stores what waited in memory, and the counters.
    filler.unlink()
    assert reopened.append(draft(1000)).seq == seqs[-1] + 2
    assert reopened.write_error is None and reopened.unstored == 0
    assert reopened.dropped_total == unstored
    reopened.close()
    final = Outbox(path, max_rows=10_000, max_bytes=1 << 24)
    rows = final.peek(10_000)
    assert [r.seq for r in rows][-2:] == [seqs[-1] + 1, seqs[-1] + 2]
    assert final.last_seq == seqs[-1] + 2 and final.dropped_total == reopened.dropped_total
    final.close()


def test_events_kept_in_memory_are_written_once_the_disk_has_room(disk: Path) -> None:
    path = disk / "outbox.sqlite3"
    outbox = Outbox(path, max_rows=10_000, max_bytes=1 << 24)
    filler = fill_disk(disk)
    seqs = append_until_refused(outbox, 0)
    filler.unlink()
    seqs.append(outbox.append(draft(5000)).seq)
    assert outbox.write_error is None and outbox.unstored == 0
    outbox.close()
    reopened = Outbox(path, max_rows=10_000, max_bytes=1 << 24)
    assert [r.seq for r in reopened.peek(10_000)] == seqs == list(range(1, len(seqs) + 1))
    reopened.close()


def test_a_state_dir_full_at_start_is_one_line_and_exit_2(disk: Path, asset: Callable[[str], Path]) -> None:
    fill_disk(disk)
    agent = AgentProcess(
        ["--input", str(asset("data/video/hamilton_clip.mp4")), "--broker", f"127.0.0.1:{free_port()}"],
        disk / "state",
    )
    assert agent.finish(timeout=300) == 2
    (line,) = agent.lines
    assert line.startswith("facetrack-agent: ") and "cannot" in line and str(disk / "state") in line


def test_disk_full_mid_run_keeps_tracking_and_publishing_and_stops_on_sigterm(
    disk: Path, mosquitto: MosquittoBroker, source: PacedSource
) -> None:
    sub = Subscriber(mosquitto)
    agent = AgentProcess(
        ["--input", source.url, "--broker", f"{mosquitto.host}:{mosquitto.port}"], disk / "state"
    )
    try:
        sub.wait_for(lambda ev: any(e["type"] == "track_started" for e in ev))
        fill_disk(disk)
        failed = agent.wait_event("outbox_write_failed")
        assert "full" in failed["error"]
        # Events made after the disk filled still reach subscribers while the broker is up.
        last_stored = max(r["seq"] for r in agent.records if r.get("event") == "event" and r["seq"])
        sub.wait_for(lambda ev: any(e["seq"] > last_stored + 2 for e in ev))
        status = json.loads(
            sub.wait_topic("status", lambda p: json.loads(p).get("outbox_error") is not None, timeout=60)
        )
        assert "full" in status["outbox_error"]
        assert agent.process.poll() is None
        agent.signal(signal.SIGTERM)
        assert agent.finish(timeout=60) == 0, agent.tail()
    finally:
        agent.kill()
    assert len(agent.logged("outbox_write_failed")) == 1, "one line for the failure, not one per event"
    assert not any("Traceback" in line for line in agent.lines)
    sub.wait_topic("availability", lambda p: p == b"stopped", timeout=30)
    sub.close()
    events = sub.events()
    assert_no_duplicate_seq(events)
    seqs = sorted({e["seq"] for e in events})
    assert seqs == list(range(1, len(seqs) + 1)), "nothing lost while the broker was up"
    started = {e["track_id"] for e in events if e["type"] == "track_started"}
    assert started == {e["track_id"] for e in events if e["type"] == "track_ended"}


def test_disk_full_with_the_broker_down_stops_on_sigterm(disk: Path, source: PacedSource) -> None:
    """The issue's reproduction: full disk, broker down, a long (here endless) input."""
    down = f"127.0.0.1:{free_port()}"
    agent = AgentProcess(["--input", source.url, "--broker", down, "--flush-timeout", "2"], disk / "state")
    try:
        agent.wait_log(lambda r: r.get("event") == "event" and r.get("type") == "track_started")
        fill_disk(disk)
        agent.wait_event("outbox_write_failed")
        # Still tracking: more events after the failure.
        failed_at = len(agent.records)
        agent.wait_log(lambda r: r.get("event") == "event" and agent.records.index(r) > failed_at)
        agent.signal(signal.SIGTERM)
        assert agent.finish(timeout=60) == 0, agent.tail()
    finally:
        agent.kill()
    (stopped,) = agent.logged("agent_stopped")
    assert stopped["outbox_depth"] >= 1
    assert agent.logged("outbox_unstored_lost")


def test_a_failing_consumer_ends_the_run_instead_of_hanging(
    tmp_path: Path, asset: Callable[[str], Path]
) -> None:
    """The hang behind case 1: the frame consumer fails while the producer waits on a full
    in-flight queue. The run must end with the error (the CLI logs it and exits 1)."""
    config = load_config(
        None,
        state_dir=tmp_path / "state",
        pipeline={"input": str(asset("data/video/hamilton_clip.mp4"))},
        mqtt={"host": "127.0.0.1", "port": free_port()},
    )

    def fail(event: object) -> None:
        raise RuntimeError("consumer failed")

    app = AgentApp(config, on_event=fail, install_signal_handlers=False, flush_timeout_s=0)
    with pytest.raises(RuntimeError, match="consumer failed"):
        # Generous: it only catches a hang, the run itself ends at its first event.
        asyncio.run(asyncio.wait_for(app.run(), 600))
