"""The asset fetcher on real files: the offline mirror, a corrupted copy, local upstream servers.

No test touches the internet: upstream sources are file:// URLs, a http.server on 127.0.0.1, and a
local wheel found by pip through PIP_FIND_LINKS.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import agent.assets.fetcher as fetcher
from agent.assets import asset_path, fetch_assets, load_manifest
from agent.assets.manifest import DEFAULT_GROUPS, Manifest, ManifestError, parse_manifest
from agent.cli import main as cli_main
from agent.devtools.mosquitto import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL = "models/face_detection_back.tflite"
# Read once at import: the tests below remove the variable so only explicit mirrors are used.
ENV_MIRROR = os.environ.get("FACETRACK_ASSET_MIRROR")


@pytest.fixture(autouse=True)
def no_env_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACETRACK_ASSET_MIRROR", raising=False)


@pytest.fixture(scope="module")
def mirror() -> Path:
    """The real offline mirror; the installed assets have the same layout and serve as one too."""
    for candidate in (
        ENV_MIRROR,
        REPO_ROOT.parent / "shared" / "assets",
        os.environ.get("FACETRACK_ASSETS_DIR"),
        REPO_ROOT / "models" / "assets",
    ):
        if candidate and (Path(candidate) / MODEL).is_file():
            return Path(candidate)
    pytest.fail("no asset mirror found: set FACETRACK_ASSET_MIRROR or run `make setup`")


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return load_manifest()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".part")]


def one_asset(tmp_path: Path, sources: str, pin: str, path: str = MODEL, size: str = "") -> Manifest:
    text = (
        f'version = 1\n[[asset]]\nname = "probe"\npath = "{path}"\n{pin}\n{size}\n'
        f'license = "Apache-2.0"\ngroup = "runtime"\nsources = [{sources}]\n'
    )
    file = tmp_path / "manifest.toml"
    file.write_text(text)
    return parse_manifest(text, file)


def corrupt_copy(source: Path, target: Path, offset: int = 1000) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    data = bytearray(source.read_bytes())
    data[offset] ^= 0xFF
    target.write_bytes(bytes(data))
    return hashlib.sha256(bytes(data)).hexdigest()


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real HTTP server on 127.0.0.1 serving a temp folder."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_manifest_covers_the_mirror_with_the_same_hashes(manifest: Manifest, mirror: Path) -> None:
    sums_file = mirror / "SHA256SUMS"
    if not sums_file.is_file():
        pytest.skip("mirror has no SHA256SUMS (installed assets used as mirror)")
    sums = {
        line.split(None, 1)[1].removeprefix("./"): line.split(None, 1)[0]
        for line in sums_file.read_text().splitlines()
    }
    listed = {a.path: a.sha256 for a in manifest.assets if a.group not in ("coral", "openface")}
    assert listed == sums
    runtime = {a.path for a in manifest.select(["runtime"])}
    assert runtime == {
        "models/coco_ssd_mobilenet_v1_1.0_quant.tflite",
        "models/coco_labelmap.txt",
        "models/face_detection_back.tflite",
        "models/face_detection_full_range.tflite",
        "models/face_detection_short_range.tflite",
        "models/mobilefacenet_128d.tflite",
        "models/face_recognition_sface_2021dec_int8bq.onnx",
    }
    coral = manifest.select(["coral"])
    assert len(coral) == 4 and all(a.sha256 is None and a.git_blob_sha1 for a in coral)
    (openface,) = manifest.select(["openface"])
    assert openface.sha256 is None and openface.git_blob_sha1 is None
    assert all(a.sources for a in manifest.assets), "every asset needs an upstream source"


def test_fetch_from_real_mirror_then_idempotent(
    tmp_path: Path, mirror: Path, manifest: Manifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "assets"
    report = fetch_assets(dest, None, mirror, upstream=False, progress=False)
    assert report.ok, [r.failure_line() for r in report.by_status("failed")]
    expected = manifest.select(DEFAULT_GROUPS)
    assert len(report.by_status("fetched")) == len(expected) > 100
    for asset in expected:
        assert sha256(dest / asset.path) == asset.sha256, asset.path
    assert leftovers(dest) == []
    mtimes = {a.path: (dest / a.path).stat().st_mtime_ns for a in expected}

    hashed: list[Path] = []
    real = fetcher.sha256_file
    monkeypatch.setattr(fetcher, "sha256_file", lambda p: hashed.append(p) or real(p))
    again = fetch_assets(dest, None, mirror, upstream=False, progress=False)
    assert again.ok and len(again.by_status("present")) == len(expected)
    assert hashed == [], "a verified, unchanged file is not re-hashed"
    assert {a.path: (dest / a.path).stat().st_mtime_ns for a in expected} == mtimes

    # A file changed behind our back is detected and replaced with the verified copy.
    target = dest / MODEL
    corrupt_copy(mirror / MODEL, target)
    third = fetch_assets(dest, ["runtime"], mirror, upstream=False, progress=False)
    assert third.ok and [r.asset.path for r in third.by_status("fetched")] == [MODEL]
    assert sha256(target) == manifest.lookup(MODEL).sha256


def test_corrupted_mirror_file_is_named_and_not_installed(
    tmp_path: Path, mirror: Path, manifest: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_mirror = tmp_path / "mirror"
    bad_sha = corrupt_copy(mirror / MODEL, bad_mirror / MODEL)
    dest = tmp_path / "assets"
    dead_port = free_port()
    good = manifest.lookup(MODEL)
    one = one_asset(
        tmp_path, f'"http://127.0.0.1:{dead_port}/{Path(MODEL).name}"', f'sha256 = "{good.sha256}"'
    )
    code = cli_main(
        [
            "assets",
            "fetch",
            "--mirror",
            str(bad_mirror),
            "--dest",
            str(dest),
            "--manifest",
            str(one.source_file),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1, err
    line = err[0]
    for needle in (
        "probe",
        MODEL,
        f"expected sha256 {good.sha256}",
        f"got sha256 {bad_sha}",
        f"mirror {bad_mirror / MODEL} -> sha256 {bad_sha} (wrong)",
        f"mirror {bad_mirror} by sha256 -> no file with that hash",
        f"http://127.0.0.1:{dead_port}/face_detection_back.tflite -> unreachable",
    ):
        assert needle in line, (needle, line)
    assert not (dest / MODEL).exists()
    assert leftovers(tmp_path) == []


def test_good_file_is_never_replaced_by_a_bad_source(
    tmp_path: Path, mirror: Path, manifest: Manifest
) -> None:
    dest = tmp_path / "assets"
    (dest / "models").mkdir(parents=True)
    shutil.copyfile(mirror / MODEL, dest / MODEL)
    bad_mirror = tmp_path / "mirror"
    corrupt_copy(mirror / MODEL, bad_mirror / MODEL)
    report = fetch_assets(dest, ["runtime"], bad_mirror, upstream=False, progress=False, rehash=True)
    assert sha256(dest / MODEL) == manifest.lookup(MODEL).sha256
    assert manifest.lookup(MODEL).name not in {r.asset.name for r in report.by_status("failed")}


def test_mirror_fallback_by_sha256_when_the_path_differs(tmp_path: Path, mirror: Path) -> None:
    moved = tmp_path / "mirror" / "elsewhere" / "renamed.bin"
    moved.parent.mkdir(parents=True)
    shutil.copyfile(mirror / MODEL, moved)
    # A same-size impostor with another hash must be skipped by the hash lookup.
    corrupt_copy(mirror / MODEL, tmp_path / "mirror" / "impostor.bin")
    report = fetch_assets(
        tmp_path / "assets", ["runtime"], tmp_path / "mirror", upstream=False, progress=False
    )
    result = next(r for r in report.results if r.asset.path == MODEL)
    assert result.status == "fetched"
    assert result.via == f"mirror {tmp_path / 'mirror'} by sha256"
    assert result.attempts[0].outcome == "not in mirror"
    assert sha256(tmp_path / "assets" / MODEL) == sha256(mirror / MODEL)


def test_mirror_from_environment(tmp_path: Path, mirror: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACETRACK_ASSET_MIRROR", str(mirror))
    report = fetch_assets(tmp_path / "a", ["runtime"], None, upstream=False, progress=False)
    assert report.ok and len(report.by_status("fetched")) == 7


def test_http_and_zip_upstreams_on_loopback(
    tmp_path: Path, mirror: Path, manifest: Manifest, http_root: tuple[Path, str]
) -> None:
    root, base = http_root
    shutil.copyfile(mirror / MODEL, root / "model.tflite")
    corrupt_copy(mirror / MODEL, root / "bad.tflite")
    with zipfile.ZipFile(root / "bundle.zip", "w") as bundle:
        bundle.write(mirror / "models/coco_labelmap.txt", "labelmap.txt")
    zip_sha = sha256(root / "bundle.zip")
    good = manifest.lookup(MODEL)

    one = one_asset(
        tmp_path,
        f'"{base}/missing.tflite", "{base}/bad.tflite", "{base}/model.tflite"',
        f'sha256 = "{good.sha256}"',
    )
    report = fetch_assets(tmp_path / "a", ["runtime"], None, manifest=one, progress=False)
    result = report.results[0]
    assert result.status == "fetched" and result.via == f"{base}/model.tflite"
    assert [a.outcome.split(" ")[0] for a in result.attempts] == ["HTTP", "sha256"]
    assert sha256(tmp_path / "a" / MODEL) == good.sha256

    label = manifest.lookup("models/coco_labelmap.txt")
    src = f'{{ zip = "{base}/bundle.zip", zip_sha256 = "{zip_sha}", member = "labelmap.txt" }}'
    bad_zip = f'{{ zip = "{base}/bundle.zip", zip_sha256 = "{"0" * 64}", member = "labelmap.txt" }}'
    (tmp_path / "z").mkdir()
    zipped = one_asset(tmp_path / "z", f"{bad_zip}, {src}", f'sha256 = "{label.sha256}"', label.path)
    report = fetch_assets(tmp_path / "b", ["runtime"], None, manifest=zipped, progress=False)
    assert report.ok, report.results[0].failure_line()
    assert report.results[0].attempts[0].outcome.startswith("zip sha256 mismatch")
    assert sha256(tmp_path / "b" / label.path) == label.sha256


def test_file_url_with_git_blob_pin_and_unpinned_refusal(tmp_path: Path, mirror: Path) -> None:
    data = (mirror / MODEL).read_bytes()
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()
    url = (mirror / MODEL).resolve().as_uri()
    (tmp_path / "m1").mkdir()
    pinned = one_asset(tmp_path / "m1", f'"{url}"', f'git_blob_sha1 = "{blob}"')
    report = fetch_assets(tmp_path / "a", ["runtime"], None, manifest=pinned, progress=False)
    assert report.ok and "record sha256" in report.results[0].note
    assert hashlib.sha256(data).hexdigest() in report.results[0].note

    (tmp_path / "m2").mkdir()
    unpinned = one_asset(tmp_path / "m2", f'"{url}"', "")
    report = fetch_assets(tmp_path / "b", ["runtime"], None, manifest=unpinned, progress=False)
    assert not report.ok and "refusing to install" in report.results[0].failure_line()
    assert not (tmp_path / "b" / MODEL).exists() and leftovers(tmp_path) == []


def test_pypi_source_through_pip_with_a_local_wheel(
    tmp_path: Path, mirror: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "facetrack_probe-1.0-py3-none-any.whl", "w") as wheel:
        wheel.write(mirror / MODEL, "probe/data/model.tflite")
        info = "facetrack_probe-1.0.dist-info"
        wheel.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: facetrack-probe\nVersion: 1.0\n")
        wheel.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{info}/RECORD", "")
    # pip looks only in this folder: the test never reaches PyPI.
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    one = one_asset(
        tmp_path,
        '"pypi:facetrack-probe==1.0#probe/data/model.tflite"',
        f'sha256 = "{sha256(mirror / MODEL)}"',
    )
    report = fetch_assets(tmp_path / "a", ["runtime"], None, manifest=one, progress=False)
    assert report.ok, report.results[0].failure_line()
    assert sha256(tmp_path / "a" / MODEL) == sha256(mirror / MODEL)


def test_interrupted_source_leaves_nothing(tmp_path: Path, mirror: Path, manifest: Manifest) -> None:
    class Dies:
        def describe(self) -> str:
            return "dies halfway"

        def fetch(self, out: fetcher.Sink, ctx: object) -> None:
            out.write((mirror / MODEL).read_bytes()[:1000])
            raise KeyboardInterrupt

    good = manifest.lookup(MODEL)
    broken = Manifest(assets=(fetcher.Asset(**{**good.__dict__, "sources": (Dies(),)}),))
    with pytest.raises(KeyboardInterrupt):
        fetch_assets(tmp_path / "a", ["runtime"], None, manifest=broken, progress=False)
    assert not (tmp_path / "a" / MODEL).exists()
    assert leftovers(tmp_path) == []


def test_asset_path_by_name_or_path(tmp_path: Path, mirror: Path) -> None:
    assert asset_path("face_detection_back", mirror) == mirror / MODEL
    assert asset_path(MODEL, mirror) == mirror / MODEL
    with pytest.raises(KeyError, match="unknown asset 'nope'"):
        asset_path("nope", mirror)
    with pytest.raises(FileNotFoundError, match="assets fetch --group runtime"):
        asset_path("face_detection_back", tmp_path)
    assert asset_path("face_detection_back", tmp_path, must_exist=False) == tmp_path / MODEL


def test_cli_list_and_bad_group(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["assets", "fetch", "--list", "--group", "runtime", "--dest", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 7 and all("missing" in line for line in out)
    assert cli_main(["assets", "fetch", "--group", "bogus", "--dest", str(tmp_path)]) == 2
    assert "unknown asset group 'bogus'" in capsys.readouterr().err


def test_cli_dest_defaults_to_the_configured_assets_dir(
    tmp_path: Path, mirror: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FACETRACK_ASSETS_DIR", str(tmp_path / "configured"))
    monkeypatch.setenv("FACETRACK_ASSET_MIRROR", str(mirror))
    assert cli_main(["assets", "fetch", "--group", "runtime", "--offline"]) == 0
    assert "7 fetched (7 from mirror)" in capsys.readouterr().out
    assert sha256(tmp_path / "configured" / MODEL) == sha256(mirror / MODEL)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('sources = ["ftp://x/y"]', "source 'ftp://x/y': expected an http(s)/file URL"),
        ('sources = ["pypi:dist#path"]', "expected pypi:DIST==VERSION#PATH"),
        ('sources = ["deb:pkg#path"]', "expected deb:PACKAGE=VERSION#PATH"),
        ('path = "../escape.bin"', "must be a relative path inside the assets directory"),
        ('group = "extras"', "group: Input should be 'runtime', 'testdata', 'coral' or 'openface'"),
        ('sha256 = "abc"', "sha256: String should match pattern"),
    ],
)
def test_manifest_mistakes_are_one_line(entry: str, message: str) -> None:
    fields = {
        "name": '"x"',
        "path": '"models/x.bin"',
        "license": '"MIT"',
        "group": '"runtime"',
        "sources": '["https://example.org/x"]',
    }
    key, value = entry.split(" = ", 1)
    fields[key] = value
    text = "version = 1\n[[asset]]\n" + "".join(f"{k} = {v}\n" for k, v in fields.items())
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text)
    assert message in str(caught.value) and "\n" not in str(caught.value)
