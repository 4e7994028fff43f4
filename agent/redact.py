"""Credentials out of URLs before they leave the process: status, events, logs and errors.

A camera URL such as `rtsp://admin:secret@cam/live?token=abc` is needed as is only to open the
stream. Everything that shows it to someone (the retained status every viewer may read, the log
lines, the retry warnings, an OpenCV error quoting the URL) shows `redact_url(...)` instead.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "***"

# Query parameters that carry a secret in camera and streaming URLs (case-insensitive).
SECRET_PARAMS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "token",
        "access_token",
        "auth",
        "authorization",
        "key",
        "apikey",
        "api_key",
        "secret",
        "signature",
        "sig",
        "credentials",
        "user_password",
    }
)

# scheme://userinfo@ anywhere in a text (an error message quoting the URL).
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s?#]*)@")
# name=value for a secret name, anywhere in a text.
_PARAM = re.compile(
    r"(?P<name>(?<![A-Za-z0-9_])(?:" + "|".join(sorted(SECRET_PARAMS, key=len, reverse=True)) + r"))="
    r"(?P<value>[^&\s#'\"]*)",
    re.IGNORECASE,
)


def redact_url(url: str) -> str:
    """`url` without the secrets in it: the user info becomes `***@` (the user name is a secret
    too: half a camera's default login) and secret query values become `***`. Non-URLs (a file
    path, a camera index) come back unchanged."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(name.lower() in SECRET_PARAMS for name, _ in pairs):
                query = urlencode(
                    [(n, REDACTED if n.lower() in SECRET_PARAMS else v) for n, v in pairs], safe="*"
                )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        # Not parseable as a URL (a bad port, a bracket): fall back to the text rules.
        return redact_text(url)


def redact_text(text: str) -> str:
    """Every URL credential in free text (an error message, an exception quoting the input)."""
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
    return _PARAM.sub(lambda m: f"{m.group('name')}={REDACTED}", text)
