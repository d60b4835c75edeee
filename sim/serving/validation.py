"""Validation rows of the serving simulator that need no model: hand-computed schedules, the
all-reduce model against the published H100 latencies, and the rows that compare a decode iteration
against measured batched-decode GPU tokens given the simulated times (``serving_validation`` table rows).

Each row carries the simulated value, the reference, the error and whether it passed; a row that
misses stays in the table.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd

from .config import SchedulerConfig
from .costmodel import ChipFacts, LinearCostModel
from .interconnect import InterconnectConfig, allreduce_seconds, load_interconnect
from .serve import serve
from .workload import anchors

HAND_TOLERANCE = 1e-9
ALLREDUCE_TOLERANCE = 0.20
ITERATION_TOLERANCE = 0.20
HAND_SOURCE = "hand-computed schedule (fixed 10 ms + 1 ms per token iterations)"


def row(check: str, group: str, simulated: float, reference: float, unit: str, tolerance: float,
        source: str) -> dict:
    err = (simulated - reference) / reference if reference else (0.0 if simulated == reference else math.inf)
    return dict(check=check, group=group, simulated=float(simulated), reference=float(reference), unit=unit,
                error=float(err), tolerance=float(tolerance), passed=bool(abs(err) <= tolerance), source=source)


#: The columns of a :func:`row` (the ``serving_validation`` table's), for a frame that may have no rows.
ROW_COLUMNS = list(row("", "", 0.0, 1.0, "", 0.0, ""))


def _hand_model() -> LinearCostModel:
    f = ChipFacts(name="hand", weight_bytes=1e9, kv_bytes_per_token=1e5, capacity_bytes=10e9, hidden=1024,
                  n_layers=4)
    return LinearCostModel(facts=f, fixed_s=0.010, per_token_s=0.001)


def _requests(rows: list[tuple[float, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["arrival_s", "prompt_tokens", "output_tokens"])


def hand_checks() -> pd.DataFrame:
    """The scheduler on cases whose schedule is computed by hand (a = 10 ms, b = 1 ms per token)."""
    a, b = 0.010, 0.001
    cm = _hand_model()
    out = []
    one = serve(_requests([(0.0, 100, 5)]), cm).requests.iloc[0]
    out.append(row("single request: TTFT = a + 100 b", "hand", one["ttft_s"], a + 100 * b, "s",
                   HAND_TOLERANCE, HAND_SOURCE))
    out.append(row("single request: end-to-end = a + 100 b + 4 (a + b)", "hand", one["e2e_s"],
                   a + 100 * b + 4 * (a + b), "s", HAND_TOLERANCE, HAND_SOURCE))
    spaced = serve(_requests([(k * 1.0, 50, 3) for k in range(5)]), cm).requests
    out.append(row("deterministic arrivals 1 s apart: slowest end-to-end = a + 50 b + 2 (a + b)", "hand",
                   spaced["e2e_s"].max(), a + 50 * b + 2 * (a + b), "s", HAND_TOLERANCE, HAND_SOURCE))
    full = serve(_requests([(0.0, 4, 5)] * 2), cm, SchedulerConfig(block_tokens=4, kv_blocks=4))
    out.append(row("capacity exactly reached (4 blocks): finish = a + 8 b + 4 (a + 2 b)", "hand",
                   full.requests["finish_s"].max(), a + 8 * b + 4 * (a + 2 * b), "s", HAND_TOLERANCE, HAND_SOURCE))
    out.append(row("capacity exactly reached (4 blocks): preemptions = 0", "hand",
                   full.requests["preemptions"].sum(), 0, "", HAND_TOLERANCE, HAND_SOURCE))
    short = serve(_requests([(0.0, 4, 5)] * 2), cm, SchedulerConfig(block_tokens=4, kv_blocks=3)).requests
    t0 = a + 8 * b + 4 * (a + b)
    out.append(row("one block short (3 blocks): the evicted request recomputes 5 tokens, finish = "
                   "t0 + a + 5 b + 3 (a + b)", "hand", short["finish_s"].max(), t0 + a + 5 * b + 3 * (a + b), "s",
                   HAND_TOLERANCE, HAND_SOURCE))
    chunk = serve(_requests([(0.0, 10, 2)]), cm, SchedulerConfig(policy="chunked", token_budget=4)).requests.iloc[0]
    out.append(row("chunked prefill (budget 4, prompt 10): TTFT = 3 a + 10 b", "hand", chunk["ttft_s"],
                   3 * a + 10 * b, "s", HAND_TOLERANCE, HAND_SOURCE))
    return pd.DataFrame(out)


def fit_oneshot(rows: "list[tuple[int, float, float]]", latency_us: float) -> tuple[float, float]:
    """Launch cost (us) and direct bandwidth (GB/s) of the one-shot all-reduce from measured ``(chips, bytes,
    us)`` rows, by least squares on ``us = launch + latency + (chips - 1) bytes / bandwidth`` (per-peer sync set
    to 0: at one message size it cannot be told apart from the bandwidth term, both grow with chips - 1)."""
    x = np.array([(n - 1) * b for n, b, _ in rows], dtype=float)
    y = np.array([t for _, _, t in rows], dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    if slope <= 0:
        raise ValueError("fit_oneshot: the rows do not grow with the bytes read; no bandwidth to fit")
    return float(intercept - latency_us), float(1e-3 / slope)


def allreduce_rows(size: str | None = None) -> list[tuple[int, float, float, str]]:
    """The published all-reduce anchors as ``(chips, bytes, us, source)``; ``size`` '32kb' or '1mb' selects."""
    t = anchors()
    out = []
    for r in t[t["kind"] == "allreduce"].itertuples(index=False):
        _, tp, sz = r.name.split(".")
        if size is None or sz == size:
            out.append((int(tp[2:]), float(32 * 1024 if sz == "32kb" else 1 << 20), float(r.value), r.source))
    return out


def allreduce_checks(ic: "InterconnectConfig | str" = "nvlink4-h100") -> pd.DataFrame:
    """The all-reduce model (the preset's algorithm) against the published H100 latencies at 32 KB (the rows its
    launch cost and direct bandwidth were fitted on) and 1 MB (held out)."""
    ic = load_interconnect(ic)
    out = []
    for n, nbytes, us, source in allreduce_rows():
        size = "32 KB, fitted on" if nbytes < 1 << 20 else "1 MB, held out"
        algo = ic.by_size(nbytes, n) if ic.algorithm == "by-size" else ic.algorithm
        out.append(row(f"all-reduce {size}, TP {n} on {ic.name} ({algo})", "allreduce",
                       allreduce_seconds(nbytes, n, ic) * 1e6, us, "us", ALLREDUCE_TOLERANCE, source))
    return pd.DataFrame(out)


def measured_iterations(measured: pd.DataFrame) -> pd.DataFrame:
    """The measured batched decode tokens of a ``measured_trace`` table: ``op == "token_decode"`` rows of more
    than one sequence (``M``: batch, ``K``: context) timed as one CUDA graph (a serving iteration pays no host
    launch gaps), in the table's order."""
    missing = [c for c in ("op", "kernel", "impl", "variant", "precision", "M", "K", "us", "cuda_graph", "kv_bits",
                           "gpu") if c not in measured.columns]
    if missing:
        raise ValueError(f"measured decode tokens: missing column(s) {missing}; expected a measured_trace table")
    sel = (measured["op"] == "token_decode") & (measured["M"] > 1) & measured["cuda_graph"].astype(bool)
    return measured[sel]


def iteration_checks(measured: pd.DataFrame, simulate_us: Callable[[pd.Series], tuple[float, str]],
                     source: str) -> pd.DataFrame:
    """One row (group ``iteration``) per measured batched decode token (:func:`measured_iterations`): the
    simulated time of that decode iteration against the measured one, within :data:`ITERATION_TOLERANCE`.

    ``simulate_us(row)`` returns the simulated microseconds of the row's iteration and the preset that ran it;
    nothing is fitted to these rows.  ``source`` names the measured table."""
    out = []
    for _, r in measured_iterations(measured).iterrows():
        us, preset = simulate_us(r)
        out.append(row(f"decode iteration {r['kernel']} ({r['impl']}, {r['variant'] or 'default'}), "
                       f"batch {int(r['M'])} context {int(r['K'])} on {preset}", "iteration", us, float(r["us"]), "us",
                       ITERATION_TOLERANCE, f"{source}: token_decode {r['kernel']} M={int(r['M'])} ({r['gpu']})"))
    return pd.DataFrame(out, columns=ROW_COLUMNS)
