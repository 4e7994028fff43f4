"""Every relative link and #anchor in README.md and docs/*.md leads somewhere, and the README stays
a front door (at most 20 KB) whose quick start runs the agent on a file, not a camera.

Anchors follow GitHub's rule: a heading's text, lower-cased, without punctuation other than `-` and
`_`, spaces turned into `-`, and `-1`, `-2`, ... added to repeats. Headings inside fenced code
blocks are not headings. Links with a scheme (https:, mailto:) are not checked (no network here).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# [text](target) and ![alt](target); the target ends at whitespace or the closing parenthesis.
_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.M)
_HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.I)


def _prose(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    text = re.sub(r"`([^`]*)`", r"\1", heading)  # code spans keep their text
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links keep their text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    for line in _prose(path.read_text()):
        match = _HEADING.match(line)
        if match:
            base = slug(match.group(2))
            n = counts.get(base, 0)
            counts[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
        found.update(a.lower() for a in _HTML_ANCHOR.findall(line))
    return found


def links(path: Path) -> list[str]:
    prose = "\n".join(_prose(path.read_text()))
    # Inline code is not a link: `[x](y)` in backticks is an example.
    prose = re.sub(r"`[^`\n]*`", "", prose)
    return _LINK.findall(prose) + _REFERENCE.findall(prose)


def _problems(path: Path) -> list[str]:
    problems = []
    for target in links(path):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):
            continue  # https:, mailto:, ...
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(REPO_ROOT)}: ({target})"
        if file_part and not dest.exists():
            problems.append(f"{where}: {file_part} does not exist")
            continue
        if anchor:
            if dest.is_dir() or dest.suffix != ".md":
                problems.append(f"{where}: an anchor into a file that is not markdown")
            elif anchor.lower() not in anchors(dest):
                problems.append(f"{where}: no heading #{anchor} in {dest.relative_to(REPO_ROOT)}")
    return problems


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(REPO_ROOT)) for p in DOCS])
def test_relative_links_and_anchors_resolve(path: Path) -> None:
    problems = _problems(path)
    assert not problems, "\n".join(problems)


def test_the_checker_catches_broken_links(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text(
        "# Title\n\n## Events: at least once\n\n```sh\n# not a heading\n```\n\n"
        "[ok](#events-at-least-once) [ok](b.md#other-page) [bad](#not-a-heading) [bad](c.md)\n"
        "[bad](b.md#nope) `[example](nowhere.md)` [web](https://example.com/x#y)\n"
    )
    (tmp_path / "b.md").write_text("# Other page\n")
    found = links(tmp_path / "a.md")
    assert "nowhere.md" not in found and "https://example.com/x#y" in found
    assert slug("Connection settings (`[mqtt]`)") == "connection-settings-mqtt"
    assert slug("The annotated video (`--output`)") == "the-annotated-video---output"
    bad = []
    for target in found:
        if target.startswith("https:"):
            continue
        file_part, _, anchor = target.partition("#")
        dest = tmp_path / file_part if file_part else tmp_path / "a.md"
        if not dest.exists() or (anchor and anchor not in anchors(dest)):
            bad.append(target)
    assert bad == ["#not-a-heading", "c.md", "b.md#nope"]


def test_readme_is_a_front_door() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 20 * 1024
    assert "make demo" in readme and "make test" in readme
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"```sh\n(.*?)```", quick, re.S)[0]
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(commands) <= 16
    for step in ("keygen", "facetrack-trainer train", "facetrack-agent run", "publish", "mosquitto_sub"):
        assert step in block, step
    run = block.split("facetrack-agent run", 1)[1]
    assert "--input 0" not in run and re.search(r"--input \S+\.(mp4|avi)", run)
    for page in ("agent", "mqtt-contract", "trainer", "deploy", "development"):
        assert f"docs/{page}.md" in readme
