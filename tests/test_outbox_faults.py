"""Issue 24 items 2 and 3, each failure as reported, on real files, a real tmpfs and real kill -9:
(epoch, seq) is never given to two events whatever happens to the state directory, and every
event lost in a crash is counted, also after the restart.

Before the fix each of these reused pairs (a restored copy: 22, a deleted `.seq` after a full disk:
24, a WAL cut short after kill -9: 16) or undercounted the loss (27 lost, 16 reported).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from agent.events.schema import TrackStarted, utc_now
from agent.runtime.outbox import Outbox
from tests.robustness_helpers import REPO_ROOT, can_mount_tmpfs, fill_disk, small_tmpfs

ROWS, BYTES = 10_000, 1 << 24


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs."""
    reason = can_mount_tmpfs(tmp_path)
    if reason is not None:
        pytest.skip(reason)
    with small_tmpfs(tmp_path / "disk", "1m") as mount:
        yield mount


def draft(frame: int) -> TrackStarted:
    return TrackStarted(device="pi-1", ts=utc_now(), frame=frame, track_id=frame, bbox=[1.0, 2.0, 30.0, 40.0])


def pairs(outbox: Outbox, frames: range) -> dict[tuple[str, int], int]:
    """Append one event per frame; (epoch, seq) -> frame for each numbered one."""
    given = {}
    for frame in frames:
        event = outbox.append(draft(frame))
        if event.seq:
            given[(event.epoch, event.seq)] = frame
    return given


def assert_disjoint(first: dict[tuple[str, int], int], second: dict[tuple[str, int], int]) -> None:
    reused = sorted(set(first) & set(second))
    assert not reused, f"{len(reused)} (epoch, seq) pairs given to two events: {reused[:3]}"


def test_a_restored_copy_of_the_state_directory_gives_no_pair_twice(tmp_path: Path) -> None:
    state = tmp_path / "state"
    outbox = Outbox(state / "outbox.sqlite3", ROWS, BYTES)
    before = pairs(outbox, range(0, 5))
    outbox.close()
    shutil.copytree(state, tmp_path / "backup")
    # The device runs on, then its card is restored from last night's backup.
    outbox = Outbox(state / "outbox.sqlite3", ROWS, BYTES)
    after_backup = pairs(outbox, range(5, 27))
    outbox.close()
    shutil.rmtree(state)
    shutil.copytree(tmp_path / "backup", state)
    restored = Outbox(state / "outbox.sqlite3", ROWS, BYTES)
    again = pairs(restored, range(27, 49))
    restored.close()
    assert_disjoint(before | after_backup, again)
    # The restored copy's queued events keep the pairs they were first sent with (true duplicates).
    assert {e for e, _ in before} != {e for e, _ in again}


def _spill_then(disk: Path, damage: str) -> tuple[dict[tuple[str, int], int], Outbox]:
    """Events handed out while the disk is full, the agent stopped, then the `.seq` file damaged."""
    path = disk / "state" / "outbox.sqlite3"
    outbox = Outbox(path, ROWS, BYTES)
    given = pairs(outbox, range(0, 3))
    filler = fill_disk(disk)
    given |= pairs(outbox, range(3, 27))
    assert outbox.unstored >= 20
    outbox.close()
    filler.unlink()
    seq_file = path.with_name(path.name + ".seq")
    if damage == "deleted":
        seq_file.unlink()
    else:
        seq_file.write_bytes(seq_file.read_bytes()[:30])
    return given, Outbox(path, ROWS, BYTES)


@pytest.mark.parametrize("damage", ["deleted", "wrong length"])
def test_a_damaged_seq_file_after_a_full_disk_gives_no_pair_twice(disk: Path, damage: str) -> None:
    with capture_logs() as logs:
        given, reopened = _spill_then(disk, damage)
    again = pairs(reopened, range(27, 51))
    reopened.close()
    assert_disjoint(given, again)
    # Not silent: the count of what the lost file alone recorded is gone, and the log says so.
    assert any(log["event"] == "outbox_seq_reserve_reset" for log in logs), logs


_APPENDER = """
import sys, time
from pathlib import Path
import structlog
from agent.events.schema import TrackStarted, utc_now
from agent.runtime.outbox import Outbox

structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
outbox = Outbox(Path(sys.argv[1]), max_rows=10_000, max_bytes=1 << 24)
print("ready", flush=True)
sys.stdin.readline()
for frame in range(int(sys.argv[2])):
    draft = TrackStarted(device="pi-1", ts=utc_now(), frame=frame, track_id=frame, bbox=[0, 0, 1, 1])
    event = outbox.append(draft)
    print(event.epoch, event.seq, flush=True)
print("done", outbox.unstored, flush=True)
time.sleep(3600)
"""


def _append_and_kill(
    tmp_path: Path, path: Path, count: int, fill: Path | None = None
) -> list[tuple[str, int]]:
    """A real agent-side process appends `count` events, is told the disk filled up if `fill`,
    then is killed with SIGKILL once it said it appended them all."""
    script = tmp_path / "appender.py"
    script.write_text(_APPENDER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path), str(count)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline() == "ready\n"
    # Filled once the outbox is open, so the disk refuses the events, not the outbox itself.
    filler = fill_disk(fill) if fill is not None else None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    given = []
    for _ in range(count):
        epoch, seq = proc.stdout.readline().split()
        given.append((epoch, int(seq)))
    assert proc.stdout.readline().startswith("done")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    proc.stdin.close()
    if filler is not None:
        filler.unlink()
    return given


def test_events_in_memory_at_a_kill_9_are_counted_after_the_restart(tmp_path: Path, disk: Path) -> None:
    path = disk / "state" / "outbox.sqlite3"
    given = _append_and_kill(tmp_path, path, 27, fill=disk)
    with capture_logs() as logs:
        reopened = Outbox(path, ROWS, BYTES)
    stored = {row.seq for row in reopened.peek(ROWS)}
    lost = [seq for _, seq in given if seq and seq not in stored]
    assert len(lost) >= 20
    assert reopened.dropped_total == len(lost) + sum(1 for _, seq in given if seq == 0)
    assert any(log["event"] == "outbox_unstored_lost" for log in logs), logs
    # Counted once: a second crash (here, a second open) before the next write does not add them again.
    reopened.close()
    assert Outbox(path, ROWS, BYTES).dropped_total == len(lost)


def test_a_wal_cut_short_after_kill_9_gives_no_pair_twice_and_counts_the_rows(tmp_path: Path) -> None:
    path = tmp_path / "state" / "outbox.sqlite3"
    path.parent.mkdir()
    given = _append_and_kill(tmp_path, path, 40)
    # The SD card acknowledged fsyncs it never did: the tail of the WAL is gone.
    wal = path.with_name(path.name + "-wal")
    with wal.open("r+b") as handle:
        handle.truncate(wal.stat().st_size // 2)
    with capture_logs() as logs:
        reopened = Outbox(path, ROWS, BYTES)
    stored = {row.seq for row in reopened.peek(ROWS)}
    assert 0 < len(stored) < 40, "the cut removed some committed rows, not all"
    again = pairs(reopened, range(40, 56))
    assert_disjoint(dict.fromkeys(given, 0), again)
    missing = [log for log in logs if log["event"] == "outbox_rows_missing"]
    assert len(missing) == 1 and missing[0]["missing"] == 40 - len(stored), logs
    assert reopened.dropped_total == 40 - len(stored)
    # The seq line carries on above what was handed out, so the gap is where the loss was.
    assert min(seq for _, seq in again) == 41
    reopened.close()
