"""The report's figures, each a function from tidy DataFrames to a matplotlib Figure, by topic.

``simulated``: energy by component, throughput, footprint, bytes per decode step (``study_summary``); ``axes``: the gain
ladder, batch, bandwidth and technology sweeps, comparison bases, sensitivity bands; ``roofline``: every
simulated op on its accelerator's roofs (``study_ops``, ``accelerator_ceilings``); ``traces``: per-op
sparsity and bits (``study_traces``); ``measured``: measured kernel speedups (``measured_speedups``),
simulator vs measured (``report_sim_vs_measured``) and the measured roofline (``measured_trace``);
``compare``: designs side by side from the simulator's own ``summary_table()`` (or study rows);
``common``: the named sizes (``column``, ``page``, ``slide``) and the smallest font, colours, axes helpers,
the input check against the registered schemas, and ``save``.
Each function checks its table against the schema named in its docstring (contract).

Nothing here runs a model or a simulator, so notebooks can redraw any figure from saved tables
(``from bitsim.report import figures; figures.throughput(summary)``).  The backend is the caller's
choice (``bitsim report`` uses Agg; a notebook shows the figures inline).
"""
from bitsim.report.figures.axes import bandwidth_sweep, batch_sweep, comparison_bases, gain_ladder, sensitivity_bands
from bitsim.report.figures.common import (
    DATAPATH_COLORS,
    MIN_FONT_PT,
    OP_CLASS_MARKERS,
    SIZES,
    figsize,
    save,
    smallest_font,
)
from bitsim.report.figures.compare import compare
from bitsim.report.figures.measured import measured_roofline, measured_speedups, sim_vs_measured
from bitsim.report.figures.roofline import roofline
from bitsim.report.figures.simulated import (
    COMPONENT_COLORS,
    energy_by_component,
    energy_rows,
    feasible_rows,
    footprint,
    step_bytes,
    throughput,
)
from bitsim.report.figures.traces import sparsity_and_bits

__all__ = ["COMPONENT_COLORS", "DATAPATH_COLORS", "MIN_FONT_PT", "OP_CLASS_MARKERS", "SIZES", "bandwidth_sweep",
           "batch_sweep", "compare", "comparison_bases", "energy_by_component", "energy_rows", "feasible_rows",
           "figsize", "footprint", "gain_ladder", "measured_roofline", "measured_speedups", "roofline", "save",
           "sensitivity_bands", "sim_vs_measured", "smallest_font", "sparsity_and_bits", "step_bytes", "throughput"]
