"""The simulator's one cost table (``sim/data/hardware_costs.csv``: energy, area, leakage, memory, each
row with its source), the width-aware PE (:mod:`.pe`) and whole-design area and leakage (:mod:`.chip`)."""
from .chip import AREA_PARTS, LEAKAGE_PARTS, ChipCosts, chip_costs, peak_tops, phy_costs, sram_mm2_per_kib
from .pe import (
                 FLOAT_ACCUMULATORS,
                 accumulator_bits,
                 is_integer_pair,
                 mac_energy_pj,
                 pe_area_um2,
                 pe_parts_um2,
                 product_bits,
                 vector_lane_area_um2,
)
from .table import (
                 AREA_UM2_45NM,
                 ARITH_PJ,
                 COSTS,
                 MEMORY_KINDS,
                 MEMORY_PJ_PER_BIT,
                 NODES,
                 TABLE_PATH,
                 VECTOR_PJ_RULE,
                 Entry,
                 area_scale,
                 cost,
                 mac_area_um2,
                 mac_parts,
                 mac_pj,
                 memory_pj_per_bit,
                 memory_row,
                 table_markdown,
                 vector_pj_per_element_pass,
)

__all__ = ["AREA_PARTS", "AREA_UM2_45NM", "ARITH_PJ", "COSTS", "ChipCosts", "Entry", "FLOAT_ACCUMULATORS",
           "LEAKAGE_PARTS", "MEMORY_KINDS", "MEMORY_PJ_PER_BIT", "NODES", "TABLE_PATH", "VECTOR_PJ_RULE",
           "accumulator_bits", "area_scale", "chip_costs", "cost", "is_integer_pair", "mac_area_um2", "mac_energy_pj",
           "mac_parts", "mac_pj", "memory_pj_per_bit", "memory_row", "pe_area_um2", "pe_parts_um2", "peak_tops",
           "phy_costs", "product_bits", "sram_mm2_per_kib", "table_markdown", "vector_pj_per_element_pass"]
