"""Ed25519 keys: trusted public keys on the agent, the signing key on the workstation.

A key id is the first 16 hex digits of sha256 over the 32 raw public-key bytes; bundles name the
key that signed them, so an agent with several trusted keys (rotation) knows which one to use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class KeyFileError(ValueError):
    """A key that cannot be read; the message is one line for the user."""


def raw_public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public_bytes(key)).hexdigest()[:16]


def public_key_text(key: Ed25519PublicKey) -> str:
    """The one-line form accepted in classifier.trusted_keys: base64 of the raw 32 bytes."""
    return base64.b64encode(raw_public_bytes(key)).decode()


def parse_public_key(spec: str) -> Ed25519PublicKey:
    """A trusted key from config: a PEM file path, PEM text, or base64 of the raw 32 bytes."""
    text = spec.strip()
    if not text:
        raise KeyFileError("empty public key")
    if "-----BEGIN" in text:
        data = text.encode()
    else:
        path = Path(text).expanduser()
        if path.is_file():
            data = path.read_bytes()
            if b"-----BEGIN" not in data:
                return _raw_public(data.decode(errors="replace").strip(), str(path))
        else:
            return _raw_public(text, "trusted key")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise KeyFileError(f"cannot read public key {text[:60]!r}: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"public key {text[:60]!r} is not Ed25519")
    return key


def _raw_public(text: str, where: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(
            f"{where}: not a PEM file, PEM text or base64 Ed25519 key: {text[:60]!r}"
        ) from None
    if len(raw) != 32:
        raise KeyFileError(f"{where}: base64 key has {len(raw)} bytes, an Ed25519 public key has 32")
    return Ed25519PublicKey.from_public_bytes(raw)


def load_trusted_keys(specs: Iterable[str]) -> dict[str, Ed25519PublicKey]:
    """key id -> key for every configured trusted key; raises KeyFileError on the first bad one."""
    keys: dict[str, Ed25519PublicKey] = {}
    for spec in specs:
        key = parse_public_key(spec)
        keys[key_id(key)] = key
    return keys


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read private key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an Ed25519 private key")
    return key


def write_key_pair(out_dir: Path, name: str = "facetrack") -> tuple[Path, Path, Ed25519PrivateKey]:
    """Create `<name>.key` (PEM PKCS#8, mode 0600) and `<name>.pub` (PEM) in out_dir.

    Refuses to overwrite an existing private key: losing it would orphan every deployed agent.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    private_path = out_dir / f"{name}.key"
    public_path = out_dir / f"{name}.pub"
    if private_path.exists():
        raise KeyFileError(f"{private_path} already exists; refusing to overwrite a signing key")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # O_EXCL + 0600 at creation: the key is never readable by others, not even for an instant.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_path.write_bytes(public_pem)
    return private_path, public_path, key
