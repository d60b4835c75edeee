"""a4.8 against every baseline an architect would deploy: FP16, the quantized datapaths and b1.58.

Nobody serves a 7B model in FP16 when speed matters, so the strongest-baseline rule of
:mod:`bitsim.experiments.fair` extends to weight precision: a4.8 is compared with FP16, W4A16, W8A8
(INT8 and FP8), W4A4 MXFP4 and the strongest b1.58, each on its own chip preset, as one comparison
(one activation profile; the fewest KV bits each tolerates among the formats any chip offers; the
same zero skipping), at decode batch 1, 16 and 64 and context 2k and 32k, on three bases:

* iso-peak: the presets as shipped;
* iso-area: every chip's arrays, vector lanes and SRAM bandwidth scaled to the a4.8 chip's area
  (:func:`sizing.size_to_area`, no simulation);
* iso-power: every chip's arrays, vector lanes and SRAM bandwidth scaled so its power on the prefill equals the
  a4.8 chip's there (:func:`sizing.size_to_power`, a handful of prefill simulations per chip -- the costly basis).

A point whose weights and KV cache exceed the chip's off-chip capacity is not simulated: capacity does
not depend on the basis (sizing scales arrays only), so the closed form :func:`footprint_bytes` decides
it, and its throughput stays empty.  The strongest baseline of each (basis, batch, context) is the
fitting baseline with the highest tokens/s; the strongest *conventional* one leaves b1.58 out.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from bitsim.experiments.chipmetrics import chip_area, row_power
from bitsim.experiments.fair import Comparison, Variant, plan_comparison
from bitsim.experiments.paths import DATA_DIR_NAME, project_path
from bitsim.experiments.runs import Chip, Job, Runner, TraceKey
from bitsim.experiments.sizing import BASES, Sized, size_to_area, size_to_power
from model.config import BASELINE_DATAPATHS, get_config, weight_bytes
from model.trace import kv_bytes

#: FP16 and the post-training-quantized datapaths: what is deployed without a 1-bit model.
CONVENTIONAL = ("fp16",) + tuple(BASELINE_DATAPATHS)
#: Every baseline a4.8 is compared with.
BASELINES = CONVENTIONAL + ("b1.58",)
TABLE_DATAPATHS = BASELINES + ("a4.8",)
#: Each datapath on its own chip preset (sim/presets/<datapath>.yaml).
MATCHED = {d: d for d in TABLE_DATAPATHS}
CONTEXTS = (2048, 32768)
BATCHES = (1, 16, 64)
#: The bases the study computes by default: all three (iso-power sizes each chip by a few prefill
#: simulations, the costliest part of this table).
DEFAULT_BASES = BASES
#: The chip whose area (iso-area) and prefill power (iso-power) every other chip is scaled to.
REFERENCE = "a4.8"


def plan_baselines(preset: str, *, profile: str = "auto", policy: str = "strongest",
                   data_dir=project_path(DATA_DIR_NAME)) -> Comparison:
    """The comparison of a4.8 with every baseline on ``preset`` (one profile, strongest baselines)."""
    comp = plan_comparison(preset, TABLE_DATAPATHS, MATCHED, profile=profile, policy=policy, data_dir=data_dir)
    if REFERENCE not in comp.variants:
        raise ValueError(f"baselines: profile {comp.profile!r} cannot describe a4.8 on {preset!r}")
    return comp


def footprint_bytes(preset: str, datapath: str, kv_bits: int | None, batch: int, context: int) -> float:
    """Weights + KV cache held after one decode step at ``context`` (sim's footprint, in closed form).

    Weights as sim counts them (GEMM weights, embedding and head; the norms' few kB are not in its
    footprint); the KV cache holds K and V of ``context + 1`` positions per layer and sequence.
    """
    cfg = get_config(preset, datapath, **({"kv_bits": kv_bits} if kv_bits else {}))
    return _weights(cfg) + 2 * cfg.n_layers * kv_bytes(cfg, batch, 0, context + 1)


def _weights(cfg) -> float:
    wb = weight_bytes(cfg)
    return float(wb.projections + wb.embedding + wb.lm_head)


def _key(comp: Comparison, d: str, phase: str, context: int, batch: int, seed: int) -> TraceKey:
    return TraceKey(preset=comp.preset, datapath=d, phase=phase, context=int(context), batch=int(batch),
                    kv_bits=comp.variants[d].kv_bits, profile=comp.profile, seed=seed)


def _size_power(trace: pd.DataFrame, chip: Chip, target_w: float) -> Sized:
    return size_to_power(chip, trace, target_w)


def size_chips(comp: Comparison, bases: Sequence[str], runner: Runner | None = None, *,
               prefill_tokens: int = 2048, seed: int = 0) -> dict[tuple[str, str], Sized]:
    """Each datapath's chip on each basis, scaled to the a4.8 chip (area, or power on the prefill)."""
    unknown = [b for b in bases if b not in BASES]
    if unknown:
        raise ValueError(f"bases: unknown {unknown}; known: {list(BASES)}")
    ref = comp.variants[REFERENCE].chip
    out: dict[tuple[str, str], Sized] = {}
    for d, var in comp.variants.items():
        if "iso-peak" in bases:
            out[(d, "iso-peak")] = Sized(chip=var.chip, basis="iso-peak", factor=1.0, target=float("nan"),
                                         reached=float("nan"), metric="the presets' PE count, clock, memory, SRAM")
    if "iso-area" in bases:
        target, metric = chip_area(ref.config())
        for d, var in comp.variants.items():
            out[(d, "iso-area")] = (Sized(chip=ref, basis="iso-area", factor=1.0, target=target, reached=target,
                                          metric=metric) if d == REFERENCE else size_to_area(var.chip, target))
    if "iso-power" in bases:
        if runner is None or not prefill_tokens:
            raise ValueError("bases: iso-power sizes chips by simulating a prefill; give a runner and prefill_tokens")
        pre = {d: _key(comp, d, "prefill", prefill_tokens, 1, seed) for d in comp.variants}
        # every prefill trace built in the worker pool at once (each as shipped on its own chip), not one by one
        first = runner.run([Job(trace=pre[d], chip=var.chip) for d, var in comp.variants.items()])
        target, how = row_power(first[Job(trace=pre[REFERENCE], chip=ref)].row)
        others = [d for d in comp.variants if d != REFERENCE]
        sized = runner.map(_size_power, [(runner.trace(pre[d]), comp.variants[d].chip, target) for d in others])
        out.update({(d, "iso-power"): s for d, s in zip(others, sized)})
        out[(REFERENCE, "iso-power")] = Sized(chip=ref, basis="iso-power", factor=1.0, target=target, reached=target,
                                              metric=f"power on the sizing workload ({how})")
    return out


def _point(comp: Comparison, var: Variant, s: Sized, batch: int, context: int) -> dict[str, Any]:
    acc = s.chip.config()
    cap = float(acc.offchip.capacity_gb)
    need = footprint_bytes(comp.preset, var.datapath, var.kv_bits, batch, context)
    resident = getattr(acc, "weight_residency", "offchip") == "sram"
    kv = need - _weights(get_config(comp.preset, var.datapath))
    return {"preset": comp.preset, "datapath": var.datapath, "basis": s.basis, "batch": int(batch),
            "context": int(context), "profile": comp.profile,
            "kv_bits": int(get_config(comp.preset, var.datapath, **({"kv_bits": var.kv_bits} if var.kv_bits else {}))
                           .kv_cache_bits),
            "variant": var.changes, "accelerator": acc.name, "array_factor": float(s.factor),
            "basis_within": bool(s.within),
            "area_mm2": chip_area(acc)[0], "capacity_gb": cap, "footprint_bytes": need,
            "fits": bool((kv if resident else need) <= cap * 1e9)}


def _results(points: list[tuple[dict, Job | None]], out: Mapping[Job, Any]) -> pd.DataFrame:
    rows = []
    for p, job in points:
        r = out[job].row if job is not None else {}
        rows.append({**p, "tokens_per_s": float(r.get("tokens_per_s", np.nan)),
                     "energy_j_per_token": float(r.get("energy_j_per_token", np.nan))})
    return pd.DataFrame(rows)


def run_baselines(comp: Comparison, runner: Runner, *, contexts: Sequence[int] = CONTEXTS,
                  batches: Sequence[int] = BATCHES, bases: Sequence[str] = DEFAULT_BASES,
                  prefill_tokens: int = 2048, seed: int = 0) -> pd.DataFrame:
    """``study_baselines``: every datapath of ``comp`` at each (basis, batch, context) that fits, with a4.8's
    ratio against it and the strongest baseline of the point."""
    sized = size_chips(comp, bases, runner, prefill_tokens=prefill_tokens, seed=seed)
    points: list[tuple[dict, Job | None]] = []
    for (d, _basis), s in sized.items():
        var = comp.variants[d]
        for b in batches:
            for c in contexts:
                p = _point(comp, var, s, b, c)
                points.append((p, Job(trace=_key(comp, d, "decode", c, b, seed), chip=s.chip) if p["fits"] else None))
    out = runner.run([j for _p, j in points if j is not None])
    return baseline_table(_results(points, out))


def _strongest(g: pd.DataFrame, among: Sequence[str]) -> str:
    """The fitting datapath of ``among`` with the highest tokens/s in one point's rows ('' when none fits)."""
    cand = g[g.datapath.isin(among) & g.fits & g.tokens_per_s.notna()]
    return str(cand.loc[cand.tokens_per_s.idxmax(), "datapath"]) if len(cand) else ""


def baseline_table(rows: pd.DataFrame) -> pd.DataFrame:
    """a4.8's speed and energy ratio against every row of its point, and the point's strongest baselines."""
    if rows.empty:
        return rows
    order = {b: i for i, b in enumerate(BASES)}
    dps = {d: i for i, d in enumerate(TABLE_DATAPATHS)}
    df = rows.sort_values(["basis", "batch", "context", "datapath"], ignore_index=True,
                          key=lambda c: c.map(order) if c.name == "basis" else c.map(dps) if c.name == "datapath"
                          else c)
    keys = ["basis", "batch", "context"]
    a48 = df[df.datapath == REFERENCE].set_index(keys)
    idx = pd.MultiIndex.from_frame(df[keys])
    a_tps = a48.tokens_per_s.where(a48.fits).reindex(idx).to_numpy(float)
    a_e = a48.energy_j_per_token.where(a48.fits).reindex(idx).to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        df["a48_speedup"] = a_tps / df.tokens_per_s.to_numpy(float)
        df["a48_energy_gain"] = df.energy_j_per_token.to_numpy(float) / a_e
    best = {k: (_strongest(g, BASELINES), _strongest(g, CONVENTIONAL)) for k, g in df.groupby(keys, sort=False)}
    df["strongest_baseline"] = [best[k][0] for k in zip(df.basis, df.batch, df.context)]
    df["strongest_conventional"] = [best[k][1] for k in zip(df.basis, df.batch, df.context)]
    df["is_strongest"] = df.datapath == df.strongest_baseline
    return df


def headline(table: pd.DataFrame) -> dict[str, Any] | None:
    """The point where the strongest conventional baseline (not FP16) comes closest to a4.8: its datapath,
    basis, batch, context and a4.8's speed and energy ratios there (None when no such point fits)."""
    rows = table[table.datapath.isin(CONVENTIONAL[1:]) & (table.datapath == table.strongest_conventional)
                 & table.a48_speedup.notna()]
    if not len(rows):
        return None
    r = rows.loc[rows.a48_speedup.idxmin()]
    keys = ("datapath", "basis", "batch", "context", "a48_speedup", "a48_energy_gain", "tokens_per_s")
    return {k: r[k].item() if hasattr(r[k], "item") else r[k] for k in keys}
