"""Op traces of the published accelerators' workloads (``sim.validation.published``; docs/published-chips.md).

``sim/`` never imports ``model/``, so the traces the published-chip validation replays are committed as
tables under ``sim/data/``; this module rebuilds them from ``model/`` (seeded, deterministic).
"""
from __future__ import annotations

import pandas as pd

from model.trace import build_trace

#: trace name (workload "trace:<name>") -> build_trace arguments (Slim-Llama "3B, 489 ms": context 128 ASSUMED)
TRACE_SPECS: dict[str, dict] = {
    "3b-b1.58-decode-c128": dict(preset="3b", datapath="b1.58", phase="decode", context=128, batch=1, seed=0),
}


def published_trace(name: str) -> pd.DataFrame:
    """One published workload's op trace, built from model/ (seeded, deterministic)."""
    if name not in TRACE_SPECS:
        raise ValueError(f"unknown published trace {name!r}; known: {sorted(TRACE_SPECS)}")
    return build_trace(**TRACE_SPECS[name])
