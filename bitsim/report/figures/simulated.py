"""Figures of the simulated study (``study_summary`` rows): energy by component, throughput, footprint.

Every function takes ``note``: the line under the title that names the comparison's profile and
energy basis (the report passes it; a notebook may leave it empty).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from bitsim.report.figures.common import (
    color,
    context_axes,
    empty,
    legend_below,
    need,
    number,
    ordered,
    plot_series,
    sized_panels,
    titled,
)
from bitsim.report.labels import context_label
from contract.sim import ENERGY_COMPONENTS

COMPONENT_COLORS = {"compute": "#4c72b0", "sram": "#55a868", "offchip": "#c44e52",
                    "vector": "#8172b2", "static": "#937860"}
ROLES = ("matched", "reference")
#: Line style of each reference chip in a throughput panel (the matched chip is solid).
REF_LINES = ("--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)))


def energy_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows an energy comparison may show: one energy basis, the chip model (dynamic + static).

    Rows of a ``dynamic-only`` accelerator (e.g. ``h100-like``: no static or board power) are left
    out: their joules are not comparable with the chips' totals.
    """
    if "energy_basis" not in summary.columns:
        return summary
    return summary[summary.energy_basis.astype(str) != "dynamic-only"]


def energy_by_component(summary: pd.DataFrame, decode_context: int | None = None, note: str = ""):
    """Stacked energy per token (mJ) by hardware component, one bar per (datapath, accelerator).

    ``summary``: a ``study_summary`` table (preset, datapath, phase, context, accelerator,
    energy_<component>_j in J per token); rows of dynamic-only accelerators are dropped
    (:func:`energy_rows`), so every bar is on one energy basis, the chip model.  One panel per
    (preset, phase); decode at ``decode_context`` (default: the largest context <= 2048).  Every
    chip of that basis is drawn, reference chips included, each under its own name; the total is
    written on each bar.  A measured GPU's board energy (idle power included) is another basis and
    is not drawn here.
    """
    need(summary, "study_summary", "energy_by_component")
    sel, decode_context = _energy_selection(energy_rows(summary), decode_context)
    if sel.empty:
        return empty("Energy per token", "no results on the chip-model energy basis")
    panels = [(p, ph) for p in dict.fromkeys(sel.preset) for ph in ("decode", "prefill")
              if ((sel.preset == p) & (sel.phase == ph)).any()]
    ncol = min(len(panels), 2)
    nrow = -(-len(panels) // ncol)
    fig, axes = sized_panels(nrow, ncol, "page" if ncol > 1 else "column", height=2.6 * nrow + 0.9)
    for ax, (preset, phase) in zip(axes.flat, panels):
        _component_bars(ax, sel[(sel.preset == preset) & (sel.phase == phase)])
        where = f"decode @ {context_label(decode_context)} ctx" if phase == "decode" else "prefill"
        ax.set_title(f"{preset}: {where}", fontsize=8.5)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    titled(fig, "Energy per token on each chip (chip model: dynamic + static)", note)
    fig.tight_layout()
    legend_below(fig, list(axes.flat), ncol=5)
    _label_invisible_components(fig, sel)
    return fig


def _energy_selection(summary: pd.DataFrame, decode_context: int | None) -> tuple[pd.DataFrame, int | None]:
    """Decode rows at ``decode_context`` (default: the largest context <= 2048) and every prefill row."""
    dec = summary[summary.phase == "decode"]
    if decode_context is None and len(dec):
        ctxs = sorted(dec.context.unique())
        decode_context = int(max([c for c in ctxs if c <= 2048] or ctxs[:1]))
    return pd.concat([dec[dec.context == decode_context], summary[summary.phase == "prefill"]]), decode_context


def _bar_keys(rows: pd.DataFrame) -> list[tuple[str, str]]:
    """(datapath, accelerator) of every bar: datapaths in their order, matched chip first, then references."""
    keys = []
    for dp in ordered(rows.datapath):
        d = rows[rows.datapath == dp]
        for role in ordered(d.role, ROLES):
            keys += [(dp, a) for a in dict.fromkeys(d[d.role == role].accelerator) if (dp, a) not in keys]
    return keys


def _component_bars(ax, rows: pd.DataFrame) -> None:
    """One stacked bar per (datapath, accelerator) of ``rows`` (one preset and phase), its total written on it."""
    keys = _bar_keys(rows)
    several = len({a for _, a in keys}) > len({d for d, _ in keys})
    for x, (dp, acc) in enumerate(keys):
        row = rows[(rows.datapath == dp) & (rows.accelerator == acc)].iloc[0]
        bottom = 0.0
        for comp in ENERGY_COMPONENTS:
            v = 1e3 * float(row[f"energy_{comp}_j"])
            ax.bar(x, v, 0.7, bottom=bottom, color=COMPONENT_COLORS[comp], edgecolor="white", linewidth=0.5,
                   label=comp)
            bottom += v
        ax.annotate(number(bottom), (x, bottom), xytext=(0, 2), textcoords="offset points", ha="center", fontsize=7)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([f"{dp}\non {acc}" if several or acc != dp else dp for dp, acc in keys], fontsize=7)
    ax.set_ylabel("energy per token (mJ)", fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.12)


def _label_invisible_components(fig, sel: pd.DataFrame) -> None:
    """A component below 1 % of every bar says so in the legend ('vector (< 0.2 %, not visible)')."""
    total = sel[[f"energy_{c}_j" for c in ENERGY_COMPONENTS]].sum(axis=1).replace(0, np.nan)
    for legend in fig.legends:
        for text in legend.get_texts():
            comp = text.get_text()
            if comp in ENERGY_COMPONENTS:
                share = float((sel[f"energy_{comp}_j"] / total).max())
                if share < 0.01:
                    text.set_text(f"{comp} (< {max(share, 1e-4) * 100:.1g} %, not visible)")


def step_bytes(summary: pd.DataFrame, crossovers: pd.DataFrame | None = None, note: str = ""):
    """Off-chip bytes of one decode step against context: the weights' (GEMM, dotted) and the KV cache's
    (attention, solid), per datapath on its matched chip, with the context where they cross marked.

    ``summary``: a ``study_summary`` table (gemm_bytes_offchip, attention_bytes_offchip); ``crossovers``:
    a ``study_crossovers`` table (of the one preset drawn) whose "KV cache outweighs the weights" rows are
    drawn as markers, so the number the report quotes is the one drawn.  One panel per preset.
    """
    need(summary, "study_summary", "step_bytes")
    dec = summary[(summary.phase == "decode") & (summary.role == "matched")]
    if dec.empty:
        return empty("Bytes per decode step", "no decode results")
    presets = list(dict.fromkeys(dec.preset))
    fig, axes = sized_panels(1, len(presets), "page" if len(presets) > 1 else "column", height=3.2)
    for ax, preset in zip(axes[0], presets):
        d = dec[dec.preset == preset]
        for k, dp in enumerate(ordered(d.datapath)):
            s = d[d.datapath == dp].sort_values("context")
            plot_series(ax, s.context, s.attention_bytes_offchip / 1e6, dp, f"{dp}: KV cache", dodge=k - 1.5)
            ax.plot(s.context, s.gemm_bytes_offchip / 1e6, ":", color=color(dp), label=f"{dp}: weights")
            x = _kv_crossover(crossovers, dp) if len(presets) == 1 else None
            if x is not None:
                y = float(np.interp(np.log(x), np.log(s.context), s.gemm_bytes_offchip / 1e6))
                ax.plot([x], [y], "X", color=color(dp), ms=8, mec="k", mew=0.6, zorder=4)
                ax.annotate(f"{x:,.0f}", (x, y), xytext=(5, -9), textcoords="offset points", fontsize=7,
                            color=color(dp))
        batch = int(d.batch.iloc[0]) if "batch" in d.columns else 1
        context_axes(ax, d.context, f"context length (tokens, batch {batch})", "off-chip MB per decode step",
                     f"{preset}: weights vs KV bytes per step")
    titled(fig, "Bytes one decode step moves: weights (dotted) and KV cache (solid); X: where they cross", note)
    fig.tight_layout()
    legend_below(fig, axes[0], ncol=4)
    return fig


def _kv_crossover(crossovers: pd.DataFrame | None, datapath: str) -> float | None:
    """The context at which ``datapath``'s KV bytes per step reach its weight bytes, if within the swept range."""
    if crossovers is None or crossovers.empty:
        return None
    c = crossovers[(crossovers.crossover == "context at which the KV cache outweighs the weights")
                   & (crossovers.datapath == datapath) & (crossovers["where"] == "within the range")]
    return float(c.value.iloc[0]) if len(c) and np.isfinite(c.value.iloc[0]) else None


def feasible_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows whose weights + KV cache fit their chip: the only ones a throughput figure draws."""
    if "feasible" not in summary.columns:
        return summary
    return summary[summary.feasible.astype(bool)]


def throughput(summary: pd.DataFrame, note: str = ""):
    """Decode tokens/s vs context, per datapath and accelerator role (infeasible points left out).

    ``summary``: a ``study_summary`` table (preset, datapath, phase, context, role, tokens_per_s
    are drawn; rows with ``feasible`` false are not).  One panel per preset; solid lines: matched
    chip; hollow markers: each reference chip (e.g. h100-like), one line per chip in its own style,
    labelled by its name.  Each datapath has its own
    marker, and series are shifted a little along x so coinciding ones (a4.8, a4.8-fp4) both show.
    """
    need(summary, "study_summary", "throughput")
    dec = feasible_rows(summary[summary.phase == "decode"])
    if dec.empty:
        return empty("Decode throughput", "no feasible decode results")
    presets = list(dict.fromkeys(dec.preset))
    fig, axes = sized_panels(1, len(presets), "page" if len(presets) > 1 else "column", height=3.4)
    for j, preset in enumerate(presets):
        ax = axes[0][j]
        d = dec[dec.preset == preset]
        refs = list(dict.fromkeys(d[d.role != "matched"].accelerator))
        for k, dp in enumerate(ordered(d.datapath)):
            for role in ordered(d.role, ROLES):
                r = d[(d.datapath == dp) & (d.role == role)]
                for acc in dict.fromkeys(r.accelerator):   # one line per chip: references never merge
                    s = r[r.accelerator == acc].sort_values("context")
                    style = {} if role == "matched" else {"linestyle": REF_LINES[refs.index(acc) % len(REF_LINES)]}
                    plot_series(ax, s.context, s.tokens_per_s, dp, f"{dp} on {acc}", dashed=role != "matched",
                                dodge=k - 1.5, **style)
        batch = int(d.batch.iloc[0]) if "batch" in d.columns else 1
        context_axes(ax, d.context, "context length (tokens)", f"decode tokens/s (batch {batch})",
                     f"{preset}: decode throughput")
    titled(fig, "Decode throughput against context (matched chip solid, reference dashed)", note)
    fig.tight_layout()
    legend_below(fig, axes[0], ncol=4)
    return fig


def footprint(summary: pd.DataFrame, capacities: dict[str, float] | None = None, note: str = ""):
    """Memory footprint (GB) vs context: weights (dotted) and weights + KV cache (solid), with capacity lines.

    ``summary``: a ``study_summary`` table (preset, datapath, phase, context, role, weight_bytes,
    kv_bytes are drawn; decode rows on the matched chip).  ``capacities`` maps a chip name to its
    off-chip capacity in GB (default: the summary's capacity_gb per accelerator); each is a
    horizontal line: a point above the line of its chip does not fit it.
    """
    need(summary, "study_summary", "footprint")
    dec = summary[(summary.phase == "decode") & (summary.role == "matched")]
    if dec.empty:
        return empty("Memory footprint", "no decode results")
    if capacities is None and "capacity_gb" in summary.columns:
        capacities = summary.groupby("accelerator").capacity_gb.first().to_dict()
    presets = list(dict.fromkeys(dec.preset))
    fig, axes = sized_panels(1, len(presets), "page" if len(presets) > 1 else "column", height=3.4)
    for j, preset in enumerate(presets):
        ax = axes[0][j]
        d = dec[dec.preset == preset]
        for k, dp in enumerate(ordered(d.datapath)):
            s = d[d.datapath == dp].sort_values("context")
            plot_series(ax, s.context, (s.weight_bytes + s.kv_bytes) / 1e9, dp, f"{dp}: weights + KV", dodge=k - 1.5)
            ax.plot(s.context, s.weight_bytes / 1e9, ":", color=color(dp), label=f"{dp}: weights only")
        context_axes(ax, d.context, f"context length (tokens, batch {int(d.batch.iloc[0])})", "memory footprint (GB)",
                     f"{preset}: weights + KV cache")
        by_cap: dict[float, list[str]] = {}
        for name, cap in (capacities or {}).items():
            by_cap.setdefault(float(cap), []).append(str(name))
        lo, hi = ax.get_ylim()
        for cap, names in sorted(by_cap.items()):
            ax.axhline(cap, color="k", lw=1.0, ls="-.", alpha=0.7)
            ax.annotate(f"capacity {cap:g} GB: {', '.join(names)}", (ax.get_xlim()[0], cap), xytext=(3, 2),
                        textcoords="offset points", fontsize=7, va="bottom")
        ax.set_ylim(lo, max(hi, 1.3 * max(by_cap or [hi])))
    titled(fig, "Weights + KV cache against context, with each chip's off-chip capacity", note)
    fig.tight_layout()
    legend_below(fig, axes[0], ncol=4)
    return fig
