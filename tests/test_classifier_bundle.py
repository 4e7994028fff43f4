"""Bundle format and verification on a classifier trained from real photos: every defect is
refused with its own reason, and the store never serves a broken file."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import SVC

from agent.classifier.array_payload import MEMBERS, decode_members
from agent.classifier.bundle import MAGIC, parse_bundle, version_key
from agent.classifier.classifier import UNKNOWN, dump_estimator, make_payload
from agent.classifier.errors import BundleError, RejectCode
from agent.classifier.keys import key_id, public_key_text
from agent.classifier.verify import VerifiedBundle, sign_payload, verify_bundle
from agent.runtime.key_files import parse_public_key
from agent.runtime.model_store import ModelStore
from tests.classifier_helpers import FACES, bundle_from, embed_people, embedding, quick_train
from trainer.dataset import FaceEmbedding
from trainer.training import TrainingResult

V1 = "20260101T000000.000001Z"
V2 = "20260102T000000Z"


@pytest.fixture(scope="module")
def emb(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FaceEmbedding:
    return embedding(assets_dir, tmp_path_factory.getbasetemp() / "embeddings")


@pytest.fixture(scope="module")
def johns(emb: FaceEmbedding, assets_dir: Path) -> dict[str, object]:
    root = assets_dir / FACES / "dlib_johns"
    x_train, y_train = embed_people(emb, root, take=slice(0, 8))
    x_test, y_test = embed_people(emb, root, take=slice(8, None))
    return {"train": (x_train, y_train), "test": (x_test, y_test), "result": quick_train(x_train, y_train)}


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def good(johns: dict[str, object], emb: FaceEmbedding, key: Ed25519PrivateKey) -> bytes:
    result = johns["result"]
    assert isinstance(result, TrainingResult)
    return bundle_from(result, emb, key, version=V2)


def _verify(
    data: bytes, key: Ed25519PrivateKey, emb: FaceEmbedding, running: str | None = None
) -> VerifiedBundle:
    pub = key.public_key()
    return verify_bundle(
        data,
        trusted_keys={key_id(pub): pub},
        embedder_id=emb.embedder_id,
        dim=emb.dim,
        running_version=running,
    )


def test_good_bundle_verifies_and_names_held_out_faces(
    good: bytes, key: Ed25519PrivateKey, emb: FaceEmbedding, johns: dict[str, object]
) -> None:
    bundle = _verify(good, key, emb)
    assert bundle.version == V2
    assert bundle.classifier.labels == sorted(set(johns["train"][1]))  # type: ignore[index]
    x_test, y_test = johns["test"]  # type: ignore[misc]
    predictions = bundle.classifier.predict(x_test)
    named = [p.label for p in predictions]
    # 3 held-out photos x 5 people; the SVM must pick the right person for every one of them.
    assert len(y_test) == 15
    assert [p.candidate for p in predictions] == y_test
    assert sum(n == t for n, t in zip(named, y_test, strict=True)) >= 14, named
    assert all(0.0 <= p.confidence <= 1.0 for p in predictions)
    assert bundle.classifier.predict(np.zeros((0, emb.dim))) == []


def test_manifest_fields(good: bytes, key: Ed25519PrivateKey, emb: FaceEmbedding) -> None:
    parsed = parse_bundle(good)
    manifest = parsed.manifest
    assert good.startswith(MAGIC)
    assert manifest.format_version == 1
    assert manifest.embedder_id == emb.embedder_id == "sface-int8bq-128-arcface112-v1"
    assert manifest.dim == 128
    assert manifest.key_id == key_id(key.public_key())
    assert manifest.payload_sha256 == hashlib.sha256(parsed.payload).hexdigest()
    assert {"threshold", "estimated_far", "estimated_tar", "params"} <= set(manifest.training)
    # The payload is plain numpy arrays (agent/classifier/array_payload.py): no pickle, no objects.
    assert manifest.payload_kind == "arrays"
    arrays = decode_members(parsed.payload)
    assert set(arrays) == set(MEMBERS)
    assert all(array.dtype.kind in "fiU" for array in arrays.values())


def _flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


def _payload_offset(data: bytes) -> int:
    parsed = parse_bundle(data)
    return 14 + len(parsed.manifest_bytes) + 8


def test_rejections_have_precise_reasons(
    good: bytes, key: Ed25519PrivateKey, emb: FaceEmbedding, johns: dict[str, object], tmp_path: Path
) -> None:
    result = johns["result"]
    assert isinstance(result, TrainingResult)
    other = Ed25519PrivateKey.generate()
    sig_start = len(good) - 64
    rng = np.random.default_rng(7)
    cases: dict[str, tuple[bytes, RejectCode, str]] = {
        "bad signature": (_flip(good, sig_start + 5), RejectCode.BAD_SIGNATURE, "bad signature"),
        "manifest edited": (
            good.replace(b'"labels":["John_Salley"', b'"labels":["John_Sallez"', 1),
            RejectCode.BAD_SIGNATURE,
            "bad signature",
        ),
        "unknown key": (
            bundle_from(result, emb, other, version=V2),
            RejectCode.UNKNOWN_KEY,
            key_id(other.public_key()),
        ),
        "payload tampered": (
            _flip(good, _payload_offset(good) + 100),
            RejectCode.PAYLOAD_HASH_MISMATCH,
            "modified after signing",
        ),
        "truncated in header": (good[:11], RejectCode.TRUNCATED, "truncated"),
        "truncated in manifest": (good[:200], RejectCode.TRUNCATED, "manifest incomplete"),
        "truncated in payload": (good[: len(good) // 2], RejectCode.TRUNCATED, "payload has"),
        "truncated in signature": (good[:-1], RejectCode.TRUNCATED, "signature has 63"),
        "trailing bytes": (good + b"\0", RejectCode.TRAILING_DATA, "1 unexpected bytes"),
        "wrong embedder dim": (
            bundle_from(result, emb, key, version=V2, dim=512),
            RejectCode.EMBEDDER_MISMATCH,
            "dimension 512",
        ),
        "wrong embedder id": (
            bundle_from(result, emb, key, version=V2, embedder_id="openface-128-margin96-v1"),
            RejectCode.EMBEDDER_MISMATCH,
            "openface",
        ),
        "random bytes": (
            bytes(rng.integers(0, 256, 4096, dtype=np.uint8)),
            RejectCode.NOT_A_BUNDLE,
            "bad magic",
        ),
        "pickle renamed": (pickle.dumps(result.model), RejectCode.NOT_A_BUNDLE, "pickle"),
        "bare skops file": (dump_estimator(result.model), RejectCode.NOT_A_BUNDLE, "bare zip/skops"),
        "empty": (b"", RejectCode.NOT_A_BUNDLE, "empty"),
    }
    for name, (data, code, fragment) in cases.items():
        with pytest.raises(BundleError) as caught:
            _verify(data, key, emb)
        assert caught.value.code == code, f"{name}: {caught.value.code} {caught.value}"
        assert fragment in str(caught.value), f"{name}: {caught.value}"


def test_version_order(good: bytes, key: Ed25519PrivateKey, emb: FaceEmbedding) -> None:
    with pytest.raises(BundleError) as older:
        _verify(good, key, emb, running="20260103T000000Z")
    assert older.value.code == RejectCode.OLDER_VERSION
    assert "older than the running 20260103T000000Z" in str(older.value)
    with pytest.raises(BundleError) as same:
        _verify(good, key, emb, running=V2)
    assert same.value.code == RejectCode.ALREADY_RUNNING
    assert _verify(good, key, emb, running=V1).version == V2
    assert version_key("20260101T000000.5Z") > version_key("20260101T000000.499999Z")
    with pytest.raises(ValueError):
        version_key("20261301T000000Z")


def test_signed_but_untrusted_payloads_are_refused(
    johns: dict[str, object], key: Ed25519PrivateKey, emb: FaceEmbedding
) -> None:
    """Even with a valid signature, skops loads only the listed types, and never a pickle."""
    result = johns["result"]
    assert isinstance(result, TrainingResult)
    x, y = johns["train"]  # type: ignore[misc]
    sneaky = CalibratedClassifierCV(SVC(kernel="linear"), cv=StratifiedKFold(2)).fit(x, y)
    payload = sio.dumps(make_payload(sneaky, result.model["gallery"], list(result.model["gallery_labels"])))
    common = {
        "classes": result.classes,
        "labels": result.labels,
        "threshold": 0.5,
        "embedder_id": emb.embedder_id,
        "dim": emb.dim,
        "private_key": key,
    }
    with pytest.raises(BundleError) as caught:
        _verify(sign_payload(payload, **common), key, emb)
    assert caught.value.code == RejectCode.UNTRUSTED_TYPES
    assert "StratifiedKFold" in str(caught.value)
    with pytest.raises(BundleError) as pickled:
        _verify(sign_payload(pickle.dumps(result.model), **common), key, emb)
    assert pickled.value.code == RejectCode.BAD_PAYLOAD
    assert "not a skops archive" in str(pickled.value)


def test_key_forms_and_rotation(
    key: Ed25519PrivateKey, good: bytes, emb: FaceEmbedding, tmp_path: Path
) -> None:
    from agent.runtime.key_files import load_trusted_keys, write_key_pair

    private_path, public_path, new_key = write_key_pair(tmp_path / "keys")
    assert private_path.stat().st_mode & 0o777 == 0o600
    raw = public_key_text(key.public_key())
    keys = load_trusted_keys([str(public_path), raw])
    assert set(keys) == {key_id(new_key.public_key()), key_id(key.public_key())}
    assert key_id(parse_public_key(public_path.read_text())) == key_id(new_key.public_key())
    # Rotation: an agent trusting both keys accepts bundles signed by either.
    assert verify_bundle(good, trusted_keys=keys, embedder_id=emb.embedder_id, dim=emb.dim).version == V2
    with pytest.raises(BundleError) as none:
        verify_bundle(good, trusted_keys={}, embedder_id=emb.embedder_id, dim=emb.dim)
    assert none.value.code == RejectCode.NO_TRUSTED_KEYS


def test_store_keeps_versions_and_skips_broken_files(
    johns: dict[str, object], key: Ed25519PrivateKey, emb: FaceEmbedding, tmp_path: Path
) -> None:
    result = johns["result"]
    assert isinstance(result, TrainingResult)
    store = ModelStore(tmp_path / "models", keep_versions=2)
    versions = [f"2026010{d}T000000Z" for d in range(1, 5)]
    for version in versions:
        store.install(bundle_from(result, emb, key, version=version), version)
    assert [v for v, _ in store.versions()] == versions[::-1][:2]
    # A newer file that is cut short (as if copied by hand and interrupted) is skipped on load.
    newest = "20260105T000000Z"
    store.path_for(newest).write_bytes(bundle_from(result, emb, key, version=newest)[:5000])
    (store.root / f"{newest}.ftm.tmp-123").write_bytes(b"partial")
    loaded = store.load_newest(lambda data: _verify(data, key, emb))
    assert loaded.bundle is not None and loaded.bundle.version == versions[-1]
    assert [p.name for p, _ in loaded.skipped] == [f"{newest}.ftm"]
    assert "truncated" in loaded.skipped[0][1]
    assert not list(store.root.glob("*.tmp-*"))
    assert loaded.bundle.classifier.predict(johns["test"][0])[0].label != UNKNOWN  # type: ignore[index]
