"""Issue 24's fault-injection run, short and seeded (`make test-faults` runs 200+ cycles): kill -9
at random points, a full disk, `.seq` and WAL damage, a restored backup, on the real outbox and
MQTT link in a child process, a real mosquitto and a real tmpfs. No (epoch, seq) is given twice,
and the loss the device counts equals the loss measured by a subscriber. See tests/fault_injection.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.devtools.mosquitto import MosquittoBroker
from tests.fault_injection import FaultRun
from tests.robustness_helpers import can_mount_tmpfs, small_tmpfs

CYCLES = int(os.environ.get("FACETRACK_FAULT_CYCLES", "20"))
SEED = int(os.environ.get("FACETRACK_FAULT_SEED", "20261207"))


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: big enough for the outbox, small enough to fill at once."""
    reason = can_mount_tmpfs(tmp_path)
    if reason is not None:
        pytest.skip(reason)
    with small_tmpfs(tmp_path / "disk", "2m") as mount:
        yield mount


@pytest.mark.timeout(3600)
def test_seeded_faults_never_give_an_epoch_seq_twice_and_count_every_loss(
    mosquitto: MosquittoBroker, disk: Path
) -> None:
    run = FaultRun(mosquitto, disk, SEED)
    report = run.run(CYCLES)
    print(f"fault injection, seed {SEED}: {report.line()}")
    if report.counted_lost != report.measured_lost or report.duplicate_pairs:
        print("\n".join(run.trace))
    assert report.cycles == CYCLES and report.kills > 0
    assert report.duplicate_pairs == 0, report.line()
    assert report.counted_lost == report.measured_lost, report.line()
