"""Runs of the experiments: each op trace built once, simulated on every chip that asks for it.

Every experiment of the study (the comparison, the gain ladder, the batch, context and bandwidth
sweeps, the comparison bases, the sensitivity bands) is a list of :class:`Job` -- one op trace
(:class:`TraceKey`) on one chip (:class:`Chip`: a sim preset plus dotted-path overrides).  A
:class:`Runner` groups the jobs by trace, builds each trace once in a worker process, simulates
it on all its chips there, and keeps the traces so a later batch of jobs (e.g. chips sized from an
earlier result) never builds one again.  Results are flat summary rows (:func:`summary_row`,
every number of ``sim.SimSummary``, so fields sim adds later flow through by name) plus, when a
job asks for them, the per-op table.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

import sim
from bitsim.experiments.hardware import make_accelerator, summary_row
from bitsim.experiments.sweep import exit_with_parent, pool_context
from contract.sim import BOUNDS
from model.config import get_config
from model.trace import build_trace


@dataclass(frozen=True, kw_only=True, order=True)
class TraceKey:
    """One op trace: what ``model.trace.build_trace`` is called with (``kv_bits`` None = the datapath's own)."""

    preset: str
    datapath: str
    phase: str
    context: int
    batch: int = 1
    kv_bits: int | None = None
    profile: str = "measured"
    seed: int = 0

    @property
    def tokens(self) -> int:
        return self.batch * (self.context if self.phase == "prefill" else 1)

    def build(self) -> pd.DataFrame:
        """Build the trace (a 7B decode step takes 1-6 s on one core)."""
        cfg = get_config(self.preset, self.datapath, **({"kv_bits": self.kv_bits} if self.kv_bits else {}))
        return build_trace(cfg, self.datapath, phase=self.phase, context=self.context, batch=self.batch,
                           seed=self.seed, profile=self.profile,
                           prefill_tokens=self.context if self.phase == "prefill" else None)

    def cost(self) -> float:
        """Relative build cost, for scheduling the largest first."""
        return float(self.context if self.phase == "decode" else 4 * self.context) * (1 + self.batch / 64)


def _hashable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_hashable(x) for x in v)
    return v


def _plain(v: Any) -> Any:
    """The YAML-like value of a hashable override (tuples of pairs back to dicts, tuples to lists)."""
    if isinstance(v, tuple):
        if v and all(isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str) for x in v):
            return {k: _plain(x) for k, x in v}
        return [_plain(x) for x in v]
    return v


@dataclass(frozen=True, kw_only=True)
class Chip:
    """An accelerator: a sim preset or YAML (``base``) with dotted-path overrides (``hardware.make_accelerator``)."""

    base: str
    overrides: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, base: str, overrides: Mapping[str, Any] | None = None) -> "Chip":
        return cls(base=str(base), overrides=tuple(sorted((k, _hashable(v)) for k, v in (overrides or {}).items())))

    def with_overrides(self, more: Mapping[str, Any]) -> "Chip":
        """This chip with ``more`` overrides on top (a later value of the same path wins)."""
        return Chip.of(self.base, {**self.override_dict(), **dict(more)})

    def override_dict(self) -> dict[str, Any]:
        return {k: _plain(v) for k, v in self.overrides}

    def config(self):
        """The validated ``sim.AcceleratorConfig`` (sim's loader checks every override)."""
        return make_accelerator(self.base, self.override_dict())


@dataclass(frozen=True, kw_only=True)
class Job:
    """One simulation: a trace on a chip; ``keep_ops`` returns the per-op table too."""

    trace: TraceKey
    chip: Chip
    keep_ops: bool = False


@dataclass(kw_only=True)
class Outcome:
    """What one job gives: the flat summary row and, when asked for, the per-op table."""

    row: dict
    ops: pd.DataFrame | None = None


def labelled_row(summary: Mapping[str, Any]) -> dict:
    """:func:`bitsim.experiments.hardware.summary_row` plus the summary's labels (accelerator, comparison,
    energy basis)."""
    row = summary_row(summary)
    for k in ("accelerator", "comparison", "energy_basis"):
        if k in summary:
            row[k] = str(summary[k])
    return row


def op_table(trace: pd.DataFrame, ops: pd.DataFrame, clock_hz: float) -> pd.DataFrame:
    """Sim ops joined with their trace ops and placed on the roofline (ops, time_s, intensity, achieved_ops_s)."""
    t = trace.reset_index(drop=True)
    o = ops.reset_index(drop=True).copy()
    cols = ("M", "N", "K", "count", "sparsity", "row_skip", "weight_bits", "act_bits", "weight_format",
            "act_format", "macs_dense", "macs_effective")
    if len(o) == len(t) and (o["op"].to_numpy() == t["op"].to_numpy()).all():
        for c in cols:
            o[c] = t[c].to_numpy()
    else:  # sim reordered or dropped ops: join on (layer, op)
        o = o.merge(t[["layer", "op", *cols]].drop_duplicates(["layer", "op"]), on=["layer", "op"], how="left")
    is_vec = o["op_class"] == "vector"
    o["ops"] = np.where(is_vec, o["macs_dense"], 2.0 * o["macs_effective"]).astype(float)
    o["time_s"] = o["cycles"].astype(float) / clock_hz
    with np.errstate(divide="ignore", invalid="ignore"):
        o["intensity"] = np.where(o["bytes_offchip"] > 0, o["ops"] / o["bytes_offchip"], np.nan)
        o["achieved_ops_s"] = np.where(o["time_s"] > 0, o["ops"] / o["time_s"], np.nan)
    return o


def bound_shares(ops: pd.DataFrame) -> dict[str, float]:
    """Share of cycles per bound (every bound label sim uses) and per op class, off-chip bytes per op class."""
    cyc = float(ops["cycles"].sum())
    out: dict[str, float] = {}
    for b in dict.fromkeys(list(BOUNDS) + [str(x) for x in ops["bound"].unique()]):
        key = str(b).replace("-", "_").replace(" ", "_")
        out[f"{key}_bound_frac"] = float(ops.loc[ops.bound == b, "cycles"].sum() / cyc) if cyc else 0.0
    for cls in ("gemm", "attention", "vector"):
        sel = ops.op_class == cls
        out[f"{cls}_cycles_frac"] = float(ops.loc[sel, "cycles"].sum() / cyc) if cyc else 0.0
        out[f"{cls}_bytes_offchip"] = float(ops.loc[sel, "bytes_offchip"].sum())
    head = ops.op.astype(str) == "lm_head"
    out["lm_head_bytes_offchip"] = float(ops.loc[head, "bytes_offchip"].sum())
    return out


def simulate_job(trace: pd.DataFrame, chip: Chip, keep_ops: bool = False) -> Outcome:
    """Simulate one trace on one chip: the summary row (with bound shares) and, if asked, the op table."""
    acc = chip.config()
    res = sim.simulate(trace, acc)
    ops = op_table(trace, res.ops, acc.clock_ghz * 1e9)
    row = labelled_row(res.summary.to_dict())
    row.update(bound_shares(ops))
    return Outcome(row=row, ops=ops if keep_ops else None)


def _task(key: TraceKey, trace: pd.DataFrame | None, chips: Sequence[tuple[Chip, bool]]):
    """Worker: build the trace (unless given) and simulate it on each chip."""
    t0 = time.perf_counter()
    if trace is None:
        trace = key.build()
    t_trace = time.perf_counter() - t0
    outs = [simulate_job(trace, chip, keep) for chip, keep in chips]
    return key, trace, outs, t_trace, time.perf_counter() - t0


def _call(fn: Callable, args: tuple):
    return fn(*args)


def _worker_init(parent_pid: int) -> None:
    exit_with_parent(parent_pid)  # a killed report leaves no worker behind
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the workers already share the cores
    try:
        import torch  # heavy: only to pin its thread count in a worker
        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


@dataclass
class Runner:
    """Runs jobs in ``workers`` processes (1: in this process); keeps every trace and result it made.

    Use as a context manager (the worker pool is closed on exit).  ``progress`` receives one line
    per finished trace.
    """

    workers: int = 2
    progress: Callable[[str], None] | None = None
    traces: dict[TraceKey, pd.DataFrame] = field(default_factory=dict)
    results: dict[Job, Outcome] = field(default_factory=dict)
    trace_seconds: dict[TraceKey, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._pool = None
        self.t0 = time.perf_counter()

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _executor(self):
        if self._pool is None:
            from concurrent.futures import ProcessPoolExecutor  # stdlib, only when a pool is needed
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=pool_context(),
                                             initializer=_worker_init, initargs=(os.getpid(),))
        return self._pool

    def run(self, jobs: Iterable[Job]) -> dict[Job, Outcome]:
        """Simulate every job not yet done (each trace built at most once); returns every job's outcome."""
        jobs = list(dict.fromkeys(jobs))
        want: dict[TraceKey, dict[Chip, bool]] = {}
        for j in jobs:
            if j not in self.results:
                chips = want.setdefault(j.trace, {})
                chips[j.chip] = chips.get(j.chip, False) or j.keep_ops   # one run answers both
        todo = {key: list(chips.items()) for key, chips in want.items()}
        tasks = sorted(todo.items(), key=lambda kv: (-kv[0].cost() * (kv[0] not in self.traces), repr(kv[0])))
        done = 0

        def note(result) -> None:
            nonlocal done
            key, trace, outs, t_trace, t_all = result
            done += 1
            if key not in self.traces:
                self.traces[key] = trace
                self.trace_seconds[key] = t_trace
            for (chip, keep), out in zip(todo[key], outs):
                self.results[Job(trace=key, chip=chip, keep_ops=keep)] = out
                if keep:  # a job without ops is answered by the same run
                    self.results.setdefault(Job(trace=key, chip=chip, keep_ops=False), Outcome(row=out.row))
            if self.progress:
                self.progress(f"[{done}/{len(tasks)}] {key.preset} {key.datapath} {key.phase}@{key.context} "
                              f"b{key.batch}{'' if key.kv_bits is None else f' kv{key.kv_bits}'} {key.profile}: "
                              f"trace {t_trace:.1f}s, {len(outs)} sims, {t_all:.1f}s "
                              f"({time.perf_counter() - self.t0:.0f}s elapsed)")

        if self.workers == 1 or len(tasks) <= 1:
            for key, chips in tasks:
                note(_task(key, self.traces.get(key), chips))
        else:
            from concurrent.futures import as_completed  # stdlib
            ex = self._executor()
            futs = [ex.submit(_task, key, self.traces.get(key), chips) for key, chips in tasks]
            for f in as_completed(futs):
                note(f.result())
        return {j: self.results[j] for j in jobs}

    def trace(self, key: TraceKey) -> pd.DataFrame:
        """The trace of ``key`` (built here if no job has built it)."""
        if key not in self.traces:
            self.traces[key] = key.build()
        return self.traces[key]

    def map(self, fn: Callable, calls: Sequence[tuple]) -> list:
        """``[fn(*args) for args in calls]`` in the worker processes (``fn`` a module-level function)."""
        if self.workers == 1 or len(calls) <= 1:
            return [fn(*a) for a in calls]
        ex = self._executor()
        return [f.result() for f in [ex.submit(_call, fn, a) for a in calls]]


def rows(outcomes: Mapping[Job, Outcome], tags: Mapping[Job, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per tagged job: its tags, its trace key, then its summary numbers."""
    out = []
    for job, tag in tags.items():
        k = job.trace
        out.append({**dict(tag), "preset": k.preset, "datapath": k.datapath, "phase": k.phase,
                    "context": k.context, "batch": k.batch, "profile": k.profile,
                    **{c: v for c, v in outcomes[job].row.items() if c not in tag}})
    return pd.DataFrame(out)


def progress_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
