"""Public entry point: ``simulate(trace, accel) -> SimResult`` (per-op table + per-token summary)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .config import AcceleratorConfig, load_accelerator
from .engine import check_trace, plan_ops, run, write_chrome_trace

COMPONENTS = ("compute", "sram", "offchip", "vector", "static")


@dataclass
class SimResult:
    """``ops``: one row per trace op (sim_result schema, plus ``pair``, ``needs``,
    ``fallback`` and ``ideal_compute_cycles``); ``summary``: per-step / per-token
    totals (``fallback_ops`` lists ops run on a wider pair than their operands)."""
    ops: pd.DataFrame
    summary: dict
    accel: AcceleratorConfig = field(repr=False)

    def __repr__(self) -> str:
        s = self.summary
        return (f"SimResult({s['accelerator']}, {s['phase']}, {s['tokens']} tokens: "
                f"{s['latency_s'] * 1e3:.3f} ms, {s['tokens_per_s']:.1f} tok/s, "
                f"{s['energy_j_per_token'] * 1e3:.3f} mJ/token)")


def simulate(trace: pd.DataFrame, accel: "str | Path | AcceleratorConfig",
             timeline: "str | Path | None" = None) -> SimResult:
    """Simulate one op trace (one forward step) on one accelerator.

    ``accel`` is a preset name, a YAML path or an :class:`AcceleratorConfig`;
    ``timeline`` (optional ``.json`` path) receives a Chrome trace-event file.
    """
    cfg = load_accelerator(accel)
    check_trace(trace)
    trace = trace.reset_index(drop=True)
    plans = plan_ops(trace, cfg)
    names = [f"L{int(l)}.{o}" for l, o in zip(trace["layer"], trace["op"])]
    log = run(plans, cfg, names)

    n = len(plans)
    start = np.array([t.start for t in log.timings], dtype=np.int64)
    end = np.array([t.end for t in log.timings], dtype=np.int64)
    comp = np.array([t.compute for t in log.timings], dtype=np.int64)
    mem = np.array([t.memory for t in log.timings], dtype=np.int64)
    cycles = end - start
    # Static energy: the run's leakage split over ops by the time each adds to the run.
    prev_end = np.maximum.accumulate(np.concatenate([[0], end[:-1]]))
    exclusive = np.maximum(end - np.maximum(prev_end, 0), 0)
    sec_per_cycle = 1e-9 / cfg.clock_ghz
    static_pj = exclusive * sec_per_cycle * cfg.static_power_w * 1e12
    peak = np.array([p.peak_rate for p in plans])
    work = np.array([p.work for p in plans])
    unit = [p.unit for p in plans]
    bound = np.where(comp >= mem, np.where(np.array(unit) == "vector", "vector", "compute"), "memory")

    ops = pd.DataFrame({
        "layer": trace["layer"].astype(np.int64).to_numpy(),
        "op": trace["op"].astype(str).to_numpy(),
        "op_class": trace["op_class"].astype(str).to_numpy(),
        "phase": trace["phase"].astype(str).to_numpy(),
        "unit": unit,
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
    })
    ops.attrs = {"accelerator": cfg.name, "clock_ghz": cfg.clock_ghz,
                 **{k: v for k, v in trace.attrs.items() if isinstance(v, (str, int, float, bool))}}

    summary = _summary(trace, ops, cfg, log.end, n)
    summary["fallback_ops"] = fallback_ops(ops)
    if timeline is not None:
        info = [{"layer": int(l), "op": o, "op_class": c} for l, o, c in
                zip(ops["layer"], ops["op"], ops["op_class"])]
        write_chrome_trace(log, timeline, cfg.clock_ghz, cfg.name, info)
    return SimResult(ops, summary, cfg)


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


def fallback_warning(summary: dict) -> str | None:
    """One line naming the fallback ops of a summary (``None`` if there are none)."""
    fb = summary.get("fallback_ops") or []
    if not fb:
        return None
    parts = ", ".join(f"{f['op']} {f['needs']}->{f['pair']} on {f['array']} (x{f['count']})" for f in fb)
    return (f"warning: {summary['accelerator']} has no native PE pair for {sum(f['count'] for f in fb)} "
            f"op(s); they ran on a wider pair: {parts}")


def _summary(trace: pd.DataFrame, ops: pd.DataFrame, cfg: AcceleratorConfig, end: int, n: int) -> dict:
    gemm = trace["op_class"] == "gemm"
    tokens = int(trace.loc[gemm, "M"].max()) if gemm.any() else int(trace.attrs.get("batch", 1))
    phase = str(trace["phase"].iloc[0])
    latency = end / (cfg.clock_ghz * 1e9)
    by = {c: float(ops[f"energy_{c}_pj"].sum()) * 1e-12 for c in COMPONENTS}
    total = sum(by.values())
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
    footprint = weight_bytes + kv
    return {
        "accelerator": cfg.name,
        "comparison": cfg.comparison,
        "energy_basis": cfg.energy_basis,
        "phase": phase,
        "ops": n,
        "tokens": tokens,
        "cycles": int(end),
        "clock_ghz": cfg.clock_ghz,
        "latency_s": latency,
        "tokens_per_s": tokens / latency if latency > 0 else float("inf"),
        "energy_j": total,
        "energy_j_per_token": total / tokens,
        "energy_j_by_component": by,
        "bytes_offchip": float(ops["bytes_offchip"].sum()),
        "weight_bytes": weight_bytes,
        "kv_bytes": kv,
        "footprint_bytes": footprint,
        "fits_offchip": footprint <= cfg.offchip.capacity_gb * 1e9,
        "compute_area_mm2_45nm": cfg.compute_area_mm2_45nm(),
        "cycles_by_bound": {b: int(ops.loc[ops["bound"] == b, "cycles"].sum())
                            for b in ("compute", "memory", "vector")},
    }
