"""Area and always-on power of a whole design, from its config and the cost tables.

``chip_costs(cfg)`` adds up (docs/simulator.md "Hardware model"):

* PE arrays: ``pes`` x the width-aware PE (:mod:`sim.energy.pe`: arithmetic, pipeline
  registers, control overhead);
* the vector unit: ``lanes`` x one FP16 lane;
* SRAM: (weight buffer + activation buffer + resident weight store) KiB x the node's bitcell area /
  array efficiency;
* memory interfaces: ``offchip.interfaces`` x the PHY + controller area of ``offchip.kind``;
* zero-skipping logic (``sparsity.skip_weight_fetch``, :func:`skip_logic`): a zero detector per PE row of
  every array (in ``pe``) and each array's surviving-row index buffer (in ``sram``).

Always-on power (the static power of ``static_model: leakage``), by part:

* ``logic``: leakage W/mm^2 x (PE + vector area); ``sram``: leakage W per KiB x capacity;
* ``phy``: the memory PHYs' static W per interface (``sim/data/memories.csv``);
* ``clock``: the clock tree, which toggles every pipeline-register bit every cycle whether or not
  the PEs work: register bits x ``reg.clock_fj_per_bit`` x clock;
* ``dram``: refresh + standby of the off-chip memory: ``background_w_per_gb`` x capacity;
* ``host``: the host interface's PHY + controller (``host_interface``).

On-chip network (``noc_pj_per_bit``): a bit moved between an SRAM bank and an array crosses on
average 2/3 of the die's side (the mean Manhattan distance of two uniform points in a square),
at ``wire.pj_per_bit_mm``; it is the energy to add to every SRAM bit delivered.

Every number is a row of ``sim/data/hardware_costs.csv`` or ``sim/data/memories.csv``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from .memory import background_w, phy_costs
from .pe import effective_rate, pe_area_um2, pe_register_bits, vector_lane_area_um2, vector_lane_register_bits
from .table import area_scale, cost, node_cost, using_costs


class DesignLike(Protocol):
    """What the cost model reads of a design (``sim.config.AcceleratorConfig``; sim.config imports this
    package, so the record is named by its shape here, not imported)."""
    process_nm: int
    clock_ghz: float
    arrays: tuple
    vector: Any
    sram: Any
    offchip: Any
    sparsity: Any
    host_interface: str
    cost_table: dict | None


AREA_PARTS = ("pe", "vector", "sram", "phy")
LEAKAGE_PARTS = ("logic", "sram", "phy")
STATIC_PARTS = LEAKAGE_PARTS + ("clock", "dram", "host")
#: host interfaces with an always-on power row (``host.<name>.static_w``); "none" = not costed
HOST_INTERFACES = ("none", "pcie4_x16", "pcie5_x16")


@dataclass(frozen=True, kw_only=True)
class ChipCosts:
    """Area (mm^2) and always-on power (W) of a design, by part; peak arithmetic throughput (TOP/s)."""
    area_mm2_by_part: dict
    static_w_by_part: dict
    peak_tops: float
    noc_pj_per_bit: float = 0.0     # on-chip network energy per SRAM bit delivered (see module doc)

    @property
    def area_mm2(self) -> float:
        return float(sum(self.area_mm2_by_part.values()))

    @property
    def leakage_w_by_part(self) -> dict:
        """The leakage parts alone (logic, SRAM, PHY)."""
        return {k: self.static_w_by_part[k] for k in LEAKAGE_PARTS}

    @property
    def leakage_w(self) -> float:
        return float(sum(self.leakage_w_by_part.values()))

    @property
    def static_w(self) -> float:
        """Every always-on part: leakage, clock tree, DRAM background, host interface."""
        return float(sum(self.static_w_by_part.values()))


def sram_mm2_per_kib(node: int) -> float:
    """SRAM macro area per KiB at ``node``: the node's bitcell / array efficiency (45 nm: 7 nm by the logic scale)."""
    eff = cost("sram.array_efficiency").value
    if node == 45:
        um2_per_bit = cost("sram.bitcell", 7).value / eff / area_scale(7)
    else:
        um2_per_bit = cost("sram.bitcell", node).value / eff
    return um2_per_bit * 8192 / 1e6


def peak_tops(cfg: "DesignLike") -> float:
    """Peak arithmetic throughput (TOP/s, 2 ops per MAC): each array at its fastest pair, all arrays together."""
    macs = sum(a.pes * max(effective_rate(a, p) for p in a.pe_ops) for a in cfg.arrays)
    return 2.0 * macs * cfg.clock_ghz * 1e9 / 1e12


def clock_tree_w(cfg: "DesignLike") -> float:
    """Clock power (W): every pipeline-register bit of the PEs and vector lanes clocked every cycle."""
    bits = sum(a.pes * pe_register_bits(a) for a in cfg.arrays) + cfg.vector.lanes * vector_lane_register_bits()
    return bits * node_cost("reg.clock_fj_per_bit", cfg.process_nm).value * 1e-15 * cfg.clock_ghz * 1e9


def host_w(name: str) -> float:
    """Always-on power (W) of host interface ``name`` (0 for "none")."""
    return 0.0 if name == "none" else cost(f"host.{name}.static_w").value


def chip_costs(cfg: "DesignLike") -> ChipCosts:
    """Area and always-on power of ``cfg`` by part (see module doc), from its cost table (``cfg.costs``)."""
    with using_costs(cfg.cost_table):
        return _chip_costs(cfg)


def index_bits(max_k: int) -> int:
    """Bits of one surviving-row index of an array whose reduction holds ``max_k`` rows."""
    return max(1, math.ceil(math.log2(max_k)))


def skip_logic(cfg: "DesignLike") -> tuple[float, float]:
    """(logic mm^2, SRAM KiB) of a chip's zero-skipping hardware; (0, 0) when it fetches every weight row.

    Each PE row of every array (one activation lane) gets a zero detector (``skip.zero_detect_um2``);
    each array instance keeps ``skip.index_buffers`` lists of ``max_k`` row indices of
    :func:`index_bits` bits in SRAM.
    """
    if not cfg.sparsity.skip_weight_fetch:
        return 0.0, 0.0
    det = cost("skip.zero_detect_um2", 45).value * area_scale(cfg.process_nm)
    logic = sum(a.rows * a.count for a in cfg.arrays) * det / 1e6
    buffers = cost("skip.index_buffers").value
    kib = sum(a.count * buffers * a.max_k * index_bits(a.max_k) for a in cfg.arrays) / 8 / 1024
    return logic, kib


def _chip_costs(cfg: "DesignLike") -> ChipCosts:
    node = cfg.process_nm
    skip_mm2, skip_kib = skip_logic(cfg)
    pe = sum(a.pes * pe_area_um2(a, node) for a in cfg.arrays) / 1e6 + skip_mm2
    vec = cfg.vector.lanes * vector_lane_area_um2(node) / 1e6
    kib = (cfg.sram.weight_buffer_kib + cfg.sram.activation_buffer_kib + cfg.sram.weight_store_mib * 1024
           + skip_kib)
    sram = kib * sram_mm2_per_kib(node)
    phy_a, phy_w = phy_costs(cfg.offchip.kind, cfg.offchip.interfaces)
    static = {"logic": (pe + vec) * cost("logic.leakage_w_per_mm2", node).value,
              "sram": kib * cost("sram.leakage_uw_per_kib", node).value * 1e-6,
              "phy": phy_w,
              "clock": clock_tree_w(cfg),
              "dram": background_w(cfg.offchip.kind, cfg.offchip.capacity_gb),
              "host": host_w(cfg.host_interface)}
    area = pe + vec + sram + phy_a
    return ChipCosts(area_mm2_by_part={"pe": pe, "vector": vec, "sram": sram, "phy": phy_a},
                     static_w_by_part=static, peak_tops=peak_tops(cfg), noc_pj_per_bit=noc_pj_per_bit(area))


def noc_pj_per_bit(area_mm2: float) -> float:
    """On-chip network energy (pJ) of one bit crossing 2/3 of the side of a square die of ``area_mm2``."""
    return cost("wire.pj_per_bit_mm").value * (2.0 / 3.0) * area_mm2 ** 0.5
