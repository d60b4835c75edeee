"""The study's axes on the claims preset: batch, off-chip bandwidth, memory technology, comparison basis,
and the crossovers they name.

Every point is the comparison's own variant (strongest baselines, one profile) with one thing
changed: the decode batch (capacity-aware: a point whose weights + KV cache exceed the chip's
off-chip capacity is marked infeasible, and never drawn as a throughput), the off-chip bandwidth
(x each chip's own), the memory generation (pJ/bit and sustained fraction from sim's cost table),
or the chip's size (iso-area / iso-power, :mod:`bitsim.experiments.sizing`).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

import sim.energy as sim_energy
from bitsim.experiments.chipmetrics import chip_area, row_power
from bitsim.experiments.runs import Chip, Job, Runner
from bitsim.experiments.sizing import BASES, Sized, size_to_area, size_to_power
from sim.config import OffchipConfig

#: The datapaths the axes compare (a4.8-fp4 stays in the study's own comparison).
AXIS_DATAPATHS = ("fp16", "b1.58", "a4.8")
#: Datapaths whose zero skipping the batch sweep measures (skip on vs off).
SKIP_DATAPATHS = ("b1.58", "a4.8")
#: Zero skipping "pays" while it buys at least this speedup.
SKIP_PAYS = 1.05
#: Decode "scales with bandwidth" while doubling the bandwidth buys at least this speedup.
BANDWIDTH_SCALES = 1.5
#: Memory generations of the technology axis, when sim's cost table has them.
MEMORY_GENERATIONS = ("hbm2e", "hbm3", "hbm3e", "lpddr5", "lpddr5x", "gddr6")
_HAS_SUSTAINED = "sustained_fraction" in getattr(OffchipConfig, "__dataclass_fields__", {})


def _dps(plan) -> list[str]:
    return [d for d in AXIS_DATAPATHS if d in plan.main.variants]


def _tag(var, **more: Any) -> dict[str, Any]:
    return {"accelerator_key": var.accelerator, "role": "matched", "basis": "iso-peak", "variant": var.changes,
            **more}


# ---------------------------------------------------------------------------- batch
def batch_jobs(plan) -> dict[Job, dict]:
    """Decode at the headline context, every batch of the study, zero skipping on (and off for the 1-bit chips)."""
    jobs: dict[Job, dict] = {}
    for d in _dps(plan):
        var = plan.main.variants[d]
        skips = [("on", var.chip)]
        if d in SKIP_DATAPATHS and var.chip.config().sparsity.skip_weight_fetch:
            skips.append(("off", var.chip.with_overrides({"sparsity.skip_weight_fetch": False,
                                                          "sparsity.skip_compute": False})))
        for b in plan.config.batches:
            key = plan.key(plan.claims_preset, d, "decode", plan.headline_context, batch=b)
            for skip, chip in skips:
                jobs[Job(trace=key, chip=chip)] = _tag(var, skip=skip)
    return jobs


def batch_table(rows: pd.DataFrame) -> pd.DataFrame:
    """``study_batch``: one row per (datapath, batch, skip) with feasibility and the gain of zero skipping."""
    if rows.empty:
        return rows
    df = rows.sort_values(["datapath", "skip", "batch"], ignore_index=True)
    on = df[df.skip == "on"].set_index(["datapath", "batch"]).tokens_per_s
    off = df[df.skip == "off"].set_index(["datapath", "batch"]).tokens_per_s
    gain = (on / off).rename("skip_gain")
    df = df.merge(gain.reset_index(), on=["datapath", "batch"], how="left")
    return df


# ---------------------------------------------------------------------------- bandwidth
def bandwidth_jobs(plan) -> dict[Job, dict]:
    """Decode at the headline context with each chip's off-chip bandwidth x every factor of the study."""
    jobs: dict[Job, dict] = {}
    for d in _dps(plan):
        var = plan.main.variants[d]
        bw0 = var.chip.config().offchip.bandwidth_gbps
        key = plan.key(plan.claims_preset, d, "decode", plan.headline_context)
        for f in plan.config.bandwidth_factors:
            chip = var.chip if f == 1.0 else var.chip.with_overrides({"offchip.bandwidth_gbps": bw0 * f})
            jobs[Job(trace=key, chip=chip)] = _tag(var, bandwidth_factor=float(f), bandwidth_gbps=bw0 * f)
    return jobs


def bandwidth_table(rows: pd.DataFrame) -> pd.DataFrame:
    """``study_bandwidth``: tokens/s against peak bandwidth, and the gain of each doubling."""
    if rows.empty:
        return rows
    df = rows.sort_values(["datapath", "bandwidth_gbps"], ignore_index=True)
    df["tokens_per_s_per_gbps"] = df.tokens_per_s / df.bandwidth_gbps
    return df


# ---------------------------------------------------------------------------- technology
def memory_generations() -> list[tuple[str, float, float | None, str]]:
    """(kind, pJ/bit, sustained fraction or None, source) of each memory generation sim's cost table has."""
    row = getattr(sim_energy, "memory_row", None)  # sim's per-generation rows, when it has them
    out = []
    for kind in MEMORY_GENERATIONS:
        e = row(kind, "pj_per_bit") if row else None
        if e is None:
            continue
        sf = row(kind, "sustained_fraction") if row else None
        out.append((kind, float(e.value), float(sf.value) if sf is not None else None, e.source))
    return out


def technology_jobs(plan) -> dict[Job, dict]:
    """Decode at the headline context with the chip's memory swapped for each generation (same peak bandwidth)."""
    jobs: dict[Job, dict] = {}
    for d in _dps(plan):
        var = plan.main.variants[d]
        key = plan.key(plan.claims_preset, d, "decode", plan.headline_context)
        for kind, pj, sf, source in memory_generations():
            over: dict[str, Any] = {"offchip.kind": kind, "offchip.pj_per_bit": pj}
            if sf is not None and _HAS_SUSTAINED:
                over["offchip.sustained_fraction"] = sf
            jobs[Job(trace=key, chip=var.chip.with_overrides(over))] = _tag(
                var, memory=kind, memory_pj_per_bit=pj, memory_sustained=sf if _HAS_SUSTAINED else float("nan"),
                memory_source=source)
    return jobs


def technology_table(rows: pd.DataFrame) -> pd.DataFrame:
    """``study_technology``: energy and speed of decode per memory generation."""
    return rows.sort_values(["datapath", "memory_pj_per_bit", "memory"], ignore_index=True) if len(rows) else rows


# ---------------------------------------------------------------------------- bases
def _size_power(trace: pd.DataFrame, chip: Chip, target_w: float) -> Sized:
    return size_to_power(chip, trace, target_w)


def run_bases(plan, runner: Runner) -> pd.DataFrame:
    """``study_bases``: decode at the headline context and the prefill on chips sized iso-peak, iso-area
    (the fp16 chip's area) and iso-power (the fp16 chip's power on the prefill, i.e. its power budget)."""
    cfg = plan.config
    dps = _dps(plan)
    if "fp16" not in dps or not cfg.prefill_tokens:
        return pd.DataFrame()
    ref = plan.main.variants["fp16"]
    pre = {d: plan.key(plan.claims_preset, d, "prefill", cfg.prefill_tokens) for d in dps}
    dec = {d: plan.key(plan.claims_preset, d, "decode", plan.headline_context) for d in dps}
    first = runner.run([Job(trace=pre[d], chip=plan.main.variants[d].chip) for d in dps])
    target_area, area_metric = chip_area(ref.chip.config())
    target_power, power_how = row_power(first[Job(trace=pre["fp16"], chip=ref.chip)].row)
    sized: dict[tuple[str, str], Sized] = {}
    for d in dps:
        var = plan.main.variants[d]
        sized[(d, "iso-peak")] = Sized(chip=var.chip, basis="iso-peak", factor=1.0, target=float("nan"),
                                       reached=float("nan"), metric="the presets' PE count, clock, memory, SRAM")
        sized[(d, "iso-area")] = (size_to_area(var.chip, target_area) if d != "fp16" else
                                  Sized(chip=var.chip, basis="iso-area", factor=1.0, target=target_area,
                                        reached=target_area, metric=area_metric))
    calls = [(runner.trace(pre[d]), plan.main.variants[d].chip, target_power) for d in dps if d != "fp16"]
    for d, s in zip([d for d in dps if d != "fp16"], runner.map(_size_power, calls)):
        sized[(d, "iso-power")] = s
    sized[("fp16", "iso-power")] = Sized(chip=ref.chip, basis="iso-power", factor=1.0, target=target_power,
                                         reached=target_power, metric=f"power on the sizing workload ({power_how})")
    points = [(Job(trace=k[d], chip=s.chip), d, s) for (d, _basis), s in sized.items() for k in (pre, dec)]
    out = runner.run([job for job, _d, _s in points])
    rows = []
    for job, d, s in points:
        r = out[job].row
        acc = s.chip.config()
        area, area_src = chip_area(acc)
        rows.append({"preset": job.trace.preset, "datapath": d, "phase": job.trace.phase,
                     "context": job.trace.context, "batch": job.trace.batch, "profile": job.trace.profile,
                     "basis": s.basis, "array_factor": s.factor, "basis_target": s.target, "basis_reached": s.reached,
                     "basis_metric": s.metric, "basis_within": bool(s.within),
                     "pes": int(sum(a.pes for a in acc.arrays)), "area_mm2": area, "area_source": area_src,
                     "power_w": row_power(r)[0], "power_source": row_power(r)[1],
                     "tokens_per_s": r["tokens_per_s"], "energy_j_per_token": r["energy_j_per_token"],
                     "accelerator": r.get("accelerator", ""), "memory_bound_frac": r.get("memory_bound_frac", np.nan),
                     "overrides": ", ".join(f"{k}={v}" for k, v in s.chip.override_dict().items()
                                            if k.startswith("arrays."))})
    order = {b: i for i, b in enumerate(BASES)}
    df = pd.DataFrame(rows)
    return df.sort_values(["phase", "basis", "datapath"], key=lambda c: c.map(order) if c.name == "basis" else c,
                          ignore_index=True)


# ---------------------------------------------------------------------------- crossovers
def _cross_log(xs: np.ndarray, ys: np.ndarray, level: float, falling: bool = True) -> float | None:
    """The x (log-interpolated) where ``ys`` first crosses ``level`` (downwards when ``falling``); None if never."""
    for i in range(1, len(xs)):
        a, b = ys[i - 1], ys[i]
        if (a >= level > b) if falling else (a < level <= b):
            t = (a - level) / (a - b) if a != b else 0.0
            return float(math.exp(math.log(xs[i - 1]) + t * (math.log(xs[i]) - math.log(xs[i - 1]))))
    return None


def _row(name: str, datapath: str, value: float | None, unit: str, lo: float, hi: float, how: str,
         figure: str) -> dict:
    """One crossover row; ``value`` None = not reached in the swept range."""
    if value is None:
        where, v = "beyond the range", float("nan")
    elif value <= lo:
        where, v = "at or below the range", float(lo)
    else:
        where, v = ("within the range" if value <= hi else "beyond the range"), float(value)
    return {"crossover": name, "datapath": datapath, "value": v, "unit": unit, "where": where,
            "range_lo": float(lo), "range_hi": float(hi), "definition": how, "figure": figure}


def _context_crossovers(plan, summary: pd.DataFrame) -> list[dict]:
    """Where the KV cache outweighs the weights, and where a4.8 reaches 2x the strongest b1.58."""
    rows = []
    dec = summary[(summary.preset == plan.claims_preset) & (summary.phase == "decode") & (summary.role == "matched")]
    if not len(dec):
        return rows
    for d, g in dec.groupby("datapath", sort=False):
        last = g.sort_values("context").iloc[-1]
        if last.attention_bytes_offchip > 0:
            c_star = float(last.context * last.gemm_bytes_offchip / last.attention_bytes_offchip)
            rows.append(_row("context at which the KV cache outweighs the weights", d, c_star, "tokens",
                             g.context.min(), g.context.max(),
                             "attention (KV) off-chip bytes per decode step = GEMM (weight) bytes; KV bytes "
                             "grow linearly with context", "context"))
    a = dec[dec.datapath == "a4.8"].set_index("context").tokens_per_s
    b = dec[dec.datapath == "b1.58"].set_index("context").tokens_per_s
    common = sorted(set(a.index) & set(b.index))
    if len(common) >= 2:
        r = np.array([a[c] / b[c] for c in common])
        rows.append(_row("context at which a4.8 reaches 2x the strongest b1.58", "a4.8",
                         _cross_log(np.array(common, float), r, 2.0, falling=False) if r[0] < 2 else
                         float(common[0]), "tokens", common[0], common[-1],
                         "decode tokens/s ratio a4.8 / strongest b1.58 crosses 2 (the press claim)", "context"))
    return rows


def _batch_crossovers(bt: pd.DataFrame) -> list[dict]:
    """Where zero skipping stops paying, decode stops being memory-bound, and the largest batch that fits."""
    rows = []
    for d, g in bt[bt.skip == "on"].groupby("datapath", sort=False):
        g = g.sort_values("batch")
        xs = g.batch.to_numpy(float)
        if g.skip_gain.notna().any():
            gains = g.skip_gain.to_numpy(float)
            v = _cross_log(xs, gains, SKIP_PAYS) if gains[0] >= SKIP_PAYS else float(xs[0])
            rows.append(_row("batch at which zero skipping stops paying", d, v, "sequences", xs[0], xs[-1],
                             f"decode speedup of skipping zero-activation weight rows falls below {SKIP_PAYS}x "
                             "(a row is skipped only when it is zero for every sequence of the batch)", "batch"))
        mb = g.memory_bound_frac.to_numpy(float)
        rows.append(_row("batch at which decode stops being memory-bound", d,
                         _cross_log(xs, mb, 0.5) if mb[0] >= 0.5 else float(xs[0]), "sequences", xs[0], xs[-1],
                         "share of decode cycles in memory-bound ops falls below 50 %", "batch"))
        feas = g[g.feasible.astype(bool)]
        kv_per_seq = float(g.kv_bytes.iloc[0] / g.batch.iloc[0])
        w = float(g.weight_bytes.iloc[0])
        cap = float(g.capacity_gb.iloc[0]) * 1e9
        rows.append(_row("largest batch that fits the chip's memory", d, (cap - w) / kv_per_seq if cap > w else 0.0,
                         "sequences", 1, max(xs[-1], 1),
                         f"(capacity {cap / 1e9:g} GB - weights {w / 1e9:.2f} GB) / KV cache per sequence "
                         f"{kv_per_seq / 1e9:.3f} GB at this context; largest feasible swept batch: "
                         f"{int(feas.batch.max()) if len(feas) else 'none'}", "batch"))
    return rows


def _bandwidth_crossovers(bw: pd.DataFrame) -> list[dict]:
    """The bandwidth above which doubling it buys less than :data:`BANDWIDTH_SCALES` x decode tokens/s."""
    rows = []
    for d, g in bw.groupby("datapath", sort=False):
        g = g.sort_values("bandwidth_gbps")
        xs, ts = g.bandwidth_gbps.to_numpy(float), g.tokens_per_s.to_numpy(float)
        slope = np.array([math.inf] + [(ts[i] / ts[i - 1]) ** (math.log(2) / math.log(xs[i] / xs[i - 1]))
                                        for i in range(1, len(xs))])
        v = next((float(xs[i - 1]) for i in range(1, len(xs)) if slope[i] < BANDWIDTH_SCALES), None)
        rows.append(_row("bandwidth above which decode stops scaling", d, v, "GB/s", xs[0], xs[-1],
                         f"doubling the peak off-chip bandwidth buys less than {BANDWIDTH_SCALES}x decode "
                         "tokens/s (the step is then bound by compute, weight loading or the vector unit)",
                         "bandwidth"))
    return rows


def crossovers(plan, summary: pd.DataFrame, results: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """``study_crossovers``: the named crossovers of the axes, each with its definition and figure."""
    rows = _context_crossovers(plan, summary)
    bt, bw = results.get("batch"), results.get("bandwidth")
    if bt is not None and len(bt):
        rows += _batch_crossovers(bt)
    if bw is not None and len(bw):
        rows += _bandwidth_crossovers(bw)
    return pd.DataFrame(rows)
