"""The architecture's import rules, and the checker that reads them off the code (nothing is imported).

An AST walk over the project's packages builds the import graph: (importer, imported, line, at module
top).  ``tests/test_layering.py`` asserts on it (no cycle, every import down the layers, every project
import at module top, dynamic imports only where :data:`DYNAMIC_IMPORTERS` says) and ``bitsim docs
graph`` writes the layer table of ``docs/architecture.md`` from it.
"""
from __future__ import annotations

import ast
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("contract", "bitsim", "model", "kernels", "sim")

#: Layer -> the layers it may import (itself included). The longest matching prefix names the layer.
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

#: (importing module, imported module) -> why it may be imported inside a function.
ALLOWED_LATE: dict[tuple[str, str], str] = {}

#: Modules that may import by name at run time (``importlib.import_module``) -> why.  The names such a
#: module imports must sit in a table the layering test reads (``bitsim.cli.SUBCOMMANDS``).
DYNAMIC_IMPORTERS: dict[str, str] = {
    "bitsim.cli": "imports only the chosen subcommand's module, so `bitsim --help` loads no heavy package",
    "bitsim.cli.docs": "`bitsim docs limits` imports every module so each registers its limits",
}

Edge = tuple[str, str, int, bool]


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


def _module_files(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    return {module_name(p, root): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}


def _top_level_ids(tree: ast.Module) -> set[int]:
    """Nodes at module top; imports under a module-level ``if`` / ``try`` count as top too."""
    top = {id(n) for n in tree.body}
    for stmt in tree.body:
        if isinstance(stmt, (ast.If, ast.Try)):
            top |= {id(n) for n in ast.walk(stmt)}
    return top


def _targets(node: ast.AST, mod: str, is_pkg: bool) -> list[str]:
    """The dotted names an import statement loads (relative imports made absolute)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = mod.split(".") if is_pkg else mod.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [f"{prefix}.{a.name}" for a in node.names]


def import_graph(root: Path = PROJECT_ROOT, packages: tuple[str, ...] = PACKAGES) -> tuple[set[str], list[Edge]]:
    """Modules under ``root``'s ``packages`` and their imports: (importer, imported, line, at_module_top)."""
    files = _module_files(root, packages)
    modules = set(files)
    edges: list[Edge] = []
    for mod, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        top = _top_level_ids(tree)
        for node in ast.walk(tree):
            for t in _targets(node, mod, path.name == "__init__.py"):
                hit = _resolve(t, modules)
                if hit and hit != mod:
                    edges.append((mod, hit, node.lineno, id(node) in top))
    return modules, edges


def dynamic_imports(root: Path = PROJECT_ROOT, packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """``module:line`` of every run-time import by name (``importlib.import_module``, ``__import__``)."""
    found = []
    for mod, path in _module_files(root, packages).items():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
                if name in ("import_module", "__import__"):
                    found.append(f"{mod}:{node.lineno}")
    return found


def find_cycle(modules: set[str], edges: list[Edge]) -> list[str] | None:
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


def may_import(importer: str, imported: str) -> bool:
    """Whether the layer of ``importer`` may import ``imported``."""
    return any(imported == x or imported.startswith(x + ".") for x in LAYERS[layer_of(importer)])


def layer_violations(edges: list[Edge]) -> list[str]:
    return [f"{a}:{line} imports {b} (layer {layer_of(a)} may import {LAYERS[layer_of(a)]})"
            for a, b, line, _ in edges if not may_import(a, b)]


def late_imports(edges: list[Edge]) -> list[str]:
    return [f"{a}:{line} imports {b} inside a function" for a, b, line, top in edges
            if not top and (a, b) not in ALLOWED_LATE]


def layer_graph(edges: list[Edge]) -> dict[str, set[str]]:
    """Which layer imports which (self-imports left out), as the code has it today."""
    out: dict[str, set[str]] = {k: set() for k in LAYERS}
    for a, b, _, _ in edges:
        la, lb = layer_of(a), layer_of(b)
        if la != lb:
            out[la].add(lb)
    return out


def layer_graph_markdown(edges: list[Edge]) -> str:
    """The block of docs/architecture.md between the graph markers, generated from the code."""
    g = layer_graph(edges)
    rows = ["| layer | imports (measured from the code) | may import (the rule) |", "|---|---|---|"]
    for layer in LAYERS:
        may = [x for x in LAYERS[layer] if x != layer]
        rows.append(f"| `{layer}` | {', '.join(f'`{x}`' for x in sorted(g[layer])) or '(nothing)'} | "
                    f"{', '.join(f'`{x}`' for x in may) or '(nothing)'} |")
    return "\n".join(rows)


BEGIN = "<!-- import graph: begin (generated by `bitsim docs graph`) -->"
END = "<!-- import graph: end -->"


def graph_block(text: str) -> str:
    """The generated block of an architecture document (ValueError when its markers are missing)."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"the document lacks the generated import-graph markers {BEGIN!r} ... {END!r}")
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def with_graph(text: str, edges: list[Edge]) -> str:
    """``text`` with its generated block replaced by the graph of ``edges``."""
    graph_block(text)
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    return f"{head}{BEGIN}\n{layer_graph_markdown(edges)}\n{END}{tail}"
