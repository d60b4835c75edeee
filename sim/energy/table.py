"""The simulator's one energy (and area) table: every number names its source.

Sources (tags as in docs/paper-facts.md §0):

* [B1]  Wang et al., *BitNet: Scaling 1-bit Transformers*, arXiv 2310.11453,
  Table 2 (per-op energies at 45 nm and 7 nm, after Horowitz ISSCC 2014), and
  eq. 16-18 (matmul energy counting rule).  The 7 nm FP16 / INT8 rows are
  repeated in [2B4T] Table 4.
* [B158] Ma et al., arXiv 2402.17764 §3: "71.4 times" = FP16 (add + mul) /
  INT8 add at 7 nm (b1.58 matmul is INT8 additions only).
* [H14] M. Horowitz, "Computing's energy problem (and what we can do about
  it)", ISSCC 2014: SRAM read energy per 64-bit word (45 nm) and adder /
  multiplier areas (45 nm).
* [FGDRAM] M. O'Connor et al., "Fine-Grained DRAM", MICRO 2017: HBM2 access
  energy about 3.9 pJ/bit.

Figures no source gives are ``ASSUMPTION`` rows: INT4/INT3/FP8/FP4 arithmetic,
SRAM at 7 nm, LPDDR5, vector-unit element energy.  They follow one stated rule
each, so a reader can change the rule in one place.
"""
from __future__ import annotations

from dataclasses import dataclass

from bitsim.tables.config import quote

NODES = (45, 7)  # process nodes with a [B1] Table 2 column


@dataclass(frozen=True)
class Entry:
    value: float
    unit: str
    source: str


def _e(value: float, unit: str, source: str) -> Entry:
    return Entry(float(value), unit, source)


_ASSUME_WIDTH = ("ASSUMPTION (no source gives it): adder energy/area scales linearly with operand "
                 "width, multiplier energy/area with width squared, from the INT8 / FP16 rows of [B1]")

# --------------------------------------------------------------------------
# Arithmetic: pJ per operation, per process node.
# --------------------------------------------------------------------------
ARITH_PJ: dict[int, dict[str, Entry]] = {
    45: {
        "fp32_add": _e(0.9, "pJ", "[B1] Table 2, 45nm"),
        "fp32_mul": _e(3.7, "pJ", "[B1] Table 2, 45nm"),
        "fp16_add": _e(0.4, "pJ", "[B1] Table 2, 45nm"),
        "fp16_mul": _e(1.1, "pJ", "[B1] Table 2, 45nm"),
        "int8_add": _e(0.03, "pJ", "[B1] Table 2, 45nm"),
        "int8_mul": _e(0.2, "pJ", "[B1] Table 2, 45nm"),
    },
    7: {
        "fp32_add": _e(0.38, "pJ", "[B1] Table 2, 7nm"),
        "fp32_mul": _e(1.31, "pJ", "[B1] Table 2, 7nm"),
        "fp16_add": _e(0.16, "pJ", "[B1] Table 2, 7nm ([2B4T] Table 4)"),
        "fp16_mul": _e(0.34, "pJ", "[B1] Table 2, 7nm ([2B4T] Table 4)"),
        "int8_add": _e(0.007, "pJ", "[B1] Table 2, 7nm ([2B4T] Table 4)"),
        "int8_mul": _e(0.07, "pJ", "[B1] Table 2, 7nm ([2B4T] Table 4)"),
    },
}
# Narrower units derived from a measured one: (unit, measured unit, divisor). _ASSUME_WIDTH says why.
_NARROWER = (("int4_add", "int8_add", 2), ("int4_mul", "int8_mul", 4), ("fp8_add", "fp16_add", 2),
             ("fp8_mul", "fp16_mul", 4), ("fp4_add", "fp16_add", 4), ("fp4_mul", "fp16_mul", 16))


def _add_narrower(table: dict[str, Entry], unit: str) -> None:
    for name, base, divisor in _NARROWER:
        table[name] = _e(table[base].value / divisor, unit, _ASSUME_WIDTH)


for _node, _t in ARITH_PJ.items():
    _add_narrower(_t, "pJ")

# Vector unit: one element-pass (load, one fused add+mul, store) costs one FP16
# add + one FP16 mul.  ASSUMPTION: norms / softmax / quantizers run in FP16.
VECTOR_PJ_RULE = "ASSUMPTION: one vector element-pass = one FP16 add + one FP16 mul of [B1] Table 2"

# --------------------------------------------------------------------------
# Memory: pJ per bit moved.  Presets name these keys; a config may also give a number.
# --------------------------------------------------------------------------
MEMORY_PJ_PER_BIT: dict[str, Entry] = {
    "hbm": _e(3.9, "pJ/bit", "[FGDRAM] HBM2 access energy ~3.9 pJ/bit"),
    "ddr": _e(1300 / 64, "pJ/bit", "[H14] DRAM 1.3-2.6 nJ per 64-bit access (low end), 45nm-era DDR3"),
    "lpddr5": _e(5.0, "pJ/bit", "ASSUMPTION: LPDDR5 interface + core energy; no source was read "
                                "(between HBM2 [FGDRAM] and DDR3 [H14])"),
    "sram_45nm": _e(100 / 64, "pJ/bit", "[H14] 1 MB SRAM, 100 pJ per 64-bit read, 45nm"),
    "sram_7nm": _e(100 / 64 * 0.16 / 0.4, "pJ/bit",
                   "ASSUMPTION: [H14] 1 MB SRAM 45nm figure scaled by [B1]'s 7nm/45nm FP16-add ratio (0.4)"),
    "gpu_l2": _e(100 / 64 * 0.16 / 0.4, "pJ/bit", "ASSUMPTION: as sram_7nm (large on-chip SRAM)"),
}

# --------------------------------------------------------------------------
# Area (um^2 per unit at 45 nm) -- for the equal-area / equal-throughput statement.
# --------------------------------------------------------------------------
AREA_UM2_45NM: dict[str, Entry] = {
    "int8_add": _e(36, "um^2", "[H14] 8-bit add, 45nm"),
    "int32_add": _e(137, "um^2", "[H14] 32-bit add, 45nm"),
    "int8_mul": _e(282, "um^2", "[H14] 8-bit multiply, 45nm"),
    "fp16_add": _e(1360, "um^2", "[H14] 16-bit FP add, 45nm"),
    "fp16_mul": _e(1640, "um^2", "[H14] 16-bit FP multiply, 45nm"),
}
_add_narrower(AREA_UM2_45NM, "um^2")

# Which primitive an operand format's arithmetic uses (int3 runs on int4 units;
# ternary never multiplies).
_PRIM = {"fp16": "fp16", "fp8": "fp8", "fp4": "fp4", "int8": "int8", "int4": "int4", "int3": "int4"}
_WIDTH_ORDER = ("ternary", "int3", "int4", "fp4", "int8", "fp8", "fp16")
# The adder a ternary-weight MAC uses when it is not the activation's own primitive.
# * ternary x ternary: a 2-bit add on the INT4 unit.
# * ternary x fp4: model/quant.py stores FP4 E2M1 activations as integer codes
#   2 x value in {0,+-1,+-2,+-3,+-4,+-6,+-8,+-12} with the per-token scale applied
#   after the sum, so the add is a signed 5-bit INTEGER add, not a floating-point
#   one; a 5-bit code does not fit an INT4 adder, so it runs on the INT8 adder
#   (int8_add, [B1] Table 2).  ASSUMPTION: the codes are summed as integers (as the
#   a4.8 INT4 / INT8 paths are), which the BitNet a4.8 paper (arXiv 2411.04965) does
#   not specify for FP4.
_TERNARY_ADD = {"ternary": "int4_add", "fp4": "int8_add"}


def _wider(a: str, b: str) -> str:
    return a if _WIDTH_ORDER.index(a) >= _WIDTH_ORDER.index(b) else b


def mac_parts(weights: str, acts: str) -> tuple[str, ...]:
    """Primitive ops of one multiply-accumulate of a ``weights x acts`` PE.

    Counting rule of [B1] eq. 16-18 / [B158] §3: a full-precision MAC is one
    multiply plus one add at the operands' (wider) format; a ternary weight
    needs no multiply, only one add at the activation's format.
    """
    if weights == "ternary":
        if acts in _TERNARY_ADD:
            return (_TERNARY_ADD[acts],)
        return (f"{_PRIM[acts]}_add",)
    wide = _PRIM[_wider(weights, acts)]
    return (f"{wide}_mul", f"{wide}_add")


def mac_pj(weights: str, acts: str, node: int) -> float:
    """Energy (pJ) of one MAC of a ``weights x acts`` PE at ``node`` nm."""
    if node not in ARITH_PJ:
        raise ValueError(f"process_nm must be one of {NODES} (the nodes of [B1] Table 2), got {node}")
    return sum(ARITH_PJ[node][p].value for p in mac_parts(weights, acts))


def mac_area_um2(weights: str, acts: str) -> float:
    """Area (um^2, 45 nm) of the arithmetic of one ``weights x acts`` MAC unit."""
    return sum(AREA_UM2_45NM[p].value for p in mac_parts(weights, acts))


def vector_pj_per_element_pass(node: int) -> float:
    """Energy (pJ) of one vector element-pass; see :data:`VECTOR_PJ_RULE`."""
    t = ARITH_PJ[node]
    return t["fp16_add"].value + t["fp16_mul"].value


def memory_pj_per_bit(spec: float | str, field: str) -> float:
    """Resolve a config's ``pj_per_bit`` (a number, or a key of :data:`MEMORY_PJ_PER_BIT`)."""
    if isinstance(spec, str):
        if spec not in MEMORY_PJ_PER_BIT:
            raise ValueError(f"{field}: unknown memory energy key {quote(spec)}; "
                             f"known: {sorted(MEMORY_PJ_PER_BIT)} or a number (pJ/bit)")
        return MEMORY_PJ_PER_BIT[spec].value
    return float(spec)


def table_markdown() -> str:
    """The whole table as Markdown (for docs/simulator.md and reports)."""
    rows = ["| quantity | node | value | unit | source |", "|---|---|---|---|---|"]
    for node, t in ARITH_PJ.items():
        for k, e in t.items():
            rows.append(f"| {k} | {node} nm | {e.value:.4g} | {e.unit} | {e.source} |")
    for k, e in MEMORY_PJ_PER_BIT.items():
        rows.append(f"| {k} | - | {e.value:.4g} | {e.unit} | {e.source} |")
    for k, e in AREA_UM2_45NM.items():
        rows.append(f"| area {k} | 45 nm | {e.value:.4g} | {e.unit} | {e.source} |")
    rows.append(f"| vector element-pass | any | fp16_add + fp16_mul | pJ | {VECTOR_PJ_RULE} |")
    return "\n".join(rows)
