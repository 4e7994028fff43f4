"""MQTT password file permissions (issue 11, case 6), on real files: a file every user of the
machine can read is used with a warning; one every user can write is refused with one line;
a private one is used silently. Checked for the shared resolver (agent and trainer) and for the
running agent's log."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import structlog
import structlog.testing

from agent.config import MqttConfig
from agent.runtime.credentials import CredentialsError, resolve_login, resolve_password
from agent.runtime.mqtt_link import MqttLink
from agent.runtime.outbox import Outbox
from agent.runtime.topics import Topics


def password_file(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "mqtt-password"
    path.write_text("correct horse battery staple\n")
    path.chmod(mode)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    return path


def test_private_password_file_is_used_silently(tmp_path: Path) -> None:
    warnings: list[str] = []
    secret = resolve_password(MqttConfig(password_file=password_file(tmp_path, 0o600)), warn=warnings.append)
    assert secret is not None and secret.reveal() == "correct horse battery staple"
    assert warnings == []
    # Group-readable (0640 with the agent's group, as the Ansible role installs it) is fine too.
    path = password_file(tmp_path, 0o640)
    assert resolve_password(MqttConfig(password_file=path), warn=warnings.append) is not None
    assert warnings == []


def test_world_readable_password_file_is_used_with_a_warning(tmp_path: Path) -> None:
    path = password_file(tmp_path, 0o644)
    warnings: list[str] = []
    login = resolve_login(MqttConfig(username="pi-1", password_file=path), warn=warnings.append)
    assert login.password is not None and login.password.reveal() == "correct horse battery staple"
    (warning,) = warnings
    assert str(path) in warning and "readable by every user" in warning and f"chmod 600 {path}" in warning
    assert "correct horse" not in warning


@pytest.mark.parametrize("mode", [0o666, 0o602, 0o622])
def test_world_writable_password_file_is_refused(tmp_path: Path, mode: int) -> None:
    path = password_file(tmp_path, mode)
    with pytest.raises(CredentialsError) as refused:
        resolve_password(MqttConfig(password_file=path))
    message = str(refused.value)
    assert message.startswith("config error: mqtt.password_file") and "writable by every user" in message
    assert f"chmod o-w {path}" in message and "\n" not in message and "correct horse" not in message
    # A flag-given file is named by its flag (the trainer's --password-file).
    with pytest.raises(CredentialsError, match=r"^--password-file "):
        resolve_password(MqttConfig(password_file=path), labels={"password_file": "--password-file"})


async def test_the_agent_warns_once_about_a_world_readable_password_file(tmp_path: Path) -> None:
    path = password_file(tmp_path, 0o644)
    config = MqttConfig(username="pi-1", password_file=path)
    # The log records themselves, whatever renderer an earlier test left structlog configured with
    # (stdout or the logging module): read from stdout, this test failed after test_trainer_cli.py.
    with (
        structlog.testing.capture_logs() as records,
        Outbox(tmp_path / "outbox.sqlite3", 10, 1 << 20) as outbox,
    ):
        link = MqttLink(config, Topics("facetrack", "pi-1"), outbox)
        link._make_client()  # each reconnect resolves the login again: no second warning
        link._make_client()
    warnings = [r for r in records if "readable by every user" in str(r.get("message", ""))]
    assert len(warnings) == 1, records
    assert warnings[0]["log_level"] == "warning" and warnings[0]["event"] == "credentials_warning"
