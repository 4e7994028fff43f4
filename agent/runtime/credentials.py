"""The MQTT password, read from a file or an environment variable and never shown."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from agent.config import ConfigError, MqttConfig


class CredentialsError(ConfigError):
    """A password or TLS file is configured but unusable; the message never contains the secret."""


class Secret:
    """A string that prints as `***` so it cannot leak through a log line or a repr."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def resolve_password(config: MqttConfig, environ: Mapping[str, str] | None = None) -> Secret | None:
    """The password from `password_file` (wins) or `$password_env`; None when neither is set.

    A configured file that cannot be read is an error rather than a silent anonymous login.
    """
    env = os.environ if environ is None else environ
    if config.password_file is not None:
        path = Path(config.password_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise CredentialsError(f"config error: mqtt.password_file {path} cannot be read: {why}") from None
        except UnicodeDecodeError:
            raise CredentialsError(f"config error: mqtt.password_file {path} is not UTF-8 text") from None
        # Editors and `echo` add a trailing newline that is never part of the password.
        return Secret(text.rstrip("\r\n"))
    if config.password_env:
        value = env.get(config.password_env)
        if value:
            return Secret(value)
    return None


def check_tls_files(config: MqttConfig) -> None:
    """Fail at start, in one line, on TLS files that are missing or unreadable, instead of
    retrying a doomed connection forever."""
    tls = config.tls
    if tls.key_file is not None and tls.cert_file is None:
        raise CredentialsError("config error: mqtt.tls.key_file is set but mqtt.tls.cert_file is not")
    for name in ("ca_file", "cert_file", "key_file"):
        value = getattr(tls, name)
        if value is None:
            continue
        path = Path(value).expanduser()
        try:
            with path.open("rb") as handle:
                handle.read(1)
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise CredentialsError(f"config error: mqtt.tls.{name} {path} cannot be read: {why}") from None
