"""MQTT login and TLS material from an `[mqtt]` config, shared by the agent and the trainer.

The password is read from a file or an environment variable and never shown. Every unusable file
becomes one line naming the setting (or the flag) it came from. A password file that every user of
the machine may read is used with a warning; one that every user may write is refused, since
anyone could swap in their own password (and so learn what the client connects to and as whom).
"""

from __future__ import annotations

import os
import ssl
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

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


Labels = Mapping[str, str]
"""How the user spelled a setting, by its key under [mqtt] ("password_file", "tls.cert_file"):
a command-line flag such as "--cert". Keys not in it are named as config settings."""


def _what(key: str, labels: Labels | None) -> str:
    label = (labels or {}).get(key)
    return label if label is not None else f"config error: mqtt.{key}"


Warn = Callable[[str], None]
"""Where a warning about the password file goes; default: a `credentials_warning` log record."""


def _log_warning(message: str) -> None:
    structlog.get_logger("facetrack.credentials").warning("credentials_warning", message=message)


def check_password_file_mode(path: Path, what: str, warn: Warn | None = None) -> None:
    """Refuse a world-writable password file; warn about a world-readable one."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # reading it reports the real problem
    if mode & stat.S_IWOTH:
        raise CredentialsError(
            f"{what} {path} is writable by every user on this machine (anyone could replace the "
            f"password): chmod o-w {path}"
        )
    if mode & stat.S_IROTH:
        setting = what.removeprefix("config error: ")
        (warn or _log_warning)(
            f"{setting} {path} is readable by every user on this machine: chmod 600 {path} "
            "(or 640 with the client's group)"
        )


def resolve_password(
    config: MqttConfig,
    environ: Mapping[str, str] | None = None,
    *,
    labels: Labels | None = None,
    warn: Warn | None = None,
) -> Secret | None:
    """The password from `password_file` (wins) or `$password_env`; None when neither is set.

    A configured file that cannot be read is an error rather than a silent anonymous login.
    """
    env = os.environ if environ is None else environ
    if config.password_file is not None:
        path = Path(config.password_file).expanduser()
        what = _what("password_file", labels)
        check_password_file_mode(path, what, warn)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise CredentialsError(f"{what} {path} cannot be read: {why}") from None
        except UnicodeDecodeError:
            raise CredentialsError(f"{what} {path} is not UTF-8 text") from None
        # Editors and `echo` add a trailing newline that is never part of the password.
        return Secret(text.rstrip("\r\n"))
    if config.password_env:
        value = env.get(config.password_env)
        if value:
            return Secret(value)
    return None


@dataclass(frozen=True)
class Login:
    """What goes into CONNECT: user name and password (None = not sent)."""

    username: str | None
    password: Secret | None
    # A password was configured but cannot be sent (MQTT 3.1.1 without a user name).
    password_dropped: bool = False


def resolve_login(
    config: MqttConfig,
    environ: Mapping[str, str] | None = None,
    *,
    labels: Labels | None = None,
    warn: Warn | None = None,
) -> Login:
    """The user name and password to connect with, resolved the same way for every client."""
    password = resolve_password(config, environ, labels=labels, warn=warn)
    username = config.username or None
    if password is not None and username is None:
        if config.protocol == "3.1.1":
            # MQTT 3.1.1 forbids a password without a user name; do not send a malformed CONNECT.
            return Login(None, None, password_dropped=True)
        username = ""
    return Login(username, password)


def tls_enabled(config: MqttConfig) -> bool:
    tls = config.tls
    return bool(tls.enabled or tls.ca_file or tls.cert_file)


def check_tls_files(config: MqttConfig, *, labels: Labels | None = None) -> None:
    """Fail at start, in one line, on TLS files that are missing or unreadable, instead of
    retrying a doomed connection forever."""
    tls = config.tls
    if tls.key_file is not None and tls.cert_file is None:
        key, cert = _what("tls.key_file", labels), _what("tls.cert_file", labels)
        raise CredentialsError(f"{key} is set but {cert.removeprefix('config error: ')} is not")
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
            raise CredentialsError(f"{_what('tls.' + name, labels)} {path} cannot be read: {why}") from None


# OpenSSL reasons worth translating; others (e.g. "PEM lib") say nothing a user can act on.
_REASONS = {
    "KEY_VALUES_MISMATCH": "the private key does not belong to the certificate",
    "NO_CERTIFICATE_OR_CRL_FOUND": "no PEM certificate in it",
    "CA_MD_TOO_WEAK": "the certificate is signed with a digest OpenSSL no longer accepts",
    "EE_KEY_TOO_SMALL": "the key is too small for OpenSSL's security level",
}


def _no_key_passphrase() -> str:
    # An encrypted private key would make OpenSSL prompt on the terminal (and hang a service):
    # answer with an empty passphrase so loading fails with an error instead.
    return ""


def tls_context(config: MqttConfig, *, labels: Labels | None = None) -> ssl.SSLContext | None:
    """The client TLS context for `config.tls`, or None when TLS is off.

    Verifies the server against `ca_file` (system CAs when unset) and its host name (unless
    `insecure_skip_hostname_check`), and presents `cert_file`/`key_file` when set (mutual TLS).
    Built fresh per connection by callers that reconnect, so renewed certificates are picked up.
    """
    # Checked even with TLS off: a key_file alone is a mistake, not a request for plain TCP.
    check_tls_files(config, labels=labels)
    if not tls_enabled(config):
        return None
    tls = config.tls
    ca = Path(tls.ca_file).expanduser() if tls.ca_file is not None else None
    try:
        context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    except ssl.SSLError as exc:
        why = _REASONS.get(str(exc.reason), "not PEM")
        raise CredentialsError(
            f"{_what('tls.ca_file', labels)} {ca} is not a usable CA certificate: {why}"
        ) from None
    if tls.cert_file is not None:
        cert = Path(tls.cert_file).expanduser()
        key = Path(tls.key_file).expanduser() if tls.key_file is not None else None
        try:
            context.load_cert_chain(cert, key, password=_no_key_passphrase)
        except ssl.SSLError as exc:
            pair = f"{cert} + {key}" if key is not None else f"{cert} (key expected in the same file)"
            why = _REASONS.get(str(exc.reason), "needs a PEM certificate and its unencrypted PEM private key")
            raise CredentialsError(f"{_what('tls.cert_file', labels)} {pair}: {why}") from None
    if tls.insecure_skip_hostname_check:
        context.check_hostname = False
    return context
