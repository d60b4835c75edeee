"""Bytes an op moves: off-chip (DMA) and on-chip (SRAM buffers).

Memory model (one page, so it can be argued with):

* Weights (and the KV cache for attention) live off chip and are streamed
  through a double-buffered SRAM weight buffer: each half holds one DMA tile
  while the other half feeds the array.  A sparsity-aware accelerator
  (``skip_weight_fetch``) does not fetch the weight rows whose activations are
  zero in every row (``row_skip`` of the trace).
* With ``weight_residency: sram`` the weights live in an on-chip store: a GEMM reads them
  from that store (SRAM bytes, in place of the DMA's buffer write) and nothing from off chip;
  embedding rows and norm gains of vector ops likewise.  The KV cache stays off chip.
* Activations stay in the SRAM activation buffer between ops when they fit.
  A GEMM whose input does not fit is blocked: either the activations are
  re-streamed once per weight tile, or the weights once per activation block,
  whichever moves fewer bytes.  Outputs that do not fit are written off chip.
* SRAM traffic of a GEMM follows its dataflow: the stationary operand is read
  once per fold, the moving operand once per fold along the other spatial
  dimension, partial sums are written and read back across reduction folds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..compute.systolic import spatial_temporal

if TYPE_CHECKING:
    from ..config import AcceleratorConfig, ArrayConfig


@dataclass(frozen=True)
class Traffic:
    offchip_read: float   # bytes
    offchip_write: float  # bytes
    sram: float           # bytes read + written in SRAM


def _fits(nbytes: float, accel: "AcceleratorConfig") -> bool:
    return nbytes <= accel.sram.activation_buffer_kib * 1024


def tile_bytes(accel: "AcceleratorConfig") -> float:
    """Bytes in one DMA tile: half of the double-buffered weight buffer."""
    return accel.sram.weight_buffer_kib * 1024 / 2


def matmul_traffic(accel: "AcceleratorConfig", array: "ArrayConfig", *, M: int, N: int, K: int,
                   count: int, weight_read: float, act_in: float, act_out: float,
                   kv_write: float, resident: bool = False) -> Traffic:
    """Traffic of a (batched) GEMM whose weight-side operand streams from off chip.

    ``weight_read`` is what must be fetched (after any row skipping);
    ``act_in`` / ``act_out`` the activation bytes of the whole op.  ``resident``: the weight-side
    operand is read from the on-chip weight store instead (no off-chip bytes for it).
    """
    off_r = weight_read
    if resident:
        off_r = 0.0 if _fits(act_in, accel) else act_in   # weights re-read from the store per activation block
    elif not _fits(act_in, accel) and act_in > 0:
        tiles_w = max(1, math.ceil(weight_read / tile_bytes(accel)))
        act_buf = max(accel.sram.activation_buffer_kib * 1024, 1.0)
        blocks_a = math.ceil(act_in / act_buf)
        off_r = min(weight_read + act_in * tiles_w, act_in + weight_read * blocks_a)
    off_w = kv_write + (0.0 if _fits(act_out, accel) else act_out)

    fr, _ = _spatial_folds(array, M, N, K)
    sram = fold_reads(array, M=M, N=N, K=K, weight_read=weight_read, act_in=act_in)
    if array.dataflow == "output-stationary":      # y once
        sram += act_out
    else:                                          # partial sums written and read back per row fold
        sram += act_out * max(2 * fr - 1, 1)
    sram += weight_read  # DMA writes the fetched tiles into the buffer (resident: the store's read)
    return Traffic(offchip_read=off_r, offchip_write=off_w, sram=sram)


def _spatial_folds(array: "ArrayConfig", M: int, N: int, K: int) -> tuple[int, int]:
    """Folds along the array's rows and columns of one GEMM instance."""
    sr, sc, _ = spatial_temporal(M, N, K, array.dataflow)
    return (math.ceil(sr / array.rows) if sr > 0 else 0), (math.ceil(sc / array.cols) if sc > 0 else 0)


def fold_reads(array: "ArrayConfig", *, M: int, N: int, K: int, weight_read: float, act_in: float) -> float:
    """Operand bytes the array's folds read from the on-chip buffer, by its dataflow: the stationary operand once,
    the moving one once per fold along the other spatial dimension (weight-stationary: W once, x per column fold;
    output-stationary: W per row fold, x per column fold; input-stationary: x once, W per column fold).  On a GPU
    these are the bytes the L2 feeds the SMs: every output tile reads its rows of both operands."""
    fr, fc = _spatial_folds(array, M, N, K)
    if array.dataflow == "weight-stationary":
        return weight_read + act_in * fc
    if array.dataflow == "output-stationary":
        return weight_read * fr + act_in * fc
    return act_in + weight_read * fc


def vector_traffic(accel: "AcceleratorConfig", *, act_in: float, act_out: float,
                   table_read: float, kv_write: float, resident: bool = False) -> Traffic:
    """Traffic of a vector op: in/out through SRAM; its own parameters (embedding rows
    gathered, norm gains) from off chip, or from the on-chip weight store when ``resident``."""
    off_r = (0.0 if resident else table_read) + (0.0 if _fits(act_in, accel) else act_in)
    off_w = kv_write + (0.0 if _fits(act_out, accel) else act_out)
    return Traffic(offchip_read=off_r, offchip_write=off_w, sram=act_in + act_out + table_read)
