"""sim: a simpy cycle and energy simulator of hypothetical 1-bit LLM accelerators.

Two lines in a notebook::

    import sim
    res = sim.simulate(trace_df, "b1.58")      # res.ops (sim_result table), res.summary (dict)

Folders mirror the hardware: ``config/`` (YAML -> validated dataclasses),
``compute/`` (systolic tiling and cycles, precisions, op -> array mapping),
``memory/`` (bytes moved, the DMA channel, the double-buffered SRAM),
``energy/`` (the one energy table), ``engine/`` (per-op plans and the simpy
processes), ``presets/*.yaml``.  See docs/simulator.md.
"""
from .config import AcceleratorConfig, PRESETS, load_accelerator
from .simulate import SimResult, simulate

__all__ = ["AcceleratorConfig", "PRESETS", "SimResult", "load_accelerator", "simulate"]
