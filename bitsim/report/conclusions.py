"""What the report concludes, computed from its tables: the executive summary and the chip it recommends.

Each finding is a sentence with its numbers, read from the study's tables (never typed in), and a
``{fig:<name>}`` reference to the figure that shows it; a finding whose tables the study did not
produce (a small or partial study) is left out, never guessed.  Every headline names what it was
measured at (model, phase, batch, context, chip basis, profile, energy basis), and the templates
read right whatever the numbers are: a ratio below 1 says "slower", a missing number drops its
clause, one context is named once, one sequence is singular.
"""
from __future__ import annotations

import math
from typing import Callable

import pandas as pd

from bitsim.experiments.baselines import headline as quantized_headline
from bitsim.experiments.fair import profile_label
from bitsim.report.figures.axes import batch_ratios as figure_batch_ratios
from bitsim.report.labels import context_label

BW_STOPS = "bandwidth above which decode stops scaling"
KV_OUTWEIGHS = "context at which the KV cache outweighs the weights"
SKIP_STOPS = "batch at which zero skipping stops paying"
FITS = "largest batch that fits the chip's memory"

#: The rungs of the gain ladder (bitsim.experiments.ladder): b1.58 as its preset has it, the strongest
#: b1.58, the strongest b1.58 with the 3-bit KV cache, and a4.8.
PRESET_B158, STRONGEST_B158, KV3, A48 = 0, 1, 2, 3

#: Batches at which the a4.8-over-fp16 decode ratio is quoted (those the batch sweep has).
QUOTED_BATCHES = (1, 16, 64)


# ---------------------------------------------------------------------------
# Words for numbers: every template goes through these
# ---------------------------------------------------------------------------
def _x(v: float) -> str:
    return f"{v:.2f}x" if math.isfinite(v) else "n/a"


def faster(r: float) -> str:
    """A speed ratio as a comparison: '1.44x faster', '1.79x slower' (for 0.56), 'as fast (1.00x)'."""
    if not math.isfinite(r) or r <= 0:
        return "n/a"
    if abs(r - 1) < 0.005:
        return "as fast (1.00x)"
    return f"{r:.2f}x faster" if r > 1 else f"{1 / r:.2f}x slower"


def buys(r: float, singular: bool = False) -> str:
    """What a step of the ladder does to tokens/s: 'buy 1.20x', 'cost 1.89x (0.53x the speed)', 'buy nothing'
    ('buys', 'costs' with ``singular``)."""
    if not math.isfinite(r) or r <= 0:
        return "n/a"
    s = "s" if singular else ""
    if abs(r - 1) < 0.005:
        return f"buy{s} nothing (1.00x)"
    return f"buy{s} {r:.2f}x" if r > 1 else f"cost{s} {1 / r:.2f}x ({r:.2f}x the speed)"


def over_contexts(values: dict[int, float], fmt: Callable[[float], str] = _x) -> str:
    """'1.41x at 2k context', or '1.41x at 512 and 1.35x at 32k context' (the shortest and the longest)."""
    ctxs = sorted(values)
    if not ctxs:
        return "n/a"
    lo, hi = ctxs[0], ctxs[-1]
    if lo == hi:
        return f"{fmt(values[lo])} at {context_label(lo)} context"
    return f"{fmt(values[lo])} at {context_label(lo)} and {fmt(values[hi])} at {context_label(hi)} context"


def _crossover(data, name: str, datapath: str) -> pd.Series | None:
    c = data.axes.get("crossovers")
    if c is None or c.empty:
        return None
    s = c[(c.crossover == name) & (c.datapath == datapath)]
    return None if s.empty else s.iloc[0]


def _num(v: float) -> str:
    return f"{v:.2g}" if v < 10 else f"{v:,.0f}"


def _cross_text(row: pd.Series | None) -> str:
    """A crossover as a sentence says it: '~9', '~11,335', 'beyond 6,554', 'at or below 1'."""
    if row is None:
        return "n/a"
    if row["where"] == "beyond the range":
        return (f"beyond {_num(row.range_hi)}" if not math.isfinite(row.value)
                else f"~{_num(row.value)} (beyond the swept {_num(row.range_hi)})")
    if row["where"] == "at or below the range":
        return f"at or below {_num(row.range_lo)}"
    return f"~{_num(row.value)}"


def _tokens(v: float) -> str:
    """A context length as the summary says it: 11k, 600, n/a."""
    if not math.isfinite(v):
        return "n/a"
    return f"{v / 1024:.0f}k" if v >= 1024 else f"{v:.0f}"


def scope(data, *, phase: str = "decode", batch: int | str | None = None, context: int | str | None = None,
          basis: str = "iso-peak chips", energy: bool = False) -> str:
    """What a headline is measured at: '7b decode, batch 1, 2k context, iso-peak chips, paper Table 2
    sparsity; speed only' (``context`` may be a text such as '512-32k')."""
    batch = data.config.batch if batch is None else batch
    where = [f"{data.claims_preset} {phase}", f"batch {batch}"]
    if context is not None:
        where.append(f"{context_label(context) if isinstance(context, int) else context} "
                     + ("context" if phase == "decode" else "tokens"))
    where += [basis, profile_label(data.profile)]
    return ", ".join(where) + ("; chip-model energy (dynamic + static)" if energy else "; speed only")


def _decode(data, preset: str | None = None) -> pd.DataFrame:
    s = data.study.summary
    preset = preset or data.claims_preset
    return s[(s.preset == preset) & (s.phase == "decode") & (s.role == "matched")]


def _ratio(df: pd.DataFrame, num: str, den: str, col: str = "tokens_per_s", **eq) -> float:
    for k, v in eq.items():
        df = df[df[k] == v]
    a, b = df[df.datapath == num], df[df.datapath == den]
    if a.empty or b.empty:
        return float("nan")
    x, y = float(a[col].iloc[0]), float(b[col].iloc[0])
    return x / y if col == "tokens_per_s" else y / x


def _band(data, ratio: str, phase: str, context: int) -> str:
    s = data.axes.get("sensitivity")
    if s is None or s.empty:
        return ""
    g = s[(s.ratio == ratio) & (s.phase == phase) & (s.context == context)]
    return "" if g.empty else f" [band {g.band_low.iloc[0]:.2f}-{g.band_high.iloc[0]:.2f}]"


def _rung(lad: pd.DataFrame, context: int, step: int, col: str) -> float:
    r = lad[(lad.context == context) & (lad.step == step)]
    return float(r[col].iloc[0]) if len(r) else float("nan")


def ladder_contexts(data) -> list[int]:
    lad = data.axes.get("ladder")
    return [] if lad is None or lad.empty else [int(c) for c in sorted(lad.context.unique())]


def kv_step_gains(data) -> dict[int, float]:
    """What the 3-bit KV cache buys the strongest b1.58 (ladder step 2), per ladder context."""
    lad = data.axes.get("ladder")
    return {c: _rung(lad, c, KV3, "speedup_step") for c in ladder_contexts(data)}


def quoted_batches(have) -> list[int]:
    """The batches a sentence quotes: those of :data:`QUOTED_BATCHES` swept, or else the first three swept."""
    have = sorted(int(b) for b in have)
    shown = [b for b in QUOTED_BATCHES if b in have]
    return shown if len(shown) > 1 else have[:3]


def batch_ratios(data, num: str = "a4.8", den: str = "fp16") -> dict[int, float]:
    """``num`` over ``den`` decode tokens/s at each swept batch both fit (zero skipping on): the numbers the
    batch figure's ratio panel draws."""
    bt = data.axes.get("batch")
    if bt is None or bt.empty:
        return {}
    r = figure_batch_ratios(bt, num).get(den)
    return {} if r is None else {int(b): float(v) for b, v in r.items()}


# ---------------------------------------------------------------------------
# The executive summary, one finding per function (None when the study lacks its tables)
# ---------------------------------------------------------------------------
def _ladder_finding(data) -> str | None:
    lad, comp = data.axes.get("ladder"), data.study.plan.comparisons[data.claims_preset]
    ctxs = ladder_contexts(data)
    if not ctxs or "b1.58" not in comp.variants:
        return None
    lo, hi = ctxs[0], ctxs[-1]
    total = {c: _rung(lad, c, A48, "speedup_total") for c in ctxs}
    weak = {c: _rung(lad, c, A48, "tokens_per_s") / _rung(lad, c, PRESET_B158, "tokens_per_s") for c in ctxs}
    base = comp.variants["b1.58"].changes or "as its preset"
    claim = "not 2x" if max(total.values()) < 1.8 else "near the claimed 2x"
    ctx_span = context_label(lo) if lo == hi else f"{context_label(lo)}-{context_label(hi)}"
    return (f"**Against the strongest b1.58, a4.8 is {over_contexts(total, faster)}, {claim}** "
            f"({scope(data, context=ctx_span)}; b1.58 with {base}"
            f"{_band(data, 'speed a4.8/b1.58', 'decode', int(lo))} at {context_label(lo)}). "
            f"The 4-bit activations on their own {buys(_rung(lad, lo, A48, 'speedup_step_no_skip'))}; with the "
            f"zeros ReLU²GLU and TopK create, skipped by the same logic b1.58 has, the a4.8 step "
            f"{buys(_rung(lad, lo, A48, 'speedup_step'), singular=True)}; the 3-bit KV cache adds "
            f"{over_contexts(kv_step_gains(data))}. Measured against b1.58 as its preset has it (FP16 KV cache, "
            f"no skipping) the same chip would read {over_contexts(weak, faster)}."
            + _across_batch(data, "b1.58", "the strongest b1.58") + " {fig:gain_ladder}")


def _across_batch(data, den: str, name: str) -> str:
    """' Across batch (2k context, zero skipping on both): a4.8 over the strongest b1.58 is 1.25x at batch 1,
    1.05x at batch 16, 1.04x at batch 64 ({csv:batch}).' -- or '' when the batch sweep has fewer than two."""
    by_batch = batch_ratios(data, "a4.8", den)
    shown = quoted_batches(by_batch)
    if len(shown) < 2:
        return ""
    ctx = context_label(int(data.axes["batch"].context.iloc[0]))
    return (f" Across batch ({ctx} context, zero skipping on both): a4.8 over {name} is "
            + ", ".join(f"{_x(by_batch[b])} at batch {b}" for b in shown) + " ({csv:batch}).")


def _prefill_clause(data, r_pre: float) -> str:
    """', but prefills 1.00x as fast ... ' with the other bases, or '' when the study has no prefill."""
    if not math.isfinite(r_pre):
        return ""
    text = f"; on a {data.config.prefill_tokens}-token prefill it is {faster(r_pre)} (bound by the arrays)"
    bases = data.axes.get("bases")
    if bases is None or not len(bases):
        return text
    b = bases[bases.phase == "prefill"].set_index(["basis", "datapath"]).tokens_per_s
    parts = [f"{faster(b[(basis, 'a4.8')] / b[(basis, 'fp16')])} {basis}" for basis in ("iso-area", "iso-power")
             if (basis, "a4.8") in b.index and (basis, "fp16") in b.index]
    f_area = bases[(bases.basis == "iso-area") & (bases.datapath == "a4.8")].array_factor
    if parts:
        text += ("; given the FP16 chip's silicon or its power budget instead, it prefills " + " and ".join(parts)
                 + (f" (iso-area buys it {f_area.iloc[0]:.1f}x the PEs)" if len(f_area) else ""))
    return text


def _fp16_finding(data) -> str | None:
    comp, head = data.study.plan.comparisons[data.claims_preset], data.study.plan.headline_context
    dec = _decode(data)
    if not len(dec) or head is None or not {"fp16", "a4.8"} <= set(comp.variants):
        return None
    r_dec = _ratio(dec, "a4.8", "fp16", context=head)
    if not math.isfinite(r_dec):
        return None
    s = data.study.summary
    pre = s[(s.preset == data.claims_preset) & (s.phase == "prefill") & (s.role == "matched")]
    text = (f"**Against FP16 with its best KV option ({comp.variants['fp16'].changes or 'as its preset'}), "
            f"a4.8 decodes {faster(r_dec)}** ({scope(data, context=int(head))}"
            f"{_band(data, 'speed a4.8/fp16', 'decode', int(head))})"
            + _prefill_clause(data, _ratio(pre, "a4.8", "fp16")))
    by_batch = batch_ratios(data)
    shown = quoted_batches(by_batch)
    if len(shown) > 1:
        bt = data.axes["batch"]
        text += (". The decode ratio moves with the batch, as more sequences share each weight byte: "
                 + ", ".join(f"{_x(by_batch[b])} at batch {b}" for b in shown)
                 + f" ({context_label(int(bt.context.iloc[0]))} context, {{csv:batch}})")
    return text + ". {fig:comparison_bases} {fig:batch_sweep}"


def _quantized_finding(data) -> str | None:
    """a4.8 against the strongest conventional baseline (not FP16): where it comes closest, and across batch."""
    t = data.axes.get("baselines")
    if t is None or not len(t):
        return None
    near = quantized_headline(t)
    if near is None:
        return None
    d, basis, ctx = near["datapath"], near["basis"], int(near["context"])
    at = t[(t.datapath == t.strongest_conventional) & (t.basis == basis) & (t.context == ctx)].sort_values("batch")
    across = ", ".join(f"{_x(float(r.a48_speedup))} the speed and {_x(float(r.a48_energy_gain))} less energy per "
                       f"token than {r.datapath} at batch {int(r.batch)}" for r in at.itertuples())
    where = scope(data, batch=int(near["batch"]), context=ctx, basis=f"{basis} chips", energy=True)
    return (f"**Against the strongest conventional baseline, {d}, a4.8 decodes {faster(float(near['a48_speedup']))} "
            f"where it comes closest** ({where}). "
            f"Across batch at {context_label(ctx)} {basis}, a4.8 has {across or 'no point that fits'}. Every "
            f"baseline (FP16, W4A16, W8A8 INT8 / FP8, W4A4 MXFP4, b1.58), batch, context and basis: {{csv:baselines}}")


def _skip_finding(data) -> str | None:
    skip, bt = _crossover(data, SKIP_STOPS, "a4.8"), data.axes.get("batch")
    if skip is None or bt is None or not {"a4.8", "b1.58"} <= set(bt.datapath):
        return None
    fits = {d: _crossover(data, FITS, d) for d in ("a4.8", "fp16")}
    g1 = bt[(bt.datapath == "a4.8") & (bt.skip == "on")].sort_values("batch")
    feas = bt[bt.feasible.astype(bool) & (bt.skip == "on")]
    big = int(feas[feas.datapath == "a4.8"].batch.max()) if len(feas[feas.datapath == "a4.8"]) else 1
    r_big = _ratio(feas[feas.batch == big], "a4.8", "b1.58")
    ctx = int(g1.context.iloc[0])
    fit_text = " and ".join(f"{_cross_text(fits[d])} {d}" for d in ("a4.8", "fp16") if fits[d] is not None)
    span = f"{int(g1.batch.min())}-{int(g1.batch.max())}"
    return (f"**Zero skipping pays only at small batches** ({scope(data, batch=span, context=ctx)}"
            f"): it buys a4.8 {_x(float(g1.skip_gain.iloc[0]))} at batch {int(g1.batch.iloc[0])} and stops paying "
            f"(< 1.05x) from a batch of {_cross_text(skip)}, since a weight row is skipped only when it is zero for "
            f"every sequence of the batch. At batch {big} a4.8 is {faster(r_big)} than the strongest b1.58. "
            + (f"Capacity caps the batch: at {context_label(ctx)} context the "
               f"{float(g1.capacity_gb.iloc[0]):g} GB chips hold {fit_text} sequences (marked on the figure); "
               f"infeasible points are not drawn. " if fit_text else "")
            + "{fig:batch_sweep}")


def _kv_finding(data) -> str | None:
    kv_a, kv_b = (_crossover(data, KV_OUTWEIGHS, d) for d in ("a4.8", "b1.58"))
    gains = kv_step_gains(data)
    if kv_a is None or kv_b is None or not gains:
        return None
    kv_f = _crossover(data, KV_OUTWEIGHS, "fp16")
    b, ctxs = data.config.batch, sorted(gains)
    span = context_label(ctxs[0]) if len(ctxs) == 1 else f"{context_label(ctxs[0])}-{context_label(ctxs[-1])}"
    scaled = (f"; the crossover scales as 1/batch (~{_tokens(kv_a.value * b / 16)} tokens at batch 16)"
              if math.isfinite(kv_a.value) and b < 16 else "")
    return (f"**The 3-bit KV cache adds decode speed as the context grows: {over_contexts(gains)}** "
            f"({scope(data, context=span)}): at batch {b} the KV cache outweighs the weights in a decode step's "
            f"off-chip bytes from {_cross_text(kv_a)} tokens for a4.8 and {_cross_text(kv_b)} for b1.58"
            + (f"; FP16 weights push fp16's to {_cross_text(kv_f)}" if kv_f is not None else "")
            + f"{scaled}. {{fig:step_bytes}}")


def offchip_shares(data, datapath: str = "a4.8") -> dict[int, float]:
    """Off-chip share of ``datapath``'s decode energy per token at the quoted batches of the batch sweep (zero
    skipping on, points that fit); empty without a sweep of two or more such batches."""
    bt = data.axes.get("batch")
    if bt is None or bt.empty:
        return {}
    g = bt[(bt.datapath == datapath) & (bt.skip == "on") & bt.feasible.astype(bool)].set_index("batch")
    shown = quoted_batches(g.index)
    out = {int(b): float(g.energy_offchip_j[b] / g.energy_j_per_token[b]) for b in shown}   # both per token
    return out if len(out) > 1 else {}


def _memory_finding(data) -> str | None:
    bw, tech, dec = data.axes.get("bandwidth"), data.axes.get("technology"), _decode(data)
    if bw is None or "a4.8" not in set(bw.datapath):
        return None
    a = bw[bw.datapath == "a4.8"].sort_values("bandwidth_gbps")
    gain = float(a.tokens_per_s.iloc[-1] / a.tokens_per_s.iloc[0])
    span = float(a.bandwidth_gbps.iloc[-1] / a.bandwidth_gbps.iloc[0])
    mine = dec[(dec.datapath == "a4.8") & (dec.context == int(a.context.iloc[0]))]
    text = (f"**Memory decides the decode chip** ({scope(data, context=int(a.context.iloc[0]), energy=True)}): "
            f"{span:.0f}x the peak bandwidth gives a4.8 {gain:.1f}x the decode tokens/s (stops scaling: "
            f"{_cross_text(_crossover(data, BW_STOPS, 'a4.8'))} GB/s)")
    shares = offchip_shares(data)
    if shares:
        text += (", and off-chip traffic takes " + ", ".join(f"{100 * v:.0f}% of its decode energy at batch {b}"
                                                            if i == 0 else f"{100 * v:.0f}% at batch {b}"
                                                            for i, (b, v) in enumerate(shares.items())))
    elif len(mine):
        share = float(mine.energy_offchip_j.iloc[0] / mine.energy_j_per_token.iloc[0])
        text += f", and off-chip traffic is {100 * share:.0f}% of its decode energy"
    if tech is not None and "a4.8" in set(tech.datapath):
        t = tech[tech.datapath == "a4.8"].set_index("memory").energy_j_per_token
        text += (f"; the same chip with {t.idxmax()} instead of {t.idxmin()} spends {t.max() / t.min():.2f}x the "
                 f"energy per token")
    sens = data.axes.get("sensitivity")
    if sens is not None and len(sens):
        e = sens[(sens.ratio == "energy a4.8/b1.58") & (sens.phase == "decode")]
        if len(e):
            text += (f". The energy ratios move little within the bands (a4.8 over the strongest b1.58: "
                     f"{e.band_low.min():.2f}-{e.band_high.max():.2f}x over pJ/bit, static power, sustained "
                     f"bandwidth and profile)")
    return text + ". {fig:bandwidth_sweep} {fig:sensitivity_bands}"


#: The executive summary's findings, in order.
FINDINGS: tuple[Callable[[object], str | None], ...] = (
    _ladder_finding, _fp16_finding, _quantized_finding, _skip_finding, _kv_finding, _memory_finding)


def findings(data) -> list[str]:
    """The executive summary: every finding of :data:`FINDINGS` the study has the tables for."""
    return [f for f in (make(data) for make in FINDINGS) if f]


# ---------------------------------------------------------------------------
# What the chip should look like, one bullet per design decision
# ---------------------------------------------------------------------------
def _kv_advice(data) -> str | None:
    gains = kv_step_gains(data)
    if not gains:
        return None
    kva = _crossover(data, KV_OUTWEIGHS, "a4.8")
    return ("**KV format: build the 3-bit KV path if contexts are long.** Over a 4-bit cache it is worth "
            + ", ".join(f"{_x(v)} at {context_label(c)}" for c, v in gains.items())
            + f" of decode speed (batch {data.config.batch}); the cache outweighs the weights in a step's bytes "
              f"from {_cross_text(kva)} tokens. {{fig:gain_ladder}}")


def _skip_advice(data) -> str | None:
    bt = data.axes.get("batch")
    if bt is None or "a4.8" not in set(bt.datapath) or "skip_gain" not in bt or not bt.skip_gain.notna().any():
        return None
    skip, b158 = _crossover(data, SKIP_STOPS, "a4.8"), _crossover(data, SKIP_STOPS, "b1.58")
    g = bt[(bt.datapath == "a4.8") & (bt.skip == "on")].sort_values("batch")
    return (f"**Skip logic: worth it only for small-batch decode.** It gives a4.8 "
            f"{_x(float(g.skip_gain.iloc[0]))} at batch {int(g.batch.iloc[0])} and nothing from a batch of "
            f"{_cross_text(skip)} (b1.58, with far fewer zeros: {_cross_text(b158)}); a serving chip at "
            f"batch >= 16 can leave it out (its area is not costed here). {{fig:batch_sweep}}")


def _prefill_advice(data) -> str | None:
    s, bases = data.study.summary, data.axes.get("bases")
    pre = s[(s.preset == data.claims_preset) & (s.phase == "prefill") & (s.role == "matched")]
    if not len(pre) or "a4.8" not in set(pre.datapath):
        return None
    a = pre[pre.datapath == "a4.8"].iloc[0]
    text = (f"**Attention array for prefill: size it with the ternary arrays.** On the iso-peak a4.8 chip "
            f"attention takes {100 * a.attention_cycles_frac:.0f}% of a {int(a.context)}-token prefill's cycles "
            f"(on the small FP16/INT8 array)")
    if bases is not None and len(bases):
        b = bases[(bases.phase == "prefill") & (bases.datapath == "a4.8")].set_index("basis")
        if {"iso-area", "iso-peak"} <= set(b.index):
            text += (f"; scaling every array to the FP16 chip's area ({b.loc['iso-area'].array_factor:.1f}x the "
                     f"PEs) takes prefill from {b.loc['iso-peak'].tokens_per_s:,.0f} to "
                     f"{b.loc['iso-area'].tokens_per_s:,.0f} tokens/s")
    return text + ". {fig:comparison_bases}"


def _lm_head_advice(data) -> str | None:
    s, head = data.study.summary, data.study.plan.headline_context
    lm = s[(s.phase == "decode") & (s.role == "matched") & (s.datapath == "a4.8")]
    if not len(lm) or "lm_head_bytes_offchip" not in lm.columns:
        return None
    shares = [f"{100 * r.lm_head_bytes_offchip / r.bytes_offchip:.0f}% on {r.preset}"
              for r in lm[lm.context == head].itertuples() if r.bytes_offchip > 0]
    if not shares:
        return None
    return ("**LM head precision: do not leave it FP16 on a small model.** The FP16 LM head is "
            + ", ".join(shares) + f" of a4.8's off-chip bytes per decode step at {context_label(head)} "
            f"(batch {data.config.batch}): an INT8 head halves that share, the largest single saving left once "
            f"the weights are ternary.")


def _memory_advice(data) -> str | None:
    bw, tech = data.axes.get("bandwidth"), data.axes.get("technology")
    if bw is None or "a4.8" not in set(bw.datapath):
        return None
    fits = _crossover(data, FITS, "a4.8")
    a = bw[bw.datapath == "a4.8"].sort_values("bandwidth_gbps")
    per = a.tokens_per_s_per_gbps
    text = (f"**Memory: buy bandwidth first, then capacity.** a4.8 decode is {per.iloc[0]:.2f} tokens/s per GB/s "
            f"at {a.bandwidth_gbps.iloc[0]:.0f} GB/s and {per.iloc[-1]:.2f} at {a.bandwidth_gbps.iloc[-1]:.0f} GB/s")
    if tech is not None and "a4.8" in set(tech.datapath):
        t = tech[tech.datapath == "a4.8"].sort_values("energy_j_per_token")
        text += (f"; at the same bandwidth {t.memory.iloc[0]} is the most frugal "
                 f"({1e3 * t.energy_j_per_token.iloc[0]:.0f} mJ/token) and {t.memory.iloc[-1]} the least "
                 f"({1e3 * t.energy_j_per_token.iloc[-1]:.0f})")
    if fits is not None and "capacity_gb" in a:
        text += (f"; {float(a.capacity_gb.iloc[0]):g} GB holds {_cross_text(fits)} a4.8 sequences at "
                 f"{context_label(int(a.context.iloc[0]))} context")
    return text + ". {fig:bandwidth_sweep}"


#: The chip section's bullets, in order.
ADVICE: tuple[Callable[[object], str | None], ...] = (
    _kv_advice, _skip_advice, _prefill_advice, _lm_head_advice, _memory_advice)


def chip_advice(data) -> list[str]:
    """'What a 1-bit / a4.8 chip should look like': one bullet per design decision, each from a sweep."""
    return [a for a in (make(data) for make in ADVICE) if a]
