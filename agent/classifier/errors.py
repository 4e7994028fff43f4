"""Why a bundle was refused: a stable machine code plus one human sentence."""

from __future__ import annotations

from enum import StrEnum


class RejectCode(StrEnum):
    NOT_A_BUNDLE = "not_a_bundle"
    TRUNCATED = "truncated"
    TRAILING_DATA = "trailing_data"
    UNSUPPORTED_FORMAT = "unsupported_format"
    BAD_MANIFEST = "bad_manifest"
    NO_TRUSTED_KEYS = "no_trusted_keys"
    UNKNOWN_KEY = "unknown_key"
    PAYLOAD_HASH_MISMATCH = "payload_hash_mismatch"
    BAD_SIGNATURE = "bad_signature"
    EMBEDDER_MISMATCH = "embedder_mismatch"
    OLDER_VERSION = "older_version"
    FUTURE_VERSION = "future_version"
    TOO_LARGE = "too_large"
    ALREADY_RUNNING = "already_running"
    UNTRUSTED_TYPES = "untrusted_types"
    BAD_PAYLOAD = "bad_payload"
    INSTALL_FAILED = "install_failed"


class BundleError(Exception):
    """A bundle that must not be used; `str(error)` is the reason sent in model_rejected."""

    def __init__(self, code: RejectCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
