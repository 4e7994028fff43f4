"""`facetrack-trainer`: photos -> signed classifier bundle -> the fleet.

facetrack-trainer keygen --out keys/
facetrack-trainer train photos/ --out model.ftm --key keys/facetrack.key [--negatives strangers/]
facetrack-trainer evaluate model.ftm test_photos/ [--impostors strangers/] [--json]
facetrack-trainer publish model.ftm --device cam-1|all [--broker host:8883] [--config config.toml]
    [--ca ca.crt --cert client.crt --key client.key --username trainer --password-file FILE] [--wait 30]
    [--public-key keys/facetrack.pub]
facetrack-trainer publish --clear --device cam-1   # delete a retained model sent to a wrong device id
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent import __version__
from agent.cli_parser import OneLineParser
from agent.config import AgentConfig, ConfigError, load_config

EPILOG = "Exit status: 0 success, 1 failure (rejected / bad input), 2 usage error or no device answered."


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "facetrack" / "embeddings"


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="TOML",
        help="agent config.toml: the detector, embedder and MQTT settings to use (default: built-in)",
    )


def _add_vision(parser: argparse.ArgumentParser) -> None:
    _add_config(parser)
    parser.add_argument(
        "--assets-dir", type=Path, help="where the models live (default: config assets_dir, models/assets)"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=_default_cache_dir(),
        help="embedding cache, keyed by photo content hash (default: %(default)s)",
    )
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    parser.add_argument(
        "--pad",
        type=float,
        default=0.5,
        help="black border added around each photo before face detection, as a fraction of its "
        "longest side, so tightly cropped faces are found (default: %(default)s)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="facetrack-trainer",
        description=(
            "Train, sign, evaluate and publish the face classifier that facetrack agents use. "
            "Photos are detected, aligned and embedded with the same models as the agent."
        ),
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"facetrack {__version__}")
    parser.add_argument("--verbose", action="store_true", help="log model loading details to stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    keygen = commands.add_parser(
        "keygen",
        help="create an Ed25519 signing key pair",
        description="Create DIR/facetrack.key (private, mode 0600) and DIR/facetrack.pub. Put the "
        "public key (file path or the printed base64 line) in each agent's classifier.trusted_keys.",
    )
    keygen.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory for the key files")
    keygen.add_argument("--name", default="facetrack", help="file name stem (default: %(default)s)")
    keygen.set_defaults(handler=cmd_keygen)

    train = commands.add_parser(
        "train",
        help="train and sign a classifier from one folder of photos per person",
        description="Detect, align and embed every photo in DATASET/<person>/, skip photos with no "
        "face or several faces, select the SVM kernel and C by cross-validation, choose the "
        "'unknown' threshold by leaving whole identities out so strangers are accepted at most at "
        "--far-target, and write a signed bundle plus BUNDLE.report.json.",
        epilog=EPILOG,
    )
    train.add_argument(
        "dataset", type=Path, metavar="DATASET", help="folder with one sub-folder of photos per person"
    )
    train.add_argument(
        "--out", type=Path, required=True, metavar="BUNDLE", help="bundle file to write (.ftm)"
    )
    train.add_argument(
        "--negatives",
        type=Path,
        metavar="DIR",
        help="photos of people who must never be named (sub-folders per person, or loose photos); "
        "trained as an explicit rejected class",
    )
    train.add_argument(
        "--key",
        type=Path,
        metavar="PRIVATE_KEY",
        default=Path(os.environ["FACETRACK_SIGNING_KEY"])
        if os.environ.get("FACETRACK_SIGNING_KEY")
        else None,
        help="Ed25519 private key from `keygen` (default: $FACETRACK_SIGNING_KEY)",
    )
    train.add_argument(
        "--far-target",
        type=float,
        default=0.01,
        help="highest acceptable rate of strangers being given a name (default: %(default)s)",
    )
    train.add_argument(
        "--model-version",
        help="model version YYYYMMDDTHHMMSS[.ffffff]Z (default: now, UTC); agents refuse older ones",
    )
    train.add_argument("--seed", type=int, default=0, help="random seed for the cross-validation splits")
    train.add_argument(
        "--strict",
        action="store_true",
        help="refuse to train when the hygiene check finds suspicious photos (near-duplicates, "
        "probably misfiled photos, a person whose photos disagree); without it they are listed only",
    )
    _add_vision(train)
    train.set_defaults(handler=cmd_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="measure a bundle on held-out photos",
        description="Run the bundle on TEST_DIR/<person>/ photos (people the bundle does not know "
        "count as impostors) and on --impostors photos. accuracy: enrolled faces whose person the "
        "SVM picks; true_accept_rate: enrolled faces named correctly at the threshold; "
        "false_accept_rate: impostor faces given any name.",
        epilog=EPILOG,
    )
    evaluate.add_argument("bundle", type=Path, metavar="BUNDLE")
    evaluate.add_argument(
        "test_dir", type=Path, metavar="TEST_DIR", help="one sub-folder of photos per person"
    )
    evaluate.add_argument("--impostors", type=Path, metavar="DIR", help="photos of people not in the bundle")
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON")
    evaluate.add_argument(
        "--plot",
        type=Path,
        metavar="PNG",
        help="where to draw the similarity histograms, TAR-vs-FAR curve and confusion matrix "
        "(default: BUNDLE.evaluate.png)",
    )
    _add_vision(evaluate)
    evaluate.set_defaults(handler=cmd_evaluate)

    publish = commands.add_parser(
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
            "      --ca pki/ca.crt --cert pki/clients/trainer/client.crt \\\n"
            "      --key pki/clients/trainer/client.key \\\n"
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
        "--ca",
        type=Path,
        metavar="CA_FILE",
        help="CA certificate (PEM) the broker's certificate must chain to; enables TLS",
    )
    login.add_argument(
        "--cert",
        type=Path,
        metavar="CERT_FILE",
        help="client certificate (PEM) for brokers that require one (mutual TLS, e.g. "
        "facetrack-broker.sh's clients/trainer/client.crt); enables TLS",
    )
    login.add_argument(
        "--key",
        type=Path,
        metavar="KEY_FILE",
        help="private key (PEM, unencrypted) of --cert (default: the key inside CERT_FILE)",
    )
    login.add_argument("--tls", action="store_true", default=None, help="use TLS with the system CAs")
    publish.add_argument(
        "--protocol", choices=("3.1.1", "5"), help="MQTT protocol version (default: config mqtt.protocol, 5)"
    )
    publish.add_argument("--prefix", help="topic prefix (default: config mqtt.topic_prefix, facetrack)")
    publish.add_argument("--json", action="store_true", help="print the answers as JSON")
    publish.set_defaults(handler=cmd_publish)
    return parser


def _error(message: str) -> int:
    print(f"facetrack-trainer: error: {message}", file=sys.stderr)
    return 1


def _config(args: argparse.Namespace) -> AgentConfig:
    overrides: dict[str, Any] = {}
    if getattr(args, "assets_dir", None) is not None:
        overrides["assets_dir"] = args.assets_dir
    return load_config(args.config, **overrides)


def _dataset_error(exc: Exception) -> int:
    from trainer.dataset import CacheError

    hint = " (pass another --cache-dir, or --no-cache)" if isinstance(exc, CacheError) else ""
    return _error(f"{exc}{hint}")


def _embedding(args: argparse.Namespace, config: AgentConfig) -> Any:
    from trainer.dataset import FaceEmbedding

    return FaceEmbedding.from_config(
        config, cache_dir=None if args.no_cache else args.cache_dir, pad=args.pad
    )


def cmd_keygen(args: argparse.Namespace) -> int:
    from agent.classifier.keys import KeyFileError, key_id, public_key_text
    from agent.runtime.key_files import write_key_pair

    try:
        private_path, public_path, key = write_key_pair(args.out, args.name)
    except (KeyFileError, OSError) as exc:
        return _error(str(exc))
    print(f"private key: {private_path} (mode 0600; keep it on this workstation)")
    print(f"public key:  {public_path}")
    print(f"key id:      {key_id(key.public_key())}")
    print(f'agent config: [classifier] trusted_keys = ["{public_key_text(key.public_key())}"]')
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from agent.classifier.bundle import version_key
    from agent.classifier.classifier import RESERVED_LABELS
    from agent.classifier.keys import KeyFileError
    from agent.runtime.key_files import load_private_key
    from trainer.dataset import DatasetError, describe_skipped, labelled, scan_people, split_usable
    from trainer.training import TrainingError, format_report, train

    # The photos first: a wrong DATASET path is the mistake to report before any flag.
    try:
        people = scan_people(args.dataset)
        negatives = scan_people(args.negatives, allow_loose=True) if args.negatives else {}
    except DatasetError as exc:
        return _error(str(exc))
    reserved = sorted(set(people) & RESERVED_LABELS)
    if reserved:
        return _error(f"{args.dataset}: folder name(s) {reserved} are reserved")
    if args.key is None:
        return _error("no signing key: pass --key PRIVATE_KEY (create one with `facetrack-trainer keygen`)")
    if not 0.0 < args.far_target < 1.0:
        return _error(f"--far-target must be between 0 and 1, got {args.far_target}")
    if args.model_version:
        try:
            version_key(args.model_version)
        except ValueError as exc:
            return _error(str(exc))
    try:
        private_key = load_private_key(args.key)
        config = _config(args)
        embedding = _embedding(args, config)
        progress = not args.quiet
        samples = embedding.samples(labelled(people), desc="people", progress=progress)
        neg_samples = embedding.samples(labelled(negatives), desc="negatives", progress=progress)
    except (KeyFileError, ConfigError) as exc:
        return _error(str(exc))
    except DatasetError as exc:
        return _dataset_error(exc)
    usable, skipped = split_usable(samples)
    neg_usable, neg_skipped = split_usable(neg_samples)
    for sample in skipped + neg_skipped:
        print(f"skipped: {describe_skipped(sample)}")
    enrolled = {s.label for s in usable}
    for person in sorted(set(people) - enrolled):
        print(f"warning: {person} has no photo with exactly one face and is not enrolled")
    x = np.array([s.embedding for s in usable], dtype=np.float64).reshape(-1, embedding.dim)
    y = [str(s.label) for s in usable]
    x_neg = np.array([s.embedding for s in neg_usable], dtype=np.float64).reshape(-1, embedding.dim)
    from trainer import hygiene

    findings = hygiene.check(x, y, [s.path for s in usable])
    for line in findings.lines():
        print(f"suspicious: {line}")
    if findings.count and args.strict:
        return _error(f"{findings.count} suspicious finding(s) above and --strict: fix the folders first")
    try:
        result = train(
            x,
            y,
            negatives=x_neg,
            negative_groups=[str(s.label) for s in neg_usable],
            far_target=args.far_target,
            seed=args.seed,
        )
    except TrainingError as exc:
        return _error(str(exc))
    result.report["skipped"] = [describe_skipped(s) for s in skipped + neg_skipped]
    result.report["hygiene"] = findings.as_dict()
    result.report["embedder_id"] = embedding.embedder_id
    summary = result.summary()
    summary["skipped"] = len(skipped) + len(neg_skipped)
    data = result.sign(
        embedder_id=embedding.embedder_id,
        dim=embedding.dim,
        private_key=private_key,
        training=summary,
        version=args.model_version,
    )
    from agent.classifier.bundle import parse_bundle

    manifest = parse_bundle(data).manifest
    result.report["model_version"] = manifest.model_version
    temp = args.out.with_name(args.out.name + ".tmp")
    report_path = args.out.with_name(args.out.name + ".report.json")
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        temp.write_bytes(data)
        os.replace(temp, args.out)
        report_path.write_text(json.dumps(result.report, indent=2) + "\n")
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        where = f"{exc.filename}: " if exc.filename and str(exc.filename) != str(args.out) else ""
        return _error(f"cannot write {args.out}: {where}{exc.strerror or exc}")
    print(format_report(result.report))
    _draw_train_plot(args.out, result, manifest.model_version)
    cache = embedding.cache
    print(f"embeddings: {cache.hits} from cache, {cache.misses} computed")
    print(
        f"wrote {args.out} (version {manifest.model_version}, {len(data)} bytes, key {manifest.key_id}) "
        f"and {report_path}"
    )
    return 0


def _draw_train_plot(bundle: Path, result: Any, version: str) -> None:
    from trainer.plots import PlotUnavailable, draw

    confusion = result.report["confusion"]
    path = bundle.with_name(bundle.name + ".png")
    try:
        draw(
            path,
            title=f"facetrack-trainer train {bundle.name} (version {version}; cross-validated)",
            genuine=result.genuine_scores,
            impostor=result.impostor_scores,
            threshold=result.threshold,
            genuine_total=result.report["genuine_faces"],
            rows=confusion["rows"],
            columns=confusion["columns"],
            matrix=confusion["matrix"],
        )
    except (PlotUnavailable, OSError) as exc:
        print(f"facetrack-trainer: warning: no picture: {exc}", file=sys.stderr)
        return
    print(f"picture: {path}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from agent.classifier.errors import BundleError
    from trainer.dataset import DatasetError
    from trainer.evaluate import evaluate, format_evaluation, load_bundle_unverified

    try:
        bundle = load_bundle_unverified(args.bundle)
        config = _config(args)
        embedding = _embedding(args, config)
        result = evaluate(
            bundle.classifier, embedding, args.test_dir, args.impostors, progress=not args.quiet
        )
    except BundleError as exc:
        return _error(f"{args.bundle}: {exc}")
    except OSError as exc:
        return _error(f"{exc.filename}: {exc.strerror}")
    except ConfigError as exc:
        return _error(str(exc))
    except DatasetError as exc:
        return _dataset_error(exc)
    if result["faces"] == 0:
        # Rates over zero faces are not a measurement: fail rather than print nulls with success.
        why = ", ".join(f"{n} {kind}" for kind, n in result["skipped_by_reason"].items())
        return _error(f"no usable face in any of {result['skipped']} photo(s), nothing measured ({why})")
    print(json.dumps(result, indent=2) if args.json else format_evaluation(result))
    from trainer.plots import PlotUnavailable, draw

    plot = args.plot or args.bundle.with_name(args.bundle.name + ".evaluate.png")
    confusion = result["confusion"]
    try:
        draw(
            plot,
            title=f"facetrack-trainer evaluate {args.bundle.name} on {args.test_dir}",
            genuine=result["genuine_scores"],
            impostor=result["impostor_scores"],
            threshold=result["threshold"],
            genuine_total=result["enrolled_faces"],
            rows=confusion["rows"],
            columns=confusion["columns"],
            matrix=confusion["matrix"],
        )
    except (PlotUnavailable, OSError) as exc:
        print(f"facetrack-trainer: warning: no picture: {exc}", file=sys.stderr)
        return 0
    # With --json stdout stays one JSON document; the path goes to stderr.
    print(f"picture: {plot}", file=sys.stderr if args.json else sys.stdout)
    return 0


# Flags that name files, by their key under [mqtt], so a bad file is reported as the flag.
_PUBLISH_FILE_FLAGS = {
    "password_file": "--password-file",
    "tls.ca_file": "--ca",
    "tls.cert_file": "--cert",
    "tls.key_file": "--key",
}


def _publish_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The [mqtt] settings given as flags, nested like config.toml; None = not given."""
    tls = {"ca_file": args.ca, "cert_file": args.cert, "key_file": args.key, "enabled": args.tls}
    return {
        "brokers": args.broker,
        "username": args.username,
        "password_file": args.password_file,
        "protocol": args.protocol,
        "topic_prefix": args.prefix,
        "tls": tls,
    }


def _checked_bundle(args: argparse.Namespace, data: bytes, config: AgentConfig) -> tuple[Any, bool]:
    """The manifest of a bundle fit to send, and whether its signature was checked (BundleError,
    KeyFileError otherwise)."""
    from agent.runtime.key_files import load_trusted_keys
    from trainer.publish import check_bundle

    specs = [str(path) for path in args.public_keys or []] or list(config.classifier.trusted_keys)
    for path in args.public_keys or []:
        if not path.is_file():
            raise ConfigError(f"--public-key {path}: no such file")
    trusted = load_trusted_keys(specs) if specs else None
    parsed, checked = check_bundle(data, trusted)
    return parsed.manifest, checked


def cmd_publish(args: argparse.Namespace) -> int:
    from agent.classifier.errors import BundleError
    from agent.classifier.keys import KeyFileError
    from agent.runtime.credentials import resolve_login, tls_context
    from agent.runtime.topics import check_topic_part
    from trainer.publish import BrokerOptions, clear_retained, format_table, publish_bundle

    try:
        check_topic_part(args.device, one_level=True)
    except ValueError as exc:
        return _error(f"--device {args.device!r} {exc}; a device id or 'all'")
    if args.clear == (args.bundle is not None):
        return _error("give a BUNDLE to publish, or --clear to delete the retained model of --device")
    signature_checked = False
    manifest: Any = None
    try:
        overrides = _publish_overrides(args)
        config = load_config(args.config, mqtt=overrides)
        mqtt = config.mqtt
        data = b""
        if args.bundle is not None:
            data = args.bundle.read_bytes()
            manifest, signature_checked = _checked_bundle(args, data, config)
        # Errors name a file by the flag that gave it; a --key without any certificate asks for --cert.
        key_alone = args.key is not None and mqtt.tls.cert_file is None
        given = {
            "password_file": args.password_file is not None,
            "tls.ca_file": args.ca is not None,
            "tls.cert_file": args.cert is not None or key_alone,
            "tls.key_file": args.key is not None,
        }
        labels = {key: flag for key, flag in _PUBLISH_FILE_FLAGS.items() if given[key]}
        login = resolve_login(
            mqtt, labels=labels, warn=lambda m: print(f"facetrack-trainer: warning: {m}", file=sys.stderr)
        )
        context = tls_context(mqtt, labels=labels)
    except BundleError as exc:
        return _error(f"{args.bundle}: not sent: {exc}")
    except (ConfigError, KeyFileError) as exc:
        return _error(str(exc))
    except OSError as exc:
        return _error(f"{args.bundle}: {exc.strerror}")
    if login.password_dropped:
        print(
            "facetrack-trainer: warning: a password is set but no user name (--username or "
            "mqtt.username); MQTT 3.1.1 cannot send it, connecting without",
            file=sys.stderr,
        )
    options = BrokerOptions(
        host=mqtt.host,
        port=mqtt.port,
        username=login.username,
        password=login.password,
        prefix=mqtt.topic_prefix,
        protocol=mqtt.protocol,
        tls_context=context,
        brokers=mqtt.addresses(),
    )
    if args.clear:
        try:
            cleared = asyncio.run(clear_retained(args.device, options))
        except Exception as exc:  # PublishError and socket errors: one line for the user
            return _error(f"MQTT {mqtt.describe_brokers()}: {exc}")
        print(f"cleared the retained model on {cleared}")
        return 0
    try:
        topic, answers = asyncio.run(
            publish_bundle(data, args.device, options, wait_s=args.wait, expect=args.expect)
        )
    except Exception as exc:  # PublishError and socket errors: one line for the user
        hint = ""
        if "certificate required" in str(exc).lower() and mqtt.tls.cert_file is None:
            hint = "; the broker wants a client certificate: --cert/--key or [mqtt.tls] cert_file/key_file"
        return _error(f"MQTT {mqtt.describe_brokers()}: {exc}{hint}")
    if args.json:
        print(json.dumps([a.__dict__ for a in answers], indent=2))
    else:
        print(f"published {args.bundle} (version {manifest.model_version}) retained to {topic}")
        print(format_table(answers) if answers else f"no device answered within {args.wait:g} s")
        if not signature_checked:
            # Last, after the answers: stderr stays for errors, and the rows keep their place.
            print(
                "note: payload hash checked; signature not checked here (no public key: "
                "--public-key FILE or [classifier] trusted_keys in --config)"
            )
    if not answers:
        return 2
    return 1 if any(a.failed for a in answers) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from agent.logging_setup import configure_logging

    # Logs go to stderr so `evaluate --json` / `publish --json` keep stdout machine-readable.
    configure_logging("info" if args.verbose else "warning", "auto")
    from agent.vision.inference import ModelLoadError

    try:
        return int(args.handler(args))
    except ModelLoadError as exc:
        # A model missing (run outside the repository, a wrong --assets-dir): one line, as the agent.
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = getattr(args, "assets_dir", None)
        hint = "" if where is not None else "; pass --assets-dir DIR (where `make setup` put models/assets)"
        print(f"facetrack-trainer: error: {message}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
