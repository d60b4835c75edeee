"""Figures of the study's axes: the gain ladder, batch, bandwidth and memory technology, comparison bases,
and the sensitivity bands (tables of ``bitsim.experiments.tables``).

Every function takes ``note``: the line under the title that names the profile and energy basis.
Infeasible points (weights + KV cache beyond the chip's capacity) are never drawn as throughputs.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from bitsim.report.figures.common import (
    PALETTE8,
    bar_values,
    color,
    empty,
    keep_texts_inside,
    legend_below,
    mosaic,
    need,
    ordered,
    plain_log_ticks,
    plot_series,
    sized_panels,
    titled,
)
from bitsim.report.labels import context_label

#: Tick label of each rung of the gain ladder (bitsim.experiments.ladder).
LADDER_RUNGS = {0: "0: b1.58 preset\n(FP16 KV, no skip)", 1: "1: strongest\nb1.58", 2: "2: + 3-bit KV",
                3: "3: + a4.8\ndatapath"}


def gain_ladder(ladder: pd.DataFrame, note: str = ""):
    """Decode tokens/s of each rung of the ladder, zero skipping on (solid) and off (hatched), one panel per context.

    ``ladder``: a ``gain_ladder`` table (context, step, tokens_per_s, tokens_per_s_no_skip,
    speedup_step, speedup_step_no_skip are drawn).  Each bar carries its tokens/s; the step ratio
    (with skipping, and with skipping off on both rungs) is written under its rung's name, so no
    annotation sits on a bar's value.
    """
    need(ladder, "gain_ladder", "gain_ladder")
    if ladder.empty:
        return empty("Gain ladder", "no ladder (needs b1.58 and a4.8)")
    ctxs = sorted(ladder.context.unique())
    ncol = min(len(ctxs), 2)
    nrow = -(-len(ctxs) // ncol)
    fig, axes = sized_panels(nrow, ncol, "page" if ncol > 1 else "column", height=3.0 * nrow + 0.8)
    for ax, ctx in zip(axes.flat, ctxs):
        _ladder_panel(ax, ladder[ladder.context == ctx].sort_values("step"), int(ctx))
    for ax in list(axes.flat)[len(ctxs):]:
        ax.axis("off")
    titled(fig, "Where a4.8's decode gain over the strongest b1.58 comes from (one change per step)", note)
    fig.tight_layout()
    legend_below(fig, list(axes.flat), ncol=2)
    return fig


def _ladder_panel(ax, d: pd.DataFrame, ctx: int) -> None:
    """One context of the ladder: the bars of every rung, their values, the step ratios in the tick labels."""
    xs = np.arange(len(d))
    on = ax.bar(xs - 0.2, d.tokens_per_s, 0.38, color=[color(dp) for dp in d.datapath], label="zero skipping on")
    off = ax.bar(xs + 0.2, d.tokens_per_s_no_skip, 0.38, color="white", edgecolor=[color(dp) for dp in d.datapath],
                 hatch="//", label="zero skipping off")
    bar_values(ax, on, "{:.0f}", fontsize=7)
    bar_values(ax, off, "{:.0f}", fontsize=7)
    ticks = []
    for r in d.itertuples():
        t = LADDER_RUNGS.get(int(r.step), str(r.step))
        if np.isfinite(r.speedup_step):
            t += f"\nstep x{r.speedup_step:.2f}\n(off: x{r.speedup_step_no_skip:.2f})"
        ticks.append(t)
    ax.set_xticks(xs)
    ax.set_xticklabels(ticks, fontsize=7)
    ax.set_ylabel("decode tokens/s", fontsize=8)
    ax.set_title(f"{d.preset.iloc[0]}, decode @ {context_label(ctx)}: total x{d.speedup_total.iloc[-1]:.2f} "
                 "over the strongest b1.58", fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.1)


def capacity_batches(batch: pd.DataFrame) -> dict[str, float]:
    """Per datapath, the largest batch whose weights + KV cache fit the chip: (capacity - weights) / KV bytes
    per sequence, from the batch table's own columns (the study's crossover of the same name)."""
    out = {}
    for dp, g in batch.groupby("datapath", sort=False):
        r = g.iloc[0]
        per_seq = float(r.kv_bytes) / float(r.batch)
        if per_seq > 0:
            out[str(dp)] = (1e9 * float(r.capacity_gb) - float(r.weight_bytes)) / per_seq
    return out


def batch_ratios(batch: pd.DataFrame, num: str = "a4.8") -> dict[str, pd.Series]:
    """``num`` over each other datapath: decode tokens/s ratio per batch both fit (zero skipping on)."""
    on = batch[batch.feasible.astype(bool) & (batch.skip == "on")]
    tps = on.pivot_table(index="batch", columns="datapath", values="tokens_per_s", aggfunc="first")
    if num not in tps:
        return {}
    return {dp: (tps[num] / tps[dp]).dropna() for dp in ordered(tps.columns) if dp != num}


def batch_sweep(batch: pd.DataFrame, note: str = ""):
    """Decode against the batch (feasible points only): tokens/s, a4.8's ratio to each baseline, and the gain
    of zero skipping.

    ``batch``: a ``study_batch`` table.  Left: tokens/s per datapath (solid: zero skipping on, dashed:
    off), each line ending at the last swept batch whose weights + KV cache fit the chip; each datapath's
    capacity batch (:func:`capacity_batches`) is marked by a vertical tick in its colour.  Middle: a4.8
    over each other datapath (:func:`batch_ratios`).  Right: tokens/s with / without skipping, with the
    1.05x line below which skipping stops paying.
    """
    need(batch, "study_batch", "batch_sweep")
    if batch.empty:
        return empty("Batch sweep", "no batch sweep")
    # three panels do not fit a page's width at legible sizes: throughput on top, the two ratios under it
    fig, axd = mosaic([["tps", "tps"], ["lead", "skip"]], "page", height=6.0)
    ax, ax_r, ax2 = axd["tps"], axd["lead"], axd["skip"]
    feas = batch[batch.feasible.astype(bool)]
    for k, dp in enumerate(ordered(batch.datapath)):
        both = batch[batch.datapath == dp].skip.nunique() > 1
        for skip in ("on", "off"):
            s = feas[(feas.datapath == dp) & (feas.skip == skip)].sort_values("batch")
            if len(s):
                plot_series(ax, s.batch, s.tokens_per_s, dp, f"{dp}, zero skipping {skip}" if both else dp,
                            dashed=skip == "off", dodge=2 * k + (skip == "off") - 2)
        g = feas[(feas.datapath == dp) & (feas.skip == "on") & feas.skip_gain.notna()].sort_values("batch")
        if len(g):
            plot_series(ax2, g.batch, g.skip_gain, dp, dp, dodge=k - 1)
    ratios = batch_ratios(batch)
    for k, (dp, r) in enumerate(ratios.items()):
        plot_series(ax_r, r.index, r.to_numpy(), dp, f"a4.8 / {dp}")
        above = all(v >= ratios[o].get(b, 0) for o in ratios for b, v in r.items() if o != dp)
        for b, v in r.items():   # right of the point, above the top line and below the others
            ax_r.annotate(f"{v:.2f}x", (b, v), xytext=(4, 3 if above else -9), textcoords="offset points",
                          fontsize=7, ha="left", color=color(dp))
    hi = max(sorted(batch.batch.unique())[-1], 1)
    caps = capacity_batches(batch)
    for dp, cap in caps.items():
        if 1 <= cap <= 4 * hi:
            ax.axvline(cap, color=color(dp), ls=(0, (1, 2)), lw=1.2)
            ax.annotate(f"{dp} fits {cap:.0f}", (cap, 0), xycoords=("data", "axes fraction"), xytext=(-1, 3),
                        textcoords="offset points", rotation=90, fontsize=7, va="bottom", ha="right",
                        color=color(dp))
    ctx = context_label(int(batch.context.iloc[0]))
    for a in (ax, ax_r, ax2):
        _batch_axis(a, batch, ctx)
    ax.set_yscale("log")
    plain_log_ticks(ax)
    ax.set_ylabel("decode tokens/s (all sequences)", fontsize=8)
    ax.set_title(f"{batch.preset.iloc[0]}: throughput; dotted: capacity", fontsize=8)
    ax_r.axhline(1.0, color="k", lw=0.8)
    ax_r.set_yscale("log")
    lo, hi = ax_r.get_ylim()
    ax_r.set_ylim(min(lo, 0.8), hi * 1.3)
    plain_log_ticks(ax_r)
    ax_r.set_ylabel("a4.8 tokens/s over the other (line: 1x)", fontsize=8)
    ax_r.set_title("a4.8's lead against the batch", fontsize=8)
    ax2.axhline(1.05, color="k", lw=0.8, ls=":")
    ax2.annotate("1.05x", (ax2.get_xlim()[1], 1.05), xytext=(-3, 3), textcoords="offset points", fontsize=7,
                 ha="right")
    ax2.set_ylabel("zero skipping on / off", fontsize=8)
    ax2.set_title("what skipping zero weight rows buys", fontsize=8)
    titled(fig, "Decode against batch (capacity-aware: infeasible points not drawn)", note)
    if ratios:   # its own legend: a ratio line shares its baseline's colour and marker
        ax_r.legend(fontsize=7, loc="upper right", frameon=False)
    fig.tight_layout()
    keep_texts_inside(ax_r, "xy")
    legend_below(fig, [ax], ncol=3)
    return fig


def _batch_axis(ax, batch: pd.DataFrame, ctx: str) -> None:
    ax.set_xscale("log", base=2)
    ticks = sorted(batch.batch.unique())
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(int(b)) for b in ticks], fontsize=7)
    ax.set_xlabel(f"decode batch (sequences), {ctx} context", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)


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
    fig, axes = sized_panels(1, 2 if has_tech else 1, "page" if has_tech else "column", height=3.4)
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
    ax.set_title(f"{bandwidth.preset.iloc[0]}, decode @ {context_label(int(bandwidth.context.iloc[0]))}:\n"
                 "dotted = bandwidth-bound", fontsize=8.5)
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
            bar_values(ax2, bars, "{:.0f}", fontsize=7, rotation=90)   # upright, neighbours' values overlap
        ax2.set_ylim(0, ax2.get_ylim()[1] * 1.2)   # room for the tallest bar's value
        pj = technology.groupby("memory").memory_pj_per_bit.first()
        ax2.set_xticks(range(len(kinds)))
        ax2.set_xticklabels([f"{k}\n{pj[k]:g}\npJ/bit" for k in kinds], fontsize=7)
        ax2.set_ylabel("decode energy per token (mJ)")
        ax2.set_title("the same chips, another memory\n(same peak bandwidth)", fontsize=8.5)
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
    drawn = [("decode", "tokens_per_s", "decode tokens/s"), ("prefill", "tokens_per_s", "prefill tokens/s"),
             ("decode", "energy_j_per_token", "decode mJ/token")]
    fig, grid = sized_panels(1, 3, "page", height=3.2)
    axes = grid[0]
    dps = ordered(bases.datapath)
    w = 0.8 / len(dps)
    for ax, (phase, col, ylab) in zip(axes, drawn):
        d = bases[bases.phase == phase]
        for j, dp in enumerate(dps):
            s = d[d.datapath == dp].set_index("basis").reindex(bases_order)
            vals = s[col] * (1e3 if col == "energy_j_per_token" else 1)
            bars = ax.bar(np.arange(len(bases_order)) + (j - (len(dps) - 1) / 2) * w, vals, w * 0.92,
                          color=color(dp), label=dp)
            bar_values(ax, bars, fontsize=7, rotation=90)   # upright values of neighbouring bars overlap
        ax.set_xticks(range(len(bases_order)))
        ax.set_xticklabels([_basis_tick(bases, b) for b in bases_order], fontsize=7)
        ax.set_ylabel(ylab)
        ax.grid(True, axis="y", alpha=0.3)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.25)
        ctx = d.context.iloc[0] if len(d) else 0
        ax.set_title(f"{phase} {'@ ' + context_label(int(ctx)) if phase == 'decode' else str(int(ctx)) + ' tokens'}",
                     fontsize=8.5)
    titled(fig, "The same datapaths at iso-peak, iso-area (the fp16 chip's area) and iso-power (its prefill power)",
           note)
    fig.tight_layout()
    legend_below(fig, [axes[0]], ncol=3)
    return fig


def _basis_tick(bases: pd.DataFrame, basis: str) -> str:
    """'iso-area\n57 mm²' -- the basis and what it holds equal."""
    s = bases[(bases.basis == basis) & (bases.phase == "prefill")]
    if basis == "iso-peak" or s.empty:
        return f"{basis}\nsame peak op/s"      # equal peak operations per second, not equal PE counts
    t = s.basis_target.iloc[0]
    return f"{basis}\n{t:.0f} mm²" if basis == "iso-area" else f"{basis}\n{t:.0f} W"   # the title says prefill


#: Colour of a claimed value wherever a figure draws one (Okabe-Ito vermillion: "orange" in captions).
CLAIM_COLOR = "#D55E00"


def sensitivity_bands(sens: pd.DataFrame, claims: dict[str, float] | None = None, note: str = ""):
    """Each headline ratio at its nominal value (dot) and its band (bar) over every knob (markers).

    ``sens``: a ``study_sensitivity`` table.  ``claims`` maps a speed ratio (``speed a4.8/b1.58``) to the
    claimed value, drawn as an orange tick in its rows (never on an energy row: no energy ratio is claimed).
    """
    need(sens, "study_sensitivity", "sensitivity_bands")
    if sens.empty:
        return empty("Sensitivity", "no sensitivity bands")
    keys = list(dict.fromkeys(zip(sens.ratio, sens.phase, sens.context)))
    fig, grid = sized_panels(1, 1, "page", height=0.3 * len(keys) + 1.4)
    ax = grid[0][0]
    knobs = list(dict.fromkeys(sens.knob))
    shapes = ("<", ">", "D", "P", "X", "*", "s", "v")
    if len(knobs) > min(len(shapes), len(PALETTE8)):
        raise ValueError(f"sensitivity_bands draws at most {len(shapes)} knobs with their own marker and colour, "
                         f"got {len(knobs)}: {knobs}")
    marks = dict(zip(knobs, shapes))
    for i, (ratio, phase, ctx) in enumerate(keys):
        g = sens[(sens.ratio == ratio) & (sens.phase == phase) & (sens.context == ctx)]
        lo, hi, nom = g.band_low.iloc[0], g.band_high.iloc[0], g.nominal.iloc[0]
        ax.plot([lo, hi], [i, i], "-", color="0.6", lw=6, solid_capstyle="butt")
        ax.plot([nom], [i], "o", color="k", ms=6)
        for knob, kg in g.groupby("knob", sort=False):
            ax.scatter(kg.value, [i] * len(kg), marker=marks[knob], s=30, color=PALETTE8[knobs.index(knob)],
                       zorder=3, label=knob)
        c = (claims or {}).get(ratio) if str(ratio).startswith("speed") else None
        if c:
            ax.plot([c], [i], "|", color=CLAIM_COLOR, ms=14, mew=2, zorder=2, label="claimed value")
        right = c * 1.01 if c and hi < c < 1.8 * hi else hi   # the value's label never runs over the tick
        ax.annotate(f"{nom:.2f}x [{lo:.2f}-{hi:.2f}]", (right, i), xytext=(6, 0), textcoords="offset points",
                    fontsize=7, va="center")
    ax.set_yticks(range(len(keys)))
    ax.set_yticklabels([f"{r} {ph}{' @ ' + context_label(int(c)) if ph == 'decode' else ''}" for r, ph, c in keys],
                       fontsize=7)
    ax.set_xscale("log")
    plain_log_ticks(ax, "x")
    ax.invert_yaxis()
    ax.set_xlabel("ratio (x, higher = a4.8 better); orange tick: the claimed value (speed rows only)", fontsize=8)
    ax.grid(True, axis="x", which="both", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    lo, _ = ax.get_xlim()
    ax.set_xlim(lo, float(np.nanmax(sens.band_high)) * 1.9)   # room for the value written right of each band
    plain_log_ticks(ax, "x")
    titled(fig, "Headline ratios and their sensitivity bands (one uncertain input moved at a time)", note)
    fig.tight_layout()
    keep_texts_inside(ax, "xy")
    fig.legend(seen.values(), seen.keys(), fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3,
               frameon=False)
    return fig
