"""The simulated upstream's boundaries, read from the source: no import cycle inside it, nothing
from the product but the wire formats (``thrifty.wire``) and token counts in ``thrifty.core``, and none of the
product's faces loading it (only ``serve --demo`` and ``thrifty simulate`` do, lazily)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import thrifty.simulator

PACKAGE = "thrifty.simulator"
SOURCE = Path(thrifty.simulator.__file__).parent

ALLOWED = (
    "thrifty.wire.anthropic_messages",
    "thrifty.core.documents",
    "thrifty.core.messages",
    "thrifty.wire.openai_chat",
    "thrifty.core.tokens",
)
"""What a stand-in for the providers may take from the product: the parsers of both wire formats,
the request model they parse into, the token counter, and the reader of YAML/JSON files (for
``thrifty simulate --config``). A module here allows its submodules."""


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        parts = path.relative_to(SOURCE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join((PACKAGE, *parts))] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """Every module ``name`` imports, anywhere in it (``TYPE_CHECKING`` blocks and functions too):
    ``from a import b`` is ``a.b`` when that is one of ``modules``, else ``a``."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:
                child = f"{base}.{alias.name}"
                yield (child if child in modules else base), node.lineno


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {target for target, _ in _imports(name, path, modules) if target in modules and target != name}
        for name, path in modules.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read() -> None:
    graph = _graph()
    assert len(graph) > 10
    assert f"{PACKAGE}.common" in graph[f"{PACKAGE}.openai_chat"]
    assert f"{PACKAGE}.state" in graph[f"{PACKAGE}.batches"]  # a TYPE_CHECKING import counts
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_inside_the_simulator() -> None:
    assert _cycles(_graph()) == []


def test_the_simulator_takes_only_wire_formats_from_the_product() -> None:
    modules = _modules()
    outside: list[str] = []
    for name, path in modules.items():
        for target, line in _imports(name, path, modules):
            if target.split(".")[0] != "thrifty" or target == PACKAGE or target.startswith(f"{PACKAGE}."):
                continue
            if not any(target == allowed or target.startswith(f"{allowed}.") for allowed in ALLOWED):
                outside.append(f"{path.name}:{line}: {target}")
    assert outside == []


def _loaded_after(code: str) -> list[str]:
    script = f"{code}\nimport sys\nprint('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] == 'thrifty')))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.split()


BENEATH_CORE = ("thrifty", "thrifty.errors")
"""What ``thrifty.core`` itself stands on: the package and the one exception hierarchy."""


def test_the_simulator_loads_nothing_of_the_product_beyond_core_and_the_wire_formats() -> None:
    loaded = _loaded_after("import thrifty.simulator")
    assert PACKAGE in loaded
    beyond = [m for m in loaded if m not in BENEATH_CORE and m.split(".")[1] not in ("core", "wire", "simulator")]
    assert beyond == []


def test_the_products_faces_do_not_load_the_simulator() -> None:
    faces = (
        "import thrifty.gateway.app, thrifty.gateway.runtime, thrifty.client, thrifty.cli.main, thrifty.pipeline.build"
    )
    every_pipeline_module = (
        "import importlib, pkgutil, thrifty.pipeline\n"
        "for info in pkgutil.walk_packages(thrifty.pipeline.__path__, 'thrifty.pipeline.'):\n"
        "    importlib.import_module(info.name)"
    )
    loaded = _loaded_after(f"{faces}\n{every_pipeline_module}")
    assert "thrifty.gateway.app" in loaded
    assert [m for m in loaded if m == PACKAGE or m.startswith(f"{PACKAGE}.")] == []
