"""Sensitivity bands of the headline ratios: how far each moves when one uncertain input moves.

Knobs, one at a time with the others at their nominal values, on the claims preset's comparison
(decode at the headline context and the longest one, and the prefill):

* **off-chip pJ/bit**: from the lowest to the highest HBM generation of sim's cost table (or 0.5x to
  1.5x of the chip's own when the table has none) -- energy only;
* **static power**: 0.5x to 2x of each chip's -- energy only;
* **sustained bandwidth**: 70 % of peak to the peak -- re-simulated;
* **sparsity profile**: the comparison's other available profiles (random weights, Table 2,
  trained) for the 1-bit datapaths -- re-simulated (FP16 has no zero activations under any);
* **chip fixed and skip costs** (:data:`CHIP_KNOBS`): the per-row cost of gathering the surviving
  weight rows, the latency of building the skip index, the per-op dispatch cost and the memory latency,
  each over its band -- re-simulated on every datapath's chip.

The energy knobs are applied to the nominal run's energy components: sim's off-chip energy is
linear in pJ/bit and its static energy linear in static power, so E' = E + (f_pJ - 1) E_offchip +
(f_static - 1) E_static needs no new simulation (``tests/test_experiments_axes.py`` checks it
against one).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

import sim.energy as sim_energy
from bitsim.experiments.runs import Job
from model.paper_sparsity import PAPER_TABLE2
from model.trace import PROFILES as MODEL_PROFILES
from sim.config import OffchipConfig

DATAPATHS = ("fp16", "b1.58", "a4.8")
#: (numerator, denominator) pairs of the headline ratios, "higher = a4.8 better".
PAIRS = (("a4.8", "b1.58"), ("a4.8", "fp16"))
SUSTAINED = (0.7, 1.0)
STATIC = (0.5, 2.0)
HBM = ("hbm2", "hbm2e", "hbm3", "hbm3e")
_HAS_SUSTAINED = "sustained_fraction" in getattr(OffchipConfig, "__dataclass_fields__", {})


def workloads(plan) -> list[tuple[str, int]]:
    cfg = plan.config
    out = [("decode", c) for c in sorted({plan.headline_context, max(cfg.contexts)})] if cfg.contexts else []
    return out + ([("prefill", cfg.prefill_tokens)] if cfg.prefill_tokens else [])


def other_profiles(plan) -> list[str]:
    """Profiles the band tries besides the comparison's own (only those the model can apply to the preset)."""
    comp, out = plan.main, []
    for p in ("measured", "paper-table2", "trained"):
        if p == comp.profile or p not in MODEL_PROFILES:
            continue
        if p == "paper-table2" and not all(plan.claims_preset in PAPER_TABLE2.get(d, {})
                                           for d in comp.variants if d != "fp16"):
            continue
        out.append(p)
    return out


def pj_range(nominal: float) -> tuple[tuple[float, float], str]:
    """(low, high) pJ/bit of the band and where it comes from."""
    row = getattr(sim_energy, "memory_row", None)
    vals = [row(k, "pj_per_bit").value for k in HBM if row and row(k, "pj_per_bit") is not None]
    if vals:
        return (min(vals), max(vals)), "HBM generations of sim's cost table (" + ", ".join(
            k for k in HBM if row(k, "pj_per_bit") is not None) + ")"
    return (0.5 * nominal, 1.5 * nominal), "stated range 0.5x-1.5x of the chip's pJ/bit (no per-generation table)"


#: The fixed and skip costs of a chip, each swept over the band of its assumption (the rows ``asic.*`` of
#: ``sim/data/hardware_costs.csv`` name the nominal value and the band): applied to every datapath's chip,
#: so a ratio moves only by how differently the datapaths depend on them.
CHIP_KNOBS: dict[str, tuple[str, tuple[float, ...]]] = {
    "skip gather cost": ("offchip.row_miss_ns", (0.0, 1.5)),
    "skip index build": ("sparsity.index_latency_ns", (10.0, 300.0)),
    "per-op dispatch": ("op_overhead_ns", (20.0, 1333.0)),
    "memory latency": ("offchip.latency_ns", (50.0, 600.0)),
}


def _chip_knob_jobs(var, key) -> dict[Job, dict[str, Any]]:
    jobs: dict[Job, dict] = {}
    for knob, (field, settings) in CHIP_KNOBS.items():
        for v in settings:
            jobs[Job(trace=key, chip=var.chip.with_overrides({field: v}))] = {
                "knob": knob, "setting": f"{field} {v:g}", "role": "matched",
                "accelerator_key": var.accelerator, "basis": "iso-peak"}
    return jobs


def sensitivity_jobs(plan) -> dict[Job, dict[str, Any]]:
    """The re-simulated knobs: sustained bandwidth and the chip's fixed and skip costs (every datapath), and
    the other profiles (1-bit datapaths)."""
    jobs: dict[Job, dict] = {}
    comp = plan.main
    for d in (x for x in DATAPATHS if x in comp.variants):
        var = comp.variants[d]
        acc = var.chip.config()
        for phase, ctx in workloads(plan):
            key = plan.key(plan.claims_preset, d, phase, ctx)
            jobs.update(_chip_knob_jobs(var, key))
            nominal = getattr(acc.offchip, "sustained_fraction", 1.0)
            for frac in SUSTAINED:
                if abs(frac - nominal) < 1e-9:
                    continue
                over = ({"offchip.sustained_fraction": frac} if _HAS_SUSTAINED else
                        {"offchip.bandwidth_gbps": acc.offchip.bandwidth_gbps * frac / nominal})
                jobs[Job(trace=key, chip=var.chip.with_overrides(over))] = {
                    "knob": "sustained bandwidth", "setting": f"{frac:g} of peak", "role": "matched",
                    "accelerator_key": var.accelerator, "basis": "iso-peak"}
            if d == "fp16":
                continue
            for p in other_profiles(plan):
                jobs[Job(trace=dataclasses.replace(key, profile=p), chip=var.chip)] = {
                    "knob": "sparsity profile", "setting": p, "role": "matched", "accelerator_key": var.accelerator,
                    "basis": "iso-peak"}
    return jobs


def _value(metric: str, num: pd.Series, den: pd.Series) -> float:
    if metric == "speed":
        return float(num.tokens_per_s / den.tokens_per_s)
    return float(den.energy_j_per_token / num.energy_j_per_token)


def _energy(row: pd.Series, f_pj: float = 1.0, f_static: float = 1.0) -> pd.Series:
    r = row.copy()
    r["energy_j_per_token"] = (row.energy_j_per_token + (f_pj - 1) * row.energy_offchip_j
                               + (f_static - 1) * row.energy_static_j)
    return r


def band_table(plan, summary: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """``study_sensitivity``: every headline ratio at its nominal value and at each knob setting."""
    preset = plan.claims_preset
    nom = summary[(summary.preset == preset) & (summary.role == "matched")]
    out = []
    for phase, ctx in workloads(plan):
        base = {d: nom[(nom.datapath == d) & (nom.phase == phase) & (nom.context == ctx)] for d in DATAPATHS}
        base = {d: b.iloc[0] for d, b in base.items() if len(b)}
        alt = rows[(rows.phase == phase) & (rows.context == ctx)] if len(rows) else rows
        for num_dp, den_dp in PAIRS:
            if num_dp not in base or den_dp not in base:
                continue
            n0, d0 = base[num_dp], base[den_dp]
            for metric in ("speed", "energy"):
                nominal = _value(metric, n0, d0)
                common = {"ratio": f"{metric} {num_dp}/{den_dp}", "metric": metric, "numerator": num_dp,
                          "denominator": den_dp, "phase": phase, "context": int(ctx), "nominal": nominal,
                          "profile": plan.main.profile}
                cases: list[tuple[str, str, float]] = []
                if metric == "energy":
                    pj0n = plan.main.variants[num_dp].chip.config().offchip.pj_per_bit
                    pj0d = plan.main.variants[den_dp].chip.config().offchip.pj_per_bit
                    (lo, hi), src = pj_range(pj0n)
                    for p in (lo, hi):
                        cases.append(("off-chip pJ/bit", f"{p:g} pJ/bit ({src})",
                                      _value(metric, _energy(n0, f_pj=p / pj0n), _energy(d0, f_pj=p / pj0d))))
                    for f in STATIC:
                        cases.append(("static power", f"{f:g}x each chip's",
                                      _value(metric, _energy(n0, f_static=f), _energy(d0, f_static=f))))
                for knob in ("sustained bandwidth", "sparsity profile", *CHIP_KNOBS):
                    sel = alt[alt.knob == knob] if len(alt) else alt
                    for setting, g in (sel.groupby("setting", sort=False) if len(sel) else []):
                        by = {r.datapath: r for _, r in g.iterrows()}
                        n = by.get(num_dp, n0 if knob == "sparsity profile" and num_dp == "fp16" else None)
                        d = by.get(den_dp, d0 if knob == "sparsity profile" and den_dp == "fp16" else None)
                        if n is not None and d is not None:
                            cases.append((knob, str(setting), _value(metric, n, d)))
                for knob, setting, v in cases:
                    out.append({**common, "knob": knob, "setting": setting, "value": v})
    df = pd.DataFrame(out)
    if len(df):
        g = df.groupby("ratio phase context".split(), sort=False).value
        df["band_low"] = np.minimum(g.transform("min"), df.nominal)
        df["band_high"] = np.maximum(g.transform("max"), df.nominal)
    return df
