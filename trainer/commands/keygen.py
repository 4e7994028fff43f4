"""`facetrack-trainer keygen`: an Ed25519 signing key pair for bundles."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.classifier.keys import KeyFileError, key_id, public_key_text
from agent.runtime.key_files import write_key_pair
from trainer.commands.options import Subparsers
from trainer.errors import TrainerError


def add_parser(subparsers: Subparsers) -> None:
    keygen = subparsers.add_parser(
        "keygen",
        help="create an Ed25519 signing key pair",
        description="Create DIR/facetrack.key (private, mode 0600) and DIR/facetrack.pub. Put the "
        "public key (file path or the printed base64 line) in each agent's classifier.trusted_keys.",
    )
    keygen.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory for the key files")
    keygen.add_argument("--name", default="facetrack", help="file name stem (default: %(default)s)")
    keygen.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        private_path, public_path, key = write_key_pair(args.out, args.name)
    except (KeyFileError, OSError) as exc:
        raise TrainerError(str(exc), exit_code=1) from None
    print(f"private key: {private_path} (mode 0600; keep it on this workstation)")
    print(f"public key:  {public_path}")
    print(f"key id:      {key_id(key.public_key())}")
    print(f'agent config: [classifier] trusted_keys = ["{public_key_text(key.public_key())}"]')
    return 0
