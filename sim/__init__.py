"""sim: a simpy cycle and energy simulator of hypothetical 1-bit LLM accelerators.

Two lines in a notebook::

    import sim
    res = sim.simulate(trace_df, "b1.58")      # res.ops (sim_result table), res.summary (SimSummary)

Folders mirror the hardware: ``config/`` (YAML -> validated dataclasses),
``compute/`` (systolic tiling and cycles, precisions, op -> array mapping),
``memory/`` (bytes moved, the DMA channel, the double-buffered SRAM),
``energy/`` (the one energy table), ``engine/`` (per-op plans, the trace gate and
the simpy processes), ``validation/`` (measured rows -> calibration -> held-out
tables, the SCALE-Sim reference), ``serving/`` (many requests on one or many chips: ``sim.serve``),
``sizing`` (iso-area designs), ``presets/*.yaml``.  See docs/simulator.md.
"""
from .config import PRESETS, AcceleratorConfig, load_accelerator
from .engine import check_trace
from .serving import serve
from .simulate import SimResult, SimSummary, simulate, summary_table
from .sizing import size_to_area
from .trace_io import load_trace

__all__ = ["AcceleratorConfig", "PRESETS", "SimResult", "SimSummary", "check_trace", "load_accelerator",
           "load_trace", "serve", "simulate", "size_to_area", "summary_table"]
