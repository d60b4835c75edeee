"""Figures of the simulated study (``study_summary`` rows): energy by component, throughput, footprint."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from bitsim.report.figures.common import color, context_axes, empty, legend_below, need, ordered
from bitsim.report.labels import context_label
from bitsim.tables.sim import ENERGY_COMPONENTS

COMPONENT_COLORS = {"compute": "#4c72b0", "sram": "#55a868", "offchip": "#c44e52",
                    "vector": "#8172b2", "static": "#937860"}
ROLES = ("matched", "reference")


def energy_by_component(summary: pd.DataFrame, decode_context: int | None = None):
    """Stacked energy per token (mJ) by hardware component, per datapath.

    ``summary``: a ``study_summary`` table (preset, datapath, phase, context,
    accelerator, role, energy_<component>_j in J per token).  One panel per
    (preset, phase); decode at ``decode_context`` (default: the largest
    context <= 2048).  Within a datapath: left bar its matched accelerator,
    right bar the reference one (hatched).
    """
    need(summary, "study_summary", "energy_by_component")
    comps = ENERGY_COMPONENTS
    dec = summary[summary.phase == "decode"]
    if decode_context is None and len(dec):
        ctxs = sorted(dec.context.unique())
        decode_context = max([c for c in ctxs if c <= 2048] or ctxs[:1])
    sel = pd.concat([dec[dec.context == decode_context], summary[summary.phase == "prefill"]])
    presets = list(dict.fromkeys(sel.preset))
    phases = [p for p in ("decode", "prefill") if p in set(sel.phase)]
    if sel.empty:
        return empty("Energy per token", "no results")
    fig, axes = plt.subplots(len(presets), len(phases), figsize=(5.2 * len(phases), 3.6 * len(presets)),
                             squeeze=False)
    roles = ordered(sel.role, ROLES)
    width = 0.8 / len(roles)
    for i, preset in enumerate(presets):
        for j, phase in enumerate(phases):
            ax = axes[i][j]
            d = sel[(sel.preset == preset) & (sel.phase == phase)]
            dps = ordered(d.datapath)
            for r, role in enumerate(roles):
                for x, dp in enumerate(dps):
                    row = d[(d.datapath == dp) & (d.role == role)]
                    if row.empty:
                        continue
                    row = row.iloc[0]
                    bottom = 0.0
                    for comp in comps:
                        v = row[f"energy_{comp}_j"] * 1e3
                        ax.bar(x + (r - (len(roles) - 1) / 2) * width, v, width * 0.95, bottom=bottom,
                               color=COMPONENT_COLORS[comp], hatch="//" if role != "matched" else None,
                               edgecolor="white", linewidth=0.5,
                               label=comp if (r == 0 and x == 0) else None)
                        bottom += v
            ax.set_xticks(range(len(dps)))
            ax.set_xticklabels(dps)
            where = f"decode @ {context_label(decode_context)} ctx" if phase == "decode" else "prefill"
            ax.set_title(f"{preset}: {where}", fontsize=10)
            ax.set_ylabel("energy per token (mJ)")
            ax.grid(True, axis="y", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    # a component too small to see in any bar is named with its largest share, so the legend never promises a
    # colour the reader cannot find
    total = sel[[f"energy_{c}_j" for c in comps]].sum(axis=1).replace(0, np.nan)
    for h in handles:
        share = float((sel[f"energy_{h.get_label()}_j"] / total).max())
        if share < 0.01:
            h.set_label(f"{h.get_label()} (< {max(share, 1e-4) * 100:.1g} %, not visible)")
    handles += [Patch(facecolor="white", edgecolor="black", label="matched accel. (plain)"),
                Patch(facecolor="white", edgecolor="black", hatch="//", label="reference accel. (hatched)")]
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8,
               bbox_to_anchor=(0.5, 1.0 + 0.02 / len(presets)))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.06 / len(presets)))
    return fig


def throughput(summary: pd.DataFrame):
    """Decode tokens/s and ms/token vs context, per datapath and accelerator role.

    ``summary``: a ``study_summary`` table (preset, datapath, phase, context,
    role, tokens_per_s, latency_s are drawn).  Solid lines: matched
    accelerator; dashed: reference (e.g. h100-like).
    """
    need(summary, "study_summary", "throughput")
    dec = summary[summary.phase == "decode"]
    if dec.empty:
        return empty("Decode throughput", "no decode results")
    presets = list(dict.fromkeys(dec.preset))
    fig, axes = plt.subplots(2, len(presets), figsize=(5.2 * len(presets), 7.0), squeeze=False)
    for j, preset in enumerate(presets):
        d = dec[dec.preset == preset]
        for dp in ordered(d.datapath):
            for role in ordered(d.role, ROLES):
                s = d[(d.datapath == dp) & (d.role == role)].sort_values("context")
                if s.empty:
                    continue
                acc = s.accelerator.iloc[0]
                ls = "-" if role == "matched" else "--"
                axes[0][j].plot(s.context, s.tokens_per_s, ls, marker="o", color=color(dp),
                                label=f"{dp} on {acc}")
                axes[1][j].plot(s.context, s.latency_s * 1e3, ls, marker="o", color=color(dp),
                                label=f"{dp} on {acc}")
        for i, (ylab, title) in enumerate([("tokens/s (batch 1)", "decode throughput"),
                                           ("latency per token (ms)", "decode latency")]):
            context_axes(axes[i][j], d.context, "context length (tokens)", ylab, f"{preset}: {title}")
    fig.tight_layout()
    legend_below(fig, axes[0], ncol=4)
    return fig


def footprint(summary: pd.DataFrame):
    """Memory footprint (GB) vs context: weights (dotted) and weights + KV cache (solid).

    ``summary``: a ``study_summary`` table (preset, datapath, phase, context,
    role, weight_bytes, kv_bytes are drawn).  Uses decode rows on the matched
    accelerator (storage does not depend on it).
    """
    need(summary, "study_summary", "footprint")
    dec = summary[(summary.phase == "decode") & (summary.role == "matched")]
    if dec.empty:
        return empty("Memory footprint", "no decode results")
    presets = list(dict.fromkeys(dec.preset))
    fig, axes = plt.subplots(1, len(presets), figsize=(5.2 * len(presets), 3.9), squeeze=False)
    for j, preset in enumerate(presets):
        ax = axes[0][j]
        d = dec[dec.preset == preset]
        for dp in ordered(d.datapath):
            s = d[d.datapath == dp].sort_values("context")
            ax.plot(s.context, (s.weight_bytes + s.kv_bytes) / 1e9, "-", marker="o", color=color(dp),
                    label=f"{dp}: weights + KV")
            ax.plot(s.context, s.weight_bytes / 1e9, ":", color=color(dp), label=f"{dp}: weights only")
        context_axes(ax, d.context, "context length (tokens, batch 1)", "memory footprint (GB)",
                     f"{preset}: weights + KV cache")
    fig.tight_layout()
    legend_below(fig, axes[0], ncol=4)
    return fig
