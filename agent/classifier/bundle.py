"""The signed classifier bundle: one file, a framed binary container.

Layout (all integers big-endian):

    offset      size  field
    0           8     magic  b"FTCLF\\r\\n\\x1a" (the CR/LF/EOF bytes catch text-mode mangling, as in PNG)
    8           2     format version (FORMAT_VERSION)
    10          4     manifest length M (<= MAX_MANIFEST_BYTES)
    14          M     manifest, UTF-8 JSON (see Manifest)
    14+M        8     payload length P (<= MAX_PAYLOAD_BYTES)
    22+M        P     payload: the classifier, of the kind the manifest's payload_kind names:
                      "arrays" (numpy .npz, read with allow_pickle=False; array_payload.py) or
                      "skops" (a scikit-learn estimator saved with skops; the default, for
                      bundles made before payload_kind existed)
    22+M+P      2     signature length S (64)
    24+M+P      S     Ed25519 signature over bytes [0, 22+M+P): header, manifest and payload
    end of file       nothing may follow

Parsing is defensive: every length is bounded and checked against the bytes actually present, so a
truncated file, random bytes or a pickle renamed to `.ftm` each fail with their own precise reason.
Parsing does NOT trust anything; `verify_bundle` (in verify.py) checks the signature and contents.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.classifier.errors import BundleError, RejectCode

MAGIC = b"FTCLF\r\n\x1a"
FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_PAYLOAD_BYTES = 64 * 1024 * 1024
SIGNATURE_BYTES = 64
BUNDLE_SUFFIX = ".ftm"

_HEAD = struct.Struct(">8sHI")
_PAYLOAD_LEN = struct.Struct(">Q")
_SIG_LEN = struct.Struct(">H")

# Model versions are UTC timestamps "YYYYMMDDTHHMMSS[.ffffff]Z": unique per training run, and their
# order is the order of training. Two bundles compare by the instant they name (see version_key).
_VERSION_RE = re.compile(r"^(\d{8})T(\d{6})(?:\.(\d{1,6}))?Z$")


def version_key(version: str) -> tuple[int, int, int]:
    """Sort key of a model version; raises ValueError for a malformed one."""
    match = _VERSION_RE.match(version)
    if match is None:
        raise ValueError(f"model version {version!r} is not of the form YYYYMMDDTHHMMSS[.ffffff]Z")
    date, time, fraction = match.groups()
    datetime.strptime(date + time, "%Y%m%d%H%M%S")  # rejects month 13 and the like
    return int(date), int(time), int((fraction or "0").ljust(6, "0"))


# How far ahead of the clock reading it a model version may be: trainers and devices whose clocks
# disagree by minutes or hours still work; a bundle dated 2999 (it blocked every later update as
# "older_version") does not.
MAX_VERSION_SKEW = timedelta(hours=24)


def version_time(version: str) -> datetime:
    """The UTC instant a model version names; raises ValueError for a malformed one."""
    date, time, fraction = version_key(version)
    moment = datetime.strptime(f"{date:08d}{time:06d}", "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    return moment + timedelta(microseconds=fraction)


def too_far_ahead(version: str, now: datetime) -> str | None:
    """Why `version` cannot be accepted at `now` (the caller's clock), or None when it can."""
    ahead = version_time(version) - now
    if ahead <= MAX_VERSION_SKEW:
        return None
    hours = MAX_VERSION_SKEW.total_seconds() / 3600
    return (
        f"version {version} is {ahead.total_seconds() / 3600:.0f} h ahead of this clock "
        f"({now:%Y-%m-%dT%H:%M:%SZ}; at most {hours:g} h allowed): check the trainer's clock, "
        "train again with the right time, and publish that"
    )


def new_version(now: datetime | None = None) -> str:
    """A model version naming `now` (UTC) with microseconds."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y%m%dT%H%M%S.%fZ")


class Manifest(BaseModel):
    """What the bundle claims about its classifier; covered by the signature."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: int
    model_version: str
    created: datetime
    embedder_id: str = Field(min_length=1)
    dim: int = Field(ge=1, le=65536)
    # Enrolled people, in the estimator's class order, without the rejected class.
    labels: list[str]
    # The estimator's classes_ in order: labels plus REJECTED_CLASS when negatives were trained.
    classes: list[str]
    threshold: float = Field(ge=0.0, le=1.0)
    payload_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    payload_size: int = Field(ge=0)
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    training: dict[str, Any] = Field(default_factory=dict)
    # How the payload is encoded. Absent in bundles made before it existed: those are skops.
    payload_kind: Literal["skops", "arrays"] = "skops"

    @field_validator("model_version")
    @classmethod
    def _version_is_ordered(cls, value: str) -> str:
        version_key(value)
        return value


@dataclass(frozen=True, slots=True)
class ParsedBundle:
    """A structurally valid bundle whose signature has NOT been checked yet."""

    manifest: Manifest
    manifest_bytes: bytes
    payload: bytes
    signature: bytes
    signed_bytes: bytes

    @property
    def payload_sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()


def _sniff(data: bytes) -> str:
    """A short guess at what a non-bundle file is, for the rejection reason."""
    if not data:
        return "empty file"
    if data[:1] == b"\x80" and len(data) > 1 and data[1] <= 5:
        return "looks like a Python pickle; pickles are refused, bundles are signed skops"
    if data[:4] == b"PK\x03\x04":
        return "looks like a bare zip/skops file, not a signed bundle"
    if data[:1] in (b"{", b"["):
        return "looks like JSON text, not a bundle"
    return f"bad magic {data[:8].hex()}"


# A real manifest nests 3 levels; anything deeper than this is refused before it is parsed.
MAX_MANIFEST_DEPTH = 32


def _nesting_depth(text: bytes) -> int:
    """The deepest `[`/`{` nesting outside JSON strings (a linear scan, no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in text:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_MANIFEST_DEPTH:
                    return deepest
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def parse_bundle(data: bytes) -> ParsedBundle:
    """Split a bundle into its parts; raises BundleError with a precise reason on any defect."""
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        if MAGIC.startswith(data) and data:
            raise BundleError(RejectCode.TRUNCATED, f"truncated bundle: {len(data)} bytes, header incomplete")
        raise BundleError(RejectCode.NOT_A_BUNDLE, f"not a facetrack bundle: {_sniff(data)}")
    if len(data) < _HEAD.size:
        raise BundleError(RejectCode.TRUNCATED, f"truncated bundle: {len(data)} bytes, header incomplete")
    _, format_version, manifest_len = _HEAD.unpack_from(data, 0)
    if format_version != FORMAT_VERSION:
        raise BundleError(
            RejectCode.UNSUPPORTED_FORMAT,
            f"unsupported bundle format version {format_version} (this agent reads {FORMAT_VERSION})",
        )
    if manifest_len > MAX_MANIFEST_BYTES:
        raise BundleError(RejectCode.BAD_MANIFEST, f"manifest length {manifest_len} exceeds the limit")
    offset = _HEAD.size
    manifest_bytes = data[offset : offset + manifest_len]
    if len(manifest_bytes) < manifest_len:
        raise BundleError(RejectCode.TRUNCATED, f"truncated bundle: {len(data)} bytes, manifest incomplete")
    offset += manifest_len
    if len(data) < offset + _PAYLOAD_LEN.size:
        raise BundleError(RejectCode.TRUNCATED, f"truncated bundle: {len(data)} bytes, no payload length")
    (payload_len,) = _PAYLOAD_LEN.unpack_from(data, offset)
    if payload_len > MAX_PAYLOAD_BYTES:
        raise BundleError(RejectCode.BAD_PAYLOAD, f"payload length {payload_len} exceeds the limit")
    offset += _PAYLOAD_LEN.size
    payload = data[offset : offset + payload_len]
    if len(payload) < payload_len:
        raise BundleError(
            RejectCode.TRUNCATED,
            f"truncated bundle: payload has {len(payload)} of {payload_len} bytes",
        )
    offset += payload_len
    signed_end = offset
    if len(data) < offset + _SIG_LEN.size:
        raise BundleError(RejectCode.TRUNCATED, f"truncated bundle: {len(data)} bytes, no signature")
    (sig_len,) = _SIG_LEN.unpack_from(data, offset)
    if sig_len != SIGNATURE_BYTES:
        raise BundleError(RejectCode.BAD_SIGNATURE, f"signature length {sig_len}, expected {SIGNATURE_BYTES}")
    offset += _SIG_LEN.size
    signature = data[offset : offset + sig_len]
    if len(signature) < sig_len:
        raise BundleError(RejectCode.TRUNCATED, f"truncated bundle: signature has {len(signature)} bytes")
    offset += sig_len
    if len(data) != offset:
        raise BundleError(
            RejectCode.TRAILING_DATA, f"{len(data) - offset} unexpected bytes after the signature"
        )
    if _nesting_depth(manifest_bytes) > MAX_MANIFEST_DEPTH:
        # json.loads would recurse once per level (a RecursionError, or worse, in the MQTT handler).
        raise BundleError(
            RejectCode.BAD_MANIFEST,
            f"manifest nests JSON arrays/objects more than {MAX_MANIFEST_DEPTH} levels deep",
        )
    try:
        manifest = Manifest.model_validate(json.loads(manifest_bytes.decode("utf-8")))
    except ValidationError as exc:  # a ValueError too: caught first
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise BundleError(
            RejectCode.BAD_MANIFEST, f"invalid manifest field {where}: {first['msg']}"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(RejectCode.BAD_MANIFEST, f"manifest is not UTF-8 JSON: {exc}") from None
    except ValueError as exc:
        # json.loads refuses some valid JSON: an integer of more than 4300 digits.
        raise BundleError(RejectCode.BAD_MANIFEST, f"manifest JSON cannot be read: {exc}") from None
    except RecursionError:
        raise BundleError(RejectCode.BAD_MANIFEST, "manifest nests too deeply to parse") from None
    if manifest.format_version != format_version:
        raise BundleError(
            RejectCode.BAD_MANIFEST,
            f"manifest format_version {manifest.format_version} != header {format_version}",
        )
    return ParsedBundle(
        manifest=manifest,
        manifest_bytes=manifest_bytes,
        payload=payload,
        signature=signature,
        signed_bytes=data[:signed_end],
    )


def signed_region(manifest_bytes: bytes, payload: bytes) -> bytes:
    """The bytes the signature covers, for a manifest and payload."""
    return (
        _HEAD.pack(MAGIC, FORMAT_VERSION, len(manifest_bytes))
        + manifest_bytes
        + _PAYLOAD_LEN.pack(len(payload))
        + payload
    )


def assemble(signed: bytes, signature: bytes) -> bytes:
    """The full bundle from its signed region and the signature over it."""
    return signed + _SIG_LEN.pack(len(signature)) + signature


def encode_manifest(manifest: Manifest) -> bytes:
    fields = manifest.model_dump(mode="json")
    if fields["payload_kind"] == "skops":
        # Left out, so a skops bundle stays readable by agents from before payload_kind.
        del fields["payload_kind"]
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
