"""The architecture of docs/architecture.md, enforced: one direction of imports, no cycles, no hidden imports.

The rules and the checker live in ``bitsim.cli.layering`` (an AST walk, nothing imported); this file
asserts on them:

1. no import cycle among the project's modules;
2. each module imports only the layers below it (``LAYERS``): the stages ``model/``, ``kernels/`` and
   ``sim/`` never import the application, and ``contract`` imports nothing else of the project;
3. every import of a project module sits at module top, except the ``ALLOWED_LATE`` list;
4. a run-time import by name only where ``DYNAMIC_IMPORTERS`` says: ``bitsim.cli`` imports the chosen
   subcommand's module, and every module of its table ``SUBCOMMANDS`` obeys rule 2.

Importing the stages in a fresh interpreter loads no ``bitsim`` module, and ``bitsim --help`` loads no
heavy package. Both checks, and the checker, are shown to fail on a planted upward import.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bitsim.cli import SUBCOMMANDS, build_parser
from bitsim.cli.layering import (
    ALLOWED_LATE,
    BEGIN,
    DYNAMIC_IMPORTERS,
    PACKAGES,
    dynamic_imports,
    find_cycle,
    graph_block,
    import_graph,
    late_imports,
    layer_graph_markdown,
    layer_violations,
    may_import,
    with_graph,
)

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("contract", "model", "kernels", "sim")


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


def test_only_the_named_modules_import_by_name():
    where = {site.rpartition(":")[0] for site in dynamic_imports(ROOT, PACKAGES)}
    assert where <= set(DYNAMIC_IMPORTERS), where - set(DYNAMIC_IMPORTERS)
    assert all(len(why) > 20 for why in DYNAMIC_IMPORTERS.values())


def test_every_subcommand_module_is_one_the_cli_may_import():
    assert [e.module for e in SUBCOMMANDS.values() if not may_import("bitsim.cli", e.module)] == []


def _registered_names(module: str) -> set[str]:
    sub = argparse.ArgumentParser().add_subparsers()
    importlib.import_module(module).register(sub)
    return set(sub.choices)


def test_the_subcommand_table_matches_what_each_module_registers():
    modules = {e.module for e in SUBCOMMANDS.values()}
    assert [m for m in sorted(modules) if importlib.util.find_spec(m) is None] == []
    for module in sorted(modules):
        named = {n for n, e in SUBCOMMANDS.items() if e.module == module}
        assert _registered_names(module) == named, module


def _python(code: str, path: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(TRITON_INTERPRET="1", PYTHONDONTWRITEBYTECODE="1")
    if path is not None:
        env["PYTHONPATH"] = str(path)
    return subprocess.run([sys.executable, "-c", code], cwd=path or ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def loaded_bitsim_modules(packages: tuple[str, ...], path: Path | None = None) -> list[str]:
    """The ``bitsim`` modules a fresh interpreter holds after importing ``packages`` (from ``path``)."""
    code = (f"import sys\nfor p in {list(packages)!r}:\n    __import__(p)\n"
            "print(sorted(m for m in sys.modules if m == 'bitsim' or m.startswith('bitsim.')))")
    done = _python(code, path)
    assert done.returncode == 0, done.stderr[-2000:]
    return eval(done.stdout.strip().splitlines()[-1])


def test_importing_the_stages_loads_no_application_module():
    assert loaded_bitsim_modules(STAGES) == []


def test_a_planted_upward_import_fails_both_checks(tmp_path):
    for pkg in ("contract", "sim"):
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "bitsim").mkdir()
    (tmp_path / "bitsim" / "__init__.py").write_text("")
    (tmp_path / "bitsim" / "report.py").write_text("x = 1\n")
    engine = tmp_path / "sim" / "simulate.py"
    text = engine.read_text()
    engine.write_text(text + "\nfrom bitsim.report import x  # noqa: E402  planted\n")
    line = text.count("\n") + 2
    assert loaded_bitsim_modules(("contract", "sim"), tmp_path) == ["bitsim", "bitsim.report"]
    _, edges = import_graph(tmp_path, ("contract", "sim", "bitsim"))
    assert [v.split(" (")[0] for v in layer_violations(edges)] == [f"sim.simulate:{line} imports bitsim.report"]


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


def test_checker_finds_a_planted_import_by_name(tmp_path):
    _plant(tmp_path, {"sim/__init__.py": "", "bitsim/__init__.py": "",
                      "sim/hidden.py": "import importlib\n\nm = importlib.import_module('bitsim')\n"})
    assert dynamic_imports(tmp_path, ("sim", "bitsim")) == ["sim.hidden:3"]


def test_help_and_version_load_no_heavy_package_and_are_quick():
    code = ("import sys, time\nt = time.perf_counter()\nfrom bitsim.cli import build_parser\n"
            "build_parser().format_help()\n"
            "print(sorted({'torch', 'triton', 'pandas', 'numpy', 'pyarrow', 'matplotlib', 'model', 'sim'}"
            " & set(sys.modules)))")
    done = _python(code)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bitsim.cli", "--version"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.strip().startswith("bitsim ") and time.perf_counter() - t0 < 1.5


def test_help_lists_every_subcommand_in_table_order():
    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert list(sub.choices) == list(SUBCOMMANDS)
    text = parser.format_help()
    assert all(f"\n    {name}" in text for name in SUBCOMMANDS)


def test_architecture_doc_shows_the_real_import_graph(graph):
    text = (ROOT / "docs" / "architecture.md").read_text()
    assert BEGIN in text, "docs/architecture.md lacks the generated import-graph block"
    assert graph_block(text) == layer_graph_markdown(graph[1]).strip(), \
        "docs/architecture.md's import graph is stale: run `bitsim docs graph`"


def test_the_graph_generator_rewrites_only_its_block(graph):
    text = f"intro\n{BEGIN}\nold\n<!-- import graph: end -->\noutro\n"
    new = with_graph(text, graph[1])
    assert new.startswith(f"intro\n{BEGIN}\n| layer |") and new.endswith("<!-- import graph: end -->\noutro\n")
    with pytest.raises(ValueError, match="markers"):
        with_graph("no markers", graph[1])


def test_the_interpreter_set_up_lives_only_in_conftest():
    here = Path(__file__).resolve().parent
    needle = "setdefault(" + '"TRITON_INTERPRET"'
    setters = [p.name for p in sorted(here.glob("*.py")) if p.name != "conftest.py" and needle in p.read_text()]
    assert setters == []
