"""The simulator's one energy, area and leakage table: every number names its source.

The numbers live in ONE file, ``sim/data/hardware_costs.csv`` (columns quantity, node_nm,
value, unit, kind, source; ``kind`` is sourced, derived or assumption).  This module loads it
and exposes it by topic; :mod:`sim.energy.pe` (width-aware PE) and :mod:`sim.energy.chip`
(area and leakage of a whole design) read only what is here.

Sources (tags as in docs/paper-facts.md §0 and docs/simulator.md "Hardware cost table"):

* [B1]  Wang et al., *BitNet: Scaling 1-bit Transformers*, arXiv 2310.11453, Table 2 (per-op
  energies at 45 nm and 7 nm, after Horowitz ISSCC 2014) and eq. 16-18 (matmul counting rule).
* [B158] Ma et al., arXiv 2402.17764 §3: "71.4 times" = FP16 (add + mul) / INT8 add at 7 nm.
* [H14] M. Horowitz, ISSCC 2014: adder / multiplier areas and SRAM / DRAM read energies, 45 nm.
* [SB17] A. Stillmaker, B. Baas, "Scaling equations for the accurate prediction of CMOS device
  performance from 180 nm to 7 nm", Integration 58 (2017): the area scaling factor 45 -> 7 nm.
* [NANGATE45] Nangate 45nm Open Cell Library (FreePDK45): flip-flop area.
* [N7SRAM] J. Chang et al., "A 7nm 256Mb SRAM in high-k metal-gate FinFET technology with
  write-assist circuitry for low-VMIN applications", ISSCC 2017: the 0.027 um^2 bitcell.
* [FGDRAM] M. O'Connor et al., "Fine-Grained DRAM", MICRO 2017: HBM2 ~3.9 pJ/bit.
* [SNPS-HBM3] Synopsys, "What is HBM3": core 1.2 -> 1.1 V, I/O 1.2 V -> 0.4 V from HBM2E to HBM3.
* [GPU-FACTS] our own H100 / H200 measurements, docs/gpu-facts.md.

Scaling rule between nodes (stated once, used everywhere): an area moves from 45 nm to 7 nm by
[SB17]'s factor ``scale.area_45_to_7`` (0.059); an energy with no 7 nm figure of its own moves
by [B1]'s 7 nm / 45 nm FP16-add ratio ``scale.energy_45_to_7`` (0.4).  Nothing else is scaled.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from contract.config import quote

NODES = (45, 7)  # process nodes with a [B1] Table 2 column
TABLE_PATH = Path(__file__).resolve().parents[1] / "data" / "hardware_costs.csv"
KINDS = ("sourced", "derived", "assumption")


@dataclass(frozen=True)
class Entry:
    value: float
    unit: str
    source: str
    kind: str = "sourced"


def _load(path: Path = TABLE_PATH) -> dict[tuple[str, int | None], Entry]:
    """Read the cost table: (quantity, node or None) -> Entry; every row must name a source."""
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    rows = {}
    for r in csv.DictReader(lines):
        node = int(r["node_nm"]) if r["node_nm"].strip() else None
        if r["kind"] not in KINDS or not r["source"].strip():
            raise ValueError(f"{path.name}: row {r['quantity']!r}: kind must be one of {KINDS} and source non-empty")
        key = (r["quantity"], node)
        if key in rows:
            raise ValueError(f"{path.name}: row {r['quantity']!r} (node {node}) given twice")
        rows[key] = Entry(float(r["value"]), r["unit"], r["source"], r["kind"])
    return rows


COSTS: dict[tuple[str, int | None], Entry] = _load()


def cost(quantity: str, node: int | None = None) -> Entry:
    """One row of the cost table (``node`` None for node-independent rows)."""
    try:
        return COSTS[(quantity, node)]
    except KeyError:
        raise KeyError(f"hardware_costs.csv has no row {quantity!r} at node {node}") from None


_ASSUME_WIDTH = ("ASSUMPTION (no source gives it): adder energy/area scales linearly with operand "
                 "width, multiplier energy/area with width squared, from the INT8 / FP16 rows of [B1]")

# --------------------------------------------------------------------------
# Arithmetic: pJ per operation, per process node.
# --------------------------------------------------------------------------
ARITH_PJ: dict[int, dict[str, Entry]] = {
    node: {q.split(".", 1)[1]: e for (q, n), e in COSTS.items() if n == node and q.startswith("energy.")}
    for node in NODES}
# Narrower units derived from a measured one: (unit, measured unit, divisor). _ASSUME_WIDTH says why.
_NARROWER = (("int4_add", "int8_add", 2), ("int4_mul", "int8_mul", 4), ("fp8_add", "fp16_add", 2),
             ("fp8_mul", "fp16_mul", 4), ("fp4_add", "fp16_add", 4), ("fp4_mul", "fp16_mul", 16))


def _add_narrower(table: dict[str, Entry], unit: str) -> None:
    for name, base, divisor in _NARROWER:
        if name not in table:
            table[name] = Entry(table[base].value / divisor, unit, _ASSUME_WIDTH, "assumption")


for _node, _t in ARITH_PJ.items():
    _add_narrower(_t, "pJ")

# Vector unit: one element-pass (load, one fused add+mul, store) costs one FP16
# add + one FP16 mul.  ASSUMPTION: norms / softmax / quantizers run in FP16.
VECTOR_PJ_RULE = "ASSUMPTION: one vector element-pass = one FP16 add + one FP16 mul of [B1] Table 2"

# --------------------------------------------------------------------------
# Memory: pJ per bit moved.  Presets name these keys; a config may also give a number.
# --------------------------------------------------------------------------
#: off-chip memory generations with per-bit energy rows (``memory.<kind>.pj_per_bit``)
MEMORY_KINDS = tuple(q.split(".")[1] for (q, _n) in COSTS if q.startswith("memory.") and q.endswith(".pj_per_bit"))
MEMORY_PJ_PER_BIT: dict[str, Entry] = {k: COSTS[(f"memory.{k}.pj_per_bit", None)] for k in MEMORY_KINDS}
MEMORY_PJ_PER_BIT["sram_45nm"] = COSTS[("sram.read_pj_per_bit", 45)]
MEMORY_PJ_PER_BIT["sram_7nm"] = COSTS[("sram.read_pj_per_bit", 7)]
MEMORY_PJ_PER_BIT["gpu_l2"] = Entry(COSTS[("sram.read_pj_per_bit", 7)].value, "pJ/bit",
                                    "ASSUMPTION: as sram_7nm (large on-chip SRAM)", "assumption")


def memory_row(kind: str, what: str) -> Entry | None:
    """``memory.<kind>.<what>`` (pj_per_bit, sustained_fraction, phy_area_mm2, phy_static_w) or None."""
    return COSTS.get((f"memory.{kind}.{what}", None))


# --------------------------------------------------------------------------
# Area (um^2 per unit at 45 nm, [H14]); other nodes by scale.area_45_to_7 (see module doc).
# --------------------------------------------------------------------------
AREA_UM2_45NM: dict[str, Entry] = {q.split(".", 1)[1]: e for (q, n), e in COSTS.items()
                                   if n == 45 and q.startswith("area.") and q != "area.dff_bit"}
_add_narrower(AREA_UM2_45NM, "um^2")


def area_scale(node: int) -> float:
    """Factor that moves a 45 nm area to ``node`` ([SB17]; 1 at 45 nm)."""
    if node == 45:
        return 1.0
    if node == 7:
        return cost("scale.area_45_to_7").value
    raise ValueError(f"process_nm must be one of {NODES}, got {node}")


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
    """Primitive ops of one multiply-accumulate under the PAPERS' counting rule ([B1] eq. 16-18).

    A full-precision MAC is one multiply plus one add at the operands' (wider) format; a
    ternary weight needs no multiply, only one add at the activation's format.  The accumulator
    width is ignored, as the papers ignore it; the simulator charges the width-aware model of
    :mod:`sim.energy.pe` instead, and this rule stays for the paper's 71.4x reproduction.
    """
    if weights == "ternary":
        if acts in _TERNARY_ADD:
            return (_TERNARY_ADD[acts],)
        return (f"{_PRIM[acts]}_add",)
    wide = _PRIM[_wider(weights, acts)]
    return (f"{wide}_mul", f"{wide}_add")


def mac_pj(weights: str, acts: str, node: int) -> float:
    """Energy (pJ) of one MAC at ``node`` nm under the papers' rule (:func:`mac_parts`)."""
    if node not in ARITH_PJ:
        raise ValueError(f"process_nm must be one of {NODES} (the nodes of [B1] Table 2), got {node}")
    return sum(ARITH_PJ[node][p].value for p in mac_parts(weights, acts))


def mac_area_um2(weights: str, acts: str) -> float:
    """Area (um^2, 45 nm) of the arithmetic of one MAC unit under the papers' rule (no accumulator width)."""
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
    """The whole cost table as Markdown (for docs/simulator.md and reports), plus the derived width rows."""
    rows = ["| quantity | node | value | unit | kind | source |", "|---|---|---|---|---|---|"]
    for (q, node), e in COSTS.items():
        rows.append(f"| {q} | {'-' if node is None else f'{node} nm'} | {e.value:.4g} | {e.unit} | {e.kind} | "
                    f"{e.source.replace('|', '/')} |")
    for node, t in ARITH_PJ.items():
        for k, e in t.items():
            if e.kind == "assumption":
                rows.append(f"| energy.{k} | {node} nm | {e.value:.4g} | {e.unit} | derived | width rule: {e.source} |")
    for k, e in AREA_UM2_45NM.items():
        if e.kind == "assumption":
            rows.append(f"| area.{k} | 45 nm | {e.value:.4g} | {e.unit} | derived | width rule: {e.source} |")
    rows.append(f"| vector element-pass | any | fp16_add + fp16_mul | pJ | assumption | {VECTOR_PJ_RULE} |")
    return "\n".join(rows)
