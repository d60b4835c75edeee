"""The simulated roofline: every op of a study on its accelerator's roofs (``study_ops``, ``accelerator_ceilings``)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from bitsim.report.figures.common import OP_CLASS_MARKERS, TICK_PT, color, empty, need, ordered, sized_panels, titled


def roofline(ops: pd.DataFrame, ceilings: pd.DataFrame, title: str = "Roofline", note: str = ""):
    """Every op on its accelerator's roofline: achieved op/s vs arithmetic intensity.

    ``ops``: a ``study_ops`` table (accelerator, datapath, phase, op_class,
    intensity in ops per off-chip byte, achieved_ops_s are drawn).
    ``ceilings``: an ``accelerator_ceilings`` table (one row per accelerator
    and operand pair; each distinct peak_ops_s draws one flat roof, under the
    bandwidth_bytes_s slope); the ``vector`` row is the vector unit's roof (element-passes per
    second: vector ops count one op per element), drawn dashed.  One panel per accelerator;
    markers by op class, colours by datapath, filled = decode, hollow = prefill.
    """
    need(ops, "study_ops", "roofline")
    need(ceilings, "accelerator_ceilings", "roofline ceilings")
    accs = list(dict.fromkeys(ops.accelerator))
    if not accs:
        return empty(title, "no ops")
    ncol = 2 if len(accs) in (2, 4) else min(len(accs), 3)
    nrow = -(-len(accs) // ncol)
    fig, axes = sized_panels(nrow, ncol, "page" if ncol > 1 else "column", height=3.2 * nrow)
    for k, acc in enumerate(accs):
        ax = axes[k // ncol][k % ncol]
        d = ops[(ops.accelerator == acc) & (ops.intensity > 0) & (ops.achieved_ops_s > 0)]
        c_all = ceilings[ceilings.accelerator == acc]
        c = c_all[c_all.precision != "vector"]
        vec = c_all[c_all.precision == "vector"]
        xs = np.logspace(-2, 5, 200)
        if not c.empty:
            bw = float(c.bandwidth_bytes_s.iloc[0])
            # one roof per distinct peak; operand pairs sharing a peak share its label
            roofs: dict[float, list[str]] = {}
            for _, row in c.iterrows():
                roofs.setdefault(float(row.peak_ops_s), []).append(str(row["precision"]).replace("x", "\u00d7"))
            for peak in roofs:
                ax.plot(xs, np.minimum(peak, bw * xs), "k-", lw=1, alpha=0.6)
            # the upper-left corner is above every roof's slope: always free of points
            lines = [f"off-chip {bw / 1e9:.0f} GB/s"] + [
                f"{', '.join(roofs[p])}: {p / 1e12:.0f} TOP/s" for p in sorted(roofs, reverse=True)]
            for _, row in vec.iterrows():
                ax.plot(xs, np.minimum(float(row.peak_ops_s), bw * xs), "--", color="#8172b2", lw=1)
                lines.append(f"vector unit (dashed): {float(row.peak_ops_s) / 1e9:.0f} G elem/s")
            ax.text(0.02, 0.98, "\n".join(lines), transform=ax.transAxes, ha="left", va="top", fontsize=7,
                    bbox=dict(facecolor="white", edgecolor="0.8", alpha=0.9))
        for dp in ordered(d.datapath):
            for cls, marker in OP_CLASS_MARKERS.items():
                for phase in ("decode", "prefill"):
                    s = d[(d.datapath == dp) & (d.op_class == cls) & (d.phase == phase)]
                    if s.empty:
                        continue
                    ax.scatter(s.intensity, s.achieved_ops_s, marker=marker, s=16, alpha=0.7,
                               facecolors=color(dp) if phase == "decode" else "none",
                               edgecolors=color(dp), linewidths=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("arithmetic intensity (ops / off-chip byte)")
        ax.set_ylabel("achieved throughput (op/s)")
        ax.set_title(acc, fontsize=8.5)
        ax.grid(True, which="major", alpha=0.3)
    for k in range(len(accs), nrow * ncol):
        axes[k // ncol][k % ncol].axis("off")
    # colour = datapath (a colour patch), marker shape = op class, fill = phase (shown on every shape)
    handles = [Line2D([], [], ls="", marker="s", markersize=9, color=color(dp), label=dp)
               for dp in ordered(ops.datapath)]
    handles += [Line2D([], [], ls="", marker=m, color="0.45", markerfacecolor="none", label=f"{cls} op")
                for cls, m in OP_CLASS_MARKERS.items()]
    handles += [Line2D([], [], ls="", marker="$\\bullet$", markersize=9, color="k", label="filled: decode"),
                Line2D([], [], ls="", marker="$\\circ$", markersize=9, color="k", label="hollow: prefill")]
    top = titled(fig, title, note)
    fig.tight_layout(rect=(0, 0, 1, 1 - top / fig.get_size_inches()[1]))
    fig.legend(handles=handles, loc="upper center", ncol=5, fontsize=TICK_PT, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    return fig
