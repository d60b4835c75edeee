"""Designs side by side from the simulator's own summaries: ``figures.compare(sim.summary_table([...]))``.

A user with a YAML of their own simulates it (``sim.simulate``) and hands the summaries here, or a
study's ``study_summary`` rows; every bar is named by its accelerator (the YAML's ``name``), never
merged with another chip's.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from bitsim.report.figures.common import PALETTE8, bar_values, empty, sized_panels, titled
from bitsim.report.figures.simulated import COMPONENT_COLORS
from contract import validate
from contract.sim import ENERGY_COMPONENTS

#: The tables :func:`compare` takes: the simulator's summary, or a study's (which has every sim column it draws).
ACCEPTED = ("sim_summary", "study_summary")


def compare_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` checked against one of :data:`ACCEPTED` (TypeError / ValueError naming what is missing)."""
    if not isinstance(rows, pd.DataFrame):
        raise TypeError(f"compare: expected a DataFrame (sim.summary_table(...)), got {type(rows).__name__}")
    errors = []
    for schema in ACCEPTED:
        try:
            return validate(rows, schema)
        except ValueError as e:
            errors.append(f"as {schema}: {e}")
    raise ValueError("compare: not a simulator or study summary table; " + "; ".join(errors))


def bar_names(rows: pd.DataFrame, labels: Sequence[str] | None = None) -> list[str]:
    """One name per row: ``labels`` if given, else the accelerator, with the workload where rows differ in it and
    a number where two rows would still read alike."""
    if labels is not None:
        if len(labels) != len(rows):
            raise ValueError(f"compare: {len(labels)} labels for {len(rows)} rows")
        names = [str(x) for x in labels]
    else:
        names = rows.accelerator.astype(str).tolist()
        for col in ("datapath", "phase", "context", "batch"):
            if col in rows.columns and rows[col].nunique() > 1:
                names = [f"{n}\n{col} {v}" if col in ("context", "batch") else f"{n}\n{v}"
                         for n, v in zip(names, rows[col])]
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} ({seen[n]})")
    return out


def compare(rows: pd.DataFrame, labels: Sequence[str] | None = None, note: str = ""):
    """Tokens/s, energy per token by component, and tokens/s per mm² of each row, one bar per design.

    ``rows``: a ``sim_summary`` table (``sim.summary_table([result.summary, ...])``) or ``study_summary``
    rows; ``labels`` optionally names each row (default: its accelerator, see :func:`bar_names`).  A row
    on the ``dynamic-only`` energy basis (a GPU preset: no static or board power) has its energy bar
    hatched and its name marked, since its joules are not comparable with a chip model's.
    """
    rows = compare_rows(rows).reset_index(drop=True)
    if rows.empty:
        return empty("Designs compared", "no rows to compare")
    names = bar_names(rows, labels)
    dyn = rows.energy_basis.astype(str).eq("dynamic-only") if "energy_basis" in rows.columns else \
        pd.Series(False, index=rows.index)
    names = [n + ("\n(dynamic only)" if d else "") for n, d in zip(names, dyn)]
    fig, axes = sized_panels(1, 3, "page", height=3.4)
    axes = axes[0]
    xs = np.arange(len(rows))
    colours = [PALETTE8[i % len(PALETTE8)] for i in range(len(rows))]
    bar_values(axes[0], axes[0].bar(xs, rows.tokens_per_s, 0.7, color=colours), fontsize=7)
    axes[0].set_ylabel("tokens/s", fontsize=8)
    bottom = np.zeros(len(rows))
    for comp in ENERGY_COMPONENTS:
        v = 1e3 * rows[f"energy_{comp}_j"].to_numpy(float)
        axes[1].bar(xs, v, 0.7, bottom=bottom, color=COMPONENT_COLORS[comp], edgecolor="white", linewidth=0.5,
                    label=comp, hatch=["//" if d else None for d in dyn])
        bottom += v
    for x, top in zip(xs, bottom):
        axes[1].annotate(f"{top:.3g}", (x, top), xytext=(0, 2), textcoords="offset points", ha="center", fontsize=7)
    axes[1].set_ylabel("energy per token (mJ)", fontsize=8)
    axes[1].legend(fontsize=7, loc="upper right")
    area = rows.area_mm2.to_numpy(float)
    per_mm2 = np.where(area > 0, rows.tokens_per_s.to_numpy(float) / np.where(area > 0, area, 1), np.nan)
    bar_values(axes[2], axes[2].bar(xs, per_mm2, 0.7, color=colours), fontsize=7)
    axes[2].set_ylabel("tokens/s per mm² of chip", fontsize=8)
    for ax, title in zip(axes, ("speed", "energy by component", "speed per area")):
        ax.set_xticks(xs)
        ax.set_xticklabels(names, fontsize=7)
        ax.set_title(title, fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.12)
    titled(fig, "Designs compared (one bar per simulated summary, named by its accelerator)", note)
    fig.tight_layout()
    return fig
