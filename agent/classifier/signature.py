"""The checks of a bundle that need no scikit-learn: structure, key, payload hash, signature,
embedder and version order. `verify.verify_bundle` runs them before loading the payload; the
trainer's `publish` runs them alone, so it never imports the estimator's libraries.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.classifier.bundle import ParsedBundle, parse_bundle, too_far_ahead, version_key
from agent.classifier.errors import BundleError, RejectCode


def check_signed(
    data: bytes,
    *,
    trusted_keys: Mapping[str, Ed25519PublicKey],
    embedder_id: str | None,
    dim: int | None,
    running_version: str | None = None,
    now: datetime | None = None,
) -> ParsedBundle:
    """The parsed bundle when it is signed by a trusted key and fits this agent, or BundleError.

    `now` (the caller's clock; None skips the check): a version more than MAX_VERSION_SKEW ahead
    of it is refused, as it would make every later bundle "older".
    """
    parsed = parse_bundle(data)
    manifest = parsed.manifest
    if not trusted_keys:
        raise BundleError(
            RejectCode.NO_TRUSTED_KEYS, "no trusted keys configured (classifier.trusted_keys is empty)"
        )
    public_key = trusted_keys.get(manifest.key_id)
    if public_key is None:
        raise BundleError(
            RejectCode.UNKNOWN_KEY,
            f"signed by unknown key {manifest.key_id} (trusted: {', '.join(sorted(trusted_keys))})",
        )
    if parsed.payload_sha256 != manifest.payload_sha256 or len(parsed.payload) != manifest.payload_size:
        raise BundleError(
            RejectCode.PAYLOAD_HASH_MISMATCH,
            f"payload sha256 {parsed.payload_sha256[:16]}... does not match the manifest "
            f"{manifest.payload_sha256[:16]}... (modified after signing or corrupted)",
        )
    try:
        public_key.verify(parsed.signature, parsed.signed_bytes)
    except InvalidSignature:
        raise BundleError(
            RejectCode.BAD_SIGNATURE, f"bad signature: does not verify with key {manifest.key_id}"
        ) from None
    if embedder_id is not None and manifest.embedder_id != embedder_id:
        raise BundleError(
            RejectCode.EMBEDDER_MISMATCH,
            f"trained for embedder {manifest.embedder_id!r}, this agent runs {embedder_id!r}",
        )
    if dim is not None and manifest.dim != dim:
        raise BundleError(
            RejectCode.EMBEDDER_MISMATCH,
            f"embedding dimension {manifest.dim} does not match this agent's embedder ({dim})",
        )
    if now is not None:
        ahead = too_far_ahead(manifest.model_version, now)
        if ahead is not None:
            raise BundleError(RejectCode.FUTURE_VERSION, ahead)
    if running_version is not None:
        new_key, old_key = version_key(manifest.model_version), version_key(running_version)
        if new_key == old_key:
            # Identical bytes never get here (ModelService confirms those): this is a different
            # bundle reusing a version number, which would make "which model runs" ambiguous.
            raise BundleError(
                RejectCode.ALREADY_RUNNING,
                f"version {manifest.model_version} is already running (with different content); "
                "train a new version",
            )
        if new_key < old_key:
            raise BundleError(
                RejectCode.OLDER_VERSION,
                f"version {manifest.model_version} is older than the running {running_version}",
            )
    return parsed
