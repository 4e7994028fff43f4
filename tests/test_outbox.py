"""The SQLite outbox on real files: seq assignment, bounds, reopen, and kill -9 at random moments."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import structlog

from agent.events.schema import IdentityEvent, TrackStarted, parse_event, utc_now
from agent.runtime.outbox import Outbox, OutboxError

REPO_ROOT = Path(__file__).resolve().parent.parent


def draft(frame: int = 0, device: str = "pi-1") -> TrackStarted:
    return TrackStarted(device=device, ts=utc_now(), frame=frame, track_id=frame, bbox=[1.0, 2.0, 30.0, 40.0])


def test_append_assigns_contiguous_seq_and_stores_the_json(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state" / "outbox.sqlite3"
    outbox = Outbox(path, max_rows=1000, max_bytes=1 << 20)
    events = [outbox.append(draft(i)) for i in range(5)]
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    rows = outbox.peek(10)
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    stored = parse_event(rows[2].payload)
    assert stored == events[2]
    assert json.loads(rows[2].payload)["seq"] == 3
    assert outbox.depth == 5
    assert outbox.bytes == sum(len(r.payload) for r in rows)
    assert [r.seq for r in outbox.peek(2)] == [1, 2]
    assert [r.seq for r in outbox.peek(10, after_seq=3)] == [4, 5]
    with sqlite3.connect(path) as probe:
        assert probe.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    outbox.close()


def test_ack_removes_and_seq_survives_an_empty_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path, max_rows=1000, max_bytes=1 << 20)
    for i in range(3):
        outbox.append(draft(i))
    outbox.ack(1)
    outbox.ack_many([2, 3])
    outbox.ack(3)  # acking twice (a redelivered PUBACK) is harmless
    # Acks commit without fsync; appends must still be fully synchronous afterwards.
    assert outbox._store.db.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert outbox.depth == 0 and outbox.bytes == 0 and outbox.peek(10) == []
    outbox.close()

    reopened = Outbox(path, max_rows=1000, max_bytes=1 << 20)
    assert reopened.depth == 0
    assert reopened.last_seq == 3
    assert reopened.append(draft(9)).seq == 4
    reopened.close()


def test_bounded_by_rows_drops_oldest_counts_and_logs(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with structlog.testing.capture_logs() as logs:
        outbox = Outbox(path, max_rows=10, max_bytes=1 << 20)
        for i in range(25):
            outbox.append(draft(i))
    assert outbox.depth == 10
    assert [r.seq for r in outbox.peek(100)] == list(range(16, 26))
    assert outbox.dropped_total == 15
    warnings = [e for e in logs if e["event"] == "outbox_full_dropped_oldest"]
    assert sum(e["dropped"] for e in warnings) == 15
    assert all(e["log_level"] == "warning" for e in warnings)
    outbox.close()

    reopened = Outbox(path, max_rows=10, max_bytes=1 << 20)
    assert reopened.dropped_total == 15
    assert reopened.depth == 10
    assert reopened.append(draft(99)).seq == 26
    assert reopened.dropped_total == 16
    reopened.close()


def test_bounded_by_bytes(tmp_path: Path) -> None:
    one = len(Outbox(tmp_path / "probe.sqlite3", 10, 1 << 20).append(draft(0)).model_dump_json())
    outbox = Outbox(tmp_path / "outbox.sqlite3", max_rows=10_000, max_bytes=one * 4 + one // 2)
    for i in range(10):
        outbox.append(draft(i))
    assert outbox.bytes <= outbox.max_bytes
    assert outbox.depth == 4
    assert outbox.dropped_total == 6
    assert [r.seq for r in outbox.peek(100)] == [7, 8, 9, 10]
    outbox.close()


def test_bad_inputs(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3", max_rows=10, max_bytes=1 << 16)
    first = outbox.append(draft(0))
    with pytest.raises(ValueError, match="already has seq"):
        outbox.append(first)
    huge = IdentityEvent(
        device="pi-1", ts=utc_now(), frame=0, track_id=1, label="x" * 70_000, confidence=1.0, votes=3
    )
    with pytest.raises(ValueError, match="exceeds the outbox max_bytes"):
        outbox.append(huge)
    # A refused event consumed no seq.
    assert outbox.append(draft(1)).seq == 2
    outbox.close()

    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not a database, just junk bytes " * 200)
    with pytest.raises(OutboxError, match="not a usable SQLite database"):
        Outbox(garbage, max_rows=10, max_bytes=1 << 16)

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OutboxError, match="cannot be created"):
        Outbox(blocker / "sub" / "outbox.sqlite3", max_rows=10, max_bytes=1 << 16)


_APPENDER = """
import sys
from pathlib import Path
from agent.events.schema import TrackStarted, utc_now
from agent.runtime.outbox import Outbox
import structlog

structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
outbox = Outbox(Path(sys.argv[1]), max_rows=10**9, max_bytes=1 << 40)
print("ready", outbox.last_seq, flush=True)
i = 0
while True:
    e = outbox.append(TrackStarted(device="pi-1", ts=utc_now(), frame=i, track_id=i, bbox=[0, 0, 1, 1]))
    if i % 7 == 0:
        outbox.ack(e.seq)  # interleave deletes so a kill can also land inside an ack
    # Every seq printed here was returned by append(), so it must be on disk.
    print(e.seq, flush=True)
    i += 1
"""


def test_kill_9_during_heavy_appends_leaves_a_usable_contiguous_outbox(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    script = tmp_path / "appender.py"
    script.write_text(_APPENDER)
    rng = random.Random(20261129)
    acked: set[int] = set()
    lost: set[int] = set()
    previous_last = 0
    for round_no in range(4):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT
        )
        assert proc.stdout is not None
        header = proc.stdout.readline().split()
        assert header[0] == "ready" and int(header[1]) == previous_last
        # Kill after a random number of confirmed appends, not after a random time: the appender
        # is mid-stream (appending or acking) at the kill on any machine, however fast.
        target = rng.randint(20, 400)
        confirmed = [int(proc.stdout.readline()) for _ in range(target)]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        confirmed += [int(line) for line in proc.stdout.read().split() if line.isdigit()]
        proc.stdout.close()
        assert confirmed == list(range(previous_last + 1, previous_last + 1 + len(confirmed))), round_no

        with sqlite3.connect(path) as probe:
            assert probe.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        outbox = Outbox(path, max_rows=10**9, max_bytes=1 << 40)
        k = outbox.last_seq
        assert k >= confirmed[-1], "an event whose append() returned was lost"
        stored = [row.seq for row in outbox.peek(10**7)]
        round_acks = {s for s in range(previous_last + 1, k + 1) if (s - previous_last - 1) % 7 == 0}
        queued = set(stored)
        # Every seq 1..k is either still queued or was acked by the appender; none vanished but
        # the very last one, when the kill landed between its reservation and its commit: that
        # event never left the process, and it is counted lost (issue 24).
        assert outbox.dropped_total - len(lost) in (0, 1)
        if outbox.dropped_total > len(lost):
            assert k not in queued
            lost.add(k)
            round_acks.discard(k)
        assert sorted(queued | acked | round_acks | lost) == list(range(1, k + 1))
        assert not (queued & acked), "an acked event came back"
        assert queued & round_acks <= {k, k - 1}, "only the very last ack can have been cut off by the kill"
        acked |= round_acks - queued
        for row in outbox.peek(50):
            assert parse_event(row.payload).seq == row.seq
        nxt = outbox.append(draft(0))
        assert nxt.seq == k + 1
        outbox.ack(nxt.seq)
        acked.add(nxt.seq)
        previous_last = nxt.seq
        outbox.close()


def test_an_outbox_belongs_to_one_device(tmp_path: Path) -> None:
    """Reopening a device's outbox as another device is refused: its queued events and seq
    counter would otherwise go out under the wrong name, or be refused by the broker's ACL and
    block the queue for good."""
    path = tmp_path / "outbox.sqlite3"
    first = Outbox(path, max_rows=100, max_bytes=1 << 20, owner="facetrack/pi-1/events")
    first.append(draft(1))
    first.close()
    with pytest.raises(
        OutboxError, match=r"belongs to facetrack/pi-1/events .*1 queued.* not facetrack/pi-2"
    ):
        Outbox(path, max_rows=100, max_bytes=1 << 20, owner="facetrack/pi-2/events")
    again = Outbox(path, max_rows=100, max_bytes=1 << 20, owner="facetrack/pi-1/events")
    assert again.depth == 1 and again.append(draft(2)).seq == 2
    again.close()
