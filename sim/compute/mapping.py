"""Which compute array and PE operand pair runs an op (the rule is in sim.compute.precision)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..energy import mac_energy_pj
from .precision import can_run
from .systolic import systolic_cycles

if TYPE_CHECKING:
    from ..config import AcceleratorConfig, ArrayConfig, PEOp


@dataclass(frozen=True)
class Mapping:
    """Where an op runs: the array and the PE operand pair it uses."""
    array: "ArrayConfig"
    pe_op: "PEOp"
    exact: bool
    mac_pj: float    # width-aware energy of one MAC of this pair on this array (sim.energy.pe)


def map_op(accel: "AcceleratorConfig", weights: str, acts: str, where: str,
           shape: tuple[int, int, int, int] | None = None) -> Mapping:
    """Choose the array and PE pair for an op needing ``weights x acts`` (see sim.compute.precision).

    Only arrays whose dispatch rule takes the op's M (``ArrayConfig.max_m``)
    are candidates; without a ``shape`` the rule is not applied (peak-rate
    questions).  Order of preference: an exact operand match; then the fewest
    compute cycles for the op's ``shape`` (M, N, K, count) -- or, without a
    shape, the highest peak rate; then the cheaper MAC; then config order.
    """
    need = (weights, acts)
    best = None
    barred = []   # arrays that hold the pair but whose max_m is below the op's M
    for i, a in enumerate(accel.arrays):
        for j, p in enumerate(a.pe_ops):
            pair = (p.weights, p.acts)
            if not can_run(pair, need, accel.precision_policy):
                continue
            if shape is not None and not a.takes_m(shape[0]):
                barred.append(f"{a.name} (max_m={a.max_m})")
                continue
            pj = mac_energy_pj(p.weights, p.acts, accel.process_nm, a.max_k, a.float_accumulator)
            speed = (systolic_cycles(shape[0], shape[1], shape[2], a, p.rate, shape[3])
                     if shape is not None else -a.pes * p.rate)
            key = (pair != need, speed, pj, i, j)
            if best is None or key < best[0]:
                best = (key, Mapping(a, p, pair == need, pj))
    if best is None and barred:
        raise ValueError(f"{where}: accelerator {accel.name!r} has no array that takes a {weights}x{acts} op "
                         f"with M={shape[0]}: the arrays holding that pair are limited to smaller M by their "
                         f"dispatch rule: {', '.join(dict.fromkeys(barred))}")
    if best is None:
        have = sorted({f"{p.weights}x{p.acts}" for a in accel.arrays for p in a.pe_ops})
        rule = ("an exact pair" if accel.precision_policy == "strict"
                else "a pair whose formats hold these operands exactly")
        raise ValueError(f"{where}: accelerator {accel.name!r} cannot run a {weights}x{acts} op "
                         f"(needs {rule}; it has {have}, precision_policy={accel.precision_policy})")
    return best[1]
