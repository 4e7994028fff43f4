"""`facetrack-trainer review`: name, merge, discard and train from a local web page."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

from trainer.commands.options import add_signing_key
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
    step = parser.add_argument_group(
        "train and publish (the page's button runs `train`, then `publish` when --device is given)"
    )
    add_signing_key(step, "signing key from `keygen`, as for train")
    step.add_argument("--out", type=Path, default=Path("model.ftm"), help="bundle written by train")
    step.add_argument(
        "--device", metavar="ID|all", help="publish to this device id (or 'all') after training"
    )
    step.add_argument(
        "--config",
        type=Path,
        metavar="TOML",
        help="agent-style config.toml for train (models) and publish ([mqtt] broker, login, TLS; "
        "[classifier] trusted_keys), as those commands read it",
    )
    step.add_argument("--broker", metavar="HOST[:PORT]", help="broker for publish (over --config)")
    step.add_argument("--public-key", type=Path, help="public key publish checks the bundle with")
    step.add_argument(
        "--wait",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how long publish waits for the devices' answers (default: %(default)s)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8765, help="port (default %(default)s; 0 = any free one)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from trainer.review.server import ReviewServer, ReviewState
    from trainer.review.train_publish import TrainAndPublish

    if not (args.root / GROUPS_DIR / GROUPS_FILE).is_file():
        raise TrainerError(
            f"{args.root} has no groups yet: run `facetrack-trainer cluster {args.root}` first"
        )
    if not 0 <= args.port <= 65535:
        raise TrainerError(f"--port {args.port}: 0-65535")
    step = TrainAndPublish(
        photos=args.photos,
        out=args.out,
        key=args.key,
        device=args.device,
        config=args.config,
        broker=args.broker,
        public_key=args.public_key,
        wait_s=args.wait,
    )
    state = ReviewState(args.root, args.photos, step)
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
