"""Fetch, verify and atomically install assets: mirror first (by path, then by hash), then upstream.

A file reaches its final path only through os.replace of a fully written, fsynced and verified
temporary file in the same directory, so an interrupted or failed fetch never leaves a half or
wrong file under an asset's name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from tqdm import tqdm

from agent.assets.manifest import Asset, Manifest, load_manifest, resolve_groups
from agent.assets.sources import (
    CHUNK,
    FetchContext,
    Sink,
    Source,
    SourceError,
    git_blob_sha1_file,
    sha256_file,
)

CACHE_FILE = ".facetrack-assets.json"
# Temp files older than this are leftovers of a killed fetch, safe to remove.
STALE_PART_S = 3600.0

Status = Literal["present", "fetched", "failed"]


@dataclass(frozen=True)
class Attempt:
    source: str
    outcome: str


@dataclass
class AssetResult:
    asset: Asset
    path: Path
    status: Status
    via: str | None = None
    actual_sha256: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    note: str = ""

    def failure_line(self) -> str:
        expected = self.asset.pin
        actual = f"sha256 {self.actual_sha256}" if self.actual_sha256 else "nothing (no source delivered)"
        tried = "; ".join(f"{a.source} -> {a.outcome}" for a in self.attempts) or "no sources"
        extra = f" ({self.note})" if self.note else ""
        return (
            f"asset {self.asset.name} ({self.asset.path}) FAILED{extra}: expected {expected}, "
            f"got {actual}; tried: {tried}"
        )


@dataclass
class FetchReport:
    dest: Path
    results: list[AssetResult]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(r.status != "failed" for r in self.results)

    def by_status(self, status: Status) -> list[AssetResult]:
        return [r for r in self.results if r.status == status]

    def summary(self) -> str:
        fetched = self.by_status("fetched")
        kinds: dict[str, int] = {}
        for result in fetched:
            kind = "mirror" if (result.via or "").startswith("mirror") else "upstream"
            kinds[kind] = kinds.get(kind, 0) + 1
        how = ", ".join(f"{n} from {k}" for k, n in sorted(kinds.items()))
        return (
            f"{len(self.results)} assets in {self.dest}: {len(fetched)} fetched"
            f"{f' ({how})' if how else ''}, {len(self.by_status('present'))} already present, "
            f"{len(self.by_status('failed'))} failed ({self.seconds:.1f} s)"
        )


class MirrorIndex:
    """Files of an offline mirror found by content, hashed lazily and only for matching sizes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._sizes: dict[int, list[Path]] | None = None
        self._digests: dict[tuple[Path, str], str] = {}

    def _by_size(self) -> dict[int, list[Path]]:
        if self._sizes is None:
            self._sizes = {}
            for dirpath, _dirs, files in os.walk(self.root):
                for name in files:
                    path = Path(dirpath) / name
                    try:
                        self._sizes.setdefault(path.stat().st_size, []).append(path)
                    except OSError:
                        continue
        return self._sizes

    def find(self, asset: Asset) -> Path | None:
        sizes = self._by_size()
        candidates = (
            sizes.get(asset.size, [])
            if asset.size is not None
            else [p for group in sizes.values() for p in group]
        )
        for path in candidates:
            if self._matches(path, asset):
                return path
        return None

    def _matches(self, path: Path, asset: Asset) -> bool:
        kind, wanted = ("sha256", asset.sha256) if asset.sha256 else ("blob", asset.git_blob_sha1)
        if wanted is None:
            return False
        key = (path, kind)
        if key not in self._digests:
            try:
                self._digests[key] = sha256_file(path) if kind == "sha256" else git_blob_sha1_file(path)
            except OSError:
                return False
        return self._digests[key] == wanted


@dataclass(frozen=True)
class MirrorPathSource:
    file: Path

    def describe(self) -> str:
        return f"mirror {self.file}"

    def fetch(self, out: Sink, ctx: FetchContext) -> None:
        try:
            with self.file.open("rb") as handle:
                shutil.copyfileobj(handle, out, CHUNK)
        except FileNotFoundError:
            raise SourceError("not in mirror") from None
        except OSError as exc:
            raise SourceError(f"unreadable: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class MirrorHashSource:
    index: MirrorIndex
    asset: Asset

    def describe(self) -> str:
        return f"mirror {self.index.root} by {'sha256' if self.asset.sha256 else 'git blob id'}"

    def fetch(self, out: Sink, ctx: FetchContext) -> None:
        found = self.index.find(self.asset)
        if found is None:
            raise SourceError("no file with that hash")
        MirrorPathSource(found).fetch(out, ctx)


class VerifiedCache:
    """sha256 of installed files keyed by (size, mtime_ns), so a re-run need not re-hash 30 MB."""

    def __init__(self, dest: Path) -> None:
        self.file = dest / CACHE_FILE
        self.entries: dict[str, dict[str, int | str]] = {}
        self.dirty = False
        try:
            loaded = json.loads(self.file.read_text(encoding="utf-8"))
            if isinstance(loaded, dict) and isinstance(loaded.get("files"), dict):
                self.entries = loaded["files"]
        except (OSError, ValueError):
            pass

    def verified(self, asset: Asset, path: Path, rehash: bool) -> tuple[bool, str | None]:
        """(matches the pin, sha256 of the file or None when absent)."""
        try:
            stat = path.stat()
        except FileNotFoundError:
            return False, None
        entry = self.entries.get(asset.path)
        fresh = (
            not rehash
            and entry is not None
            and entry.get("size") == stat.st_size
            and entry.get("mtime_ns") == stat.st_mtime_ns
        )
        if not fresh:
            entry = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256_file(path)}
            if asset.git_blob_sha1 and not asset.sha256:
                entry["git_blob_sha1"] = git_blob_sha1_file(path)
            self.entries[asset.path] = entry
            self.dirty = True
        assert entry is not None
        return _pin_matches(asset, entry), str(entry.get("sha256"))

    def record(self, asset: Asset, path: Path, sha256: str, blob: str | None) -> None:
        stat = path.stat()
        entry: dict[str, int | str] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}
        if blob:
            entry["git_blob_sha1"] = blob
        self.entries[asset.path] = entry
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        payload = json.dumps({"version": 1, "files": self.entries}, indent=1, sort_keys=True)
        with _atomic_file(self.file) as (handle, _tmp):
            handle.write(payload.encode())
        self.dirty = False


def _pin_matches(asset: Asset, entry: dict[str, int | str]) -> bool:
    if asset.sha256:
        return entry.get("sha256") == asset.sha256
    if asset.git_blob_sha1:
        return entry.get("git_blob_sha1") == asset.git_blob_sha1
    return False


class _CannotWrite(Exception):
    """The destination, not the source, failed (disk full, read-only): other sources won't help."""


class _HashingWriter:
    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        try:
            return self.handle.write(data)
        except OSError as exc:
            # Not an OSError any more, so a source's network error handling cannot swallow it.
            raise _CannotWrite(exc.strerror or str(exc)) from None


@contextmanager
def _atomic_file(final: Path) -> Iterator[tuple[IO[bytes], Path]]:
    """A temp file beside `final`; renamed over it only if the block completes, else removed."""
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
    tmp = Path(name)
    try:
        # mkstemp makes 0600 files; assets and the cache are ordinary readable files.
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as handle:
            yield handle, tmp
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    finally:
        tmp.unlink(missing_ok=True)


class _Rejected(Exception):
    """The body of an _atomic_file block refuses the content (wrong hash): do not install."""


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_stale_parts(directory: Path, name: str) -> None:
    now = time.time()
    for part in directory.glob(f".{name}.*.part"):
        try:
            if now - part.stat().st_mtime > STALE_PART_S:
                part.unlink()
        except OSError:
            continue


def _install_from(source: Source, asset: Asset, final: Path, ctx: FetchContext) -> tuple[str, str | None]:
    """Write, verify, install; returns (sha256, git blob id or None). Raises _Rejected or SourceError."""
    try:
        with _atomic_file(final) as (handle, tmp):
            writer = _HashingWriter(handle)
            source.fetch(writer, ctx)
            handle.flush()
            actual = writer.digest.hexdigest()
            blob = git_blob_sha1_file(tmp) if asset.git_blob_sha1 and not asset.sha256 else None
            if asset.sha256 and actual != asset.sha256:
                raise _Rejected(actual, f"sha256 {actual} (wrong)")
            if not asset.sha256 and asset.git_blob_sha1 and blob != asset.git_blob_sha1:
                raise _Rejected(actual, f"git blob {blob} (wrong; sha256 {actual})")
            if not asset.pinned:
                raise _Rejected(actual, f"sha256 {actual} (no pin to check it against)")
    except OSError as exc:
        raise _CannotWrite(exc.strerror or str(exc)) from None
    return actual, blob


def fetch_assets(
    dest: Path,
    groups: Sequence[str] | None = None,
    mirror: Path | None = None,
    *,
    manifest: Manifest | None = None,
    names: Iterable[str] | None = None,
    upstream: bool = True,
    rehash: bool = False,
    timeout_s: float = 30.0,
    progress: bool = True,
) -> FetchReport:
    """Make every asset of `groups` (default runtime + testdata) present and verified under `dest`.

    `mirror` (default: $FACETRACK_ASSET_MIRROR) is searched by the asset's path, then by hash,
    before the manifest's upstream sources. Never raises for a bad asset: each failure is a
    result with status "failed" and every source tried; check `report.ok`.
    """
    started = time.monotonic()
    manifest = manifest or load_manifest()
    if mirror is None and os.environ.get("FACETRACK_ASSET_MIRROR"):
        mirror = Path(os.environ["FACETRACK_ASSET_MIRROR"])
    selected = list(manifest.select(resolve_groups(groups)))
    if names is not None:
        selected = [manifest.lookup(n) for n in dict.fromkeys(names)]
    dest = dest.expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    cache = VerifiedCache(dest)
    index = MirrorIndex(mirror) if mirror is not None else None
    results: list[AssetResult] = []
    with tempfile.TemporaryDirectory(prefix="facetrack-fetch-") as work:
        ctx = FetchContext(workdir=Path(work), timeout_s=timeout_s, progress=progress)
        bar = tqdm(selected, desc="assets", unit="file", leave=False, disable=None if progress else True)
        try:
            for asset in bar:
                results.append(_fetch_one(asset, dest, mirror, index, cache, ctx, upstream, rehash))
        finally:
            bar.close()
            # The cache only saves re-hashing next time; failing to write it loses nothing.
            with contextlib.suppress(OSError):
                cache.save()
    return FetchReport(dest=dest, results=results, seconds=time.monotonic() - started)


def _fetch_one(
    asset: Asset,
    dest: Path,
    mirror: Path | None,
    index: MirrorIndex | None,
    cache: VerifiedCache,
    ctx: FetchContext,
    upstream: bool,
    rehash: bool,
) -> AssetResult:
    final = dest / asset.path
    try:
        ok, present_sha = cache.verified(asset, final, rehash)
    except OSError as exc:
        unreadable = f"the file at {final} cannot be read: {exc.strerror or exc}"
        return AssetResult(asset, final, "failed", attempts=[Attempt(str(final), unreadable)])
    if ok:
        return AssetResult(asset, final, "present", actual_sha256=present_sha)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        cannot = f"cannot create {final.parent}: {exc.strerror or exc}"
        return AssetResult(asset, final, "failed", attempts=[Attempt(str(final.parent), cannot)])
    _remove_stale_parts(final.parent, final.name)
    sources: list[Source] = []
    if mirror is not None and index is not None:
        sources += [MirrorPathSource(mirror / asset.path), MirrorHashSource(index, asset)]
    if upstream:
        sources += list(asset.sources)
    attempts: list[Attempt] = []
    actual: str | None = None
    for source in sources:
        try:
            sha, blob = _install_from(source, asset, final, ctx)
        except _Rejected as rejected:
            actual = str(rejected.args[0])
            attempts.append(Attempt(source.describe(), str(rejected.args[1])))
            continue
        except SourceError as exc:
            attempts.append(Attempt(source.describe(), str(exc)))
            continue
        except _CannotWrite as exc:
            attempts.append(Attempt(source.describe(), f"cannot write into {final.parent}: {exc}"))
            break
        cache.record(asset, final, sha, blob)
        note = "" if asset.sha256 else f'verified by git blob id; record sha256 = "{sha}" in the manifest'
        return AssetResult(asset, final, "fetched", source.describe(), sha, attempts, note)
    note = ""
    if present_sha is not None:
        note = f"the file already at {final} has sha256 {present_sha} and was left as it is"
    if not asset.pinned:
        note = "no sha256 or git_blob_sha1 in the manifest; refusing to install an unverified file"
    return AssetResult(asset, final, "failed", None, actual, attempts, note)


def asset_path(name_or_relpath: str, assets_dir: Path, *, manifest: Manifest | None = None,
               must_exist: bool = True) -> Path:  # fmt: skip
    """Where an asset (by manifest name or relative path) lives under `assets_dir`.

    With `must_exist`, a missing file raises FileNotFoundError saying how to fetch it.
    """
    asset = (manifest or load_manifest()).lookup(name_or_relpath)
    path = Path(assets_dir) / asset.path
    if must_exist and not path.is_file():
        raise FileNotFoundError(
            f"asset {asset.name} missing at {path}: run `facetrack-agent assets fetch --group {asset.group}`"
        )
    return path
