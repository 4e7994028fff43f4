"""Structured logging for the agent and the trainer: JSON lines for machines, readable on a terminal.

Nothing happens at import: a program calls `configure_logging` once at startup (again to change
it). Standard-library loggers (aiomqtt, paho, asyncio) go through the same handler, so a log file
or journal holds one format only.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Literal, TextIO

import structlog

LogFormat = Literal["auto", "json", "console"]
LEVELS = ("debug", "info", "warning", "error", "critical")
_HANDLER_NAME = "facetrack"


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def configure_logging(level: str = "info", fmt: LogFormat = "auto", stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to `stream` (default stderr) at `level`.

    fmt "json": one JSON object per line with timestamp (ISO 8601, UTC), level, event, logger and
    the event's keys. "console": aligned, coloured when `stream` is a terminal. "auto": console on
    a terminal, JSON otherwise (systemd journal, docker, pipes).
    """
    if level.lower() not in LEVELS:
        raise ValueError(f"log level {level!r}: allowed are {', '.join(LEVELS)}")
    if fmt not in ("auto", "json", "console"):
        raise ValueError(f"log format {fmt!r}: allowed are auto, json, console")
    out = stream if stream is not None else sys.stderr
    numeric = logging.getLevelNamesMapping()[level.upper()]
    as_json = fmt == "json" or (fmt == "auto" and not _is_tty(out))

    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: structlog.typing.Processor
    if as_json:
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=_is_tty(out))

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: module-level `structlog.get_logger()` proxies must follow a reconfiguration.
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    quiet_native_logs(as_json=as_json, debug=numeric <= logging.DEBUG)


def quiet_native_logs(*, as_json: bool, debug: bool = False) -> None:
    """Keep OpenCV's and FFmpeg's own C++ log lines (`[ WARN:0@0.05] global cap_v4l.cpp ...`) off
    stderr where they would break the format. JSON logs: OpenCV silenced, since every line must
    parse (the agent logs what failed itself, e.g. `cannot open camera 0; retrying`). FFmpeg's
    chatter ("moov atom not found") is dropped unless at debug level, so a bad input stays one line.

    Through the environment, read when OpenCV loads (an explicit OPENCV_LOG_LEVEL wins), and
    through OpenCV's logging API when it is already loaded.
    """
    if as_json:
        os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    if as_json or not debug:
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    cv2 = sys.modules.get("cv2")
    if cv2 is not None and as_json and os.environ.get("OPENCV_LOG_LEVEL", "").upper() == "SILENT":
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
