"""Read, write and check the tables of the contract (``contract.schemas``).

Table-wide metadata (preset, datapath, versions, ...) travels in the Parquet schema metadata
under the key ``bitsim`` (JSON), and in CSV files as leading ``# key: value`` comment lines.
Writes are atomic: a table is written to a temporary sibling and renamed into place.
This module imports nothing of the project but the contract.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from contract.limits import limit
from contract.schemas import DESCRIPTIONS, SCHEMA_VERSION, SCHEMAS


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write; renamed onto ``path`` only if the block succeeds.

    A reader sees the old file or the whole new one, never a part; a failure leaves no temporary behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json_atomic(doc: object, path: str | Path, indent: int | None = None) -> Path:
    """``json.dumps(doc)`` written atomically (see :func:`atomic_path`)."""
    return write_text_atomic(json.dumps(doc, indent=indent), path)


_KIND_CHECK = {
    "int": pd.api.types.is_integer_dtype,
    "float": pd.api.types.is_numeric_dtype,
    "bool": pd.api.types.is_bool_dtype,
    "str": lambda s: pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s),
}


def files_digest(paths: Iterable[str | Path], prefix: str = "") -> str:
    """SHA-256 of ``prefix`` followed by the bytes of each file in the given order: the one way a cache key
    covers the code or data its entries were computed with."""
    h = hashlib.sha256(prefix.encode())
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()


def validate(df: pd.DataFrame, schema: str) -> pd.DataFrame:
    """Check that ``df`` has every column of ``schema`` with the right kind.

    Extra columns are allowed (stages may add detail); missing or mistyped
    columns raise ``ValueError`` naming them.  Returns ``df`` for chaining.
    """
    if schema not in SCHEMAS:
        raise ValueError(f"unknown schema {schema!r}; known: {sorted(SCHEMAS)}")
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c.name for c in SCHEMAS[schema] if c.name not in df.columns]
    if missing:
        raise ValueError(f"{schema} table is missing columns: {missing}")
    bad = [f"{c.name} (want {c.kind}, got {df[c.name].dtype})"
           for c in SCHEMAS[schema] if len(df) and not _KIND_CHECK[c.kind](df[c.name])]
    if bad:
        raise ValueError(f"{schema} table has columns of the wrong type: {bad}")
    return df


def write_table(df: pd.DataFrame, path: str | Path, schema: str,
                meta: Mapping[str, Any] | None = None) -> Path:
    """Validate and write a table as Parquet (``.parquet``) or CSV (``.csv``).

    ``meta`` (defaults to ``df.attrs``) is stored with the table: in the
    Parquet footer, or as ``# key: value`` lines at the top of a CSV.
    """
    validate(df, schema)
    path = Path(path)
    meta = dict(df.attrs if meta is None else meta)
    meta.setdefault("schema", schema)
    meta.setdefault("schema_version", SCHEMA_VERSION)
    if path.suffix not in (".parquet", ".csv"):
        raise ValueError(f"output must end in .parquet or .csv, got {path.name!r}")
    clean = df.copy()
    clean.attrs = {}
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            table = pa.Table.from_pandas(clean, preserve_index=False)
            md = dict(table.schema.metadata or {})
            md[b"bitsim"] = json.dumps(meta, default=str).encode()
            pq.write_table(table.replace_schema_metadata(md), tmp)
        else:
            with open(tmp, "w", newline="") as f:
                for k, v in meta.items():
                    f.write(f"# {k}: {json.dumps(v, default=str)}\n")
                clean.to_csv(f, index=False)
    return path


MAX_TABLE_BYTES = limit("table file size", 1 << 30, unit="bytes", area="tables and files",
                        applies_to="every table read (traces, measured traces, results)",
                        why="the largest table of the tool, a 70B prefill trace, is a few MB")


def read_table(path: str | Path, schema: str | None = None) -> pd.DataFrame:
    """Read a table written by :func:`write_table`; metadata lands in ``df.attrs``."""
    path = check_input_file(path, what="table", expected="a .parquet or .csv table", max_bytes=MAX_TABLE_BYTES,
                            why="the largest table of this tool (a 70B prefill trace) is a few MB")
    meta: dict[str, Any] = {}
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        raw = (table.schema.metadata or {}).get(b"bitsim")
        meta = parse_json(raw, where=f"table {path} metadata") if raw else {}
        df = table.to_pandas()
    elif path.suffix == ".csv":
        with open(path) as f:
            for line in f:
                if not line.startswith("# "):
                    break
                key, _, val = line[2:].partition(": ")
                meta[key] = parse_json(val, where=f"table {path} metadata {key!r}")
        # Read string columns as strings (a version "13.0" must not become a float).
        known = SCHEMAS.get(schema or meta.get("schema", ""), ())
        dtypes = {c.name: str for c in known if c.kind == "str"}
        df = pd.read_csv(path, comment="#", dtype=dtypes, keep_default_na=False,
                         na_values={c.name: [""] for c in known if c.kind != "str"})
    else:
        raise ValueError(f"table must end in .parquet or .csv, got {path.name!r}")
    df.attrs = meta
    if schema is not None:
        validate(df, schema)
    return df



def describe(schema: str) -> str:
    """Markdown table documenting one registered schema (used by ``docs/tables.md`` and --help)."""
    if schema not in SCHEMAS:
        raise ValueError(f"unknown schema {schema!r}; known: {sorted(SCHEMAS)}")
    rows = ["| column | type | unit | meaning |", "|---|---|---|---|"]
    cell = lambda t: str(t).replace("|", "\\|")  # noqa: E731 - a literal pipe would end the cell
    rows += [f"| {cell(c.name)} | {c.kind} | {cell(c.unit)} | {cell(c.doc)} |" for c in SCHEMAS[schema]]
    return "\n".join(rows)


def reference_markdown() -> str:
    """The whole table reference (``docs/tables.md``): every registered table, generated, never hand-edited."""
    out = ["# Table reference", "",
           "Generated by `bitsim docs tables` from the registry: the contract in `contract/` (the tables that",
           "cross stages) and the tables the application registers (`bitsim/experiments/tables.py`,",
           "`bitsim/report/tables.py`). `tests/test_schema.py` fails when this file and the registry disagree.",
           "`validate(df, name)` checks a frame against its entry (extra columns are allowed, missing or",
           "mistyped ones are errors).", ""]
    for name in sorted(SCHEMAS):
        out += [f"## `{name}`", "", DESCRIPTIONS.get(name, ""), "", describe(name), ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------- input and output safety
def check_input_file(path: str | Path, *, what: str, expected: str, max_bytes: int, why: str) -> Path:
    """An input file that exists, is a regular file and is at most ``max_bytes`` (checked before reading).

    A missing file (or a symlink loop) is ``FileNotFoundError("no such <what>: ...")``; a folder, a
    device, a FIFO or a socket (``/dev/zero`` reports size 0 and never ends; a FIFO blocks the reader)
    or an oversized file is a ``ValueError`` naming the file, what was expected (``expected``) and why
    the bound holds (``why``). Read such a file with :func:`read_bounded` so a file that grows after
    this check is still cut off.
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"no such {what}: {path}") from None
    except (RuntimeError, OSError) as e:       # ELOOP: a symlink to itself
        if isinstance(e, OSError) and e.errno not in (errno.ELOOP, errno.ENAMETOOLONG):
            raise
        raise FileNotFoundError(f"no such {what}: {path} (a symlink loop)") from None
    if stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{what} {path} is a folder, expected {expected}")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{what} {path} is not a regular file (a device, FIFO or socket), expected {expected}")
    if st.st_size > max_bytes:
        raise ValueError(f"{what} {path}: {st.st_size:,} bytes is larger than {max_bytes:,}; {why}")
    return path


def read_bounded(path: str | Path, *, what: str, expected: str, max_bytes: int, why: str) -> bytes:
    """The bytes of a checked input file (:func:`check_input_file`), never more than ``max_bytes``."""
    path = check_input_file(path, what=what, expected=expected, max_bytes=max_bytes, why=why)
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{what} {path}: larger than {max_bytes:,} bytes; {why}")
    return data


MAX_JSON_DEPTH = limit("JSON nesting", 64, unit="levels", area="tables and files",
                       applies_to="sweep parts and specs, result files, table metadata",
                       why="our documents nest under 10 levels; a deeper one would fail in Python's "
                           "recursive decoder")


def parse_json(text: str | bytes, where: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads(text)`` with nesting bounded by ``max_depth``; any failure is a ``ValueError`` naming ``where``."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{where}: not UTF-8 text") from None
    depth = 0
    in_string = escaped = False
    for ch in text:          # brackets inside strings do not nest
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > max_depth:
                raise ValueError(f"{where}: JSON nested deeper than {max_depth} levels; refused")
        elif ch in "]}":
            depth -= 1
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"{where}: invalid JSON: {str(e)[:200]}") from None


MAX_JSON_BYTES = limit("JSON file size", 16 << 20, unit="bytes", area="tables and files",
                       applies_to="sweep specs and parts, benchmark logs, tuned configs",
                       why="the largest JSON file of the tool (a benchmark log) is under 1 MB")


def read_json(path: str | Path, *, what: str, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """A JSON file of ours (results, specs, logs), bounded in size and nesting; errors name the file."""
    data = read_bounded(path, what=what, expected="a JSON file", max_bytes=max_bytes,
                        why="a JSON file of this tool is a few MB at most")
    return parse_json(data, where=f"{what} {path}")


# ---------------------------------------------------------------------------- output safety
def resolved_path(path: Path) -> Path:
    """``path.resolve()``, with a symlink loop reported as a clear error (Python raises RuntimeError)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        raise ValueError(f"{path}: a symlink loop") from None


def check_output(path: str | Path, inputs: Iterable[str | Path] = (), force: bool = False) -> Path:
    """Refuse an output file that is one of the inputs, or that exists and ``force`` is not given.

    Every command calls this before any work, so a mistyped ``-o`` never replaces a user's file.
    """
    out = Path(path)
    for i in inputs:
        if i is not None and Path(i).exists() and out.exists() and os.path.samefile(out, i):
            raise ValueError(f"output {out} is also an input; write to another file")
        if i is not None and resolved_path(Path(i)) == resolved_path(out):
            raise ValueError(f"output {out} is also an input; write to another file")
    if out.is_dir():
        raise ValueError(f"output {out} is a folder; give a file name")
    if os.path.lexists(out) and not force:     # a dangling or looping symlink is an existing name too
        raise ValueError(f"output {out} exists; pass --force to replace it")
    if not out.parent.exists():
        raise ValueError(f"output folder {out.parent} does not exist")
    return out


def check_output_folder(path: str | Path, owned: Callable[[Path], bool], force: bool = False) -> Path:
    """Refuse an output folder that exists unless it is one this tool wrote (``owned``) and ``force``."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not owned(out):
            raise ValueError(f"output folder {out} is not empty and was not written by bitsim; "
                             f"choose another folder (nothing was changed)")
        if not force:
            raise ValueError(f"output folder {out} holds an earlier result; pass --force to replace it")
    return out


def publish_folder(tmp: Path, out: Path, owned: Callable[[Path], bool]) -> Path:
    """Move a finished temporary folder into place at ``out``; an old ``out`` is removed only if ``owned``."""
    out = Path(out)
    old = None
    if out.exists():
        if any(out.iterdir()) and not owned(out):
            raise ValueError(f"output folder {out} was not written by bitsim; not replacing it")
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old)
    return out


def temporary_sibling(out: str | Path) -> Path:
    """A new empty folder beside ``out`` (same file system, so the final rename is atomic)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    # mkdtemp makes the folder private (0700); a published folder is as readable as any other output
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    return tmp
