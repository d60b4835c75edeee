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
  table, times (1 + ``pe.control_overhead``);
* operand delivery (:func:`pe_mac_energy_pj`): each MAC also writes its moving operand and its
  partial sum into pipeline registers (``reg.write_fj_per_bit`` per bit), which the papers' rule
  leaves out; it weighs most on narrow PEs, whose arithmetic is cheapest.  The clock of those
  registers is an always-on power (:func:`sim.energy.chip.clock_tree_w`).
"""
from __future__ import annotations

import math
from typing import Protocol

from .datapaths import INT_ACT_BITS, LUT_WEIGHT_PLANES, bit_serial_counts, lut_counts
from .table import area_scale, area_um2_45nm, arith_pj, cost, node_cost


class PairLike(Protocol):
    """What the cost model reads of an operand pair (``sim.config.PEOp``; sim.config imports this package,
    so the records are named by their shape here, not imported)."""
    weights: str
    acts: str
    rate: float


class ArrayLike(Protocol):
    """What the cost model reads of an array (``sim.config.ArrayConfig``)."""
    rows: int
    cols: int
    pe_ops: tuple
    max_k: int
    float_accumulator: str
    pipelined_folds: bool
    stream_weights: bool
    pe_kind: str
    lut_group: int

#: bits of one operand code (fp4 as the 5-bit integer code a ternary x FP4 PE adds; see table._TERNARY_ADD)
CODE_BITS = {"ternary": 2, "int3": 3, "int4": 4, "int8": 8, "fp4": 4, "fp8": 8, "fp16": 16}
FLOATS = ("fp4", "fp8", "fp16")
FLOAT_ACCUMULATORS = ("fp32", "fp16")
#: how a PE computes: "mac" (a multiplier / adder per pair), "lut" (table lookups over groups of
#: ``lut_group`` weights), "bit-serial" (one activation bit per cycle); :mod:`sim.energy.datapaths`
PE_KINDS = ("mac", "lut", "bit-serial")
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
    t = arith_pj(node)
    acc = accumulator_bits(weights, acts, max_k, float_accumulator)
    if is_integer_pair(weights, acts):
        mul = 0.0 if "ternary" in (weights, acts) else \
            t["int8_mul"].value * CODE_BITS[weights] * CODE_BITS[acts] / 64
        return mul + t["int8_add"].value * acc / 8
    return t[f"{_wider_float(weights, acts)}_mul"].value + t[f"fp{acc}_add"].value


def _mac_area_um2_45(weights: str, acts: str, max_k: int, float_accumulator: str) -> tuple[float, int]:
    """(multiplier + accumulator area at 45 nm, accumulator bits) of one MAC lane."""
    a = area_um2_45nm()
    acc = accumulator_bits(weights, acts, max_k, float_accumulator)
    if is_integer_pair(weights, acts):
        mul = 0.0 if "ternary" in (weights, acts) else a["int8_mul"].value * CODE_BITS[weights] * CODE_BITS[acts] / 64
        return mul + a["int8_add"].value * acc / 8, acc
    return a[f"{_wider_float(weights, acts)}_mul"].value + a[f"fp{acc}_add"].value, acc


def _pair_register_bits(array: "ArrayLike", p: "PairLike") -> tuple[float, float]:
    """(register bits of a PE built for pair ``p``, bits written per MAC: moving operand + partial sum)."""
    acc = accumulator_bits(p.weights, p.acts, array.max_k, array.float_accumulator)
    stationary = CODE_BITS[p.weights] * (2 if (array.pipelined_folds or array.stream_weights) else 1)
    per_mac = _int_bits(p.acts, p.weights == "ternary") + acc
    return stationary + p.rate * per_mac, per_mac


def _widest_pair(array: "ArrayLike") -> tuple[float, float, float]:
    """(total, arithmetic, register bits) at 45 nm of the pair that sizes the PE (its most expensive one)."""
    dff = cost("area.dff_bit", 45).value
    best = None
    for p in array.pe_ops:
        if array.pe_kind == "mac":
            arith, _ = _mac_area_um2_45(p.weights, p.acts, array.max_k, array.float_accumulator)
            bits, _ = _pair_register_bits(array, p)
        else:
            arith, bits = _kind_area_um2_45(array, p)
        total = p.rate * arith + bits * dff
        if best is None or total > best[0]:
            best = (total, p.rate * arith, bits)
    return best


def pe_register_bits(array: "ArrayLike") -> float:
    """Pipeline-register bits of one PE of ``array`` (those of the pair that sizes it)."""
    return _widest_pair(array)[2]


def pe_parts_um2(array: "ArrayLike", node: int) -> dict[str, float]:
    """Area of one PE of ``array`` at ``node`` nm, by part: arithmetic, registers, control (um^2)."""
    total, arith, bits = _widest_pair(array)
    s = area_scale(node)
    ctl = cost("pe.control_overhead").value
    return {"arithmetic": arith * s, "registers": bits * cost("area.dff_bit", 45).value * s,
            "control": total * s * ctl}


def operand_delivery_pj(array: "ArrayLike", p: "PairLike", node: int) -> float:
    """Energy (pJ) of the register writes of one MAC of pair ``p``: moving operand + partial sum bits."""
    _, per_mac = _pair_register_bits(array, p)
    return per_mac * node_cost("reg.write_fj_per_bit", node).value * 1e-3


def pe_mac_energy_pj(array: "ArrayLike", p: "PairLike", node: int, share: int | None = None) -> float:
    """Energy (pJ) of one MAC of pair ``p`` on ``array``: a MAC PE's arithmetic (:func:`mac_energy_pj`) +
    operand delivery; a lookup-table PE's lookups and table build (one table serves ``share`` output
    columns: the op's N, or the array's ``cols`` when no op is given); a bit-serial PE's per-bit adds."""
    if array.pe_kind == "lut":
        return _lut_mac_pj(array, p, node, share or array.cols)
    if array.pe_kind == "bit-serial":
        return _bit_serial_mac_pj(array, p, node)
    return (mac_energy_pj(p.weights, p.acts, node, array.max_k, array.float_accumulator)
            + operand_delivery_pj(array, p, node))


def pe_area_um2(array: "ArrayLike", node: int) -> float:
    """Area (um^2) of one PE of ``array`` at ``node`` nm (:func:`pe_parts_um2` summed)."""
    return sum(pe_parts_um2(array, node).values())


# ---- lookup-table and bit-serial PEs (sim.energy.datapaths) -------------------------------
def check_pe_kind(array: "ArrayLike", where: str) -> None:
    """The pairs of a lookup-table or bit-serial array are ones that datapath computes; else ``ValueError``."""
    if array.pe_kind not in PE_KINDS:
        raise ValueError(f"{where}.pe_kind must be one of {PE_KINDS}, got {array.pe_kind!r}")
    if array.pe_kind == "mac":
        return
    for j, p in enumerate(array.pe_ops):
        if p.acts not in INT_ACT_BITS or (array.pe_kind == "lut" and p.weights not in LUT_WEIGHT_PLANES) \
                or (array.pe_kind == "bit-serial" and not is_integer_pair(p.weights, p.acts)):
            need = (f"weights {list(LUT_WEIGHT_PLANES)}" if array.pe_kind == "lut" else "integer weights")
            raise ValueError(f"{where}.pe_ops[{j}]: a {array.pe_kind} PE takes {need} and integer activations "
                             f"{list(INT_ACT_BITS)}, got {p.weights} x {p.acts}")


def effective_rate(array: "ArrayLike", p: "PairLike") -> float:
    """MACs per PE per cycle of pair ``p``: ``rate`` x g / planes for a lookup-table PE (one lookup covers g
    weights of one plane), ``rate`` / activation bits for a bit-serial PE, ``rate`` for a MAC PE."""
    if array.pe_kind == "lut":
        c = lut_counts(p.weights, INT_ACT_BITS[p.acts], array.lut_group)
        return p.rate * c.group / c.planes
    if array.pe_kind == "bit-serial":
        return p.rate / bit_serial_counts(INT_ACT_BITS[p.acts])
    return p.rate


def _add_pj(bits: float, node: int) -> float:
    return arith_pj(node)["int8_add"].value * bits / 8


def _lut_mac_pj(array: "ArrayLike", p: "PairLike", node: int, share: int) -> float:
    """Per MAC: planes x (entry read + accumulator add + partial-sum write) / g, plus the table build
    (stored entries x an entry-wide add and write) spread over the g x ``share`` MACs one table serves."""
    c = lut_counts(p.weights, INT_ACT_BITS[p.acts], array.lut_group)
    acc = accumulator_bits(p.weights, p.acts, array.max_k)
    reg = node_cost("reg.write_fj_per_bit", node).value * 1e-3
    lookup = c.entry_bits * reg + _add_pj(acc, node) + acc * reg
    build = c.stored * (_add_pj(c.entry_bits, node) + c.entry_bits * reg)
    return c.planes * lookup / c.group + build / (c.group * share)


def _bit_serial_mac_pj(array: "ArrayLike", p: "PairLike", node: int) -> float:
    """Per MAC: one accumulator add and partial-sum write per activation bit, plus the bit's register."""
    acc = accumulator_bits(p.weights, p.acts, array.max_k)
    reg = node_cost("reg.write_fj_per_bit", node).value * 1e-3
    return bit_serial_counts(INT_ACT_BITS[p.acts]) * (_add_pj(acc, node) + (acc + 1) * reg)


def _kind_area_um2_45(array: "ArrayLike", p: "PairLike") -> tuple[float, float]:
    """(arithmetic area at 45 nm incl. a lookup-table PE's entry multiplexer, register bits) of one
    lookup-table or bit-serial PE for pair ``p``."""
    a = area_um2_45nm()
    acc = accumulator_bits(p.weights, p.acts, array.max_k)
    adder = a["int8_add"].value * acc / 8
    buf = 2 if (array.pipelined_folds or array.stream_weights) else 1
    if array.pe_kind == "bit-serial":        # stationary weight, one activation bit, partial sum
        return adder, CODE_BITS[p.weights] * buf + 1 + acc
    c = lut_counts(p.weights, INT_ACT_BITS[p.acts], array.lut_group)
    index = c.group * (2 if p.weights == "ternary" else CODE_BITS[p.weights]) * buf
    table_share = c.stored * c.entry_bits / array.cols          # one table per PE row, read by its cols PEs
    mux = c.stored * c.entry_bits * cost("lut.mux_dff_fraction").value * cost("area.dff_bit", 45).value
    return adder + mux, index + acc + c.entry_bits + table_share


def vector_lane_register_bits() -> int:
    """Pipeline-register bits of one vector lane: three 16-bit registers."""
    return 3 * 16


def vector_lane_area_um2(node: int) -> float:
    """One vector lane: an FP16 multiplier and adder, three 16-bit registers, control overhead."""
    a = area_um2_45nm()
    um2 = a["fp16_mul"].value + a["fp16_add"].value + vector_lane_register_bits() * cost("area.dff_bit", 45).value
    return um2 * area_scale(node) * (1 + cost("pe.control_overhead").value)
