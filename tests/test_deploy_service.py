"""deploy/facetrack-agent.service and the Coral udev rule: parsed, verified by systemd, hardened.

`systemd-analyze verify` checks the unit offline (no running systemd needed); ExecStart is pointed at
this checkout's facetrack-agent because verify insists the binary exists. Starting the unit needs
systemd as PID 1 and a Pi, which this machine is not: that part is not tested here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
UNIT = REPO_ROOT / "deploy" / "facetrack-agent.service"
UDEV = REPO_ROOT / "deploy" / "99-facetrack-coral.rules"
INSTALLED_AGENT = "/opt/facetrack/venv/bin/facetrack-agent"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        sections[current][key.strip()].append(value.strip())
    return sections


def test_unit_runs_as_its_own_user_with_state_and_restart() -> None:
    unit = parse_unit(UNIT.read_text())
    service = unit["Service"]
    assert service["User"] == ["facetrack"]
    assert service["Restart"] == ["on-failure"]
    assert service["StateDirectory"] == ["facetrack"]
    assert "FACETRACK_STATE_DIR=/var/lib/facetrack" in service["Environment"]
    assert service["ExecStart"] == [f"{INSTALLED_AGENT} run --config /etc/facetrack/config.toml"]
    assert set(service["SupplementaryGroups"][0].split()) >= {"plugdev", "apex"}
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_unit_is_hardened_but_keeps_the_coral_and_state_reachable() -> None:
    service = parse_unit(UNIT.read_text())["Service"]
    for key, value in {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "DevicePolicy": "closed",
    }.items():
        assert service[key] == [value], key
    assert "/var/lib/facetrack" in service["ReadWritePaths"]
    assert {"char-usb_device rw", "char-apex rw"} <= set(service["DeviceAllow"])
    # Either would cut the agent off the Coral (PrivateDevices) or break run-time code generation.
    assert "PrivateDevices" not in service
    assert "MemoryDenyWriteExecute" not in service


def test_udev_rule_covers_both_coral_usb_ids_and_the_pcie_module() -> None:
    rules = [line for line in UDEV.read_text().splitlines() if line and not line.startswith("#")]
    ids = {
        (m.group(1), m.group(2))
        for line in rules
        if (m := re.search(r'ATTRS\{idVendor\}=="(\w+)".*ATTRS\{idProduct\}=="(\w+)"', line))
    }
    assert ids == {("1a6e", "089a"), ("18d1", "9302")}
    assert all('GROUP="plugdev"' in line for line in rules if "idVendor" in line)
    assert any('SUBSYSTEM=="apex"' in line and 'GROUP="apex"' in line for line in rules)


@pytest.fixture
def verifiable_unit(tmp_path: Path) -> Path:
    agent = shutil.which("facetrack-agent") or str(REPO_ROOT / ".venv" / "bin" / "facetrack-agent")
    if not Path(agent).exists():
        pytest.fail("facetrack-agent is not installed in this environment: run `make setup`")
    path = tmp_path / "facetrack-agent.service"
    path.write_text(UNIT.read_text().replace(INSTALLED_AGENT, agent))
    return path


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed (apt systemd)"
)
def test_systemd_analyze_verify_accepts_the_unit(verifiable_unit: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "verify", str(verifiable_unit)], capture_output=True, text=True, check=False
    )
    # verify exits 0 even for unknown keys; it warns on stderr, which must stay empty.
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed (apt systemd)"
)
def test_systemd_security_exposure_is_low(verifiable_unit: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(verifiable_unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert match, result.stdout[-500:] + result.stderr
    # systemd rates < 2.0 "OK"; an unhardened simple service scores 9.6 ("UNSAFE").
    assert float(match.group(1)) < 2.0
