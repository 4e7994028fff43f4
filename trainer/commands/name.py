"""`facetrack-trainer name`, `merge` and `discard`: act on the groups `cluster` found."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from trainer.errors import TrainerError

BEST = 10


def add_parser(subparsers: Any) -> None:
    name = subparsers.add_parser(
        "name",
        help="copy a group's best faces into PHOTOS/<name>/ for `train`",
        description="Copy the best faces of one or more groups (found by `cluster DIR`) into "
        "PHOTOS/NAME/, where `train` reads people. Then `train` and `publish` as usual; `train` "
        "runs enrolment hygiene on them.",
    )
    name.add_argument("groups", nargs="+", metavar="GROUP", help="group ids from `cluster` (g1, g2, ...)")
    name.add_argument(
        "--as", dest="person", required=True, metavar="NAME", help="the person's name (folder name)"
    )
    name.add_argument("--photos", type=Path, required=True, help="the photos folder `train` reads")
    name.add_argument(
        "--from",
        dest="root",
        type=Path,
        default=Path("inbox"),
        help="the clustered DIR (default: %(default)s)",
    )
    name.add_argument(
        "--best", type=int, default=BEST, help="faces copied per group, best first (default %(default)s)"
    )
    name.set_defaults(run=run_name)
    merge = subparsers.add_parser("merge", help="join groups found by `cluster` into the first one")
    merge.add_argument("groups", nargs="+", metavar="GROUP")
    merge.add_argument("--from", dest="root", type=Path, default=Path("inbox"), help="the clustered DIR")
    merge.set_defaults(run=run_merge)
    discard = subparsers.add_parser(
        "discard", help="drop groups; in an inbox their face crops are deleted (biometric data)"
    )
    discard.add_argument("groups", nargs="+", metavar="GROUP")
    discard.add_argument("--from", dest="root", type=Path, default=Path("inbox"), help="the clustered DIR")
    discard.set_defaults(run=run_discard)


def run_name(args: argparse.Namespace) -> int:
    # The inbox and groups code (NumPy) loads here, not at import: `--help` and `publish` stay fast.
    from trainer.naming import NamingError, check_name, name_groups

    if args.best < 1:
        raise TrainerError(f"--best {args.best}: at least 1")
    try:
        check_name(args.person)
        written = name_groups(args.root, args.groups, args.person, args.photos, args.best)
    except NamingError as exc:
        raise TrainerError(str(exc)) from None
    except OSError as exc:
        raise TrainerError(f"{exc.filename}: {exc.strerror}", exit_code=1) from None
    print(f"{len(written)} faces of {', '.join(args.groups)} copied to {args.photos / args.person}")
    print(f"next: facetrack-trainer train {args.photos} --out model.ftm --key KEY, then publish")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from trainer.naming import NamingError, merge_groups

    if len(args.groups) < 2:
        raise TrainerError("merge needs two or more groups: the first keeps the others' faces")
    try:
        kept = merge_groups(args.root, args.groups[0], args.groups[1:])
    except NamingError as exc:
        raise TrainerError(str(exc)) from None
    print(f"{kept['id']} now holds {len(kept['members'])} faces")
    return 0


def run_discard(args: argparse.Namespace) -> int:
    from trainer.naming import NamingError, discard_groups

    try:
        deleted = discard_groups(args.root, args.groups)
    except NamingError as exc:
        raise TrainerError(str(exc)) from None
    print(f"discarded {', '.join(args.groups)}; {deleted} face crops deleted from {args.root}")
    return 0
