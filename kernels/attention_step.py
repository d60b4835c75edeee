"""One decode step of attention in one launch: RoPE, cache write, split-context attention, combine.

The decode step of a decoder block (B sequences, one new token each, MHA) needs, after the QKV
projection: RoPE on the new ``q`` and ``k``, the new ``k``/``v`` written into the cache (FP16, or
3-bit codes for a4.8), attention of ``q`` over positions ``0..pos`` and the combination of the
context splits.  Done as separate kernels that is 5-8 launches of a few µs each; here it is one:

* grid ``(B·H, S)``: program ``(b·H + h, s)`` owns context positions ``[s·chunk, (s+1)·chunk)``;
* every program applies RoPE to its head's ``q`` (the fp16 arithmetic of the torch glue:
  ``fp16(fp16(x·cos) + fp16(rot(x)·sin))``, cos/sin from a precomputed fp16 table);
* the program whose span holds ``pos`` also applies RoPE to ``k``, writes ``k`` and ``v`` into the
  cache row ``pos`` (FP16 as is; KV3 with the arithmetic of ``kv_write``, bit-identical to
  ``model.quant.quantize_kv``, in nibbles or in the dense 3-bit layout), then a CTA barrier makes
  the row visible to its own loads;
* the span's online softmax runs (KV3: ``kv_attention.kv3_attend_span``, or
  ``kv_dense3.dense3_attend_span`` on the dense layout; FP16: fp32 dot products of fp16 rows);
* each program writes its partial ``(m, l, o)``; an atomic ticket per head elects the last one to
  finish, which combines the ``S`` partials and writes the head's output (fp16).  The ticket
  resets itself, so the step can be replayed in a CUDA graph.

Exactness: the cache write is bit-exact (FP16 copy; KV3 codes and scales); the attention output
is fp32 arithmetic in another order than any reference, checked against a float64 softmax to a
relative error < 1e-5 on the CPU.  Calls on one device must not overlap (one stream).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from kernels.checks import check_device_usable, check_finite, check_shape, check_tensor, next_pow2
from kernels.configs import NO_TUNING, ConfigTable, ctx_bucket, resolve_config
from kernels.kv_attention import QuantKVCache, kv3_attend_span, kv_quantize_row
from kernels.kv_dense3 import LB4, LN3, Dense3KVCache, dense3_attend_span, dense3_quantize_row, dense3_store_output
from kernels.tickets import ticket_counters

#: the cache layouts of the step (constexpr ``KV`` of :func:`attention_item`)
KV_LAYOUTS = {"fp16": 0, "nibble": 1, "dense3": 2}


@dataclass(kw_only=True)
class Fp16KVCache:
    """One layer's FP16 K and V caches ``[B, H, T_max, D]`` (b1.58 and fp16 datapaths)."""

    k: torch.Tensor
    v: torch.Tensor

    @classmethod
    def allocate(cls, B: int, H: int, T_max: int, D: int, device) -> "Fp16KVCache":
        for name, v in (("B", B), ("H", H), ("T_max", T_max), ("D", D)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        k = torch.zeros(B, H, T_max, D, dtype=torch.float16, device=device)
        return cls(k=k, v=torch.zeros_like(k))

    @property
    def shape(self) -> tuple[int, int, int, int]:
        B, H, T, D = self.k.shape
        return B, H, T, D


#: the caches an attention step takes
KVCache = QuantKVCache | Fp16KVCache | Dense3KVCache


def rope_tables(T_max: int, D: int, device, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """fp16 ``cos, sin [T_max, D]`` of rotate-half RoPE (angles in fp32, as the block's torch glue)."""
    inv = 1.0 / (base ** (torch.arange(0, D, 2, device=device, dtype=torch.float32) / D))
    ang = torch.arange(0, T_max, device=device, dtype=torch.float32)[:, None] * inv[None, :]
    ang = torch.cat((ang, ang), dim=-1)
    return ang.cos().to(torch.float16).contiguous(), ang.sin().to(torch.float16).contiguous()


@triton.jit
def _rope16(x_ptr, offs, cs_ptr, sn_ptr, D: tl.constexpr):
    """fp16 rotate-half RoPE of the row at ``x_ptr`` at element offsets ``offs`` (any shape)."""
    HALF: tl.constexpr = D // 2
    x = tl.load(x_ptr + offs).to(tl.float32)
    xr = tl.load(x_ptr + (offs + HALF) % D).to(tl.float32)
    rot = tl.where(offs < HALF, -xr, xr)
    c = tl.load(cs_ptr + offs).to(tl.float32)
    s = tl.load(sn_ptr + offs).to(tl.float32)
    a = (x * c).to(tl.float16).to(tl.float32)
    b = (rot * s).to(tl.float16).to(tl.float32)
    return (a + b).to(tl.float16)


@triton.jit
def _rope_part(row_q, i: tl.constexpr, cs, sn, D: tl.constexpr):
    """Roped q of one head at the dense 3-bit kernel's elements ``32g + 8i + j`` and ``+ 4``, fp32 ``[1, D/32, 4]``."""
    offs = 32 * tl.arange(0, D // 32)[None, :, None] + 8 * i + tl.arange(0, 4)[None, None, :]
    return _rope16(row_q, offs, cs, sn, D).to(tl.float32), _rope16(row_q, offs + 4, cs, sn, D).to(tl.float32)


@triton.jit
def _fp16_attend_span(q, k_ptr, v_ptr, base, t_lo, t_hi, sm_scale, D: tl.constexpr, BT: tl.constexpr,
                      NUM_STAGES: tl.constexpr):
    """Online softmax of fp32 ``q [D]`` over fp16 cache rows ``base + [t_lo, t_hi)``; ``(m, l, o[D])``."""
    d = tl.arange(0, D)
    tt = tl.arange(0, BT)
    m_i = tl.full((), -float("inf"), tl.float32)
    l_i = tl.zeros((), tl.float32)
    acc = tl.zeros((D,), tl.float32)
    for t0 in tl.range(t_lo, t_hi, BT, num_stages=NUM_STAGES):
        t = t0 + tt
        live = t < t_hi
        rows = (base + t)[:, None] * D + d[None, :]
        k = tl.load(k_ptr + rows, mask=live[:, None], other=0.0).to(tl.float32)
        sc = tl.where(live, tl.sum(k * q[None, :], axis=1) * sm_scale, -float("inf"))
        m_new = tl.maximum(m_i, tl.max(sc, axis=0))
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(sc - m_new)
        l_i = l_i * alpha + tl.sum(p, axis=0)
        v = tl.load(v_ptr + rows, mask=live[:, None], other=0.0).to(tl.float32)
        acc = acc * alpha + tl.sum(p[:, None] * v, axis=0)
        m_i = m_new
    return m_i, l_i, acc


@triton.jit(do_not_specialize=["pos"])
def _attention_step_kernel(qkv_ptr, cos_ptr, sin_ptr, kc_ptr, ks_ptr, kb_ptr, vc_ptr, vs_ptr, vb_ptr,
                           m_ptr, l_ptr, o_ptr, ticket_ptr, y_ptr,
                           pos, T_max, H, chunk, sm_scale, stride_b,
                           D: tl.constexpr, BT: tl.constexpr, S: tl.constexpr, SP: tl.constexpr,
                           KV: tl.constexpr, LN: tl.constexpr, LB: tl.constexpr, PDL: tl.constexpr,
                           NUM_STAGES: tl.constexpr):
    if PDL:                                    # programmatic dependent launch: qkv is ready from here
        tl.extra.cuda.gdc_wait()
        tl.extra.cuda.gdc_launch_dependents()
    attention_item(tl.program_id(0), tl.program_id(1), qkv_ptr, cos_ptr, sin_ptr, kc_ptr, ks_ptr, kb_ptr, vc_ptr,
                   vs_ptr, vb_ptr, m_ptr, l_ptr, o_ptr, ticket_ptr, y_ptr, pos, T_max, H, chunk, sm_scale, stride_b,
                   D, BT, S, SP, KV, LN, LB, NUM_STAGES)


@triton.jit
def attention_item(r, sp, qkv_ptr, cos_ptr, sin_ptr, kc_ptr, ks_ptr, kb_ptr, vc_ptr, vs_ptr, vb_ptr,
                   m_ptr, l_ptr, o_ptr, ticket_ptr, y_ptr, pos, T_max, H, chunk, sm_scale, stride_b,
                   D: tl.constexpr, BT: tl.constexpr, S: tl.constexpr, SP: tl.constexpr,
                   KV: tl.constexpr, LN: tl.constexpr, LB: tl.constexpr, NUM_STAGES: tl.constexpr):
    """Row ``r = b·H + h``, context span ``sp`` of the attention step (the span holding ``pos``
    ropes k and writes the cache row first; the last span of a row to finish combines).  ``KV``:
    the cache layout (:data:`KV_LAYOUTS`); ``kb_ptr``/``vb_ptr`` the dense layout's BOS words."""
    r = tl.cast(r, tl.int32)                   # a loop counter (persistent block) or a program id
    sp = tl.cast(sp, tl.int32)
    b = r // H
    h = r % H
    W: tl.constexpr = D // 8
    row_q = qkv_ptr + b.to(tl.int64) * stride_b + h * D
    cs = cos_ptr + pos * D
    sn = sin_ptr + pos * D
    base = r.to(tl.int64) * T_max
    T = pos + 1
    t_lo = sp * chunk
    t_hi = tl.minimum(t_lo + chunk, T)
    d = tl.arange(0, D)
    if sp == pos // chunk:                     # this span holds the new token: rope k, write the cache row
        kr = _rope16(row_q + H * D, d, cs, sn, D)
        vr = tl.load(row_q + 2 * H * D + d)
        if KV == 2:
            dense3_quantize_row(kr, kc_ptr, kb_ptr + r.to(tl.int64) * (D // 8), ks_ptr, base + pos, pos, D)
            dense3_quantize_row(vr, vc_ptr, vb_ptr + r.to(tl.int64) * (D // 8), vs_ptr, base + pos, pos, D)
        elif KV == 1:
            kv_quantize_row(kr, kc_ptr, ks_ptr, base + pos, pos, D, LN, LB)
            kv_quantize_row(vr, vc_ptr, vs_ptr, base + pos, pos, D, LN, LB)
        else:
            tl.store(kc_ptr + (base + pos) * D + d, kr)
            tl.store(vc_ptr + (base + pos) * D + d, vr)
        tl.debug_barrier()                     # the row is visible to this CTA's loads below
    y_row = y_ptr + b.to(tl.int64) * (H * D) + h * D
    out = (r * S + sp).to(tl.int64)
    if KV == 2:
        NG: tl.constexpr = D // 32
        q0l, q0h = _rope_part(row_q, 0, cs, sn, D)
        q1l, q1h = _rope_part(row_q, 1, cs, sn, D)
        q2l, q2h = _rope_part(row_q, 2, cs, sn, D)
        q3l, q3h = _rope_part(row_q, 3, cs, sn, D)
        m_i, l_i, o0l, o0h, o1l, o1h, o2l, o2h, o3l, o3h = dense3_attend_span(
            q0l, q0h, q1l, q1h, q2l, q2h, q3l, q3h, kc_ptr, kb_ptr + r.to(tl.int64) * (D // 8), ks_ptr, vc_ptr,
            vb_ptr + r.to(tl.int64) * (D // 8), vs_ptr, base, t_lo, t_hi, sm_scale, NG, BT, NUM_STAGES)
        if S == 1:
            dense3_store_output(y_row, o0l, o0h, o1l, o1h, o2l, o2h, o3l, o3h, l_i, NG)
        else:
            dense3_store_output(o_ptr + out * D, o0l, o0h, o1l, o1h, o2l, o2h, o3l, o3h, 1.0, NG)
    elif KV == 1:
        w3 = tl.arange(0, W)[None, :, None]
        j4 = tl.arange(0, 4)[None, None, :]
        q_lo = _rope16(row_q, 8 * w3 + j4, cs, sn, D).to(tl.float32)              # [1, W, 4]
        q_hi = _rope16(row_q, 8 * w3 + 4 + j4, cs, sn, D).to(tl.float32)
        qsum = tl.sum(tl.sum(tl.sum(q_lo + q_hi, axis=2), axis=1), axis=0)
        m_i, l_i, o_lo, o_hi = kv3_attend_span(q_lo, q_hi, qsum, kc_ptr, ks_ptr, vc_ptr, vs_ptr, base, t_lo, t_hi,
                                               sm_scale, W, BT, LN, LB, NUM_STAGES)
        d_lo = 8 * tl.arange(0, W)[:, None] + tl.arange(0, 4)[None, :]             # [W, 4]
        if S == 1:
            tl.store(y_row + d_lo, (o_lo / l_i).to(y_ptr.dtype.element_ty))
            tl.store(y_row + d_lo + 4, (o_hi / l_i).to(y_ptr.dtype.element_ty))
        else:
            tl.store(o_ptr + out * D + d_lo, o_lo)
            tl.store(o_ptr + out * D + d_lo + 4, o_hi)
    else:
        q = _rope16(row_q, d, cs, sn, D).to(tl.float32)
        m_i, l_i, o = _fp16_attend_span(q, kc_ptr, vc_ptr, base, t_lo, t_hi, sm_scale, D, BT, NUM_STAGES)
        if S == 1:
            tl.store(y_row + d, (o / l_i).to(y_ptr.dtype.element_ty))
        else:
            tl.store(o_ptr + out * D + d, o)
    if S > 1:
        tl.store(m_ptr + out, m_i)
        tl.store(l_ptr + out, l_i)
        tl.debug_barrier()                                  # every thread's stores precede the ticket
        ticket = tl.atomic_add(ticket_ptr + r, 1, sem="acq_rel")
        tl.debug_barrier()
        if ticket == S - 1:                                 # last split of this head: combine
            s = tl.arange(0, SP)
            ps = (r * S + s).to(tl.int64)
            mm = tl.load(m_ptr + ps, mask=s < S, other=-float("inf"), cache_modifier=".cg")
            ll = tl.load(l_ptr + ps, mask=s < S, other=0.0, cache_modifier=".cg")
            oo = tl.load(o_ptr + ps[:, None] * D + d[None, :], mask=(s < S)[:, None], other=0.0,
                         cache_modifier=".cg")
            mx = tl.max(mm, axis=0)
            wgt = tl.where(mm == -float("inf"), 0.0, tl.exp(mm - mx))
            yv = tl.sum(oo * wgt[:, None], axis=0) / tl.sum(ll * wgt, axis=0)
            tl.store(y_row + d, yv.to(y_ptr.dtype.element_ty))
            tl.atomic_xchg(ticket_ptr + r, 0, sem="relaxed")


_WORKSPACES: dict[tuple, tuple[torch.Tensor, ...]] = {}


def _workspace(device: torch.device, B: int, H: int, S: int, D: int) -> tuple[torch.Tensor, ...]:
    """Partials ``m, l, o`` and the self-resetting tickets of one (B, H, S, D) shape."""
    key = (str(device), B, H, S, D)
    if key not in _WORKSPACES:
        n = B * H * S
        _WORKSPACES[key] = (torch.empty(n, device=device, dtype=torch.float32),
                            torch.empty(n, device=device, dtype=torch.float32),
                            torch.empty(n, D, device=device, dtype=torch.float32),
                            ticket_counters(device, B * H, "attention_step"))
    return _WORKSPACES[key]


def attention_step_config(B: int, H: int, T: int, kv3: bool) -> dict:
    """Small programs (2 warps, 16 positions per tile) and about 8 per SM (132 SMs): the fastest of
    the H200 sweep (2026-12-01) at B = 1 and B = 8."""
    bt = 16
    s = max(1, min(256, triton.cdiv(132 * 8, B * H), triton.cdiv(T, bt)))
    return dict(BT=bt, S=s, num_warps=2, num_stages=1)


def attention_step(qkv: torch.Tensor, cache: KVCache, pos: int, cos: torch.Tensor,
                   sin: torch.Tensor, *, sm_scale: float | None = None, config: dict | None = None,
                   tuned: ConfigTable = NO_TUNING, pdl: bool = False) -> torch.Tensor:
    """Attention of the new token at position ``pos`` (MHA) in one launch; returns ``[B, H·D]`` fp16.

    ``qkv [B, 3·H·D]`` fp16: the un-roped q, k, v of the new token (the fused QKV projection's
    output); ``cache`` a :class:`QuantKVCache` (3/4-bit nibbles, a4.8), a :class:`Dense3KVCache` (dense
    3-bit) or an :class:`Fp16KVCache`, whose rows ``0..pos-1`` hold the past; row ``pos`` is written
    here.  ``cos, sin`` from :func:`rope_tables`.
    """
    args, meta, grid = attention_step_args(qkv, cache, pos, cos, sin, None, sm_scale=sm_scale, config=config,
                                           tuned=tuned)
    y = args["y_ptr"]
    pdl = bool(pdl) and qkv.device.type == "cuda"
    opts = dict(launch_pdl=True) if pdl else {}
    _attention_step_kernel[grid](**args, **meta, PDL=pdl, enable_fp_fusion=False, **opts)
    if not isinstance(cache, Fp16KVCache):
        cache.mark_written(pos + 1)
    return y


def attention_step_args(qkv: torch.Tensor, cache: KVCache, pos: int, cos: torch.Tensor,
                        sin: torch.Tensor, y: torch.Tensor | None, *, sm_scale: float | None = None,
                        config: dict | None = None, tuned: ConfigTable = NO_TUNING,
                        splits: int | None = None, qkv_ready: bool = True) -> tuple[dict, dict, tuple[int, int]]:
    """Checked kernel arguments of one attention step into ``y [B, H·D]`` fp16 (allocated when
    None): ``(tensors and
    scalars, constexprs and launch options, grid (B·H, S))``.  ``splits`` overrides the number of
    context spans per row (the persistent decode block spreads rows x spans over its programs);
    ``qkv_ready=False``: ``qkv`` is written by the same launch (its content is not scanned)."""
    layout = _layout(cache)
    kv3 = layout != "fp16"
    dev = cache.k_codes.device if kv3 else cache.k.device
    B, H, T_max, D = cache.shape
    check_tensor(qkv, "qkv", (torch.float16,), dim=2, device=dev)
    check_device_usable(qkv, "qkv")
    if tuple(qkv.shape) != (B, 3 * H * D):
        raise ValueError(f"qkv must be [B={B}, 3*H*D={3 * H * D}] (q, k, v of one token), got {tuple(qkv.shape)}")
    if y is None:
        y = torch.empty(B, H * D, device=dev, dtype=torch.float16)
    check_tensor(y, "y", (torch.float16,), dim=2, device=dev)
    check_shape(y, "y", (B, H * D))
    for name, t in (("cos", cos), ("sin", sin)):
        check_tensor(t, name, (torch.float16,), dim=2, device=dev)
        if t.shape[1] != D or t.shape[0] < T_max:
            raise ValueError(f"{name} must be [>= T_max={T_max}, D={D}] (rope_tables), got {tuple(t.shape)}")
    if isinstance(pos, bool) or not isinstance(pos, int) or not 0 <= pos < T_max:
        raise ValueError(f"pos must be an int in [0, {T_max}), got {pos!r}")
    if kv3 and pos > cache.written():
        raise ValueError(f"pos={pos} but only {cache.written()} cache rows are written (attention would read "
                         f"rows {cache.written()}..{pos - 1}, which hold nothing)")
    if D & (D - 1) or D < 8:
        raise ValueError(f"head_dim must be a power of two >= 8, got {D}")
    sm = 1.0 / math.sqrt(D) if sm_scale is None else float(sm_scale)
    if not math.isfinite(sm) or sm <= 0:
        raise ValueError(f"sm_scale must be a positive finite float, got {sm_scale!r}")
    if qkv_ready:
        check_finite(qkv, "qkv")
    T = pos + 1
    dims = dict(B=B, H=H, D=D, T=ctx_bucket(T), kv="kv3" if kv3 else "fp16") if dev.type == "cuda" else None
    cfg = resolve_config("attention_step", attention_step_config(B, H, T, kv3), tuned, dims, config)
    S = min(cfg["S"] if splits is None else splits, triton.cdiv(T, cfg["BT"]))
    chunk = triton.cdiv(triton.cdiv(T, S), cfg["BT"]) * cfg["BT"]
    S = triton.cdiv(T, chunk)                 # no empty spans
    m, l, o, ticket = _workspace(dev, B, H, S, D)
    if layout == "dense3":
        kc, ks, kb, vc, vs, vb = cache.k_codes, cache.k_scale, cache.k_bos, cache.v_codes, cache.v_scale, cache.v_bos
        LN, LB = LN3.value, LB4.value
    elif layout == "nibble":
        kc, ks, vc, vs = cache.k_codes, cache.k_scale, cache.v_codes, cache.v_scale
        kb, vb = kc, vc                       # no BOS words: the nibbles hold the BOS row's 4 bits
        LN, LB = 2 ** cache.bits - 1, 2 ** cache.bos_bits - 1
    else:
        kc, ks, kb, vc, vs, vb = cache.k, cache.k, cache.k, cache.v, cache.v, cache.v
        LN = LB = 1
    args = dict(qkv_ptr=qkv, cos_ptr=cos, sin_ptr=sin, kc_ptr=kc, ks_ptr=ks, kb_ptr=kb, vc_ptr=vc, vs_ptr=vs,
                vb_ptr=vb, m_ptr=m, l_ptr=l, o_ptr=o, ticket_ptr=ticket, y_ptr=y,
                pos=pos, T_max=T_max, H=H, chunk=chunk, sm_scale=sm, stride_b=qkv.stride(0))
    meta = dict(D=D, BT=cfg["BT"], S=S, SP=next_pow2(S), KV=KV_LAYOUTS[layout], LN=LN, LB=LB,
                NUM_STAGES=cfg.get("num_stages", 1), num_warps=cfg["num_warps"])
    return args, meta, (B * H, S)


def _layout(cache: KVCache) -> str:
    """The :data:`KV_LAYOUTS` name of a cache; any other type is refused."""
    if isinstance(cache, QuantKVCache):
        return "nibble"
    if isinstance(cache, Fp16KVCache):
        return "fp16"
    if isinstance(cache, Dense3KVCache):
        return "dense3"
    raise TypeError(f"cache must be a QuantKVCache, Dense3KVCache or Fp16KVCache, got {type(cache).__name__}")


# ----------------------------------------------------------------------------- reference
def rope_reference(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """The torch glue's RoPE: ``x * cos + rotate_half(x) * sin`` in fp16 tensor arithmetic."""
    h = x.shape[-1] // 2
    rot = torch.cat((-x[..., h:], x[..., :h]), dim=-1)
    return x * cos + rot * sin
