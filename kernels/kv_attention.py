"""Quantized KV cache (a4.8 low-bit attention): write kernel and decode attention.

Codes and scales follow ``model.quant.quantize_kv`` exactly (docs/decisions.md 8):
one absmax scale per (token, head) over head_dim, unsigned code
``c = clamp(rne((x/s + 1) * L/2), 0, L)`` with ``L = 2**bits - 1`` and
``L = 2**bos_bits - 1`` for the token at position 0 (BOS heads kept at 4 bits),
value ``(2c - L) * (s/L)``.

Layout (per layer)
------------------
* ``codes``: int32 ``[B, Hkv, T_max, D/8]`` -- one 4-bit nibble per code,
  element ``d`` in bits ``[4*(d%8), 4*(d%8)+3]`` of word ``d//8``.  3-bit
  codes are held in 4-bit nibbles: every row has the same size, the BOS row's
  4-bit codes need no side buffer, and a code decodes with one shift, one
  AND/OR and one float subtract (``(c | 0x4B000000)`` read as fp32 is
  ``2**23 + c``).  A head row of 128 values is 64 bytes (FP16: 256); a dense
  3-bit packing would save another 25 % (not implemented).
* ``scale``: fp32 ``[B, Hkv, T_max]`` = ``s / L`` (quant's ``QTensor.scale``).

Decode attention (one new query token per sequence, GQA: ``Hq = G·Hkv``)
splits the context over ``S`` programs per (sequence, KV head) (flash-decoding)
and combines the partial softmaxes in a second small kernel.  With
``qc_t = q · c_t`` (exact integers times q), the score is
``sm_scale · s_t · (2·qc_t - L_t·sum(q))`` and the output is
``2·sum_t (p_t s_t) c_t - sum_t p_t s_t L_t``: the dequantized K/V are never
formed.  Two split kernels: the default one per KV head (tensor cores for
fp16 q), and ``config=dict(FMA=True)``, one per query head on CUDA cores
(for MHA, where a 16-row MMA tile would be 1/16 used).  Exactness: the cache write is bit-exact (codes and scales); the
attention output is fp32 arithmetic in a different order from any
reference, checked to a relative error < 1e-5 against a float64 softmax over
``quantize_kv``'s dequantized values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from kernels.arith import rne
from kernels.checks import FLOAT_DTYPES, check_device_usable, check_finite, check_tensor, next_pow2
from kernels.configs import NO_TUNING, ConfigTable, ctx_bucket, resolve_config

MAGIC = 0x4B000000          # fp32 bit pattern of 2**23
RESCALE_AT = tl.constexpr(8.0)           # FMA attention: move the running max when exceeded by this (p <= e^8)


@dataclass(kw_only=True)
class QuantKVCache:
    """One layer's 3-/4-bit K and V caches (see module docstring for the layout).

    Named apart from ``model.model.KVCache`` (the reference model's float cache).  ``length``: the
    rows written so far (``kv_write`` and ``attention_step`` advance it; attention over more rows is
    refused); ``None`` for a cache built from given tensors, whose every row counts as written."""

    k_codes: torch.Tensor
    k_scale: torch.Tensor
    v_codes: torch.Tensor
    v_scale: torch.Tensor
    bits: int = 3
    bos_bits: int = 4
    length: int | None = None

    def __post_init__(self) -> None:
        for name in ("bits", "bos_bits"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 2 <= v <= 4:
                raise ValueError(f"QuantKVCache.{name} must be an int in [2, 4] (4-bit nibble storage), got {v!r}")
        for name in ("k_codes", "v_codes"):
            check_tensor(getattr(self, name), f"QuantKVCache.{name}", (torch.int32,), dim=4)
        for name in ("k_scale", "v_scale"):
            check_tensor(getattr(self, name), f"QuantKVCache.{name}", (torch.float32,), dim=3)
        shape = tuple(self.k_codes.shape)
        if tuple(self.v_codes.shape) != shape:
            raise ValueError(f"QuantKVCache.v_codes shape {tuple(self.v_codes.shape)} differs from k_codes {shape}")
        for name in ("k_scale", "v_scale"):
            if tuple(getattr(self, name).shape) != shape[:3]:
                raise ValueError(f"QuantKVCache.{name} must have shape {shape[:3]} ([B, Hkv, T_max]), "
                                 f"got {tuple(getattr(self, name).shape)}")
        dev = self.k_codes.device
        if any(t.device != dev for t in (self.k_scale, self.v_codes, self.v_scale)):
            raise ValueError("QuantKVCache tensors must all be on one device")
        if self.length is not None and (isinstance(self.length, bool) or not isinstance(self.length, int)
                                        or not 0 <= self.length <= shape[2]):
            raise ValueError(f"QuantKVCache.length must be an int in [0, {shape[2]}] or None, got {self.length!r}")

    def written(self) -> int:
        """Rows that hold written codes (``T_max`` for a cache built from given tensors)."""
        return self.shape[2] if self.length is None else self.length

    def mark_written(self, end: int) -> None:
        """Rows ``[0, end)`` now hold codes (a write reached row ``end - 1``)."""
        if self.length is not None:
            self.length = max(self.length, int(end))

    @classmethod
    def allocate(cls, B: int, Hkv: int, T_max: int, D: int, device, bits: int = 3,
                 bos_bits: int | None = 4) -> "QuantKVCache":
        for name, v in (("B", B), ("Hkv", Hkv), ("T_max", T_max), ("D", D)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if D % 8:
            raise ValueError(f"head_dim must be a multiple of 8 (8 nibbles per word), got {D}")
        bos = bits if bos_bits is None else bos_bits
        if not (2 <= bits <= 4 and 2 <= bos <= 4):
            raise ValueError(f"bits and bos_bits must be in [2, 4] for nibble storage, got {bits}, {bos_bits}")
        mk = lambda: torch.zeros(B, Hkv, T_max, D // 8, dtype=torch.int32, device=device)  # noqa: E731
        ms = lambda: torch.zeros(B, Hkv, T_max, dtype=torch.float32, device=device)        # noqa: E731
        return cls(k_codes=mk(), k_scale=ms(), v_codes=mk(), v_scale=ms(), bits=bits, bos_bits=bos, length=0)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        B, H, T, W = self.k_codes.shape
        return B, H, T, W * 8


# ----------------------------------------------------------------------------- write
@triton.jit
def kv_quantize_codes(x, pos, LN: tl.constexpr, LB: tl.constexpr):
    """Unsigned int32 codes ``[D]`` and the scale ``s / L`` of one row ``x [D]`` (absmax scale, ``L = LN``
    levels, ``LB`` at position 0): the arithmetic of ``model.quant.quantize_kv``, bit for bit."""
    xf = x.to(tl.float32)
    s = tl.maximum(tl.max(tl.abs(xf), axis=0), 1e-5)
    L = tl.where(pos == 0, LB * 1.0, LN * 1.0)
    v = (tl.math.div_rn(xf, s) + 1.0) * (L * 0.5)
    v = tl.minimum(tl.maximum(v, -1.0), L + 1.0)
    c = tl.minimum(tl.maximum(rne(v), 0.0), L).to(tl.int32)
    return c, tl.math.div_rn(s, L)


@triton.jit
def kv_quantize_row(x, codes_ptr, scale_ptr, row, pos, D: tl.constexpr, LN: tl.constexpr, LB: tl.constexpr):
    """Quantize one row ``x [D]`` (:func:`kv_quantize_codes`) into nibble words at cache row ``row``."""
    c, scale = kv_quantize_codes(x, pos, LN, LB)
    words = tl.sum(tl.reshape(c, (D // 8, 8)) << (4 * tl.arange(0, 8))[None, :], axis=1)
    tl.store(codes_ptr + row * (D // 8) + tl.arange(0, D // 8), words)
    tl.store(scale_ptr + row, scale)


@triton.jit
def _kv_write_kernel(x_ptr, codes_ptr, scale_ptr, T_new, Hkv, T_max, pos0, stride_xr,
                     D: tl.constexpr, LN: tl.constexpr, LB: tl.constexpr):
    r = tl.program_id(0)                       # row = (b, h, t) of the new tokens
    t = r % T_new
    bh = r // T_new
    pos = pos0 + t
    x = tl.load(x_ptr + r.to(tl.int64) * stride_xr + tl.arange(0, D))
    kv_quantize_row(x, codes_ptr, scale_ptr, bh.to(tl.int64) * T_max + pos, pos, D, LN, LB)


def check_kv_write(shape: tuple[int, int, int, int], device: torch.device, written: int, k: torch.Tensor,
                   v: torch.Tensor, pos0: int) -> int:
    """Check a write of ``k, v [B, Hkv, T_new, D]`` at ``pos0`` into a cache of ``shape`` holding ``written``
    rows (every cache layout fills in order); the number of new rows."""
    B, H, T_max, D = shape
    for name, x in (("k", k), ("v", v)):
        check_tensor(x, name, FLOAT_DTYPES, dim=4, device=device)
        check_device_usable(x, name)
        if x.shape[0] != B or x.shape[1] != H or x.shape[3] != D:
            raise ValueError(f"{name} must be [B={B}, Hkv={H}, T_new, D={D}], got {tuple(x.shape)}")
        check_finite(x, name)
    if k.shape != v.shape:
        raise ValueError(f"k and v shapes differ: {tuple(k.shape)} vs {tuple(v.shape)}")
    T_new = k.shape[2]
    if isinstance(pos0, bool) or not isinstance(pos0, int) or pos0 < 0 or pos0 + T_new > T_max:
        raise ValueError(f"positions {pos0}..{pos0 + T_new - 1} do not fit the cache (T_max={T_max})")
    if pos0 > written:
        raise ValueError(f"pos0={pos0} would leave rows {written}..{pos0 - 1} unwritten (a cache fills in order)")
    return T_new


def kv_write(cache: QuantKVCache, k: torch.Tensor, v: torch.Tensor, pos0: int) -> None:
    """Quantize post-RoPE ``k, v [B, Hkv, T_new, D]`` into positions ``pos0 .. pos0+T_new-1``."""
    B, H, T_max, D = cache.shape
    T_new = check_kv_write(cache.shape, cache.k_codes.device, cache.written(), k, v, pos0)
    if D & (D - 1):
        raise ValueError(f"head_dim must be a power of two for the write kernel, got {D}")
    LN, LB = 2 ** cache.bits - 1, 2 ** cache.bos_bits - 1
    for x, codes, scale in ((k, cache.k_codes, cache.k_scale), (v, cache.v_codes, cache.v_scale)):
        _kv_write_kernel[(B * H * T_new,)](
            x_ptr=x, codes_ptr=codes, scale_ptr=scale,
            T_new=T_new, Hkv=H, T_max=T_max, pos0=pos0, stride_xr=D,
            D=D, LN=LN, LB=LB, num_warps=1, enable_fp_fusion=False)
    cache.mark_written(pos0 + T_new)


def kv_read_codes(codes: torch.Tensor) -> torch.Tensor:
    """Unpack nibble words ``[..., D/8]`` -> int8 codes ``[..., D]`` (host helper for checks)."""
    w = codes.to(torch.int64) & 0xFFFFFFFF
    sh = 4 * torch.arange(8, device=codes.device, dtype=torch.int64)
    return ((w.unsqueeze(-1) >> sh) & 0xF).flatten(-2).to(torch.int8)


# ----------------------------------------------------------------------------- attention
@triton.jit
def _decode_codes(words, BT: tl.constexpr, D: tl.constexpr):
    """int32 [BT, D/8] nibble words -> fp32 [BT, D] codes, exact (magic-number conversion)."""
    nib = (words[:, :, None] >> (4 * tl.arange(0, 8))[None, None, :]) & 0xF
    f = (nib | 0x4B000000).to(tl.float32, bitcast=True) - 8388608.0
    return tl.reshape(f, (BT, D))


@triton.jit
def _attn_split_kernel(q_ptr, kc_ptr, ks_ptr, vc_ptr, vs_ptr, m_ptr, l_ptr, o_ptr,
                       T, T_max, Hkv, chunk, sm_scale,
                       G: tl.constexpr, GP: tl.constexpr, D: tl.constexpr, BT: tl.constexpr,
                       S: tl.constexpr, LN: tl.constexpr, LB: tl.constexpr, USE_DOT: tl.constexpr):
    bh = tl.program_id(0)                      # b * Hkv + kv head
    sp = tl.program_id(1)
    g = tl.arange(0, GP)
    d = tl.arange(0, D)
    W: tl.constexpr = D // 8
    qrow = bh * G + g                          # q is [B, Hq, D] with Hq = Hkv * G
    q = tl.load(q_ptr + qrow[:, None].to(tl.int64) * D + d[None, :], mask=g[:, None] < G, other=0.0)
    q = q.to(tl.float32)
    qsum = tl.sum(q, axis=1)                                          # [GP]
    m_i = tl.full((GP,), -float("inf"), tl.float32)
    l_i = tl.zeros((GP,), tl.float32)
    acc = tl.zeros((GP, D), tl.float32)
    cs = tl.zeros((GP,), tl.float32)           # sum_t p_t s_t L_t (V offset term)
    base = bh.to(tl.int64) * T_max
    t_lo = sp * chunk
    t_hi = tl.minimum(t_lo + chunk, T)
    tt = tl.arange(0, BT)
    ww = tl.arange(0, W)
    for t0 in range(t_lo, t_hi, BT):
        t = t0 + tt
        live = t < t_hi
        Lt = tl.where(t == 0, LB * 1.0, LN * 1.0)
        kw = tl.load(kc_ptr + (base + t)[:, None] * W + ww[None, :], mask=live[:, None], other=0)
        kc = _decode_codes(kw, BT, D)                                              # [BT, D] fp32
        ks = tl.load(ks_ptr + base + t, mask=live, other=0.0)
        if USE_DOT:      # tensor cores: fp16 q (exact for fp16 inputs) x exact small-integer codes
            qc = tl.dot(q.to(tl.float16), tl.trans(kc.to(tl.float16)))
        else:
            qc = tl.sum(q[:, None, :] * kc[None, :, :], axis=2)                    # [GP, BT]
        sc = (sm_scale * ks)[None, :] * (2.0 * qc - Lt[None, :] * qsum[:, None])
        sc = tl.where(live[None, :], sc, -float("inf"))
        m_new = tl.maximum(m_i, tl.max(sc, axis=1))
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(sc - m_new[:, None])                                            # [GP, BT]
        l_i = l_i * alpha + tl.sum(p, axis=1)
        vw = tl.load(vc_ptr + (base + t)[:, None] * W + ww[None, :], mask=live[:, None], other=0)
        vc = _decode_codes(vw, BT, D)
        vs = tl.load(vs_ptr + base + t, mask=live, other=0.0)
        ps = p * vs[None, :]
        if USE_DOT:      # p*s rounded to fp16 (as flash attention does for P)
            pv = tl.dot(ps.to(tl.float16), vc.to(tl.float16))
        else:
            pv = tl.sum(ps[:, :, None] * vc[None, :, :], axis=1)
        acc = acc * alpha[:, None] + 2.0 * pv
        cs = cs * alpha + tl.sum(ps * Lt[None, :], axis=1)
        m_i = m_new
    acc = acc - cs[:, None]
    out = (qrow * S + sp).to(tl.int64)
    tl.store(m_ptr + out, m_i, mask=g < G)
    tl.store(l_ptr + out, l_i, mask=g < G)
    tl.store(o_ptr + out[:, None] * D + d[None, :], acc, mask=g[:, None] < G)


@triton.jit
def _nibbles(words, j4, LO: tl.constexpr, MASK: tl.constexpr = 0xF):
    """int32 ``[BT, W, 1]`` words -> fp32 ``[BT, W, 4]`` codes of nibbles 0-3 (``LO``) or 4-7, exact.

    One AND/OR per code (a LOP3): nibble ``j`` kept in place at bits ``4j..4j+3`` of an fp32
    whose exponent makes its ulp ``2**-4j``, i.e. the value ``2**(23-4j) + c``; one subtract
    removes ``2**(23-4j)`` exactly.  Nibbles 4-7 take one shift per word (not per code).
    ``MASK``: the bits of each nibble kept (0x7: its low three, the dense 3-bit cache's fields).
    """
    w = words if LO else words >> 16
    expo = (150 - 4 * j4) << 23                                   # fp32 bits of 2**(23-4j)
    f = ((w & (MASK << (4 * j4))) | expo).to(tl.float32, bitcast=True)
    return f - expo.to(tl.float32, bitcast=True)


@triton.jit
def kv3_attend_span(q_lo, q_hi, qsum, kc_ptr, ks_ptr, vc_ptr, vs_ptr, base, t_lo, t_hi, sm_scale,
                    W: tl.constexpr, BT: tl.constexpr, LN: tl.constexpr, LB: tl.constexpr,
                    NUM_STAGES: tl.constexpr = 1):
    """Online-softmax attention of one query head over cache rows ``base + [t_lo, t_hi)`` (CUDA cores).

    ``q_lo``/``q_hi`` are ``[1, W, 4]`` fp32 (``d = 8w + j`` and ``8w + 4 + j``).  Each code is
    decoded in registers (:func:`_nibbles`) into a ``[BT, W, 4]`` tile with the word layout of the
    loads, ``q·c`` is a register FMA and the ``p·s·c`` terms are accumulated per element and
    reduced over the context once, at the end.  The running maximum is moved (and the
    accumulators rescaled) only when a tile's maximum exceeds it by ``RESCALE_AT`` (= 8, so every
    ``p <= e^8``).  Returns ``(m, l, o_lo, o_hi)``: the running max, the softmax denominator and
    the un-normalised output halves ``[W, 4]``.  ``NUM_STAGES > 1`` software-pipelines the tile
    loads (the next tiles are fetched while this one is decoded).
    """
    j4 = tl.arange(0, 4)[None, None, :]
    w3 = tl.arange(0, W)[None, :, None]
    m_i = tl.full((), -float("inf"), tl.float32)
    l_i = tl.zeros((), tl.float32)
    cs = tl.zeros((), tl.float32)              # sum_t p_t s_t L_t (V offset term)
    acc_lo = tl.zeros((BT, W, 4), tl.float32)  # sum_t p_t s_t c_t, per t (reduced at the end)
    acc_hi = tl.zeros((BT, W, 4), tl.float32)
    tt = tl.arange(0, BT)
    for t0 in tl.range(t_lo, t_hi, BT, num_stages=NUM_STAGES):
        t = t0 + tt
        live = t < t_hi
        Lt = tl.where(t == 0, LB * 1.0, LN * 1.0)
        t3 = (base + t)[:, None, None]
        l3 = live[:, None, None]
        kw = tl.load(kc_ptr + t3 * W + w3, mask=l3, other=0)                        # [BT, W, 1]
        qc3 = _nibbles(kw, j4, True) * q_lo + _nibbles(kw, j4, False) * q_hi
        qc = tl.sum(tl.sum(qc3, axis=2), axis=1)                                    # [BT]
        ks = tl.load(ks_ptr + base + t, mask=live, other=0.0)
        sc = (sm_scale * ks) * (2.0 * qc - Lt * qsum)
        sc = tl.where(live, sc, -float("inf"))
        m_tile = tl.max(sc, axis=0)
        if m_tile > m_i + RESCALE_AT:   # lazy rescale: the running max moves only when a score
            alpha = tl.exp(m_i - m_tile)  # exceeds it by RESCALE_AT (p <= e^8 otherwise, no overflow)
            l_i = l_i * alpha
            cs = cs * alpha
            acc_lo = acc_lo * alpha
            acc_hi = acc_hi * alpha
            m_i = m_tile
        p = tl.exp(sc - m_i)
        l_i = l_i + tl.sum(p, axis=0)
        vs = tl.load(vs_ptr + base + t, mask=live, other=0.0)
        ps = p * vs
        cs = cs + tl.sum(ps * Lt, axis=0)
        vw = tl.load(vc_ptr + t3 * W + w3, mask=l3, other=0)
        ps3 = ps[:, None, None]
        acc_lo = acc_lo + ps3 * _nibbles(vw, j4, True)
        acc_hi = acc_hi + ps3 * _nibbles(vw, j4, False)
    o_lo = 2.0 * tl.sum(acc_lo, axis=0) - cs                                        # [W, 4]
    o_hi = 2.0 * tl.sum(acc_hi, axis=0) - cs
    return m_i, l_i, o_lo, o_hi


@triton.jit
def _attn_split_fma_kernel(q_ptr, kc_ptr, ks_ptr, vc_ptr, vs_ptr, m_ptr, l_ptr, o_ptr,
                           T, T_max, chunk, sm_scale,
                           G: tl.constexpr, D: tl.constexpr, BT: tl.constexpr, S: tl.constexpr,
                           LN: tl.constexpr, LB: tl.constexpr, NUM_STAGES: tl.constexpr):
    """CUDA-core variant: one program per (query head, context split), no tensor-core tile.

    For MHA (G = 1, LLaMA-7B) the tensor-core kernel fills 1 of 16 MMA rows and moves every
    decoded tile through shared memory; here the loop is :func:`kv3_attend_span`.  For G > 1
    every query head re-reads its KV head's codes (from L2).
    """
    r = tl.program_id(0)                       # b * Hq + q head
    sp = tl.program_id(1)
    W: tl.constexpr = D // 8
    bh = r // G                                # b * Hkv + kv head
    w3 = tl.arange(0, W)[None, :, None]
    j4 = tl.arange(0, 4)[None, None, :]
    qp = q_ptr + r.to(tl.int64) * D + 8 * w3 + j4
    q_lo = tl.load(qp).to(tl.float32)                                              # [1, W, 4]: d = 8w + j
    q_hi = tl.load(qp + 4).to(tl.float32)                                          # d = 8w + 4 + j
    qsum = tl.sum(tl.sum(tl.sum(q_lo + q_hi, axis=2), axis=1), axis=0)
    base = bh.to(tl.int64) * T_max
    t_lo = sp * chunk
    t_hi = tl.minimum(t_lo + chunk, T)
    m_i, l_i, o_lo, o_hi = kv3_attend_span(q_lo, q_hi, qsum, kc_ptr, ks_ptr, vc_ptr, vs_ptr, base, t_lo, t_hi,
                                           sm_scale, W, BT, LN, LB, NUM_STAGES)
    out = (r * S + sp).to(tl.int64)
    w2 = tl.arange(0, W)[:, None]
    j2 = tl.arange(0, 4)[None, :]
    tl.store(o_ptr + out * D + 8 * w2 + j2, o_lo)
    tl.store(o_ptr + out * D + 8 * w2 + 4 + j2, o_hi)
    tl.store(m_ptr + out, m_i)
    tl.store(l_ptr + out, l_i)


@triton.jit
def _attn_combine_kernel(m_ptr, l_ptr, o_ptr, y_ptr, S: tl.constexpr, SP: tl.constexpr, D: tl.constexpr):
    r = tl.program_id(0).to(tl.int64)          # (b, q head)
    s = tl.arange(0, SP)
    d = tl.arange(0, D)
    m = tl.load(m_ptr + r * S + s, mask=s < S, other=-float("inf"))
    l = tl.load(l_ptr + r * S + s, mask=s < S, other=0.0)
    o = tl.load(o_ptr + (r * S + s)[:, None] * D + d[None, :], mask=(s < S)[:, None], other=0.0)
    mx = tl.max(m, axis=0)
    w = tl.where(m == -float("inf"), 0.0, tl.exp(m - mx))
    y = tl.sum(o * w[:, None], axis=0) / tl.sum(l * w, axis=0)
    tl.store(y_ptr + r * D + d, y.to(y_ptr.dtype.element_ty))


def attention_config(B: int, Hkv: int, T: int, device_type: str = "cuda") -> dict:
    """The CUDA-core kernel (one program per query head), 16 positions per tile, 2 warps, about 8
    programs per SM (132 SMs): the fastest default of the H200 sweep (2026-12-01).  ``FMA=False``
    picks the tensor-core kernel (one program per KV head, for GQA)."""
    bt = 16
    s = max(1, min(256, triton.cdiv(132 * 8, B * Hkv), triton.cdiv(T, bt)))
    return dict(BT=bt, S=s, num_warps=2, USE_DOT=device_type == "cuda", FMA=True, num_stages=1)


def decode_attention(q: torch.Tensor, cache: QuantKVCache, T: int, sm_scale: float | None = None,
                     config: dict | None = None, *, tuned: ConfigTable = NO_TUNING) -> torch.Tensor:
    """Attention of one query token per sequence over the first ``T`` cached tokens.

    ``q [B, Hq, D]`` (post-RoPE), ``Hq`` a multiple of the cache's ``Hkv`` (GQA).
    Returns ``[B, Hq, D]`` in ``q``'s dtype.
    """
    check_tensor(q, "q", FLOAT_DTYPES, dim=3, device=cache.k_codes.device)
    check_device_usable(q, "q")
    B, H, T_max, D = cache.shape
    if q.shape[0] != B or q.shape[2] != D or q.shape[1] % H:
        raise ValueError(f"q must be [B={B}, Hq (multiple of {H}), D={D}], got {tuple(q.shape)}")
    if isinstance(T, bool) or not isinstance(T, int) or not 0 < T <= T_max:
        raise ValueError(f"T must be an int in [1, {T_max}], got {T!r}")
    if T > cache.written():
        raise ValueError(f"T={T} exceeds the {cache.written()} rows written to the cache")
    if D & (D - 1):
        raise ValueError(f"head_dim must be a power of two, got {D}")
    check_finite(q, "q")
    G = q.shape[1] // H
    sm = 1.0 / math.sqrt(D) if sm_scale is None else float(sm_scale)
    if not math.isfinite(sm) or sm <= 0:
        raise ValueError(f"sm_scale must be a positive finite float, got {sm_scale!r}")
    dims = dict(B=B, Hkv=H, G=G, D=D, T=ctx_bucket(T)) if q.device.type == "cuda" else None
    cfg = resolve_config("attention", attention_config(B, H, T, q.device.type), tuned, dims, config)
    use_dot = bool(cfg["USE_DOT"]) and q.dtype == torch.float16
    GP = max(16, next_pow2(G)) if use_dot else next_pow2(G)
    S = cfg["S"]
    chunk = triton.cdiv(triton.cdiv(T, S), cfg["BT"]) * cfg["BT"]
    Hq = q.shape[1]
    m = torch.empty(B * Hq * S, device=q.device, dtype=torch.float32)
    l = torch.empty_like(m)
    o = torch.empty(B * Hq * S, D, device=q.device, dtype=torch.float32)
    ptrs = dict(q_ptr=q, kc_ptr=cache.k_codes, ks_ptr=cache.k_scale, vc_ptr=cache.v_codes, vs_ptr=cache.v_scale,
                m_ptr=m, l_ptr=l, o_ptr=o)
    levels = dict(LN=2 ** cache.bits - 1, LB=2 ** cache.bos_bits - 1)
    if cfg["FMA"]:
        _attn_split_fma_kernel[(B * Hq, S)](
            **ptrs, T=T, T_max=T_max, chunk=chunk, sm_scale=sm,
            G=G, D=D, BT=cfg["BT"], S=S, **levels, NUM_STAGES=cfg.get("num_stages", 1), num_warps=cfg["num_warps"])
    else:
        _attn_split_kernel[(B * H, S)](
            **ptrs, T=T, T_max=T_max, Hkv=H, chunk=chunk, sm_scale=sm,
            G=G, GP=GP, D=D, BT=cfg["BT"], S=S, **levels, USE_DOT=use_dot, num_warps=cfg["num_warps"])
    y = torch.empty_like(q)
    _attn_combine_kernel[(B * Hq,)](m_ptr=m, l_ptr=l, o_ptr=o, y_ptr=y, S=S, SP=next_pow2(S), D=D, num_warps=4)
    return y


def reference_attention(q: torch.Tensor, k_deq: torch.Tensor, v_deq: torch.Tensor,
                        sm_scale: float | None = None) -> torch.Tensor:
    """float64 softmax attention of ``q [B, Hq, D]`` over dequantized ``[B, Hkv, T, D]`` (GQA)."""
    B, Hq, D = q.shape
    G = Hq // k_deq.shape[1]
    k = k_deq.double().repeat_interleave(G, dim=1)
    v = v_deq.double().repeat_interleave(G, dim=1)
    sm = 1.0 / math.sqrt(D) if sm_scale is None else sm_scale
    s = torch.einsum("bhd,bhtd->bht", q.double(), k) * sm
    return torch.einsum("bht,bhtd->bhd", torch.softmax(s, dim=-1), v)
