"""Ed25519 public keys as bytes and text: key ids, the one-line form, parsing. Pure: reading key
files is `agent.runtime.key_files`.

A key id is the first 16 hex digits of sha256 over the 32 raw public-key bytes; bundles name the
key that signed them, so an agent with several trusted keys (rotation) knows which one to use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class KeyFileError(ValueError):
    """A key that cannot be read; the message is one line for the user."""


def raw_public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public_bytes(key)).hexdigest()[:16]


def public_key_text(key: Ed25519PublicKey) -> str:
    """The one-line form accepted in classifier.trusted_keys: base64 of the raw 32 bytes."""
    return base64.b64encode(raw_public_bytes(key)).decode()


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """A trusted key given inline: PEM text or base64 of the raw 32 bytes."""
    text = text.strip()
    if not text:
        raise KeyFileError("empty public key")
    if "-----BEGIN" in text:
        return pem_public_key(text.encode(), text)
    return raw_public_key(text, "trusted key")


def pem_public_key(data: bytes, spec: str) -> Ed25519PublicKey:
    """An Ed25519 key from PEM bytes; `spec` (the PEM text or its file) names it in errors."""
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise KeyFileError(f"cannot read public key {spec[:60]!r}: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"public key {spec[:60]!r} is not Ed25519")
    return key


def raw_public_key(text: str, where: str) -> Ed25519PublicKey:
    """An Ed25519 key from base64 of its raw 32 bytes; `where` names its origin in errors."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(
            f"{where}: not a PEM file, PEM text or base64 Ed25519 key: {text[:60]!r}"
        ) from None
    if len(raw) != 32:
        raise KeyFileError(f"{where}: base64 key has {len(raw)} bytes, an Ed25519 public key has 32")
    return Ed25519PublicKey.from_public_bytes(raw)
