"""Op traces of the published accelerators' workloads (``sim.validation.published``; docs/published-chips.md).

``sim/`` never imports ``model/``, so the traces the published-chip validation replays are committed as
tables under ``sim/data/``; this module rebuilds them from ``model/`` (seeded, deterministic).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from contract import write_table
from model.trace import build_trace
from sim.validation.published import TRACE_FILES

#: trace name (workload "trace:<name>") -> build_trace arguments (Slim-Llama "3B, 489 ms": context 128 ASSUMED)
TRACE_SPECS: dict[str, dict] = {
    "3b-b1.58-decode-c128": dict(preset="3b", datapath="b1.58", phase="decode", context=128, batch=1, seed=0),
}


def published_trace(name: str) -> pd.DataFrame:
    """One published workload's op trace, built from model/ (seeded, deterministic)."""
    if name not in TRACE_SPECS:
        raise ValueError(f"unknown published trace {name!r}; known: {sorted(TRACE_SPECS)}")
    return build_trace(**TRACE_SPECS[name])


def write_published_traces() -> list[Path]:
    """(Re)write every committed published trace table (atomic; metadata = the build arguments)."""
    return [write_table(published_trace(n), TRACE_FILES[n], "op_trace") for n in TRACE_SPECS]
