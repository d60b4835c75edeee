"""Size a design to a target die area (the iso-area comparison basis).

``size_to_area(cfg, 60.0)`` scales the PE-array copies (``count``) of the chosen arrays -- by
default the first array, the main one of every hand-written preset -- by one common factor
so that the design's ``area_mm2`` (sim.energy.chip: PEs, vector unit, SRAM, PHYs) meets the
target.  SRAM, memory and every other array stay as they are, so an iso-area point differs
from its iso-peak preset only in PE count; the result says so in ``comparison`` and
``area_assumption``.  Area is linear in ``count``, so the factor is solved in closed form and
the integer counts are then chosen so the area is within ``tolerance`` of the target.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from . import energy
from .config import AcceleratorConfig, load_accelerator


def size_to_area(accel: "str | Path | AcceleratorConfig", target_mm2: float, arrays: "tuple[str, ...] | None" = None,
                 tolerance: float = 0.01) -> AcceleratorConfig:
    """A copy of ``accel`` whose ``area_mm2`` is ``target_mm2`` within ``tolerance`` (relative).

    ``arrays``: names of the arrays whose ``count`` scales (default: the first array).  A target
    below the area the other parts take, or one that whole array copies cannot meet within the
    tolerance, is a ``ValueError`` naming the numbers (use smaller arrays, or a looser tolerance).
    """
    cfg = load_accelerator(accel)
    if isinstance(target_mm2, bool) or not isinstance(target_mm2, (int, float)) or not math.isfinite(target_mm2) \
            or target_mm2 <= 0:
        raise ValueError(f"target_mm2 must be a positive number of mm^2, got {target_mm2!r}")
    names = tuple(arrays) if arrays is not None else (cfg.arrays[0].name,)
    unknown = [n for n in names if n not in {a.name for a in cfg.arrays}]
    if unknown or not names:
        raise ValueError(f"arrays: unknown array(s) {unknown}; {cfg.name} has {[a.name for a in cfg.arrays]}")
    per_copy = {a.name: _copy_mm2(cfg, a.name) for a in cfg.arrays if a.name in names}
    scaled = sum(a.count * per_copy[a.name] for a in cfg.arrays if a.name in names)
    fixed = cfg.area_mm2 - scaled
    if target_mm2 <= fixed:
        raise ValueError(f"target_mm2 = {target_mm2:g} mm^2 is below the {fixed:.3g} mm^2 that {cfg.name}'s other "
                         f"parts (SRAM, PHYs, vector unit, other arrays) take")
    f = (target_mm2 - fixed) / scaled
    counts = {a.name: max(1, round(a.count * f)) for a in cfg.arrays if a.name in names}
    new = cfg.replace(
        arrays=tuple(dataclasses.replace(a, count=counts[a.name]) if a.name in counts else a for a in cfg.arrays),
        name=f"{cfg.name}@{target_mm2:g}mm2", comparison="equal-area",
        area_assumption=(f"{cfg.name} sized to {target_mm2:g} mm^2 (sim.sizing.size_to_area): array copies "
                         + ", ".join(f"{k} x{v}" for k, v in counts.items()) + "; everything else as the preset"))
    err = abs(new.area_mm2 - target_mm2) / target_mm2
    if err > tolerance:
        raise ValueError(f"{cfg.name}: whole copies of {list(names)} reach {new.area_mm2:.4g} mm^2, "
                         f"{err:.1%} from the target {target_mm2:g} mm^2 (tolerance {tolerance:.1%}); "
                         f"use smaller arrays (rows, cols) or a looser tolerance")
    return new


def _copy_mm2(cfg: AcceleratorConfig, name: str) -> float:
    """Area one more copy of array ``name`` adds (its PEs and whatever it brings along, e.g. skip logic)."""
    more = tuple(dataclasses.replace(a, count=a.count + 1) if a.name == name else a for a in cfg.arrays)
    return energy.chip_costs(dataclasses.replace(cfg, arrays=more)).area_mm2 - cfg.area_mm2


#: The iso-peak rule every ``equal-peak-throughput`` preset follows (docs/simulator.md "Presets").
ISO_PEAK_RULE = """\
Iso-peak: equal peak operations per second of each chip's MAIN operation.  The main array is a preset's
first array and its main operation that array's fastest PE pair (fp16: FP16 x FP16; b1.58: ternary x INT8;
a4.8: ternary x INT4 on the split adder, 2 MACs/PE/cycle; w4a16: INT4 x FP16; w8a8: INT8 or FP8; mxfp4:
FP4 x FP4).  Every iso-peak chip runs it at 65,536 MACs/cycle at 1 GHz (131 TOP/s), and its side units
are sized from that rate M by one rule:
* attention: an array of M / 8 MACs/cycle at FP16 (2 x 64x64 at 1 MAC/cycle) on every chip whose main
  array has no FP16 x FP16 pair; a chip whose main array computes FP16 (fp16) runs attention on it;
* vector unit: M / 128 lanes (512);
* SRAM: M / 4 bytes/cycle of bandwidth (16,384), the same 8 MiB weight and 16 MiB activation buffers;
* memory, clock, node and fixed costs: identical.
So a4.8 has half the PEs of b1.58 (its main PE runs 2 MACs/cycle) and its INT8 layers run at half rate."""
#: The side units per main-array MAC/cycle (see :data:`ISO_PEAK_RULE`).
ATTENTION_SHARE, LANES_PER_MAIN_MAC, SRAM_BYTES_PER_MAIN_MAC = 1 / 8, 1 / 128, 1 / 4


def main_macs_per_cycle(cfg: AcceleratorConfig) -> float:
    """MACs per cycle of a chip's main operation: its first array at that array's fastest pair."""
    a = cfg.arrays[0]
    return a.pes * max(energy.effective_rate(a, p) for p in a.pe_ops)


def peak_main_tops(cfg: AcceleratorConfig) -> float:
    """Peak TOP/s (2 ops per MAC) of a chip's main operation (:func:`main_macs_per_cycle`)."""
    return 2.0 * main_macs_per_cycle(cfg) * cfg.clock_ghz * 1e9 / 1e12


def iso_peak_sides(cfg: AcceleratorConfig) -> dict[str, float]:
    """The side units :data:`ISO_PEAK_RULE` gives a chip of ``cfg``'s main rate: FP16 attention MACs/cycle
    (0 when the main array computes FP16 itself), vector lanes, SRAM bytes/cycle."""
    m = main_macs_per_cycle(cfg)
    main_fp16 = any((p.weights, p.acts) == ("fp16", "fp16") for p in cfg.arrays[0].pe_ops)
    return {"attention_fp16_macs_per_cycle": 0.0 if main_fp16 else m * ATTENTION_SHARE,
            "vector_lanes": m * LANES_PER_MAIN_MAC, "sram_bytes_per_cycle": m * SRAM_BYTES_PER_MAIN_MAC}
