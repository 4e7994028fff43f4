"""Upstream sources of an asset: a URL, a member of a zip, a file in a PyPI or Debian package.

Each source writes the asset's bytes into an open file; the fetcher owns hashing, verification and
the atomic install, so a source never touches the final path.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from tqdm import tqdm

from agent import __version__

CHUNK = 1 << 16


class SourceError(Exception):
    """A source could not deliver: unreachable, missing member, tool absent. One short line."""


@dataclass
class FetchContext:
    """Shared by all sources of one fetch run: timeouts, progress, and downloaded archives."""

    workdir: Path
    timeout_s: float = 30.0
    progress: bool = True
    _archives: dict[str, Path] = field(default_factory=dict)
    _failed: dict[str, str] = field(default_factory=dict)

    def cached(self, key: str, make: Any) -> Path:
        """Download or unpack an archive once per run; several assets share one zip or wheel."""
        if key in self._failed:
            raise SourceError(self._failed[key])
        if key not in self._archives:
            try:
                self._archives[key] = make()
            except SourceError as exc:
                self._failed[key] = str(exc)
                raise
        return self._archives[key]

    def scratch(self, prefix: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.workdir))


class Sink(Protocol):
    """Where a source writes: the fetcher's hashing writer over a temporary file."""

    def write(self, data: bytes, /) -> int: ...


class Source(Protocol):
    def describe(self) -> str: ...

    def fetch(self, out: Sink, ctx: FetchContext) -> None: ...


def download(url: str, out: Sink, ctx: FetchContext, label: str) -> None:
    """Stream `url` into `out` with a progress bar (shown on a terminal only)."""
    request = urllib.request.Request(url, headers={"User-Agent": f"facetrack/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=ctx.timeout_s) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=label,
                leave=False,
                # None: tqdm shows the bar only when stderr is a terminal.
                disable=None if ctx.progress else True,
            ) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        raise SourceError(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise SourceError(f"unreachable: {exc.reason}") from None
    except (TimeoutError, OSError) as exc:
        raise SourceError(f"unreachable: {exc}") from None


@dataclass(frozen=True)
class UrlSource:
    url: str

    def describe(self) -> str:
        return self.url

    def fetch(self, out: Sink, ctx: FetchContext) -> None:
        download(self.url, out, ctx, PurePosixPath(self.url).name)


@dataclass(frozen=True)
class ZipMemberSource:
    url: str
    zip_sha256: str
    member: str

    def describe(self) -> str:
        return f"{self.url} (zip member {self.member})"

    def _download(self, ctx: FetchContext) -> Path:
        target = ctx.scratch("zip-") / PurePosixPath(self.url).name
        with target.open("wb") as handle:
            download(self.url, handle, ctx, target.name)
        actual = sha256_file(target)
        if actual != self.zip_sha256:
            raise SourceError(f"zip sha256 mismatch: expected {self.zip_sha256}, got {actual}")
        return target

    def fetch(self, out: Sink, ctx: FetchContext) -> None:
        archive = ctx.cached(f"zip:{self.url}@{self.zip_sha256}", lambda: self._download(ctx))
        try:
            with zipfile.ZipFile(archive) as bundle, bundle.open(self.member) as member:
                shutil.copyfileobj(member, out, CHUNK)
        except KeyError:
            raise SourceError(f"zip has no member {self.member}") from None
        except zipfile.BadZipFile as exc:
            raise SourceError(f"not a zip: {exc}") from None


@dataclass(frozen=True)
class PypiSource:
    dist: str
    version: str
    path: str

    def describe(self) -> str:
        return f"pypi:{self.dist}=={self.version}#{self.path}"

    def _download(self, ctx: FetchContext) -> Path:
        where = ctx.scratch("pypi-")
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
            "--timeout", str(int(ctx.timeout_s)), "--dest", str(where),
            f"{self.dist}=={self.version}",
        ]  # fmt: skip
        try:
            done = _run(command, ctx)
        except OSError as exc:
            raise SourceError(f"cannot run pip: {exc}") from None
        if done.returncode != 0:
            raise SourceError(f"pip download failed: {_last_line(done.stderr)}")
        archives = sorted(p for p in where.iterdir() if p.is_file())
        if not archives:
            raise SourceError("pip download produced no file")
        return archives[0]

    def fetch(self, out: Sink, ctx: FetchContext) -> None:
        archive = ctx.cached(f"pypi:{self.dist}=={self.version}", lambda: self._download(ctx))
        copy_from_archive(archive, self.path, out)


@dataclass(frozen=True)
class DebSource:
    package: str
    version: str
    path: str

    def describe(self) -> str:
        return f"deb:{self.package}={self.version}#{self.path}"

    def _unpack(self, ctx: FetchContext) -> Path:
        apt, dpkg = shutil.which("apt-get"), shutil.which("dpkg")
        if apt is None or dpkg is None:
            raise SourceError("apt-get/dpkg not available (not a Debian-based system)")
        where = ctx.scratch("deb-")
        spec = f"{self.package}={self.version}"
        done = _run([apt, "download", spec], ctx, cwd=where)
        debs = list(where.glob("*.deb"))
        if done.returncode != 0 or not debs:
            raise SourceError(f"apt-get download {spec} failed: {_last_line(done.stderr)}")
        tree = where / "tree"
        unpacked = subprocess.run(
            [dpkg, "-x", str(debs[0]), str(tree)], capture_output=True, text=True, check=False
        )
        if unpacked.returncode != 0:
            raise SourceError(f"dpkg -x {debs[0].name} failed: {_last_line(unpacked.stderr)}")
        return tree

    def fetch(self, out: Sink, ctx: FetchContext) -> None:
        tree = ctx.cached(f"deb:{self.package}={self.version}", lambda: self._unpack(ctx))
        member = tree / self.path.lstrip("/")
        if not member.is_file():
            raise SourceError(f"package has no file {self.path}")
        with member.open("rb") as handle:
            shutil.copyfileobj(handle, out, CHUNK)


def copy_from_archive(archive: Path, member: str, out: Sink) -> None:
    """Copy `member` out of a wheel/zip or an sdist tarball (whose members sit under NAME-VER/)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            names = bundle.namelist()
            name = _match_member(names, member, archive)
            with bundle.open(name) as handle:
                shutil.copyfileobj(handle, out, CHUNK)
        return
    try:
        with tarfile.open(archive) as bundle:
            name = _match_member(bundle.getnames(), member, archive)
            extracted = bundle.extractfile(name)
            if extracted is None:
                raise SourceError(f"{archive.name}: {member} is not a regular file")
            with extracted:
                shutil.copyfileobj(extracted, out, CHUNK)
    except tarfile.TarError as exc:
        raise SourceError(f"{archive.name} is neither a wheel nor an sdist: {exc}") from None


def _match_member(names: list[str], member: str, archive: Path) -> str:
    if member in names:
        return member
    for name in names:
        if name.split("/", 1)[-1] == member:
            return name
    raise SourceError(f"{archive.name} has no member {member}")


def _run(command: list[str], ctx: FetchContext, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run pip/apt; their own progress output reaches a terminal, their errors are kept for the report."""
    shown = ctx.progress and sys.stderr.isatty()
    return subprocess.run(
        command,
        cwd=cwd,
        stdout=None if shown else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def git_blob_sha1_file(path: Path) -> str:
    """Git's blob id: sha1 of "blob <size>\\0" + bytes (what GitHub shows for a file)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def parse_source(spec: str | dict[str, Any]) -> Source:
    """A manifest source entry -> Source; ValueError with the offending entry otherwise."""
    if isinstance(spec, dict):
        return ZipMemberSource(url=spec["zip"], zip_sha256=spec["zip_sha256"], member=spec["member"])
    if spec.startswith("pypi:"):
        body, sep, path = spec.removeprefix("pypi:").partition("#")
        dist, eq, version = body.partition("==")
        if not (sep and eq and dist and version and path):
            raise ValueError(f"source {spec!r}: expected pypi:DIST==VERSION#PATH")
        return PypiSource(dist=dist, version=version, path=path)
    if spec.startswith("deb:"):
        body, sep, path = spec.removeprefix("deb:").partition("#")
        package, eq, version = body.partition("=")
        if not (sep and eq and package and version and path):
            raise ValueError(f"source {spec!r}: expected deb:PACKAGE=VERSION#PATH")
        return DebSource(package=package, version=version, path=path)
    if spec.startswith(("https://", "http://", "file://")):
        return UrlSource(url=spec)
    raise ValueError(f"source {spec!r}: expected an http(s)/file URL, pypi:..., deb:... or a zip table")
