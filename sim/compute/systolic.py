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

Split reduction (``split_reduction``, :func:`split_reduction`): an op with fewer folds than array
copies (decode attention: one fold per head) has its K cut into parts that run on the idle copies.

GEMV-native mode (``stream_weights``): when a fold streams fewer cycles than its load
(decode: T = M = 1), the weights flow through the PEs instead of being held: L = 1.

Causal attention (:func:`causal_systolic_cycles`): a prefill's query i (position C - P + i)
sees keys 0 .. C - P + i only.  Folds whose keys are all masked for all their queries are
skipped; a fold whose temporal dimension is the queries (or the keys) streams only the
queries that see one of its keys (or the keys one of its queries sees).  Folds then differ in
length; the copies take them longest first, in waves, each wave as long as its longest fold.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

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


def split_reduction(M: int, N: int, K: int, array: "ArrayConfig", count: int = 1) -> tuple[int, int]:
    """(K per part, instances) of ``count`` GEMMs after the array's split-reduction rule: with
    ``split_reduction`` and fewer folds than array copies, K is cut into p parts, each an instance of its own
    (a flash-decoding kernel's context splits, a split-K GEMM); otherwise (K, count).

    p = min(copies // folds, K): one wave of parts.  With ``split_balanced`` p is the part count that finishes
    soonest -- the fewest ceil(folds x p / copies) waves x ceil(K / p), the smallest such p on a tie -- which
    comes within a rounding of spreading the folds' work evenly over every copy (stream-K): 86 folds of
    K = 4096 on 132 copies take 72 parts in 47 waves of 57 = 2679 (the even spread: 86 x 4096 / 132 = 2669),
    where one wave of whole folds takes 4096 with 46 copies idle."""
    if not array.split_reduction or min(M, N, K) <= 0 or count <= 0:
        return K, count
    f = folds(M, N, K, array.rows, array.cols, array.dataflow, count)
    if f >= array.count:
        return K, count
    if array.split_balanced:
        parts = min(range(1, min(array.count, K) + 1),
                    key=lambda p: (math.ceil(f * p / array.count) * math.ceil(K / p), p))
    else:
        parts = min(array.count // f, K)
    if parts <= 1:
        return K, count
    return math.ceil(K / parts), count * parts


def systolic_cycles(M: int, N: int, K: int, array: "ArrayConfig", rate: float = 1.0,
                    count: int = 1) -> int:
    """Compute cycles of ``count`` GEMMs (M, N, K) on ``array`` with no memory stalls."""
    if min(M, N, K) <= 0 or count <= 0:
        return 0
    K, count = split_reduction(M, N, K, array, count)
    R, C = array.rows, array.cols
    _, _, T = spatial_temporal(M, N, K, array.dataflow)
    waves = math.ceil(folds(M, N, K, R, C, array.dataflow, count) / array.count)
    stream = math.ceil(T / rate)
    load = 0 if array.dataflow == "output-stationary" else array.load_cycles_for(stream)
    skew = R + C - 2
    if array.pipelined_folds or _streaming(array, load):   # the GEMV-native mode is pipelined
        return load + waves * max(stream, load) + skew
    return waves * (load + stream + skew)


def _streaming(array: "ArrayConfig", load: int) -> bool:
    """True when a fold runs in the GEMV-native mode (its load shortened by ``stream_weights``)."""
    return array.dataflow != "output-stationary" and load < array.load_cycles


def weight_load_bound(M: int, N: int, K: int, array: "ArrayConfig", rate: float = 1.0) -> bool:
    """True when a fold of this GEMM spends longer loading its stationary operand than streaming."""
    if min(M, N, K) <= 0 or array.dataflow == "output-stationary":
        return False
    _, _, T = spatial_temporal(M, N, K, array.dataflow)
    stream = math.ceil(T / rate)
    return array.load_cycles_for(stream) > stream


def causal_pairs(P: int, C: int) -> int:
    """(query, key) pairs of a causal step: P new queries at positions C - P .. C - 1 over C keys."""
    return P * (C - P) + P * (P + 1) // 2


def _blocks(size: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    start = np.arange(0, size, step, dtype=np.int64)
    return start, np.minimum(start + step, size)


def causal_systolic_cycles(M: int, N: int, K: int, array: "ArrayConfig", rate: float, count: int,
                           keys_on: str) -> int:
    """Compute cycles of ``count`` causal attention GEMMs with fully masked folds skipped.

    M = P query rows; the keys (C of them, ``C >= P``) are the ``keys_on`` dimension: ``"N"``
    for q.K^T (N = C, K = head_dim), ``"K"`` for P.V (K = C, N = head_dim).  Equals
    :func:`systolic_cycles` when no fold is masked (P = 1, or every fold sees every query).
    """
    if min(M, N, K) <= 0 or count <= 0:
        return 0
    P, C = M, (N if keys_on == "N" else K)
    off = C - P
    R, Cc = array.rows, array.cols
    dims = {"M": M, "N": N, "K": K}
    order = {"weight-stationary": ("K", "N", "M"), "output-stationary": ("M", "N", "K"),
             "input-stationary": ("K", "M", "N")}[array.dataflow]
    rows_ax, cols_ax, t_ax = order
    r0, r1 = _blocks(dims[rows_ax], R)
    c0, c1 = _blocks(dims[cols_ax], Cc)
    g = {rows_ax: (r0[:, None], r1[:, None]), cols_ax: (c0[None, :], c1[None, :])}
    full = {ax: (np.zeros((1, 1), np.int64), np.full((1, 1), dims[ax], np.int64)) for ax in "MNK"}
    q0, q1 = g.get("M", full["M"])
    k0, k1 = g.get(keys_on, full[keys_on])
    active = k0 <= off + q1 - 1                       # some query of the fold sees some key of it
    if t_ax == "M":                                    # stream only the queries that see a key here
        T = q1 - np.maximum(q0, k0 - off)
    elif t_ax == keys_on:                              # stream only the keys a query here sees
        T = np.minimum(k1, off + q1) - k0
    else:
        T = np.full_like(active, dims[t_ax], dtype=np.int64)
    grid = (len(r0), len(c0))                          # every (row block, column block) fold
    T = np.broadcast_to(T, grid)[np.broadcast_to(active, grid)]
    if T.size == 0:
        return 0
    streams, mult = np.unique(np.ceil(T / rate).astype(np.int64), return_counts=True)
    streams, mult = streams[::-1], mult[::-1] * count       # longest first
    start = np.concatenate([[0], np.cumsum(mult)[:-1]])
    waves = -(-(start + mult) // array.count) - (-(-start // array.count))   # waves whose first fold is here
    skew = R + Cc - 2
    total, tail = 0, None
    for s_, w in zip(streams.tolist(), waves.tolist()):
        if w == 0:
            continue
        load = 0 if array.dataflow == "output-stationary" else array.load_cycles_for(s_)
        if array.pipelined_folds or _streaming(array, load):    # overlapped folds (as systolic_cycles)
            total += w * max(s_, load)
            tail = load + skew if tail is None else tail          # the first wave's load, the last drain
        else:
            total += w * (load + s_ + skew)
    total += tail or 0
    return int(total)


def ideal_cycles(macs: float, array: "ArrayConfig", rate: float) -> float:
    """Compute-roofline cycles: MACs at the array's peak rate, no tiling loss."""
    return macs / (array.pes * rate)


def promotion_cycles(M: int, N: int, K: int, array: "ArrayConfig", fmt: str, clock_ghz: float,
                     count: int = 1) -> int:
    """Serial cycles an exact kernel spends promoting ``fmt`` partial sums into fp32 (``ArrayConfig.promote_ns``).

    Every fold (one output tile on one array copy) adds its partial sums into the fp32 accumulator once per
    ``promote_every_k[fmt]`` elements of its reduction, ceil(K / every_k) times; the copies take folds in
    waves as in :func:`systolic_cycles`, so the cost is waves x promotions per fold x ``promote_ns``.  Where the
    array splits the reduction (:func:`split_reduction`), a split kernel cuts K at whole promotion steps, so
    the folds' steps are spread over the copies as their MACs are: ceil(folds x steps / copies) serial
    promotions, not one per part of every wave.  0 when the array does not promote ``fmt``.  The caller charges
    it to software-unpacking ops only (sim.engine.plan).
    """
    every_k, ns = array.promote_every_k.get(fmt), array.promote_ns.get(fmt, 0.0)
    if not every_k or ns <= 0 or min(M, N, K) <= 0 or count <= 0:
        return 0
    _, instances = split_reduction(M, N, K, array, count)
    total = folds(M, N, K, array.rows, array.cols, array.dataflow, count)
    if instances == count:                              # K not split: whole folds in waves
        serial = math.ceil(total / array.count) * math.ceil(K / every_k)
    else:   # a split fold promotes per whole step of its part: the steps of every fold spread over the copies
        serial = math.ceil(total * math.ceil(K / every_k) / array.count)
    return int(math.ceil(serial * ns * clock_ghz))


def unpack_cycles(M: int, N: int, K: int, array: "ArrayConfig", rate: float, count: int = 1,
                  m_tile: int | None = None) -> int:
    """Cycles to unpack the packed weight-side operand of ``count`` GEMMs (M, N, K) in software.

    Every fold unpacks the weight elements it touches (the K x N operand is
    unpacked again for every fold along M: a GPU decodes its weight tile once
    per CTA output tile), at ``rate`` elements per cycle on each array copy;
    the copies take folds in waves as in :func:`systolic_cycles`.  So a GEMM
    that fills only a few copies (small M, N) pays the full per-fold time, unless
    the array splits its reduction (:func:`split_reduction`).  ``m_tile``: rows of M
    that share one unpack (``ArrayConfig.unpack_m_tile``); the weights are then
    unpacked ceil(M / m_tile) times instead of once per fold along M.
    """
    if min(M, N, K) <= 0 or count <= 0:
        return 0
    K, count = split_reduction(M, N, K, array, count)
    R, C = array.rows, array.cols
    total = folds(M, N, K, R, C, array.dataflow, count)
    if array.dataflow == "output-stationary":      # M on rows
        m_folds = math.ceil(M / R)
    elif array.dataflow == "input-stationary":     # M on columns
        m_folds = math.ceil(M / C)
    else:                                          # weight-stationary: weights loaded once per fold
        m_folds = 1
    if m_tile is not None:
        m_folds = math.ceil(M / m_tile)
    per_fold = N * K * count * m_folds / total
    waves = math.ceil(total / array.count)
    return waves * math.ceil(per_fold / rate)
