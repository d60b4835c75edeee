"""Where a4.8's decode gain over the strongest b1.58 comes from: a ladder of one-change steps.

The a4.8 paper changes several things at once: 4-bit activations (with TopK and ReLU²GLU, whose
zeros a chip can skip) and a 3-bit KV cache.  The ladder starts from the **strongest** b1.58 of the
comparison (:mod:`bitsim.experiments.fair`: its 4-bit KV cache, the same zero-skipping logic, the
same array budget) and changes ONE thing per step:

0. (for reference, not a rung) b1.58 as its preset has it: FP16 KV cache, no zero skipping -- the
   weaker baseline that a "2x" claim is easily measured against.
1. the strongest b1.58 on ``b1.58`` (the study's b1.58 row).
2. + a 3-bit KV cache (the same chip, granted the ``kv-int3`` format).
3. + the a4.8 datapath on its chip (INT4 activations on the split adder, TopK-50 % Wo input,
   ReLU²GLU: its zeros skipped by the same logic) = the study's a4.8 row.

Each step is also run with zero skipping off on both of its rungs (``speedup_step_no_skip``), which
separates what the activation format buys from what the zeros it creates buy.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from bitsim.experiments.fair import kv_format
from bitsim.experiments.runs import Chip, Job
from model.config import get_config

NO_SKIP = {"sparsity.skip_weight_fetch": False, "sparsity.skip_compute": False}
BASE_DP, TOP_DP = "b1.58", "a4.8"


def ladder_contexts(plan) -> list[int]:
    """The headline context (nearest 2k) and the longest one."""
    ctxs = plan.config.contexts
    return sorted({plan.headline_context, max(ctxs)}) if ctxs else []


def _with_kv(chip: Chip, fmt: str) -> Chip:
    formats = list(chip.config().kv_formats)
    return chip if fmt in formats else chip.with_overrides({"kv_formats": formats + [fmt]})


def ladder_jobs(plan) -> dict[Job, dict[str, Any]]:
    """Every rung (skip on and off) at each ladder context, tagged with its step; empty without b1.58 and a4.8."""
    comp = plan.main
    if not {BASE_DP, TOP_DP} <= set(comp.variants):
        return {}
    base, top = comp.variants[BASE_DP], comp.variants[TOP_DP]
    kv3 = comp.variants[TOP_DP].kv_bits or 3
    preset_chip = Chip.of(base.accelerator)
    rungs = [  # (step, change, datapath, kv_bits override, chip)
        (0, "b1.58 as its preset: FP16 KV cache, no zero skipping (reference)", BASE_DP, 16, preset_chip),
        (1, f"strongest b1.58 ({base.changes or 'as its preset'})", BASE_DP, base.kv_bits, base.chip),
        (2, f"+ {kv3}-bit KV cache", BASE_DP, kv3, _with_kv(base.chip, kv_format(kv3))),
        (3, "+ a4.8 datapath (INT4 activations on the split adder, TopK, ReLU²GLU; its zeros skipped)",
         TOP_DP, top.kv_bits, top.chip),
    ]
    jobs = {}
    for ctx in ladder_contexts(plan):
        for step, change, dp, kv, chip in rungs:
            key = plan.key(plan.claims_preset, dp, "decode", ctx, kv_bits=None if kv == _own_kv(plan, dp) else kv)
            tag = {"step": step, "change": change, "accelerator_key": chip.base, "role": "matched",
                   "basis": "iso-peak"}
            jobs[Job(trace=key, chip=chip)] = dict(tag, skip="on")
            if step > 0:
                jobs[Job(trace=key, chip=chip.with_overrides(NO_SKIP))] = dict(tag, skip="off")
    return jobs


def _own_kv(plan, datapath: str) -> int:
    """The KV bits of ``datapath`` as its model preset has it (16 for FP16)."""
    return get_config(plan.claims_preset, datapath).kv_cache_bits


def ladder_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The ``gain_ladder`` table from the tagged rows of :func:`ladder_jobs` (one row per context and step)."""
    if rows.empty:
        return rows
    on = rows[rows.skip == "on"].set_index(["context", "step"])
    off = rows[rows.skip == "off"].set_index(["context", "step"])
    df = on[["preset", "change", "datapath", "kv_bits", "accelerator", "tokens_per_s", "energy_j_per_token",
             "kv_bytes", "weight_bytes", "bytes_offchip", "profile"]].copy()
    df["tokens_per_s_no_skip"] = off.tokens_per_s.reindex(df.index)
    df = df.reset_index().sort_values(["context", "step"], ignore_index=True)
    g = df.groupby("context")
    first = df[df.step == 1].set_index("context").tokens_per_s
    prev = g.tokens_per_s.shift(1)
    prev_off = g.tokens_per_s_no_skip.shift(1)
    df["speedup_step"] = (df.tokens_per_s / prev).where(df.step >= 2)
    df["speedup_step_no_skip"] = (df.tokens_per_s_no_skip / prev_off).where(df.step >= 2)
    df["speedup_total"] = df.tokens_per_s / df.context.map(first)
    df["energy_step"] = (g.energy_j_per_token.shift(1) / df.energy_j_per_token).where(df.step >= 2)
    return df
