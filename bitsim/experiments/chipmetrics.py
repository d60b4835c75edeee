"""A chip's area, power and feasibility, read from sim's summary by the names ``sim_summary`` registers.

A row or config without them (a table written before sim had a whole-chip model) gets the fallback
named here, and every row that uses it says so, so a figure never shows a stand-in as the real thing:

* area: ``AcceleratorConfig.area_mm2`` / the summary's ``area_mm2`` (whole chip), else the PE-array
  arithmetic area at 45 nm (``compute_area_mm2_45nm``: no SRAM, registers or PHY).
* power at a workload: the summary's ``power_w``, else ``energy_j / latency_s`` (average power over the
  step, static included when the chip's energy basis is ``model``).
* feasibility: the summary's ``feasible``, else ``fits_offchip`` (weights + KV within off-chip capacity).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

#: AcceleratorConfig method (mm², whole chip).
AREA_METHODS = ("area_mm2",)
#: Summary field (W at the workload).
POWER_FIELDS = ("power_w",)
#: Summary fields that say whether weights + KV fit the chip, in order: (name, True if the value means feasible).
FEASIBLE_FIELDS = (("feasible", True), ("fits_offchip", True))

AREA_FALLBACK = "PE-array arithmetic area at 45 nm (sim has no whole-chip area yet: SRAM, registers, PHY left out)"
POWER_FALLBACK = "energy per step / latency (average power at the workload)"


def _number(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def chip_area(acc) -> tuple[float, str]:
    """(mm², what it is) of an accelerator config, without simulating anything."""
    for name in AREA_METHODS:
        attr = getattr(acc, name, None)
        value = _number(attr() if callable(attr) else attr) if attr is not None else None
        if value is not None and value > 0:
            return value, f"whole-chip area (sim {name})"
    return float(acc.compute_area_mm2_45nm()), AREA_FALLBACK


def row_power(row: Mapping[str, Any]) -> tuple[float, str]:
    """(W, what it is) of one summary row at its workload."""
    for name in POWER_FIELDS:
        v = _number(row.get(name))
        if v is not None and v > 0:
            return v, f"sim {name}"
    e, t = _number(row.get("energy_j")), _number(row.get("latency_s"))
    return (e / t if e is not None and t else float("nan")), POWER_FALLBACK


def row_feasible(row: Mapping[str, Any]) -> tuple[bool, str]:
    """(feasible, which field said so) of one summary row; rows that say nothing are feasible."""
    for name, means_feasible in FEASIBLE_FIELDS:
        if name in row and row[name] is not None and not (isinstance(row[name], float) and math.isnan(row[name])):
            return bool(row[name]) == means_feasible, name
    return True, "no capacity field"
