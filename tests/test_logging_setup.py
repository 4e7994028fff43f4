"""configure_logging: parseable JSON lines with the keys, readable console output, no import effects."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import structlog

from agent.logging_setup import configure_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_json_lines_have_timestamp_level_event_and_keys() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    structlog.get_logger("facetrack.test").info("track_confirmed", track_id=7, score=0.93)
    structlog.get_logger("facetrack.test").debug("too_chatty")
    logging.getLogger("paho.test").warning("broker %s unreachable", "127.0.0.1")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        structlog.get_logger("facetrack.test").exception("frame_failed")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["event"] for line in lines] == [
        "track_confirmed",
        "broker 127.0.0.1 unreachable",
        "frame_failed",
    ]
    first = lines[0]
    assert (first["level"], first["track_id"], first["score"], first["logger"]) == (
        "info",
        7,
        0.93,
        "facetrack.test",
    )
    stamp = datetime.fromisoformat(first["timestamp"].replace("Z", "+00:00"))
    assert stamp.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=1)
    assert lines[1]["level"] == "warning" and lines[1]["logger"] == "paho.test"
    assert "RuntimeError: boom" in lines[2]["exception"]


def test_auto_is_json_off_a_terminal_and_console_is_readable() -> None:
    out = io.StringIO()
    configure_logging("debug", "auto", stream=out)
    structlog.get_logger().debug("hello", n=1)
    assert json.loads(out.getvalue())["event"] == "hello"

    out = io.StringIO()
    configure_logging("info", "console", stream=out)
    structlog.get_logger().info("hello", n=1)
    text = out.getvalue()
    assert "hello" in text and "n=1" in text and "\x1b[" not in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_bad_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="log level 'loud': allowed are debug, info"):
        configure_logging("loud", "json")


def test_import_has_no_side_effects() -> None:
    code = (
        "import logging, structlog, agent.logging_setup\n"
        "assert not logging.getLogger().handlers\n"
        "assert not structlog.is_configured()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
