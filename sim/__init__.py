"""sim: a simpy cycle and energy simulator of hypothetical 1-bit LLM accelerators.

Two lines in a notebook::

    import sim
    res = sim.simulate(trace_df, "b1.58")      # res.ops (sim_result table), res.summary (SimSummary)

Folders mirror the hardware: ``config/`` (YAML -> validated dataclasses),
``compute/`` (systolic tiling and cycles, precisions, op -> array mapping),
``memory/`` (bytes moved, the DMA channel, the double-buffered SRAM),
``energy/`` (the one energy table), ``engine/`` (per-op plans, the trace gate and
the simpy processes), ``validation/`` (measured rows -> calibration -> held-out
tables, the SCALE-Sim reference), ``presets/*.yaml``.  See docs/simulator.md.
"""
from .config import PRESETS, AcceleratorConfig, load_accelerator
from .engine import check_trace
from .simulate import SimResult, SimSummary, simulate, summary_table
from .trace_io import load_trace

__all__ = ["AcceleratorConfig", "PRESETS", "SimResult", "SimSummary", "check_trace", "load_accelerator",
           "load_trace", "simulate", "summary_table"]
