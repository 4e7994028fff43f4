"""`facetrack-trainer collect`: faces kept by every device -> an inbox folder (docs/enrolment.md)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from agent.config import ConfigError, load_config
from agent.runtime.credentials import resolve_login, tls_context
from trainer.errors import TrainerError
from trainer.publish import BrokerOptions, PublishError


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "collect",
        help="save the faces devices kept for naming (<prefix>/+/faces) into an inbox folder",
        description="Subscribe to every device's faces topic and write each face's crop and one "
        "index line into INBOX, dropping duplicates. Stops on Ctrl-C or after --for. Devices "
        "publish faces only with [enrolment] enabled = true; the broker's ACL must let this user "
        "read them (the shipped one allows the `trainer` user only).",
    )
    parser.add_argument(
        "--inbox", type=Path, default=Path("inbox"), help="where to write (default: %(default)s)"
    )
    parser.add_argument("--for", dest="for_s", type=float, metavar="SECONDS", help="stop after this long")
    parser.add_argument(
        "--config", type=Path, metavar="TOML", help="agent config.toml with the [mqtt] settings"
    )
    parser.add_argument(
        "--broker",
        metavar="HOST[:PORT][,...]",
        help="broker, or the nodes of a cluster tried in order (default: [mqtt] brokers, else host/port)",
    )
    parser.add_argument("--username", help="broker user (default: [mqtt] username)")
    parser.add_argument("--password-file", type=Path, help="file holding the broker password")
    parser.add_argument("--prefix", help="topic prefix (default: [mqtt] topic_prefix)")
    parser.set_defaults(run=run)


def broker_options(args: argparse.Namespace) -> BrokerOptions:
    overrides = {
        "brokers": args.broker,
        "username": args.username,
        "password_file": args.password_file,
        "topic_prefix": args.prefix,
    }
    try:
        config = load_config(args.config, mqtt={k: v for k, v in overrides.items() if v is not None})
        mqtt = config.mqtt
        login = resolve_login(mqtt)
        context = tls_context(mqtt)
    except ConfigError as exc:
        raise TrainerError(str(exc)) from None
    return BrokerOptions.from_mqtt(mqtt, login, context)


def run(args: argparse.Namespace) -> int:
    # The inbox (NumPy) loads here, not at import: `--help` and `publish` stay fast.
    from trainer.collect import collect
    from trainer.inbox import Inbox, InboxError

    if args.for_s is not None and args.for_s <= 0:
        raise TrainerError(f"--for {args.for_s:g}: give a number of seconds above 0")
    options = broker_options(args)
    try:
        inbox = Inbox(args.inbox)
    except InboxError as exc:
        raise TrainerError(str(exc)) from None
    before = len(inbox)

    def ready(topic: str) -> None:
        print(
            f"collecting {topic} into {args.inbox} ({before} faces already there); Ctrl-C stops", flush=True
        )

    def bad(topic: str, why: str) -> None:
        print(f"facetrack-trainer: skipped a message on {topic}: {why}", file=sys.stderr, flush=True)

    try:
        report = asyncio.run(collect(options, inbox, for_s=args.for_s, on_ready=ready, on_bad=bad))
    except PublishError as exc:
        raise TrainerError(f"MQTT {options.host}:{options.port}: {exc}", exit_code=1) from None
    except OSError as exc:
        raise TrainerError(f"inbox {args.inbox}: {exc.strerror or exc}", exit_code=1) from None
    finally:
        inbox.close()
    print(
        f"stopped ({report.stopped_by}): {report.added} new faces, {report.duplicates} duplicates, "
        f"{report.bad} unreadable messages; {len(inbox)} faces in {args.inbox}",
        flush=True,
    )
    return 0
