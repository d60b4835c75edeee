"""Public entry point: ``simulate(trace, accel) -> SimResult`` (per-op table + per-step summary).

The summary is a :class:`SimSummary` record; its flat form (:meth:`SimSummary.row`) is the
registered table ``sim_summary`` (contract/sim.py: every column with its unit).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from contract import validate
from contract.sim import AREA_PARTS, BOUNDS, ENERGY_COMPONENTS, SIM_SUMMARY

from .config import AcceleratorConfig, check_resident_weights, load_accelerator
from .engine import check_timeline_path, check_trace, dma_tiles, plan_ops, schedule_ops, write_chrome_trace

COMPONENTS = ENERGY_COMPONENTS
#: Most DMA tiles (weight-buffer halves) one simulation may schedule: ~30 s on one core.
MAX_DMA_TILES = 1_000_000
#: Above this many DMA tiles (~3 s) ``simulate`` reports progress through its ``progress`` callback.
SLOW_DMA_TILES = 100_000
#: Most cycles of one run (int64 cycle columns must not overflow).
MAX_CYCLES = 1 << 62


@dataclass(frozen=True, kw_only=True)
class SimSummary:
    """Per-step totals of one simulation, with units (the ``sim_summary`` table, one row).

    Fields are read as attributes; :meth:`to_dict` is its JSON form, :meth:`row` its flat table row.
    """
    accelerator: str
    comparison: str
    energy_basis: str
    phase: str
    ops: int                                  # trace rows
    tokens: int                               # tokens the step produces
    cycles: int                               # cycle
    clock_ghz: float                          # GHz
    latency_s: float                          # s
    tokens_per_s: float                       # token/s
    energy_j: float                           # J, whole step
    energy_j_per_token: float                 # J/token
    energy_j_by_component: dict               # component -> J, whole step (COMPONENTS)
    bytes_offchip: float                      # byte
    weight_bytes: float                       # byte
    kv_bytes: float                           # byte
    footprint_bytes: float                    # byte
    fits_offchip: bool                        # weights + KV fit the off-chip capacity
    compute_area_mm2_45nm: float              # mm2 (legacy: PE arithmetic under the papers' rule, 45 nm)
    cycles_by_bound: dict                     # bound -> cycle (BOUNDS)
    fallback_ops: tuple = ()                  # {op, needs, pair, array, count} per group
    # ---- design costs and efficiency ----
    infeasible_reason: str = ""               # why the footprint does not fit, with the numbers; "" when it fits
    capacity_bytes: float = 0.0               # byte, off-chip capacity
    area_mm2: float = 0.0                     # mm2, whole design at process_nm (sim.energy.chip)
    area_mm2_by_part: dict = field(default_factory=dict)   # part -> mm2 (AREA_PARTS)
    power_w: float = 0.0                      # W, energy_j / latency_s
    power_static_w: float = 0.0               # W, static power (leakage model or fixed)
    power_dynamic_w: float = 0.0              # W, dynamic energy / latency at this workload
    peak_tops: float = 0.0                    # TOP/s, every array at its fastest pair
    tops: float = 0.0                         # TOP/s, 2 x dense MACs of the step / latency
    tops_per_mm2: float = 0.0                 # TOP/s/mm2, peak_tops / area_mm2
    tops_per_w: float = 0.0                   # TOP/s/W, tops / power_w (at this workload)
    tokens_per_s_per_w: float = 0.0           # token/s/W = token/J
    tokens_per_s_per_mm2: float = 0.0         # token/s/mm2
    offchip_sustained_gbps: float = 0.0       # GB/s, peak x sustained fraction (what the DMA moves)
    causal_ops: int = 0                       # attention ops whose fully masked folds were skipped

    def to_dict(self) -> dict:
        """Plain, JSON-ready dict (nested dicts copied, ``fallback_ops`` a list)."""
        return {k: (dict(v) if isinstance(v, dict) else [dict(x) for x in v] if k == "fallback_ops" else v)
                for k, v in ((k, getattr(self, k)) for k in _SUMMARY_FIELDS)}

    def row(self) -> dict:
        """The flat ``sim_summary`` row: component energies per token, cycles per bound, fallbacks as JSON."""
        out = {k: getattr(self, k) for k in _SUMMARY_FIELDS
               if k not in ("energy_j_by_component", "cycles_by_bound", "fallback_ops", "area_mm2_by_part")}
        for c in COMPONENTS:
            out[f"energy_{c}_j"] = float(self.energy_j_by_component[c]) / self.tokens
        for b in BOUNDS:
            out[f"cycles_{b}_bound"] = int(self.cycles_by_bound.get(b, 0))
        for a in AREA_PARTS:
            out[f"area_{a}_mm2"] = float(self.area_mm2_by_part.get(a, 0.0))
        out["fallback_ops"] = json.dumps([dict(x) for x in self.fallback_ops])
        return {c.name: out[c.name] for c in SIM_SUMMARY}


_SUMMARY_FIELDS = tuple(f.name for f in fields(SimSummary))


def summary_table(summaries: Iterable[SimSummary]) -> pd.DataFrame:
    """A ``sim_summary`` table, one row per summary (validated)."""
    rows = [s.row() for s in summaries]
    return validate(pd.DataFrame(rows), "sim_summary")


@dataclass
class SimResult:
    """``ops``: one row per trace op (sim_result schema, plus ``pair``, ``needs``,
    ``fallback`` and ``ideal_compute_cycles``); ``summary``: per-step / per-token
    totals (``fallback_ops`` lists ops run on a wider pair than their operands)."""
    ops: pd.DataFrame
    summary: SimSummary
    accel: AcceleratorConfig = field(repr=False)

    def __repr__(self) -> str:
        s = self.summary
        return (f"SimResult({s.accelerator}, {s.phase}, {s.tokens} tokens: "
                f"{s.latency_s * 1e3:.3f} ms, {s.tokens_per_s:.1f} tok/s, "
                f"{s.energy_j_per_token * 1e3:.3f} mJ/token)")


def simulate(trace: pd.DataFrame, accel: "str | Path | AcceleratorConfig",
             timeline: "str | Path | None" = None,
             progress: Callable[[str], None] | None = None) -> SimResult:
    """Simulate one op trace (one forward step) on one accelerator.

    ``accel`` is a preset name, a YAML path or an :class:`AcceleratorConfig`;
    ``timeline`` (optional ``.json`` path) receives a Chrome trace-event file.
    Inputs are checked first (:func:`sim.engine.check_trace`, the config's
    ranges); a step needing more than :data:`MAX_DMA_TILES` tile loads is refused
    before it runs.  ``progress`` (optional) receives one-line messages when the
    step is large (over :data:`SLOW_DMA_TILES` tiles): an estimate, then every 10 %.
    """
    cfg = load_accelerator(accel)
    check_trace(trace)
    if timeline is not None:
        check_timeline_path(timeline)
    trace = trace.reset_index(drop=True)
    check_resident_weights(cfg, _footprint(trace, str(trace["phase"].iloc[0]))[0], "op trace")
    plans = plan_ops(trace, cfg)
    tiles = _check_tiles(trace, plans, cfg)
    on_op_done = _progress_hook(progress, len(plans), tiles, cfg.name) \
        if progress is not None and tiles > SLOW_DMA_TILES else None
    names = [f"L{int(l)}.{o}" for l, o in zip(trace["layer"], trace["op"])]
    log = schedule_ops(plans, cfg, names, on_op_done)
    if log.end > MAX_CYCLES:
        raise ValueError(f"the step runs {log.end:.3g} cycles on {cfg.name}, beyond {MAX_CYCLES:.3g}: "
                         f"the trace's sizes are not those of one forward step")
    ops = _ops_table(trace, plans, log, cfg)
    summary = _summary(trace, ops, cfg, log.end, len(plans))
    if timeline is not None:
        info = [{"layer": int(l), "op": o, "op_class": c} for l, o, c in
                zip(ops["layer"], ops["op"], ops["op_class"])]
        write_chrome_trace(log, timeline, cfg.clock_ghz, cfg.name, info)
    return SimResult(ops=ops, summary=summary, accel=cfg)


def _check_tiles(trace: pd.DataFrame, plans: list, cfg: AcceleratorConfig) -> int:
    """DMA tile loads of the step; a step above :data:`MAX_DMA_TILES` is refused before it runs."""
    tiles = sum(dma_tiles(plans, cfg))
    if tiles > MAX_DMA_TILES:
        ctx = trace.attrs.get("context")
        raise ValueError(
            f"this step needs {tiles:,} DMA tile loads on {cfg.name} (weight buffer half = "
            f"{cfg.sram.weight_buffer_kib / 2:g} KiB), above the limit of {MAX_DMA_TILES:,} (~30 s); "
            f"shorten the step (context={ctx}, batch={trace.attrs.get('batch')}) or enlarge "
            f"sram.weight_buffer_kib")
    return tiles


def _ops_table(trace: pd.DataFrame, plans: list, log, cfg: AcceleratorConfig) -> pd.DataFrame:
    """The per-op ``sim_result`` table of a scheduled run (timings, bounds, bytes, energy by component)."""
    start = np.array([t.start for t in log.timings], dtype=np.int64)
    end = np.array([t.end for t in log.timings], dtype=np.int64)
    comp = np.array([t.compute for t in log.timings], dtype=np.int64)
    mem = np.array([t.memory for t in log.timings], dtype=np.int64)
    cycles = end - start
    # Static energy: the run's leakage split over ops by the time each adds to the run.
    prev_end = np.maximum.accumulate(np.concatenate([[0], end[:-1]]))
    exclusive = np.maximum(end - np.maximum(prev_end, 0), 0)
    static_pj = exclusive * (1e-9 / cfg.clock_ghz) * cfg.static_w * 1e12
    peak = np.array([p.peak_rate for p in plans])
    work = np.array([p.work for p in plans])
    # The bound of every op, named: memory (DMA time exceeds the unit's), else what bounds the
    # unit: compute, weight_load (folds wait on their stationary-operand load), sram, vector.
    bound = np.where(comp >= mem, np.array([p.limit for p in plans], dtype=object), "memory").astype(str)
    ops = pd.DataFrame({
        "layer": trace["layer"].astype(np.int64).to_numpy(),
        "op": trace["op"].astype(str).to_numpy(),
        "op_class": trace["op_class"].astype(str).to_numpy(),
        "phase": trace["phase"].astype(str).to_numpy(),
        "unit": [p.unit for p in plans],
        "start_cycle": start, "end_cycle": end, "cycles": cycles,
        "compute_cycles": comp, "memory_cycles": mem,
        "bound": bound,
        "utilization": np.where(cycles > 0, work / (peak * np.maximum(cycles, 1)), 0.0),
        "bytes_offchip": [p.traffic.offchip_read + p.traffic.offchip_write for p in plans],
        "bytes_sram": [p.traffic.sram for p in plans],
        "energy_compute_pj": [p.energy_compute_pj for p in plans],
        "energy_sram_pj": [p.energy_sram_pj for p in plans],
        "energy_offchip_pj": [p.energy_offchip_pj for p in plans],
        "energy_vector_pj": [p.energy_vector_pj for p in plans],
        "energy_static_pj": static_pj.astype(float),
        "pair": [p.pair for p in plans],
        "needs": [p.needs for p in plans],
        "fallback": np.array([p.fallback for p in plans], dtype=bool),
        "ideal_compute_cycles": [p.ideal_compute_cycles for p in plans],
        "causal": np.array([p.causal for p in plans], dtype=bool),
    })
    ops.attrs = {"accelerator": cfg.name, "clock_ghz": cfg.clock_ghz,
                 **{k: v for k, v in trace.attrs.items() if isinstance(v, (str, int, float, bool))}}
    return ops


def _progress_hook(progress: Callable[[str], None], n: int, tiles: int, accel: str) -> Callable[[int], None]:
    """Announce a large step, then report every 10 % of its ops (for ``simulate``'s ``progress``)."""
    progress(f"simulating {n} ops, {tiles:,} DMA tiles on {accel} (about {tiles / 35_000:.0f} s)")
    t0, marks = time.perf_counter(), {math.ceil(n * k / 10) - 1 for k in range(1, 10)}

    def on_op_done(i: int) -> None:
        if i in marks:
            progress(f"  {100 * (i + 1) // n} % of ops issued ({time.perf_counter() - t0:.1f} s)")
    return on_op_done


def fallback_ops(ops: pd.DataFrame) -> list[dict]:
    """Ops that ran on a PE pair wider than their operands (no native pair), grouped.

    One entry per (op name, needed pair, pair used, array), in trace order, with
    the number of trace rows (``count``, e.g. one per layer).  Empty when every
    matmul found an exact pair.
    """
    fb = ops[ops["fallback"]]
    if fb.empty:
        return []
    groups = fb.groupby(["op", "needs", "pair", "unit"], sort=False).size()
    return [{"op": op, "needs": needs, "pair": pair, "array": unit, "count": int(k)}
            for (op, needs, pair, unit), k in groups.items()]


def fallback_warning(summary: SimSummary) -> str | None:
    """One line naming the fallback ops of a summary (``None`` if there are none)."""
    fb = summary.fallback_ops
    if not fb:
        return None
    parts = ", ".join(f"{f['op']} {f['needs']}->{f['pair']} on {f['array']} (x{f['count']})" for f in fb)
    return (f"warning: {summary.accelerator} has no native PE pair for {sum(f['count'] for f in fb)} "
            f"op(s); they ran on a wider pair: {parts}")


def _footprint(trace: pd.DataFrame, phase: str) -> tuple[float, float]:
    """(weight bytes, KV-cache bytes held after the step) of a trace."""
    gemm = trace["op_class"] == "gemm"
    weight_bytes = float(trace.loc[gemm, "weight_bytes"].sum())
    ops_names = set(trace["op"])
    if "embedding" in ops_names and "lm_head" in ops_names and not trace.attrs.get("tie_word_embeddings"):
        # Embedding table: same shape as the LM head (untied), stored FP16 in every datapath.
        weight_bytes += float(trace.loc[trace["op"] == "lm_head", "weight_bytes"].iloc[0])
    attn = trace["op_class"] == "attention"
    if "kv_cache_bytes" in trace.attrs:
        kv = float(trace.attrs["kv_cache_bytes"])
    elif phase == "decode":
        kv = float(trace.loc[attn, "kv_bytes_read"].sum() + trace["kv_bytes_write"].sum())
    else:
        kv = float(trace["kv_bytes_write"].sum())
    return weight_bytes, kv


def _summary(trace: pd.DataFrame, ops: pd.DataFrame, cfg: AcceleratorConfig, end: int, n: int) -> SimSummary:
    gemm = trace["op_class"] == "gemm"
    tokens = int(trace.loc[gemm, "M"].max()) if gemm.any() else int(trace.attrs.get("batch", 1))
    phase = str(trace["phase"].iloc[0])
    latency = end / (cfg.clock_ghz * 1e9)
    by = {c: float(ops[f"energy_{c}_pj"].sum()) * 1e-12 for c in COMPONENTS}
    total = sum(by.values())
    weight_bytes, kv = _footprint(trace, phase)
    footprint = weight_bytes + kv
    capacity = cfg.offchip.capacity_gb * 1e9
    off_weights = 0.0 if cfg.weight_residency == "sram" else weight_bytes   # resident weights: checked on entry
    fits = off_weights + kv <= capacity
    reason = "" if fits else (
        f"weights {off_weights / 1e9:.2f} GB + KV cache {kv / 1e9:.2f} GB = {(off_weights + kv) / 1e9:.2f} GB "
        f"exceed the {cfg.offchip.capacity_gb:g} GB off-chip capacity of {cfg.name} (batch "
        f"{trace.attrs.get('batch', '?')}, context {trace.attrs.get('context', '?')}): the point is infeasible; "
        f"its timing is what the chip would do with unlimited capacity")
    costs = cfg.chip_costs()
    area = costs.area_mm2
    power = total / latency if latency > 0 else 0.0
    static_w = by["static"] / latency if latency > 0 else 0.0
    dense_ops = 2.0 * float(trace.loc[trace["op_class"] != "vector", "macs_dense"].sum())
    tops = dense_ops / latency / 1e12 if latency > 0 else 0.0
    tps = tokens / latency if latency > 0 else float("inf")
    return SimSummary(
        accelerator=cfg.name,
        comparison=cfg.comparison,
        energy_basis=cfg.energy_basis,
        phase=phase,
        ops=n,
        tokens=tokens,
        cycles=int(end),
        clock_ghz=cfg.clock_ghz,
        latency_s=latency,
        tokens_per_s=tps,
        energy_j=total,
        energy_j_per_token=total / tokens,
        energy_j_by_component=by,
        bytes_offchip=float(ops["bytes_offchip"].sum()),
        weight_bytes=weight_bytes,
        kv_bytes=kv,
        footprint_bytes=footprint,
        fits_offchip=fits,
        compute_area_mm2_45nm=cfg.compute_area_mm2_45nm(),
        cycles_by_bound={b: int(ops.loc[ops["bound"] == b, "cycles"].sum()) for b in BOUNDS},
        fallback_ops=tuple(fallback_ops(ops)),
        infeasible_reason=reason,
        capacity_bytes=capacity,
        area_mm2=area,
        area_mm2_by_part=dict(costs.area_mm2_by_part),
        power_w=power,
        power_static_w=static_w,
        power_dynamic_w=power - static_w,
        peak_tops=costs.peak_tops,
        tops=tops,
        tops_per_mm2=costs.peak_tops / area if area > 0 else 0.0,
        tops_per_w=tops / power if power > 0 else 0.0,
        tokens_per_s_per_w=tps / power if power > 0 else 0.0,
        tokens_per_s_per_mm2=tps / area if area > 0 else 0.0,
        offchip_sustained_gbps=cfg.offchip.sustained_gbps,
        causal_ops=int(ops["causal"].sum()),
    )
