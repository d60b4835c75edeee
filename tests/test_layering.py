"""The architecture of docs/architecture.md, enforced: one direction of imports, no cycles, no hidden imports.

An AST walk over the project's packages builds the import graph (no module is executed) and checks:

1. no import cycle among the project's modules;
2. each module imports only the layers below it (``LAYERS``): the stages ``model/``, ``kernels/`` and
   ``sim/`` never import the application (``bitsim.experiments``, ``bitsim.report``, ``bitsim.cli``), and
   ``contract`` imports nothing else of the project;
3. every import of a project module sits at module top (not inside a function or class), except the
   short ``ALLOWED_LATE`` list, each entry with its reason.

The checker is tested on a planted cycle and a planted upward import, so it can fail.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("contract", "bitsim", "model", "kernels", "sim")

# Layer -> the layers it may import (itself included). The longest matching prefix names the layer.
LAYERS: dict[str, tuple[str, ...]] = {
    "contract": ("contract",),
    "model": ("model", "contract"),
    "kernels": ("kernels", "model", "contract"),
    "sim": ("sim", "contract"),
    "bitsim.experiments": ("bitsim.experiments", "model", "sim", "contract"),
    "bitsim.report": ("bitsim.report", "bitsim.experiments", "model", "sim", "contract", "bitsim"),
    "bitsim.cli": ("bitsim", "model", "kernels", "sim", "contract"),
    "bitsim": ("bitsim",),  # the package root holds only __version__
}

# (importing module, imported module) -> why it may be imported inside a function.
ALLOWED_LATE: dict[tuple[str, str], str] = {}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(name: str, modules: set[str]) -> str | None:
    """The project module an import of ``name`` loads (``a.b.func`` -> ``a.b``), or None if external."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(root: Path, packages: tuple[str, ...]) -> tuple[set[str], list[tuple[str, str, int, bool]]]:
    """Modules under ``root``'s ``packages`` and their imports: (importer, imported, line, at_module_top)."""
    files = {module_name(p, root): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}
    modules = set(files)
    edges: list[tuple[str, str, int, bool]] = []
    for mod, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_pkg = path.name == "__init__.py"
        top_level = {id(n) for n in tree.body}
        for stmt in tree.body:  # imports under a module-level `if`/`try` count as top too
            if isinstance(stmt, (ast.If, ast.Try)):
                top_level |= {id(n) for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - node.level + 1]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                targets = [f"{prefix}.{a.name}" for a in node.names]
            for t in targets:
                hit = _resolve(t, modules)
                if hit and hit != mod:
                    edges.append((mod, hit, node.lineno, id(node) in top_level))
    return modules, edges


def find_cycle(modules: set[str], edges: list[tuple[str, str, int, bool]]) -> list[str] | None:
    """One import cycle as a list of modules, or None."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for a, b, _, _ in edges:
        graph[a].add(b)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(modules):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def layer_of(mod: str) -> str:
    return max((k for k in LAYERS if mod == k or mod.startswith(k + ".")), key=len)


def layer_violations(edges: list[tuple[str, str, int, bool]]) -> list[str]:
    bad = []
    for a, b, line, _ in edges:
        allowed = LAYERS[layer_of(a)]
        if not any(b == x or b.startswith(x + ".") for x in allowed):
            bad.append(f"{a}:{line} imports {b} (layer {layer_of(a)} may import {allowed})")
    return bad


def late_imports(edges: list[tuple[str, str, int, bool]]) -> list[str]:
    return [f"{a}:{line} imports {b} inside a function" for a, b, line, top in edges
            if not top and (a, b) not in ALLOWED_LATE]


@pytest.fixture(scope="module")
def graph():
    return import_graph(ROOT, PACKAGES)


def test_project_has_no_import_cycle(graph):
    assert find_cycle(*graph) is None


def test_every_import_goes_down_the_layers(graph):
    assert layer_violations(graph[1]) == []


def test_project_imports_are_at_module_top(graph):
    assert late_imports(graph[1]) == []


def test_table_contract_is_a_leaf(graph):
    _, edges = graph
    assert [e for e in edges if e[0].startswith("contract") and not e[1].startswith("contract")] == []


def test_every_allow_listed_late_import_exists_and_says_why(graph):
    _, edges = graph
    present = {(a, b) for a, b, _, top in edges if not top}
    for key, why in ALLOWED_LATE.items():
        assert key in present, f"stale allow-list entry {key}"
        assert len(why) > 20, f"allow-list entry {key} needs a reason"


def _plant(tmp_path: Path, files: dict[str, str]) -> tuple[set[str], list]:
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return import_graph(tmp_path, ("sim", "bitsim"))


def test_checker_finds_a_planted_cycle(tmp_path):
    modules, edges = _plant(tmp_path, {
        "sim/__init__.py": "", "sim/a.py": "from sim.b import f\n", "sim/b.py": "from sim import a\n",
        "bitsim/__init__.py": ""})
    assert find_cycle(modules, edges) in (["sim.a", "sim.b", "sim.a"], ["sim.b", "sim.a", "sim.b"])


def test_checker_finds_a_relative_import_cycle(tmp_path):
    modules, edges = _plant(tmp_path, {
        "sim/__init__.py": "", "sim/x/__init__.py": "from .y import g\n", "sim/x/y.py": "from . import z\n",
        "sim/x/z.py": "import sim.x\n", "bitsim/__init__.py": ""})
    assert find_cycle(modules, edges) is not None


def test_checker_finds_an_upward_and_a_late_import(tmp_path):
    _, edges = _plant(tmp_path, {
        "sim/__init__.py": "", "bitsim/__init__.py": "", "bitsim/report/__init__.py": "",
        "sim/engine.py": "def f():\n    from bitsim.report import build\n",
        "bitsim/report/build.py": "x = 1\n"})
    assert any("sim.engine:2 imports bitsim.report.build" in v for v in layer_violations(edges))
    assert late_imports(edges) == ["sim.engine:2 imports bitsim.report.build inside a function"]


def layer_graph(edges: list[tuple[str, str, int, bool]]) -> dict[str, set[str]]:
    """Which layer imports which (self-imports left out), as the code has it today."""
    out: dict[str, set[str]] = {k: set() for k in LAYERS}
    for a, b, _, _ in edges:
        la, lb = layer_of(a), layer_of(b)
        if la != lb:
            out[la].add(lb)
    return out


def layer_graph_markdown(edges: list[tuple[str, str, int, bool]]) -> str:
    """The block of docs/architecture.md between the GRAPH markers, generated from the code."""
    g = layer_graph(edges)
    rows = ["| layer | imports (measured from the code) | may import (tests/test_layering.py) |", "|---|---|---|"]
    for layer in LAYERS:
        may = [x for x in LAYERS[layer] if x != layer]
        rows.append(f"| `{layer}` | {', '.join(f'`{x}`' for x in sorted(g[layer])) or '(nothing)'} | "
                    f"{', '.join(f'`{x}`' for x in may) or '(nothing)'} |")
    return "\n".join(rows)


BEGIN, END = "<!-- import graph: begin (generated by `python tests/test_layering.py`) -->", "<!-- import graph: end -->"


def test_architecture_doc_shows_the_real_import_graph(graph):
    text = (ROOT / "docs" / "architecture.md").read_text()
    assert BEGIN in text and END in text, "docs/architecture.md lacks the generated import-graph block"
    block = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert block == layer_graph_markdown(graph[1]).strip(), \
        "docs/architecture.md's import graph is stale: run `python tests/test_layering.py`"


if __name__ == "__main__":  # rewrite the generated block of docs/architecture.md
    doc = ROOT / "docs" / "architecture.md"
    text = doc.read_text()
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    doc.write_text(f"{head}{BEGIN}\n{layer_graph_markdown(import_graph(ROOT, PACKAGES)[1])}\n{END}{tail}")
    print(f"wrote {doc}")
