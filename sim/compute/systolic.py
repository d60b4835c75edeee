"""Systolic-array tiling and cycle counts per dataflow, and op -> array mapping.

A GEMM ``y[M,N] = x[M,K] . W[K,N]`` (``count`` independent instances) is mapped
onto an R x C array as in SCALE-Sim (Samajdar et al., ISPASS 2020):

=====================  =====================  ==========  ======================
dataflow               spatial rows (Sr)      cols (Sc)   temporal (T)
=====================  =====================  ==========  ======================
weight-stationary      K (reduction)          N           M (activation rows)
output-stationary      M                      N           K
input-stationary       K                      M           N
=====================  =====================  ==========  ======================

The problem is cut into ``ceil(Sr/R) * ceil(Sc/C)`` *folds* per instance.  One
fold costs (derived from the array's wiring, not copied from any code):

* ``L`` cycles to load the stationary operand (WS/IS; ``L = R`` when it is
  shifted in one row per cycle; OS has nothing to preload, ``L = 0``);
* ``ceil(T / rate)`` cycles to stream the moving operand (``rate`` = MACs per
  PE per cycle of the precision pair in use);
* ``R + C - 2`` cycles of skew: the last PE sees its first input R+C-2 cycles
  after the first PE, so the fold finishes that much later.

Back-to-back folds (``pipelined_folds: false``, SCALE-Sim's model) cost
``folds * (L + ceil(T/rate) + R + C - 2)``; for WS this is the paper's
``2R + C + T - 2``.  With double-buffered PEs (``pipelined_folds: true``) the
next load and the previous drain hide under the current stream:
``L + folds * max(ceil(T/rate), L) + R + C - 2``.  ``count`` copies of the
array take folds in waves: ``folds`` above becomes ``ceil(total_folds / count)``.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # types only: the config package imports sim.compute.precision
    from ..config import ArrayConfig


def spatial_temporal(M: int, N: int, K: int, dataflow: str) -> tuple[int, int, int]:
    """(Sr, Sc, T) of a GEMM under a dataflow (table in the module docstring)."""
    if dataflow == "weight-stationary":
        return K, N, M
    if dataflow == "output-stationary":
        return M, N, K
    if dataflow == "input-stationary":
        return K, M, N
    raise ValueError(f"unknown dataflow {dataflow!r}")


def folds(M: int, N: int, K: int, rows: int, cols: int, dataflow: str, count: int = 1) -> int:
    sr, sc, _ = spatial_temporal(M, N, K, dataflow)
    return math.ceil(sr / rows) * math.ceil(sc / cols) * count


def systolic_cycles(M: int, N: int, K: int, array: "ArrayConfig", rate: float = 1.0,
                    count: int = 1) -> int:
    """Compute cycles of ``count`` GEMMs (M, N, K) on ``array`` with no memory stalls."""
    if min(M, N, K) <= 0 or count <= 0:
        return 0
    R, C = array.rows, array.cols
    _, _, T = spatial_temporal(M, N, K, array.dataflow)
    waves = math.ceil(folds(M, N, K, R, C, array.dataflow, count) / array.count)
    load = 0 if array.dataflow == "output-stationary" else array.load_cycles
    stream = math.ceil(T / rate)
    skew = R + C - 2
    if array.pipelined_folds:
        return load + waves * max(stream, load) + skew
    return waves * (load + stream + skew)


def ideal_cycles(macs: float, array: "ArrayConfig", rate: float) -> float:
    """Compute-roofline cycles: MACs at the array's peak rate, no tiling loss."""
    return macs / (array.pes * rate)


def unpack_cycles(M: int, N: int, K: int, array: "ArrayConfig", rate: float, count: int = 1) -> int:
    """Cycles to unpack the packed weight-side operand of ``count`` GEMMs (M, N, K) in software.

    Every fold unpacks the weight elements it touches (the K x N operand is
    unpacked again for every fold along M: a GPU decodes its weight tile once
    per CTA output tile), at ``rate`` elements per cycle on each array copy;
    the copies take folds in waves as in :func:`systolic_cycles`.  So a GEMM
    that fills only a few copies (small M, N) pays the full per-fold time.
    """
    if min(M, N, K) <= 0 or count <= 0:
        return 0
    R, C = array.rows, array.cols
    total = folds(M, N, K, R, C, array.dataflow, count)
    if array.dataflow == "output-stationary":      # M on rows
        m_folds = math.ceil(M / R)
    elif array.dataflow == "input-stationary":     # M on columns
        m_folds = math.ceil(M / C)
    else:                                          # weight-stationary: weights loaded once per fold
        m_folds = 1
    per_fold = N * K * count * m_folds / total
    waves = math.ceil(total / array.count)
    return waves * math.ceil(per_fold / rate)
