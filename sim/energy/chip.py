"""Area and static power of a whole design, from its config and the cost table.

``chip_costs(cfg)`` adds up (docs/simulator.md "Hardware model"):

* PE arrays: ``pes`` x the width-aware PE (:mod:`sim.energy.pe`: arithmetic, pipeline
  registers, control overhead);
* the vector unit: ``lanes`` x one FP16 lane;
* SRAM: (weight buffer + activation buffer) KiB x bitcell area / array efficiency;
* memory interfaces: ``offchip.interfaces`` x the PHY + controller area of ``offchip.kind``.

Leakage (the static power of ``static_model: leakage``): logic W/mm^2 x (PE + vector area),
SRAM W per KiB x capacity, and the PHY's static W per interface.  Every number is a row of
``sim/data/hardware_costs.csv``; nothing here is a constant of its own.
"""
from __future__ import annotations

from dataclasses import dataclass

from .pe import pe_area_um2, vector_lane_area_um2
from .table import area_scale, cost, memory_row

# Annotations name sim.config's records as strings only: sim.config imports this package, so an
# import back (even under TYPE_CHECKING) would be a cycle.

AREA_PARTS = ("pe", "vector", "sram", "phy")
LEAKAGE_PARTS = ("logic", "sram", "phy")


@dataclass(frozen=True, kw_only=True)
class ChipCosts:
    """Area (mm^2) and leakage (W) of a design, by part; peak arithmetic throughput (TOP/s)."""
    area_mm2_by_part: dict
    leakage_w_by_part: dict
    peak_tops: float

    @property
    def area_mm2(self) -> float:
        return float(sum(self.area_mm2_by_part.values()))

    @property
    def leakage_w(self) -> float:
        return float(sum(self.leakage_w_by_part.values()))


def sram_mm2_per_kib(node: int) -> float:
    """SRAM macro area per KiB at ``node`` (7 nm bitcell / efficiency; 45 nm by the inverse area scale)."""
    um2_per_bit = cost("sram.bitcell", 7).value / cost("sram.array_efficiency").value
    return um2_per_bit * 8192 / 1e6 * area_scale(node) / area_scale(7)


def phy_costs(kind: str, interfaces: int) -> tuple[float, float]:
    """(area mm^2, static W) of ``interfaces`` PHY + controller blocks of memory ``kind`` (0, 0 if none)."""
    if interfaces <= 0:
        return 0.0, 0.0
    a, w = memory_row(kind, "phy_area_mm2"), memory_row(kind, "phy_static_w")
    if a is None or w is None:
        raise ValueError(f"offchip.kind {kind!r} has no PHY rows in the cost table (memory.{kind}.phy_area_mm2 / "
                         f"phy_static_w); set offchip.interfaces to 0 or use a kind of the table")
    return interfaces * a.value, interfaces * w.value


def peak_tops(cfg: "AcceleratorConfig") -> float:
    """Peak arithmetic throughput (TOP/s, 2 ops per MAC): each array at its fastest pair, all arrays together."""
    macs = sum(a.pes * max(p.rate for p in a.pe_ops) for a in cfg.arrays)
    return 2.0 * macs * cfg.clock_ghz * 1e9 / 1e12


def chip_costs(cfg: "AcceleratorConfig") -> ChipCosts:
    """Area and leakage of ``cfg`` by part (see module doc)."""
    node = cfg.process_nm
    pe = sum(a.pes * pe_area_um2(a, node) for a in cfg.arrays) / 1e6
    vec = cfg.vector.lanes * vector_lane_area_um2(node) / 1e6
    kib = cfg.sram.weight_buffer_kib + cfg.sram.activation_buffer_kib
    sram = kib * sram_mm2_per_kib(node)
    phy_a, phy_w = phy_costs(cfg.offchip.kind, cfg.offchip.interfaces)
    leak = {"logic": (pe + vec) * cost("logic.leakage_w_per_mm2", node).value,
            "sram": kib * cost("sram.leakage_uw_per_kib", node).value * 1e-6,
            "phy": phy_w}
    return ChipCosts(area_mm2_by_part={"pe": pe, "vector": vec, "sram": sram, "phy": phy_a},
                     leakage_w_by_part=leak, peak_tops=peak_tops(cfg))
