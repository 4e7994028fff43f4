"""`facetrack-trainer publish`: send a bundle to a device or the fleet and print their answers.

It imports no scikit-learn, skops or OpenCV: the bundle is checked as bytes and a signature, and
the user waits for the broker, not for imports.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from agent.classifier.bundle import Manifest
from agent.classifier.errors import BundleError
from agent.classifier.keys import KeyFileError
from agent.config import AgentConfig, ConfigError, load_config
from agent.runtime.credentials import resolve_login, tls_context
from agent.runtime.key_files import load_trusted_keys
from agent.runtime.topics import check_topic_part
from trainer.commands.options import Subparsers
from trainer.errors import TrainerError
from trainer.publish import (
    BrokerOptions,
    check_bundle,
    clear_retained,
    format_table,
    publish_bundle,
)

_RENAMED = {"--key": "--tls-key", "--cert": "--tls-cert", "--ca": "--tls-ca"}


def add_parser(subparsers: Subparsers) -> None:
    publish = subparsers.add_parser(
        "publish",
        help="push a bundle to a device or the whole fleet and show their answers",
        description=(
            "Publish BUNDLE retained with QoS 1 to <prefix>/<ID>/model (or <prefix>/all/model), then\n"
            "wait for model_applied / model_rejected on <prefix>/+/events and print one row per device.\n\n"
            "Broker, login and TLS are resolved like the agent's: the [mqtt] section of --config, then\n"
            "FACETRACK_MQTT__* variables, then the flags below. The password is never printed."
        ),
        epilog=(
            "example, the fleet broker from deploy/mosquitto (mutual TLS + password):\n"
            "  facetrack-trainer publish model.ftm --device all --expect 3 --broker broker.lan:8883 \\\n"
            "      --tls-ca pki/ca.crt --tls-cert pki/clients/trainer/client.crt \\\n"
            "      --tls-key pki/clients/trainer/client.key \\\n"
            "      --username trainer --password-file pki/clients/trainer/password\n"
            "or put those settings in a config.toml ([mqtt] / [mqtt.tls], as for an agent) and pass\n"
            "  facetrack-trainer publish model.ftm --device all --config trainer.toml\n\n"
            "Exit status: 0 every device that answered runs it, 1 a device rejected it or bad input,\n"
            "2 no device answered."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    publish.add_argument(
        "bundle", type=Path, nargs="?", metavar="BUNDLE", help="signed bundle (.ftm) from `train`"
    )
    publish.add_argument(
        "--clear",
        action="store_true",
        help="instead of publishing, delete the retained model message of --device (for example "
        "one sent to a mistyped device id); agents ignore the empty message",
    )
    publish.add_argument(
        "--public-key",
        dest="public_keys",
        action="append",
        type=Path,
        metavar="PUBKEY",
        help="check the bundle's signature with this public key before sending (repeatable; "
        "default: [classifier] trusted_keys of --config). The payload hash is always checked",
    )
    publish.add_argument(
        "--device", required=True, metavar="ID|all", help="device id, or 'all' for the fleet"
    )
    publish.add_argument(
        "--broker",
        metavar="HOST[:PORT][,...]",
        help="MQTT broker, or the nodes of a cluster tried in order (default: config mqtt.brokers, "
        "else mqtt.host:port)",
    )
    publish.add_argument(
        "--config",
        type=Path,
        metavar="TOML",
        help="agent-style config.toml: its [mqtt] host, port, protocol, topic_prefix, username, "
        "password_file / password_env and [mqtt.tls] ca_file, cert_file, key_file are used "
        "(FACETRACK_MQTT__* variables apply as for the agent; its client_id is not, so the "
        "trainer never takes over a device's session)",
    )
    publish.add_argument(
        "--wait", type=float, default=30.0, metavar="SECONDS", help="how long to wait for answers"
    )
    publish.add_argument(
        "--expect", type=int, metavar="N", help="with --device all: stop after N devices answered"
    )
    login = publish.add_argument_group(
        "login and TLS (default: the --config [mqtt] / [mqtt.tls] settings; flags override them)"
    )
    login.add_argument("--username", metavar="NAME", help="MQTT user name (config: mqtt.username)")
    login.add_argument(
        "--password-file",
        type=Path,
        metavar="FILE",
        help="file holding the MQTT password (config: mqtt.password_file, else the variable named "
        "by mqtt.password_env, $FACETRACK_MQTT_PASSWORD by default); never given on the command line",
    )
    login.add_argument(
        "--tls-ca",
        type=Path,
        metavar="CA_FILE",
        help="CA certificate (PEM) the broker's certificate must chain to; enables TLS",
    )
    login.add_argument(
        "--tls-cert",
        type=Path,
        metavar="CERT_FILE",
        help="client certificate (PEM) for brokers that require one (mutual TLS, e.g. "
        "facetrack-broker.sh's clients/trainer/client.crt); enables TLS",
    )
    login.add_argument(
        "--tls-key",
        type=Path,
        metavar="KEY_FILE",
        help="private key (PEM, unencrypted) of --tls-cert (default: the key inside CERT_FILE); "
        "not the signing key, which only `train` uses",
    )
    # The spellings before 0.2 (--key was the TLS key here but is the signing key in `train`):
    # kept only to say what to write now.
    for old in _RENAMED:
        login.add_argument(old, dest=f"renamed_{old[2:]}", metavar="FILE", help=argparse.SUPPRESS)
    login.add_argument("--tls", action="store_true", default=None, help="use TLS with the system CAs")
    publish.add_argument(
        "--protocol", choices=("3.1.1", "5"), help="MQTT protocol version (default: config mqtt.protocol, 5)"
    )
    publish.add_argument("--prefix", help="topic prefix (default: config mqtt.topic_prefix, facetrack)")
    publish.add_argument("--json", action="store_true", help="print the answers as JSON")
    publish.set_defaults(run=run)


# Flags that name files, by their key under [mqtt], so a bad file is reported as the flag.
_FILE_FLAGS = {
    "password_file": "--password-file",
    "tls.ca_file": "--tls-ca",
    "tls.cert_file": "--tls-cert",
    "tls.key_file": "--tls-key",
}


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The [mqtt] settings given as flags, nested like config.toml; None = not given."""
    tls = {"ca_file": args.tls_ca, "cert_file": args.tls_cert, "key_file": args.tls_key, "enabled": args.tls}
    return {
        "brokers": args.broker,
        "username": args.username,
        "password_file": args.password_file,
        "protocol": args.protocol,
        "topic_prefix": args.prefix,
        "tls": tls,
    }


def _checked_bundle(args: argparse.Namespace, data: bytes, config: AgentConfig) -> tuple[Manifest, bool]:
    """The manifest of a bundle fit to send, and whether its signature was checked (BundleError,
    KeyFileError otherwise)."""
    specs = [str(path) for path in args.public_keys or []] or list(config.classifier.trusted_keys)
    for path in args.public_keys or []:
        if not path.is_file():
            raise ConfigError(f"--public-key {path}: no such file")
    trusted = load_trusted_keys(specs) if specs else None
    parsed, checked = check_bundle(data, trusted)
    return parsed.manifest, checked


def _warn(message: str) -> None:
    print(f"facetrack-trainer: warning: {message}", file=sys.stderr)


def _refuse_renamed(args: argparse.Namespace) -> None:
    for old, new in _RENAMED.items():
        value = getattr(args, f"renamed_{old[2:]}")
        if value is None:
            continue
        if old == "--key":
            raise TrainerError(
                f"publish has no --key: the signing key is for `train` only (publish checks a signature "
                f"with --public-key FILE.pub); for the broker's TLS client key write --tls-key {value}",
                exit_code=2,
            )
        raise TrainerError(f"publish's {old} is now {new}: write {new} {value}", exit_code=2)


def run(args: argparse.Namespace) -> int:
    _refuse_renamed(args)
    try:
        check_topic_part(args.device, one_level=True)
    except ValueError as exc:
        raise TrainerError(f"--device {args.device!r} {exc}; a device id or 'all'", exit_code=1) from None
    if args.clear == (args.bundle is not None):
        raise TrainerError(
            "give a BUNDLE to publish, or --clear to delete the retained model of --device", exit_code=1
        )
    signature_checked = False
    manifest: Manifest | None = None
    try:
        config = load_config(args.config, mqtt=_overrides(args))
        mqtt = config.mqtt
        data = b""
        if args.bundle is not None:
            data = args.bundle.read_bytes()
            manifest, signature_checked = _checked_bundle(args, data, config)
        # Errors name a file by the flag that gave it; a --tls-key without a certificate asks for --tls-cert.
        key_alone = args.tls_key is not None and mqtt.tls.cert_file is None
        given = {
            "password_file": args.password_file is not None,
            "tls.ca_file": args.tls_ca is not None,
            "tls.cert_file": args.tls_cert is not None or key_alone,
            "tls.key_file": args.tls_key is not None,
        }
        labels = {key: flag for key, flag in _FILE_FLAGS.items() if given[key]}
        login = resolve_login(mqtt, labels=labels, warn=_warn)
        context = tls_context(mqtt, labels=labels)
    except BundleError as exc:
        raise TrainerError(f"{args.bundle}: not sent: {exc}", exit_code=1) from None
    except (ConfigError, KeyFileError) as exc:
        raise TrainerError(str(exc), exit_code=1) from None
    except OSError as exc:
        raise TrainerError(f"{args.bundle}: {exc.strerror}", exit_code=1) from None
    if login.password_dropped:
        _warn(
            "a password is set but no user name (--username or mqtt.username); MQTT 3.1.1 cannot "
            "send it, connecting without"
        )
    options = BrokerOptions.from_mqtt(mqtt, login, context)
    if args.clear:
        try:
            cleared = asyncio.run(clear_retained(args.device, options))
        except Exception as exc:  # PublishError and socket errors: one line for the user
            raise TrainerError(f"MQTT {mqtt.describe_brokers()}: {exc}", exit_code=1) from None
        print(f"cleared the retained model on {cleared}")
        return 0
    try:
        topic, answers = asyncio.run(
            publish_bundle(data, args.device, options, wait_s=args.wait, expect=args.expect)
        )
    except Exception as exc:  # PublishError and socket errors: one line for the user
        hint = ""
        if "certificate required" in str(exc).lower() and mqtt.tls.cert_file is None:
            hint = (
                "; the broker wants a client certificate: --tls-cert/--tls-key or [mqtt.tls] "
                "cert_file/key_file"
            )
        raise TrainerError(f"MQTT {mqtt.describe_brokers()}: {exc}{hint}", exit_code=1) from None
    if args.json:
        print(json.dumps([a.__dict__ for a in answers], indent=2))
    else:
        version = manifest.model_version if manifest is not None else "?"
        via = f" through {', '.join(options.published_via)}" if len(options.published_via) > 1 else ""
        print(f"published {args.bundle} (version {version}) retained to {topic}{via}")
        print(format_table(answers) if answers else f"no device answered within {args.wait:g} s")
        if not signature_checked:
            # Last, after the answers: stderr stays for errors, and the rows keep their place.
            print(
                "note: payload hash checked; signature not checked here (no public key: "
                "--public-key FILE or [classifier] trusted_keys in --config)"
            )
    for unreached in options.unreached:
        # A node that was down gets the retained model from the others' copy in mnesia only after
        # it restarts; its devices moved to the nodes listed above.
        _warn(f"not published through {unreached}")
    if not answers:
        return 2
    return 1 if any(a.failed for a in answers) else 0
