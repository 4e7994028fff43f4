"""The arrays classifier (agent/classifier/svm_arrays.py) reproduces scikit-learn: same picks and
probabilities (to 1e-9) on real SFace embeddings of the shared face photos, for every model shape
the trainer makes; the "arrays" bundle loads without scikit-learn; old skops bundles still load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sklearn.svm import SVC

from agent.classifier.array_payload import MAGIC, decode_members, dump_arrays, encode_members, load_arrays
from agent.classifier.bundle import parse_bundle
from agent.classifier.classifier import decide, svm_of
from agent.classifier.errors import BundleError, RejectCode
from agent.classifier.keys import public_key_text
from agent.classifier.svm_arrays import ArraySVM, from_estimator
from agent.classifier.verify import verify_bundle
from agent.runtime.key_files import load_trusted_keys
from agent.runtime.model_store import ModelStore
from bench.identities import Embedded, build, embed
from tests.classifier_helpers import embedding, quick_train
from trainer.array_model import ExportError, check_same, probe_points
from trainer.dataset import FaceEmbedding
from trainer.training import TrainingError, fit_estimator


@pytest.fixture(scope="module")
def emb(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FaceEmbedding:
    return embedding(assets_dir, tmp_path_factory.getbasetemp() / "embeddings")


@pytest.fixture(scope="module")
def protocol(emb: FaceEmbedding, assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Embedded:
    return embed(build(assets_dir, tmp_path_factory.mktemp("protocol")), emb)


def _probes(protocol: Embedded) -> np.ndarray:
    return probe_points(np.vstack([protocol.enrol_x, protocol.held_x, protocol.unseen_x]), seed=1)


CASES = {
    "linear, calibrated, 9 classes": ({"kernel": "linear", "C": 1.0}, None, False),
    "rbf, calibrated, 9 classes": ({"kernel": "rbf", "C": 10.0, "gamma": "scale"}, None, False),
    "linear, calibrated, 2 classes": ({"kernel": "linear", "C": 1.0}, 2, False),
    "rbf, calibrated, 2 classes": ({"kernel": "rbf", "C": 1.0, "gamma": "scale"}, 2, False),
    "linear, one photo each, 9 classes": ({"kernel": "linear", "C": 1.0}, None, True),
    "poly, calibrated, 3 classes": ({"kernel": "poly", "C": 1.0, "degree": 3, "coef0": 0.5}, 3, False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_arrays_decide_as_scikit_learn(case: str, protocol: Embedded) -> None:
    params, people, one_photo = CASES[case]
    names = sorted(set(protocol.enrol_y))[: people or None]
    keep = [i for i, y in enumerate(protocol.enrol_y) if y in names]
    if one_photo:  # a single photo per person: no calibration, as the trainer fits it
        keep = [next(i for i in keep if protocol.enrol_y[i] == n) for n in names]
    x, y = protocol.enrol_x[keep], [protocol.enrol_y[i] for i in keep]
    estimator = fit_estimator(x, y, params)
    arrays = from_estimator(estimator)
    assert (arrays.calibration is None) == one_photo
    probes = _probes(protocol)
    svm = svm_of(estimator)
    np.testing.assert_allclose(
        arrays.decision_function(probes), svm.decision_function(probes), rtol=0, atol=1e-9
    )
    if not one_photo:
        proba = arrays.predict_proba(probes)
        assert proba is not None
        np.testing.assert_allclose(proba, estimator.predict_proba(probes), rtol=0, atol=1e-9)
    want_names, want_proba = decide(estimator, probes)
    got_names, got_proba = arrays.decide(probes)
    assert got_names == want_names
    assert len(set(want_names)) > 1  # the probes exercise more than one class
    for p, q in zip(want_proba, got_proba, strict=True):
        assert (p is None and q is None) or abs(p - q) <= 1e-9  # type: ignore[operator]
    # And through the payload: what the agent reads is what was checked.
    loaded = load_arrays(dump_arrays(arrays, x, y))["estimator"]
    assert loaded.decide(probes) == (got_names, got_proba)


def test_trainer_signs_arrays_that_the_agent_loads_without_scikit_learn(
    protocol: Embedded, emb: FaceEmbedding, tmp_path: Path
) -> None:
    key = Ed25519PrivateKey.generate()
    result = quick_train(protocol.enrol_x, protocol.enrol_y)
    arrays_bundle = result.sign(embedder_id=emb.embedder_id, dim=emb.dim, private_key=key)
    skops_bundle = result.sign(
        embedder_id=emb.embedder_id, dim=emb.dim, private_key=key, payload_kind="skops"
    )
    assert parse_bundle(arrays_bundle).manifest.payload_kind == "arrays"
    # A skops bundle's manifest has no payload_kind, as before the field existed: it means skops.
    assert "payload_kind" not in json.loads(parse_bundle(skops_bundle).manifest_bytes)
    assert parse_bundle(skops_bundle).manifest.payload_kind == "skops"
    keys = load_trusted_keys([public_key_text(key.public_key())])
    probes = np.vstack([protocol.held_x, protocol.unseen_x])
    predictions = []
    for data in (arrays_bundle, skops_bundle):
        verified = verify_bundle(data, trusted_keys=keys, embedder_id=emb.embedder_id, dim=emb.dim)
        predictions.append(verified.classifier.predict(probes))
    for a, b in zip(*predictions, strict=True):
        assert (a.label, a.candidate, a.confidence) == (b.label, b.candidate, b.confidence)
        assert a.probability == pytest.approx(b.probability, abs=1e-9)

    # The agent's own start-up path: the bundle installed in its model store, loaded by ModelService.
    state = tmp_path / "state"
    ModelStore(state / "models", 3).install(arrays_bundle, parse_bundle(arrays_bundle).manifest.model_version)
    code = (
        "import sys, types\n"
        "import numpy as np\n"
        "import agent.cli, agent.runtime.app\n"
        "from agent.config import AgentConfig\n"
        "from agent.runtime.model_service import ModelService\n"
        f"config = AgentConfig(state_dir={str(state)!r}, device_id='cam-1', "
        f"classifier={{'trusted_keys': [{public_key_text(key.public_key())!r}]}})\n"
        f"embedder = types.SimpleNamespace(embedder_id={emb.embedder_id!r}, dim={emb.dim})\n"
        "service = ModelService(config, lambda event: None, embedder=embedder)\n"
        "clf = service.load_installed()\n"
        f"assert clf is not None and clf.manifest.payload_kind == 'arrays'\n"
        f"clf.predict(np.ones((3, {emb.dim})) / {emb.dim**0.5})\n"
        "loaded = [m for m in ('sklearn', 'skops', 'pandas') if m in sys.modules]\n"
        "print('heavy modules:', *loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "heavy modules:", done.stdout


def test_the_trainer_refuses_to_sign_arrays_that_differ(protocol: Embedded, emb: FaceEmbedding) -> None:
    result = quick_train(protocol.enrol_x, protocol.enrol_y)
    estimator = result.model["estimator"]
    arrays = from_estimator(estimator)
    shifted = ArraySVM(
        **{**{f: getattr(arrays, f) for f in ArraySVM.__slots__}, "intercept": arrays.intercept + 1e-6}
    )
    probes = probe_points(protocol.enrol_x, seed=0)
    check_same(estimator, arrays, probes)
    with pytest.raises(ExportError):
        check_same(estimator, shifted, probes)
    # A model the arrays cannot express (an ovo-shaped SVC) is not signed as arrays at all.
    result.model["estimator"] = SVC(kernel="linear", decision_function_shape="ovo").fit(
        protocol.enrol_x, protocol.enrol_y
    )
    with pytest.raises(TrainingError, match="refusing to sign"):
        result.sign(embedder_id=emb.embedder_id, dim=emb.dim, private_key=Ed25519PrivateKey.generate())


def test_defective_array_payloads_are_refused(protocol: Embedded) -> None:
    result = quick_train(protocol.enrol_x, protocol.enrol_y)
    arrays = from_estimator(result.model["estimator"])
    good = dump_arrays(arrays, result.model["gallery"], list(result.model["gallery_labels"]))
    members = decode_members(good)
    defects = {
        "missing member": {k: v for k, v in members.items() if k != "intercept"},
        "extra member": {**members, "extra": np.zeros(1)},
        "wrong dtype": {**members, "dual_coef": members["dual_coef"].astype(np.int64)},
        "wrong shape": {**members, "intercept": members["intercept"][:-1]},
        "support counts": {**members, "n_support": members["n_support"] + 1},
        "non-finite": {**members, "support_vectors": members["support_vectors"] * np.inf},
        "unknown kernel": {**members, "kernel": np.asarray("precomputed")},
    }
    for name, broken in defects.items():
        with pytest.raises(BundleError) as refused:
            load_arrays(encode_members(broken))
        assert refused.value.code == RejectCode.BAD_PAYLOAD, name
    header = json.dumps({"arrays": [{"name": "classes", "dtype": "|O", "shape": [2]}]}).encode()
    pickled = MAGIC + len(header).to_bytes(4, "big") + header + bytes(16)
    for garbage in (b"", b"PK\x03\x04junk", good[: len(good) // 2], good + b"\0", pickled):
        with pytest.raises(BundleError) as refused:
            load_arrays(garbage)
        assert refused.value.code == RejectCode.BAD_PAYLOAD
