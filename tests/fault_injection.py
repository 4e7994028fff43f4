"""The seeded fault-injection run of issue 24: the real outbox and MQTT link in a child process,
a real mosquitto, a real tmpfs, and the faults a Pi meets: kill -9, a full disk, a `.seq` file
deleted or cut short, a WAL cut short (a card that lied about fsync), a state directory restored
from a backup.

Each cycle starts the device (a child process: `Outbox` + `MqttLink`, as the agent wires them),
which numbers `count` events in lock step with this process (it says each seq it handed out, then
waits for a go), so every event that got a seq is known here. The cycle then ends in one of the
ways below, and damage may be done to the state directory before the next one. The last cycle
runs with the broker up and drains everything.

What is checked at the end, over every cycle:
- no (epoch, seq) was given to two different events (the subscriber saw each pair with one
  content, and every pair the device reported is unique);
- the loss the device counted (`dropped_total`, plus what a restored copy forgot) equals the
  loss measured here: events that got a seq and never reached the subscriber.

Where a fault would destroy the only record of a loss, or make a delivered event count as lost,
the run avoids combining them, and says so (`_choose`): a `.seq` file is not damaged right after a
cycle on a full disk (it alone records that cycle's losses); a WAL is cut only after a cycle with
the broker down that began from a clean close; a full disk runs with the broker down (an event
published from memory whose PUBACK was lost with a kill is delivered, yet lost for the device);
backups are taken and restored only when the outbox is empty.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.devtools.mosquitto import MosquittoBroker, free_port
from agent.runtime.outbox import Outbox
from tests.robustness_helpers import DEVICE, REPO_ROOT, Subscriber, fill_disk

HANG_S = 60.0
# The outbox's own bound is never reached here: it drops the oldest queued event, which may be one
# the broker has and whose PUBACK is still on its way (counted, yet delivered). The in-memory spill
# is small, so a full disk drops (and counts) within a cycle; full-disk cycles run with the broker
# down, so what it drops was never sent.
MAX_ROWS = 100_000
MAX_BYTES = 1 << 26
SPILL_ROWS = 12

_CHILD = r"""
import asyncio, json, sys
from pathlib import Path
import structlog
from agent.config import MqttConfig
from agent.events.schema import TrackStarted, utc_now
import agent.runtime.outbox as outbox_module
from agent.runtime.mqtt_link import MqttLink
from agent.runtime.outbox import Outbox
from agent.runtime.topics import Topics

# A smaller in-memory spill than the agent's 2,000, so a full disk drops (and counts) within a cycle.
outbox_module.SPILL_MAX_ROWS = int(sys.argv[8])
structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
state, port, first, count, max_rows, max_bytes, device = sys.argv[1:8]
first, count = int(first), int(count)

def say(**fields):
    print(json.dumps(fields), flush=True)

async def main():
    topics = Topics("facetrack", device)
    outbox = Outbox(Path(state) / "outbox.sqlite3", int(max_rows), int(max_bytes), owner=topics.events)
    say(kind="ready", epoch=outbox.epoch, last_seq=outbox.last_seq, dropped=outbox.dropped_total)
    config = MqttConfig(host="127.0.0.1", port=int(port), reconnect_min_s=0.05, reconnect_max_s=0.3,
                        password_env="FACETRACK_TEST_UNSET_PASSWORD")
    link = MqttLink(config, topics, outbox)
    task = asyncio.create_task(link.run())
    loop = asyncio.get_running_loop()
    for frame in range(first, first + count):
        draft = TrackStarted(device=device, ts=utc_now(), frame=frame, track_id=frame, bbox=[0, 0, 9, 9])
        event = link.emit(draft)
        say(kind="event", frame=frame, seq=event.seq, epoch=event.epoch)
        if await loop.run_in_executor(None, sys.stdin.readline) != "go\n":
            return
    if await loop.run_in_executor(None, sys.stdin.readline) == "drain\n":
        while outbox.depth:
            await asyncio.sleep(0.02)
        say(kind="drained")
    await link.stop(0.5)
    await task
    outbox.close()
    say(kind="closed", dropped=outbox.dropped_total, depth=outbox.depth)

asyncio.run(main())
"""


@dataclass
class Plan:
    """How one cycle runs and what is done to the state directory after it."""

    broker_up: bool
    count: int
    kill_after: int | None  # None: a clean stop
    disk_full: bool = False
    damage: str | None = None  # "seq_deleted", "seq_short", "wal_cut", "restore"
    backup: bool = False  # take a backup after this cycle (a clean, drained one)


@dataclass
class FaultReport:
    cycles: int = 0
    kills: int = 0
    disk_full: int = 0
    damage: dict[str, int] = field(default_factory=dict)
    handed_out: int = 0
    delivered: int = 0
    measured_lost: int = 0
    counted_lost: int = 0
    duplicate_pairs: int = 0
    redelivered: int = 0
    epochs: int = 0

    def line(self) -> str:
        damage = ", ".join(f"{k} {v}" for k, v in sorted(self.damage.items()))
        return (
            f"{self.cycles} cycles ({self.kills} kill -9, {self.disk_full} disk full, {damage}): "
            f"{self.handed_out} events numbered under {self.epochs} epochs, {self.delivered} delivered "
            f"({self.redelivered} sent again, same content), (epoch, seq) given twice: "
            f"{self.duplicate_pairs}, loss counted {self.counted_lost} = measured {self.measured_lost}"
        )


class FaultRun:
    def __init__(self, broker: MosquittoBroker, disk: Path, seed: int) -> None:
        self.broker = broker
        self.disk = disk
        self.state = disk / "state"
        self.backup_dir = disk.parent / "backup"
        self.rng = random.Random(seed)
        self.script = disk.parent / "fault_child.py"
        self.script.write_text(_CHILD)
        self.report = FaultReport()
        # Every (epoch, seq) the device reported, with the frame it carried; seq 0 = dropped unnumbered.
        self.handed: dict[tuple[str, int], int] = {}
        self.unnumbered = 0
        self.frame = 0
        self.adjust = 0  # losses counted on a line of history a restore threw away
        self.backup_dropped: int | None = None
        self.clean_wal = True  # the last cycle ended with a clean close (its WAL folded back)
        # One line per cycle (the plan, what the device said at start): printed when a check fails.
        self.trace: list[str] = []
        self.cycles: list[tuple[str, int, Plan]] = []
        self.seen: set[tuple[str, int]] = set()

    # -- one cycle -------------------------------------------------------------------------------
    def _choose(self, last: bool) -> Plan:
        r = self.rng
        if last:
            return Plan(broker_up=True, count=r.randint(1, 5), kill_after=None)
        broker_up = r.random() < 0.6
        disk_full = not broker_up and r.random() < 0.35
        count = r.randint(3, 40)
        kill_after = r.randint(1, count) if r.random() < 0.7 else None
        plan = Plan(broker_up, count, kill_after, disk_full)
        eligible = []
        if not disk_full:
            # After a full disk the `.seq` file is the only record of what was lost until the
            # disk has room again: deleting it then loses the count (the agent says so).
            eligible += ["seq_deleted", "seq_short"]
        if not broker_up and not disk_full and self.clean_wal and kill_after:
            eligible += ["wal_cut"] * 4
        if self.backup_dropped is not None and broker_up and kill_after is None:
            eligible += ["restore"] * 2
        if eligible and r.random() < 0.3:
            plan.damage = r.choice(eligible)
        if broker_up and kill_after is None and plan.damage is None and r.random() < 0.3:
            plan.backup = True
        return plan

    def cycle(self, last: bool = False) -> None:
        plan = self._choose(last)
        port = self.broker.port if plan.broker_up else free_port()
        # Its log, kept beside the tmpfs for a failure's diagnosis.
        log_file = (self.disk.parent / f"cycle-{self.report.cycles}.log").open("w")
        child = subprocess.Popen(
            [sys.executable, str(self.script), str(self.state), str(port), str(self.frame), str(plan.count),
             str(MAX_ROWS), str(MAX_BYTES), DEVICE, str(SPILL_ROWS)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, text=True,
            cwd=REPO_ROOT,
        )  # fmt: skip
        assert child.stdin is not None and child.stdout is not None
        filler: Path | None = None
        try:
            ready = self._read(child)
            assert ready["kind"] == "ready", ready
            self.trace.append(f"{plan} ready={ready}")
            self.cycles.append((str(ready["epoch"]), int(ready["dropped"]), plan))
            if plan.disk_full:
                filler = fill_disk(self.disk)
                self.report.disk_full += 1
            for n in range(1, plan.count + 1):
                line = self._read(child)
                assert line["kind"] == "event", line
                self._note(line)
                if plan.kill_after == n:
                    # Somewhere in the link's publishing and acking of what is queued.
                    time.sleep(self.rng.random() * 0.05)
                    child.send_signal(signal.SIGKILL)
                    child.wait(HANG_S)
                    self.report.kills += 1
                    break
                child.stdin.write("go\n")
                child.stdin.flush()
            else:
                child.stdin.write("drain\n" if plan.broker_up else "stop\n")
                child.stdin.flush()
                if plan.broker_up:
                    assert self._read(child)["kind"] == "drained"
                closed = self._read(child)
                assert closed["kind"] == "closed", closed
                assert child.wait(HANG_S) == 0
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            child.stdin.close()
            child.stdout.close()
            log_file.close()
            if filler is not None:
                filler.unlink()
        self.report.cycles += 1
        self.clean_wal = plan.kill_after is None
        if plan.backup:
            self._take_backup()
        if plan.damage is not None:
            self._damage(plan.damage)

    def _read(self, child: subprocess.Popen[str]) -> dict[str, Any]:
        assert child.stdout is not None
        line = child.stdout.readline()
        if not line:
            raise AssertionError(f"the device exited (rc {child.wait(HANG_S)}) before saying its next line")
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    def _note(self, line: dict[str, Any]) -> None:
        self.frame = int(line["frame"]) + 1
        if int(line["seq"]) == 0:
            self.unnumbered += 1
            return
        pair = (str(line["epoch"]), int(line["seq"]))
        if pair in self.handed:
            self.report.duplicate_pairs += 1
        self.handed[pair] = int(line["frame"])

    # -- damage ----------------------------------------------------------------------------------
    def _damage(self, kind: str) -> None:
        self.report.damage[kind] = self.report.damage.get(kind, 0) + 1
        seq_file = self.state / "outbox.sqlite3.seq"
        if kind == "seq_deleted":
            seq_file.unlink(missing_ok=True)
        elif kind == "seq_short":
            data = seq_file.read_bytes()
            seq_file.write_bytes(data[: self.rng.randint(0, len(data) - 1)])
        elif kind == "wal_cut":
            wal = self.state / "outbox.sqlite3-wal"
            size = wal.stat().st_size if wal.exists() else 0
            if size > 32:
                with wal.open("r+b") as handle:
                    handle.truncate(self.rng.randint(32, size - 1))
        elif kind == "restore":
            # What the abandoned history counted since the backup is not in the restored files.
            with Outbox(self.state / "outbox.sqlite3", MAX_ROWS, MAX_BYTES) as current:
                assert current.depth == 0
                dropped_now = current.dropped_total
            assert self.backup_dropped is not None
            self.adjust += dropped_now - self.backup_dropped
            shutil.rmtree(self.state)
            shutil.copytree(self.backup_dir, self.state)

    def _take_backup(self) -> None:
        with Outbox(self.state / "outbox.sqlite3", MAX_ROWS, MAX_BYTES) as current:
            assert current.depth == 0
            self.backup_dropped = current.dropped_total
        shutil.rmtree(self.backup_dir, ignore_errors=True)
        shutil.copytree(self.state, self.backup_dir)

    # -- the whole run ---------------------------------------------------------------------------
    def run(self, cycles: int) -> FaultReport:
        subscriber = Subscriber(self.broker)
        try:
            for n in range(cycles):
                self.cycle(last=n == cycles - 1)
            marker = f"end-{os.getpid()}"
            subscriber.client.publish(f"facetrack/{DEVICE}/marker", marker, qos=1)
            subscriber.wait_topic("marker", lambda p: p.decode() == marker, timeout=HANG_S)
            events = subscriber.events()
        finally:
            subscriber.close()
        with Outbox(self.state / "outbox.sqlite3", MAX_ROWS, MAX_BYTES) as final:
            assert final.depth == 0
            counted = final.dropped_total
        seen: dict[tuple[str, int], int] = {}
        report = self.report
        for event in events:
            pair = (str(event["epoch"]), int(event["seq"]))
            if pair in seen:
                report.redelivered += 1
                if seen[pair] != int(event["frame"]):
                    report.duplicate_pairs += 1
                continue
            seen[pair] = int(event["frame"])
            if self.handed.get(pair, event["frame"]) != event["frame"]:
                report.duplicate_pairs += 1
        self.seen = set(seen)
        report.handed_out = len(self.handed) + self.unnumbered
        report.delivered = len(seen)
        report.epochs = len({epoch for epoch, _ in self.handed})
        report.measured_lost = len(set(self.handed) - set(seen)) + self.unnumbered
        report.counted_lost = counted + self.adjust
        return report
