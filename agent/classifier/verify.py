"""Signing a bundle (trainer) and verifying one before it may run (agent).

Checks run cheapest first, and every one has its own RejectCode, so `model_rejected` names the
actual defect: structure, format version, key, payload hash, signature, embedder, version order,
then the skops load with trusted types only and a consistency check of the loaded estimator.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.classifier.bundle import (
    FORMAT_VERSION,
    Manifest,
    assemble,
    encode_manifest,
    new_version,
    parse_bundle,
    signed_region,
    too_far_ahead,
    version_key,
)
from agent.classifier.classifier import FaceClassifier, load_estimator
from agent.classifier.errors import BundleError, RejectCode
from agent.classifier.keys import key_id


@dataclass(frozen=True, slots=True)
class VerifiedBundle:
    manifest: Manifest
    classifier: FaceClassifier
    data: bytes

    @property
    def version(self) -> str:
        return self.manifest.model_version


def sign_payload(
    payload: bytes,
    *,
    classes: list[str],
    labels: list[str],
    threshold: float,
    embedder_id: str,
    dim: int,
    private_key: Ed25519PrivateKey,
    training: dict[str, Any] | None = None,
    version: str | None = None,
) -> bytes:
    """Sign a serialised payload (`classifier.dump_estimator`; tests sign deliberately odd ones)."""
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        model_version=version or new_version(),
        created=datetime.now(UTC),
        embedder_id=embedder_id,
        dim=dim,
        labels=labels,
        classes=classes,
        threshold=threshold,
        payload_sha256=hashlib.sha256(payload).hexdigest(),
        payload_size=len(payload),
        key_id=key_id(private_key.public_key()),
        training=training or {},
    )
    signed = signed_region(encode_manifest(manifest), payload)
    return assemble(signed, private_key.sign(signed))


def verify_bundle(
    data: bytes,
    *,
    trusted_keys: Mapping[str, Ed25519PublicKey],
    embedder_id: str | None,
    dim: int | None,
    running_version: str | None = None,
    now: datetime | None = None,
) -> VerifiedBundle:
    """A bundle fit to run on this agent, or BundleError saying precisely why not.

    `embedder_id`/`dim` None skip that check (the trainer's evaluate reads its own bundles).
    `running_version`: a bundle must be strictly newer; the same version is "already running".
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
    classifier = FaceClassifier(load_estimator(parsed.payload), manifest)
    return VerifiedBundle(manifest=manifest, classifier=classifier, data=data)
