"""Ternary-weight GEMM / GEMV: ``y[M, N] = x[M, K] · W[N, K]ᵀ`` (W1.58A8, W1.58A4).

Operands
--------
* ``x``: per-token activation codes ``[M, K]`` -- int8 (INT8 codes, or INT4
  codes held in int8: the "INT8-unpack" A4 path), or ``float8_e4m3fn``
  holding INT4 codes (the FP8 tensor-core A4 path; every integer in [-8, 7]
  is exactly an e4m3 value).  ``x_scale [M, 1]`` fp32.
* ``w``: ternary codes packed by :func:`kernels.packing.pack_ternary`
  (int32 ``[N, Kp/16]``, 2 bits each, group-interleaved), ``w_scale`` a 0-d
  (or 1-element) fp32 tensor.

Arithmetic (== ``model.quant.qlinear``)
--------------------------------------
INT8 path: ``tl.dot`` of int8 tiles accumulates in int32 (exact: |acc| <=
127·K < 2³¹).  FP8 path: products of INT4 codes and ternary weights are
integers of magnitude <= 8, so every partial sum is an integer below 8·K; an
IEEE fp32 accumulator holds them exactly while 8·K < 2²⁴.  Hopper's FP8
``wgmma`` does NOT accumulate in full fp32, so the kernel asks Triton to
promote the tensor-core partial sum into the fp32 register accumulator every
``imprecise_acc`` K-elements (``max_num_imprecise_acc``, default ``BK`` = one
K tile): each unpromoted partial then stays below 8·BK (1024 for BK=128).
The ``fp8exact`` section of ``kernels/benchmark.py`` measures on the GPU
where the unpromoted accumulator stops being exact (results in
docs/kernels.md).  Epilogue for both:
``y = (fp32(acc) * x_scale) * w_scale``, two fp32 multiplies (no FMA is
possible), cast to fp16/bf16 with round-to-nearest-even: bit-identical to
``scale_acc(int_gemm(...))``.

Paths
-----
* M <= 4 (int8 codes): :func:`_w158_gemv_kernel` -- CUDA-core split-K GEMV,
  memory bound (every program issues its loads at once; int32 atomics join
  the K slices exactly).  Per packed word and field: one shift, one AND, one ``dp4a``
  (4 MACs of int8 activations with the unsigned ``code+1`` bytes); ``sum(x)``
  is subtracted once at the end.  Never forms a K-ordered tile.
* otherwise: :func:`_w158_gemm_kernel` -- tensor-core GEMM; the packed weight
  tile is decoded in registers to a ``[BN, BK]`` int8 (or fp8 e4m3, built
  directly as bit patterns 0xB8/0x00/0x38) tile.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.configs import gemm_m_bucket, tuned
from kernels.packing import PACK_GROUP, padded_len
from kernels.validate import check_device_usable, check_finite, check_tensor, next_pow2

OUT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
GEMV_MAX_M = 4


@triton.jit
def cast_out(y, out_ty: tl.constexpr):
    """fp32 -> output dtype, round to nearest even.

    bf16 is rounded by hand on the fp32 bit pattern (same result as the
    hardware's ``cvt.rn.bf16.f32`` for finite values; Triton's CPU
    interpreter would otherwise truncate).
    """
    if out_ty == tl.bfloat16:
        b = y.to(tl.uint32, bitcast=True)
        b = b + 0x7FFF + ((b >> 16) & 1)
        return (b >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)
    else:
        return y.to(out_ty)


@triton.jit
def _epilogue_store(acc, xs_ptr, ws_ptr, y_ptr, rm, rn, M, N, stride_ym, SWAP: tl.constexpr):
    """y = (fp32(acc) * x_scale[m]) * w_scale, cast, masked store."""
    ws = tl.load(ws_ptr)
    if SWAP:   # acc is [BN, BM]
        xs = tl.load(xs_ptr + rm, mask=rm < M, other=0.0)
        y = (acc.to(tl.float32) * xs[None, :]) * ws
        ptrs = y_ptr + rm[None, :].to(tl.int64) * stride_ym + rn[:, None]
        tl.store(ptrs, cast_out(y, y_ptr.dtype.element_ty), mask=(rm[None, :] < M) & (rn[:, None] < N))
    else:
        xs = tl.load(xs_ptr + rm, mask=rm < M, other=0.0)
        y = (acc.to(tl.float32) * xs[:, None]) * ws
        ptrs = y_ptr + rm[:, None].to(tl.int64) * stride_ym + rn[None, :]
        tl.store(ptrs, cast_out(y, y_ptr.dtype.element_ty), mask=(rm[:, None] < M) & (rn[None, :] < N))


@triton.jit
def _dp4a(a, b, c, USE_ASM: tl.constexpr):
    """c + sum of the 4 byte products of a (signed bytes) and b (unsigned bytes).

    On the GPU one PTX ``dp4a.s32.u32``; the plain-Triton emulation (same
    result, integer-exact) runs under TRITON_INTERPRET=1.
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

    FP8: ``IMPRECISE > 0`` promotes the partial sum into the fp32 accumulator
    every IMPRECISE K-elements; 0 keeps Triton's default (on Hopper: never).
    """
    if FP8:
        if IMPRECISE > 0:
            return tl.dot(a, b, acc, max_num_imprecise_acc=IMPRECISE)
        else:
            return tl.dot(a, b, acc)
    else:
        return tl.dot(a, b, acc, out_dtype=tl.int32)


@triton.jit
def _decode_tile(wq, BN: tl.constexpr, WB: tl.constexpr, FP8: tl.constexpr, DECODE: tl.constexpr,
                 USE_ASM: tl.constexpr):
    """Packed words ``[BN, WB]`` -> ternary tile ``[BN, 16·WB]`` in K order (int8, or fp8 e4m3 bits).

    ``DECODE = 0``: per code one shift, one AND, one subtract (or a byte lookup for fp8) and a
    pack.  ``DECODE = 1``: the word is shifted once per field ``i`` (K positions ``4i..4i+3``
    sit in its four bytes, kernels/packing.py) and the four codes are mapped at once, SIMD
    within the 32-bit register (one PTX block writes four int8/fp8 bytes: Triton's
    ``pack=4``).  int8: ``((t & 0x03030303) | 0x80808080) - 0x01010101`` has no borrow
    between bytes, ``^ 0x80808080`` then gives ``f - 1``.  fp8: with ``u = t ^ 0x01010101``
    (bytes 01, 00, 11 for f = 0, 1, 2) the magnitude byte is ``(u & 1) · 0x38`` and the sign
    bit ``(u & ~(u >> 1) & 1) << 7``, i.e. 0xB8, 0x00, 0x38.
    """
    BK: tl.constexpr = 16 * WB
    if DECODE == 0:
        # value k % 16 = 4i + b of a word sits at bit 8b + 2i (kernels/packing.py)
        shifts = tl.reshape(8 * tl.arange(0, 4)[None, :] + 2 * tl.arange(0, 4)[:, None], (1, 1, 4, 4))
        f = tl.reshape((tl.reshape(wq, (BN, WB, 1, 1)) >> shifts) & 3, (BN, BK))   # code + 1, K order
        if FP8:
            # e4m3 bit pattern of code f-1 in {-1, 0, 1}: 0xB8, 0x00, 0x38 (byte f of 0x3800B8)
            return ((0x3800B8 >> (f * 8)) & 0xFF).to(tl.uint8).to(tl.float8e4nv, bitcast=True)
        else:
            return (f - 1).to(tl.int8)
    else:
        wi = tl.reshape(wq, (BN, WB, 1, 1)) >> tl.reshape(2 * tl.arange(0, 4), (1, 1, 4, 1))   # one shift per field
        # element [..., b] takes byte b; bits 30-31 (cleared by the 0x03030303 mask) carry b so that
        # the input varies along b and the compiler cannot move the packed op before the broadcast
        bix = tl.reshape(tl.arange(0, 4), (1, 1, 1, 4))
        wb = wi ^ (bix << 30)
        if USE_ASM:
            if FP8:
                b = tl.inline_asm_elementwise(
                    "{ .reg .b32 u, s, g; and.b32 u, $1, 0x03030303; xor.b32 u, u, 0x01010101; "
                    "and.b32 s, u, 0x01010101; mul.lo.u32 s, s, 0x38; shr.u32 g, u, 1; not.b32 g, g; "
                    "and.b32 g, g, u; and.b32 g, g, 0x01010101; shl.b32 g, g, 7; or.b32 $0, s, g; }",
                    "=r,r,r,r,r", [wb], dtype=tl.float8e4nv, is_pure=True, pack=4)
            else:
                b = tl.inline_asm_elementwise(
                    "{ .reg .b32 t; and.b32 t, $1, 0x03030303; or.b32 t, t, 0x80808080; "
                    "sub.u32 t, t, 0x01010101; xor.b32 $0, t, 0x80808080; }",
                    "=r,r,r,r,r", [wb], dtype=tl.int8, is_pure=True, pack=4)
        else:    # the same bytes one at a time (Triton's CPU interpreter runs no PTX)
            f = (wb >> (8 * bix)) & 3
            if FP8:
                b = ((0x3800B8 >> (f * 8)) & 0xFF).to(tl.uint8).to(tl.float8e4nv, bitcast=True)
            else:
                b = (f - 1).to(tl.int8)
        return tl.reshape(b, (BN, BK))


@triton.jit
def _w158_gemm_kernel(x_ptr, xs_ptr, w_ptr, ws_ptr, y_ptr, M, N, K, KW,
                      stride_xm, stride_wn, stride_ym,
                      BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GROUP_M: tl.constexpr,
                      FP8: tl.constexpr, IMPRECISE: tl.constexpr, SWAP: tl.constexpr, DECODE: tl.constexpr,
                      USE_ASM: tl.constexpr):
    pid = tl.program_id(0)
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
    for k0 in range(0, KW * 16, BK):
        a = tl.load(x_ptrs, mask=mask_m & ((k0 + rk)[None, :] < K), other=0.0 if FP8 else 0)
        wq = tl.load(w_ptrs, mask=mask_n & ((k0 // 16 + rw)[None, :] < KW), other=0x55555555)
        b = _decode_tile(wq, BN, WB, FP8, DECODE, USE_ASM)
        if SWAP:
            acc = _mma(b, tl.trans(a), acc, FP8, IMPRECISE)
        else:
            acc = _mma(a, tl.trans(b), acc, FP8, IMPRECISE)
        x_ptrs += BK
        w_ptrs += WB
    _epilogue_store(acc, xs_ptr, ws_ptr, y_ptr, rm, rn, M, N, stride_ym, SWAP)


@triton.jit
def _w158_gemv_kernel(xw_ptr, xs_ptr, w_ptr, ws_ptr, y_ptr, acc_ptr, ticket_ptr, M, N, K4, KW,
                      stride_xm, stride_wn, stride_ym,
                      BM: tl.constexpr, BN: tl.constexpr, WB: tl.constexpr, ITERS: tl.constexpr,
                      SPLIT: tl.constexpr, USE_ASM: tl.constexpr):
    """Split-K GEMV: program (pn, pk) reads rows [pn*BN, +BN) x words [pk*ITERS*WB, +ITERS*WB).

    x is read as int32 words (4 codes each); partial = sum x*(code+1) by dp4a
    minus sum x.  All tiles are 3-D ``[BM, BN, WB]`` slices of one layout (the
    broadcasts move no data).  Partials meet in an int32 workspace through
    atomics (exact, order-free); the last program of a row block (ticket)
    applies the scales, writes y and clears the workspace.
    """
    pn = tl.program_id(0)
    pk = tl.program_id(1)
    rn = pn * BN + tl.arange(0, BN)
    rm = tl.arange(0, BM)
    rw = tl.arange(0, WB)
    n3 = tl.reshape(rn, (1, BN, 1))
    m3 = tl.reshape(rm, (BM, 1, 1))
    w3 = tl.reshape(rw, (1, 1, WB))
    w_ptrs = w_ptr + n3.to(tl.int64) * stride_wn + w3                 # [1, BN, WB]
    x_ptrs = xw_ptr + m3.to(tl.int64) * stride_xm + 4 * w3            # [BM, 1, WB]
    acc = tl.zeros((BM, BN, WB), dtype=tl.int32)
    sx = tl.zeros((BM, 1, WB), dtype=tl.int32)
    ones = tl.full((BM, 1, WB), 0x01010101, tl.int32)
    for it in tl.static_range(ITERS):
        w0 = (pk * ITERS + it) * WB
        wq = tl.load(w_ptrs + w0, mask=(n3 < N) & (w0 + w3 < KW), other=0)
        for i in tl.static_range(4):
            xi = tl.load(x_ptrs + 4 * w0 + i, mask=(m3 < M) & (4 * (w0 + w3) + i < K4), other=0)
            t = (wq >> (2 * i)) & 0x03030303                # 4 unsigned codes+1, one per byte
            acc = _dp4a(tl.broadcast_to(xi, (BM, BN, WB)), tl.broadcast_to(t, (BM, BN, WB)), acc, USE_ASM)
            sx = _dp4a(xi, ones, sx, USE_ASM)
    part = tl.sum(acc - sx, axis=2)                                      # [BM, BN]
    if SPLIT == 1:
        _epilogue_store(part, xs_ptr, ws_ptr, y_ptr, rm, rn, M, N, stride_ym, False)
    else:
        offs = rm[:, None] * N + rn[None, :]
        msk = (rm[:, None] < M) & (rn[None, :] < N)
        tl.atomic_add(acc_ptr + offs, part, mask=msk, sem="relaxed")
        tl.debug_barrier()                                  # every thread's adds precede the ticket
        ticket = tl.atomic_add(ticket_ptr + pn, 1, sem="acq_rel")    # releases our adds
        if ticket == SPLIT - 1:                                          # last one in
            tot = tl.atomic_xchg(acc_ptr + offs, tl.zeros((BM, BN), dtype=tl.int32), mask=msk, sem="relaxed")
            _epilogue_store(tot, xs_ptr, ws_ptr, y_ptr, rm, rn, M, N, stride_ym, False)
            tl.atomic_xchg(ticket_ptr + pn, 0, sem="relaxed")


_GEMV_WORKSPACES: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _gemv_workspace(device: torch.device, M: int, N: int, n_blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Self-cleaning int32 accumulator + tickets (calls on one device must not overlap)."""
    key = (str(device), M, N, n_blocks)
    if key not in _GEMV_WORKSPACES:
        _GEMV_WORKSPACES[key] = (torch.zeros(M * N, dtype=torch.int32, device=device),
                                 torch.zeros(n_blocks, dtype=torch.int32, device=device))
    return _GEMV_WORKSPACES[key]


def gemm_config(M: int, fp8: bool) -> dict:
    """Tile sizes by M (hand-picked; measured winners per shape in ``kernels.configs.TUNED`` come first)."""
    if M <= 16:
        return dict(BM=16, BN=64, BK=256, GROUP_M=8, SWAP=False, DECODE=0, num_warps=4, num_stages=4)
    if M <= 64:
        return dict(BM=64, BN=64, BK=256, GROUP_M=8, SWAP=False, DECODE=0, num_warps=4, num_stages=4)
    if M <= 256:
        return dict(BM=64, BN=128, BK=128, GROUP_M=8, SWAP=False, DECODE=0, num_warps=4, num_stages=4)
    return dict(BM=256, BN=128, BK=128, GROUP_M=8, SWAP=False, DECODE=0, num_warps=8, num_stages=3)


def gemv_config(M: int) -> dict:
    """4 rows x 1024 values per program (best of a 12-config sweep on the H100, CUDA-graph timed)."""
    return dict(BN=4, WB=64, ITERS=4, num_warps=4)


def check_packed_layer(N: int, packed: torch.Tensor, name: str, shape_of, layout: str,
                       out_dtype: torch.dtype) -> None:
    """Checks shared by the dense and the sparse launcher: ``N`` a positive int,
    ``packed.shape == shape_of(N)`` (``layout`` says why, in the message), ``out_dtype`` known."""
    if not isinstance(N, int) or N <= 0:
        raise ValueError(f"N must be a positive int, got {N!r}")
    if tuple(packed.shape) != tuple(shape_of(N)):
        raise ValueError(f"{name} must have shape {tuple(shape_of(N))} {layout}, got {tuple(packed.shape)}")
    if out_dtype not in OUT_DTYPES:
        raise TypeError(f"out_dtype must be one of {OUT_DTYPES}, got {out_dtype}")


def _check_operands(x, x_scale, w_packed, w_scale, N, K, out_dtype):
    check_tensor(x, "x", (torch.int8, torch.float8_e4m3fn), dim=2)
    check_device_usable(x, "x")
    dev = x.device
    check_tensor(x_scale, "x_scale", (torch.float32,), device=dev)
    check_tensor(w_packed, "w_packed", (torch.int32,), dim=2, device=dev)
    check_tensor(w_scale, "w_scale", (torch.float32,), device=dev)
    M, Kx = x.shape
    if K is not None and K != Kx:
        raise ValueError(f"K={K} does not match x.shape[1]={Kx}")
    if tuple(x_scale.shape) not in ((M, 1), (M,)):
        raise ValueError(f"x_scale must have shape ({M}, 1), got {tuple(x_scale.shape)}")
    if w_scale.numel() != 1:
        raise ValueError(f"w_scale must hold one value (per-matrix scale), got shape {tuple(w_scale.shape)}")
    check_packed_layer(N, w_packed, "w_packed", lambda n: (n, padded_len(Kx) // 16),
                       f"for K={Kx} (K padded to a multiple of {PACK_GROUP}, 16 values per word)", out_dtype)
    for name, t in (("x", x), ("x_scale", x_scale), ("w_scale", w_scale)):
        check_finite(t, name)
    return M, Kx


def _check_config(config: dict | None, known: tuple[str, ...]) -> None:
    if config is None:
        return
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    bad = sorted(set(config) - set(known))
    if bad:
        raise ValueError(f"unknown config keys {bad} for this path; known: {list(known)}")


def w158_matmul(x: torch.Tensor, x_scale: torch.Tensor, w_packed: torch.Tensor, w_scale: torch.Tensor,
                N: int, out_dtype: torch.dtype = torch.float16, *, path: str = "auto",
                imprecise_acc: int | None = None, config: dict | None = None) -> torch.Tensor:
    """Ternary-weight linear layer on quantized activations, ``[M, K] -> [M, N]``.

    ``path``: "auto" (GEMV for int8 codes and M <= GEMV_MAX_M, else GEMM),
    "gemv" or "gemm".  For FP8 activations ``imprecise_acc`` is Triton's
    ``max_num_imprecise_acc``: K elements per promotion of the tensor-core
    partial sum into the fp32 accumulator.  ``None`` (default) promotes once
    per K tile (``BK``), which keeps every unpromoted partial below 8*BK;
    a value larger than ``BK`` never promotes (Triton's default on Hopper;
    only for the exactness study).
    """
    M, K = _check_operands(x, x_scale, w_packed, w_scale, N, None, out_dtype)
    if path not in ("auto", "gemv", "gemm"):
        raise ValueError(f"path must be 'auto', 'gemv' or 'gemm', got {path!r}")
    fp8 = x.dtype == torch.float8_e4m3fn
    if path == "auto":
        path = "gemv" if (M <= GEMV_MAX_M and not fp8) else "gemm"
    if path == "gemv" and (fp8 or M > GEMV_MAX_M):
        raise ValueError(f"the GEMV path takes int8 codes and M <= {GEMV_MAX_M}")
    if fp8 and 8 * K >= 2 ** 24:
        raise ValueError(f"K={K} too large for the exact FP8 path (needs 8*K < 2**24: integer sums in fp32)")
    KW = padded_len(K) // 16
    y = torch.empty(M, N, device=x.device, dtype=out_dtype)
    if path == "gemv":
        xw = x if K % 4 == 0 else torch.nn.functional.pad(x, (0, 4 - K % 4))
        K4 = xw.shape[1] // 4
        xw = xw.view(torch.int32)
        _check_config(config, ("BN", "WB", "ITERS", "num_warps"))
        cfg = dict(gemv_config(M), **(tuned("gemv", N=N, K=K) or {}), **(config or {}))
        split = triton.cdiv(KW, cfg["WB"] * cfg["ITERS"])
        grid = (triton.cdiv(N, cfg["BN"]), split)
        acc, ticket = _gemv_workspace(x.device, M, N, grid[0])
        _w158_gemv_kernel[grid](xw, x_scale, w_packed, w_scale, y, acc, ticket, M, N, K4, KW,
                                xw.stride(0), w_packed.stride(0), y.stride(0),
                                BM=next_pow2(M), SPLIT=split, USE_ASM=x.device.type == "cuda", **cfg)
        return y
    _check_config(config, ("BM", "BN", "BK", "GROUP_M", "SWAP", "DECODE", "num_warps", "num_stages"))
    best = tuned("gemm", M=gemm_m_bucket(M), N=N, K=K, prec="fp8" if fp8 else "int8")
    cfg = dict(gemm_config(M, fp8), **(best or {}), **(config or {}))
    if cfg["BK"] % 16:
        raise ValueError(f"BK must be a multiple of 16, got {cfg['BK']}")
    if cfg["DECODE"] not in (0, 1):
        raise ValueError(f"DECODE must be 0 (per code) or 1 (four codes per register op), got {cfg['DECODE']!r}")
    if imprecise_acc is None:
        imprecise_acc = cfg["BK"]
    if not isinstance(imprecise_acc, int) or imprecise_acc <= 0:
        raise ValueError(f"imprecise_acc must be a positive int or None, got {imprecise_acc!r}")
    grid = (triton.cdiv(M, cfg["BM"]) * triton.cdiv(N, cfg["BN"]),)
    _w158_gemm_kernel[grid](x, x_scale, w_packed, w_scale, y, M, N, K, KW,
                            x.stride(0), w_packed.stride(0), y.stride(0),
                            FP8=fp8, IMPRECISE=imprecise_acc if fp8 and imprecise_acc <= cfg["BK"] else 0,
                            USE_ASM=x.device.type == "cuda", **cfg)
    return y
