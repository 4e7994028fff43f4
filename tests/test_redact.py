"""Credentials out of URLs (issue 24 item 1): the cases a camera URL takes, and inputs that are
not URLs at all."""

from __future__ import annotations

import pytest

from agent.redact import redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtsp://camadmin:CamPa55word@host/live", "rtsp://***@host/live"),
        ("rtsp://admin@10.0.0.5:554/h264", "rtsp://***@10.0.0.5:554/h264"),
        ("rtsp://u:p@ss@word@host/x", "rtsp://***@host/x"),  # '@' in the password
        ("rtsp://u:p@[fe80::1]:554/x", "rtsp://***@[fe80::1]:554/x"),
        (
            "http://cam/snap?user=a&password=p&token=t&ch=1",
            "http://cam/snap?user=a&password=***&token=***&ch=1",
        ),
        ("https://cam/x?API_KEY=k", "https://cam/x?API_KEY=***"),
        ("rtsp://host/live", "rtsp://host/live"),
        ("tcp://127.0.0.1:5000", "tcp://127.0.0.1:5000"),
        ("clip.mp4", "clip.mp4"),
        ("0", "0"),
        ("", ""),
        ("rtsp://u:secret@host:99999999/x", "rtsp://***@host:99999999/x"),  # a port urlsplit refuses
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_finds_urls_and_secret_parameters_in_messages() -> None:
    message = "cannot open 'rtsp://camadmin:CamPa55word@cam/live?token=SeCrEt&x=1' (retry 3)"
    redacted = redact_text(message)
    assert "CamPa55word" not in redacted and "camadmin" not in redacted and "SeCrEt" not in redacted
    assert redacted == "cannot open 'rtsp://***@cam/live?token=***&x=1' (retry 3)"
    assert redact_text("keyframe=3 monkey=1") == "keyframe=3 monkey=1"
