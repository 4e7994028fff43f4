"""Naming, merging and discarding the groups `cluster` found (DIR/.groups/groups.json).

- name: copy a group's best faces into PHOTOS/<name>/ (where `train` reads people), and mark the
  group named;
- merge: the second group's faces join the first (one person seen as two groups);
- discard: the group is dropped; in an inbox its crops and index lines are deleted too (faces are
  biometric data: what nobody will name is not kept).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from agent.classifier.labels import RESERVED_LABELS
from trainer.group_file import GROUPS_FILE, read_groups, write_groups
from trainer.inbox import is_inbox, remove_paths

# A person's folder name as `train` uses it as a label: letters, digits, '-', '_', '.', not hidden.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class NamingError(ValueError):
    """One line for the user."""


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or name in RESERVED_LABELS:
        raise NamingError(
            f"{name!r} is not a usable person name: 1-64 letters, digits, '.', '_' or '-', starting "
            f"with a letter or digit, and not one of {sorted(RESERVED_LABELS)}"
        )
    return name


def _load(root: Path) -> dict[str, Any]:
    try:
        return read_groups(root)
    except FileNotFoundError:
        raise NamingError(f"{root} has no groups yet: run `facetrack-trainer cluster {root}` first") from None
    except ValueError as exc:
        raise NamingError(f"{root}/.groups/{GROUPS_FILE} is unreadable: {exc}") from None


def _find(document: dict[str, Any], ids: list[str]) -> list[dict[str, Any]]:
    by_id = {g["id"]: g for g in document["groups"]}
    missing = [i for i in ids if i not in by_id]
    if missing:
        known = ", ".join(sorted(by_id)) or "none"
        raise NamingError(f"no group {', '.join(missing)} (groups: {known})")
    return [by_id[i] for i in ids]


def name_groups(root: Path, ids: list[str], name: str, photos: Path, best: int) -> list[Path]:
    """Copy up to `best` faces of each group into photos/<name>/; returns the files written."""
    check_name(name)
    document = _load(root)
    groups = _find(document, ids)
    target = photos / name
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for group in groups:
        for member in (group.get("best") or group["members"])[:best]:
            source = root / member
            # Named after the group folder path, so faces from two groups or devices never collide;
            # a face cut from a group photo lives under .groups/, and a leading dot would hide it.
            out = target / member.replace("/", "__").lstrip(".")
            shutil.copyfile(source, out)
            written.append(out)
        group["named"] = name
    write_groups(root, document)
    return written


def merge_groups(root: Path, into: str, others: list[str]) -> dict[str, Any]:
    document = _load(root)
    keep, *rest = _find(document, [into, *others])
    for group in rest:
        keep["members"] = sorted(set(keep["members"]) | set(group["members"]))
        keep["best"] = list(keep.get("best") or []) + list(group.get("best") or group["members"])
        keep["devices"] = sorted(set(keep.get("devices") or []) | set(group.get("devices") or []))
        seen = [
            s
            for s in (
                keep.get("first_seen"),
                keep.get("last_seen"),
                group.get("first_seen"),
                group.get("last_seen"),
            )
            if s
        ]
        keep["first_seen"], keep["last_seen"] = (min(seen), max(seen)) if seen else (None, None)
        keep["size"] = len(keep["members"])
    document["groups"] = [g for g in document["groups"] if g not in rest]
    document["groups"].sort(key=lambda g: -len(g["members"]))
    write_groups(root, document)
    return keep


def discard_groups(root: Path, ids: list[str]) -> int:
    """Drop the groups; in an inbox delete their crops. Returns the faces deleted."""
    document = _load(root)
    groups = _find(document, ids)
    deleted = 0
    if is_inbox(root):
        deleted = remove_paths(root, {m for g in groups for m in g["members"]})
    document["groups"] = [g for g in document["groups"] if g not in groups]
    write_groups(root, document)
    return deleted
