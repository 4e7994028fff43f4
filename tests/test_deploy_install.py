"""deploy/install-pi.sh: platform checks fail early and clearly; the dry run prints a complete plan.

The real install needs a Raspberry Pi (aarch64 bookworm, root, systemd); here the checks' inputs are
replaced through the documented FACETRACK_OS_RELEASE / FACETRACK_ARCH / FACETRACK_PYTHON variables
and only `--dry-run` runs, which changes nothing.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from agent.config import load_config

REPO_ROOT = Path(__file__).resolve().parent.parent
INSTALL = REPO_ROOT / "deploy" / "install-pi.sh"
BOOKWORM = (
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'
)


def fake_python(tmp_path: Path, version: str) -> Path:
    path = tmp_path / f"python{version}"
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(0o755)
    return path


def run_install(
    tmp_path: Path,
    *args: str,
    os_release: str | None = BOOKWORM,
    arch: str | None = "aarch64",
    python: str | None = "3.11",
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACETRACK_")}
    if os_release is not None:
        (tmp_path / "os-release").write_text(os_release)
        env["FACETRACK_OS_RELEASE"] = str(tmp_path / "os-release")
    if arch is not None:
        env["FACETRACK_ARCH"] = arch
    if python is not None:
        env["FACETRACK_PYTHON"] = str(fake_python(tmp_path, python))
    return subprocess.run(
        [str(INSTALL), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.skipif(platform.machine() == "aarch64", reason="this machine is an aarch64 target itself")
def test_dry_run_on_this_machine_fails_with_the_architecture_message(tmp_path: Path) -> None:
    # The real os-release and python of this (bookworm, x86_64) machine: only the architecture is wrong.
    result = run_install(tmp_path, "--dry-run", os_release=None, arch=None, python=None)
    assert result.returncode == 1
    expected = "needs 64-bit ARM (aarch64 / arm64, the 64-bit Raspberry Pi OS); this machine is"
    assert f"{expected} {platform.machine()}" in result.stderr
    assert "would run" not in result.stdout


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"os_release": "ID=debian\nVERSION_CODENAME=bullseye\n"},
            "needs Raspberry Pi OS bookworm (Debian 12); this is debian bullseye",
        ),
        ({"os_release": "ID=ubuntu\nVERSION_CODENAME=noble\n"}, "this is ubuntu noble"),
        ({"arch": "armv7l"}, "needs 64-bit ARM"),
        ({"python": "3.9"}, "needs Python 3.11 (bookworm's python3)"),
    ],
)
def test_wrong_platform_fails_before_doing_anything(
    tmp_path: Path, overrides: dict[str, str], message: str
) -> None:
    result = run_install(tmp_path, "--dry-run", **overrides)  # type: ignore[arg-type]
    assert result.returncode == 1
    assert message in result.stderr
    assert "would run" not in result.stdout


def test_dry_run_prints_the_whole_plan_and_a_valid_config(tmp_path: Path) -> None:
    client = tmp_path / "client"
    client.mkdir()
    for name in ("ca.crt", "client.crt", "client.key", "password"):
        (client / name).write_text(name)
    key = tmp_path / "model-signing.pub"
    key.write_text("key")
    result = run_install(
        tmp_path,
        "--dry-run",
        "--device-id",
        "pi-garden",
        "--broker",
        "broker.lan:8883",
        "--tls-dir",
        str(client),
        "--trusted-key",
        str(key),
        "--edgetpu",
        "yes",
        "--input",
        "rtsp://cam.lan/stream1",
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    expected_in_order = [
        "platform ok: debian bookworm, aarch64, Python 3.11",
        "apt-get install -y --no-install-recommends python3-venv",
        "coral-edgetpu-stable main",
        "apt-get install -y libedgetpu1-std",
        "useradd --system --user-group --home-dir /var/lib/facetrack",
        "usermod -aG plugdev facetrack",
        "-m venv /opt/facetrack/venv",
        f"/opt/facetrack/venv/bin/pip install --quiet --only-binary=:all: {REPO_ROOT}",
        "facetrack-agent assets fetch --group runtime --dest /opt/facetrack/assets",
        "/etc/facetrack/tls/client.key",
        "would write /etc/facetrack/config.toml",
        "/etc/udev/rules.d/99-facetrack-coral.rules",
        "/etc/systemd/system/facetrack-agent.service",
        "systemctl enable facetrack-agent",
        "systemctl restart facetrack-agent",
    ]
    positions = [out.find(step) for step in expected_in_order]
    assert all(p >= 0 for p in positions), [
        s for s, p in zip(expected_in_order, positions, strict=True) if p < 0
    ]
    assert positions == sorted(positions)

    # The config it would write is one the agent accepts, with the values given.
    block = out.split("would write /etc/facetrack/config.toml:\n", 1)[1].split("==>", 1)[0]
    toml = "\n".join(line.removeprefix("    ") for line in block.splitlines())
    (tmp_path / "config.toml").write_text(toml)
    config = load_config(tmp_path / "config.toml")
    assert config.device_id == "pi-garden"
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.username) == ("broker.lan", 8883, "pi-garden")
    assert config.mqtt.tls.ca_file == Path("/etc/facetrack/tls/ca.crt")
    # The fleet broker requires a client certificate (mutual TLS): the agent must present one.
    tls = config.mqtt.tls
    assert (tls.cert_file, tls.key_file) == (
        Path("/etc/facetrack/tls/client.crt"),
        Path("/etc/facetrack/tls/client.key"),
    )
    assert config.mqtt.password_file == Path("/etc/facetrack/tls/password")
    assert config.classifier.trusted_keys == ["/etc/facetrack/keys/model-signing.pub"]
    assert config.assets_dir == Path("/opt/facetrack/assets")
    assert config.pipeline.input == "rtsp://cam.lan/stream1"


def test_community_edgetpu_build_is_installed_from_a_file(tmp_path: Path) -> None:
    deb = tmp_path / "libedgetpu1-std_16.0tf2.17.1-1.bookworm_arm64.deb"
    deb.write_bytes(b"!<arch>\n")
    result = run_install(tmp_path, "--dry-run", "--edgetpu-deb", str(deb))
    assert result.returncode == 0, result.stderr
    assert f"apt-get install -y {deb}" in result.stdout
    assert "coral-edgetpu-stable" not in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unknown option '--bogus'"),
        (["--edgetpu", "maybe"], "--edgetpu must be auto, yes or no"),
        (["--device-id", "a/b"], "--device-id 'a/b' must be"),
        (["--device-id", "viewer"], "--device-id 'viewer' is reserved"),
        (["--tls-dir", "/nonexistent"], "--tls-dir /nonexistent is not a directory"),
    ],
)
def test_bad_options_get_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_install(tmp_path, "--dry-run", *args)
    assert result.returncode == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


NOBODY = 65534


def test_without_root_only_the_dry_run_is_allowed() -> None:
    # CI runs as root: the refusal is then observed as the unprivileged user nobody (setpriv, from
    # util-linux), with the platform inputs in a folder that user can read.
    as_user: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv is not None, "setpriv (util-linux) is needed to drop root for this test"
        as_user = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    with tempfile.TemporaryDirectory() as folder:
        readable = Path(folder)
        readable.chmod(0o755)
        (readable / "os-release").write_text(BOOKWORM)
        python = fake_python(readable, "3.11")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FACETRACK_")}
        env.update(
            FACETRACK_OS_RELEASE=str(readable / "os-release"),
            FACETRACK_ARCH="aarch64",
            FACETRACK_PYTHON=str(python),
        )
        for path in (readable / "os-release", python):
            path.chmod(0o755)
        result = subprocess.run(
            [*as_user, str(INSTALL)], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 1, result.stdout + result.stderr
        assert "run as root (sudo" in result.stderr
        assert "==>" not in result.stdout.replace("==> platform", "")
        # The same user may see the plan.
        result = subprocess.run(
            [*as_user, str(INSTALL), "--dry-run"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "would run:" in result.stdout


def test_deploy_scripts_pass_shellcheck() -> None:
    # `make setup` installs Debian's shellcheck; a machine without it fails here instead of skipping.
    shellcheck = shutil.which("shellcheck")
    assert shellcheck is not None, (
        "shellcheck is not installed: run `make setup` (apt-get install shellcheck)"
    )
    scripts = [
        INSTALL,
        REPO_ROOT / "deploy" / "mosquitto" / "facetrack-broker.sh",
        REPO_ROOT / "deploy" / "pi-check" / "pi-check.sh",
    ]
    result = subprocess.run([shellcheck, *map(str, scripts)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_without_systemd_the_unit_is_installed_and_enabling_is_left_to_the_operator(tmp_path: Path) -> None:
    # A container, a chroot (make pi-check) or an image build: no daemon to talk to.
    result = run_install(tmp_path, "--dry-run", "--no-systemd", "--edgetpu", "no")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "/etc/systemd/system/facetrack-agent.service" in out
    assert "systemctl enable --now facetrack-agent" in out
    assert "would run: systemctl" not in out
    assert "install -d -m 0750 -o facetrack -g facetrack /var/lib/facetrack" in out
    assert "run it by hand with: sudo -u facetrack /opt/facetrack/venv/bin/facetrack-agent run" in out


def test_a_wheel_is_installed_instead_of_the_checkout_and_only_from_wheels(tmp_path: Path) -> None:
    wheel = tmp_path / "facetrack-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK")
    result = run_install(tmp_path, "--dry-run", "--edgetpu", "no", "--wheel", str(wheel))
    assert result.returncode == 0, result.stderr
    assert f"/opt/facetrack/venv/bin/pip install --quiet --only-binary=:all: {wheel}" in result.stdout
    result = run_install(tmp_path, "--dry-run", "--edgetpu", "no")
    assert f"pip install --quiet --only-binary=:all: {REPO_ROOT}" in result.stdout


@pytest.mark.parametrize("name", ["missing.whl", "model-signing.pub"])
def test_a_bad_wheel_gets_one_clear_line(tmp_path: Path, name: str) -> None:
    (tmp_path / "model-signing.pub").write_text("key")
    result = run_install(tmp_path, "--dry-run", "--wheel", str(tmp_path / name))
    assert result.returncode == 1
    assert f"--wheel {tmp_path / name} is not a .whl file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_help_lists_the_test_overrides() -> None:
    result = subprocess.run([str(INSTALL), "--help"], capture_output=True, text=True, check=True)
    assert re.search(r"FACETRACK_OS_RELEASE.*FACETRACK_ARCH", result.stdout, re.S)
    assert "--dry-run" in result.stdout


def test_dry_run_writes_a_broker_cluster_list(tmp_path: Path) -> None:
    """Issue 23: --broker with a cluster's nodes becomes [mqtt] brokers, in the order given."""
    result = run_install(tmp_path, "--dry-run", "--device-id", "pi-porch", "--broker", "b1.lan:8883,b2.lan")
    assert result.returncode == 0, result.stderr
    block = result.stdout.split("would write /etc/facetrack/config.toml:\n", 1)[1].split("==>", 1)[0]
    (tmp_path / "config.toml").write_text("\n".join(line.removeprefix("    ") for line in block.splitlines()))
    config = load_config(tmp_path / "config.toml")
    assert config.mqtt.describe_brokers() == "b1.lan:8883,b2.lan:1883"
