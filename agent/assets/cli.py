"""`facetrack-agent assets fetch`: bring in the verified models and test data."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from agent.assets.manifest import DEFAULT_GROUPS, GROUPS, ManifestError, load_manifest, resolve_groups


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Download the models and test data listed in models/manifest.toml, verify each file's "
        "sha256 and install it atomically under the assets directory. Files already present and "
        "verified are skipped. An offline mirror (a folder with the same relative paths) is "
        "tried before the network."
    )
    parser.add_argument("action", choices=["fetch"], help="fetch (and verify) the assets")
    parser.add_argument(
        "--group",
        action="append",
        metavar="GROUP",
        help=f"asset group to fetch, repeatable or comma-separated: {', '.join(GROUPS)} or all "
        f"(default: {' + '.join(DEFAULT_GROUPS)}; coral and openface models are never fetched by default)",
    )
    parser.add_argument(
        "--mirror",
        type=Path,
        metavar="DIR",
        help="offline mirror searched by path, then by sha256, before upstream "
        "(default: $FACETRACK_ASSET_MIRROR)",
    )
    parser.add_argument(
        "--dest",
        type=Path,
        metavar="DIR",
        help="where to install (default: the config's assets_dir, $FACETRACK_ASSETS_DIR, models/assets)",
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="config file for the default --dest")
    parser.add_argument(
        "--manifest", type=Path, metavar="FILE", help="asset manifest (default: models/manifest.toml)"
    )
    parser.add_argument(
        "--list", action="store_true", help="list the selected assets and whether present; fetch nothing"
    )
    parser.add_argument("--offline", action="store_true", help="use only the mirror, never upstream sources")
    parser.add_argument(
        "--rehash", action="store_true", help="re-hash present files instead of trusting the cache"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, metavar="S", help="network timeout in seconds (default 30)"
    )


def _default_dest(config_file: Path | None) -> Path:
    from agent.config import load_config

    return load_config(config_file).assets_dir


def main(args: argparse.Namespace) -> int:
    from agent.assets.fetcher import fetch_assets
    from agent.config import ConfigError

    try:
        manifest = load_manifest(args.manifest)
        groups = resolve_groups(args.group)
        selected = manifest.select(groups)
        dest = args.dest if args.dest is not None else _default_dest(args.config)
    except (ManifestError, ConfigError) as exc:
        print(f"facetrack-agent assets: {exc}", file=sys.stderr)
        return 2
    if args.list:
        for asset in selected:
            state = "present" if (dest / asset.path).is_file() else "missing"
            size = f"{asset.size:>10,}" if asset.size is not None else f"{'?':>10}"
            print(f"{asset.group:<9} {state:<7} {size}  {asset.path}  [{asset.license}]")
        return 0
    mirror = args.mirror
    if mirror is None and os.environ.get("FACETRACK_ASSET_MIRROR"):
        mirror = Path(os.environ["FACETRACK_ASSET_MIRROR"])
    if mirror is not None and not mirror.is_dir():
        print(f"facetrack-agent assets: mirror {mirror} is not a directory", file=sys.stderr)
        return 2
    try:
        report = fetch_assets(
            dest,
            groups,
            mirror,
            manifest=manifest,
            upstream=not args.offline,
            rehash=args.rehash,
            timeout_s=args.timeout,
        )
    except OSError as exc:
        print(f"facetrack-agent assets: cannot use {dest}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    for result in report.by_status("fetched"):
        if result.note:
            print(f"note: {result.asset.path}: {result.note}", file=sys.stderr)
    for result in report.by_status("failed"):
        print(f"error: {result.failure_line()}", file=sys.stderr)
    print(report.summary())
    return 0 if report.ok else 1
