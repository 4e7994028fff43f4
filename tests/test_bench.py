"""What the benchmarks rely on: the machine/load/command header, `--json` alone on stdout, and the
AgentApp `on_frame` hook bench/reload.py times frames with. Asserts on outputs, not on speed."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from agent.config import load_config
from agent.devtools.mosquitto import MosquittoBroker
from agent.runtime.app import AgentApp
from bench.loop_errors import LoopErrors
from bench.machine import BenchRun

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_header_names_machine_load_and_command() -> None:
    run = BenchRun.start("bench.example", ["--frames", "10", "--videos", "a b"])
    run.finish()
    lines = run.header_lines()
    assert lines[0].startswith("command: .venv/bin/python -m bench.example --frames 10 --videos 'a b'")
    assert lines[1].startswith("machine: ") and " cores (" in lines[1] and "Python " in lines[1]
    assert "numpy " in lines[2] and ("ai-edge-litert" in lines[2] or "tflite-runtime" in lines[2])
    assert lines[3].startswith("load average (1/5/15 min): start [")
    document = run.as_json()
    assert len(document["load_average_start"]) == 3 and len(document["load_average_end"]) == 3
    assert document["machine"]["usable_cores"] >= 1


def test_outbox_json_is_the_json_alone_on_stdout() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.outbox", "--json", "--events", "20", "--rounds", "2"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    document = json.loads(done.stdout)  # raises if anything else reached stdout
    assert document["run"]["command"] == ".venv/bin/python -m bench.outbox --json --events 20 --rounds 2"
    assert document["subscriber_in_order"] is True
    # Two rounds, each one drain per window, interleaved: 16 then 1, then 1 then 16.
    assert [d["window"] for d in document["drains"]] == [16, 16, 1, 1]
    assert len(document["pipelined_over_stop_and_wait"]["runs"]) == 2


def test_on_frame_reports_every_frame_in_order(
    mosquitto: MosquittoBroker, assets_dir: Path, tmp_path: Path
) -> None:
    seen: list[tuple[int, str | None]] = []
    config = load_config(
        None,
        assets_dir=assets_dir,
        state_dir=tmp_path / "state",
        device_id="hook",
        mqtt={"port": mosquitto.port},
        pipeline={"input": str(assets_dir / "data/video/hamilton_clip.mp4"), "output": ""},
    )
    app = AgentApp(
        config,
        max_frames=12,
        install_signal_handlers=False,
        on_frame=lambda index, version: seen.append((index, version)),
    )
    assert asyncio.run(app.run()) == 0
    # No classifier is installed, so no frame ran under one.
    assert seen == [(i, None) for i in range(12)]


class _RaisesWhenCollected:
    def __del__(self) -> None:
        raise OSError(9, "Bad file descriptor")


def test_loop_errors_counts_what_only_reached_stderr_and_restores_the_handlers() -> None:
    written: list[str] = []
    hook_before = sys.unraisablehook

    def boom() -> None:
        raise OSError(9, "Bad file descriptor")

    async def round_() -> LoopErrors:
        loop = asyncio.get_running_loop()
        with LoopErrors("plain 2", written.append) as errors:
            done = asyncio.Event()
            loop.call_soon(boom)
            loop.call_soon(done.set)
            await done.wait()
            _RaisesWhenCollected()
        assert loop.get_exception_handler() is None
        return errors

    errors = asyncio.run(round_())
    assert sys.unraisablehook is hook_before
    assert errors.count == 2
    assert "Bad file descriptor" in errors.first[0] and "boom" in errors.first[0]
    assert errors.first[1].startswith("unraisable in ")
    assert [line.split(":")[0] for line in written] == ["[plain 2] loop error 1", "[plain 2] loop error 2"]
