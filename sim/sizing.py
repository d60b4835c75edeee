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

from .config import AcceleratorConfig, load_accelerator
from .energy import pe_area_um2


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
    node = cfg.process_nm
    per_copy = {a.name: a.rows * a.cols * pe_area_um2(a, node) / 1e6 for a in cfg.arrays if a.name in names}
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
