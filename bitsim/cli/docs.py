"""``bitsim docs``: write the generated documents from the code, so they cannot drift from it.

* ``tables``: ``docs/tables.md``, every registered table (the contract's and the application's);
* ``limits``: ``docs/limits.md``, every bound the tool puts on its inputs (``contract.limits``);
* ``graph``: the layer table of ``docs/architecture.md`` (:mod:`bitsim.cli.layering`).

``--check`` writes nothing and exits 1 when the file on disk differs from what would be written.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import bitsim.experiments  # noqa: F401  registers the experiment tables
import bitsim.report  # noqa: F401  registers the report tables
from bitsim.cli.layering import PACKAGES, PROJECT_ROOT, import_graph, module_name, with_graph
from contract.io import reference_markdown, write_text_atomic
from contract.limits import limits_markdown

DOCS = PROJECT_ROOT / "docs"
DEFAULT_FILES = {"tables": DOCS / "tables.md", "limits": DOCS / "limits.md", "graph": DOCS / "architecture.md"}


def import_every_module(root: Path = PROJECT_ROOT, packages: tuple[str, ...] = PACKAGES) -> None:
    """Import every module of the project, so every limit a module registers at import is registered."""
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            name = module_name(path, root)
            if name.endswith("__main__"):
                continue
            importlib.import_module(name)


def tables_text(path: Path) -> str:
    return reference_markdown().rstrip() + "\n"


#: What every bad input gets, in words; the numbers are the generated tables below it.
LIMITS_PREAMBLE = """\
Every public entry point checks its inputs **before any work and before any output is touched**. An
expected failure is a `ValueError` (a missing file: `FileNotFoundError`) whose message names the file,
field or row and quotes at most ~200 characters of the bad value; the `bitsim` command turns it into
**one line on stderr and exit code 2**. Anything else is a bug and keeps its traceback.

- **Files read** are regular files within the size bound of their kind (a device, FIFO, socket or
  symlink loop is refused before reading) and are read with that bound even if they grow; JSON is
  refused past its nesting bound; YAML with duplicate keys, non-standard tags or alias bombs is refused.
- **Files written** go to a temporary sibling that is renamed into place: a killed or failed command
  leaves the old file as it was. An existing output (a file, or a symlink, dangling or not) is replaced
  only with `--force`, and a symlink is replaced itself, never written through. A folder is replaced
  only when it carries the marker this tool writes into its own output folders (`bitsim report`).
- **Resumable results** (sweep parts, benchmark and serving caches) carry a checksum of their content;
  a part that fails it is recomputed, never returned.
- **Launchers** of the GPU kernels refuse shapes, dtypes, scales and codes their arithmetic does not
  support, and mask every index in the kernel, so no input reads out of bounds even with content checks
  off (`docs/kernels.md`); the simulator's own range checks on accelerator fields are in
  `docs/simulator.md`.
"""


def limits_text(path: Path) -> str:
    import_every_module()
    return limits_markdown(LIMITS_PREAMBLE).rstrip() + "\n"


def graph_text(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"no such document: {path}")
    return with_graph(path.read_text(), import_graph()[1])


GENERATORS = {"tables": tables_text, "limits": limits_text, "graph": graph_text}


def run_docs(args: argparse.Namespace) -> int:
    path = Path(args.output) if args.output else DEFAULT_FILES[args.document]
    text = GENERATORS[args.document](path)
    current = path.read_text() if path.is_file() else None
    if args.check:
        if current != text:
            print(f"{path} is stale: run `bitsim docs {args.document}`", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    if current == text:
        print(f"{path}: unchanged")
        return 0
    write_text_atomic(text, path)
    print(f"wrote {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "docs", help="regenerate the generated documents (tables, limits, import graph)",
        description="Write a generated document from the code: tables -> docs/tables.md, limits -> "
                    "docs/limits.md, graph -> the import-graph table of docs/architecture.md.")
    p.add_argument("document", choices=tuple(GENERATORS), help="which document")
    p.add_argument("-o", "--output", help="write here instead of the document under docs/")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if the document is stale")
    p.set_defaults(func=run_docs)
