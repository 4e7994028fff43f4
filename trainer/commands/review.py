"""`facetrack-trainer review`: name, merge, discard and train from a local web page."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

from trainer.errors import TrainerError
from trainer.group_file import GROUPS_DIR, GROUPS_FILE


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "review",
        help="a local web page to name, merge and discard the groups of `cluster`, then train and publish",
        description="Serve the groups `cluster DIR` found as thumbnail grids on http://127.0.0.1:PORT/ "
        "(largest first): name, merge, discard, move one face out, and 'train and publish', which "
        "runs `train` (and `publish` when --device is given) as the commands do. Only the Host "
        "127.0.0.1/localhost:PORT is answered, every action needs the page's CSRF token, and only "
        "files `cluster` listed under DIR are served. Ctrl-C stops.",
    )
    parser.add_argument("--from", dest="root", type=Path, default=Path("inbox"), help="the clustered DIR")
    parser.add_argument("--photos", type=Path, required=True, help="the photos folder `train` reads")
    parser.add_argument("--key", type=Path, help="signing key for 'train and publish'")
    parser.add_argument("--out", type=Path, default=Path("model.ftm"), help="bundle written by train")
    parser.add_argument("--device", help="publish to this device id (or 'all') after training")
    parser.add_argument("--broker", help="broker HOST[:PORT] for publish")
    parser.add_argument("--public-key", type=Path, help="public key publish checks the bundle with")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8765, help="port (default %(default)s; 0 = any free one)")
    parser.set_defaults(run=run)


def _train_and_publish(args: argparse.Namespace) -> str:
    # trainer.cli imports this module to register it: its entry point is imported when used.
    from trainer.cli import main

    if args.key is None:
        return "error: start review with --key to train"
    code = main(["train", str(args.photos), "--out", str(args.out), "--key", str(args.key), "--quiet"])
    if code != 0:
        return f"error: train exited {code} (its output is in the terminal)"
    if not args.device:
        return f"trained {args.out}"
    publish = ["publish", str(args.out), "--device", args.device, "--wait", "2"]
    if args.broker:
        publish += ["--broker", args.broker]
    if args.public_key:
        publish += ["--public-key", str(args.public_key)]
    code = main(publish)
    return f"trained {args.out} and published it to {args.device} (publish exit {code})"


def run(args: argparse.Namespace) -> int:
    from trainer.review.server import ReviewServer, ReviewState

    if not (args.root / GROUPS_DIR / GROUPS_FILE).is_file():
        raise TrainerError(
            f"{args.root} has no groups yet: run `facetrack-trainer cluster {args.root}` first"
        )
    if not 0 <= args.port <= 65535:
        raise TrainerError(f"--port {args.port}: 0-65535")
    state = ReviewState(args.root, args.photos, lambda: _train_and_publish(args))
    try:
        server = ReviewServer(args.host, args.port, state)
    except OSError as exc:
        raise TrainerError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", exit_code=1
        ) from None
    print(f"review page: {server.url} (Ctrl-C stops)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    server.server_close()
    return 0
