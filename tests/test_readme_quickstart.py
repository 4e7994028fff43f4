"""Issue 22 trap: the README quick start's `mosquitto -d` with a broker already on 1883 exits 0 and
quietly binds only [::1]:1883, so the steps after it talk to another broker. The quick start starts
its broker on a port of its own, and every step that talks MQTT names that port; a real mosquitto
started with the README's own arguments (minus -d, so this test can stop it) serves on it."""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _quick_start() -> list[str]:
    readme = (REPO_ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"```sh\n(.*?)```", quick, re.S)[0].replace("\\\n", " ")
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_quick_start_broker_has_its_own_port_and_every_step_uses_it() -> None:
    lines = _quick_start()
    broker = [line for line in lines if line.startswith("mosquitto ")]
    assert len(broker) == 1, lines
    port = re.search(r"-p (\d+)", broker[0])
    assert port is not None and port.group(1) != "1883", broker[0]
    port_text = port.group(1)
    sub = next(line for line in lines if line.startswith("mosquitto_sub"))
    assert f"-p {port_text}" in sub, sub
    for step in ("facetrack-trainer publish", "facetrack-agent run"):
        line = next(line for line in lines if line.startswith(step))
        assert f"--broker localhost:{port_text}" in line, line


def test_quick_start_broker_line_starts_a_broker_on_that_port() -> None:
    line = next(line for line in _quick_start() if line.startswith("mosquitto "))
    args = [a for a in shlex.split(line) if a != "-d"]
    port = int(args[args.index("-p") + 1])
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            # Someone else's broker (another quick start on this machine): nothing to learn here.
            return
    broker = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    serving = False
    try:
        deadline = time.monotonic() + 30
        while not serving and broker.poll() is None and time.monotonic() < deadline:
            with socket.socket() as probe:
                serving = probe.connect_ex(("127.0.0.1", port)) == 0
            time.sleep(0.05)
    finally:
        broker.terminate()
        _, said = broker.communicate(timeout=10)
    assert serving, said
