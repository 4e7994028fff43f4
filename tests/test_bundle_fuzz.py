"""The bundle parser against hostile input (issue 11, case 3): every malformed bundle is refused
with a BundleError (so the agent answers model_rejected with its code), never another exception.

A seeded mutation loop over a real signed bundle (a classifier trained on real photos): bit flips,
overwritten, inserted and deleted bytes, truncation, forged length fields, and manifests rewritten
from a hostile JSON grammar (deep nesting, 5000-digit numbers, NaN, lone surrogates, huge strings)
behind a valid header and lengths. The budget is a fixed number of cases, not a time: the same
cases run on every machine, and a failure prints the seed and case to replay.
"""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.classifier.bundle import MAX_MANIFEST_DEPTH, assemble, parse_bundle, signed_region
from agent.classifier.errors import BundleError, RejectCode
from agent.classifier.keys import key_id
from agent.classifier.verify import verify_bundle
from tests.classifier_helpers import FACES, bundle_from, embed_people, embedding, quick_train
from trainer.dataset import FaceEmbedding

SEED = 20261130
CASES = 1500


@pytest.fixture(scope="module")
def emb(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FaceEmbedding:
    return embedding(assets_dir, tmp_path_factory.getbasetemp() / "embeddings")


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def good(emb: FaceEmbedding, assets_dir: Path, key: Ed25519PrivateKey) -> bytes:
    x, y = embed_people(emb, assets_dir / FACES / "dlib_johns", take=slice(0, 6))
    return bundle_from(quick_train(x, y), emb, key)


def hostile_json(rng: random.Random, depth: int = 0) -> str:
    """One JSON-ish value from a grammar of what breaks parsers."""
    choice = rng.randrange(12 if depth < 4 else 7)
    if choice == 0:
        return "1" * rng.choice([10, 4300, 4301, 20_000])
    if choice == 1:
        return rng.choice(["NaN", "Infinity", "-Infinity", "1e999999", "-0", "true", "null"])
    if choice == 2:
        return json.dumps("x" * rng.choice([0, 1, 70_000]))
    if choice == 3:
        return '"' + rng.choice(["\\ud800", "\\udfff\\ud800", "\\u0000", "\\", "\\x41"]) + '"'
    if choice == 4:
        levels = rng.choice([MAX_MANIFEST_DEPTH - 1, MAX_MANIFEST_DEPTH + 1, 5000, 200_000])
        opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
        return opener * levels + "0" + closer * levels
    if choice == 5:
        return rng.choice(["[", "{", '"', "]", "}", ",", ":", "", "\xff", '{"a" 1}'])
    if choice == 6:
        return str(rng.uniform(-1e308, 1e308))
    if choice in (7, 8):
        return "[" + ",".join(hostile_json(rng, depth + 1) for _ in range(rng.randrange(4))) + "]"
    keys = ["format_version", "model_version", "classes", "labels", "threshold", "embedder_id",
            "dim", "payload_sha256", "key_id", "training", "\u0000", "a" * 1000]  # fmt: skip
    items = [
        f"{json.dumps(rng.choice(keys))}:{hostile_json(rng, depth + 1)}" for _ in range(rng.randrange(6))
    ]
    return "{" + ",".join(items) + "}"


def real_manifest_variant(good: bytes, rng: random.Random) -> bytes:
    """The real manifest with one field replaced by a hostile value."""
    manifest = json.loads(parse_bundle(good).manifest_bytes)
    field = rng.choice([*manifest.keys(), "extra"])
    text = json.dumps({k: v for k, v in manifest.items() if k != field})
    return (text[:-1] + f", {json.dumps(field)}: {hostile_json(rng)}}}").encode("utf-8", "surrogatepass")


def mutate(good: bytes, rng: random.Random) -> bytes:
    data = bytearray(good)
    op = rng.randrange(9)
    if op == 0:  # flip bits
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif op == 1:  # overwrite a range with random bytes
        i = rng.randrange(len(data))
        n = rng.randint(1, 64)
        data[i : i + n] = rng.randbytes(n)
    elif op == 2:  # insert
        i = rng.randrange(len(data) + 1)
        data[i:i] = rng.randbytes(rng.randint(1, 64))
    elif op == 3:  # delete
        i = rng.randrange(len(data))
        del data[i : i + rng.randint(1, 64)]
    elif op == 4:  # truncate
        del data[rng.randrange(len(data)) :]
    elif op == 5:  # forge a length field (manifest, payload, signature) with the data unchanged
        parsed = parse_bundle(good)
        offsets = [10, 14 + len(parsed.manifest_bytes), len(good) - 64 - 4]
        at = rng.choice(offsets)
        data[at : at + 4] = struct.pack(
            ">I", rng.choice([0, 1, 63, 65, 2**31 - 1, 2**32 - 1, rng.getrandbits(32)])
        )
    elif op in (6, 7):  # a hostile manifest behind a valid header and lengths
        manifest = (
            hostile_json(rng).encode("utf-8", "surrogatepass")
            if op == 6
            else real_manifest_variant(good, rng)
        )
        return assemble(signed_region(manifest, parse_bundle(good).payload), rng.randbytes(64))
    else:  # splice two parts of the bundle
        i, j = sorted(rng.randrange(len(data)) for _ in range(2))
        data = data[:i] + data[j:] + data[i:j]
    return bytes(data)


def test_the_real_bundle_round_trips(good: bytes, key: Ed25519PrivateKey, emb: FaceEmbedding) -> None:
    pub = key.public_key()
    verified = verify_bundle(good, trusted_keys={key_id(pub): pub}, embedder_id=emb.embedder_id, dim=emb.dim)
    assert verified.manifest.classes and verified.data == good


def test_a_manifest_of_200000_nested_arrays_is_bad_manifest(good: bytes) -> None:
    manifest = b"[" * 200_000 + b"]" * 200_000
    data = assemble(signed_region(manifest, parse_bundle(good).payload), b"\0" * 64)
    with pytest.raises(BundleError) as refused:
        parse_bundle(data)
    assert refused.value.code == RejectCode.BAD_MANIFEST
    assert (
        str(refused.value) == f"manifest nests JSON arrays/objects more than {MAX_MANIFEST_DEPTH} levels deep"
    )


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        (
            b"[" * MAX_MANIFEST_DEPTH + b"]" * MAX_MANIFEST_DEPTH,
            "invalid manifest field",
        ),  # deep enough, parsed
        (b"[" * (MAX_MANIFEST_DEPTH + 1) + b"]" * (MAX_MANIFEST_DEPTH + 1), "levels deep"),
        (b'{"a": "' + b"[" * 5000 + b'"}', "invalid manifest field"),  # brackets in a string are text
        (b'{"a": "\\"' + b"[" * 5000 + b'"}', "invalid manifest field"),  # after an escaped quote too
        (b'{"a": ' + b"1" * 5000 + b"}", "manifest JSON cannot be read"),
        (b'{"a": "\xff"}', "not UTF-8 JSON"),
    ],
)
def test_hostile_manifests_have_precise_reasons(good: bytes, manifest: bytes, reason: str) -> None:
    data = assemble(signed_region(manifest, parse_bundle(good).payload), b"\0" * 64)
    with pytest.raises(BundleError) as refused:
        parse_bundle(data)
    assert refused.value.code == RejectCode.BAD_MANIFEST and reason in str(refused.value)


def test_fuzzed_bundles_are_refused_with_a_bundle_error_only(
    good: bytes, key: Ed25519PrivateKey, emb: FaceEmbedding
) -> None:
    rng = random.Random(SEED)
    pub = key.public_key()
    trusted = {key_id(pub): pub}
    codes: dict[str, int] = {}
    for case in range(CASES):
        data = mutate(good, rng)
        if data == good:
            continue
        for verify in (False, True):
            try:
                if verify:
                    verify_bundle(data, trusted_keys=trusted, embedder_id=emb.embedder_id, dim=emb.dim)
                else:
                    parse_bundle(data)
            except BundleError as exc:
                assert exc.code in set(RejectCode) and str(exc) and "\n" not in str(exc)
                codes[exc.code] = codes.get(exc.code, 0) + 1
            except Exception as exc:  # the point of the test: nothing but BundleError
                pytest.fail(f"seed {SEED} case {case}: {type(exc).__name__}: {str(exc)[:300]}")
    # The loop reached deep into the parser, not just its first check.
    for code in (
        RejectCode.PAYLOAD_HASH_MISMATCH,
        RejectCode.TRUNCATED,
        RejectCode.BAD_MANIFEST,
        RejectCode.BAD_SIGNATURE,
    ):
        assert codes.get(code, 0) > 0, codes
