"""Figures of the op traces themselves (``study_traces``): per-op sparsity and operand bits."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bitsim.report.figures.common import empty, need, ordered


def sparsity_and_bits(traces: pd.DataFrame, preset: str | None = None, layer: int = 0, note: str = ""):
    """Per-op input sparsity and operand bits, one column per datapath.

    ``traces``: a ``study_traces`` table (op traces tagged with preset,
    datapath and context; phase, layer, op, op_class, sparsity, weight_bits,
    act_bits are drawn).  Shows decoder layer ``layer`` of the decode trace
    (the first context found) of ``preset``.  Left: sparsity heat map (%);
    right: activation bits, annotated with the weight bits (``w2/a4``).
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
    dps = ordered(t.datapath)
    ops = list(dict.fromkeys(t.op))
    sp = np.full((len(ops), len(dps)), np.nan)
    ab = np.full((len(ops), len(dps)), np.nan)
    wb = np.full((len(ops), len(dps)), np.nan)
    for jj, dp in enumerate(dps):
        d = t[t.datapath == dp].groupby("op", sort=False).first()
        for ii, op in enumerate(ops):
            if op in d.index:
                sp[ii, jj] = d.loc[op, "sparsity"] * 100
                ab[ii, jj] = d.loc[op, "act_bits"]
                wb[ii, jj] = d.loc[op, "weight_bits"]
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 0.42 * len(ops) + 1.8))
    for ax, data, title, cmap, fmt, vmax in [
            (axes[0], sp, "input-activation sparsity (%)", "Reds", "{:.0f}%", 100),
            (axes[1], ab, "activation bits (cell: weight or KV bits / act bits)", "Blues_r", None, 16)]:
        im = ax.imshow(data, cmap=cmap, vmin=0, vmax=vmax, aspect="auto")
        ax.set_xticks(range(len(dps)))
        ax.set_xticklabels(dps)
        ax.set_yticks(range(len(ops)))
        ax.set_yticklabels(ops, fontsize=8)
        ax.set_xlabel("datapath")
        ax.set_title(title, fontsize=10)
        cb = fig.colorbar(im, ax=ax, fraction=0.05)
        cb.set_label("%" if fmt else "bits")
        for ii in range(len(ops)):
            for jj in range(len(dps)):
                if np.isnan(data[ii, jj]):
                    continue
                if fmt:
                    txt = fmt.format(data[ii, jj])
                else:
                    w = wb[ii, jj]
                    txt = f"w{w:.3g}/a{ab[ii, jj]:.0f}" if w else f"a{ab[ii, jj]:.0f}"
                dark = (data[ii, jj] / vmax > 0.55) if fmt else (data[ii, jj] / vmax < 0.45)
                ax.text(jj, ii, txt, ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
    fig.suptitle(f"{preset}, decoder layer {layer}: per-op sparsity and operand bits" + (f"\n{note}" if note else ""),
                 fontsize=10)
    fig.tight_layout()
    return fig
