"""Figures of the study's axes: the gain ladder, batch, bandwidth and memory technology, comparison bases,
and the sensitivity bands (tables of ``bitsim.experiments.tables``).

Every function takes ``note``: the line under the title that names the profile and energy basis.
Infeasible points (weights + KV cache beyond the chip's capacity) are never drawn as throughputs.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bitsim.report.figures.common import (
    PALETTE8,
    bar_values,
    color,
    empty,
    legend_below,
    need,
    ordered,
    plain_log_ticks,
    plot_series,
    titled,
)
from bitsim.report.labels import context_label


def gain_ladder(ladder: pd.DataFrame, note: str = ""):
    """Decode tokens/s of each rung of the ladder, zero skipping on (solid) and off (hatched), one panel per context.

    ``ladder``: a ``gain_ladder`` table (context, step, tokens_per_s, tokens_per_s_no_skip,
    speedup_step, speedup_step_no_skip are drawn).  The step ratio is written over each rung:
    with skipping, and (in brackets) with skipping off on both rungs.
    """
    need(ladder, "gain_ladder", "gain_ladder")
    if ladder.empty:
        return empty("Gain ladder", "no ladder (needs b1.58 and a4.8)")
    ctxs = sorted(ladder.context.unique())
    fig, axes = plt.subplots(1, len(ctxs), figsize=(6.0 * len(ctxs), 4.3), squeeze=False)
    labels = {0: "0: b1.58 preset\n(FP16 KV, no skip)", 1: "1: strongest\nb1.58", 2: "2: + 3-bit KV", 3: "3: + a4.8\ndatapath"}
    for ax, ctx in zip(axes[0], ctxs):
        d = ladder[ladder.context == ctx].sort_values("step")
        xs = np.arange(len(d))
        on = ax.bar(xs - 0.2, d.tokens_per_s, 0.38, color=[color(dp) for dp in d.datapath], label="zero skipping on")
        off = ax.bar(xs + 0.2, d.tokens_per_s_no_skip, 0.38, color="white", edgecolor=[color(dp) for dp in d.datapath],
                     hatch="//", label="zero skipping off")
        bar_values(ax, on, "{:.0f}")
        bar_values(ax, off, "{:.0f}")
        top = float(np.nanmax(np.r_[d.tokens_per_s.to_numpy(float), d.tokens_per_s_no_skip.to_numpy(float)]))
        for x, (_, r) in zip(xs, d.iterrows()):
            if r.step >= 2 and np.isfinite(r.speedup_step):
                ax.annotate(f"step x{r.speedup_step:.2f}\n(x{r.speedup_step_no_skip:.2f} without skipping)",
                            (x, max(r.tokens_per_s, r.tokens_per_s_no_skip) + 0.07 * top), ha="center", fontsize=7,
                            fontweight="bold")
        ax.set_xticks(xs)
        ax.set_xticklabels([labels.get(int(s), str(s)) for s in d.step], fontsize=8)
        ax.set_ylabel("decode tokens/s")
        ax.set_title(f"{d.preset.iloc[0]}, decode @ {context_label(ctx)}: total x{d.speedup_total.iloc[-1]:.2f} "
                     "over the strongest b1.58", fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
        ax.set_ylim(0, top * 1.3)
    titled(fig, "Where a4.8's decode gain over the strongest b1.58 comes from (one change per step)", note)
    fig.tight_layout()
    legend_below(fig, axes[0], ncol=2)
    return fig


def batch_sweep(batch: pd.DataFrame, note: str = ""):
    """Decode tokens/s and the gain of zero skipping against the batch (feasible points only).

    ``batch``: a ``study_batch`` table.  Left: tokens/s per datapath (solid: zero skipping on, dashed:
    off), each line ending at the last batch whose weights + KV cache fit the chip; the infeasible
    batches are listed under the panel.  Right: tokens/s with / without skipping, with the 1.05x
    line below which skipping stops paying.
    """
    need(batch, "study_batch", "batch_sweep")
    if batch.empty:
        return empty("Batch sweep", "no batch sweep")
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.4))
    feas = batch[batch.feasible.astype(bool)]
    out = []
    for k, dp in enumerate(ordered(batch.datapath)):
        both = batch[batch.datapath == dp].skip.nunique() > 1
        for skip in ("on", "off"):
            s = feas[(feas.datapath == dp) & (feas.skip == skip)].sort_values("batch")
            if s.empty:
                continue
            plot_series(ax, s.batch, s.tokens_per_s, dp, f"{dp}, zero skipping {skip}" if both else dp,
                        dashed=skip == "off",
                        dodge=2 * k + (skip == "off") - 2)
        bad = batch[(batch.datapath == dp) & ~batch.feasible.astype(bool) & (batch.skip == "on")]
        if len(bad):
            out.append(f"{dp}: batch {', '.join(str(int(b)) for b in sorted(bad.batch))} do not fit "
                       f"({bad.capacity_gb.iloc[0]:g} GB)")
        g = batch[(batch.datapath == dp) & (batch.skip == "on") & batch.skip_gain.notna()].sort_values("batch")
        g = g[g.feasible.astype(bool)]
        if len(g):
            plot_series(ax2, g.batch, g.skip_gain, dp, f"{dp}", dodge=k - 1)
    for a in (ax, ax2):
        a.set_xscale("log", base=2)
        a.set_xticks(sorted(batch.batch.unique()))
        a.set_xticklabels([str(int(b)) for b in sorted(batch.batch.unique())])
        a.set_xlabel(f"decode batch (sequences), context {context_label(int(batch.context.iloc[0]))}")
        a.grid(True, which="both", alpha=0.3)
    ax.set_yscale("log")
    plain_log_ticks(ax)
    ax.set_ylabel("decode tokens/s (all sequences)")
    ax.set_title(f"{batch.preset.iloc[0]}: throughput against batch", fontsize=10)
    ax2.axhline(1.05, color="k", lw=0.8, ls=":")
    ax2.annotate("1.05x: below it, zero skipping stops paying", (ax2.get_xlim()[1], 1.05), xytext=(-3, 3),
                 textcoords="offset points", fontsize=7, ha="right")
    ax2.set_ylabel("speedup of zero skipping (on / off)")
    ax2.set_title("what skipping zero-activation weight rows buys", fontsize=10)
    titled(fig, "Decode against batch (capacity-aware)", note)
    fig.tight_layout()
    legend_below(fig, [ax], ncol=3)
    if out:
        fig.text(0.5, -0.15, "Not drawn (weights + KV cache > capacity): " + "; ".join(out), ha="center",
                 fontsize=7, va="top")
    return fig


def bandwidth_sweep(bandwidth: pd.DataFrame, technology: pd.DataFrame | None = None, note: str = ""):
    """Decode tokens/s against peak off-chip bandwidth, and decode energy per memory generation.

    ``bandwidth``: a ``study_bandwidth`` table; the dotted line of each datapath is the
    bandwidth-bound extrapolation from its lowest point (tokens/s proportional to bandwidth).
    ``technology``: a ``study_technology`` table (energy per token per memory generation at the
    chip's own peak bandwidth; the value is written on each bar).
    """
    need(bandwidth, "study_bandwidth", "bandwidth_sweep")
    if bandwidth.empty:
        return empty("Bandwidth sweep", "no bandwidth sweep")
    has_tech = technology is not None and len(technology)
    fig, axes = plt.subplots(1, 2 if has_tech else 1, figsize=(12.5 if has_tech else 6.2, 4.4), squeeze=False)
    ax = axes[0][0]
    for k, dp in enumerate(ordered(bandwidth.datapath)):
        s = bandwidth[bandwidth.datapath == dp].sort_values("bandwidth_gbps")
        plot_series(ax, s.bandwidth_gbps, s.tokens_per_s, dp, dp, dodge=k - 1)
        x0, y0 = s.bandwidth_gbps.iloc[0], s.tokens_per_s.iloc[0]
        ax.plot(s.bandwidth_gbps, y0 * s.bandwidth_gbps / x0, ":", color=color(dp), lw=0.9)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    bws = sorted(bandwidth.bandwidth_gbps.unique())
    ax.set_xticks(bws)
    ax.set_xticklabels([f"{b:.0f}" for b in bws])
    plain_log_ticks(ax)
    ax.set_xlabel("peak off-chip bandwidth (GB/s)")
    ax.set_ylabel("decode tokens/s")
    ax.set_title(f"{bandwidth.preset.iloc[0]}, decode @ {context_label(int(bandwidth.context.iloc[0]))}: "
                 "dotted = bandwidth-bound", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if has_tech:
        ax2 = axes[0][1]
        kinds = list(dict.fromkeys(technology.sort_values("memory_pj_per_bit").memory))
        dps = ordered(technology.datapath)
        w = 0.8 / len(dps)
        for j, dp in enumerate(dps):
            s = technology[technology.datapath == dp].set_index("memory").reindex(kinds)
            bars = ax2.bar(np.arange(len(kinds)) + (j - (len(dps) - 1) / 2) * w, 1e3 * s.energy_j_per_token, w * 0.92,
                           color=color(dp), label=dp)
            bar_values(ax2, bars, "{:.0f}", fontsize=6)
        pj = technology.groupby("memory").memory_pj_per_bit.first()
        ax2.set_xticks(range(len(kinds)))
        ax2.set_xticklabels([f"{k}\n{pj[k]:g} pJ/bit" for k in kinds], fontsize=8)
        ax2.set_ylabel("decode energy per token (mJ)")
        ax2.set_title("the same chips with another memory generation (same peak bandwidth)", fontsize=10)
        ax2.grid(True, axis="y", alpha=0.3)
    titled(fig, "Decode against memory bandwidth and technology", note)
    fig.tight_layout()
    legend_below(fig, [axes[0][0]], ncol=3)
    return fig


def comparison_bases(bases: pd.DataFrame, note: str = ""):
    """Decode and prefill tokens/s, and energy per token, of each datapath on chips sized iso-peak, iso-area
    and iso-power (``study_bases``); each bar carries its value, each group the chip's area and power."""
    need(bases, "study_bases", "comparison_bases")
    if bases.empty:
        return empty("Comparison bases", "no comparison bases")
    bases_order = [b for b in ("iso-peak", "iso-area", "iso-power") if b in set(bases.basis)]
    panels = [("decode", "tokens_per_s", "decode tokens/s"), ("prefill", "tokens_per_s", "prefill tokens/s"),
              ("decode", "energy_j_per_token", "decode mJ/token")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    dps = ordered(bases.datapath)
    w = 0.8 / len(dps)
    for ax, (phase, col, ylab) in zip(axes, panels):
        d = bases[bases.phase == phase]
        for j, dp in enumerate(dps):
            s = d[d.datapath == dp].set_index("basis").reindex(bases_order)
            vals = s[col] * (1e3 if col == "energy_j_per_token" else 1)
            bars = ax.bar(np.arange(len(bases_order)) + (j - (len(dps) - 1) / 2) * w, vals, w * 0.92,
                          color=color(dp), label=dp)
            bar_values(ax, bars, fontsize=6)
        ax.set_xticks(range(len(bases_order)))
        ax.set_xticklabels([_basis_tick(bases, b) for b in bases_order], fontsize=8)
        ax.set_ylabel(ylab)
        ax.grid(True, axis="y", alpha=0.3)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.12)
        ctx = d.context.iloc[0] if len(d) else 0
        ax.set_title(f"{phase} {'@ ' + context_label(int(ctx)) if phase == 'decode' else str(int(ctx)) + ' tokens'}",
                     fontsize=10)
    titled(fig, "The same datapaths at iso-peak, iso-area (the fp16 chip's area) and iso-power (its prefill power)",
           note)
    fig.tight_layout()
    legend_below(fig, [axes[0]], ncol=3)
    return fig


def _basis_tick(bases: pd.DataFrame, basis: str) -> str:
    """'iso-area\n57 mm²' -- the basis and what it holds equal."""
    s = bases[(bases.basis == basis) & (bases.phase == "prefill")]
    if basis == "iso-peak" or s.empty:
        return f"{basis}\nsame PEs"
    t = s.basis_target.iloc[0]
    return f"{basis}\n{t:.0f} mm²" if basis == "iso-area" else f"{basis}\n{t:.0f} W at prefill"


def sensitivity_bands(sens: pd.DataFrame, claims: dict[str, float] | None = None, note: str = ""):
    """Each headline ratio at its nominal value (dot) and its band (bar) over every knob (markers).

    ``sens``: a ``study_sensitivity`` table.  ``claims`` maps a ratio (``speed a4.8/b1.58``) to the
    claimed value, drawn as a vertical line in its row.
    """
    need(sens, "study_sensitivity", "sensitivity_bands")
    if sens.empty:
        return empty("Sensitivity", "no sensitivity bands")
    keys = list(dict.fromkeys(zip(sens.ratio, sens.phase, sens.context)))
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(keys) + 1.6))
    knobs = list(dict.fromkeys(sens.knob))
    marks = dict(zip(knobs, ("<", ">", "D", "P", "X", "*")))
    for i, (ratio, phase, ctx) in enumerate(keys):
        g = sens[(sens.ratio == ratio) & (sens.phase == phase) & (sens.context == ctx)]
        lo, hi, nom = g.band_low.iloc[0], g.band_high.iloc[0], g.nominal.iloc[0]
        ax.plot([lo, hi], [i, i], "-", color="0.6", lw=6, solid_capstyle="butt")
        ax.plot([nom], [i], "o", color="k", ms=6)
        for knob, kg in g.groupby("knob", sort=False):
            ax.scatter(kg.value, [i] * len(kg), marker=marks[knob], s=30, color=PALETTE8[knobs.index(knob)],
                       zorder=3, label=knob)
        ax.annotate(f"{nom:.2f}x [{lo:.2f}-{hi:.2f}]", (hi, i), xytext=(6, -3), textcoords="offset points", fontsize=7)
        c = (claims or {}).get(ratio)
        if c:
            ax.plot([c, c], [i - 0.4, i + 0.4], color="#D55E00", lw=1.5)
    ax.set_yticks(range(len(keys)))
    ax.set_yticklabels([f"{r} {ph}{' @ ' + context_label(int(c)) if ph == 'decode' else ''}" for r, ph, c in keys],
                       fontsize=8)
    ax.set_xscale("log")
    plain_log_ticks(ax, "x")
    ax.invert_yaxis()
    ax.set_xlabel("ratio (x, higher = a4.8 better); red tick: the claimed value")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    ax.legend(seen.values(), seen.keys(), fontsize=7, loc="lower right")
    titled(fig, "Headline ratios and their sensitivity bands (one uncertain input moved at a time)", note)
    fig.tight_layout()
    return fig
