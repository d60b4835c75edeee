"""The comparison study behind ``bitsim report``: workloads x datapaths x accelerators.

A study builds each op trace once -- one per (preset, datapath, phase,
context) -- and simulates it on the datapath's matched accelerator and on
every reference accelerator (default ``h100-like``).  Results come back as
three tidy tables (pandas DataFrames) that figures, claims and notebooks read:

``summary``  one row per (trace, accelerator): preset, datapath, phase,
             context, tokens, accelerator, role (matched / reference),
             latency_s, tokens_per_s, energy_j_per_token, energy_<component>_j
             (J per token), weight_bytes, kv_bytes, footprint_bytes,
             memory_bound_frac / compute_bound_frac (share of op cycles bound by
             each), <class>_cycles_frac and <class>_bytes_offchip per op class
             (gemm, attention, vector).
``ops``      sim_result rows joined with their trace op (sparsity, bits,
             MACs) plus the roofline coordinates: ops (2 x effective MACs,
             or elements for vector ops), time_s, intensity (ops per
             off-chip byte), achieved_ops_s.
``traces``   the op traces themselves (op_trace schema) with their keys.

Traces are built in parallel worker processes (``workers``), one job per
trace, so a trace is never built twice.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from bitsim.experiments.sweep import exit_with_parent, summary_row
from bitsim.tables import MAX_BATCH, MAX_CONTEXT, MAX_PREFILL_TOKENS, validate
from bitsim.tables.config import dataclass_fields, quote
from model.config import DATAPATHS
import sim
from model.trace import build_trace

DEFAULT_DATAPATHS = ("fp16", "b1.58", "a4.8", "a4.8-fp4")
# Each datapath's own accelerator preset (sim/presets); a4.8-fp4 shares a4.8's.
DEFAULT_MATCHED = {"fp16": "fp16", "b1.58": "b1.58", "a4.8": "a4.8", "a4.8-fp4": "a4.8"}
PROFILES = ("measured", "paper-table2")


@dataclass(frozen=True)
class StudyConfig:
    """What to run.  Validated on construction (ValueError naming the field)."""
    name: str = "default"
    presets: tuple[str, ...] = ("7b", "2b4t")
    datapaths: tuple[str, ...] = DEFAULT_DATAPATHS
    contexts: tuple[int, ...] = (512, 2048, 8192, 32768)
    prefill_tokens: int = 2048            # 0: no prefill workload
    batch: int = 1
    seed: int = 0
    profile: str = "measured"             # activation statistics of the traces (docs/decisions.md 12)
    matched: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MATCHED))
    reference: tuple[str, ...] = ("h100-like",)
    measured_dir: str = "reports/data"
    workers: int = 2

    def __post_init__(self) -> None:
        for f in ("presets", "datapaths", "contexts", "reference"):
            v = getattr(self, f)
            if isinstance(v, str) or not isinstance(v, (tuple, list)):
                raise ValueError(f"{f}: expected a list, got {v!r}")
            object.__setattr__(self, f, tuple(v))
        if not self.presets:
            raise ValueError("presets: at least one model preset is required")
        if not self.datapaths:
            raise ValueError("datapaths: at least one datapath is required")
        for c in self.contexts:
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c <= 0:
                raise ValueError(f"contexts: each context must be a positive integer, got {c!r}")
            if c > MAX_CONTEXT:
                raise ValueError(f"contexts: {c} is above the limit of {MAX_CONTEXT} tokens")
        if isinstance(self.prefill_tokens, int) and self.prefill_tokens > MAX_PREFILL_TOKENS:
            raise ValueError(f"prefill_tokens: {self.prefill_tokens} is above the limit of {MAX_PREFILL_TOKENS}")
        if isinstance(self.batch, int) and self.batch > MAX_BATCH:
            raise ValueError(f"batch: {self.batch} is above the limit of {MAX_BATCH}")
        for f in ("prefill_tokens", "seed"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{f}: must be a non-negative integer, got {v!r}")
        for f in ("batch", "workers"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{f}: must be a positive integer, got {v!r}")
        if not self.contexts and not self.prefill_tokens:
            raise ValueError("contexts: give decode contexts or a prefill (prefill_tokens > 0)")
        if self.profile not in PROFILES:
            raise ValueError(f"profile: must be one of {PROFILES}, got {self.profile!r}")
        unknown = [d for d in self.datapaths if d not in DATAPATHS]
        if unknown:
            raise ValueError(f"datapaths: unknown datapath(s) {unknown}; known: {list(DATAPATHS)}")
        if not isinstance(self.matched, Mapping):
            raise ValueError(f"matched: expected a mapping datapath -> accelerator, got {self.matched!r}")
        stray = [d for d in self.matched if d not in DATAPATHS]
        if stray:
            raise ValueError(f"matched: {quote(stray)} name no datapath; known: {list(DATAPATHS)}")
        missing = [d for d in self.datapaths if d not in self.matched]
        if missing:
            raise ValueError(f"matched: no accelerator given for datapath(s) {missing}")
        object.__setattr__(self, "matched", {d: self.matched[d] for d in self.datapaths})

    def workloads(self) -> list[tuple[str, str, str, int]]:
        """Every (preset, datapath, phase, context) whose trace the study needs."""
        out = []
        for p in self.presets:
            for d in self.datapaths:
                out += [(p, d, "decode", int(c)) for c in self.contexts]
                if self.prefill_tokens:
                    out.append((p, d, "prefill", int(self.prefill_tokens)))
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str = "study config") -> "StudyConfig":
        """Build from a mapping (e.g. parsed YAML); an unknown field is a ValueError naming it."""
        return cls(**dataclass_fields(raw, cls, where))

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["matched"] = dict(self.matched)
        return d


@dataclass(kw_only=True)
class StudyResult:
    config: StudyConfig
    summary: pd.DataFrame
    ops: pd.DataFrame
    traces: pd.DataFrame
    ceilings: pd.DataFrame
    trace_meta: list[dict]
    seconds: float


# ---------------------------------------------------------------------------
def accelerator_ceilings(acc) -> list[dict]:
    """Roofline ceilings of one accelerator: one row per supported operand pair."""
    rows = []
    clock = acc.clock_ghz * 1e9
    seen = set()
    for a in acc.arrays:
        for p in a.pe_ops:
            key = (p.weights, p.acts)
            if key in seen:
                continue
            seen.add(key)
            rows.append({"accelerator": acc.name, "precision": f"{p.weights}x{p.acts}",
                         "peak_ops_s": 2.0 * acc.peak_macs_per_cycle(*key) * clock,
                         "bandwidth_bytes_s": acc.offchip.bandwidth_gbps * 1e9})
    return rows


def _op_rows(trace: pd.DataFrame, ops: pd.DataFrame, clock_hz: float) -> pd.DataFrame:
    """Sim ops joined with their trace ops and placed on the roofline."""
    t = trace.reset_index(drop=True)
    o = ops.reset_index(drop=True).copy()
    if len(o) == len(t) and (o["op"].to_numpy() == t["op"].to_numpy()).all():
        for c in ("M", "N", "K", "count", "sparsity", "row_skip", "weight_bits", "act_bits",
                  "weight_format", "act_format", "macs_dense", "macs_effective"):
            o[c] = t[c].to_numpy()
    else:  # sim reordered or dropped ops: join on (layer, op)
        cols = ["layer", "op", "M", "N", "K", "count", "sparsity", "row_skip", "weight_bits", "act_bits",
                "weight_format", "act_format", "macs_dense", "macs_effective"]
        o = o.merge(t[cols].drop_duplicates(["layer", "op"]), on=["layer", "op"], how="left")
    is_vec = o["op_class"] == "vector"
    o["ops"] = np.where(is_vec, o["macs_dense"], 2.0 * o["macs_effective"]).astype(float)
    o["time_s"] = o["cycles"].astype(float) / clock_hz
    with np.errstate(divide="ignore", invalid="ignore"):
        o["intensity"] = np.where(o["bytes_offchip"] > 0, o["ops"] / o["bytes_offchip"], np.nan)
        o["achieved_ops_s"] = np.where(o["time_s"] > 0, o["ops"] / o["time_s"], np.nan)
    return o


def _run_workload(key: tuple[str, str, str, int], cfg: StudyConfig, accelerators: list[tuple[str, str]]):
    """Build one trace and simulate it on each (accelerator, role).  Runs in a worker."""

    preset, datapath, phase, context = key
    t0 = time.perf_counter()
    trace = build_trace(preset, datapath, phase=phase, context=context, batch=cfg.batch, seed=cfg.seed,
                        profile=cfg.profile, prefill_tokens=context if phase == "prefill" else None)
    t_trace = time.perf_counter() - t0
    tokens = cfg.batch * (context if phase == "prefill" else 1)
    summaries, op_frames = [], []
    for acc_name, role in accelerators:
        acc = sim.load_accelerator(acc_name)
        res = sim.simulate(trace, acc)
        row = {"preset": preset, "datapath": datapath, "phase": phase, "context": context,
               "tokens": tokens, "accelerator": acc.name, "accelerator_key": acc_name, "role": role}
        row.update(summary_row(res.summary))
        ops = _op_rows(trace, res.ops, acc.clock_ghz * 1e9)
        cyc = ops["cycles"].sum()
        row["memory_bound_frac"] = float(ops.loc[ops.bound == "memory", "cycles"].sum() / cyc) if cyc else 0.0
        row["compute_bound_frac"] = float(ops.loc[ops.bound == "compute", "cycles"].sum() / cyc) if cyc else 0.0
        for cls in ("gemm", "attention", "vector"):
            row[f"{cls}_cycles_frac"] = float(ops.loc[ops.op_class == cls, "cycles"].sum() / cyc) if cyc else 0.0
            row[f"{cls}_bytes_offchip"] = float(ops.loc[ops.op_class == cls, "bytes_offchip"].sum())
        summaries.append(row)
        op_frames.append(ops.assign(preset=preset, datapath=datapath, context=context,
                                    accelerator=acc.name, role=role))
    tr = trace.copy()
    meta = {k: (v if isinstance(v, (str, int, float, bool, type(None))) else str(v))
            for k, v in dict(trace.attrs).items()}
    tr.attrs = {}
    tr = tr.assign(preset=preset, datapath=datapath, context=context)
    return key, summaries, pd.concat(op_frames, ignore_index=True), tr, meta, t_trace, time.perf_counter() - t0


def _worker_init(parent_pid: int) -> None:
    exit_with_parent(parent_pid)  # a killed report leaves no worker behind
    # one compute thread per worker process: the workers already share the cores
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


def run_study(cfg: StudyConfig, progress: bool = True) -> StudyResult:
    """Run every workload of ``cfg``; each trace is built once and simulated on all its accelerators."""

    t0 = time.perf_counter()
    # Load every accelerator once up front: a bad name or YAML fails before any work.
    ceilings, names = [], {}
    for acc_name in dict.fromkeys(list(cfg.matched.values()) + list(cfg.reference)):
        acc = sim.load_accelerator(acc_name)
        names[acc_name] = acc.name
        ceilings += accelerator_ceilings(acc)
    jobs = cfg.workloads()
    # biggest first, for load balance
    jobs.sort(key=lambda k: (-(k[3] if k[2] == "decode" else 4 * k[3]), k))
    accs_for = {d: [(cfg.matched[d], "matched")] + [(r, "reference") for r in cfg.reference
                                                     if r != cfg.matched[d]] for d in cfg.datapaths}
    results = []

    def note(res):
        key, *_, t_trace, t_all = res
        results.append(res)
        if progress:
            print(f"[{len(results)}/{len(jobs)}] {key[0]} {key[1]} {key[2]}@{key[3]}: trace {t_trace:.1f}s, "
                  f"total {t_all:.1f}s ({time.perf_counter() - t0:.0f}s elapsed)", file=sys.stderr, flush=True)

    if cfg.workers == 1 or len(jobs) == 1:
        for k in jobs:
            note(_run_workload(k, cfg, accs_for[k[1]]))
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed
        with ProcessPoolExecutor(max_workers=min(cfg.workers, len(jobs)), mp_context=mp.get_context("spawn"),
                                 initializer=_worker_init, initargs=(os.getpid(),)) as ex:
            futs = [ex.submit(_run_workload, k, cfg, accs_for[k[1]]) for k in jobs]
            for f in as_completed(futs):
                note(f.result())
    order = {k: i for i, k in enumerate(cfg.workloads())}
    results.sort(key=lambda r: order[r[0]])
    summary = pd.DataFrame([row for r in results for row in r[1]])
    ops = pd.concat([r[2] for r in results], ignore_index=True)
    traces = pd.concat([r[3] for r in results], ignore_index=True)
    meta = [dict(r[4], preset=r[0][0], datapath=r[0][1], phase=r[0][2], context=r[0][3]) for r in results]
    return StudyResult(config=cfg, summary=validate(summary, "study_summary"), ops=validate(ops, "study_ops"),
                       traces=validate(traces, "study_traces"),
                       ceilings=validate(pd.DataFrame(ceilings), "accelerator_ceilings"), trace_meta=meta,
                       seconds=time.perf_counter() - t0)

