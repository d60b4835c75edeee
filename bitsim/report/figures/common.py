"""What every figure shares: colours, the datapath order, axes helpers, the input check and ``save``."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Iterable, Sequence

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, NullFormatter

from bitsim.report.labels import context_label
from contract import validate
from model.config import DATAPATHS

DATAPATH_COLORS = {"fp16": "#7f7f7f", "b1.58": "#1f77b4", "a4.8": "#d62728", "a4.8-fp4": "#ff7f0e"}
#: Marker and line style per datapath, so two series that coincide (a4.8 and a4.8-fp4) both stay visible.
DATAPATH_MARKERS = {"fp16": "o", "b1.58": "s", "a4.8": "^", "a4.8-fp4": "v"}
DATAPATH_LINES = {"fp16": "-", "b1.58": "-", "a4.8": "-", "a4.8-fp4": (0, (4, 2))}
OP_CLASS_MARKERS = {"gemm": "o", "attention": "s", "vector": "^"}
#: At most 8 distinguishable colours in one panel (colour-blind-safe Okabe-Ito order).
PALETTE8 = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")

#: Named figure sizes (width, default height) in inches: a two-column paper's column and full page width
#: (3.5 in and 7.2 in, the usual IEEE/ACM layout) and a 16:9 slide. Every report figure is drawn at one of
#: them at print size, so its fonts below are the sizes a reader sees.
SIZES = {"column": (3.5, 2.6), "page": (7.2, 3.2), "slide": (13.33, 7.5)}
#: The smallest font (points) any figure text may use: below ~7 pt a printed figure stops being readable.
MIN_FONT_PT = 7.0
#: Tick labels: a little above the minimum so log-axis tick labels stay readable.
TICK_PT = 7.5
#: Axis labels and panel titles: one step above the ticks, one below the figure title (8.5 pt).
LABEL_PT = 8.0


def color(datapath: str) -> str:
    """The datapath's colour in every figure (teal for a datapath the palette does not know)."""
    return DATAPATH_COLORS.get(datapath, "#17becf")


def marker(datapath: str) -> str:
    return DATAPATH_MARKERS.get(datapath, "D")


def line(datapath: str):
    return DATAPATH_LINES.get(datapath, "-")


def hollow(datapath: str) -> bool:
    """Variants drawn with hollow markers (so a series under another still shows)."""
    return datapath.endswith("-fp4")


def plot_series(ax, xs, ys, datapath: str, label: str, dashed: bool = False, dodge: int = 0, **kw):
    """One datapath's line: its colour, marker and line style; ``dodge`` shifts it slightly right on a log x
    axis so coinciding series do not hide each other."""
    xs = [x * 1.035 ** dodge for x in xs]
    c = color(datapath)
    kw.setdefault("linestyle", "--" if dashed else line(datapath))
    return ax.plot(xs, ys, marker=marker(datapath), color=c,
                   markerfacecolor="white" if hollow(datapath) or dashed else c, markersize=5, label=label, **kw)


def number(v: float) -> str:
    """A value as a bar label: 3 significant digits, no exponent (12,345 / 993 / 45.5 / 0.123)."""
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def bar_values(ax, bars, fmt: str = "auto", fontsize: int = 7, rotation: int = 0) -> None:
    """Write each bar's value on top of it (``fmt`` a format string, or ``auto``: :func:`number`)."""
    for b in bars:
        h = b.get_height()
        if h and h == h:
            text = number(h) if fmt == "auto" else fmt.format(h)
            ax.annotate(text, (b.get_x() + b.get_width() / 2, h), xytext=(0, 2),
                        textcoords="offset points", ha="center", va="bottom", fontsize=fontsize, rotation=rotation)


def figsize(size: str = "page", height: float | None = None) -> tuple[float, float]:
    """The (width, height) in inches of the named ``size`` (``column``, ``page`` or ``slide``); ``height``
    overrides the size's default height."""
    if size not in SIZES:
        raise ValueError(f"figure size {size!r}: expected one of {sorted(SIZES)}")
    width, default = SIZES[size]
    if height is not None and not height > 0:
        raise ValueError(f"figure height: expected a positive number of inches, got {height!r}")
    return width, float(height) if height is not None else default


def sized_panels(nrow: int, ncol: int, size: str = "page", height: float | None = None, **kw):
    """A figure of ``nrow`` x ``ncol`` panels at the named ``size`` (axes always a 2-D array), with tick labels
    at :data:`TICK_PT`."""
    fig, axes = plt.subplots(nrow, ncol, figsize=figsize(size, height), squeeze=False, **kw)
    for ax in axes.flat:
        _print_sizes(ax)
    return fig, axes


def _print_sizes(ax) -> None:
    # the axis label texts persist across set_xlabel/set_ylabel, so their size set here stays
    ax.tick_params(which="both", labelsize=TICK_PT)   # minor too: log axes label 2, 3, 5 x 10^k
    ax.xaxis.label.set_fontsize(LABEL_PT)
    ax.yaxis.label.set_fontsize(LABEL_PT)


def mosaic(layout, size: str = "page", height: float | None = None, **kw):
    """A figure of named panels laid out as ``layout`` (see ``Figure.subplot_mosaic``) at the named ``size``,
    for re-flowing a row of panels too many for the width into rows; returns (fig, {name: axes})."""
    fig = plt.figure(figsize=figsize(size, height))
    axd = fig.subplot_mosaic(layout, **kw)
    for ax in axd.values():
        _print_sizes(ax)
    return fig, axd


def texts(fig) -> list:
    """Every visible, non-empty text of ``fig``: titles, labels, tick labels, annotations, legend entries."""
    found = fig.findobj(lambda a: isinstance(a, Text))
    return [t for t in found if t.get_visible() and t.get_text().strip()]


def smallest_font(fig) -> float:
    """The smallest font size (points) among the figure's visible texts (inf for a figure without text)."""
    fig.canvas.draw()   # tick labels exist only once drawn
    return min((t.get_fontsize() for t in texts(fig)), default=float("inf"))


def legible(fig, least: float = MIN_FONT_PT) -> None:
    """Raise every visible text of ``fig`` smaller than ``least`` points to ``least`` (a last guard: the figure
    builders already pick sizes at or above it)."""
    fig.canvas.draw()
    for t in texts(fig):
        if t.get_fontsize() < least:
            t.set_fontsize(least)


def titled(fig, title: str, note: str = "", y: float = 0.99) -> float:
    """The figure's title and, under it, the note that names its profile and energy basis, both wrapped to the
    figure's width (so the title never widens a figure sized for a page); returns the height it takes in
    inches, so a legend can go right under it."""
    width = max(int(fig.get_size_inches()[0] * 15), 40)   # characters of 8.5 pt text per line
    lines = textwrap.wrap(title, width) + (textwrap.wrap(note, width) if note else [])
    fig.suptitle("\n".join(lines), fontsize=8.5, y=y, va="top")
    return 0.16 * len(lines) + 0.05   # inches the title takes at the top


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
    # minor ticks: 2, 3 and 5 x 10^k labelled on a short axis, 3 x 10^k up to three decades, none beyond,
    # so every panel has readable ticks and neighbouring labels never collide
    span = hi / max(lo, 1e-300)
    digits = "235" if span < 20 else "3" if span < 1000 else ""
    minor = FuncFormatter(lambda v, _: f"{v:g}" if digits and f"{v:.0e}"[0] in digits else "")
    a.set_major_formatter(fmt)
    a.set_minor_formatter(minor if digits else NullFormatter())


def context_axes(ax, contexts: Iterable[int], xlabel: str, ylabel: str, title: str) -> None:
    """Log-log axes against context length, one tick per context (512, 2k, ...)."""
    ctxs = sorted(set(int(c) for c in contexts))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(ctxs)
    ax.set_xticklabels([context_label(c) for c in ctxs])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=LABEL_PT)
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
    ncol = max(1, min(ncol, int(fig.get_size_inches()[0] / 1.7)))   # ~1.7 in an entry: never wider than the figure
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol, fontsize=TICK_PT,
               frameon=False)


def outside_texts(ax) -> list[str]:
    """The annotations of ``ax`` whose drawn box leaves the axes (empty: every label is inside)."""
    renderer = ax.figure.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    out = []
    for t in ax.texts:
        if not t.get_visible() or not t.get_text():
            continue
        e = t.get_window_extent(renderer)
        if e.x0 < box.x0 - 0.5 or e.x1 > box.x1 + 0.5 or e.y0 < box.y0 - 0.5 or e.y1 > box.y1 + 0.5:
            out.append(t.get_text())
    return out


def keep_texts_inside(ax, axis: str = "x", rounds: int = 4) -> None:
    """Widen ``ax``'s limits on ``axis`` ("x", "y" or "xy") until every annotation's box lies inside the axes.

    A label placed in points beside a data point keeps its size while the limits move, so each limit is
    pushed out by the overhang a few times (each round measures the texts again).
    """
    if len(axis) > 1:   # "xy": each axis in turn
        for a in axis:
            keep_texts_inside(ax, a, rounds)
        return
    x = axis == "x"
    for _ in range(rounds):
        ax.figure.canvas.draw()
        renderer = ax.figure.canvas.get_renderer()
        box = ax.get_window_extent(renderer)
        ext = [t.get_window_extent(renderer) for t in ax.texts if t.get_visible() and t.get_text()]
        if not ext:
            return
        lo_px, hi_px = (box.x0, box.x1) if x else (box.y0, box.y1)
        near = min(e.x0 if x else e.y0 for e in ext)
        far = max(e.x1 if x else e.y1 for e in ext)
        if near >= lo_px and far <= hi_px:
            return
        inv = ax.transData.inverted()

        def data_at(px: float) -> float:   # the data value at a pixel along the axis under the current limits
            return inv.transform((px, box.y0) if x else (box.x0, px))[0 if x else 1]

        lo, hi = ax.get_xlim() if x else ax.get_ylim()
        lo = data_at(near - 4) if near < lo_px else lo
        hi = data_at(far + 4) if far > hi_px else hi
        (ax.set_xlim if x else ax.set_ylim)(lo, hi)


def empty(title: str, message: str):
    """A small figure that says why there is nothing to draw."""
    fig, ax = plt.subplots(figsize=figsize("page", 2.2))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=10)
    return fig


#: The formats :func:`save` writes: PNG for the HTML page, SVG and PDF for papers and slides.
FORMATS = ("png", "svg", "pdf")


def save(fig, out_dir: str | Path, name: str) -> list[Path]:
    """Write ``fig`` as ``name.png`` (200 dpi), ``name.svg`` and ``name.pdf``; close it.

    Texts under :data:`MIN_FONT_PT` are raised to it first, so no saved figure prints smaller than that.

    Cropped to what is drawn (``bbox_inches='tight'``) with the figure's legends and texts named as
    extra artists, so a legend placed below the axes is kept in every format.
    """
    legible(fig)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    extra = [*fig.legends, *fig.texts]
    paths = []
    for ext in FORMATS:
        p = out_dir / f"{name}.{ext}"
        meta = {"Date": None} if ext == "svg" else {"CreationDate": None} if ext == "pdf" else None
        with plt.rc_context({"svg.hashsalt": name}):  # stable SVG element ids: re-runs diff only where data moved
            fig.savefig(p, dpi=200 if ext == "png" else None, bbox_inches="tight", bbox_extra_artists=extra,
                        metadata=meta)
        paths.append(p)
    plt.close(fig)
    return paths
