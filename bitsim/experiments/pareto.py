"""Pareto fronts of design points (e.g. J/token vs tokens/s vs area).

A point is on the front when no other point is at least as good in every
objective and strictly better in one.  Objectives are named columns of a
DataFrame, each minimised or maximised.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

SENSES = ("min", "max")


def _cost_matrix(df: pd.DataFrame, objectives: Mapping[str, str]) -> np.ndarray:
    """Objectives as an (n, k) float array where smaller is always better."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
    if not objectives:
        raise ValueError("objectives must name at least one column")
    cols = []
    for name, sense in objectives.items():
        if name not in df.columns:
            raise ValueError(f"objective column {name!r} not in the table; columns: {list(df.columns)}")
        if sense not in SENSES:
            raise ValueError(f"objective {name!r}: sense must be 'min' or 'max', got {sense!r}")
        try:
            values = df[name].to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise TypeError(f"objective column {name!r} is not numeric ({df[name].dtype})") from e
        if np.isnan(values).any():
            raise ValueError(f"objective column {name!r} has NaN values")
        cols.append(values if sense == "min" else -values)
    return np.column_stack(cols) if cols else np.empty((len(df), 0))


def pareto_mask(df: pd.DataFrame, objectives: Mapping[str, str]) -> np.ndarray:
    """Boolean mask of the rows of ``df`` that are Pareto-optimal.

    ``objectives`` maps column name -> ``"min"`` or ``"max"``.  Identical
    points do not dominate each other, so duplicates on the front are all kept.
    Runs in O(n log n + n·f) for a front of size f: rows are visited in
    lexicographic order, where a dominating row always comes first.
    """
    cost = _cost_matrix(df, objectives)
    n = len(cost)
    mask = np.zeros(n, dtype=bool)
    if n == 0:
        return mask
    order = np.lexsort(cost.T[::-1])  # first objective is the primary key
    front: list[np.ndarray] = []
    for i in order:
        c = cost[i]
        if front:
            f = np.asarray(front)
            dominated = np.any(np.all(f <= c, axis=1) & np.any(f < c, axis=1))
            if dominated:
                continue
        front.append(c)
        mask[i] = True
    return mask


def pareto_front(df: pd.DataFrame, objectives: Mapping[str, str]) -> pd.DataFrame:
    """The Pareto-optimal rows of ``df``, sorted by the first objective."""
    front = df[pareto_mask(df, objectives)]
    first, sense = next(iter(objectives.items()))
    return front.sort_values(first, ascending=(sense == "min"))


#: A log axis only when the data span at least this ratio: below, log ticks collide or vanish.
LOG_SPAN = 10.0


def scale_axis(ax, which: str, values, log: bool) -> str:
    """Set ``ax``'s ``which`` ("x" or "y") axis to log, labelled 1, 2, 5, 10, ... in plain numbers, when ``log``
    is asked for and the positive ``values`` span at least :data:`LOG_SPAN`; else linear with a few plain
    ticks.  Returns the scale used."""
    from matplotlib import ticker

    axis = ax.xaxis if which == "x" else ax.yaxis
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    scale = "log" if log and len(v) and v.min() > 0 and v.max() / v.min() >= LOG_SPAN else "linear"
    (ax.set_xscale if which == "x" else ax.set_yscale)(scale)
    if scale == "log":
        axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_minor_formatter(ticker.NullFormatter())
    else:
        axis.set_major_locator(ticker.MaxNLocator(nbins=5))
    axis.set_major_formatter(ticker.FuncFormatter(lambda t, _: f"{t:g}"))
    return scale


def plot_pareto(df: pd.DataFrame, x: str, y: str, objectives: Mapping[str, str] | None = None,
                color: str | None = None, ax=None, xlabel: str | None = None,
                ylabel: str | None = None, color_label: str | None = None,
                logx: bool = False, logy: bool = False, feasible: str | None = None,
                infeasible_label: str = "does not fit the chip's memory"):
    """Scatter every point of ``df`` (x vs y) and draw its Pareto front.

    ``objectives`` defaults to ``{x: "max", y: "min"}`` (e.g. tokens/s up,
    J/token down); with more objectives (e.g. area) the highlighted front
    is the k-dimensional one, so some front points may look dominated in 2-D.
    ``color`` names a column used to colour the points (e.g. area).
    ``feasible`` names a boolean column: the rows where it is False are drawn
    as grey crosses with their own legend entry and kept off the front.
    ``logx`` / ``logy`` ask for a log axis, used when the data span a decade
    or more (:func:`scale_axis`).
    Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    objectives = dict(objectives or {x: "max", y: "min"})
    for col in (x, y) + ((color,) if color else ()) + ((feasible,) if feasible else ()):
        if col not in df.columns:
            raise ValueError(f"column {col!r} not in the table")
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.6))
    ok = df[feasible].astype(bool).to_numpy() if feasible else np.ones(len(df), dtype=bool)
    fit, out = df[ok], df[~ok]
    mask = pareto_mask(fit, objectives)
    kw = {}
    if color:
        values = df[color].to_numpy(dtype=float)
        kw = dict(c=fit[color].to_numpy(dtype=float), cmap="viridis",
                  norm=Normalize(vmin=values.min(), vmax=values.max()) if len(values) else None)
    sc = ax.scatter(fit[x], fit[y], s=18, alpha=0.55, label=f"design points ({len(fit)})", **kw)
    if color:
        cb = ax.figure.colorbar(sc, ax=ax)
        cb.set_label(color_label or color)
    front = fit[mask].sort_values(x)
    ax.scatter(front[x], front[y], s=60, facecolors="none", edgecolors="crimson", linewidths=1.5,
               label=f"Pareto front ({len(front)} of {len(fit)}; {len(objectives)} objectives)")
    if set(objectives) == {x, y}:
        ax.plot(front[x], front[y], color="crimson", lw=1)
    if len(out):
        ax.scatter(out[x], out[y], marker="x", s=24, linewidths=1.0, color="0.45",
                   label=f"{infeasible_label} ({len(out)}; off the front)")
    scale_axis(ax, "x", df[x], logx)
    scale_axis(ax, "y", df[y], logy)
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    ax.figure.tight_layout()
    return ax
