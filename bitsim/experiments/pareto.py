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


def plot_pareto(df: pd.DataFrame, x: str, y: str, objectives: Mapping[str, str] | None = None,
                color: str | None = None, ax=None, xlabel: str | None = None,
                ylabel: str | None = None, color_label: str | None = None,
                logx: bool = False, logy: bool = False):
    """Scatter every point of ``df`` (x vs y) and draw its Pareto front.

    ``objectives`` defaults to ``{x: "max", y: "min"}`` (e.g. tokens/s up,
    J/token down); with more objectives (e.g. area) the highlighted front
    is the k-dimensional one, so some front points may look dominated in 2-D.
    ``color`` names a column used to colour the points (e.g. area).
    Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    objectives = dict(objectives or {x: "max", y: "min"})
    for col in (x, y) + ((color,) if color else ()):
        if col not in df.columns:
            raise ValueError(f"column {col!r} not in the table")
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.6))
    mask = pareto_mask(df, objectives)
    kw = {}
    if color:
        kw = dict(c=df[color].to_numpy(dtype=float), cmap="viridis")
    sc = ax.scatter(df[x], df[y], s=18, alpha=0.55, label="design points", **kw)
    if color:
        cb = ax.figure.colorbar(sc, ax=ax)
        cb.set_label(color_label or color)
    front = df[mask].sort_values(x)
    ax.scatter(front[x], front[y], s=60, facecolors="none", edgecolors="crimson", linewidths=1.5,
               label=f"Pareto front ({len(front)} of {len(df)}; {len(objectives)} objectives)")
    if set(objectives) == {x, y}:
        ax.plot(front[x], front[y], color="crimson", lw=1)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
    ax.figure.tight_layout()
    return ax
