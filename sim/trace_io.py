"""Reading an op trace from a file, with every failure a clear ``ValueError`` / ``FileNotFoundError``."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from contract import read_table
from contract.io import check_input_file

from .engine import check_trace

#: Largest trace file read (a 7B step is ~0.1 MB as Parquet, ~0.3 MB as CSV).
MAX_TRACE_FILE_BYTES = 256 << 20


def load_trace(path: str | Path) -> pd.DataFrame:
    """Read an ``op_trace`` table (``.parquet`` or ``.csv``) and check it (:func:`sim.engine.check_trace`).

    A missing file is ``FileNotFoundError``; a folder, an oversized, corrupt, truncated or
    non-conforming file is ``ValueError`` naming the file.
    """
    path = check_input_file(path, what="trace", expected="a .parquet or .csv file",
                            max_bytes=MAX_TRACE_FILE_BYTES, why="an op trace of one step is well under 1 MB")
    if path.suffix not in (".parquet", ".csv"):
        raise ValueError(f"trace must end in .parquet or .csv, got {path.name!r}")
    try:
        trace = read_table(path, schema="op_trace")
    except (ValueError, TypeError, KeyError, OSError, OverflowError) as e:
        # corrupt Parquet (ArrowInvalid is a ValueError, ArrowIOError an OSError), bad CSV, bad metadata JSON
        raise ValueError(f"trace {path}: cannot be read as an op_trace table: {_short(e)}") from None
    try:
        return check_trace(trace)
    except (ValueError, TypeError) as e:
        raise ValueError(f"trace {path}: {_short(e)}") from None


def _short(e: BaseException, limit: int = 600) -> str:
    text = str(e) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 20] + f"... ({len(text)} chars)"
