"""Op traces of the published accelerators' workloads (``sim.validation.published``; docs/published-chips.md).

``sim/`` never imports ``model/``, so the traces the published-chip validation replays are committed as
tables under ``sim/data/``; this module rebuilds them from ``model/`` (seeded, deterministic) and writes them.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from contract.io import write_table
from model.config import get_config
from model.trace import build_trace
from sim.validation.published import TRACE_FILES

#: trace name (workload "trace:<name>") -> build_trace arguments; ``lm_head_bits`` (optional) sets the model's
#: LM-head format.  Slim-Llama "3B, 489 ms": one decode token at context 128 (ASSUMPTION: the sources give no
#: context).  The int8-head trace is the one its preset replays: the chip computes integers only (INT1-16 or
#: ternary weights, INT4/8/16 activations), so an FP16 head cannot run on it; 8 bits is an ASSUMPTION.
TRACE_SPECS: dict[str, dict] = {
    "3b-b1.58-decode-c128": dict(preset="3b", datapath="b1.58", phase="decode", context=128, batch=1, seed=0),
    "3b-b1.58-int8head-decode-c128": dict(preset="3b", datapath="b1.58", lm_head_bits=8, phase="decode",
                                          context=128, batch=1, seed=0),
}


def published_trace(name: str) -> pd.DataFrame:
    """One published workload's op trace, built from model/ (seeded, deterministic)."""
    if name not in TRACE_SPECS:
        raise ValueError(f"unknown published trace {name!r}; known: {sorted(TRACE_SPECS)}")
    spec = dict(TRACE_SPECS[name])
    head_bits = spec.pop("lm_head_bits", None)
    if head_bits is not None:
        spec["preset"] = dataclasses.replace(get_config(spec["preset"], spec["datapath"]), lm_head_bits=head_bits)
    return build_trace(**spec)


def write_published_trace(name: str) -> Path:
    """Rebuild one published trace from model/ and write it where sim reads it (:data:`TRACE_FILES`), atomically."""
    if name not in TRACE_FILES:
        raise ValueError(f"trace {name!r} has no file in sim.validation.published.TRACE_FILES; "
                         f"known: {sorted(TRACE_FILES)}")
    return write_table(published_trace(name), TRACE_FILES[name], "op_trace")
