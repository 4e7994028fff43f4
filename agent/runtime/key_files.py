"""Ed25519 key files: trusted public keys on the agent, the signing key pair on the workstation.

Here in the runtime because they are files: the classifier verifies bundles from bytes
(`agent.classifier.verify`) with keys parsed from text (`agent.classifier.keys`), but keys named by
path in the config, and the signing key, are read from and written to disk.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.classifier.keys import KeyFileError, key_id, pem_public_key, public_key_from_text, raw_public_key


def parse_public_key(spec: str) -> Ed25519PublicKey:
    """A trusted key from config: a PEM file path, PEM text, or base64 of the raw 32 bytes."""
    text = spec.strip()
    if text and "-----BEGIN" not in text:
        path = Path(text).expanduser()
        if path.is_file():
            data = path.read_bytes()
            if b"-----BEGIN" not in data:
                return raw_public_key(data.decode(errors="replace").strip(), str(path))
            return pem_public_key(data, text)
    return public_key_from_text(text)


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
