"""Lookup-table and bit-serial datapaths: the arithmetic they perform and the counts their costs follow.

Lookup-table PE (T-MAC, arXiv 2407.00088; LUT Tensor Core, ISCA 2025): activations are cut into
groups of ``g``; for each group a table holds the sum of the group under every weight pattern.  A
ternary weight group {-1, 0, +1}^g indexes a table of 3^g sums; an N-bit integer weight is N binary
planes {0, 1}^g, each indexing a table of 2^g sums (shifted by the plane's bit and summed, the top
plane negated for two's complement).  Tables are built once per group of a token's activations and
shared by every output column, so the build cost is spread over N outputs.  Half of each table is
the negation of the other half (mirror symmetry), so only ``ceil(entries / 2)`` are stored and
built; a lookup reads one stored entry and negates it when the pattern's leading weight is negative.

Bit-serial PE (Stripes, MICRO 2016): an ``a``-bit activation enters one bit per cycle; each cycle
adds the weight, shifted by the bit's weight (negated for the sign bit), into the accumulator, so a
MAC takes ``a`` cycles and ``a`` accumulator adds and needs no multiplier.

:func:`lut_dot` and :func:`bit_serial_dot` compute a dot product exactly this way (the reference a
test checks against the plain dot product); :func:`lut_counts` and :func:`bit_serial_counts` give the
event counts the cost model (:mod:`sim.energy.pe`) charges.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

#: weights a lookup-table PE takes, with the planes one weight needs (ternary: one 3-way plane)
LUT_WEIGHT_PLANES = {"ternary": 1, "int3": 3, "int4": 4, "int8": 8}
#: integer activations a lookup-table or bit-serial PE takes, with their bits
INT_ACT_BITS = {"int3": 3, "int4": 4, "int8": 8}


@dataclass(frozen=True)
class LutCounts:
    """Events of one lookup-table PE design for a group of ``g`` weights (see module doc)."""
    group: int             # g: weights per lookup
    planes: int            # lookups per weight group (1 for ternary, N for an N-bit integer)
    entries: int           # table entries one group needs (3^g or 2^g)
    stored: int            # entries built and stored (mirror symmetry: ceil(entries / 2))
    entry_bits: int        # bits of one stored sum: act bits + bits of the group's largest count + sign


def lut_counts(weights: str, act_bits: int, group: int) -> LutCounts:
    """The counts of a lookup-table PE taking ``weights`` and ``act_bits``-bit activations in groups of ``group``."""
    if weights not in LUT_WEIGHT_PLANES:
        raise ValueError(f"a lookup-table PE takes weights {list(LUT_WEIGHT_PLANES)}, got {weights!r}")
    base = 3 if weights == "ternary" else 2
    entries = base ** group
    return LutCounts(group=group, planes=LUT_WEIGHT_PLANES[weights], entries=entries,
                     stored=math.ceil(entries / 2), entry_bits=act_bits + math.ceil(math.log2(group + 1)) + 1)


def _table(acts: np.ndarray, values: tuple[int, ...]) -> dict[tuple[int, ...], int]:
    """Every weight pattern over ``values`` -> the group's sum under it (the table a group builds)."""
    return {pat: int(np.dot(pat, acts)) for pat in itertools.product(values, repeat=len(acts))}


def lut_dot(weights: np.ndarray, acts: np.ndarray, group: int, bits: int | None = None) -> int:
    """Dot product of integer ``weights`` and ``acts`` computed by table lookups (see module doc).

    ``bits`` None: ternary weights in {-1, 0, 1}, one lookup per group.  ``bits`` N: N-bit two's
    complement weights, one lookup per binary plane, plane b shifted by b (the top plane negated).
    A final group shorter than ``group`` is padded with zero activations.
    """
    w, a = np.asarray(weights, dtype=np.int64), np.asarray(acts, dtype=np.int64)
    if w.shape != a.shape or w.ndim != 1:
        raise ValueError(f"weights and acts must be vectors of one length, got {w.shape} and {a.shape}")
    pad = (-len(a)) % group
    w, a = np.concatenate([w, np.zeros(pad, np.int64)]), np.concatenate([a, np.zeros(pad, np.int64)])
    total = 0
    for s in range(0, len(a), group):
        ga, gw = a[s:s + group], w[s:s + group]
        if bits is None:
            total += _table(ga, (-1, 0, 1))[tuple(int(x) for x in gw)]
            continue
        table = _table(ga, (0, 1))
        for b in range(bits):
            plane = tuple(int(x) for x in (gw >> b) & 1)
            total += (-1 if b == bits - 1 else 1) * (table[plane] << b)
    return total


def bit_serial_dot(weights: np.ndarray, acts: np.ndarray, act_bits: int) -> tuple[int, int]:
    """(dot product, cycles) of a bit-serial PE: two's complement ``act_bits``-bit activations, one bit per cycle."""
    w, a = np.asarray(weights, dtype=np.int64), np.asarray(acts, dtype=np.int64)
    total = 0
    for b in range(act_bits):
        bit = (a >> b) & 1
        total += (-1 if b == act_bits - 1 else 1) * (int(np.dot(w, bit)) << b)
    return total, act_bits * len(a)


def bit_serial_counts(act_bits: int) -> int:
    """Cycles (and accumulator adds) of one bit-serial MAC: one per activation bit."""
    return act_bits
