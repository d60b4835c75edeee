"""A dense 3-bit KV cache: 48 bytes per 128-value head row (the nibble layout of
``kernels/kv_attention.py`` takes 64), with the BOS row at 4 bits.

Codes and scales are those of ``model.quant.quantize_kv(bits=3, bos_bits=4)``, bit for bit (the
write kernel shares ``kv_quantize_codes`` with the nibble cache).

Layout (per layer, ``D`` = head_dim, a multiple of 32)
------------------------------------------------------
A 3-bit code ``c`` is split as ``c = lo + 4·hi``:

* ``lo``: int32 ``[B, Hkv, T_max, D/16]`` -- bits 0-1 of the code of element ``d = 16w + j`` at
  bits ``[2j, 2j+1]`` of word ``w``;
* ``hi``: int32 ``[B, Hkv, T_max, D/32]`` -- bit 2 of the code of element ``d = 32w + l`` at bit
  ``l`` of word ``w``;
* ``bos``: int32 ``[B, Hkv, D/32]`` -- bit 3 of the BOS row's 4-bit codes (position 0 only), in the
  ``hi`` word layout;
* ``scale``: fp32 ``[B, Hkv, T_max]`` = ``s / L`` as in the nibble cache.

Decoding a field takes one shift, one AND/OR (``(f | 0x4B000000)`` read as fp32 is ``2**23 + f``)
and one subtract, for the lo and for the hi field, and one FMA to join ``lo + 4·hi`` (the nibble
layout: one AND/OR and one subtract per code), which the attention kernel pays to read a quarter
fewer bytes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from kernels.checks import FLOAT_DTYPES, check_device_usable, check_finite, check_tensor, next_pow2
from kernels.kv_attention import _attn_combine_kernel, check_kv_write, kv_quantize_codes

LN3, LB4 = 7, 15          # levels of the 3-bit rows and of the 4-bit BOS row


@dataclass(kw_only=True)
class Dense3KVCache:
    """One layer's dense 3-bit K and V caches (module docstring); ``length`` rows written so far."""

    k_lo: torch.Tensor
    k_hi: torch.Tensor
    k_bos: torch.Tensor
    k_scale: torch.Tensor
    v_lo: torch.Tensor
    v_hi: torch.Tensor
    v_bos: torch.Tensor
    v_scale: torch.Tensor
    length: int = 0

    def __post_init__(self) -> None:
        B, H, T, W16 = self.k_lo.shape if self.k_lo.dim() == 4 else (0, 0, 0, 0)
        want = {"lo": (B, H, T, W16), "hi": (B, H, T, W16 // 2), "bos": (B, H, W16 // 2), "scale": (B, H, T)}
        for side in ("k", "v"):
            for part, shape in want.items():
                t = getattr(self, f"{side}_{part}")
                check_tensor(t, f"Dense3KVCache.{side}_{part}", (torch.float32,) if part == "scale" else (torch.int32,),
                             dim=len(shape), device=self.k_lo.device)
                if tuple(t.shape) != shape:
                    raise ValueError(f"Dense3KVCache.{side}_{part} must have shape {shape}, got {tuple(t.shape)}")
        if isinstance(self.length, bool) or not isinstance(self.length, int) or not 0 <= self.length <= T:
            raise ValueError(f"Dense3KVCache.length must be an int in [0, {T}], got {self.length!r}")

    @classmethod
    def allocate(cls, B: int, Hkv: int, T_max: int, D: int, device) -> "Dense3KVCache":
        for name, v in (("B", B), ("Hkv", Hkv), ("T_max", T_max), ("D", D)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if D % 32 or D & (D - 1):
            raise ValueError(f"head_dim must be a power of two and a multiple of 32 (32 hi bits per word), got {D}")

        def z(*shape, dtype=torch.int32):
            return torch.zeros(*shape, dtype=dtype, device=device)

        return cls(k_lo=z(B, Hkv, T_max, D // 16), k_hi=z(B, Hkv, T_max, D // 32), k_bos=z(B, Hkv, D // 32),
                   k_scale=z(B, Hkv, T_max, dtype=torch.float32), v_lo=z(B, Hkv, T_max, D // 16),
                   v_hi=z(B, Hkv, T_max, D // 32), v_bos=z(B, Hkv, D // 32),
                   v_scale=z(B, Hkv, T_max, dtype=torch.float32))

    @property
    def shape(self) -> tuple[int, int, int, int]:
        B, H, T, W = self.k_lo.shape
        return B, H, T, W * 16

    def nbytes(self, T: int) -> float:
        """Bytes the attention over ``T`` rows reads (codes and scales of K and V)."""
        B, H, _, D = self.shape
        return 2.0 * B * H * T * (3 * D // 8 + 4)


# ----------------------------------------------------------------------------- write
@triton.jit
def _dense3_write_kernel(x_ptr, lo_ptr, hi_ptr, bos_ptr, scale_ptr, T_new, T_max, pos0, stride_xr,
                         D: tl.constexpr):
    r = tl.program_id(0)                       # row = (b, h, t) of the new tokens
    t = r % T_new
    bh = (r // T_new).to(tl.int64)
    pos = pos0 + t
    x = tl.load(x_ptr + r.to(tl.int64) * stride_xr + tl.arange(0, D))
    c, scale = kv_quantize_codes(x, pos, 7, 15)
    row = bh * T_max + pos
    lo = tl.sum(tl.reshape(c & 3, (D // 16, 16)) << (2 * tl.arange(0, 16))[None, :], axis=1)
    hi = tl.sum(tl.reshape((c >> 2) & 1, (D // 32, 32)) << tl.arange(0, 32)[None, :], axis=1)
    tl.store(lo_ptr + row * (D // 16) + tl.arange(0, D // 16), lo)
    tl.store(hi_ptr + row * (D // 32) + tl.arange(0, D // 32), hi)
    tl.store(scale_ptr + row, scale)
    if pos == 0:                               # the BOS row's fourth bit
        b3 = tl.sum(tl.reshape((c >> 3) & 1, (D // 32, 32)) << tl.arange(0, 32)[None, :], axis=1)
        tl.store(bos_ptr + bh * (D // 32) + tl.arange(0, D // 32), b3)


def dense3_write(cache: Dense3KVCache, k: torch.Tensor, v: torch.Tensor, pos0: int) -> None:
    """Quantize post-RoPE ``k, v [B, Hkv, T_new, D]`` into positions ``pos0 .. pos0+T_new-1``."""
    B, H, T_max, D = cache.shape
    T_new = check_kv_write(cache.shape, cache.k_lo.device, cache.length, k, v, pos0)
    for x, side in ((k, "k"), (v, "v")):
        _dense3_write_kernel[(B * H * T_new,)](
            x_ptr=x, lo_ptr=getattr(cache, f"{side}_lo"), hi_ptr=getattr(cache, f"{side}_hi"),
            bos_ptr=getattr(cache, f"{side}_bos"), scale_ptr=getattr(cache, f"{side}_scale"),
            T_new=T_new, T_max=T_max, pos0=pos0, stride_xr=D, D=D, num_warps=1, enable_fp_fusion=False)
    cache.length = max(cache.length, pos0 + T_new)


def dense3_read_codes(lo: torch.Tensor, hi: torch.Tensor, bos: torch.Tensor) -> torch.Tensor:
    """Host helper for checks: int8 codes ``[B, H, T, D]`` from one side's ``lo``, ``hi`` and ``bos``."""
    lw = lo.to(torch.int64) & 0xFFFFFFFF
    hw = hi.to(torch.int64) & 0xFFFFFFFF
    c_lo = ((lw.unsqueeze(-1) >> (2 * torch.arange(16, device=lo.device))) & 3).flatten(-2)
    c_hi = ((hw.unsqueeze(-1) >> torch.arange(32, device=lo.device)) & 1).flatten(-2)
    c = c_lo + 4 * c_hi
    b3 = (((bos.to(torch.int64) & 0xFFFFFFFF).unsqueeze(-1) >> torch.arange(32, device=lo.device)) & 1).flatten(-2)
    c[:, :, 0] += 8 * b3
    return c.to(torch.int8)


# ----------------------------------------------------------------------------- attention
@triton.jit
def _fields(words, NF: tl.constexpr, BITS: tl.constexpr):
    """int32 ``[BT, W, 1]`` words -> fp32 ``[BT, W·NF]`` of their ``BITS``-wide fields, exact, in element order:
    one shift and one AND/OR per field (``(f | 0x4B000000)`` read as fp32 is ``2**23 + f``), one subtract."""
    j = tl.arange(0, NF)[None, None, :]
    f = (((words >> (BITS * j)) & ((1 << BITS) - 1)) | 0x4B000000).to(tl.float32, bitcast=True) - 8388608.0
    return tl.reshape(f, (f.shape[0], f.shape[1] * NF))


@triton.jit
def _codes3(lo_ptr, hi_ptr, rows, live, bos3, t, BT: tl.constexpr, D: tl.constexpr):
    """fp32 codes ``[BT, D]`` of the cache rows ``rows`` (``bos3``: 8·bit 3 of the BOS row, added at t = 0)."""
    w16 = tl.arange(0, D // 16)[None, :, None]
    w32 = tl.arange(0, D // 32)[None, :, None]
    lw = tl.load(lo_ptr + rows[:, None, None] * (D // 16) + w16, mask=live[:, None, None], other=0)
    hw = tl.load(hi_ptr + rows[:, None, None] * (D // 32) + w32, mask=live[:, None, None], other=0)
    c = _fields(lw, 16, 2) + 4.0 * _fields(hw, 32, 1)
    return c + tl.where(t == 0, 1.0, 0.0)[:, None] * bos3[None, :]


@triton.jit
def _dense3_split_kernel(q_ptr, klo_ptr, khi_ptr, kbos_ptr, ks_ptr, vlo_ptr, vhi_ptr, vbos_ptr, vs_ptr,
                         m_ptr, l_ptr, o_ptr, T, T_max, chunk, sm_scale,
                         D: tl.constexpr, BT: tl.constexpr, S: tl.constexpr, NUM_STAGES: tl.constexpr):
    """One program per (sequence·head, context split): online softmax over its span, CUDA cores (MHA)."""
    r = tl.program_id(0)                       # b * H + h
    sp = tl.program_id(1)
    d = tl.arange(0, D)
    q = tl.load(q_ptr + r.to(tl.int64) * D + d).to(tl.float32)
    qsum = tl.sum(q, axis=0)
    base = r.to(tl.int64) * T_max
    kb = tl.load(kbos_ptr + r.to(tl.int64) * (D // 32) + d // 32)              # each element's word
    vb = tl.load(vbos_ptr + r.to(tl.int64) * (D // 32) + d // 32)
    kbos3 = 8.0 * ((kb >> (d % 32)) & 1).to(tl.float32)                         # 8 · bit 3 of the BOS code
    vbos3 = 8.0 * ((vb >> (d % 32)) & 1).to(tl.float32)
    m_i = tl.full((), -float("inf"), tl.float32)
    l_i = tl.zeros((), tl.float32)
    cs = tl.zeros((), tl.float32)              # sum_t p_t s_t L_t (V offset term)
    acc = tl.zeros((BT, D), tl.float32)        # sum_t p_t s_t c_t, per t (reduced at the end)
    tt = tl.arange(0, BT)
    t_lo = sp * chunk
    t_hi = tl.minimum(t_lo + chunk, T)
    for t0 in tl.range(t_lo, t_hi, BT, num_stages=NUM_STAGES):
        t = t0 + tt
        live = t < t_hi
        rows = base + t
        Lt = tl.where(t == 0, 15.0, 7.0)
        kc = _codes3(klo_ptr, khi_ptr, rows, live, kbos3, t, BT, D)
        qc = tl.sum(kc * q[None, :], axis=1)                                      # [BT]
        ks = tl.load(ks_ptr + rows, mask=live, other=0.0)
        sc = tl.where(live, (sm_scale * ks) * (2.0 * qc - Lt * qsum), -float("inf"))
        m_new = tl.maximum(m_i, tl.max(sc, axis=0))
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(sc - m_new)
        l_i = l_i * alpha + tl.sum(p, axis=0)
        vs = tl.load(vs_ptr + rows, mask=live, other=0.0)
        ps = p * vs
        cs = cs * alpha + tl.sum(ps * Lt, axis=0)
        vc = _codes3(vlo_ptr, vhi_ptr, rows, live, vbos3, t, BT, D)
        acc = acc * alpha + ps[:, None] * vc
        m_i = m_new
    o = 2.0 * tl.sum(acc, axis=0) - cs
    out = (r * S + sp).to(tl.int64)
    tl.store(o_ptr + out * D + d, o)
    tl.store(m_ptr + out, m_i)
    tl.store(l_ptr + out, l_i)


def dense3_config(B: int, H: int, T: int) -> dict:
    """16 positions per tile, 4 warps, about 8 programs per SM (132 SMs), as the nibble kernel's default."""
    bt = 16
    return dict(BT=bt, S=max(1, min(256, triton.cdiv(132 * 8, B * H), triton.cdiv(T, bt))), num_warps=4,
                num_stages=1)


def dense3_attention(q: torch.Tensor, cache: Dense3KVCache, T: int, sm_scale: float | None = None,
                     config: dict | None = None) -> torch.Tensor:
    """Attention of one query token per sequence (``q [B, H, D]``, MHA, post-RoPE) over the first ``T``
    cached tokens; returns ``[B, H, D]`` in ``q``'s dtype."""
    B, H, T_max, D = cache.shape
    check_tensor(q, "q", FLOAT_DTYPES, dim=3, device=cache.k_lo.device)
    check_device_usable(q, "q")
    if tuple(q.shape) != (B, H, D):
        raise ValueError(f"q must be [B={B}, H={H}, D={D}] (MHA), got {tuple(q.shape)}")
    if isinstance(T, bool) or not isinstance(T, int) or not 0 < T <= cache.length:
        raise ValueError(f"T must be an int in [1, {cache.length}] (the rows written), got {T!r}")
    check_finite(q, "q")
    sm = 1.0 / math.sqrt(D) if sm_scale is None else float(sm_scale)
    if not math.isfinite(sm) or sm <= 0:
        raise ValueError(f"sm_scale must be a positive finite float, got {sm_scale!r}")
    cfg = dict(dense3_config(B, H, T), **(config or {}))
    unknown = set(cfg) - {"BT", "S", "num_warps", "num_stages"}
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}")
    if cfg["BT"] < 1 or cfg["BT"] & (cfg["BT"] - 1):
        raise ValueError(f"BT must be a power of two, got {cfg['BT']}")
    S = min(cfg["S"], triton.cdiv(T, cfg["BT"]))
    chunk = triton.cdiv(triton.cdiv(T, S), cfg["BT"]) * cfg["BT"]
    S = triton.cdiv(T, chunk)
    m = torch.empty(B * H * S, device=q.device, dtype=torch.float32)
    l = torch.empty_like(m)
    o = torch.empty(B * H * S, D, device=q.device, dtype=torch.float32)
    _dense3_split_kernel[(B * H, S)](
        q_ptr=q, klo_ptr=cache.k_lo, khi_ptr=cache.k_hi, kbos_ptr=cache.k_bos, ks_ptr=cache.k_scale,
        vlo_ptr=cache.v_lo, vhi_ptr=cache.v_hi, vbos_ptr=cache.v_bos, vs_ptr=cache.v_scale,
        m_ptr=m, l_ptr=l, o_ptr=o, T=T, T_max=T_max, chunk=chunk, sm_scale=sm,
        D=D, BT=cfg["BT"], S=S, NUM_STAGES=cfg["num_stages"], num_warps=cfg["num_warps"])
    y = torch.empty_like(q)
    _attn_combine_kernel[(B * H,)](m_ptr=m, l_ptr=l, o_ptr=o, y_ptr=y, S=S, SP=next_pow2(S), D=D, num_warps=4)
    return y
