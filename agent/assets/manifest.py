"""The asset manifest (models/manifest.toml): which files exist, their pins and their sources."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.assets.sources import Source, parse_source

# coral: the Edge TPU models and their CPU twins (pinned by git blob id); openface: the original
# script's embedder, in a group of its own because no pin for it is known yet, so the fetcher
# refuses it and must not make the Coral fetch fail with it.
Group = Literal["runtime", "testdata", "coral", "openface"]
GROUPS: tuple[Group, ...] = ("runtime", "testdata", "coral", "openface")
DEFAULT_GROUPS: tuple[Group, ...] = ("runtime", "testdata")
# The manifest lives in the source tree (models/ is fixed by the layout), next to the packages.
# A symlink to models/manifest.toml in the source tree; a wheel carries it as a copy, so a
# non-editable install (a Pi) finds the same pins without --manifest.
DEFAULT_MANIFEST = Path(__file__).resolve().parent / "manifest.toml"


class ManifestError(Exception):
    """The manifest itself is unreadable or inconsistent; the message is one line."""


class _ZipSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    zip: str
    zip_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    member: str


class _AssetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    path: str
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    git_blob_sha1: str | None = Field(None, pattern=r"^[0-9a-f]{40}$")
    size: int | None = Field(None, ge=0)
    license: str
    group: Group
    description: str = ""
    sources: list[str | _ZipSpec] = []

    @field_validator("path")
    @classmethod
    def _relative_and_inside(cls, value: str) -> str:
        pure = PurePosixPath(value)
        if pure.is_absolute() or ".." in pure.parts or not pure.parts:
            raise ValueError("must be a relative path inside the assets directory")
        return value


@dataclass(frozen=True)
class Asset:
    """One file: where it goes, how it is pinned, and where it can come from (in order)."""

    name: str
    path: str
    sha256: str | None
    git_blob_sha1: str | None
    size: int | None
    license: str
    group: Group
    description: str = ""
    sources: tuple[Source, ...] = field(default=())

    @property
    def pinned(self) -> bool:
        return self.sha256 is not None or self.git_blob_sha1 is not None

    @property
    def pin(self) -> str:
        """The pin as shown to users."""
        if self.sha256:
            return f"sha256 {self.sha256}"
        if self.git_blob_sha1:
            return f"git blob {self.git_blob_sha1}"
        return "no pin"


@dataclass(frozen=True)
class Manifest:
    assets: tuple[Asset, ...]
    source_file: Path | None = None

    def lookup(self, name_or_path: str) -> Asset:
        """An asset by its name or its relative path; KeyError with a hint otherwise."""
        wanted = name_or_path.removeprefix("./")
        for asset in self.assets:
            if wanted in (asset.name, asset.path):
                return asset
        where = self.source_file or "the manifest"
        raise KeyError(f"unknown asset {name_or_path!r}: not a name or path in {where}")

    def select(self, groups: Iterable[str]) -> tuple[Asset, ...]:
        wanted = set(groups)
        unknown = wanted - set(GROUPS)
        if unknown:
            raise ManifestError(
                f"unknown asset group {sorted(unknown)[0]!r}: allowed are {', '.join(GROUPS)}"
            )
        return tuple(asset for asset in self.assets if asset.group in wanted)


def parse_manifest(text: str, source_file: Path | None = None) -> Manifest:
    where = str(source_file or "manifest")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{where} is not valid TOML: {exc}") from None
    if raw.get("version") != 1:
        raise ManifestError(f"{where}: expected `version = 1`, got {raw.get('version')!r}")
    assets: list[Asset] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(raw.get("asset", [])):
        label = entry.get("name", f"#{index}") if isinstance(entry, dict) else f"#{index}"
        try:
            spec = _AssetSpec.model_validate(entry)
        except ValidationError as exc:
            error = exc.errors()[0]
            key = ".".join(str(p) for p in error["loc"])
            raise ManifestError(f"{where}: asset {label}: {key}: {error['msg']}") from None
        for key in (spec.name, spec.path):
            if key in seen:
                raise ManifestError(f"{where}: asset {label}: {key!r} is listed twice")
            seen[key] = index
        try:
            sources = tuple(parse_source(s if isinstance(s, str) else s.model_dump()) for s in spec.sources)
        except ValueError as exc:
            raise ManifestError(f"{where}: asset {label}: {exc}") from None
        assets.append(
            Asset(
                name=spec.name,
                path=spec.path,
                sha256=spec.sha256,
                git_blob_sha1=spec.git_blob_sha1,
                size=spec.size,
                license=spec.license,
                group=spec.group,
                description=spec.description,
                sources=sources,
            )
        )
    return Manifest(assets=tuple(assets), source_file=source_file)


def load_manifest(path: Path | None = None) -> Manifest:
    path = path or DEFAULT_MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"cannot read asset manifest {path}: {exc.strerror or exc}") from None
    return parse_manifest(text, path)


def resolve_groups(groups: Sequence[str] | None) -> tuple[str, ...]:
    """CLI/API groups: None means the defaults, 'all' means every group, commas split."""
    if not groups:
        return DEFAULT_GROUPS
    result: list[str] = []
    for item in groups:
        for part in re.split(r"[,\s]+", item.strip()):
            if part == "all":
                result.extend(GROUPS)
            elif part:
                result.append(part)
    return tuple(dict.fromkeys(result))
