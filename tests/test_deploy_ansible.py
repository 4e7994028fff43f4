"""deploy/ansible: syntax, lint, and a real run on this machine into a temporary root, twice.

Two inventory hosts use `ansible_connection=local`, each with its own `facetrack_root` prefixing
every path, so the rolling (serial) play, per-host device ids, TLS material from the broker script,
trusted keys, the venv with a real facetrack wheel, the config and the unit files are all real.
Switched off because they need a Pi, root on a real host or systemd as PID 1: the platform check,
apt packages (and the Edge TPU repository), the service user, starting/restarting the service and
the post-restart health check. Assets are not fetched because the wheel is installed with
`--no-deps` (the runtime dependencies would be a large download for no extra coverage here).
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import load_config

REPO_ROOT = Path(__file__).resolve().parent.parent
ANSIBLE_DIR = REPO_ROOT / "deploy" / "ansible"
BIN = Path(sys.executable).parent
PLAYBOOK_BIN = BIN / "ansible-playbook"
LINT_BIN = BIN / "ansible-lint"
BROKER_SCRIPT = REPO_ROOT / "deploy" / "mosquitto" / "facetrack-broker.sh"
HOSTS = {"pi-a": "pi-a", "pi-b": "pi-b"}

pytestmark = pytest.mark.skipif(
    not PLAYBOOK_BIN.exists(), reason="ansible-core is not installed (pip install -e '.[dev]')"
)


def ansible_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"),
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_DEPRECATION_WARNINGS="0",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def test_playbook_syntax(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(PLAYBOOK_BIN), "--syntax-check", "-i", "inventory.example.yml", "site.yml"],
        cwd=ANSIBLE_DIR,
        env=ansible_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(not LINT_BIN.exists(), reason="ansible-lint is not installed (pip install ansible-lint)")
def test_ansible_lint_production_profile(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(LINT_BIN), "--profile", "production", "--offline", "site.yml", "roles/facetrack"],
        cwd=ANSIBLE_DIR,
        env=ansible_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def recap(output: str) -> dict[str, dict[str, int]]:
    hosts: dict[str, dict[str, int]] = {}
    for line in output.split("PLAY RECAP", 1)[1].splitlines():
        match = re.match(r"^(\S+)\s+:\s+(.*)$", line.strip())
        if match:
            hosts[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return hosts


def test_real_run_into_a_temporary_root_is_idempotent(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    subprocess.run([str(BROKER_SCRIPT), "init", "--dir", str(pki)], check=True, capture_output=True)
    for device in HOSTS.values():
        subprocess.run(
            [str(BROKER_SCRIPT), "add-device", device, "--dir", str(pki)], check=True, capture_output=True
        )
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "model-signing.pub").write_text(
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"
    )
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO_ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("facetrack-*.whl")
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    host_lines = "".join(
        f"    {host}:\n      facetrack_device_id: {device}\n"
        f"      facetrack_root: {tmp_path / 'root' / host}\n"
        for host, device in HOSTS.items()
    )
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "facetrack:\n"
        "  vars:\n"
        "    ansible_connection: local\n"
        f"    ansible_python_interpreter: {sys.executable}\n"
        "    facetrack_broker_host: broker.test\n"
        "    facetrack_broker_port: 8883\n"
        f"    facetrack_broker_pki: {pki}\n"
        f"    facetrack_trusted_keys: ['{keys / 'model-signing.pub'}']\n"
        f"    facetrack_wheel: {wheel}\n"
        "    facetrack_pip_extra_args: --no-deps\n"
        f"    facetrack_python: {sys.executable}\n"
        f"    facetrack_file_owner: {user}\n"
        f"    facetrack_group: {group}\n"
        "    facetrack_check_platform: false\n"
        "    facetrack_manage_packages: false\n"
        "    facetrack_manage_users: false\n"
        "    facetrack_manage_services: false\n"
        "    facetrack_fetch_assets: false\n"
        "  hosts:\n" + host_lines
    )

    def play(*extra: str) -> tuple[dict[str, dict[str, int]], str]:
        result = subprocess.run(
            [str(PLAYBOOK_BIN), "-i", str(inventory), "site.yml", *extra],
            cwd=ANSIBLE_DIR,
            env=ansible_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        return recap(result.stdout), result.stdout

    first, output = play()
    assert set(first) == set(HOSTS)
    assert all(stats["changed"] > 0 and stats["failed"] == 0 for stats in first.values()), first
    # serial: 1 -> one PLAY per host, in order.
    assert output.count("PLAY [Deploy facetrack-agent]") == len(HOSTS)

    # Later runs take both hosts in one batch: same tasks, half the wall time on a 2-core machine.
    both_at_once = ("-e", "facetrack_rolling_batch=2")
    second, output = play(*both_at_once)
    assert output.count("PLAY [Deploy facetrack-agent]") == 1
    assert {host: stats["changed"] for host, stats in second.items()} == dict.fromkeys(HOSTS, 0), second

    for host, device in HOSTS.items():
        root = tmp_path / "root" / host
        config = load_config(root / "etc/facetrack/config.toml")
        assert config.device_id == device
        assert (config.mqtt.username, config.mqtt.host, config.mqtt.port) == (device, "broker.test", 8883)
        assert config.mqtt.tls.cert_file == Path("/etc/facetrack/tls/client.crt")
        assert config.classifier.trusted_keys == ["/etc/facetrack/keys/model-signing.pub"]
        assert config.homeassistant.enabled is False
        for name in ("ca.crt", "client.crt", "client.key", "password"):
            installed = root / "etc/facetrack/tls" / name
            assert installed.read_bytes() == (pki / "clients" / device / name).read_bytes()
            assert installed.stat().st_mode & 0o777 == 0o640
        unit = root / "etc/systemd/system/facetrack-agent.service"
        assert unit.read_bytes() == (REPO_ROOT / "deploy/facetrack-agent.service").read_bytes()
        venv_python = root / "opt/facetrack/venv/bin/python"
        shown = subprocess.run(
            [str(venv_python), "-m", "pip", "show", "facetrack"], capture_output=True, text=True, check=True
        )
        assert "Version: 0.1.0" in shown.stdout
        assert (root / "opt/facetrack/venv/bin/facetrack-agent").exists()
