"""Figures of the simulated study (``study_summary`` rows): energy by component, throughput, footprint.

Every function takes ``note``: the line under the title that names the comparison's profile and
energy basis (the report passes it; a notebook may leave it empty).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
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
    titled,
)
from bitsim.report.labels import context_label
from contract.sim import ENERGY_COMPONENTS

COMPONENT_COLORS = {"compute": "#4c72b0", "sram": "#55a868", "offchip": "#c44e52",
                    "vector": "#8172b2", "static": "#937860"}
ROLES = ("matched", "reference")


def energy_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows an energy comparison may show: one energy basis, the chip model (dynamic + static).

    Rows of a ``dynamic-only`` accelerator (e.g. ``h100-like``: no static or board power) are left
    out: their joules are not comparable with the chips' totals.
    """
    if "energy_basis" not in summary.columns:
        return summary
    return summary[summary.energy_basis.astype(str) != "dynamic-only"]


def energy_by_component(summary: pd.DataFrame, decode_context: int | None = None, board: pd.DataFrame | None = None,
                        note: str = ""):
    """Stacked energy per token (mJ) by hardware component, per datapath, on one energy basis.

    ``summary``: a ``study_summary`` table (preset, datapath, phase, context, role,
    energy_<component>_j in J per token); rows of dynamic-only accelerators are dropped
    (:func:`energy_rows`).  One panel per (preset, phase); decode at ``decode_context`` (default:
    the largest context <= 2048).  ``board`` (optional: preset, datapath, phase, context, j_per_token
    of a measured GPU's board energy) adds a hatched bar per datapath in the panel of that workload,
    clipped to the panel with its value written.  The total is written on each bar.
    """
    need(summary, "study_summary", "energy_by_component")
    comps = ENERGY_COMPONENTS
    summary = energy_rows(summary)
    dec = summary[summary.phase == "decode"]
    if decode_context is None and len(dec):
        ctxs = sorted(dec.context.unique())
        decode_context = max([c for c in ctxs if c <= 2048] or ctxs[:1])
    sel = pd.concat([dec[dec.context == decode_context], summary[summary.phase == "prefill"]])
    presets = list(dict.fromkeys(sel.preset))
    phases = [p for p in ("decode", "prefill") if p in set(sel.phase)]
    if sel.empty:
        return empty("Energy per token", "no results on the chip-model energy basis")
    fig, axes = plt.subplots(len(presets), len(phases), figsize=(5.2 * len(phases), 3.5 * len(presets)),
                             squeeze=False)
    has_board = board is not None and len(board) > 0
    for i, preset in enumerate(presets):
        for j, phase in enumerate(phases):
            ax = axes[i][j]
            d = sel[(sel.preset == preset) & (sel.phase == phase)]
            dps = ordered(d.datapath)
            # the measured board energy belongs to one workload: its preset, phase and decode context
            b_here = (board[(board.preset == preset) & (board.phase == phase)
                            & ((board.context == decode_context) | (phase != "decode"))] if has_board else None)
            show_board = b_here is not None and len(b_here) > 0
            width = 0.38 if show_board else 0.7
            shift = width / 2 if show_board else 0.0
            tops = []
            for x, dp in enumerate(dps):
                row = d[(d.datapath == dp) & (d.role == "matched")]
                if row.empty:
                    continue
                row = row.iloc[0]
                bottom = 0.0
                for comp in comps:
                    v = row[f"energy_{comp}_j"] * 1e3
                    ax.bar(x - shift, v, width * 0.95, bottom=bottom, color=COMPONENT_COLORS[comp], edgecolor="white",
                           linewidth=0.5, label=comp if (x == 0) else None)
                    bottom += v
                tops.append(bottom)
                ax.annotate(number(bottom), (x - shift, bottom), xytext=(0, 2), textcoords="offset points",
                            ha="center", fontsize=7)
            ymax = 1.45 * max(tops) if tops else 1.0
            if show_board:
                for x, dp in enumerate(dps):
                    b = b_here[b_here.datapath == dp]
                    if b.empty:
                        continue
                    v = 1e3 * float(b.j_per_token.iloc[0])
                    ax.bar(x + shift, min(v, ymax * 0.93), width * 0.95, color="white", edgecolor="black", hatch="//",
                           label="GPU board, measured (bar clipped: value written)" if x == 0 else None)
                    ax.annotate(number(v) + (" ^" if v > ymax * 0.93 else ""), (x + shift, min(v, ymax * 0.93)),
                                xytext=(0, 2), textcoords="offset points", ha="center", fontsize=7)
            ax.set_xticks(range(len(dps)))
            ax.set_xticklabels(dps)
            where = f"decode @ {context_label(decode_context)} ctx" if phase == "decode" else "prefill"
            ax.set_title(f"{preset}: {where}", fontsize=10)
            ax.set_ylabel("energy per token (mJ)")
            ax.grid(True, axis="y", alpha=0.3)
            ax.set_ylim(0, ymax)
    handles, labels = [], []
    for ax in axes.flat:
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in labels:
                handles.append(h)
                labels.append(l)
    total = sel[[f"energy_{c}_j" for c in comps]].sum(axis=1).replace(0, np.nan)
    for h in handles:
        if h.get_label() in comps:
            share = float((sel[f"energy_{h.get_label()}_j"] / total).max())
            if share < 0.01:
                h.set_label(f"{h.get_label()} (< {max(share, 1e-4) * 100:.1g} %, not visible)")
    height = fig.get_size_inches()[1]
    top = titled(fig, "Energy per token on each datapath's matched chip", note, y=0.995)
    fig.legend(handles=handles, loc="center", ncol=min(len(handles), 4), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 1 - (top + 0.25) / height))
    fig.tight_layout(rect=(0, 0, 1, 1 - (top + 0.42) / height))
    return fig


def feasible_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows whose weights + KV cache fit their chip: the only ones a throughput figure draws."""
    if "feasible" not in summary.columns:
        return summary
    return summary[summary.feasible.astype(bool)]


def throughput(summary: pd.DataFrame, note: str = ""):
    """Decode tokens/s vs context, per datapath and accelerator role (infeasible points left out).

    ``summary``: a ``study_summary`` table (preset, datapath, phase, context, role, tokens_per_s
    are drawn; rows with ``feasible`` false are not).  One panel per preset; solid lines: matched
    chip; dashed, hollow markers: the reference (e.g. h100-like).  Each datapath has its own
    marker, and series are shifted a little along x so coinciding ones (a4.8, a4.8-fp4) both show.
    """
    need(summary, "study_summary", "throughput")
    dec = feasible_rows(summary[summary.phase == "decode"])
    if dec.empty:
        return empty("Decode throughput", "no feasible decode results")
    presets = list(dict.fromkeys(dec.preset))
    fig, axes = plt.subplots(1, len(presets), figsize=(5.4 * len(presets), 4.2), squeeze=False)
    for j, preset in enumerate(presets):
        ax = axes[0][j]
        d = dec[dec.preset == preset]
        for k, dp in enumerate(ordered(d.datapath)):
            for role in ordered(d.role, ROLES):
                s = d[(d.datapath == dp) & (d.role == role)].sort_values("context")
                if s.empty:
                    continue
                plot_series(ax, s.context, s.tokens_per_s, dp, f"{dp} on {s.accelerator.iloc[0]}",
                            dashed=role != "matched", dodge=k - 1.5)
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
    fig, axes = plt.subplots(1, len(presets), figsize=(5.4 * len(presets), 4.0), squeeze=False)
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
