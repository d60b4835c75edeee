"""Where a4.8's decode gain over b1.58 comes from: a ladder of one-change steps.

The a4.8 paper changes several things at once: 4-bit activations (with TopK
and ReLU²GLU), a 3-bit KV cache, and activation sparsity that a chip can skip.
Each rung below changes ONE of them, from b1.58 on its matched chip to a4.8 on
its matched chip, so the speed and energy ratio between neighbouring rungs is
what that one change buys:

1. b1.58 (FP16 KV cache) on ``b1.58``: the baseline of the study.
2. + a 4-bit KV cache (same chip; ``b1.58.yaml`` supports ``kv-int4``).
3. + a 3-bit KV cache: the ``a4.8`` chip with zero skipping turned off (the
   b1.58 chip has no 3-bit KV format; otherwise the two chips' main arrays,
   memory and clock are the same).
4. + the a4.8 datapath (INT4 activations, TopK-50 % INT8 Wo input, ReLU²GLU),
   same chip, zero skipping still off.
5. + zero skipping (skip fetching the weight rows of zero activations, skip
   their compute) = a4.8 on ``a4.8``, the study's a4.8 row.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd

from bitsim.experiments.sweep import make_accelerator, summary_row
from bitsim.tables import validate
import sim
from model.config import get_config
from model.trace import build_trace

NO_SKIP = {"sparsity.skip_weight_fetch": False, "sparsity.skip_compute": False}

# (label, datapath, kv_bits override or None, accelerator, accelerator overrides)
LADDER = (
    ("b1.58, FP16 KV cache, on b1.58", "b1.58", None, "b1.58", {}),
    ("+ 4-bit KV cache", "b1.58", 4, "b1.58", {}),
    ("+ 3-bit KV cache (a4.8 chip, zero skipping off)", "b1.58", 3, "a4.8", NO_SKIP),
    ("+ a4.8 datapath: INT4 activations, TopK, ReLU²GLU", "a4.8", None, "a4.8", NO_SKIP),
    ("+ zero skipping = a4.8 on a4.8", "a4.8", None, "a4.8", {}),
)


def gain_ladder(preset: str, contexts: Sequence[int], seed: int = 0, batch: int = 1,
                profile: str = "measured", known: Mapping[tuple[str, int], Mapping] | None = None,
                progress: bool = False) -> pd.DataFrame:
    """Simulate every rung of :data:`LADDER` for a decode step at each context.

    ``profile`` is the op traces' activation statistics (``measured`` on
    seeded random weights, or the paper's ``paper-table2``): rung 5's gain
    depends on it.  ``known`` maps (datapath, context) to a summary row
    (:func:`bitsim.experiments.sweep.summary_row` columns) already simulated for that
    datapath on its default chip with the same settings -- rungs 1 and 5 are
    the study's own b1.58 and a4.8 rows, so the report passes them in and they
    are not simulated twice.  Returns one row per (context, rung): step (1..5), change, datapath,
    kv_bits, accelerator, tokens_per_s, energy_j_per_token, kv_bytes,
    weight_bytes, bytes_offchip (per token), speedup_step (over the rung
    before), speedup_total (over rung 1), energy_step (previous / this).
    """

    if not contexts:
        raise ValueError("contexts: at least one decode context is required")
    rows = []
    for ctx in contexts:
        for step, (label, dp, kv_bits, accel, overrides) in enumerate(LADDER, start=1):
            cfg = get_config(preset, dp, **({"kv_bits": kv_bits} if kv_bits else {}))
            plain = kv_bits is None and not overrides and accel == dp   # the datapath on its default chip
            if plain and known and (dp, int(ctx)) in known:
                r = known[(dp, int(ctx))]
            else:
                trace = build_trace(cfg, dp, phase="decode", context=int(ctx), batch=batch, seed=seed,
                                    profile=profile)
                r = summary_row(sim.simulate(trace, make_accelerator(accel, overrides)).summary)
            rows.append({"preset": preset, "context": int(ctx), "step": step, "change": label, "datapath": dp,
                         "kv_bits": cfg.kv_cache_bits, "accelerator": accel + ("" if not overrides else
                                                                              " (zero skipping off)"),
                         "tokens_per_s": r["tokens_per_s"], "energy_j_per_token": r["energy_j_per_token"],
                         "kv_bytes": r["kv_bytes"], "weight_bytes": r["weight_bytes"],
                         "bytes_offchip": r["bytes_offchip"]})
            if progress:
                print(f"ladder {preset} ctx {ctx} step {step}: {r['tokens_per_s']:.0f} tok/s", flush=True)
    df = pd.DataFrame(rows)
    g = df.groupby("context")
    df["speedup_step"] = df.tokens_per_s / g.tokens_per_s.shift(1)
    df["speedup_total"] = df.tokens_per_s / g.tokens_per_s.transform("first")
    df["energy_step"] = g.energy_j_per_token.shift(1) / df.energy_j_per_token
    return validate(df, "gain_ladder")
