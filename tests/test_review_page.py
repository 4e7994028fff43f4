"""`facetrack-trainer review` driven in a real headless browser (Debian's chromium + chromedriver):
name, merge, discard, move a face out, and train, with the folders checked afterwards; "train and
publish" to a real mosquitto with a real signing key (the retained bundle verified as an agent
verifies it), its error line with the broker down or no key; and the guards: a foreign Host
header, a missing CSRF token and path traversal are refused.

The inbox is made of real face photos (dlib's johns, 5 people x 11) sent through the inbox's own
writer as a device's faces messages would be, with embeddings from the agent's embedder; it is
then clustered by the real `cluster` command. Nothing is mocked.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from agent.classifier.verify import verify_bundle
from agent.config import load_config
from agent.devtools.mosquitto import MosquittoBroker
from agent.runtime.key_files import load_trusted_keys
from tests import webdriver
from tests.enrolment_helpers import REPO_ROOT, Tap
from trainer.cli import main
from trainer.dataset import FaceEmbedding, list_images
from trainer.inbox import Inbox

pytestmark = [
    pytest.mark.skipif(
        not webdriver.available(), reason="apt-get install chromium chromium-driver (make setup)"
    ),
    pytest.mark.timeout(1200),
]
# docs/review-page.png is this test's last screenshot: FACETRACK_REVIEW_SCREENSHOT=docs/review-page.png
# writes it there; otherwise it goes to the test's temporary directory.
SCREENSHOT_ENV = "FACETRACK_REVIEW_SCREENSHOT"
DEVICE = "cam9"


def _inbox(assets_dir: Path, root: Path) -> tuple[str, int]:
    """Writes the inbox; returns the embedder's id and dimension (what an agent checks a bundle
    against)."""
    embedding = FaceEmbedding.from_config(load_config(None, assets_dir=assets_dir), cache_dir=None, pad=0.5)
    inbox = Inbox(root)
    for person in sorted((assets_dir / "data" / "faces" / "dlib_johns").iterdir()):
        for photo in list_images(person):
            faces = embedding.faces_in(photo)
            if len(faces) != 1:
                continue
            message = {
                "v": 1, "id": uuid.uuid4().hex, "device": "cam1", "track_id": 1, "frame": 0,
                "media_s": None, "ts": "2026-12-07T10:00:00+00:00", "label": "unknown",
                "confidence": 0.0, "quality": {"score": 0.5}, "embedder": embedding.embedder_id,
                "embedding": [float(v) for v in faces[0]],
                "jpeg": base64.b64encode(photo.read_bytes()).decode(),
            }  # fmt: skip
            inbox.add(json.dumps(message).encode())
    inbox.close()
    return embedding.embedder_id, embedding.dim


def _start_review(
    root: Path, photos: Path, args: list[str], env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """A real `facetrack-trainer review` process on a free port, and its page's address."""
    process = subprocess.Popen(
        [sys.executable, "-m", "trainer.cli", "review", "--from", str(root), "--photos", str(photos),
         "--port", "0", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("review page: http://127.0.0.1:"):
        process.kill()
        pytest.fail(f"review did not start: {line!r} {process.communicate(timeout=60)[1][-2000:]}")
    return process, line.split()[2]


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.communicate(timeout=60)


@pytest.fixture
def review(assets_dir: Path, tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    root = tmp_path / "inbox"
    _inbox(assets_dir, root)
    assert main(["cluster", str(root), "--quiet", "--no-sheets", "--no-cache"]) == 0
    photos = tmp_path / "photos"
    keys = tmp_path / "keys"
    assert main(["keygen", "--out", str(keys)]) == 0
    args = ["--key", str(keys / "facetrack.key"), "--out", str(tmp_path / "model.ftm")]
    process, url = _start_review(root, photos, args)
    try:
        yield url, root, photos
    finally:
        _stop(process)


def _groups(root: Path) -> list[dict[str, object]]:
    groups: list[dict[str, object]] = json.loads((root / ".groups" / "groups.json").read_text())["groups"]
    return groups


def _submit(browser: webdriver.Browser, css: str) -> None:
    browser.submit(css)


def test_review_page_in_a_real_browser(review: tuple[str, Path, Path], tmp_path: Path) -> None:
    url, root, photos = review
    before = _groups(root)
    sizes = {str(g["id"]): len(g["members"]) for g in before}  # type: ignore[arg-type]
    # 5 people; the inbox dropped one photo that is a byte-for-byte copy of another.
    assert len(sizes) == 5 and sum(sizes.values()) == 54
    browser = webdriver.Browser()
    try:
        browser.open(url)
        assert len(browser.find_all(".group")) == 5
        assert len(browser.find_all(".group img")) == 54
        # Every thumbnail loaded (served from the inbox).
        assert browser.script("return [...document.images].every(i => i.complete && i.naturalWidth > 0)")
        browser.screenshot(tmp_path / "review-first.png")
        # Name g1 and g2.
        for gid, name in (("g1", "john-a"), ("g2", "john-b")):
            browser.type(browser.find(f"#group-{gid} .name-input"), name)
            _submit(browser, f"#group-{gid} form.name button")
            assert "copied to" in browser.text(browser.find("#message"))
        # A bad name is refused with the rule, nothing copied.
        browser.type(browser.find("#group-g3 .name-input"), "../x")
        _submit(browser, "#group-g3 form.name button")
        assert "not a usable person name" in browser.text(browser.find("#message"))
        # Merge g4 into g3, discard g5, move one face of g3 out.
        browser.type(browser.find("#group-g4 .merge-input"), "g3")
        _submit(browser, "#group-g4 form.merge button")
        _submit(browser, "#group-g5 form.discard button")
        _submit(browser, "#group-g3 form.move-out button")
        # Train (the same code as `facetrack-trainer train`).
        _submit(browser, "form.train button")
        assert "trained" in browser.text(browser.find("#message")), browser.text(browser.find("#message"))
        docs_copy = os.environ.get(SCREENSHOT_ENV)
        if docs_copy:
            # The picture in docs/ shows the page, not the people: faces are biometric data.
            browser.script(
                "document.querySelectorAll('.group img').forEach(i => i.style.filter = 'blur(6px)')"
            )
        browser.screenshot(Path(docs_copy or tmp_path / "review-page.png"))
    finally:
        browser.close()
    # The folders, checked afterwards.
    assert len(list((photos / "john-a").iterdir())) == min(10, sizes["g1"])
    assert len(list((photos / "john-b").iterdir())) == min(10, sizes["g2"])
    assert not (photos / "x").exists() and not (tmp_path / "x").exists()
    after = {g["id"]: g for g in _groups(root)}
    assert set(after) == {"g1", "g2", "g3"}
    assert len(after["g3"]["members"]) == sizes["g3"] + sizes["g4"] - 1  # type: ignore[arg-type]
    g5 = next(g for g in before if g["id"] == "g5")
    assert not any((root / m).exists() for m in g5["members"]), "discard deletes the group's crops"  # type: ignore[attr-defined]
    assert len(json.loads((root / ".groups" / "groups.json").read_text())["ungrouped"]) == 1
    assert (tmp_path / "model.ftm").is_file()


def _request(url: str, method: str, path: str, host: str | None = None, body: str = "") -> tuple[int, bytes]:
    address = url.split("//")[1].rstrip("/")
    connection = http.client.HTTPConnection(address, timeout=60)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if host is not None:
        headers["Host"] = host
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


def test_foreign_host_traversal_and_missing_token_are_refused(review: tuple[str, Path, Path]) -> None:
    url, root, photos = review
    status, body = _request(url, "GET", "/", host="evil.example:80")
    assert status == 403 and b"Host" in body
    assert _request(url, "GET", "/")[0] == 200
    for path in (
        "/face/../../../../etc/passwd",
        "/face/..%2F..%2F..%2Fetc%2Fpasswd",
        "/face/.groups/groups.json",
        "/face//etc/passwd",
    ):
        assert _request(url, "GET", path)[0] == 404, path
    member = _groups(root)[0]["members"][0]  # type: ignore[index]
    assert _request(url, "GET", f"/face/{member}")[0] == 200
    status, _ = _request(url, "POST", "/discard", body="group=g1")
    assert status == 403
    status, _ = _request(url, "POST", "/discard", body="group=g1&csrf=wrong")
    assert status == 403
    assert len(_groups(root)) == 5, "nothing changed"
    assert not photos.exists()


def _name_two(browser: webdriver.Browser) -> None:
    for gid, name in (("g1", "john-a"), ("g2", "john-b")):
        browser.type(browser.find(f"#group-{gid} .name-input"), name)
        _submit(browser, f"#group-{gid} form.name button")
        assert "copied to" in browser.text(browser.find("#message"))


def _outcome(browser: webdriver.Browser) -> tuple[str, list[str]]:
    """The page's one outcome line after an action: its text, and its classes."""
    lines = browser.find_all("#message")
    assert len(lines) == 1, f"{len(lines)} outcome lines"
    text = browser.text(lines[0])
    assert "\n" not in text, text
    return text, str(browser.script("return document.getElementById('message').className")).split()


def test_train_and_publish_reaches_the_broker(
    assets_dir: Path, tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    """'train and publish' clicked in the browser runs `train` and `publish`: with the broker down
    the page shows one error line; with it up the signed bundle is retained on the device's model
    topic, and it verifies as the agent verifies it (trusted key, embedder, dimension) and names
    the people named on the page."""
    root, photos, keys, model = (
        tmp_path / "inbox",
        tmp_path / "photos",
        tmp_path / "keys",
        tmp_path / "model.ftm",
    )
    embedder_id, dim = _inbox(assets_dir, root)
    assert main(["cluster", str(root), "--quiet", "--no-sheets", "--no-cache"]) == 0
    assert main(["keygen", "--out", str(keys)]) == 0
    process, url = _start_review(
        root, photos,
        ["--key", str(keys / "facetrack.key"), "--out", str(model), "--device", DEVICE,
         "--broker", f"{mosquitto.host}:{mosquitto.port}", "--public-key", str(keys / "facetrack.pub"),
         "--wait", "0.5"],
    )  # fmt: skip
    browser = webdriver.Browser()
    try:
        browser.open(url)
        _name_two(browser)
        mosquitto.stop()
        _submit(browser, "form.train button")
        text, classes = _outcome(browser)
        # Trained, then publish's own error: the broker it could not reach.
        assert text.startswith(f"error: trained {model}, not published: MQTT ") and "error" in classes, text
        assert f"{mosquitto.port}" in text, text
        mosquitto.start()
        _submit(browser, "form.train button")
        text, classes = _outcome(browser)
        assert text.startswith(f"trained {model} and published it to {DEVICE}") and "error" not in classes, (
            text
        )
    finally:
        browser.close()
        _stop(process)
    # A subscriber that arrives afterwards, as an agent connecting later, gets the retained model.
    tap = Tap(mosquitto, [f"facetrack/{DEVICE}/model"])
    try:
        tap.wait_until(lambda: tap.payloads(f"facetrack/{DEVICE}/model"), "the retained model")
        payload = tap.payloads(f"facetrack/{DEVICE}/model")[0]
    finally:
        tap.close()
    assert payload == model.read_bytes()
    bundle = verify_bundle(
        payload,
        trusted_keys=load_trusted_keys([str(keys / "facetrack.pub")]),
        embedder_id=embedder_id,
        dim=dim,
    )
    assert sorted(bundle.manifest.labels) == ["john-a", "john-b"]


def test_train_without_a_key_says_so(assets_dir: Path, tmp_path: Path) -> None:
    root, photos = tmp_path / "inbox", tmp_path / "photos"
    _inbox(assets_dir, root)
    assert main(["cluster", str(root), "--quiet", "--no-sheets", "--no-cache"]) == 0
    env = {k: v for k, v in os.environ.items() if k != "FACETRACK_SIGNING_KEY"}
    process, url = _start_review(root, photos, ["--out", str(tmp_path / "model.ftm")], env=env)
    browser = webdriver.Browser()
    try:
        browser.open(url)
        _name_two(browser)
        _submit(browser, "form.train button")
        text, classes = _outcome(browser)
    finally:
        browser.close()
        _stop(process)
    assert text.startswith("error: no signing key: start review with --key") and "error" in classes, text
    assert not (tmp_path / "model.ftm").exists()


def test_faces_of_a_group_photo_show_as_their_own_crops(assets_dir: Path, tmp_path: Path) -> None:
    """A photo folder (not an inbox): each face of a photo with several is a member `PATH#k`, and
    the page shows that face's crop, not the whole photo twice."""
    root = tmp_path / "pile"
    data = assets_dir / "data" / "faces"
    shutil.copytree(data / "knn" / "train" / "obama", root / "obama")
    shutil.copytree(data / "knn" / "train" / "biden", root / "biden")
    shutil.copy(data / "knn" / "test" / "obama_and_biden.jpg", root / "obama_and_biden.jpg")
    assert main(["cluster", str(root), "--quiet", "--no-sheets", "--no-cache"]) == 0
    document = json.loads((root / ".groups" / "groups.json").read_text())
    two = [m for g in document["groups"] for m in g["members"] if m.startswith("obama_and_biden.jpg#")]
    assert sorted(two) == ["obama_and_biden.jpg#1", "obama_and_biden.jpg#2"]
    process, url = _start_review(root, tmp_path / "photos", [])
    browser = webdriver.Browser()
    try:
        browser.open(url)
        sizes = browser.script(
            "return [...document.images].filter(i => i.alt.startsWith('obama_and_biden.jpg#'))"
            ".map(i => [i.complete && i.naturalWidth > 0, i.naturalWidth, i.naturalHeight])"
        )
        photo = cv2.imread(str(root / "obama_and_biden.jpg"))
        assert len(sizes) == 2
        for loaded, width, height in sizes:
            assert loaded
            assert width * height < photo.shape[0] * photo.shape[1] / 4, "a face's crop, not the photo"
    finally:
        browser.close()
        _stop(process)
