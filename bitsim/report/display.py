"""The report's display tables: the experiments' and the measurements' tables as a reader sees them.

Each function returns a table of a schema registered in ``bitsim.report.tables``,
with the column names and roundings of ``report.md``; the numbers themselves come from the
tables they are given, untouched.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import pandas as pd

import sim
from bitsim.experiments.chipmetrics import chip_area
from bitsim.experiments.fair import profile_label
from bitsim.experiments.study import HEADLINE_CONTEXT, StudyPlan, nearest_context
from bitsim.report.labels import run_name
from bitsim.report.measured import ANCHORS_SOURCE
from bitsim.report.tables import REPORT_GAIN_LADDER, REPORT_MEASURED_SPEEDUPS
from model.config import get_config

__all__ = ["HEADLINE_CONTEXT", "accelerator_table", "headline_rows", "headline_table", "ladder_table",
           "nearest_context", "shown_measurements", "speedup_table", "validation_classes_table", "variants_table"]


def headline_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The headline numbers of a ``study_summary`` table, one row per (preset, workload, datapath, accelerator)."""
    s = summary
    workload = [f"decode @ {c}" if p == "decode" else f"prefill {c} tok" for p, c in zip(s.phase, s.context)]
    return pd.DataFrame({
        "preset": s.preset, "workload": workload, "datapath": s.datapath, "accelerator": s.accelerator,
        "tokens/s": s.tokens_per_s, "ms/token": 1e3 * s.latency_s / s.tokens,
        "mJ/token": 1e3 * s.energy_j_per_token,
        "weights GB": s.weight_bytes / 1e9, "KV GB": s.kv_bytes / 1e9,
        "memory-bound %": 100 * s.memory_bound_frac,
    })


def headline_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows of the headline table: decode at the context nearest 2k, and every prefill."""
    dec = summary[summary.phase == "decode"]
    if dec.empty:
        return summary
    ref_ctx = nearest_context(sorted(dec.context.unique()))
    return summary[(summary.phase == "prefill") | (summary.context == ref_ctx)]


def accelerator_table(names: Iterable[str], labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per accelerator (sim preset or YAML): clock, node, PEs, pairs, bandwidth, KV formats, area;
    ``labels`` renames a chip whose YAML reuses a taken name (bitsim.report.collect.accelerator_labels)."""
    rows = []
    for n in names:
        a = sim.load_accelerator(n)
        pairs = sorted({f"{p.weights}x{p.acts}" for arr in a.arrays for p in arr.pe_ops})
        rows.append({"accelerator": (labels or {}).get(n, a.name), "clock GHz": a.clock_ghz, "node nm": a.process_nm,
                     "PEs": sum(arr.pes for arr in a.arrays), "operand pairs": ", ".join(pairs),
                     "off-chip GB/s": a.offchip.bandwidth_gbps, "KV formats": ", ".join(a.kv_formats),
                     "sparsity": ("skip fetch " if a.sparsity.skip_weight_fetch else "")
                     + ("skip compute" if a.sparsity.skip_compute else "") or "none",
                     "PE area mm2 (45nm)": a.compute_area_mm2_45nm(), "chip area mm2": chip_area(a)[0],
                     "static W": float(getattr(a, "static_w", a.static_power_w)), "capacity GB": a.offchip.capacity_gb,
                     "basis": a.comparison,
                     "energy": "dynamic only (no static/board power)" if a.energy_basis == "dynamic-only"
                     else "dynamic + static"})
    return pd.DataFrame(rows)


def ladder_table(ladder: pd.DataFrame) -> pd.DataFrame:
    """A ``gain_ladder`` table (bitsim.experiments.ladder) rounded for reading: ``report_gain_ladder``."""
    t = ladder.assign(**{"tok/s": ladder.tokens_per_s.round(0),
                         "mJ/token": (1e3 * ladder.energy_j_per_token).round(1),
                         "KV GB": (ladder.kv_bytes / 1e9).round(3),
                         "off-chip MB/token": (ladder.bytes_offchip / 1e6).round(0),
                         "step x": ladder.speedup_step.round(2),
                         "step x, no skipping": ladder.speedup_step_no_skip.round(2),
                         "total x": ladder.speedup_total.round(2)})
    return t[[c.name for c in REPORT_GAIN_LADDER]]


def shown_measurements(spd: pd.DataFrame) -> pd.DataFrame:
    """The speedup rows the report shows: the kernels' own measuring runs.

    The anchor timings of docs/gpu-facts.md §1 (cuBLAS and SDPA only) are
    shown only when no kernel measurement exists; they stay in the simulator
    comparison.  Shape labels carry a short source tag when several runs are
    shown.
    """
    if spd.empty:
        return spd
    own = spd[spd.source != ANCHORS_SOURCE]
    spd = own if len(own) else spd
    if spd.source.nunique() < 2:
        return spd
    short = spd.source.map(run_name)
    return spd.assign(shape=spd["shape"] + " [" + short + "]")


def speedup_table(shown: pd.DataFrame) -> pd.DataFrame:
    """The shown speedup rows in the columns of ``report_measured_speedups``."""
    return shown[[c.name for c in REPORT_MEASURED_SPEEDUPS]]


def validation_classes_table(classes: pd.DataFrame) -> pd.DataFrame:
    """Simulated vs measured per kernel class (bitsim.report.measured.validate_simulator) in percent."""
    shown = classes.assign(mape=(100 * classes.mape).round(1), max_abs_err=(100 * classes.max_abs_err).round(1),
                           mean_err=(100 * classes.mean_err).round(1))
    return shown.rename(columns={"mape": "MAPE %", "max_abs_err": "max |err| %", "mean_err": "mean err %"})


def variants_table(plan: StudyPlan) -> pd.DataFrame:
    """How each datapath runs in each comparison: its profile, chip, KV bits and the fairness changes."""
    rows = []
    for preset, comp in plan.comparisons.items():
        for d, v in comp.variants.items():
            rows.append({"preset": preset, "profile": profile_label(comp.profile), "datapath": d,
                         "accelerator": v.accelerator,
                         "KV bits": int(v.kv_bits if v.kv_bits is not None else get_config(preset, d).kv_cache_bits),
                         "changes": v.changes})
        for d, why in comp.dropped.items():
            rows.append({"preset": preset, "profile": profile_label(comp.profile), "datapath": d, "accelerator": "",
                         "KV bits": 0, "changes": f"not in this comparison: {why}"})
    return pd.DataFrame(rows)
