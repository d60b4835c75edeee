"""Width-aware processing element: multiplier, accumulator and pipeline registers by operand width.

The papers' counting rule (:func:`sim.energy.mac_pj`: a ternary MAC = one INT8 add) ignores
that the add of a K-long reduction happens at the ACCUMULATOR's width.  This module sizes a PE
from its operand pairs (docs/simulator.md "Hardware model"):

* integer pairs (ternary, int3, int4, int8 and the 5-bit FP4 codes of a ternary x FP4 PE):
  product bits = a + b for intA x intB, a + 1 for ternary x int(a) (the sign flip of the most
  negative code needs one more bit); accumulator bits = product bits + ceil(log2(max_k)), where
  ``max_k`` is the longest reduction the array's accumulators are built for (7B: K = 11008 ->
  14 bits of headroom -> 23 bits for ternary x INT8);
* float pairs: a multiplier at the wider format and an adder at ``float_accumulator`` (fp32 by
  default, as tensor cores accumulate FP16 products);
* energy per MAC = multiplier + one accumulator add, from the cost table (adders linear in
  width from the INT8 row, multipliers ~ product of widths from the INT8 row; both rules are
  cross-checked against Horowitz's independent 45 nm table in tests/test_sim_costs.py);
* area per PE = its most expensive pair (narrower pairs reuse it by splitting, as a4.8's split
  adder; a pair at ``rate`` r has r multipliers and r accumulators, so INT4 at 2/cycle carries
  its second accumulator) + pipeline registers (stationary operand, double-buffered when folds
  are pipelined; moving operand and partial sum per MAC lane) at the flip-flop area of the
  table, times (1 + ``pe.control_overhead``).  Pipeline-register ENERGY is not charged
  (ASSUMPTION, as in the papers; it favours narrow PEs).
"""
from __future__ import annotations

import math

from .table import AREA_UM2_45NM, ARITH_PJ, area_scale, cost

# Annotations name sim.config's records as strings only: sim.config imports this package, so an
# import back (even under TYPE_CHECKING) would be a cycle.

#: bits of one operand code (fp4 as the 5-bit integer code a ternary x FP4 PE adds; see table._TERNARY_ADD)
CODE_BITS = {"ternary": 2, "int3": 3, "int4": 4, "int8": 8, "fp4": 4, "fp8": 8, "fp16": 16}
FLOATS = ("fp4", "fp8", "fp16")
FLOAT_ACCUMULATORS = ("fp32", "fp16")
_FP_RANK = {"fp4": 0, "fp8": 1, "fp16": 2}


def is_integer_pair(weights: str, acts: str) -> bool:
    """True when the MAC is an integer multiply-add (ternary x fp4 codes included)."""
    if weights == "ternary" and acts == "fp4":
        return True
    return weights not in FLOATS and acts not in FLOATS


def _int_bits(op: str, ternary_partner: bool) -> int:
    return 5 if (op == "fp4" and ternary_partner) else CODE_BITS[op]


def product_bits(weights: str, acts: str) -> int:
    """Signed bits of one integer product (see module doc)."""
    if weights == "ternary" or acts == "ternary":
        other = acts if weights == "ternary" else weights
        return 2 if other == "ternary" else _int_bits(other, True) + 1
    return CODE_BITS[weights] + CODE_BITS[acts]


def accumulator_bits(weights: str, acts: str, max_k: int, float_accumulator: str = "fp32") -> int:
    """Width of the adder that accumulates a reduction of up to ``max_k`` products."""
    if is_integer_pair(weights, acts):
        return product_bits(weights, acts) + max(0, math.ceil(math.log2(max(max_k, 1))))
    return 32 if float_accumulator == "fp32" else 16


def _wider_float(weights: str, acts: str) -> str:
    fl = [x for x in (weights, acts) if x in FLOATS] or ["fp16"]
    return max(fl, key=_FP_RANK.get)


def mac_energy_pj(weights: str, acts: str, node: int, max_k: int, float_accumulator: str = "fp32") -> float:
    """Energy (pJ) of one MAC of the width-aware PE: multiplier + one accumulator add."""
    t = ARITH_PJ[node]
    acc = accumulator_bits(weights, acts, max_k, float_accumulator)
    if is_integer_pair(weights, acts):
        mul = 0.0 if "ternary" in (weights, acts) else \
            t["int8_mul"].value * CODE_BITS[weights] * CODE_BITS[acts] / 64
        return mul + t["int8_add"].value * acc / 8
    return t[f"{_wider_float(weights, acts)}_mul"].value + t[f"fp{acc}_add"].value


def _mac_area_um2_45(weights: str, acts: str, max_k: int, float_accumulator: str) -> tuple[float, int]:
    """(multiplier + accumulator area at 45 nm, accumulator bits) of one MAC lane."""
    a = AREA_UM2_45NM
    acc = accumulator_bits(weights, acts, max_k, float_accumulator)
    if is_integer_pair(weights, acts):
        mul = 0.0 if "ternary" in (weights, acts) else a["int8_mul"].value * CODE_BITS[weights] * CODE_BITS[acts] / 64
        return mul + a["int8_add"].value * acc / 8, acc
    return a[f"{_wider_float(weights, acts)}_mul"].value + a[f"fp{acc}_add"].value, acc


def pe_parts_um2(array: "ArrayConfig", node: int) -> dict[str, float]:
    """Area of one PE of ``array`` at ``node`` nm, by part: arithmetic, registers, control (um^2)."""
    dff = cost("area.dff_bit", 45).value
    best = None
    for p in array.pe_ops:
        arith, acc = _mac_area_um2_45(p.weights, p.acts, array.max_k, array.float_accumulator)
        stationary = CODE_BITS[p.weights] * (2 if (array.pipelined_folds or array.stream_weights) else 1)
        moving = _int_bits(p.acts, p.weights == "ternary")
        regs = (stationary + p.rate * (moving + acc)) * dff
        total = p.rate * arith + regs
        if best is None or total > best[0]:
            best = (total, p.rate * arith, regs)
    s = area_scale(node)
    ctl = cost("pe.control_overhead").value
    return {"arithmetic": best[1] * s, "registers": best[2] * s, "control": best[0] * s * ctl}


def pe_area_um2(array: "ArrayConfig", node: int) -> float:
    """Area (um^2) of one PE of ``array`` at ``node`` nm (:func:`pe_parts_um2` summed)."""
    return sum(pe_parts_um2(array, node).values())


def vector_lane_area_um2(node: int) -> float:
    """One vector lane: an FP16 multiplier and adder, three 16-bit registers, control overhead."""
    a = AREA_UM2_45NM
    um2 = a["fp16_mul"].value + a["fp16_add"].value + 3 * 16 * cost("area.dff_bit", 45).value
    return um2 * area_scale(node) * (1 + cost("pe.control_overhead").value)
