"""What every benchmark prints about where and how it ran: machine, load, and the command to rerun it.

A number without its machine and its load is not a result. Each bench calls `BenchRun.start()` before
measuring and `finish()` after; `header_lines()` goes at the top of the table output and
`as_json()` under the "run" key of the `--json` document. The load average is read at start and
at end (other processes share the cores; ratios measured side by side in one run still hold).
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent

# The distributions whose versions decide the numbers (first one installed of each group).
PACKAGES: tuple[tuple[str, ...], ...] = (
    ("ai-edge-litert", "tflite-runtime"),
    ("opencv-python-headless", "opencv-python"),
    ("numpy",),
    ("scikit-learn",),
    ("scipy",),
    ("aiomqtt",),
    ("paho-mqtt",),
    ("cryptography",),
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            # x86 says "model name"; many aarch64 kernels only "Model" (the board) or nothing.
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def package_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for group in PACKAGES:
        for name in group:
            try:
                out[name] = metadata.version(name)
                break
            except metadata.PackageNotFoundError:
                continue
        else:
            out[group[0]] = "not installed"
    return out


def mosquitto_version() -> str:
    for exe in ("mosquitto", "/usr/sbin/mosquitto"):
        try:
            done = subprocess.run([exe, "-h"], capture_output=True, text=True, timeout=5, check=False)
        except (OSError, subprocess.SubprocessError):
            continue
        for line in (done.stdout + done.stderr).splitlines():
            if "version" in line:
                return line.split("version", 1)[1].strip().split()[0]
    return "not installed"


def git_commit() -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_info(with_mosquitto: bool = False) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "cores": os.cpu_count() or 1,
        "usable_cores": usable_cores(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": package_versions(),
        "commit": git_commit(),
    }
    if with_mosquitto:
        info["mosquitto"] = mosquitto_version()
    return info


@dataclass
class BenchRun:
    """One benchmark invocation: machine, command, load at start and end, wall time."""

    module: str
    argv: list[str]
    with_mosquitto: bool = False
    machine: dict[str, Any] = field(default_factory=dict)
    started_utc: str = ""
    load_start: list[float] = field(default_factory=list)
    load_end: list[float] = field(default_factory=list)
    _t0: float = 0.0
    wall_s: float = 0.0

    @classmethod
    def start(cls, module: str, argv: list[str] | None = None, *, with_mosquitto: bool = False) -> BenchRun:
        run = cls(module, list(sys.argv[1:] if argv is None else argv), with_mosquitto)
        run.machine = machine_info(with_mosquitto)
        run.started_utc = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        run.load_start = load_average()
        run._t0 = time.monotonic()
        return run

    def finish(self) -> None:
        self.load_end = load_average()
        self.wall_s = round(time.monotonic() - self._t0, 1)

    @property
    def command(self) -> str:
        return shlex.join([".venv/bin/python", "-m", self.module, *self.argv])

    def as_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "started_utc": self.started_utc,
            "wall_s": self.wall_s,
            "load_average_start": self.load_start,
            "load_average_end": self.load_end,
            "machine": self.machine,
        }

    def header_lines(self) -> list[str]:
        m = self.machine
        packages = " ".join(f"{k} {v}" for k, v in m["packages"].items())
        lines = [
            f"command: {self.command}   (commit {m['commit']}, started {self.started_utc})",
            f"machine: {m['cpu']} ({m['arch']}), {m['cores']} cores ({m['usable_cores']} usable), "
            f"Linux {m['kernel']}, Python {m['python']}",
            f"packages: {packages}" + (f" mosquitto {m['mosquitto']}" if "mosquitto" in m else ""),
        ]
        load = f"load average (1/5/15 min): start {self.load_start}"
        if self.load_end:
            load += f", end {self.load_end} (wall {self.wall_s} s)"
        lines.append(load)
        return lines

    def header(self) -> str:
        return "\n".join(self.header_lines())
