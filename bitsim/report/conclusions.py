"""What the report concludes, computed from its tables: the executive summary and the chip it recommends.

Each finding is a sentence with its numbers, read from the study's tables (never typed in), and a
``{fig:<name>}`` reference to the figure that shows it; a finding whose tables the study did not
produce (a small or partial study) is left out, never guessed.
"""
from __future__ import annotations

import math

import pandas as pd

from bitsim.report.labels import context_label

BW_STOPS = "bandwidth above which decode stops scaling"


def _x(v: float) -> str:
    return f"{v:.2f}x" if math.isfinite(v) else "n/a"


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


def findings(data) -> list[str]:
    """The executive summary: up to five findings, each with its numbers and figure."""
    out = []
    preset, plan = data.claims_preset, data.study.plan
    comp = plan.comparisons[preset]
    lad = data.axes.get("ladder")
    head = plan.headline_context
    if lad is not None and len(lad) and "b1.58" in comp.variants:
        ctxs = sorted(lad.context.unique())
        lo, hi = ctxs[0], ctxs[-1]
        tot = {c: float(lad[(lad.context == c) & (lad.step == 3)].speedup_total.iloc[0]) for c in ctxs}
        weak = {c: float(lad[(lad.context == c) & (lad.step == 3)].tokens_per_s.iloc[0]
                         / lad[(lad.context == c) & (lad.step == 0)].tokens_per_s.iloc[0]) for c in ctxs}
        s3 = lad[(lad.step == 3) & (lad.context == lo)].iloc[0]
        kv = {c: float(lad[(lad.context == c) & (lad.step == 2)].speedup_step.iloc[0]) for c in ctxs}
        base = comp.variants["b1.58"].changes or "as its preset"
        out.append(
            f"**a4.8 is {_x(tot[lo])} faster than the strongest b1.58 at {context_label(lo)} context and "
            f"{_x(tot[hi])} at {context_label(hi)}, not 2x** ({preset} decode, b1.58 with {base}"
            f"{_band(data, 'speed a4.8/b1.58', 'decode', int(lo))} at {context_label(lo)}). The 4-bit activations "
            f"buy {_x(s3.speedup_step_no_skip)} on their own; the step is the zeros ReLU²GLU and TopK create, "
            f"skipped by the same logic b1.58 has ({_x(s3.speedup_step)}), plus the 3-bit KV cache "
            f"({_x(kv[lo])} at {context_label(lo)}, {_x(kv[hi])} at {context_label(hi)}). Measured against "
            f"b1.58 as its preset has it (FP16 KV cache, no skipping) the same chip would read "
            f"{_x(weak[lo])} and {_x(weak[hi])}. {{fig:gain_ladder}}")
    bases = data.axes.get("bases")
    dec = _decode(data)
    if len(dec) and head is not None and {"fp16", "a4.8"} <= set(comp.variants):
        r_dec = _ratio(dec, "a4.8", "fp16", context=head)
        pre = data.study.summary
        pre = pre[(pre.preset == preset) & (pre.phase == "prefill") & (pre.role == "matched")]
        r_pre = _ratio(pre, "a4.8", "fp16")
        text = (f"**Against FP16 with its best KV option (a 4-bit cache), a4.8 decodes {_x(r_dec)} faster at "
                f"{context_label(head)}{_band(data, 'speed a4.8/fp16', 'decode', int(head))}, but prefills "
                f"only {_x(r_pre)} as fast on the iso-peak chips**: decode is bound by bytes, prefill by the "
                f"arrays")
        if bases is not None and len(bases):
            b = bases[bases.phase == "prefill"].set_index(["basis", "datapath"]).tokens_per_s
            parts = [f"{_x(b[(basis, 'a4.8')] / b[(basis, 'fp16')])} {basis}" for basis in ("iso-area", "iso-power")
                     if (basis, "a4.8") in b.index and (basis, "fp16") in b.index]
            f_area = bases[(bases.basis == "iso-area") & (bases.datapath == "a4.8")].array_factor
            if parts:
                text += ("; given the FP16 chip's silicon or its power budget instead, a4.8 prefills "
                         + " and ".join(parts) + (f" (iso-area buys it {f_area.iloc[0]:.1f}x the PEs)"
                                                   if len(f_area) else ""))
        out.append(text + ". {fig:comparison_bases}")
    skip = _crossover(data, "batch at which zero skipping stops paying", "a4.8")
    bt = data.axes.get("batch")
    if skip is not None and bt is not None and {"a4.8", "b1.58"} <= set(bt.datapath):
        fits = {d: _crossover(data, "largest batch that fits the chip's memory", d) for d in ("a4.8", "fp16")}
        g1 = bt[(bt.datapath == "a4.8") & (bt.skip == "on")].sort_values("batch")
        feas = bt[bt.feasible.astype(bool) & (bt.skip == "on")]
        big = int(feas[feas.datapath == "a4.8"].batch.max()) if len(feas[feas.datapath == "a4.8"]) else 1
        r_big = _ratio(feas[feas.batch == big], "a4.8", "b1.58")
        out.append(
            f"**Zero skipping pays only at small batches**: it buys a4.8 {_x(float(g1.skip_gain.iloc[0]))} at batch "
            f"{int(g1.batch.iloc[0])} and stops paying (< 1.05x) at batch {_cross_text(skip)}, since a weight row "
            f"is skipped only when it is zero for every sequence of the batch. At batch {big} a4.8 is "
            f"{_x(r_big)} the strongest b1.58. Capacity caps the batch: at {context_label(int(g1.context.iloc[0]))} "
            f"context the {float(g1.capacity_gb.iloc[0]):g} GB chips hold about {_cross_text(fits['a4.8'])} a4.8 "
            f"sequences and {_cross_text(fits['fp16'])} fp16 ones; infeasible points are not drawn. "
            f"{{fig:batch_sweep}}")
    kv_a, kv_b = (_crossover(data, "context at which the KV cache outweighs the weights", d) for d in ("a4.8", "b1.58"))
    if kv_a is not None and kv_b is not None and lad is not None and len(lad):
        ctxs = sorted(lad.context.unique())
        kv = [float(lad[(lad.context == c) & (lad.step == 2)].speedup_step.iloc[0]) for c in ctxs]
        kv_f = _crossover(data, "context at which the KV cache outweighs the weights", "fp16")
        out.append(
            f"**The KV format dominates from ~{_tokens(kv_a.value)} tokens of context**: the KV cache outweighs "
            f"the weights in a decode step's bytes from {_cross_text(kv_a)} tokens "
            f"for a4.8 and {_cross_text(kv_b)} for b1.58 (4-bit KV; FP16 weights push fp16's to "
            f"{_cross_text(kv_f)}), so the 3-bit cache is worth {_x(kv[0])} at {context_label(ctxs[0])} and "
            f"{_x(kv[-1])} at {context_label(ctxs[-1])}. {{fig:footprint}}")
    bw, tech = data.axes.get("bandwidth"), data.axes.get("technology")
    if bw is not None and "a4.8" in set(bw.datapath):
        a = bw[bw.datapath == "a4.8"].sort_values("bandwidth_gbps")
        gain = float(a.tokens_per_s.iloc[-1] / a.tokens_per_s.iloc[0])
        span = float(a.bandwidth_gbps.iloc[-1] / a.bandwidth_gbps.iloc[0])
        share = float((dec[dec.datapath == "a4.8"].energy_offchip_j / dec[dec.datapath == "a4.8"].energy_j_per_token)
                      .iloc[0]) if len(dec[dec.datapath == "a4.8"]) else float("nan")
        text = (f"**Memory decides the decode chip**: {span:.0f}x the peak bandwidth gives a4.8 {gain:.1f}x the "
                f"decode tokens/s (stops scaling: {_cross_text(_crossover(data, BW_STOPS, 'a4.8'))} GB/s), "
                f"and off-chip traffic is {100 * share:.0f}% of its decode energy")
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
        out.append(text + ". {fig:bandwidth_sweep} {fig:sensitivity_bands}")
    return out[:5]


def chip_advice(data) -> list[str]:
    """'What a 1-bit / a4.8 chip should look like': one bullet per design decision, each from a sweep."""
    out = []
    preset, plan = data.claims_preset, data.study.plan
    lad, bt, bases = data.axes.get("ladder"), data.axes.get("batch"), data.axes.get("bases")
    s = data.study.summary
    if lad is not None and len(lad):
        ctxs = sorted(lad.context.unique())
        kv = {c: float(lad[(lad.context == c) & (lad.step == 2)].speedup_step.iloc[0]) for c in ctxs}
        kva = _crossover(data, "context at which the KV cache outweighs the weights", "a4.8")
        out.append("**KV format: build the 3-bit KV path if contexts are long.** Over a 4-bit cache it is worth "
                   + ", ".join(f"{_x(v)} at {context_label(c)}" for c, v in kv.items())
                   + f" of decode speed; the cache outweighs the weights from {_cross_text(kva)} tokens. "
                   f"{{fig:gain_ladder}}")
    if bt is not None and "a4.8" in set(bt.datapath) and "skip_gain" in bt and bt.skip_gain.notna().any():
        skip = _crossover(data, "batch at which zero skipping stops paying", "a4.8")
        g = bt[(bt.datapath == "a4.8") & (bt.skip == "on")].sort_values("batch")
        b158 = _crossover(data, "batch at which zero skipping stops paying", "b1.58")
        out.append(f"**Skip logic: worth it only for small-batch decode.** It gives a4.8 "
                   f"{_x(float(g.skip_gain.iloc[0]))} at batch {int(g.batch.iloc[0])} and nothing from batch "
                   f"{_cross_text(skip)} (b1.58, with far fewer zeros: {_cross_text(b158)}); a serving chip at "
                   f"batch >= 16 can leave it out (its area is not costed here). {{fig:batch_sweep}}")
    pre = s[(s.preset == preset) & (s.phase == "prefill") & (s.role == "matched")]
    if len(pre) and "a4.8" in set(pre.datapath):
        a = pre[pre.datapath == "a4.8"].iloc[0]
        text = (f"**Attention array for prefill: size it with the ternary arrays.** On the iso-peak a4.8 chip "
                f"attention takes {100 * a.attention_cycles_frac:.0f}% of a {int(a.context)}-token prefill's cycles "
                f"(on the small FP16/INT8 array)")
        if bases is not None and len(bases):
            b = bases[(bases.phase == "prefill") & (bases.datapath == "a4.8")].set_index("basis")
            if "iso-area" in b.index:
                text += (f"; scaling every array to the FP16 chip's area ({b.loc['iso-area'].array_factor:.1f}x the "
                         f"PEs) takes prefill from {b.loc['iso-peak'].tokens_per_s:,.0f} to "
                         f"{b.loc['iso-area'].tokens_per_s:,.0f} tokens/s")
        out.append(text + ". {fig:comparison_bases}")
    lm = s[(s.phase == "decode") & (s.role == "matched") & (s.datapath == "a4.8")]
    if len(lm) and "lm_head_bytes_offchip" in lm.columns:
        head = plan.headline_context
        shares = [f"{100 * r.lm_head_bytes_offchip / r.bytes_offchip:.0f}% on {r.preset}"
                  for r in lm[lm.context == head].itertuples() if r.bytes_offchip > 0]
        if shares:
            out.append("**LM head precision: do not leave it FP16 on a small model.** The FP16 LM head is "
                       + ", ".join(shares) + f" of a4.8's off-chip bytes per decode step at "
                       f"{context_label(head)}: an INT8 head halves that share, the largest single saving left once "
                       f"the weights are ternary.")
    bw, tech = data.axes.get("bandwidth"), data.axes.get("technology")
    if bw is not None and "a4.8" in set(bw.datapath):
        fits = _crossover(data, "largest batch that fits the chip's memory", "a4.8")
        a = bw[bw.datapath == "a4.8"].sort_values("bandwidth_gbps")
        per = a.tokens_per_s_per_gbps
        text = (f"**Memory: buy bandwidth first, then capacity.** a4.8 decode is {per.iloc[0]:.2f} tokens/s per GB/s "
                f"at {a.bandwidth_gbps.iloc[0]:.0f} GB/s and {per.iloc[-1]:.2f} at {a.bandwidth_gbps.iloc[-1]:.0f} GB/s")
        if tech is not None and "a4.8" in set(tech.datapath):
            t = tech[tech.datapath == "a4.8"].sort_values("energy_j_per_token")
            text += (f"; at the same bandwidth {t.memory.iloc[0]} is the most frugal "
                     f"({1e3 * t.energy_j_per_token.iloc[0]:.0f} mJ/token) and {t.memory.iloc[-1]} the least "
                     f"({1e3 * t.energy_j_per_token.iloc[-1]:.0f})")
        if fits is not None:
            text += (f"; {float(a.capacity_gb.iloc[0]) if 'capacity_gb' in a else 32:g} GB holds about "
                     f"{_cross_text(fits)} a4.8 sequences at {context_label(int(a.context.iloc[0]))} context.")
        out.append(text + " {fig:bandwidth_sweep}")
    return out
