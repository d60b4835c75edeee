"""What every figure shares: colours, the datapath order, axes helpers, the input check and ``save``."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import FuncFormatter, NullFormatter

from bitsim.report.labels import context_label
from bitsim.tables import validate
from model.config import DATAPATHS

DATAPATH_COLORS = {"fp16": "#7f7f7f", "b1.58": "#1f77b4", "a4.8": "#d62728", "a4.8-fp4": "#ff7f0e"}
OP_CLASS_MARKERS = {"gemm": "o", "attention": "s", "vector": "^"}


def color(datapath: str) -> str:
    """The datapath's colour in every figure (teal for a datapath the palette does not know)."""
    return DATAPATH_COLORS.get(datapath, "#17becf")


def ordered(values: Iterable[str], order: Sequence[str] = DATAPATHS) -> list[str]:
    """The distinct ``values``: those in ``order`` first, in its order, then the rest as met."""
    vals = list(dict.fromkeys(values))
    return [v for v in order if v in vals] + [v for v in vals if v not in order]


def need(df: pd.DataFrame, schema: str, what: str) -> None:
    """Check that ``df`` is a table of the registered ``schema``; the error names the figure ``what``."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what}: expected a DataFrame, got {type(df).__name__}")
    try:
        validate(df, schema)
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None


def plain_log_ticks(ax, axis: str = "y") -> None:
    """Log-axis tick labels as plain numbers (300, 1000) instead of 3x10^2."""
    a = ax.yaxis if axis == "y" else ax.xaxis
    lo, hi = (ax.get_ylim() if axis == "y" else ax.get_xlim())
    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    # minor ticks: only 2, 3 and 5 x 10^k are labelled, so neighbouring labels never collide
    minor = FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "235" else "")
    a.set_major_formatter(fmt)
    a.set_minor_formatter(minor if hi / max(lo, 1e-300) < 20 else NullFormatter())


def context_axes(ax, contexts: Iterable[int], xlabel: str, ylabel: str, title: str) -> None:
    """Log-log axes against context length, one tick per context (512, 2k, ...)."""
    ctxs = sorted(set(int(c) for c in contexts))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(ctxs)
    ax.set_xticklabels([context_label(c) for c in ctxs])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    plain_log_ticks(ax)


def legend_below(fig, axes_row, ncol: int = 4) -> None:
    """One legend for the figure, under the panels (never over the data)."""
    handles, labels = [], []
    for ax in axes_row:
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in labels:
                handles.append(h)
                labels.append(l)
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol, fontsize=8,
               frameon=False)


def empty(title: str, message: str):
    """A small figure that says why there is nothing to draw."""
    fig, ax = plt.subplots(figsize=(6.4, 2.2))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=10)
    return fig


def save(fig, out_dir: str | Path, name: str) -> list[Path]:
    """Write ``fig`` as ``name.png`` (150 dpi) and ``name.svg``; close it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        p = out_dir / f"{name}.{ext}"
        with plt.rc_context({"svg.hashsalt": name}):  # stable SVG element ids: re-runs diff only where data moved
            fig.savefig(p, dpi=150 if ext == "png" else None, bbox_inches="tight",
                        metadata={"Date": None} if ext == "svg" else None)
        paths.append(p)
    plt.close(fig)
    return paths
