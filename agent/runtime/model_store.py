"""Versioned on-disk model store: `<state_dir>/models/<version>.ftm`, one verified bundle per file.

Install is atomic: the bundle goes to a temp file in the same directory, is fsynced, renamed onto
its final name and the directory is fsynced. A kill at any point leaves either no new file (only a
temp file, removed at the next start) or the complete new file; readers never see a partial one.
On start the newest file that still verifies is loaded; anything broken is skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent.classifier.bundle import BUNDLE_SUFFIX, version_key
from agent.classifier.errors import BundleError
from agent.classifier.verify import VerifiedBundle

TEMP_MARKER = ".tmp-"


@dataclass
class LoadResult:
    bundle: VerifiedBundle | None
    path: Path | None
    # (file, reason) for every newer file that was skipped because it did not verify.
    skipped: list[tuple[Path, str]] = field(default_factory=list)


class ModelStore:
    def __init__(self, root: Path, keep_versions: int = 3) -> None:
        self.root = root
        self.keep_versions = max(1, keep_versions)

    def path_for(self, version: str) -> Path:
        version_key(version)  # a version is also a file name: only well-formed ones
        return self.root / f"{version}{BUNDLE_SUFFIX}"

    def versions(self) -> list[tuple[str, Path]]:
        """Installed (version, path), newest first; names that are not versions are ignored."""
        if not self.root.is_dir():
            return []
        found: list[tuple[tuple[int, int, int], str, Path]] = []
        for path in self.root.iterdir():
            if path.suffix != BUNDLE_SUFFIX or TEMP_MARKER in path.name or not path.is_file():
                continue
            try:
                found.append((version_key(path.stem), path.stem, path))
            except ValueError:
                continue
        found.sort(reverse=True)
        return [(version, path) for _, version, path in found]

    def remove_temp_files(self) -> list[Path]:
        """Delete temp files left by an install that was killed; returns what was removed."""
        removed: list[Path] = []
        if not self.root.is_dir():
            return removed
        for path in self.root.iterdir():
            if TEMP_MARKER in path.name:
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    def install(self, data: bytes, version: str, protect: set[str] | None = None) -> Path:
        """Atomically store a verified bundle and prune old versions (never those in `protect`)."""
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.path_for(version)
        temp = self.root / f"{final.name}{TEMP_MARKER}{os.getpid()}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, final)
        self._fsync_dir()
        self.prune(protect=(protect or set()) | {version})
        return final

    def prune(self, protect: set[str] | None = None) -> list[Path]:
        """Keep the newest `keep_versions` bundles plus the protected ones; delete the rest."""
        keep = protect or set()
        removed: list[Path] = []
        for index, (version, path) in enumerate(self.versions()):
            if index >= self.keep_versions and version not in keep:
                path.unlink(missing_ok=True)
                removed.append(path)
        if removed:
            self._fsync_dir()
        return removed

    def load_newest(self, verify: Callable[[bytes], VerifiedBundle]) -> LoadResult:
        """The newest installed bundle that passes `verify`; broken or partial files are skipped."""
        self.remove_temp_files()
        result = LoadResult(bundle=None, path=None)
        for version, path in self.versions():
            try:
                bundle = verify(path.read_bytes())
            except (BundleError, OSError) as exc:
                result.skipped.append((path, str(exc)))
                continue
            if bundle.version != version:
                result.skipped.append((path, f"file name says {version}, bundle says {bundle.version}"))
                continue
            result.bundle, result.path = bundle, path
            break
        return result

    def _fsync_dir(self) -> None:
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
