"""The pick is the SVM's own decision, the bundle is no worse than 1-NN, and the threshold keeps
unseen people out: on the shared identity sets, with the default embedder (SFace).

The acceptance test runs the issue-10 protocol that bench/heldout.py prints (bench/identities.py
describes the data): 9 people enrolled, 38 held-out faces, 66 faces of 64 people never enrolled.
Measured with the default settings: right pick 38/38, accepted 38/38, unseen named 0/66.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.svm import SVC

from agent.classifier.classifier import svm_of, svm_pick
from bench.heldout import measure
from bench.identities import Embedded, build, embed
from tests.classifier_helpers import FACES, embed_people, embedding, quick_train
from trainer.dataset import FaceEmbedding
from trainer.evaluate import load_bundle_unverified
from trainer.training import fit_estimator, train


@pytest.fixture(scope="module")
def emb(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FaceEmbedding:
    return embedding(assets_dir, tmp_path_factory.getbasetemp() / "embeddings")


@pytest.fixture(scope="module")
def protocol(emb: FaceEmbedding, assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Embedded:
    return embed(build(assets_dir, tmp_path_factory.mktemp("protocol")), emb)


def test_calibrated_estimator_wraps_one_svc_refit_on_all_photos(protocol: Embedded) -> None:
    """Pins what svm_of relies on: CalibratedClassifierCV(ensemble=False) keeps exactly one SVC,
    fitted on every photo, so its decision is the decision of an SVC trained on all of them."""
    x, y = protocol.enrol_x, protocol.enrol_y
    params = {"kernel": "linear", "C": 1.0}
    model = fit_estimator(x, y, params)
    assert isinstance(model, CalibratedClassifierCV) and len(model.calibrated_classifiers_) == 1
    inner = svm_of(model)
    plain = SVC(class_weight="balanced", **params).fit(x, np.asarray(y))
    assert isinstance(inner, SVC) and inner.support_vectors_.shape == plain.support_vectors_.shape
    probes = np.vstack([protocol.held_x, protocol.unseen_x])
    np.testing.assert_allclose(inner.decision_function(probes), plain.decision_function(probes), atol=1e-9)


def test_pick_agrees_with_the_svm_decision_function(
    protocol: Embedded, emb: FaceEmbedding, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    result = quick_train(protocol.enrol_x, protocol.enrol_y)
    path = tmp_path / "m.ftm"
    path.write_bytes(
        result.sign(embedder_id=emb.embedder_id, dim=emb.dim, private_key=Ed25519PrivateKey.generate())
    )
    classifier = load_bundle_unverified(path).classifier
    probes = np.vstack([protocol.held_x, protocol.unseen_x])
    svm = svm_of(result.model["estimator"])
    expected = [str(svm.classes_[i]) for i in np.argmax(svm.decision_function(probes), axis=1)]
    predictions = classifier.predict(probes)
    assert [p.candidate for p in predictions] == expected
    assert svm_pick(result.model["estimator"], probes) == expected
    # The calibrated probability is reported for the picked person, never used to pick.
    proba = result.model["estimator"].predict_proba(probes)
    columns = [str(c) for c in result.model["estimator"].classes_]
    for p, row in zip(predictions, proba, strict=True):
        assert p.probability == pytest.approx(row[columns.index(str(p.candidate))])


def test_two_class_pick_follows_the_sign_of_the_decision(protocol: Embedded) -> None:
    keep = [i for i, label in enumerate(protocol.enrol_y) if label in ("John_Salley", "John_Savage")]
    x = protocol.enrol_x[keep]
    y = [protocol.enrol_y[i] for i in keep]
    model = fit_estimator(x, y, {"kernel": "linear", "C": 1.0})
    svm = svm_of(model)
    scores = svm.decision_function(protocol.held_x)
    assert svm_pick(model, protocol.held_x) == [str(svm.classes_[int(s > 0)]) for s in scores]


@pytest.mark.parametrize(
    "which",
    ["dlib_johns", "knn", "johns+knn+refs"],
)
def test_closed_set_accuracy_at_least_one_nn(which: str, emb: FaceEmbedding, assets_dir: Path) -> None:
    faces = assets_dir / FACES
    parts = {
        "dlib_johns": [faces / "dlib_johns"],
        "knn": [faces / "knn" / "train"],
        "johns+knn+refs": [faces / "dlib_johns", faces / "knn" / "train"],
    }[which]
    xs, ys = [], []
    for root in parts:
        x, y = embed_people(emb, root)
        xs.append(x)
        ys += y
    if which == "johns+knn+refs":
        names = {"obama_small": "obama", "alex-lacamoire": "alex_lacamoire", "lin-manuel-miranda": "lmm"}
        for path in sorted((faces / "refs").iterdir()):
            xs.append(emb.faces_in(path)[:1].astype(np.float64))
            ys.append(names[path.stem])
    report = train(np.vstack(xs), ys).report
    assert report["closed_set_accuracy"] is not None and report["nn1_accuracy"] is not None
    assert report["closed_set_accuracy"] >= report["nn1_accuracy"], report["notes"]
    assert not any(n.startswith("WARNING") for n in report["notes"])


def test_heldout_protocol_meets_the_issue_targets(protocol: Embedded, emb: FaceEmbedding) -> None:
    """Default settings: >= 97 % right pick, >= 95 % accepted, <= 2 % of unseen faces named."""
    result = measure(protocol, emb.embedder_id, emb.dim)
    assert result["held_out_faces"] == 38 and result["unseen_faces"] == 66, result["skipped"]
    assert result["right_pick"] == 1.0
    assert result["right_pick"] >= result["right_pick_1nn"]
    assert result["accepted"] == 1.0
    # The threshold keeps unseen people out at the stated rate: the trainer's FAR target is 1 %,
    # floor(0.01 * 66) = 0 faces may be named.
    assert result["unseen_named_faces"] == 0


def test_a_one_vs_one_decision_function_is_refused(protocol: Embedded, emb: FaceEmbedding) -> None:
    """svm_pick reads one decision column per class; an SVC saved with "ovo" shape would be
    misread, so loading refuses it."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agent.classifier.bundle import parse_bundle
    from agent.classifier.classifier import FaceClassifier, load_estimator
    from agent.classifier.errors import BundleError, RejectCode

    result = quick_train(protocol.enrol_x, protocol.enrol_y)
    ovo = SVC(kernel="linear", decision_function_shape="ovo").fit(protocol.enrol_x, protocol.enrol_y)
    result.model["estimator"] = ovo
    # The older skops kind (the arrays kind cannot express an ovo SVC: test_svm_arrays.py).
    parsed = parse_bundle(
        result.sign(
            embedder_id=emb.embedder_id,
            dim=emb.dim,
            private_key=Ed25519PrivateKey.generate(),
            payload_kind="skops",
        )
    )
    with pytest.raises(BundleError) as refused:
        FaceClassifier(load_estimator(parsed.payload), parsed.manifest)
    assert refused.value.code == RejectCode.BAD_PAYLOAD and "one-vs-rest" in refused.value.reason
