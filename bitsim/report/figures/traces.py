"""Figures of the op traces themselves (``study_traces``): per-op sparsity and operand bits."""
from __future__ import annotations

import numpy as np
import pandas as pd

from bitsim.report.figures.common import empty, need, ordered, sized_panels, titled


def sparsity_and_bits(traces: pd.DataFrame, preset: str | None = None, layer: int = 0, note: str = ""):
    """Per-op input sparsity and operand bits, one column per datapath.

    ``traces``: a ``study_traces`` table (op traces tagged with preset,
    datapath and context; phase, layer, op, op_class, sparsity, weight_bits,
    act_bits are drawn).  Shows decoder layer ``layer`` of the decode trace
    (the first context found) of ``preset``.  Left: the zero fraction of each op's input (%); a
    trace's ``sparsity`` of up_proj under the gate-first rule is the share of its MACs skipped (input
    zeros x gate-output zeros), not its input's: that cell shows the input's (gate_proj's, the same
    tensor) and the MAC share apart.  Right: activation bits, annotated with the weight bits (``w2/a4``).
    """
    need(traces, "study_traces", "sparsity_and_bits")
    t = traces[traces.phase == "decode"] if (traces.phase == "decode").any() else traces
    preset = preset or t.preset.iloc[0]
    t = t[(t.preset == preset) & (t.layer == layer)]
    if len(t):
        t = t[t.context == t.context.min()]
    t = t[t.op_class != "vector"]
    if t.empty:
        return empty("Per-op sparsity and bits", f"no ops for preset {preset}")
    dps, ops = ordered(t.datapath), list(dict.fromkeys(t.op))
    grid = {col: np.full((len(ops), len(dps)), np.nan) for col in ("sparsity", "act_bits", "weight_bits", "macs")}
    for jj, dp in enumerate(dps):
        d = t[t.datapath == dp].groupby("op", sort=False).first()
        for ii, op in enumerate(ops):
            if op in d.index:
                for col in ("sparsity", "act_bits", "weight_bits"):
                    grid[col][ii, jj] = d.loc[op, col]
        if {"up_proj", "gate_proj"} <= set(d.index) and d.loc["up_proj", "sparsity"] != d.loc["gate_proj", "sparsity"]:
            ii = ops.index("up_proj")   # gate-first: the input is gate_proj's; the trace's number is the MACs'
            grid["macs"][ii, jj] = 100 * d.loc["up_proj", "sparsity"]
            grid["sparsity"][ii, jj] = d.loc["gate_proj", "sparsity"]
    fig, axes = sized_panels(1, 2, "page", height=0.3 * len(ops) + 1.6)
    axes = axes[0]
    gate_first = bool(np.isfinite(grid["macs"]).any())
    _heat(fig, axes[0], 100 * grid["sparsity"], ops, dps, "zero fraction of the op's input (%)", "Reds", 100,
          lambda ii, jj, v: f"{v:.0f}%" + (f"\nMACs {grid['macs'][ii, jj]:.0f}%*"
                                         if np.isfinite(grid["macs"][ii, jj]) else ""))
    _heat(fig, axes[1], grid["act_bits"], ops, dps, "activation bits (cell: weight or KV / act bits)", "Blues_r", 16,
          lambda ii, jj, v: (f"w{grid['weight_bits'][ii, jj]:.3g}/a{v:.0f}" if grid["weight_bits"][ii, jj]
                             else f"a{v:.0f}"), dark_low=True)
    title = f"{preset}, decoder layer {layer}: per-op input sparsity and operand bits"
    if gate_first:
        note = ("* up_proj runs gate-first: its weight rows are skipped where the gate output is zero, so that share "
                "of its MACs is skipped though its input has the zeros shown. " + note).strip()
    titled(fig, title, note)
    fig.tight_layout()
    return fig


def _heat(fig, ax, data: np.ndarray, ops: list[str], dps: list[str], title: str, cmap: str, vmax: float,
          text, dark_low: bool = False) -> None:
    """One heat map of ops x datapaths with each cell's text (``text(row, col, value)``)."""
    im = ax.imshow(data, cmap=cmap, vmin=0, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(dps)))
    ax.set_xticklabels(dps, fontsize=8)
    ax.set_yticks(range(len(ops)))
    ax.set_yticklabels(ops, fontsize=7)
    ax.set_title(title, fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.05).ax.tick_params(labelsize=7)
    for ii in range(len(ops)):
        for jj in range(len(dps)):
            v = data[ii, jj]
            if np.isnan(v):
                continue
            dark = (v / vmax < 0.45) if dark_low else (v / vmax > 0.55)
            ax.text(jj, ii, text(ii, jj, v), ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")
