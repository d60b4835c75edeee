"""Which compute array and PE operand pair runs an op (the rule is in sim.compute.precision)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..energy import effective_rate, pe_mac_energy_pj, using_costs
from .precision import can_run
from .systolic import systolic_cycles

if TYPE_CHECKING:
    from ..config import AcceleratorConfig, ArrayConfig, PEOp


@dataclass(frozen=True)
class Mapping:
    """Where an op runs: the array and the PE operand pair it uses, as the cycle model sees them (a
    lookup-table array as its rows x lut_group one-weight lanes, a bit-serial pair at its effective rate)."""
    array: "ArrayConfig"
    pe_op: "PEOp"
    exact: bool
    mac_pj: float    # energy of one MAC of this pair on this array: arithmetic + operand delivery (sim.energy.pe)


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
    with using_costs(accel.cost_table):
        best, barred = _best_pair(accel, need, shape)
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


def _best_pair(accel: "AcceleratorConfig", need: tuple[str, str],
               shape: tuple[int, int, int, int] | None) -> tuple[tuple | None, list[str]]:
    """((sort key, Mapping) of the best array and pair for ``need``, or None; arrays barred by ``max_m``)."""
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
            pj = pe_mac_energy_pj(a, p, accel.process_nm, shape[1] if shape is not None else None)
            run, op = _as_run(a, p)
            speed = (systolic_cycles(shape[0], shape[1], shape[2], run, op.rate, shape[3])
                     if shape is not None else -run.pes * op.rate)
            key = (pair != need, speed, pj, i, j)
            if best is None or key < best[0]:
                best = (key, Mapping(run, op, pair == need, pj))
    return best, barred


def _as_run(a: "ArrayConfig", p: "PEOp") -> tuple["ArrayConfig", "PEOp"]:
    """The array and pair the cycle model runs: a lookup-table PE row covers ``lut_group`` reduction elements
    (an array of rows x g one-weight lanes, each at ``rate`` / planes); a bit-serial pair runs at its
    effective rate (:func:`sim.energy.effective_rate`); a MAC array as it is."""
    if a.pe_kind == "lut":
        rate = effective_rate(a, p) / a.lut_group
        return dataclasses.replace(a, rows=a.rows * a.lut_group), dataclasses.replace(p, rate=rate)
    if a.pe_kind == "bit-serial":
        return a, dataclasses.replace(p, rate=effective_rate(a, p))
    return a, p
