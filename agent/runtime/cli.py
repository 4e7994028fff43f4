"""`facetrack-agent run`: recognise and track people on a video, camera or stream; publish to MQTT.

Settings come from, lowest to highest: built-in defaults < the TOML file (--config) <
FACETRACK_* environment variables (FACETRACK_MQTT__HOST=...) < these flags.
Exit codes: 0 done or stopped by SIGINT/SIGTERM/SIGHUP (at any moment, also while starting); 1 an
input that broke off mid-way, or an unexpected failure (logged with its traceback); 2 bad
configuration, input (or none), output, model, or a state directory in use by another agent.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from agent.broker_address import parse_addresses

EXAMPLES = """\
examples:
  facetrack-agent run --input models/assets/data/video/hamilton_clip.mp4 --output out/annotated.mp4
  facetrack-agent run --config /etc/facetrack/config.toml --input 0            # first camera
  facetrack-agent run --input rtsp://cam.local/stream --broker mqtt.lan:1883 --device-id porch
  facetrack-agent run --input 0 --broker mqtt-a.lan:8883,mqtt-b.lan:8883     # a broker cluster
  facetrack-agent run --input clip.mp4 --confidence 0.6 --cosine_distance 0.3  # original script's flags

events go to <prefix>/<device>/events (JSON, QoS 1); availability and status are retained on
<prefix>/<device>/availability and <prefix>/<device>/status. See docs/mqtt-contract.md.
"""


def _broker(value: str) -> str:
    """One broker or a comma-separated cluster list; checked here so a typo is a usage error."""
    try:
        parse_addresses(value, 1883)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be 1 or more")
    return number


FLUSH_TIMEOUT_MAX_S = 3600.0


def _flush_timeout(value: str) -> float:
    """Seconds, finite, 0..FLUSH_TIMEOUT_MAX_S: `inf` and `nan` passed and failed at stop."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not math.isfinite(number) or not 0.0 <= number <= FLUSH_TIMEOUT_MAX_S:
        raise argparse.ArgumentTypeError(f"{value!r} must be between 0 and {FLUSH_TIMEOUT_MAX_S:g} seconds")
    return number


# "{config:section.key}" in a help text: the default of that setting, read from the config model
# when the help is printed (so `--help` can never disagree with it, and no import slows a run).
_CONFIG_DEFAULT = re.compile(r"\{config:([a-z_]+)\.([a-z_]+)\}")


def _config_default(match: re.Match[str]) -> str:
    from agent.config import AgentConfig

    section = AgentConfig.model_fields[match.group(1)].default
    value = getattr(section, match.group(2))
    return str(value).replace("%", "%%")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Fills in `{config:...}` defaults (argparse's documented hook for help text defaults)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        return _CONFIG_DEFAULT.sub(_config_default, text) if text else text


def _key_file(value: str) -> str:
    path = Path(value).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(
            f"no public key file {value!r} (make one with `facetrack-trainer keygen`)"
        )
    return str(path)


NO_INPUT = (
    "no input: give --input with a video file, a camera index (0) or an rtsp:// / http:// URL "
    "(or set pipeline.input in the --config file)"
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = _HelpFormatter
    parser.description = (
        "Run the agent: read frames from a video file, camera or RTSP/HTTP stream, detect people and\n"
        "faces, track and name them, and publish track and identity events to MQTT. Events are kept\n"
        "in an on-disk outbox until the broker acknowledges them, so a broker outage loses nothing.\n\n"
        "Precedence: defaults < --config TOML < FACETRACK_* environment < flags."
    )
    parser.epilog = EXAMPLES
    src = parser.add_argument_group("input and output")
    src.add_argument("--config", type=Path, metavar="TOML", help="config file (see config.toml in the repo)")
    src.add_argument(
        "--input",
        "-i",
        metavar="SRC",
        help="video file, camera index (0) or rtsp:// / http:// URL; required, here or as "
        "pipeline.input in --config [pipeline.input]",
    )
    src.add_argument(
        "--output", "-o", metavar="PATH", help="write an annotated video (mp4) here [pipeline.output]"
    )
    src.add_argument(
        "--frame-stride", type=_positive_int, metavar="N", help="process every Nth frame of a file"
    )
    src.add_argument(
        "--loop",
        action="store_true",
        default=None,
        help="play a video file again from the start when it ends, until stopped [pipeline.loop]",
    )
    src.add_argument(
        "--max-frames",
        type=_positive_int,
        metavar="N",
        help="stop after N processed frames (then end tracks)",
    )
    src.add_argument(
        "--face-recheck-every", type=_positive_int, metavar="N", help="re-check named people every N frames"
    )

    det = parser.add_argument_group("detection and tracking (the original script's flags still work)")
    det.add_argument(
        "--confidence",
        type=float,
        metavar="P",
        help="minimum person detection score [{config:detection.confidence}]",
    )
    det.add_argument(
        "--nms_threshold",
        "--nms-threshold",
        dest="nms_threshold",
        type=float,
        metavar="T",
        help="suppress detections overlapping more than T (1.0 disables) [{config:detection.nms_threshold}]",
    )
    det.add_argument(
        "--cosine_distance",
        "--cosine-distance",
        dest="cosine_distance",
        type=float,
        metavar="D",
        help="tracker appearance gate: max cosine distance to match a track "
        "[{config:tracker.max_cosine_distance}]",
    )
    det.add_argument(
        "--min-votes",
        type=_positive_int,
        metavar="N",
        help="face votes before a name is announced [{config:identity.min_votes}]",
    )
    det.add_argument(
        "--min-face-confidence",
        type=float,
        metavar="P",
        help="extra floor on the classifier confidence (0: the model's own calibrated threshold) "
        "[{config:identity.min_confidence}]",
    )
    det.add_argument(
        "--workers", type=_positive_int, metavar="N", help="inference workers (CPU only; Edge TPU uses 1)"
    )
    det.add_argument("--threads", type=_positive_int, metavar="N", help="TFLite threads per model")
    det.add_argument(
        "--assets-dir",
        type=Path,
        metavar="DIR",
        help="where the models live [models/assets here, else the checkout's]",
    )

    mq = parser.add_argument_group("MQTT and state")
    mq.add_argument(
        "--broker",
        type=_broker,
        metavar="HOST[:PORT][,HOST[:PORT]...]",
        help="MQTT broker, or the nodes of a cluster: the first that answers is used, the next "
        "when the connection is lost [{config:mqtt.host}:{config:mqtt.port}]",
    )
    mq.add_argument("--device-id", metavar="ID", help="this device's topic level [hostname]")
    mq.add_argument("--topic-prefix", metavar="PREFIX", help="topic prefix [{config:mqtt.topic_prefix}]")
    mq.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="outbox and model store [.facetrack-state, in the working directory]",
    )
    mq.add_argument(
        "--trusted-key",
        dest="trusted_keys",
        action="append",
        type=_key_file,
        metavar="PUBKEY",
        help="public key file (from `facetrack-trainer keygen`) whose signed models this agent "
        "accepts; repeat for several (key rotation). Replaces classifier.trusted_keys",
    )
    mq.add_argument(
        "--status-interval",
        type=float,
        metavar="S",
        help="seconds between status messages [{config:status.interval_s}]",
    )
    mq.add_argument(
        "--flush-timeout",
        type=_flush_timeout,
        default=10.0,
        metavar="S",
        help="on stop, wait up to S seconds (0-3600) for the broker to take queued events [%(default)s]",
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="log verbosity (logs go to stderr) [{config:log.level}]",
    )
    parser.add_argument(
        "--log-format",
        choices=["auto", "json", "console"],
        help="auto: readable on a terminal, JSON lines otherwise [{config:log.format}]",
    )


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Nested config overrides from the flags; absent flags are None and dropped by load_config."""
    return {
        "device_id": args.device_id,
        "state_dir": args.state_dir,
        "assets_dir": args.assets_dir,
        "log": {"level": args.log_level, "format": args.log_format},
        "mqtt": {"brokers": args.broker, "topic_prefix": args.topic_prefix},
        "inference": {"workers": args.workers, "threads": args.threads},
        "detection": {"confidence": args.confidence, "nms_threshold": args.nms_threshold},
        "tracker": {"max_cosine_distance": args.cosine_distance},
        "identity": {"min_votes": args.min_votes, "min_confidence": args.min_face_confidence},
        "pipeline": {
            "input": args.input,
            "output": args.output,
            "frame_stride": args.frame_stride,
            "loop": args.loop,
            "face_recheck_every": args.face_recheck_every,
        },
        "status": {"interval_s": args.status_interval},
        "classifier": {"trusted_keys": args.trusted_keys},
    }


class StoppedEarly(Exception):
    """A stop signal arrived before the agent had opened anything."""


def _stop_early(signum: int, frame: FrameType | None) -> None:
    raise StoppedEarly(signal.Signals(signum).name)


def main(args: argparse.Namespace) -> int:
    # Until the app installs its own handlers (the first thing it does), a stop signal interrupts
    # the imports and the config load, where there is nothing to clean up: exit 0, not 143.
    previous = {
        sig: signal.signal(sig, _stop_early) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    try:
        from agent.config import ConfigError, load_config
        from agent.logging_setup import configure_logging
        from agent.runtime.malloc_tuning import fix_mmap_threshold
        from agent.vision.inference import enable_crash_reports

        try:
            config = load_config(args.config, **overrides_from_args(args))
        except ConfigError as exc:
            print(f"facetrack-agent: {exc}", file=sys.stderr)
            return 2
        # Also keeps OpenCV's and FFmpeg's native log lines off stderr (JSON logs stay JSON).
        configure_logging(config.log.level, config.log.format)
        enable_crash_reports()  # a runtime segfault prints the Python stack, never a silent exit 139
        fix_mmap_threshold()
        return run_agent(config, max_frames=args.max_frames, flush_timeout_s=args.flush_timeout)
    except StoppedEarly as stop:
        print(f"facetrack-agent: stopped by {stop} while starting", file=sys.stderr)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_agent(config: Any, *, max_frames: int | None = None, flush_timeout_s: float = 10.0) -> int:
    """Run the app and turn start-up problems into one line on stderr and exit code 2."""
    from agent.classifier.errors import BundleError
    from agent.config import ConfigError
    from agent.runtime.annotate import OutputError
    from agent.runtime.app import AgentApp
    from agent.runtime.outbox import OutboxError
    from agent.runtime.source import SourceError
    from agent.vision.inference import ModelLoadError, ModelNotFoundError

    if not str(config.pipeline.input).strip():
        print(f"facetrack-agent: {NO_INPUT}", file=sys.stderr)
        return 2
    app = AgentApp(config, max_frames=max_frames, flush_timeout_s=flush_timeout_s)
    try:
        return asyncio.run(app.run())
    except (ConfigError, SourceError, OutputError, ModelLoadError, OutboxError, BundleError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, ModelNotFoundError):
            message += f"; models are looked up under {config.assets_dir.resolve()} (--assets-dir DIR)"
        print(f"facetrack-agent: {message}", file=sys.stderr)
        return 2
    except StoppedEarly:
        raise
    except Exception as exc:
        # A bug, not a bad input: the traceback goes to the log; never a silent exit or a hang.
        app.log.error("agent_failed", error=f"{type(exc).__name__}: {exc}", exc_info=exc)
        return 1
