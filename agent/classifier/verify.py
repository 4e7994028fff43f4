"""Signing a bundle (trainer) and verifying one before it may run (agent).

Checks run cheapest first, and every one has its own RejectCode, so `model_rejected` names the
actual defect: structure, format version, key, payload hash, signature, embedder, version order,
then the payload load (numpy arrays without pickle, or skops with trusted types only) and a
consistency check of the loaded estimator.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.classifier.bundle import (
    FORMAT_VERSION,
    Manifest,
    assemble,
    encode_manifest,
    new_version,
    signed_region,
)
from agent.classifier.classifier import FaceClassifier, load_payload
from agent.classifier.keys import key_id
from agent.classifier.signature import check_signed


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
    payload_kind: Literal["skops", "arrays"] = "skops",
) -> bytes:
    """Sign a serialised payload of `payload_kind` (`array_payload.dump_arrays`, or
    `classifier.dump_estimator` for skops; tests sign deliberately odd ones)."""
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
        payload_kind=payload_kind,
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
    parsed = check_signed(
        data,
        trusted_keys=trusted_keys,
        embedder_id=embedder_id,
        dim=dim,
        running_version=running_version,
        now=now,
    )
    classifier = FaceClassifier(load_payload(parsed.payload, parsed.manifest.payload_kind), parsed.manifest)
    return VerifiedBundle(manifest=parsed.manifest, classifier=classifier, data=data)
