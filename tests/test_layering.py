"""The pure core does no I/O and knows nothing of the runtime (docs/development.md#layers).

The pure packages (tracking, classifier, identity, events, pipeline) and `agent.vision.types` are
parsed, never imported, and so is every agent module they import when they run, transitively: a
pure module that imports a module that opens files is not pure. Imports under `if TYPE_CHECKING:`
never run and are not followed, but even there `agent.runtime` is refused: the core must not be
shaped by the runtime's types.

Per package:
- every pure module: no `agent.runtime`, no file, network, event-loop, process or logging module,
  no `open()`/`print()`, no file reads or writes through pathlib, OpenCV or NumPy;
- tracking, identity and the event builder also read no clock (callers pass the times in); the
  pipeline reads `time.perf_counter` for its own stage timings, the classifier dates a bundle
  when the trainer signs it, and the event schema offers `utc_now()` to the runtime.

No module is exempt: the classifier verifies bundles from bytes, and what touches disk for it (the
model store, key files) and for the events (the `schema` command) is in `agent.runtime`.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

PURE_PACKAGES = ("agent.tracking", "agent.classifier", "agent.identity", "agent.events", "agent.pipeline")
# The rest of agent.vision mixes model loading (files) with image helpers; the helpers the pipeline
# imports are checked through it.
PURE_MODULES = ("agent.vision.types", "agent.vision.person_boxes", "agent.vision.tiling")

# Files, the network and MQTT, the event loop, processes and signals, logs, configuration files.
IO_MODULES = frozenset(
    {
        "aiomqtt",
        "asyncio",
        "glob",
        "http",
        "io",
        "logging",
        "multiprocessing",
        "os",
        "paho",
        "pathlib",
        "selectors",
        "shutil",
        "signal",
        "socket",
        "sqlite3",
        "ssl",
        "structlog",
        "subprocess",
        "sys",
        "tempfile",
        "tomllib",
        "urllib",
    }
)
IO_BUILTINS = frozenset({"open", "print", "input"})
# pathlib, OpenCV and NumPy calls that read or write files or devices.
IO_METHODS = frozenset(
    {
        "read_bytes",
        "read_text",
        "write_bytes",
        "write_text",
        "imread",
        "imwrite",
        "VideoCapture",
        "VideoWriter",
        "fromfile",
        "tofile",
    }
)
# The schema keeps utc_now() for the events the runtime makes itself (model_applied, ...): the
# contract's UTC timestamps in one place; the builder never calls it.
NO_CLOCK = ("agent.tracking", "agent.identity", "agent.events.builder", "agent.events.clock")
CLOCK_MODULES = frozenset({"time"})
CLOCK_METHODS = frozenset({"now", "utcnow", "today"})


@dataclass(frozen=True, slots=True)
class Import:
    module: str
    line: int
    type_only: bool


def _path_of(module: str) -> Path | None:
    base = REPO_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_of(module: str) -> str:
    path = _path_of(module)
    return module if path is not None and path.name == "__init__.py" else module.rpartition(".")[0]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _within(name: str, modules: Iterable[str]) -> bool:
    return any(name == m or name.startswith(m + ".") for m in modules)


def imports_in(tree: ast.Module, package: str) -> list[Import]:
    """Every import at any depth (function-level ones run too); `from a import b` also names a.b
    when that is a module; relative imports resolved against `package`."""
    found: list[Import] = []

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_only)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, node.lineno, type_only) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append(Import(base, node.lineno, type_only))
            found.extend(
                Import(f"{base}.{alias.name}", node.lineno, type_only)
                for alias in node.names
                if _path_of(f"{base}.{alias.name}") is not None
            )
        for child in ast.iter_child_nodes(node):
            visit(child, type_only)

    visit(tree, False)
    return found


def problems_in(tree: ast.Module, package: str, *, no_clock: bool) -> list[str]:
    """What a module's own code does that a pure module must not, each with its line."""
    problems: list[str] = []
    for imp in imports_in(tree, package):
        where = f"imports {imp.module} (line {imp.line})"
        if _within(imp.module, ["agent.runtime"]):
            problems.append(where)
        elif imp.type_only:
            continue
        elif _within(imp.module, IO_MODULES):
            problems.append(where)
        elif no_clock and _within(imp.module, CLOCK_MODULES):
            problems.append(f"{where}: reads the clock")
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in IO_BUILTINS:
            problems.append(f"calls {func.id}() (line {node.lineno})")
        elif isinstance(func, ast.Attribute) and func.attr in IO_METHODS:
            problems.append(f"calls .{func.attr}() (line {node.lineno})")
        elif no_clock and isinstance(func, ast.Attribute) and func.attr in CLOCK_METHODS:
            problems.append(f"calls .{func.attr}() (line {node.lineno}): reads the clock")
    return problems


@cache
def _tree(module: str) -> ast.Module:
    path = _path_of(module)
    assert path is not None, f"{module}: no such module under {REPO_ROOT}"
    return ast.parse(path.read_text(), filename=str(path))


@cache
def _imports(module: str) -> tuple[Import, ...]:
    return tuple(imports_in(_tree(module), _package_of(module)))


def _parents(module: str) -> list[str]:
    """Importing a.b.c runs a/__init__.py and a/b/__init__.py first."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def violations(root: str) -> list[str]:
    """Problems in `root` and in every agent module it imports when it runs, each with the chain."""
    no_clock = _within(root, NO_CLOCK)
    out = [f"{root} {p}" for p in problems_in(_tree(root), _package_of(root), no_clock=no_clock)]
    seen = {root}
    queue: deque[tuple[str, tuple[str, ...]]] = deque([(root, (root,))])
    while queue:
        module, chain = queue.popleft()
        runs = [i.module for i in _imports(module) if not i.type_only]
        for dep in [*_parents(module), *runs]:
            # An import of agent.runtime is already reported where it is made.
            if dep in seen or not _within(dep, ["agent"]) or _within(dep, ["agent.runtime"]):
                continue
            if _path_of(dep) is None:
                continue
            seen.add(dep)
            via = (*chain, dep)
            # Reached modules are held to the I/O rules; the clock rule is each package's own.
            out.extend(
                f"{root} imports {dep} (via {' -> '.join(via)}), which {p}"
                for p in problems_in(_tree(dep), _package_of(dep), no_clock=False)
            )
            queue.append((dep, via))
    return out


def _modules_of(package: str) -> list[str]:
    init = _path_of(package)
    assert init is not None and init.name == "__init__.py", f"pure package {package} is missing"
    names = []
    for path in sorted(init.parent.rglob("*.py")):
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def pure_modules() -> list[str]:
    return [m for package in PURE_PACKAGES for m in _modules_of(package)] + list(PURE_MODULES)


@pytest.mark.parametrize("module", pure_modules())
def test_pure_module_does_no_io_and_knows_no_runtime(module: str) -> None:
    problems = violations(module)
    assert not problems, "pure core modules do no I/O and import nothing from agent.runtime:\n" + "\n".join(
        problems
    )


def _defined(tree: ast.Module) -> set[str]:
    return {n.name for n in tree.body if isinstance(n, ast.ClassDef | ast.FunctionDef)}


def test_the_core_lives_in_the_pure_packages() -> None:
    """A core piece moved back into runtime/ would escape the check above."""
    core = {
        "agent.identity.voting": "IdentityResolver",
        "agent.identity.binding": "bind_faces",
        "agent.events.builder": "EventBuilder",
        "agent.events.clock": "SourceClock",
        "agent.pipeline.analyzer": "FrameAnalyzer",
        "agent.pipeline.stage": "TrackingStage",
        "agent.pipeline.frame": "SourceFrame",
    }
    runtime = {
        path.relative_to(REPO_ROOT): _defined(ast.parse(path.read_text()))
        for path in sorted((REPO_ROOT / "agent" / "runtime").glob("*.py"))
    }
    for module, name in core.items():
        assert _path_of(module) is not None, f"{module} is missing: {name} belongs there"
        assert name in _defined(_tree(module)), f"{module} should define {name}"
        for path, defined in runtime.items():
            assert name not in defined, f"{path} defines {name}, which belongs in {module}"


def test_the_disk_modules_would_be_refused_in_the_core() -> None:
    """The classifier's and the events' disk modules, once in the pure packages, are in runtime/:
    each still touches disk, so the check above fails if one moves back, and a pure module that
    imports one imports agent.runtime."""
    disk = {
        "agent.runtime.model_store": "ModelStore",
        "agent.runtime.key_files": "load_trusted_keys",
        "agent.runtime.schema_cli": "render_schema",
    }
    for module, name in disk.items():
        assert _path_of(module) is not None, f"{module} is missing: {name} belongs there"
        assert name in _defined(_tree(module)), f"{module} should define {name}"
        assert violations(module), f"{module} passes as pure: the checker no longer sees its file I/O"


def test_the_rules_name_the_module_and_the_import() -> None:
    """The checker itself, on a module that breaks each rule once."""
    source = (
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "import sqlite3\n"
        "from agent.runtime.identity import IdentityChange\n"
        "if TYPE_CHECKING:\n"
        "    from pathlib import Path\n"
        "    from agent.runtime.source import FrameSource\n"
        "def f() -> None:\n"
        "    import time\n"
        "    open('x')\n"
        "    Path('x').read_bytes()\n"
    )
    problems = problems_in(ast.parse(source), "agent.events", no_clock=True)
    assert problems == [
        "imports sqlite3 (line 3)",
        "imports agent.runtime.identity (line 4)",
        "imports agent.runtime.source (line 7)",
        "imports time (line 9): reads the clock",
        "calls open() (line 10)",
        "calls .read_bytes() (line 11)",
    ]


def _runtime_imports(root: str) -> list[str]:
    """Every `agent.runtime` import that running `root` reaches, with the chain that reaches it."""
    found: list[str] = []
    seen = {root}
    queue: deque[tuple[str, tuple[str, ...]]] = deque([(root, (root,))])
    while queue:
        module, chain = queue.popleft()
        for imp in _imports(module):
            if imp.type_only or not _within(imp.module, ["agent"]):
                continue
            if _within(imp.module, ["agent.runtime"]):
                found.append(f"{' -> '.join(chain)} imports {imp.module} (line {imp.line})")
            elif imp.module not in seen and _path_of(imp.module) is not None:
                seen.add(imp.module)
                queue.append((imp.module, (*chain, imp.module)))
    return found


@pytest.mark.parametrize("module", ["agent.config"])
def test_settings_know_no_runtime(module: str) -> None:
    """Validating a setting needs nothing from the runtime: the runtime reads the settings, never
    the other way (the topic-part rule the config checks lives in agent.events.topic_rules)."""
    assert not _runtime_imports(module), "\n".join(_runtime_imports(module))
