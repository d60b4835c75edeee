"""The simulator's one energy (and area) table; every number names its source (see table.py)."""
from .table import (AREA_UM2_45NM, ARITH_PJ, MEMORY_PJ_PER_BIT, NODES, VECTOR_PJ_RULE, Entry, mac_area_um2,
                    mac_parts, mac_pj, memory_pj_per_bit, table_markdown, vector_pj_per_element_pass)

__all__ = ["AREA_UM2_45NM", "ARITH_PJ", "MEMORY_PJ_PER_BIT", "NODES", "VECTOR_PJ_RULE", "Entry",
           "mac_area_um2", "mac_parts", "mac_pj", "memory_pj_per_bit", "table_markdown",
           "vector_pj_per_element_pass"]
