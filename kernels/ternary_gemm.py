"""Ternary-weight GEMM / GEMV: ``y[M, N] = x[M, K] · W[N, K]ᵀ`` (W1.58A8, W1.58A4).

Operands
--------
* ``x``: per-token activation codes ``[M, K]`` -- int8 (INT8 codes, or INT4 codes held in int8:
  the "INT8-unpack" A4 path), or ``float8_e4m3fn`` holding INT4 codes (the FP8 tensor-core A4
  path; every integer in [-8, 7] is exactly an e4m3 value).  ``x_scale [M, 1]`` fp32.
* ``w``: ternary codes packed by :func:`kernels.packing.pack_ternary` (int32 ``[N, Kp/16]``,
  2 bits each, byte-lane order), ``w_scale`` fp32 with one value per matrix, or ``S`` values for
  a fused matrix of ``S`` equal sub-matrices (fused QKV, fused gate/up: one scale each,
  docs/decisions.md 4): row ``n`` uses ``w_scale[n // (N / S)]``.

Arithmetic (== ``model.quant.qlinear``)
--------------------------------------
INT8 path: ``tl.dot`` of int8 tiles accumulates in int32 (exact: |acc| <= 128·K < 2³¹).  FP8
path: products of INT4 codes and ternary weights are integers of magnitude <= 8, so every partial
sum is an integer below 8·K; an fp32 accumulator holds them exactly while 8·K < 2²⁴.  Hopper's
FP8 ``wgmma`` does NOT accumulate in full fp32, so the kernel asks Triton to promote the
tensor-core partial sum into the fp32 register accumulator every ``imprecise_acc`` K-elements
(``max_num_imprecise_acc``, default ``BK`` = one K tile): each unpromoted partial stays below
8·BK.  The benchmark's ``fp8exact`` section measures where the unpromoted accumulator stops being
exact (docs/kernels.md).  Epilogue for both: ``y = (fp32(acc) * x_scale) * w_scale``, two fp32
multiplies, cast with round-to-nearest-even: bit-identical to ``scale_acc(int_gemm(...))``.

Paths
-----
* M <= 4 (int8 codes): :func:`_w158_gemv_kernel`, the decode GEMV.  One program owns ``BN``
  output rows and the whole K (no split-K, no atomics): it streams its rows' packed words in
  chunks of ``KB`` words and does, per word and field, one shift, one AND and one ``dp4a``
  (4 MACs of int8 activations with the unsigned ``code+1`` bytes); ``sum(x)`` is subtracted
  once.  :func:`w158_gemv_fused` runs :func:`_w158_gemv_fused_kernel`, the same program body
  with the activation's RMSNorm and quantizer fused in front (M = 1: every program recomputes
  the row's statistics from the fp16 row, which sits in L2, so no separate quantizer launch is
  needed) and optional epilogues
  (residual add; the a4.8 gate-first rule for the fused gate/up matrix).
* otherwise: :func:`_w158_gemm_kernel` -- tensor-core GEMM; the packed weight tile is decoded in
  registers to a ``[BN, BK]`` int8 (or fp8 e4m3, built directly as bit patterns 0xB8/0x00/0x38)
  tile; FP8 promotes its partial sums into fp32 every 512 K elements (``imprecise_acc``).

Every launcher checks its inputs first (``kernels.checks``): dtypes, shapes, the packed width
against K, the packed field values (3 is not a ternary code), that the padding fields past K hold
code 0 (a matrix packed for a longer K inside the same pad group would be silently truncated),
and every config value.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from kernels.arith import cast_out, glu_mode, glu_product, quant_codes, quant_mode, quant_params
from kernels.checks import (
    FLOAT_DTYPES,
    check_device_usable,
    check_finite,
    check_shape,
    check_tensor,
    content_checks_enabled,
    next_pow2,
)
from kernels.configs import NO_TUNING, ConfigTable, gemm_m_bucket, gemv_m_bucket, resolve_config
from kernels.packing import PACK_GROUP, padded_len, unpack_ternary
from kernels.tickets import ticket_counters
from model import quant as Q

OUT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
#: the largest batch the "auto" path sends to the CUDA-core GEMV (``dp4a``); above it the tensor-core GEMM
GEMV_MAX_M = 4
#: the largest batch the GEMV path takes when asked for (``path="gemv"``): its accumulator holds
#: ``M x BN x KB`` int32 per program, so past 32 rows the tensor-core GEMM is the only sensible route
GEMV_PATH_MAX_M = 32
#: int32 accumulators per program that a GEMV tile keeps in registers at 4 warps without spilling
#: (``M x BN x KB``; the M = 1 tiles of ``gemv_config`` hold 2,048)
GEMV_ACC_BUDGET = 2048

@triton.jit
def _epilogue_store(acc, xs_ptr, ws_ptr, y_ptr, rm, rn, M, N, ws_rows, stride_ym, SWAP: tl.constexpr):
    """y = (fp32(acc) * x_scale[m]) * w_scale[n // ws_rows], cast, masked store."""
    if SWAP:   # acc is [BN, BM]
        ws = tl.load(ws_ptr + rn // ws_rows, mask=rn < N, other=0.0)
        xs = tl.load(xs_ptr + rm, mask=rm < M, other=0.0)
        y = (acc.to(tl.float32) * xs[None, :]) * ws[:, None]
        ptrs = y_ptr + rm[None, :].to(tl.int64) * stride_ym + rn[:, None]
        tl.store(ptrs, cast_out(y, y_ptr.dtype.element_ty), mask=(rm[None, :] < M) & (rn[:, None] < N))
    else:
        ws = tl.load(ws_ptr + rn // ws_rows, mask=rn < N, other=0.0)
        xs = tl.load(xs_ptr + rm, mask=rm < M, other=0.0)
        y = (acc.to(tl.float32) * xs[:, None]) * ws[None, :]
        ptrs = y_ptr + rm[:, None].to(tl.int64) * stride_ym + rn[None, :]
        tl.store(ptrs, cast_out(y, y_ptr.dtype.element_ty), mask=(rm[:, None] < M) & (rn[None, :] < N))


@triton.jit
def _dp4a(a, b, c, USE_ASM: tl.constexpr):
    """c + sum of the 4 byte products of a (signed bytes) and b (unsigned bytes).

    On the GPU one PTX ``dp4a.s32.u32``; the plain-Triton emulation (same result, integer-exact)
    runs under TRITON_INTERPRET=1.
    """
    if USE_ASM:
        return tl.inline_asm_elementwise("dp4a.s32.u32 $0, $1, $2, $3;", "=r,r,r,r", [a, b, c],
                                         dtype=tl.int32, is_pure=True, pack=1)
    else:
        r = c
        for s in tl.static_range(4):
            sa = (a << (24 - 8 * s)) >> 24                  # sign-extended byte s of a
            ub = (b >> (8 * s)) & 0xFF                      # unsigned byte s of b
            r = r + sa * ub
        return r


@triton.jit
def _mma(a, b, acc, FP8: tl.constexpr, IMPRECISE: tl.constexpr):
    """acc += a @ b on the tensor cores: int8 -> int32, or fp8 -> fp32.

    FP8: ``IMPRECISE > 0`` promotes the partial sum into the fp32 accumulator every IMPRECISE
    K-elements; 0 keeps Triton's default (on Hopper: never).
    """
    if FP8:
        if IMPRECISE > 0:
            return tl.dot(a, b, acc, max_num_imprecise_acc=IMPRECISE)
        else:
            return tl.dot(a, b, acc)
    else:
        return tl.dot(a, b, acc, out_dtype=tl.int32)


@triton.jit
def _join4(a0, a1, a2, a3):
    """``[..., 2, 2]`` whose flattened trailing pair holds a0, a1, a2, a3 in that order (``tl.join``
    appends the new axis last, so the last join is the fastest-varying one)."""
    return tl.join(tl.join(a0, a2), tl.join(a1, a3))


@triton.jit
def _fields_joined(wq, b: tl.constexpr):
    """Fields of byte lane ``b`` of every word, i = 0..3 (K offsets 4i + b), joined on two trailing axes."""
    return _join4((wq >> (8 * b)) & 3, (wq >> (8 * b + 2)) & 3, (wq >> (8 * b + 4)) & 3, (wq >> (8 * b + 6)) & 3)


@triton.jit
def _decode_tile(wq, BN: tl.constexpr, WB: tl.constexpr, FP8: tl.constexpr, UCODE: tl.constexpr = False,
                 JOIN: tl.constexpr = False):
    """Packed words ``[BN, WB]`` -> ternary tile ``[BN, 16·WB]`` in K order (int8, or fp8 e4m3 bits).

    Per code one shift, one AND, one subtract (or, for fp8, a byte lookup of the e4m3 bit pattern).
    ``UCODE`` (int8 only): the stored field ``code + 1`` in {0, 1, 2} itself, without the subtract; the
    caller then takes ``sum(x)`` off each output (``sum x·(f-1) = sum x·f - sum x``, exact in int32).
    A variant that built four codes per register from one 32-bit word with PTX (``pack=4``) was wrong on the
    GPU: Triton packs four register elements, not a word's four bytes (docs/kernels.md).  The four-per-register
    decode that works, ``SWAR`` (:func:`_swar_fields`), decodes every byte on its own.
    """
    BK: tl.constexpr = 16 * WB
    # value k % 16 = 4i + b of a word sits at bit 8b + 2i (kernels/packing.py)
    if JOIN:
        # each field from the [BN, WB] words by one shift and one AND, interleaved into K order by joins
        # (register-local), instead of a [BN, WB, 4, 4] broadcast of the words against a shift table
        f = tl.reshape(_join4(_fields_joined(wq, 0), _fields_joined(wq, 1), _fields_joined(wq, 2),
                              _fields_joined(wq, 3)), (BN, BK))
    else:
        shifts = tl.reshape(8 * tl.arange(0, 4)[None, :] + 2 * tl.arange(0, 4)[:, None], (1, 1, 4, 4))
        f = tl.reshape((tl.reshape(wq, (BN, WB, 1, 1)) >> shifts) & 3, (BN, BK))   # code + 1, K order
    if FP8:
        # e4m3 bit pattern of code f-1 in {-1, 0, 1}: 0xB8, 0x00, 0x38 (byte f of 0x3800B8)
        return ((0x3800B8 >> (f * 8)) & 0xFF).to(tl.uint8).to(tl.float8e4nv, bitcast=True)
    elif UCODE:
        return f.to(tl.int8)
    else:
        return (f - 1).to(tl.int8)


#: PTX of one field of four packed weight bytes: byte b of ``t`` is ``(byte b >> SH) & 3`` (``code + 1``)
_SWAR_FIELD = " shr.b32 {t}, $4, {sh};\n and.b32 {t}, {t}, 0x03030303;\n"
#: ... and its e4m3 bit pattern: f -> f·0x38 (0, 0x38, 0x70), then 0x70 -> 0x40 by an XOR of 0x30 where f = 2;
#: every byte stays below 0x100, so the 32-bit multiplies never carry into the next byte
_SWAR_E4M3 = (" shr.b32 {t}, $4, {sh};\n and.b32 {t}, {t}, 0x03030303;\n shr.b32 h, {t}, 1;\n"
              " and.b32 h, h, 0x01010101;\n mul.lo.u32 h, h, 0x30;\n mul.lo.u32 {t}, {t}, 0x38;\n"
              " xor.b32 {t}, {t}, h;\n")


def _swar_asm(fp8: bool) -> str:
    """The four fields into temporaries first, the outputs written last: an output may share its register with
    the input ``$4``, which every field reads."""
    form = _SWAR_E4M3 if fp8 else _SWAR_FIELD
    body = "".join(form.format(t=f"t{i}", sh=2 * i) for i in range(4))
    return ("{\n .reg .b32 t0, t1, t2, t3, h;\n" + body
            + "".join(f" mov.b32 ${i}, t{i};\n" for i in range(4)) + "}")


_SWAR_ASM_INT8 = tl.constexpr(_swar_asm(False))
_SWAR_ASM_FP8 = tl.constexpr(_swar_asm(True))


@triton.jit
def _swar_fields(wb, FP8: tl.constexpr, USE_ASM: tl.constexpr):
    """The four 2-bit fields of packed weight bytes ``wb`` (uint8), each as the stored ``code + 1`` in
    {0, 1, 2}: int8, or the e4m3 bit pattern of 0, 1, 2 (uint8).  On the GPU one PTX block on registers of
    four bytes (two instructions per field of four codes, seven for e4m3): every byte is decoded on its own,
    so which four bytes share a register does not matter.  The interpreter runs the same per byte."""
    if USE_ASM:
        if FP8:
            return tl.inline_asm_elementwise(_SWAR_ASM_FP8, "=r,=r,=r,=r,r", [wb],
                                             dtype=(tl.uint8, tl.uint8, tl.uint8, tl.uint8), is_pure=True, pack=4)
        else:
            return tl.inline_asm_elementwise(_SWAR_ASM_INT8, "=r,=r,=r,=r,r", [wb],
                                             dtype=(tl.int8, tl.int8, tl.int8, tl.int8), is_pure=True, pack=4)
    else:
        w = wb.to(tl.int32)
        return (_swar_field(w, 0, FP8), _swar_field(w, 1, FP8), _swar_field(w, 2, FP8), _swar_field(w, 3, FP8))


@triton.jit
def _swar_field(w, i: tl.constexpr, FP8: tl.constexpr):
    """Field ``i`` of each byte of ``w`` (int32 holding one byte each), as :func:`_swar_fields` gives it."""
    f = (w >> (2 * i)) & 3
    if FP8:
        return ((0x403800 >> (f * 8)) & 0xFF).to(tl.uint8)      # e4m3 bits of 0, 1, 2: byte f of 0x403800
    else:
        return f.to(tl.int8)


@triton.jit
def _swar_mma(x_row, mask_m, f, i: tl.constexpr, k0, K, acc, sxv, SWAP: tl.constexpr, FP8: tl.constexpr,
              IMPRECISE: tl.constexpr, BKB: tl.constexpr, EVEN_K: tl.constexpr):
    """acc += field ``i`` of a tile's weight bytes times the activations it multiplies: byte j of the tile
    holds the codes of k = k0 + 16·(j // 4) + 4·i + j % 4 in field i (kernels/packing.py), so the field meets
    the activation columns at those k, gathered by pointer, without reordering the decoded codes.  ``sxv``
    [BM, BKB] adds those activations element by element (reduced to each row's ``sum(x)`` once, at the end)."""
    jj = tl.arange(0, BKB)
    kk = k0 + 16 * (jj // 4) + 4 * i + jj % 4
    if EVEN_K:                  # every tile whole: the row mask alone
        a = tl.load(x_row + kk[None, :], mask=mask_m, other=0.0 if FP8 else 0)
    else:
        a = tl.load(x_row + kk[None, :], mask=mask_m & (kk[None, :] < K), other=0.0 if FP8 else 0)
    sxv += a.to(tl.float32) if FP8 else a.to(tl.int32)
    b = f.to(tl.float8e4nv, bitcast=True) if FP8 else f
    if SWAP:
        return _mma(b, tl.trans(a), acc, FP8, IMPRECISE), sxv
    else:
        return _mma(a, tl.trans(b), acc, FP8, IMPRECISE), sxv


@triton.jit
def _swar_tile_step(x_row, w_ptr, rn, mask_m, mask_n, k0, K, KW, stride_wn, acc, sxv, BK: tl.constexpr,
                    FP8: tl.constexpr, IMPRECISE: tl.constexpr, SWAP: tl.constexpr, USE_ASM: tl.constexpr,
                    EVEN_K: tl.constexpr):
    """One K tile of the ``SWAR`` decode: the tile's weight bytes, their four fields, four MMAs of a quarter
    of the tile's K each (the fields are ``code + 1``: the caller takes ``sum(x)`` off, from ``sxv``)."""
    BKB: tl.constexpr = BK // 4
    jb = tl.arange(0, BKB)
    wb_ptrs = w_ptr.to(tl.pointer_type(tl.uint8)) + rn[:, None].to(tl.int64) * (4 * stride_wn) + (k0 // 4 + jb)[None, :]
    if EVEN_K:
        wb = tl.load(wb_ptrs, mask=mask_n, other=0x55)
    else:
        wb = tl.load(wb_ptrs, mask=mask_n & ((k0 // 4 + jb)[None, :] < 4 * KW), other=0x55)
    f0, f1, f2, f3 = _swar_fields(wb, FP8, USE_ASM)
    acc, sxv = _swar_mma(x_row, mask_m, f0, 0, k0, K, acc, sxv, SWAP, FP8, IMPRECISE, BKB, EVEN_K)
    acc, sxv = _swar_mma(x_row, mask_m, f1, 1, k0, K, acc, sxv, SWAP, FP8, IMPRECISE, BKB, EVEN_K)
    acc, sxv = _swar_mma(x_row, mask_m, f2, 2, k0, K, acc, sxv, SWAP, FP8, IMPRECISE, BKB, EVEN_K)
    acc, sxv = _swar_mma(x_row, mask_m, f3, 3, k0, K, acc, sxv, SWAP, FP8, IMPRECISE, BKB, EVEN_K)
    return acc, sxv


@triton.jit
def _swar_loop(x_row, w_ptr, rn, mask_m, mask_n, k_lo, k_hi, K, KW, stride_wn, acc, BM: tl.constexpr,
               BK: tl.constexpr, FP8: tl.constexpr, IMPRECISE: tl.constexpr, SWAP: tl.constexpr,
               PROMOTE: tl.constexpr, USE_ASM: tl.constexpr, EVEN_K: tl.constexpr):
    """The K run [k_lo, k_hi) of one output tile with the ``SWAR`` decode; returns (acc, each row's sum(x))."""
    sxv = tl.zeros((BM, BK // 4), dtype=tl.float32 if FP8 else tl.int32)
    if PROMOTE > 1:
        for k1 in range(k_lo, k_hi, BK * PROMOTE):
            part = tl.zeros_like(acc)
            for k0 in range(k1, k1 + BK * PROMOTE, BK):
                part, sxv = _swar_tile_step(x_row, w_ptr, rn, mask_m, mask_n, k0, K, KW, stride_wn, part, sxv, BK,
                                            FP8, 0, SWAP, USE_ASM, EVEN_K)
            acc += part
    else:
        for k0 in range(k_lo, k_hi, BK):
            acc, sxv = _swar_tile_step(x_row, w_ptr, rn, mask_m, mask_n, k0, K, KW, stride_wn, acc, sxv, BK,
                                       FP8, IMPRECISE, SWAP, USE_ASM, EVEN_K)
    return acc, tl.sum(sxv, axis=1)


@triton.jit
def _gemm_tile_step(x_ptrs, w_ptrs, w_ptr, rn, rk, rw, mask_m, mask_n, k0, K, KW, stride_wn, acc, sx,
                    BN: tl.constexpr, WB: tl.constexpr, FP8: tl.constexpr, IMPRECISE: tl.constexpr,
                    SWAP: tl.constexpr, PACKED: tl.constexpr, UCODE: tl.constexpr, JOIN: tl.constexpr = False):
    """One K tile: load the activation tile and the packed weight tile, decode it, one MMA.  With
    ``UCODE`` the weight tile holds ``code + 1`` and ``sx [BM]`` gathers each row's ``sum(x)``."""
    a = tl.load(x_ptrs, mask=mask_m & ((k0 + rk)[None, :] < K), other=0.0 if FP8 else 0)
    if not PACKED:          # no decode: w holds the codes as an int8 / fp8 [N, K] matrix (timing study)
        b = tl.load(w_ptr + rn[:, None].to(tl.int64) * stride_wn + (k0 + rk)[None, :],
                    mask=mask_n & ((k0 + rk)[None, :] < K), other=0.0 if FP8 else 0)
    else:
        wq = tl.load(w_ptrs, mask=mask_n & ((k0 // 16 + rw)[None, :] < KW), other=0x55555555)
        b = _decode_tile(wq, BN, WB, FP8, UCODE, JOIN)
    if UCODE:
        sx += tl.sum(a.to(tl.int32), axis=1)
    if SWAP:
        return _mma(b, tl.trans(a), acc, FP8, IMPRECISE), sx
    else:
        return _mma(a, tl.trans(b), acc, FP8, IMPRECISE), sx


@triton.jit
def _w158_gemm_kernel(x_ptr, xs_ptr, w_ptr, ws_ptr, y_ptr, part_ptr, ticket_ptr, M, N, K, KW, ws_rows,
                      stride_xm, stride_wn, stride_ym,
                      BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GROUP_M: tl.constexpr,
                      FP8: tl.constexpr, IMPRECISE: tl.constexpr, SWAP: tl.constexpr, PACKED: tl.constexpr,
                      PROMOTE: tl.constexpr = 1, UCODE: tl.constexpr = False, SPLIT_K: tl.constexpr = 1,
                      JOIN: tl.constexpr = False, SWAR: tl.constexpr = False, USE_ASM: tl.constexpr = False,
                      EVEN_K: tl.constexpr = False):
    """Tensor-core GEMM.  FP8 with ``PROMOTE > 1``: the MMA accumulates ``PROMOTE`` K tiles in a
    tile-local accumulator (the tensor core's own reduced-precision sum, exact while the partial
    stays below 2^14: measured, docs/kernels.md), which is then added to the fp32 accumulator.
    ``UCODE`` (int8): the MMA multiplies the stored fields ``code + 1`` and each row's ``sum(x)`` is
    taken off the int32 accumulator at the end (one subtract per output instead of one per code).
    ``SPLIT_K > 1``: grid axis 1 splits K into that many runs of whole promotion steps; each program
    stores its partial sums and the last one of an output tile (an atomic ticket) adds them in split
    order and writes the tile (see :func:`_split_k_epilogue`).  ``JOIN``: the weight decode's other form
    (:func:`_decode_tile`), same codes.  ``SWAR``: the fields decoded four bytes per register, each meeting its
    own activation columns (:func:`_swar_tile_step`), with ``sum(x)`` taken off at the end as for ``UCODE``;
    ``EVEN_K`` (K a multiple of ``BK * PROMOTE``: every tile of every step whole) drops its K masks."""
    pid = tl.program_id(0)
    split = tl.program_id(1)
    num_m = tl.cdiv(M, BM)
    num_n = tl.cdiv(N, BN)
    in_group = GROUP_M * num_n
    first_m = (pid // in_group) * GROUP_M
    gsz = tl.minimum(num_m - first_m, GROUP_M)
    pid_m = first_m + (pid % in_group) % gsz
    pid_n = (pid % in_group) // gsz
    WB: tl.constexpr = BK // 16
    rm = pid_m * BM + tl.arange(0, BM)
    rn = pid_n * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    rw = tl.arange(0, WB)
    x_ptrs = x_ptr + rm[:, None].to(tl.int64) * stride_xm + rk[None, :]
    w_ptrs = w_ptr + rn[:, None].to(tl.int64) * stride_wn + rw[None, :]
    mask_m = rm[:, None] < M
    mask_n = rn[:, None] < N
    if SWAP:
        acc = tl.zeros((BN, BM), dtype=tl.float32 if FP8 else tl.int32)
    else:
        acc = tl.zeros((BM, BN), dtype=tl.float32 if FP8 else tl.int32)
    sx = tl.zeros((BM,), dtype=tl.int32)
    # this program's K run: whole steps of BK * PROMOTE values (all of K when SPLIT_K = 1)
    STEP: tl.constexpr = BK * PROMOTE
    per_split = tl.cdiv(tl.cdiv(KW * 16, STEP), SPLIT_K) * STEP
    k_lo = split * per_split
    k_hi = tl.minimum(k_lo + per_split, KW * 16)
    if SWAR:
        acc, sx = _swar_loop(x_ptr + rm[:, None].to(tl.int64) * stride_xm, w_ptr, rn, mask_m, mask_n, k_lo, k_hi,
                             K, KW, stride_wn, acc, BM, BK, FP8, IMPRECISE, SWAP, PROMOTE, USE_ASM, EVEN_K)
    elif PROMOTE > 1:
        for k1 in range(k_lo, k_hi, STEP):
            part = tl.zeros_like(acc)
            for k0 in range(k1, k1 + STEP, BK):
                part, sx = _gemm_tile_step(x_ptrs + k0, w_ptrs + k0 // 16, w_ptr, rn, rk, rw, mask_m, mask_n, k0, K,
                                           KW, stride_wn, part, sx, BN, WB, FP8, 0, SWAP, PACKED, False, JOIN)
            acc += part
    else:
        x_ptrs += k_lo
        w_ptrs += k_lo // 16
        for k0 in range(k_lo, k_hi, BK):
            acc, sx = _gemm_tile_step(x_ptrs, w_ptrs, w_ptr, rn, rk, rw, mask_m, mask_n, k0, K, KW, stride_wn, acc,
                                      sx, BN, WB, FP8, IMPRECISE, SWAP, PACKED, UCODE, JOIN)
            x_ptrs += BK
            w_ptrs += WB
    if UCODE or SWAR:           # FP8: integer sums below 2^24 (the launcher checks 8·K < 2^24), exact in fp32
        if SWAP:
            acc -= sx[None, :]
        else:
            acc -= sx[:, None]
    if SPLIT_K == 1:
        _epilogue_store(acc, xs_ptr, ws_ptr, y_ptr, rm, rn, M, N, ws_rows, stride_ym, SWAP)
    else:
        _split_k_epilogue(acc, pid, split, part_ptr, ticket_ptr, xs_ptr, ws_ptr, y_ptr, rm, rn, M, N, ws_rows,
                          stride_ym, SWAP, SPLIT_K)


@triton.jit
def _split_k_epilogue(acc, tile, split, part_ptr, ticket_ptr, xs_ptr, ws_ptr, y_ptr, rm, rn, M, N, ws_rows,
                      stride_ym, SWAP: tl.constexpr, SPLIT_K: tl.constexpr):
    """Store this split's partial tile; the last split of the tile to arrive (an atomic ticket) adds
    the ``SPLIT_K`` partials in split order, writes the output tile and resets the ticket.  The
    partials are integers (int32, or integer-valued fp32 below 2^24 on the FP8 path), so the sum is
    exact and the output bit-identical to the unsplit kernel's."""
    D0: tl.constexpr = acc.shape[0]
    D1: tl.constexpr = acc.shape[1]
    loc = tl.arange(0, D0)[:, None] * D1 + tl.arange(0, D1)[None, :]
    base = part_ptr + tile.to(tl.int64) * (SPLIT_K * D0 * D1)
    tl.store(base + split * (D0 * D1) + loc, acc)
    tl.debug_barrier()                                          # every thread's stores precede the ticket
    ticket = tl.atomic_add(ticket_ptr + tile, 1, sem="acq_rel")
    tl.debug_barrier()
    if ticket == SPLIT_K - 1:
        tot = tl.zeros_like(acc)
        for s in range(SPLIT_K):
            tot += tl.load(base + s * (D0 * D1) + loc, cache_modifier=".cg")
        _epilogue_store(tot, xs_ptr, ws_ptr, y_ptr, rm, rn, M, N, ws_rows, stride_ym, SWAP)
        tl.atomic_xchg(ticket_ptr + tile, 0, sem="relaxed")


# ----------------------------------------------------------------------------- decode GEMV
@triton.jit
def _row_input(src_ptr, offs, inb, up_ptr, GLU: tl.constexpr):
    """The fp32 activation the quantizer sees: ``x`` at ``src_ptr``, or (``GLU`` != 0) the GLU product of the
    gate at ``src_ptr`` and the up half at ``up_ptr`` (``kernels.arith.glu_product``)."""
    x = tl.load(src_ptr + offs, mask=inb, other=0.0).to(tl.float32)
    if GLU == 0:
        return x
    else:
        u = tl.load(up_ptr + offs, mask=inb, other=0.0).to(tl.float32)
        return glu_product(x, u, GLU)


@triton.jit
def normed_input(src_ptr, nw_ptr, offs, inb, up_ptr, r, NORM: tl.constexpr, HAS_NW: tl.constexpr,
                  GLU: tl.constexpr):
    """``div_rn(x, r) · w``: the normalised activation at ``offs`` (``x`` from :func:`_row_input`)."""
    y = _row_input(src_ptr, offs, inb, up_ptr, GLU)
    if NORM:
        y = tl.math.div_rn(y, r)
    if HAS_NW:
        y = y * tl.load(nw_ptr + offs, mask=inb, other=0.0).to(tl.float32)
    return y


@triton.jit
def row_norm_quant_params(src_ptr, nw_ptr, K, up_ptr, eps, KB16: tl.constexpr, NORM: tl.constexpr,
                           HAS_NW: tl.constexpr, GLU: tl.constexpr, QMODE: tl.constexpr):
    """RMSNorm divisor ``r`` and quantizer ``(inv, scale)`` of one row (the contract of
    ``rmsnorm_quant``: fp64 sums rounded once, ``sqrt_rn``, ``div_rn``, clamp at 1e-5)."""
    offs0 = tl.arange(0, KB16)
    r = 1.0
    if NORM:
        ss = tl.zeros((KB16,), tl.float64)
        for k0 in range(0, K, KB16):
            offs = k0 + offs0
            x64 = _row_input(src_ptr, offs, offs < K, up_ptr, GLU).to(tl.float64)
            ss += x64 * x64
        ms = (tl.sum(ss, axis=0) / K).to(tl.float32)
        r = tl.sqrt_rn(ms + eps)
    amax = tl.zeros((KB16,), tl.float32)
    asum = tl.zeros((KB16,), tl.float64)
    for k0 in range(0, K, KB16):
        offs = k0 + offs0
        inb = offs < K
        y = normed_input(src_ptr, nw_ptr, offs, inb, up_ptr, r, NORM, HAS_NW, GLU)
        if QMODE == 1:
            asum += tl.abs(y).to(tl.float64)
        else:
            amax = tl.maximum(amax, tl.abs(y))
    if QMODE == 1:
        stat = (tl.sum(asum, axis=0) / K).to(tl.float32)
    else:
        stat = tl.max(amax, axis=0)
    inv, scale = quant_params(stat, QMODE)
    return r, inv, scale


@triton.jit
def quantize_row(src_ptr, up_ptr, nw_ptr, q_ptr, qs_ptr, nzi_ptr, nnz_ptr, K, K_store, eps,
                 QB: tl.constexpr, CH: tl.constexpr, NORM: tl.constexpr, HAS_NW: tl.constexpr, GLU: tl.constexpr,
                 QMODE: tl.constexpr, OUT_FP8: tl.constexpr, WRITE_NZ: tl.constexpr):
    """One activation row quantized in chunks: (GLU product of the gate at ``src_ptr`` and the up half at
    ``up_ptr``,) RMSNorm and the INT8/INT4 quantizer; codes into ``q_ptr`` (int8, or fp8 e4m3 with ``OUT_FP8``;
    zero past ``K`` up to ``K_store``), the scale into ``qs_ptr`` and with ``WRITE_NZ`` the ascending non-zero
    indices and their count.  The statistics are :func:`row_norm_quant_params` in chunks of ``QB`` (element-wise
    accumulators, two reductions a row); the codes ``quant_codes(normed_input(...))`` in chunks of ``CH``."""
    r, inv, scale = row_norm_quant_params(src_ptr, nw_ptr, K, up_ptr, eps, QB, NORM, HAS_NW, GLU, QMODE)
    offs0 = tl.arange(0, CH)
    cnt = tl.zeros((), tl.int32)
    for k0 in range(0, K_store, CH):
        offs = k0 + offs0
        inb = offs < K
        y = normed_input(src_ptr, nw_ptr, offs, inb, up_ptr, r, NORM, HAS_NW, GLU)
        c = tl.where(inb, quant_codes(y, inv, QMODE), 0.0)
        if OUT_FP8:
            tl.store(q_ptr + offs, c.to(tl.float8e4nv), mask=offs < K_store)
        else:
            tl.store(q_ptr + offs, c.to(tl.int8), mask=offs < K_store)
        if WRITE_NZ:
            nz = (c != 0.0) & inb
            tl.store(nzi_ptr + cnt + tl.cumsum(nz.to(tl.int32), axis=0) - 1, offs, mask=nz)
            cnt += tl.sum(nz.to(tl.int32), axis=0)
    tl.store(qs_ptr, scale)
    if WRITE_NZ:
        tl.store(nnz_ptr, cnt)


@triton.jit
def _field_words(src_ptr, nw_ptr, xq_ptr, K, up_off, r, inv, w0, qw, i: tl.constexpr, KB: tl.constexpr,
                 NORM: tl.constexpr, HAS_NW: tl.constexpr, GLU: tl.constexpr, QMODE: tl.constexpr,
                 WRITE_Q: tl.constexpr):
    """int32 words ``[KB]`` of field ``i``: the 4 codes ``x[16(w0+w) + 4i + b]``, byte b, quantized here."""
    ww = tl.arange(0, KB)
    bb = tl.arange(0, 4)
    offs = 16 * (w0 + ww)[:, None] + 4 * i + bb[None, :]              # [KB, 4]
    inb = offs < K
    y = normed_input(src_ptr, nw_ptr, offs, inb, src_ptr + up_off, r, NORM, HAS_NW, GLU)
    c = tl.where(inb, quant_codes(y, inv, QMODE), 0.0).to(tl.int32)
    if WRITE_Q:
        tl.store(xq_ptr + offs, c.to(tl.int8), mask=inb & ((offs * 0 + qw) > 0))   # qw = 1: this program writes
    return tl.sum((c & 0xFF) << (8 * bb)[None, :], axis=1)               # disjoint bytes: sum == or


@triton.jit
def _gemv_chunk(wq, acc, sx, x_ptrs, src_ptr, nw_ptr, xq_ptr, w0, qw, M, K, K4, up_off, r, inv, m3, w3,
                BM: tl.constexpr, BN: tl.constexpr, KB: tl.constexpr, PRO: tl.constexpr, NORM: tl.constexpr,
                HAS_NW: tl.constexpr, GLU: tl.constexpr, QMODE: tl.constexpr, WRITE_Q: tl.constexpr,
                USE_ASM: tl.constexpr):
    """Accumulate one chunk of ``KB`` packed words per row: 4 fields x one dp4a each."""
    ones = tl.full((BM, 1, KB), 0x01010101, tl.int32)
    for i in tl.static_range(4):
        if PRO:
            xw = _field_words(src_ptr, nw_ptr, xq_ptr, K, up_off, r, inv, w0, qw, i, KB, NORM, HAS_NW, GLU,
                              QMODE, WRITE_Q)
            xi = xw[None, None, :]
        else:
            xi = tl.load(x_ptrs + 4 * w0 + i, mask=(m3 < M) & (4 * (w0 + w3) + i < K4), other=0)
        t = (wq >> (2 * i)) & 0x03030303                # 4 unsigned codes+1, one per byte
        acc = _dp4a(tl.broadcast_to(xi, (BM, BN, KB)), tl.broadcast_to(t, (BM, BN, KB)), acc, USE_ASM)
        sx = _dp4a(xi, ones, sx, USE_ASM)
    return acc, sx


@triton.jit
def _gemv_rows(wq0, x_ptr, src_ptr, nw_ptr, xq_ptr, qw, w_ptr, rn, row_ok, M, K, K4, KW, up_off, r, inv,
               stride_xm, stride_wn, BM: tl.constexpr, BN: tl.constexpr, KB: tl.constexpr, PRO: tl.constexpr,
               NORM: tl.constexpr, HAS_NW: tl.constexpr, GLU: tl.constexpr, QMODE: tl.constexpr,
               WRITE_Q: tl.constexpr, USE_ASM: tl.constexpr, NUM_STAGES: tl.constexpr,
               PRELOADED: tl.constexpr):
    """int32 ``sum_k x[m,k]·code[n,k]`` of the rows ``rn`` (``[BM, BN]``), over all of K.

    ``PRELOADED``: ``wq0`` already holds the first chunk of words (loaded before a PDL wait)."""
    rm = tl.arange(0, BM)
    m3 = rm[:, None, None]
    w3 = tl.arange(0, KB)[None, None, :]
    w_ptrs = _weight_ptrs(w_ptr, rn, stride_wn, BN, KB)
    ok3 = row_ok[None, :, None]
    x_ptrs = x_ptr + m3.to(tl.int64) * stride_xm + 4 * w3             # [BM, 1, KB] int32 words
    acc = tl.zeros((BM, BN, KB), dtype=tl.int32)
    sx = tl.zeros((BM, 1, KB), dtype=tl.int32)
    start = 0
    if PRELOADED:
        acc, sx = _gemv_chunk(wq0, acc, sx, x_ptrs, src_ptr, nw_ptr, xq_ptr, 0, qw, M, K, K4, up_off, r, inv, m3, w3,
                              BM, BN, KB, PRO, NORM, HAS_NW, GLU, QMODE, WRITE_Q, USE_ASM)
        start = KB
    for w0 in tl.range(start, KW, KB, num_stages=NUM_STAGES):
        wq = tl.load(w_ptrs + w0, mask=ok3 & (w0 + w3 < KW), other=0)
        acc, sx = _gemv_chunk(wq, acc, sx, x_ptrs, src_ptr, nw_ptr, xq_ptr, w0, qw, M, K, K4, up_off, r, inv, m3, w3,
                              BM, BN, KB, PRO, NORM, HAS_NW, GLU, QMODE, WRITE_Q, USE_ASM)
    return tl.sum(acc - sx, axis=2)                                      # [BM, BN]


@triton.jit
def _weight_ptrs(w_ptr, rn, stride_wn, BN: tl.constexpr, KB: tl.constexpr):
    """``[1, BN, KB]`` pointers to the first chunk of words of rows ``rn``."""
    n3 = rn[None, :, None]
    w3 = tl.arange(0, KB)[None, None, :]
    return w_ptr + n3.to(tl.int64) * stride_wn + w3


@triton.jit
def _gemv_program(x_ptr, xs_ptr, src_ptr, nw_ptr, res_ptr, w_ptr, ws_ptr, y_ptr, xq_ptr, xqs_ptr,
                  M, N, K, K4, KW, ws_rows, up_off, stride_xm, stride_wn, stride_ym, eps,
                  BM: tl.constexpr, BN: tl.constexpr, KB: tl.constexpr, PRO: tl.constexpr,
                  NORM: tl.constexpr, HAS_NW: tl.constexpr, GLU: tl.constexpr, QMODE: tl.constexpr,
                  RES: tl.constexpr, GATE_FIRST: tl.constexpr, WRITE_Q: tl.constexpr,
                  USE_ASM: tl.constexpr, PDL: tl.constexpr, PREFETCH: tl.constexpr,
                  NUM_STAGES: tl.constexpr):
    """One program of the decode GEMV: output rows ``[pn·BN, +BN)`` over the whole K.

    The body of :func:`_w158_gemv_kernel` (``PRO = 0``: int8 codes ``x``, read as int32 words, and
    ``x_scale`` given) and of :func:`_w158_gemv_fused_kernel` (``PRO = 1``, M = 1: the row ``src``
    (fp16/bf16/fp32; with ``GLU``, gate then up at ``up_off``) is normalised and quantized here, by
    every program (``row_norm_quant_params``: two passes over the row for the statistics, a third
    inside the K loop for the codes); program 0 also writes the codes and scale when ``WRITE_Q``).
    ``RES``: ``y = fp16(fp16(o) + res)`` (the residual add, rounded as torch rounds it).
    ``GATE_FIRST`` (fused gate/up, gate rows ``[0, N)``, up rows ``[N, 2N)``): the up rows whose
    gate output is <= 0 (so ReLU² is 0) are neither read nor computed and are written as 0.
    ``PREFETCH``: the first chunk of weight words is loaded first, so the prologue's arithmetic and
    the PDL wait overlap its latency.  ``PDL``: wait for the previous kernel of the stream
    (programmatic dependent launch) before reading the activation.
    """
    pn = tl.program_id(0)
    wq0 = tl.zeros((1, BN, KB), tl.int32)
    if PREFETCH:        # the first chunk: fetch it first (before the PDL wait and the prologue's arithmetic)
        wq0 = gemv_prefetch(w_ptr, pn, N, KW, stride_wn, BN, KB)
    if PDL:
        tl.extra.cuda.gdc_wait()                    # the previous kernel's outputs are visible from here
        tl.extra.cuda.gdc_launch_dependents()       # the next kernel may start its own prefetch
    r, inv, xs = gemv_prologue(src_ptr, nw_ptr, xs_ptr, M, K, up_off, eps, BM, KB, PRO, NORM, HAS_NW, GLU, QMODE)
    if PRO and WRITE_Q:
        if pn == 0:
            tl.store(xqs_ptr, tl.max(xs, axis=0))
    gemv_tile(pn, wq0, r, inv, xs, x_ptr, src_ptr, nw_ptr, res_ptr, w_ptr, ws_ptr, y_ptr, xq_ptr,
              M, N, K, K4, KW, ws_rows, up_off, stride_xm, stride_wn, stride_ym,
              BM, BN, KB, PRO, NORM, HAS_NW, GLU, QMODE, RES, GATE_FIRST, WRITE_Q, USE_ASM, NUM_STAGES, PREFETCH)


@triton.jit
def gemv_prefetch(w_ptr, pn, N, KW, stride_wn, BN: tl.constexpr, KB: tl.constexpr):
    """The first chunk of packed words ``[1, BN, KB]`` of output tile ``pn`` (weights do not depend
    on the activation, so this load may be issued before waiting for it)."""
    rn = pn * BN + tl.arange(0, BN)
    w3 = tl.arange(0, KB)[None, None, :]
    return tl.load(_weight_ptrs(w_ptr, rn, stride_wn, BN, KB), mask=(rn < N)[None, :, None] & (w3 < KW), other=0)


@triton.jit
def gemv_prologue(src_ptr, nw_ptr, xs_ptr, M, K, up_off, eps, BM: tl.constexpr, KB: tl.constexpr,
                  PRO: tl.constexpr, NORM: tl.constexpr, HAS_NW: tl.constexpr, GLU: tl.constexpr,
                  QMODE: tl.constexpr):
    """``(r, inv, x_scale [BM])`` of the GEMV's activation: from the float row's statistics (``PRO``,
    M = 1) or the given scales (``r``, ``inv`` then unused)."""
    rm = tl.arange(0, BM)
    r = 1.0
    inv = 1.0
    if PRO:
        r, inv, xscale = row_norm_quant_params(src_ptr, nw_ptr, K, src_ptr + up_off, eps, 16 * KB, NORM, HAS_NW,
                                                GLU, QMODE)
        xs = tl.full((BM,), 1.0, tl.float32) * xscale
    else:
        xs = tl.load(xs_ptr + rm, mask=rm < M, other=0.0)
    return r, inv, xs


@triton.jit
def gemv_tile(pn, wq0, r, inv, xs, x_ptr, src_ptr, nw_ptr, res_ptr, w_ptr, ws_ptr, y_ptr, xq_ptr,
              M, N, K, K4, KW, ws_rows, up_off, stride_xm, stride_wn, stride_ym,
              BM: tl.constexpr, BN: tl.constexpr, KB: tl.constexpr, PRO: tl.constexpr,
              NORM: tl.constexpr, HAS_NW: tl.constexpr, GLU: tl.constexpr, QMODE: tl.constexpr,
              RES: tl.constexpr, GATE_FIRST: tl.constexpr, WRITE_Q: tl.constexpr,
              USE_ASM: tl.constexpr, NUM_STAGES: tl.constexpr, PRELOADED: tl.constexpr):
    """Output rows ``[pn·BN, +BN)`` of the decode GEMV over the whole K, with its epilogues
    (``r, inv, xs`` from :func:`gemv_prologue`; ``wq0`` from :func:`gemv_prefetch` when ``PRELOADED``)."""
    pn = tl.cast(pn, tl.int32)                 # a loop counter (persistent block) or a program id
    rn = pn * BN + tl.arange(0, BN)
    rm = tl.arange(0, BM)
    part = _gemv_rows(wq0, x_ptr, src_ptr, nw_ptr, xq_ptr, (pn == 0).to(tl.int32), w_ptr, rn, rn < N, M, K, K4, KW,
                      up_off, r, inv, stride_xm, stride_wn, BM, BN, KB, PRO, NORM, HAS_NW, GLU, QMODE, WRITE_Q,
                      USE_ASM, NUM_STAGES, PRELOADED)
    out_ty = y_ptr.dtype.element_ty
    ws = tl.load(ws_ptr + rn // ws_rows, mask=rn < N, other=0.0)
    y = cast_out((part.to(tl.float32) * xs[:, None]) * ws[None, :], out_ty)       # [BM, BN]
    msk = (rm[:, None] < M) & (rn[None, :] < N)
    if RES:
        res = tl.load(res_ptr + rm[:, None].to(tl.int64) * stride_ym + rn[None, :], mask=msk, other=0.0)
        y = (y.to(tl.float32) + res.to(tl.float32)).to(out_ty)
    tl.store(y_ptr + rm[:, None].to(tl.int64) * stride_ym + rn[None, :], y, mask=msk)
    if GATE_FIRST:                  # up rows N + rn, only where the gate output is > 0
        live = tl.max(y.to(tl.float32), axis=0) > 0.0                  # BM == 1
        part_u = _gemv_rows(wq0, x_ptr, src_ptr, nw_ptr, xq_ptr, (pn < 0).to(tl.int32), w_ptr, rn + N,
                            live & (rn < N), M, K, K4, KW, up_off, r, inv, stride_xm, stride_wn, BM, BN, KB, PRO,
                            NORM, HAS_NW, GLU, QMODE,
                            False, USE_ASM, NUM_STAGES, False)
        ws_u = tl.load(ws_ptr + (rn + N) // ws_rows, mask=rn < N, other=0.0)
        yu = cast_out((part_u.to(tl.float32) * xs[:, None]) * ws_u[None, :], out_ty)
        yu = tl.where(live[None, :], yu, 0.0).to(out_ty)
        tl.store(y_ptr + rm[:, None].to(tl.int64) * stride_ym + N + rn[None, :], yu, mask=msk)


@triton.jit
def _w158_gemv_kernel(x_ptr, xs_ptr, w_ptr, ws_ptr, res_ptr, y_ptr,
                      M, N, K4, KW, ws_rows,
                      stride_xm, stride_wn, stride_ym,
                      BM: tl.constexpr, BN: tl.constexpr, KB: tl.constexpr, RES: tl.constexpr,
                      GATE_FIRST: tl.constexpr, USE_ASM: tl.constexpr, PDL: tl.constexpr,
                      NUM_STAGES: tl.constexpr):
    """Decode GEMV on given int8 codes ``x [M, 4·K4]`` (int32 words) and scales ``x_scale [M]``."""
    _gemv_program(x_ptr, xs_ptr, x_ptr, x_ptr, res_ptr, w_ptr, ws_ptr, y_ptr, x_ptr, xs_ptr,
                  M, N, 4 * K4, K4, KW, ws_rows, 0, stride_xm, stride_wn, stride_ym, 1e-5,
                  BM, BN, KB, False, False, False, 0, 0, RES, GATE_FIRST, False, USE_ASM, PDL, PDL, NUM_STAGES)


@triton.jit
def _w158_gemv_fused_kernel(src_ptr, nw_ptr, w_ptr, ws_ptr, res_ptr, y_ptr, xq_ptr, xqs_ptr,
                            N, K, KW, ws_rows, up_off,
                            stride_wn, eps,
                            BN: tl.constexpr, KB: tl.constexpr, NORM: tl.constexpr, HAS_NW: tl.constexpr,
                            GLU: tl.constexpr, QMODE: tl.constexpr, RES: tl.constexpr, GATE_FIRST: tl.constexpr,
                            WRITE_Q: tl.constexpr, USE_ASM: tl.constexpr, PDL: tl.constexpr,
                            NUM_STAGES: tl.constexpr):
    """Decode GEMV of one float row with its RMSNorm, GLU product and quantizer in the prologue."""
    _gemv_program(src_ptr, xqs_ptr, src_ptr, nw_ptr, res_ptr, w_ptr, ws_ptr, y_ptr, xq_ptr, xqs_ptr,
                  1, N, K, K // 4, KW, ws_rows, up_off, 0, stride_wn, 0, eps,
                  1, BN, KB, True, NORM, HAS_NW, GLU, QMODE, RES, GATE_FIRST, WRITE_Q, USE_ASM, PDL, PDL,
                  NUM_STAGES)


# ----------------------------------------------------------------------------- launchers
def gemm_config(M: int, fp8: bool) -> dict:
    """Tile sizes by M (hand-picked; a measured winner per shape comes from a ConfigTable).  M > 256:
    the tile measured fastest on the H200 (2026-12-01 sweep) (it spills a little)."""
    if M <= 16:
        return dict(BM=16, BN=64, BK=256, GROUP_M=8, SWAP=False, num_warps=4, num_stages=4)
    if M <= 64:
        return dict(BM=64, BN=64, BK=256, GROUP_M=8, SWAP=False, num_warps=4, num_stages=4)
    if M <= 256:
        return dict(BM=64, BN=128, BK=128, GROUP_M=8, SWAP=False, num_warps=4, num_stages=4)
    return dict(BM=256, BN=128, BK=128, GROUP_M=8, SWAP=False, num_warps=8, num_stages=3)


def gemv_config(M: int, K: int) -> dict:
    """16 rows per program, K in chunks of up to 128 words (2048 values), 4 warps, the K loop
    pipelined 3 deep: the fastest of the H200 sweep (2026-12-01) on every 7B shape.  A batch of
    ``M`` rows shrinks the chunk so that the ``M x BN x KB`` accumulator stays within
    :data:`GEMV_ACC_BUDGET` (at least 8 words, 128 values, per chunk)."""
    kb = min(128, next_pow2(padded_len(K) // 16), max(8, GEMV_ACC_BUDGET // (16 * next_pow2(M))))
    return dict(BN=16, KB=kb, num_warps=4, num_stages=3)


def gemv_key(M: int, N: int, K: int) -> dict:
    """Shape key of a GEMV's tuned tile: ``(N, K)`` for a decode row (M <= GEMV_MAX_M, the tiles measured
    at M = 1), with the batch bucket of :func:`kernels.configs.gemv_m_bucket` above it (a larger batch
    needs a smaller chunk)."""
    return dict(N=N, K=K) if M <= GEMV_MAX_M else dict(M=gemv_m_bucket(M), N=N, K=K)


def gemm_key(M: int, N: int, K: int, fp8: bool) -> dict:
    """Shape key of a tensor-core GEMM's tuned tile: the batch bucket of :func:`kernels.configs.gemm_m_bucket`,
    the weight shape and the activation codes' format."""
    return dict(M=gemm_m_bucket(M), N=N, K=K, prec="fp8" if fp8 else "int8")


def launch_path(path: str, M: int, fp8: bool) -> str:
    """The kernel :func:`w158_matmul` runs for ``path``: "auto" is the CUDA-core GEMV for int8 codes and
    M <= GEMV_MAX_M, the tensor-core GEMM otherwise; "gemv" and "gemm" are themselves."""
    if path == "auto":
        return "gemv" if (M <= GEMV_MAX_M and not fp8) else "gemm"
    return path


def check_packed_layer(N: int, packed: torch.Tensor, name: str, shape_of, layout: str,
                       out_dtype: torch.dtype) -> None:
    """Checks shared by the dense and the sparse launcher: ``N`` a positive int, ``packed.shape ==
    shape_of(N)`` (``layout`` says why, in the message), ``out_dtype`` known."""
    if isinstance(N, bool) or not isinstance(N, int) or N <= 0:
        raise ValueError(f"N must be a positive int, got {N!r}")
    if tuple(packed.shape) != tuple(shape_of(N)):
        raise ValueError(f"{name} must have shape {tuple(shape_of(N))} {layout}, got {tuple(packed.shape)}")
    if out_dtype not in OUT_DTYPES:
        raise TypeError(f"out_dtype must be one of {OUT_DTYPES}, got {out_dtype}")


def check_packed_ternary(packed: torch.Tensor, cols: int, name: str) -> None:
    """Content check of packed ternary words ``[R, padded_len(cols)/16]``.

    Every 2-bit field must hold 0, 1 or 2 (code + 1; 3 is no ternary code), and every padding field
    past ``cols`` must hold 1 (code 0): a matrix packed for a longer packed axis inside the same
    128-wide pad group would otherwise be cut short silently.
    """
    if not content_checks_enabled():
        return
    w = packed.to(torch.int64) & 0xFFFFFFFF
    if bool(((w & (w >> 1)) & 0x55555555).any()):
        raise ValueError(f"{name} holds the invalid packed field value 3 (fields hold code+1 in 0..2)")
    pad = padded_len(cols) - cols
    if pad:
        first_word = cols // 16
        k = torch.arange(first_word * 16, padded_len(cols), device=packed.device)
        shift = 8 * (k % 4) + 2 * ((k % 16) // 4)                       # kernels/packing.py layout
        fields = (w[:, (k // 16)] >> shift) & 3                          # [R, fields from the last words]
        tail = fields[:, k >= cols]
        if bool((tail != 1).any()):
            raise ValueError(f"{name} holds non-zero codes in its padding past {cols} values: it was packed "
                             f"for a longer axis than {cols} (same {PACK_GROUP}-wide pad group)")


#: most sub-matrices one fused matrix holds (fused QKV: 3, fused gate/up: 2); more scales than this
#: is a per-row (or per-group) scale, which the ternary arithmetic (one absmean per matrix) does not define
MAX_SUBMATRICES = 8


def _check_w_scale(w_scale: torch.Tensor, N: int) -> int:
    """``w_scale`` holds 1 value, or S values for S equal sub-matrices; returns rows per scale."""
    S = w_scale.numel()
    if w_scale.dim() > 1 or S < 1 or S > MAX_SUBMATRICES or N % S:
        raise ValueError(f"w_scale must be a scalar or 1-D tensor of 1 value per matrix or one per equal "
                         f"sub-matrix (at most {MAX_SUBMATRICES}, N={N} divisible by their count), got shape "
                         f"{tuple(w_scale.shape)}")
    return N // S


def _check_int4_in_fp8(x: torch.Tensor) -> None:
    """Content check: FP8 activations must hold INT4 codes (integers in [-8, 7]), the only values
    for which the FP8 path's integer sums are exact."""
    if not content_checks_enabled():
        return
    xf = x.float()
    if not bool(((xf == torch.round(xf)) & (xf >= -8) & (xf <= 7)).all()):
        raise ValueError("x in float8_e4m3fn must hold INT4 codes (integers in [-8, 7]); other values would "
                         "not be summed exactly")


def _check_operands(x, x_scale, w_packed, w_scale, N, out_dtype):
    check_tensor(x, "x", (torch.int8, torch.float8_e4m3fn), dim=2)
    check_device_usable(x, "x")
    dev = x.device
    check_tensor(x_scale, "x_scale", (torch.float32,), device=dev)
    check_tensor(w_packed, "w_packed", (torch.int32,), dim=2, device=dev)
    check_tensor(w_scale, "w_scale", (torch.float32,), device=dev)
    M, Kx = x.shape
    if tuple(x_scale.shape) not in ((M, 1), (M,)):
        raise ValueError(f"x_scale must have shape ({M}, 1), got {tuple(x_scale.shape)}")
    check_packed_layer(N, w_packed, "w_packed", lambda n: (n, padded_len(Kx) // 16),
                       f"for K={Kx} (K padded to a multiple of {PACK_GROUP}, 16 values per word)", out_dtype)
    ws_rows = _check_w_scale(w_scale, N)
    check_packed_ternary(w_packed, Kx, "w_packed")
    for name, t in (("x", x), ("x_scale", x_scale), ("w_scale", w_scale)):
        check_finite(t, name)
    if x.dtype == torch.float8_e4m3fn:
        _check_int4_in_fp8(x)
    return M, Kx, ws_rows


def _gemv_launch(cfg: dict, M: int, N: int, K: int, pdl: bool) -> tuple:
    grid = (triton.cdiv(N, cfg["BN"]),)
    opts = dict(num_warps=cfg["num_warps"])
    if pdl:
        opts["launch_pdl"] = True
    return grid, opts


def w158_matmul(x: torch.Tensor, x_scale: torch.Tensor, w_packed: torch.Tensor, w_scale: torch.Tensor,
                N: int, out_dtype: torch.dtype = torch.float16, *, path: str = "auto",
                imprecise_acc: int | None = None, config: dict | None = None,
                tuned: ConfigTable = NO_TUNING, pdl: bool = False,
                residual: torch.Tensor | None = None, gate_first: bool = False) -> torch.Tensor:
    """Ternary-weight linear layer on quantized activations, ``[M, K] -> [M, N]``.

    ``path``: "auto" (GEMV for int8 codes and M <= GEMV_MAX_M, else GEMM), "gemv" (int8 codes,
    M <= GEMV_PATH_MAX_M) or "gemm".
    For FP8 activations ``imprecise_acc`` is Triton's ``max_num_imprecise_acc``: K elements per
    promotion of the tensor-core partial sum into the fp32 accumulator.  ``None`` (default)
    promotes once per K tile (``BK``), which keeps every unpromoted partial below 8*BK; a value
    larger than ``BK`` never promotes (Triton's default on Hopper; only for the exactness study).
    ``config`` overrides the tile config (keys: ``kernels.configs.CONFIG_RULES``), ``tuned`` is a
    table of measured winners per shape; ``pdl`` launches the GEMV with programmatic dependent
    launch (CUDA only).  ``residual [M, N]`` (GEMV path): returns ``fp16(fp16(y) + residual)``.
    ``gate_first`` (GEMV path, M = 1, fused gate/up matrix with the gate rows first): the up rows
    whose gate output is <= 0 are skipped and written as 0 (a4.8 gate-first rule, docs/decisions.md 7).
    """
    M, K, ws_rows = _check_operands(x, x_scale, w_packed, w_scale, N, out_dtype)
    if path not in ("auto", "gemv", "gemm"):
        raise ValueError(f"path must be 'auto', 'gemv' or 'gemm', got {path!r}")
    fp8 = x.dtype == torch.float8_e4m3fn
    path = launch_path(path, M, fp8)
    if path == "gemv" and (fp8 or M > GEMV_PATH_MAX_M):
        raise ValueError(f"the GEMV path takes int8 codes and M <= {GEMV_PATH_MAX_M}")
    if gate_first and (path != "gemv" or M != 1 or N % 2 or residual is not None):
        raise ValueError("gate_first needs the GEMV path, M = 1, an even N (gate rows then up rows), no residual")
    if residual is not None:
        if path != "gemv":
            raise ValueError("residual is supported on the GEMV path only")
        check_tensor(residual, "residual", (out_dtype,), dim=2, device=x.device)
        check_shape(residual, "residual", (M, N))
        check_finite(residual, "residual")
    if fp8 and 8 * K >= 2 ** 24:
        raise ValueError(f"K={K} too large for the exact FP8 path (needs 8*K < 2**24: integer sums in fp32)")
    KW = padded_len(K) // 16
    y = torch.empty(M, N, device=x.device, dtype=out_dtype)
    if path == "gemv":
        xw = x if K % 4 == 0 else torch.nn.functional.pad(x, (0, 4 - K % 4))
        K4 = xw.shape[1] // 4
        xw = xw.view(torch.int32)
        cfg = resolve_config("gemv", gemv_config(M, K), tuned, gemv_key(M, N, K), config)
        Nk = N // 2 if gate_first else N
        grid, opts = _gemv_launch(cfg, M, Nk, K, pdl and x.device.type == "cuda")
        _w158_gemv_kernel[grid](
            x_ptr=xw, xs_ptr=x_scale, w_ptr=w_packed, ws_ptr=w_scale,
            res_ptr=residual if residual is not None else y, y_ptr=y,
            M=M, N=Nk, K4=K4, KW=KW, ws_rows=ws_rows,
            stride_xm=xw.stride(0), stride_wn=w_packed.stride(0), stride_ym=y.stride(0),
            BM=next_pow2(M), BN=cfg["BN"], KB=cfg["KB"], RES=residual is not None, GATE_FIRST=gate_first,
            USE_ASM=x.device.type == "cuda", PDL=bool(opts.get("launch_pdl")), NUM_STAGES=cfg["num_stages"],
            **opts)
        return y
    default = gemm_config(M, fp8)
    cfg = resolve_config("gemm", default, tuned, gemm_key(M, N, K, fp8), config)
    if cfg["BK"] < 16:
        raise ValueError(f"gemm config BK must be a multiple of 16, got {cfg['BK']}")
    if fp8 and cfg.get("UCODE"):
        raise ValueError("gemm config UCODE (unsigned weight fields) is for int8 codes only; FP8 codes got it")
    _check_swar(cfg)
    # a SWAR step is four MMAs of BK / 4, each promoting on its own
    imprecise, promote = _promotion(imprecise_acc, cfg["BK"], fp8, mma_k=cfg["BK"] // 4 if cfg.get("SWAR") else None)
    grid, work = _gemm_launch(cfg, M, N, fp8, x.device)
    _w158_gemm_kernel[grid](
        x_ptr=x, xs_ptr=x_scale, w_ptr=w_packed, ws_ptr=w_scale, y_ptr=y, **work,
        M=M, N=N, K=K, KW=KW, ws_rows=ws_rows,
        stride_xm=x.stride(0), stride_wn=w_packed.stride(0), stride_ym=y.stride(0),
        FP8=fp8, IMPRECISE=imprecise, PROMOTE=promote, PACKED=True, USE_ASM=x.device.type == "cuda",
        EVEN_K=K % (cfg["BK"] * promote) == 0, **cfg)
    return y


#: the smallest K tile of the ``SWAR`` decode: each of its four MMAs takes a quarter of the tile, at least 32
SWAR_MIN_BK = 128


def _check_swar(cfg: dict) -> None:
    """A ``SWAR`` config: K tiles of at least :data:`SWAR_MIN_BK`, no ``JOIN`` or ``UCODE`` beside it (it has its
    own decode and takes ``sum(x)`` off itself), and at least four weight bytes per thread (the PTX decodes
    registers of four)."""
    if not cfg.get("SWAR"):
        return
    if cfg["BK"] < SWAR_MIN_BK:
        raise ValueError(f"gemm config SWAR needs BK >= {SWAR_MIN_BK} (four MMAs of BK/4), got BK={cfg['BK']}")
    if cfg.get("JOIN") or cfg.get("UCODE"):
        raise ValueError("gemm config SWAR has its own decode and sum(x) correction: drop JOIN and UCODE")
    if cfg["BN"] * cfg["BK"] // 4 < 4 * 32 * cfg["num_warps"]:
        raise ValueError(f"gemm config SWAR needs BN*BK/4 >= 4*32*num_warps weight bytes (four per thread), got "
                         f"BN={cfg['BN']} BK={cfg['BK']} num_warps={cfg['num_warps']}")


def _gemm_launch(cfg: dict, M: int, N: int, fp8: bool, device: torch.device) -> tuple[tuple, dict]:
    """Grid (output tiles x ``SPLIT_K``) and the split-K buffers: one partial tile per program (written
    before it is read, never cleared) and one self-resetting ticket per output tile."""
    tiles = triton.cdiv(M, cfg["BM"]) * triton.cdiv(N, cfg["BN"])
    split = cfg.get("SPLIT_K", 1)
    if split == 1:
        return (tiles, 1), dict(part_ptr=None, ticket_ptr=None)
    parts = torch.empty(tiles * split * cfg["BM"] * cfg["BN"], device=device,
                        dtype=torch.float32 if fp8 else torch.int32)
    return (tiles, split), dict(part_ptr=parts, ticket_ptr=ticket_counters(device, tiles, "w158_gemm"))


#: K elements per FP8 promotion by default: partial sums stay below 8·512 = 4096, far under the
#: 2^14 up to which the unpromoted tensor-core sum was measured exact (docs/kernels.md)
FP8_PROMOTE_K = 512
#: the largest promotion interval accepted: 8·2048 = 2^14, the measured limit
FP8_PROMOTE_MAX = 2048


def _promotion(imprecise_acc: int | None, BK: int, fp8: bool, mma_k: int | None = None) -> tuple[int, int]:
    """``(IMPRECISE, PROMOTE)`` kernel constants for ``imprecise_acc`` K elements per promotion.

    ``<= BK``: Triton's ``max_num_imprecise_acc`` inside each tile's MMA, at most ``mma_k`` when a tile's step
    runs several MMAs of that depth (each promotes its own sum: more often than asked, still exact).  A multiple
    of BK up to ``FP8_PROMOTE_MAX``: a tile-local accumulator over ``imprecise_acc / BK`` tiles, then an fp32
    add.  Larger (only for the exactness study): never promoted.
    """
    if imprecise_acc is None:
        imprecise_acc = max(BK, FP8_PROMOTE_K) if BK <= FP8_PROMOTE_K and FP8_PROMOTE_K % BK == 0 else BK
    if isinstance(imprecise_acc, bool) or not isinstance(imprecise_acc, int) or imprecise_acc <= 0:
        raise ValueError(f"imprecise_acc must be a positive int or None, got {imprecise_acc!r}")
    if not fp8:
        return 0, 1
    if imprecise_acc <= BK:
        return min(imprecise_acc, mma_k or BK), 1
    if imprecise_acc <= FP8_PROMOTE_MAX:
        if imprecise_acc % BK:
            raise ValueError(f"imprecise_acc={imprecise_acc} must be <= BK={BK} or a multiple of it")
        return 0, imprecise_acc // BK
    return 0, 1


def w158_gemv_fused(x: torch.Tensor, w_packed: torch.Tensor, w_scale: torch.Tensor, N: int, *,
                    mode: str = "int8", norm_weight: torch.Tensor | None = None, norm: bool = True,
                    glu: str | None = None, residual: torch.Tensor | None = None, gate_first: bool = False,
                    eps: float = 1e-5, out_dtype: torch.dtype = torch.float16, config: dict | None = None,
                    tuned: ConfigTable = NO_TUNING, pdl: bool = False, return_codes: bool = False):
    """Decode step of one linear layer in one launch: RMSNorm + quantizer + ternary GEMV.

    ``x [1, K]`` float row (with ``glu``: ``[1, 2K]``, gate then up; the quantizer sees
    ``silu(gate)·up`` or ``up·relu(gate)²``).  ``mode`` "int8" (absmax) or "int4" (absmean, √7).
    The codes are those of ``rmsnorm_quant(x, mode, norm_weight, norm=norm, gate=...)``
    (same arithmetic; checked in the tests).  ``residual [1, N]``: returns ``residual + y``.
    ``gate_first``: the matrix is a fused gate/up (``N = 2·d_ffn``, gate rows first); up rows
    whose gate output is <= 0 are skipped and written as 0 (a4.8 gate-first rule, docs/decisions.md 7).
    ``return_codes``: also returns the activation codes ``[1, K]`` int8 and scale ``[1, 1]``.
    """
    check_tensor(x, "x", FLOAT_DTYPES, dim=2)
    check_device_usable(x, "x")
    dev = x.device
    if x.shape[0] != 1:
        raise ValueError(f"w158_gemv_fused is a decode kernel (one token): x must be [1, K], got {tuple(x.shape)}")
    qmode = quant_mode(mode, ("int8", "int4"))
    glu_code = glu_mode(glu)
    if not (isinstance(eps, float) and eps > 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a positive finite float, got {eps!r}")
    Kin = x.shape[1]
    if glu is not None and Kin % 2:
        raise ValueError(f"with glu, x must hold gate then up ([1, 2K]), got an odd width {Kin}")
    K = Kin // 2 if glu is not None else Kin
    check_tensor(w_packed, "w_packed", (torch.int32,), dim=2, device=dev)
    check_tensor(w_scale, "w_scale", (torch.float32,), device=dev)
    check_packed_layer(N, w_packed, "w_packed", lambda n: (n, padded_len(K) // 16),
                       f"for K={K} (K padded to a multiple of {PACK_GROUP}, 16 values per word)", out_dtype)
    ws_rows = _check_w_scale(w_scale, N)
    check_packed_ternary(w_packed, K, "w_packed")
    if gate_first and N % 2:
        raise ValueError(f"gate_first needs gate rows then up rows (N even), got N={N}")
    if norm_weight is not None:
        if not norm:
            raise ValueError("norm_weight given but norm=False")
        check_tensor(norm_weight, "norm_weight", FLOAT_DTYPES, dim=1, device=dev)
        check_shape(norm_weight, "norm_weight", (K,))
    if residual is not None:
        check_tensor(residual, "residual", (out_dtype,), dim=2, device=dev)
        check_shape(residual, "residual", (1, N))
        if gate_first:
            raise ValueError("residual and gate_first do not combine (gate/up has no residual)")
    for name, t in (("x", x), ("norm_weight", norm_weight), ("w_scale", w_scale), ("residual", residual)):
        if t is not None:
            check_finite(t, name)
    cfg = resolve_config("gemv", gemv_config(1, K), tuned, gemv_key(1, N, K), config)   # the GEMV's tile table
    Nk = N // 2 if gate_first else N
    y = torch.empty(1, N, device=dev, dtype=out_dtype)
    xq = torch.empty(1, K, device=dev, dtype=torch.int8) if return_codes else y
    xqs = torch.empty(1, 1, device=dev, dtype=torch.float32) if return_codes else w_scale
    grid, opts = _gemv_launch(cfg, 1, Nk, K, pdl and dev.type == "cuda")
    KW = padded_len(K) // 16
    _w158_gemv_fused_kernel[grid](
        src_ptr=x, nw_ptr=norm_weight if norm_weight is not None else x, w_ptr=w_packed, ws_ptr=w_scale,
        res_ptr=residual if residual is not None else y, y_ptr=y, xq_ptr=xq, xqs_ptr=xqs,
        N=Nk, K=K, KW=KW, ws_rows=ws_rows, up_off=K,
        stride_wn=w_packed.stride(0), eps=eps,
        BN=cfg["BN"], KB=cfg["KB"], NORM=norm, HAS_NW=norm_weight is not None, GLU=glu_code, QMODE=qmode,
        RES=residual is not None, GATE_FIRST=gate_first, WRITE_Q=return_codes, USE_ASM=dev.type == "cuda",
        PDL=bool(opts.get("launch_pdl")), NUM_STAGES=cfg["num_stages"], enable_fp_fusion=False, **opts)
    if return_codes:
        return y, xq, xqs
    return y


def w158_matmul_unpacked(x: torch.Tensor, x_scale: torch.Tensor, w_codes: torch.Tensor, w_scale: torch.Tensor,
                         out_dtype: torch.dtype = torch.float16, *, config: dict | None = None) -> torch.Tensor:
    """The GEMM kernel with its weight decode left out: ``w_codes [N, K]`` int8 (or fp8 e4m3 for fp8
    ``x``) holds the ternary codes one per byte.  Same exact result as :func:`w158_matmul`; a
    timing study only (it reads 4x the weight bytes): the gap to the packed kernel is the decode's cost."""
    check_tensor(x, "x", (torch.int8, torch.float8_e4m3fn), dim=2)
    check_device_usable(x, "x")
    check_tensor(w_codes, "w_codes", (x.dtype,), dim=2, device=x.device)
    check_tensor(x_scale, "x_scale", (torch.float32,), device=x.device)
    check_tensor(w_scale, "w_scale", (torch.float32,), device=x.device)
    M, K = x.shape
    N = w_codes.shape[0]
    if w_codes.shape[1] != K:
        raise ValueError(f"w_codes must be [N, K={K}], got {tuple(w_codes.shape)}")
    if out_dtype not in OUT_DTYPES:
        raise TypeError(f"out_dtype must be one of {OUT_DTYPES}, got {out_dtype}")
    ws_rows = _check_w_scale(w_scale, N)
    fp8 = x.dtype == torch.float8_e4m3fn
    cfg = resolve_config("gemm", gemm_config(M, fp8), NO_TUNING, None, config)
    if cfg.get("UCODE") or cfg.get("SWAR"):
        raise ValueError("gemm configs UCODE and SWAR need packed weights (their stored fields); w_codes are "
                         "signed codes")
    y = torch.empty(M, N, device=x.device, dtype=out_dtype)
    grid, work = _gemm_launch(cfg, M, N, fp8, x.device)
    imprecise, promote = _promotion(None, cfg["BK"], fp8)
    _w158_gemm_kernel[grid](
        x_ptr=x, xs_ptr=x_scale, w_ptr=w_codes, ws_ptr=w_scale, y_ptr=y, **work,
        M=M, N=N, K=K, KW=padded_len(K) // 16, ws_rows=ws_rows,
        stride_xm=x.stride(0), stride_wn=w_codes.stride(0), stride_ym=y.stride(0),
        FP8=fp8, IMPRECISE=imprecise, PROMOTE=promote, PACKED=False, **cfg)
    return y


# ----------------------------------------------------------------------------- two-pass prefill
@triton.jit
def _decode_weights_kernel(w_ptr, out_ptr, N, KW, stride_wn, stride_on,
                           BN: tl.constexpr, WB: tl.constexpr, FP8: tl.constexpr):
    """Packed words ``[N, KW]`` -> one code per byte ``[N, 16·KW]`` (int8, or fp8 e4m3 bit patterns)."""
    pn = tl.program_id(0)
    pk = tl.program_id(1)
    rn = pn * BN + tl.arange(0, BN)
    rw = pk * WB + tl.arange(0, WB)
    wq = tl.load(w_ptr + rn[:, None].to(tl.int64) * stride_wn + rw[None, :],
                 mask=(rn[:, None] < N) & (rw[None, :] < KW), other=0x55555555)
    codes = _decode_tile(wq, BN, WB, FP8)                                   # [BN, 16·WB], K order
    rk = pk * 16 * WB + tl.arange(0, 16 * WB)
    tl.store(out_ptr + rn[:, None].to(tl.int64) * stride_on + rk[None, :], codes,
             mask=(rn[:, None] < N) & (rk[None, :] < 16 * KW))


def _code_dtype(fp8: bool) -> torch.dtype:
    return torch.float8_e4m3fn if fp8 else torch.int8


def decode_scratch(w_packed: torch.Tensor, fp8: bool = False) -> torch.Tensor:
    """An empty buffer :func:`w158_decode_weights` decodes ``w_packed [N, Kp/16]`` into: ``[N, Kp]``, one byte per
    code (``float8_e4m3fn`` with ``fp8``, else int8)."""
    N, KW = w_packed.shape
    return torch.empty(N, 16 * KW, device=w_packed.device, dtype=_code_dtype(fp8))


def w158_decode_weights(w_packed: torch.Tensor, fp8: bool = False, out: torch.Tensor | None = None) -> torch.Tensor:
    """Expand packed ternary weights ``[N, Kp/16]`` to one code per byte ``[N, Kp]``: int8, or
    ``float8_e4m3fn`` (``fp8``).  The first pass of the two-pass prefill; ``out`` reuses a scratch."""
    check_tensor(w_packed, "w_packed", (torch.int32,), dim=2)
    check_device_usable(w_packed, "w_packed")
    N, KW = w_packed.shape
    out = decode_scratch(w_packed, fp8) if out is None else out
    if out.dtype != _code_dtype(fp8) or tuple(out.shape) != (N, 16 * KW) or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous {_code_dtype(fp8)} tensor of shape ({N}, {16 * KW})")
    BN, WB = 32, min(16, next_pow2(KW))
    _decode_weights_kernel[(triton.cdiv(N, BN), triton.cdiv(KW, WB))](
        w_ptr=w_packed, out_ptr=out, N=N, KW=KW, stride_wn=w_packed.stride(0), stride_on=out.stride(0),
        BN=BN, WB=WB, FP8=fp8, num_warps=4)
    return out


@triton.jit
def _scale_epilogue_kernel(acc_ptr, xs_ptr, ws_ptr, y_ptr, M, N, ws_rows, stride_am, stride_ym,
                           BM: tl.constexpr, BN: tl.constexpr):
    """The GEMM kernel's epilogue (:func:`_epilogue_store`) on sums a library GEMM wrote: one tile of ``acc`` read,
    scaled in the order :func:`model.quant.scale_acc` uses, cast and stored."""
    rm = tl.program_id(0) * BM + tl.arange(0, BM)
    rn = tl.program_id(1) * BN + tl.arange(0, BN)
    acc = tl.load(acc_ptr + rm[:, None].to(tl.int64) * stride_am + rn[None, :],
                  mask=(rm[:, None] < M) & (rn[None, :] < N), other=0)
    _epilogue_store(acc, xs_ptr, ws_ptr, y_ptr, rm, rn, M, N, ws_rows, stride_ym, False)


def scale_epilogue(acc: torch.Tensor, x_scale: torch.Tensor, w_scale: torch.Tensor, ws_rows: int,
                   out_dtype: torch.dtype = torch.float16) -> torch.Tensor:
    """The two-pass GEMM's epilogue in one launch: ``acc [M, N]`` (int32 or fp32 sums), per-row ``x_scale [M]``
    and per-shard ``w_scale`` (one scale per ``ws_rows`` output columns) -> ``out_dtype``; reads the sums once
    and writes the output once, where the same arithmetic in torch makes three passes over fp32 temporaries."""
    check_tensor(acc, "acc", (torch.int32, torch.float32), dim=2)
    check_device_usable(acc, "acc")
    M, N = acc.shape
    check_tensor(x_scale, "x_scale", (torch.float32,), device=acc.device)
    check_tensor(w_scale, "w_scale", (torch.float32,), device=acc.device)
    if x_scale.numel() != M:
        raise ValueError(f"x_scale must hold one scale per row ({M}), got {x_scale.numel()}")
    if ws_rows <= 0 or w_scale.numel() * ws_rows != N:
        raise ValueError(f"w_scale ({w_scale.numel()} scales) x ws_rows ({ws_rows}) must cover N={N}")
    if out_dtype not in OUT_DTYPES:
        raise TypeError(f"out_dtype must be one of {OUT_DTYPES}, got {out_dtype}")
    if acc.stride(1) != 1:
        raise ValueError("acc must be contiguous along N")
    y = torch.empty(M, N, device=acc.device, dtype=out_dtype)
    BM, BN = 32, 128
    _scale_epilogue_kernel[(triton.cdiv(M, BM), triton.cdiv(N, BN))](
        acc_ptr=acc, xs_ptr=x_scale.reshape(-1).contiguous(), ws_ptr=w_scale.reshape(-1).contiguous(), y_ptr=y,
        M=M, N=N, ws_rows=ws_rows, stride_am=acc.stride(0), stride_ym=y.stride(0), BM=BM, BN=BN, num_warps=4)
    return y


def two_pass_shape_ok(M: int, N: int, K: int) -> bool:
    """Whether the two-pass route takes a GEMM of this shape: the library GEMMs need M > 16, K % 16 == 0 and
    N % 8 == 0, and the FP8 route's fp32 sums of INT4 x ternary products are exact while 8 K < 2**24."""
    return M > 16 and K % 16 == 0 and N % 8 == 0 and 8 * K < 2 ** 24


def w158_matmul_two_pass(x: torch.Tensor, x_scale: torch.Tensor, w_packed: torch.Tensor, w_scale: torch.Tensor,
                         N: int, out_dtype: torch.dtype = torch.float16, *,
                         scratch: torch.Tensor | None = None) -> torch.Tensor:
    """Prefill GEMM in two passes: decode the 2-bit weights into a one-byte-per-code scratch
    (:func:`w158_decode_weights`), then a plain library GEMM on it -- cuBLAS INT8 (``torch._int_mm``,
    int32 sums) for int8 ``x``, cuBLAS FP8 (``torch._scaled_mm``, fp32 sums of integers below 2**24)
    for fp8 ``x`` holding INT4 codes -- and the epilogue ``(fp32(acc) · x_scale) · w_scale`` in one launch
    (:func:`scale_epilogue`).  Same exact result as :func:`w158_matmul` (checked in the tests and the benchmark)."""
    M, K, ws_rows = _check_operands(x, x_scale, w_packed, w_scale, N, out_dtype)
    fp8 = x.dtype == torch.float8_e4m3fn
    if not two_pass_shape_ok(M, N, K):
        raise ValueError(f"the two-pass route needs M > 16, K % 16 == 0 and N % 8 == 0 (library GEMM) and "
                         f"8 K < 2**24 (exact fp32 sums of INT4 x ternary products), got M={M}, K={K}, N={N}")
    codes = w158_decode_weights(w_packed, fp8, scratch)[:, :K]
    if fp8:
        one = torch.ones((), device=x.device, dtype=torch.float32)
        acc = torch._scaled_mm(x, codes.t(), scale_a=one, scale_b=one, out_dtype=torch.float32)
    else:
        acc = torch._int_mm(x, codes.t())
    return scale_epilogue(acc, x_scale, w_scale.reshape(-1), ws_rows, out_dtype)


# ----------------------------------------------------------------------------- reference
def w158_matmul_reference(x: torch.Tensor, x_scale: torch.Tensor, w_packed: torch.Tensor,
                          w_scale: torch.Tensor, N: int, out_dtype: torch.dtype = torch.float16) -> torch.Tensor:
    """``model.quant.qlinear`` on the unpacked weights (CPU, float64 BLAS): what every path must equal."""
    K = x.shape[1]
    codes = unpack_ternary(w_packed.cpu(), K)
    xc = x.cpu().float().to(torch.int8) if x.dtype == torch.float8_e4m3fn else x.cpu()
    ws = w_scale.cpu().float().reshape(-1)
    rows = N // ws.numel()
    acc = Q.int_gemm(Q.QTensor(xc, x_scale.cpu().reshape(-1, 1), "int8", 8),
                     Q.QTensor(codes, ws[:1].reshape(()), "ternary", 2))
    scale = ws.repeat_interleave(rows).reshape(1, N)
    return Q.scale_acc(acc, x_scale.cpu().reshape(-1, 1), scale, out_dtype)
