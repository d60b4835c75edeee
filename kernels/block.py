"""One LLaMA-7B decoder block assembled from the kernels, for fp16, b1.58 and a4.8 (for timing).

Datapaths as in docs/decisions.md 10 (pre-norm RMSNorm, RoPE, MHA 32×128, FFN 11008; subln norms
before Wo and Wdown in the quantized datapaths; one ternary scale per sub-matrix of the fused QKV
and gate/up matrices, docs/decisions.md 4):

* ``fp16``  -- torch: cuBLAS FP16 GEMMs (fused QKV, fused gate/up), SwiGLU, FP16 KV cache, SDPA.
* ``b1.58`` -- every linear input through ``rmsnorm_quant(int8)``, ternary GEMV/GEMM (W1.58A8),
  SwiGLU, FP16 KV cache.
* ``a4.8``  -- INT4 into QKV and gate/up (FP8 tensor-core GEMM for prefill, INT8-unpack GEMV for
  decode), TopK-50 % INT8 into Wo, ReLU²GLU + INT8 into Wdown (fused with the subln norm), sparse
  GEMV for Wo/Wdown at decode (on the quantizer's index list, or, ``DecodePlan`` "masked", choosing
  the rows from the codes), 3-bit KV cache.
* ``w8a8-fp8``, ``w4a16`` -- the fp16 block with its linear layers replaced by torch's quantized
  baselines (``kernels.baselines``: cuBLAS FP8 with per-token activation scales; INT4 weight-only,
  group 128).

``kv_bits`` (3 or 4) gives b1.58 a quantized KV cache too (the strongest b1.58: a 4-bit cache, BOS
row at 4 bits); a4.8 defaults to 3.  ``kv_layout`` stores a 3-bit cache in 4-bit nibbles
(``"nibble"``, ``kernels.kv_attention``) or densely, 48 bytes per 128-value row (``"dense3"``,
``kernels.kv_dense3``); the codes are the same.

Two ways to run a decode step (B = 1):

* :meth:`KernelBlock.forward` -- one kernel per operator (quantizer, GEMV, KV write, attention,
  combine) with torch glue (RoPE, residual adds, SwiGLU); also the prefill path.
* :meth:`KernelBlock.decode_fused` -- the fused step: one GEMV for QKV and one for gate/up, RoPE +
  cache write + attention + combine in one kernel, residual adds in the GEMV epilogues, and the
  norm + quantizer either in the GEMV's prologue (``DecodePlan(prologue="fused")``: b1.58 5
  launches, a4.8 6-7) or as a kernel before each GEMV (``"separate"``: 9 launches, measured
  faster, docs/kernels.md).  ``DecodePlan`` also picks a4.8's Wo and Wdown variants.  With
  ``pdl`` every launch waits for the previous one through programmatic dependent launch, after
  prefetching what it does not depend on.

Weights are random, so activation sparsity is what random weights give (measured and recorded),
not a trained model's.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kernels.attention_step import KV_LAYOUTS, Fp16KVCache, attention_step, rope_tables
from kernels.baselines import Fp8Linear, Int4Linear
from kernels.configs import NO_TUNING, ConfigTable, check_config
from kernels.kv_attention import QuantKVCache, decode_attention, kv_write
from kernels.kv_dense3 import Dense3KVCache, dense3_write
from kernels.packing import pack_ternary
from kernels.persistent import SKIPS as PERSISTENT_SKIPS
from kernels.persistent import decode_block_persistent
from kernels.rmsnorm_quant import DEFAULT_TOPK_SEARCH, TOPK_SEARCHES, rmsnorm_quant
from kernels.sparse_gemv import sparse_gemv, sparse_gemv_masked
from kernels.ternary_gemm import (
    GEMV_MAX_M,
    decode_scratch,
    two_pass_shape_ok,
    w158_gemv_fused,
    w158_matmul,
    w158_matmul_two_pass,
)
from model import quant as Q

DATAPATHS = ("fp16", "b1.58", "a4.8", "w8a8-fp8", "w4a16")
#: How a ternary datapath runs its prefill GEMMs: "fused" (decode inside the tensor-core GEMM), "two_pass" (decode to
#: a one-byte scratch, then cuBLAS INT8 / FP8 and a one-launch epilogue) or "auto" (two-pass on a CUDA device from
#: :data:`AUTO_TWO_PASS_MIN_M` tokens)
PREFILL_ROUTES = ("auto", "fused", "two_pass")
#: how a quantized KV cache stores its codes (``kv_layout``): 4-bit nibbles, or 3-bit codes densely (the
#: attention step's layouts but its FP16 cache)
QUANT_KV_LAYOUTS = tuple(name for name in KV_LAYOUTS if name != "fp16")
#: datapaths whose linear layers are torch baselines (fp16 activations in and out, torch glue around)
TORCH_LINEARS = {"fp16": None, "w8a8-fp8": Fp8Linear, "w4a16": Int4Linear}
#: "auto" takes the two-pass route from this many tokens on, the crossover measured on an H100 with the tuned tiles
#: the block runs (reports/data/measured_h100_kernels6: at M = 128 the fused kernel was faster on 3 of the 4 7B
#: shapes for A8 and A4-FP8, at M = 256 the two-pass route on 3 of 4); a decode batch below it (8-64) runs the fused
#: kernel (batch-32 7B token, a4.8: 15.6 ms fused in the sixth run against 17.3 ms two-pass in the fifth); the
#: small-M two-pass rows are host-bound when timed eagerly, as an eager prefill runs them
AUTO_TWO_PASS_MIN_M = 256
#: a4.8's Wo / Wdown at decode (``DecodePlan.wo``, ``.wdown``): the sparse GEMV on the quantizer's index list, the
#: sparse GEMV choosing its rows from the codes (no list), or the dense GEMV
SPARSE_ROUTES = ("sparse", "masked", "dense")


@dataclass(frozen=True, kw_only=True)
class BlockDims:
    """Decoder-block sizes; the default is LLaMA-7B (Touvron et al. 2023, Table 2)."""

    d_model: int = 4096
    n_heads: int = 32
    head_dim: int = 128
    d_ffn: int = 11008

    def __post_init__(self) -> None:
        for name in ("d_model", "n_heads", "head_dim", "d_ffn"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"BlockDims.{name} must be a positive int, got {v!r}")
        if self.n_heads * self.head_dim != self.d_model:
            raise ValueError(f"n_heads*head_dim ({self.n_heads}*{self.head_dim}) must equal d_model {self.d_model}")


LLAMA7B = BlockDims()


@dataclass(frozen=True, kw_only=True)
class DecodePlan:
    """Variants of the fused decode step.

    ``prologue``: "fused" -- RMSNorm + quantizer inside the GEMV (every program recomputes the
    row's statistics, no extra launch); "separate" -- one quantizer kernel before each GEMV.
    a4.8 only: ``wo`` "sparse" (TopK quantizer with index list + sparse GEMV), "masked" (TopK
    quantizer without the list + ``sparse_gemv_masked``, which picks the rows from the codes) or
    "dense" (TopK quantizer + dense GEMV; TopK is never fused into a GEMV prologue); ``wdown``
    "sparse" / "masked" (GLU+norm+INT8 quantizer with / without index list + the sparse GEMV of
    that name) or "dense" (``prologue`` decides);
    ``gate_first`` skips the up rows whose gate output is <= 0.  ``topk_search``: the exact TopK
    threshold search of a4.8's Wo quantizer (``kernels.rmsnorm_quant.TOPK_SEARCHES``; the same codes
    whichever).  ``pdl``: programmatic dependent launch between the step's kernels (CUDA).
    ``persistent``: the whole step in one launch with
    grid barriers between its stages (``kernels.persistent``; needs ``prologue="fused"``, no ``pdl``),
    ``programs_per_sm`` programs on each SM (all must be resident at once) of ``warps`` warps, its
    GEMV stages in tiles of ``tile_rows`` output rows.  ``attention``: ``(key, value)`` pairs
    overriding the attention step's config (``BT``, ``S``, ``num_warps``, ``num_stages``) in either
    kind of step: the context split and the warps fix the order of the softmax sums, so a per-kernel
    step equals a persistent one bit for bit only with the same values
    (``kernels.persistent.reference_plan``).  ``persistent_skip``: names from
    ``kernels.persistent.SKIPS`` that a diagnostic floor of the persistent step leaves out (its output
    is not the block's; the benchmark times it to show what the parts left in cost).
    """

    prologue: str = "fused"
    wo: str = "sparse"
    wdown: str = "sparse"
    gate_first: bool = True
    topk_search: str = DEFAULT_TOPK_SEARCH
    pdl: bool = False
    persistent: bool = False
    programs_per_sm: int = 1
    warps: int = 4
    tile_rows: int = 32
    attention: tuple = ()
    persistent_skip: tuple = ()

    def __post_init__(self) -> None:
        if self.prologue not in ("fused", "separate"):
            raise ValueError(f"DecodePlan.prologue must be 'fused' or 'separate', got {self.prologue!r}")
        if self.topk_search not in TOPK_SEARCHES:
            raise ValueError(f"DecodePlan.topk_search must be one of {sorted(TOPK_SEARCHES)}, "
                             f"got {self.topk_search!r}")
        if self.wo not in SPARSE_ROUTES:
            raise ValueError(f"DecodePlan.wo must be one of {SPARSE_ROUTES}, got {self.wo!r}")
        if self.wdown not in SPARSE_ROUTES:
            raise ValueError(f"DecodePlan.wdown must be one of {SPARSE_ROUTES}, got {self.wdown!r}")
        if self.persistent and (self.prologue != "fused" or self.pdl):
            raise ValueError("DecodePlan.persistent needs prologue='fused' (the GEMVs quantize their input) and "
                             "pdl=False (one launch: no kernel boundary to overlap)")
        if self.persistent and "masked" in (self.wo, self.wdown):
            raise ValueError("DecodePlan.persistent has no masked sparse stage: wo and wdown must be 'sparse' or "
                             "'dense'")
        p = self.programs_per_sm
        if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 8:
            raise ValueError(f"DecodePlan.programs_per_sm must be an int in [1, 8], got {p!r}")
        if isinstance(self.warps, bool) or self.warps not in (1, 2, 4, 8, 16):
            raise ValueError(f"DecodePlan.warps must be one of (1, 2, 4, 8, 16), got {self.warps!r}")
        t = self.tile_rows
        if isinstance(t, bool) or not isinstance(t, int) or t < 1 or t & (t - 1) or t > 256:
            raise ValueError(f"DecodePlan.tile_rows must be a power of two in [1, 256], got {t!r}")
        if not isinstance(self.attention, tuple) or not all(isinstance(kv, tuple) and len(kv) == 2
                                                            for kv in self.attention):
            raise ValueError(f"DecodePlan.attention must be a tuple of (key, value) pairs, got {self.attention!r}")
        check_config("attention_step", dict(self.attention))
        skip = self.persistent_skip
        if not isinstance(skip, tuple) or any(s not in PERSISTENT_SKIPS for s in skip) or len(set(skip)) < len(skip):
            raise ValueError(f"DecodePlan.persistent_skip must be a tuple of distinct names from {PERSISTENT_SKIPS}, "
                             f"got {skip!r}")
        if skip and not self.persistent:
            raise ValueError("DecodePlan.persistent_skip leaves parts of the persistent step out: it needs "
                             "persistent=True")


def _rmsnorm16(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-5) * w.float()).to(torch.float16)


def _apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    h = x.shape[-1] // 2
    rot = torch.cat((-x[..., h:], x[..., :h]), dim=-1)
    return x * cos + rot * sin


def fp16_decode_step(x: torch.Tensor, pos: int, w16: dict[str, torch.Tensor], norm: dict[str, torch.Tensor],
                     k_cache: torch.Tensor, v_cache: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                     n_heads: int, head_dim: int, d_ffn: int,
                     linear: dict[str, Callable] | None = None) -> torch.Tensor:
    """The fp16 block's decode step in torch (one token, ``x [B, 1, d]``): the baseline, and what
    ``torch.compile`` compiles (a free function of tensors, so one compilation serves every layer).
    ``linear``: per matrix name a callable ``x -> x·Wᵀ`` replacing the fp16 product (the W8A8-FP8
    and W4A16 baselines)."""
    def lin(name: str, v: torch.Tensor) -> torch.Tensor:
        return linear[name](v) if linear is not None else v @ w16[name].t()

    B, _, d = x.shape
    xf = x.reshape(B, d)
    qkv = lin("qkv", _rmsnorm16(xf, norm["attn"]))
    q, k, v = qkv.view(B, 1, 3, n_heads, head_dim).permute(2, 0, 3, 1, 4)
    c, s = cos[pos:pos + 1], sin[pos:pos + 1]
    q, k = _apply_rope(q, c, s), _apply_rope(k, c, s)
    k_cache[:, :, pos:pos + 1] = k
    v_cache[:, :, pos:pos + 1] = v
    a = F.scaled_dot_product_attention(q, k_cache[:, :, :pos + 1], v_cache[:, :, :pos + 1])
    h = xf + lin("o", a.transpose(1, 2).reshape(B, d))
    gu = lin("gu", _rmsnorm16(h, norm["ffn"]))
    act = F.silu(gu[:, :d_ffn]) * gu[:, d_ffn:]
    return (h + lin("down", act)).view(B, 1, d)


class KernelBlock:
    """Weights, caches and RoPE tables of one decoder block for one datapath.

    Named apart from ``model.model.Block`` (the reference model's block, an ``nn.Module``)."""

    def __init__(self, datapath: str, B: int, T_max: int, seed: int = 0, dims: BlockDims = LLAMA7B,
                 device: str = "cuda", tuned: ConfigTable = NO_TUNING, kv_bits: int | None = None,
                 prefill_route: str = "auto", kv_layout: str = "nibble"):
        if datapath not in DATAPATHS:
            raise ValueError(f"datapath must be one of {DATAPATHS}, got {datapath!r}")
        if prefill_route not in PREFILL_ROUTES:
            raise ValueError(f"prefill_route must be one of {PREFILL_ROUTES}, got {prefill_route!r}")
        if kv_bits is not None and (datapath not in ("b1.58", "a4.8") or kv_bits not in (3, 4)):
            raise ValueError(f"kv_bits (3 or 4, a quantized KV cache) is for the b1.58 and a4.8 datapaths, got "
                             f"{kv_bits!r} for {datapath}")
        for name, v in (("B", B), ("T_max", T_max)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.dp, self.B, self.T_max, self.dims, self.tuned = datapath, B, T_max, dims, tuned
        self.prefill_route = prefill_route
        self._scratch: dict[tuple, torch.Tensor] = {}   # decoded weights of the two-pass route, shared by replicas
        d, H, hd, F_ = dims.d_model, dims.n_heads, dims.head_dim, dims.d_ffn
        g = torch.Generator(device=device).manual_seed(seed)
        s = d ** -0.5

        def w(n, k):
            return torch.randn(n, k, device=device, generator=g) * s

        # sub-matrices of the fused matrices, in output order
        parts = {"qkv": [w(d, d), w(d, d), w(d, d)], "o": [w(d, d)],
                 "gu": [w(F_, d), w(F_, d)], "down": [w(d, F_) * (d / F_) ** 0.5]}
        self.norm = {n: torch.ones(d if n != "down" else F_, device=device, dtype=torch.float16)
                     for n in ("attn", "o", "ffn", "down")}
        self.cos, self.sin = rope_tables(T_max, hd, device)
        self.w16: dict[str, torch.Tensor] = {}
        self.wp: dict[str, torch.Tensor] = {}
        self.ws: dict[str, torch.Tensor] = {}
        self.wtp: dict[str, torch.Tensor] = {}
        self.linear: dict[str, Callable] | None = None
        if datapath in TORCH_LINEARS:
            w16 = {n: torch.cat(ms).to(torch.float16) for n, ms in parts.items()}
            if TORCH_LINEARS[datapath] is None:
                self.w16 = w16
            else:
                self.linear = {n: TORCH_LINEARS[datapath](w) for n, w in w16.items()}
        else:
            for n, ms in parts.items():
                qs = [Q.quantize_ternary(m) for m in ms]
                codes = torch.cat([q.codes for q in qs])
                self.wp[n] = pack_ternary(codes)
                self.ws[n] = torch.stack([q.scale.reshape(()) for q in qs]).contiguous()
                if datapath == "a4.8" and n in ("o", "down"):
                    self.wtp[n] = pack_ternary(codes.t().contiguous())
        if datapath == "a4.8" and kv_bits is None:
            kv_bits = 3
        self.kv_bits = kv_bits
        if kv_layout not in QUANT_KV_LAYOUTS:
            raise ValueError(f"kv_layout must be one of {QUANT_KV_LAYOUTS}, got {kv_layout!r}")
        if kv_layout == "dense3" and kv_bits != 3:
            raise ValueError(f"kv_layout='dense3' holds 3-bit codes (kv_bits=3), got kv_bits={kv_bits!r} "
                             f"for {datapath}")
        if kv_layout == "dense3":
            self.cache = Dense3KVCache.allocate(B, H, T_max, hd, device)
        elif kv_bits is not None:
            self.cache = QuantKVCache.allocate(B, H, T_max, hd, device, bits=kv_bits, bos_bits=4)
        else:
            self.cache = Fp16KVCache.allocate(B, H, T_max, hd, device)
        self.sparsity: dict[str, float] = {}
        self.record = True          # measure activation sparsity (syncs: off while timing / capturing)

    def replica(self) -> "KernelBlock":
        """Another block of the same datapath with copies of the weights and its own empty cache
        (for a many-layer model whose weights all come from memory, without re-quantizing)."""
        other = object.__new__(KernelBlock)
        other.__dict__.update(self.__dict__)
        for name in ("w16", "wp", "ws", "wtp"):
            setattr(other, name, {k: v.clone() for k, v in getattr(self, name).items()})
        if self.linear is not None:
            other.linear = {k: _clone_linear(v) for k, v in self.linear.items()}
        c = self.cache
        if isinstance(c, QuantKVCache):
            other.cache = QuantKVCache.allocate(*c.shape, c.k_codes.device, bits=c.bits, bos_bits=c.bos_bits)
        elif isinstance(c, Dense3KVCache):
            other.cache = Dense3KVCache.allocate(*c.shape, c.k_codes.device)
        else:
            other.cache = Fp16KVCache.allocate(*c.shape, c.k.device)
        other.sparsity = {}
        return other

    def fill_cache(self, T: int, seed: int = 1) -> None:
        """Random post-RoPE K/V in positions ``0..T-1`` (a decode step at context T then reads them)."""
        B, H, _, hd = self.cache.shape
        dev = self.norm["attn"].device
        g = torch.Generator(device=dev).manual_seed(seed)
        k = torch.randn(B, H, T, hd, device=dev, generator=g, dtype=torch.float16)
        v = torch.randn(B, H, T, hd, device=dev, generator=g, dtype=torch.float16)
        if isinstance(self.cache, QuantKVCache):
            kv_write(self.cache, k, v, 0)
        elif isinstance(self.cache, Dense3KVCache):
            dense3_write(self.cache, k, v, 0)
        else:
            self.cache.k[:, :, :T] = k
            self.cache.v[:, :, :T] = v

    # -- per-operator path ---------------------------------------------------------------------
    def _lin(self, name: str, x: torch.Tensor, mode: str, norm: str, gate: torch.Tensor | None = None,
             sparse: bool = False) -> torch.Tensor:
        N = self.wp[name].shape[0]
        if sparse:
            codes, xs, nzi, nnz = rmsnorm_quant(x, mode, self.norm[norm], gate=gate, nonzero=True)
            self._last_codes = codes
            return sparse_gemv(codes, nzi[0], nnz, xs, self.wtp[name], self.ws[name], N, tuned=self.tuned)
        fp8 = mode == "int4" and x.shape[0] > GEMV_MAX_M      # A4 codes as int8 for the GEMV, as fp8 for the GEMM
        codes, xs = rmsnorm_quant(x, mode, self.norm[norm], gate=gate, out_fp8=fp8)
        self._last_codes = codes
        if self._two_pass(x.shape[0], N, x.shape[1]):
            return w158_matmul_two_pass(codes, xs, self.wp[name], self.ws[name], N,
                                        scratch=self._decoded(name, codes.dtype == torch.float8_e4m3fn))
        return w158_matmul(codes, xs, self.wp[name], self.ws[name], N, tuned=self.tuned)

    def _two_pass(self, M: int, N: int, K: int) -> bool:
        """Whether a prefill GEMM of this shape takes the two-pass route (decode the weights to one byte per code,
        then the library GEMM): ``prefill_route`` "two_pass", or "auto" on a CUDA device from
        :data:`AUTO_TWO_PASS_MIN_M` tokens, where the route was measured faster than the fused kernel
        (docs/kernels.md); only shapes the library GEMM takes."""
        if self.prefill_route == "fused" or not two_pass_shape_ok(M, N, K):
            return False
        if self.prefill_route == "two_pass":
            return True
        return self.norm["attn"].device.type == "cuda" and M >= AUTO_TWO_PASS_MIN_M

    def _decoded(self, name: str, fp8: bool) -> torch.Tensor:
        """The scratch the two-pass route decodes ``name``'s weights into (one per shape and code type)."""
        wp = self.wp[name]
        key = (tuple(wp.shape), fp8)
        if key not in self._scratch:
            self._scratch[key] = decode_scratch(wp, fp8)
        return self._scratch[key]

    def forward(self, x: torch.Tensor, pos0: int) -> torch.Tensor:
        """``x [B, T, d]`` fp16 at positions ``pos0..pos0+T-1``; returns the block output."""
        B, T, d = x.shape
        H, hd, F_ = self.dims.n_heads, self.dims.head_dim, self.dims.d_ffn
        M = B * T
        decode = T == 1
        torch_lin = self.dp in TORCH_LINEARS
        if torch_lin and decode:
            return fp16_decode_step(x, pos0, self.w16, self.norm, self.cache.k, self.cache.v, self.cos, self.sin,
                                    H, hd, F_, linear=self.linear)
        cos, sin = self.cos[pos0:pos0 + T], self.sin[pos0:pos0 + T]
        xf = x.reshape(M, d)
        if torch_lin:
            qkv = self._lin16("qkv", _rmsnorm16(xf, self.norm["attn"]))
        else:
            qkv = self._lin("qkv", xf, "int8" if self.dp == "b1.58" else "int4", "attn")
        if decode and isinstance(self.cache, Dense3KVCache):
            # the dense cache's decode attention is the one-launch step (RoPE, row write, attention): the split
            # kernel (kv_dense3.dense3_attention) measured 0.4-1.4 % off on an H100 where the step is within 2e-4
            a = attention_step(qkv.reshape(B, 3 * d), self.cache, pos0, self.cos, self.sin, tuned=self.tuned)
            return self._after_attention(xf, a.reshape(M, d), B, T, decode)
        q, k, v = qkv.view(B, T, 3, H, hd).permute(2, 0, 3, 1, 4)      # [B, H, T, Dh]
        q, k = _apply_rope(q, cos, sin), _apply_rope(k, cos, sin)
        if isinstance(self.cache, (QuantKVCache, Dense3KVCache)):
            (dense3_write if isinstance(self.cache, Dense3KVCache) else kv_write)(self.cache, k.contiguous(),
                                                                                   v.contiguous(), pos0)
            if decode:
                a = decode_attention(q[:, :, 0].contiguous(), self.cache, pos0 + 1, tuned=self.tuned)
                a = a.reshape(M, d)
            else:
                a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                a = a.transpose(1, 2).reshape(M, d)
        else:
            kc, vc = self.cache.k, self.cache.v
            kc[:, :, pos0:pos0 + T] = k
            vc[:, :, pos0:pos0 + T] = v
            if decode:
                a = F.scaled_dot_product_attention(q, kc[:, :, :pos0 + 1], vc[:, :, :pos0 + 1])
            else:
                a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            a = a.transpose(1, 2).reshape(M, d)
        return self._after_attention(xf, a, B, T, decode)

    def _after_attention(self, xf: torch.Tensor, a: torch.Tensor, B: int, T: int, decode: bool) -> torch.Tensor:
        """Wo, its residual and the FFN half of the block on the attention output ``a [B·T, d]``."""
        d, F_ = self.dims.d_model, self.dims.d_ffn
        torch_lin = self.dp in TORCH_LINEARS
        if torch_lin:
            o = self._lin16("o", a)
        elif self.dp == "b1.58":
            o = self._lin("o", a, "int8", "o")
        else:
            o = self._lin("o", a, "topk8", "o", sparse=decode and B == 1)
            if self.record:
                self.sparsity["o_in"] = float((self._last_codes.float() == 0).float().mean())
        h = xf + o
        if torch_lin:
            gu = self._lin16("gu", _rmsnorm16(h, self.norm["ffn"]))
            act = F.silu(gu[:, :F_]) * gu[:, F_:]
            dn = self._lin16("down", act)
        elif self.dp == "b1.58":
            gu = self._lin("gu", h, "int8", "ffn")
            act = F.silu(gu[:, :F_]) * gu[:, F_:]
            dn = self._lin("down", act, "int8", "down")
        else:
            gu = self._lin("gu", h, "int4", "ffn")
            gate, up = gu[:, :F_], gu[:, F_:]
            dn = self._lin("down", up, "int8", "down", gate=gate, sparse=decode and B == 1)
            if self.record:
                self.sparsity["down_in"] = float((self._last_codes.float() == 0).float().mean())
        return (h + dn).view(B, T, d)

    def _lin16(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """fp16 in, fp16 out: cuBLAS FP16, or the datapath's torch baseline layer."""
        return self.linear[name](x) if self.linear is not None else x @ self.w16[name].t()

    # -- fused decode step -----------------------------------------------------------------------
    def decode_fused(self, x: torch.Tensor, pos: int, plan: DecodePlan = DecodePlan(),
                     buffers: dict | None = None) -> torch.Tensor:
        """Decode step of one token (``x [1, 1, d]`` fp16 at position ``pos``) with fused kernels.
        ``buffers``: a dict that receives the step's intermediate rows (qkv, a, h, gu, out), to find
        the first stage where two plans differ."""
        if self.dp in TORCH_LINEARS:
            raise ValueError(f"decode_fused is for the ternary datapaths; the {self.dp} block is torch (forward)")
        if tuple(x.shape[:2]) != (1, 1) or self.B != 1:
            raise ValueError(f"decode_fused runs one token of one sequence (B=1), got x of shape {tuple(x.shape)}")
        if plan.persistent:
            return decode_block_persistent(self, x, pos, plan, buffers=buffers)
        d, F_ = self.dims.d_model, self.dims.d_ffn
        xf = x.reshape(1, d)
        a4 = self.dp == "a4.8"
        mode = "int4" if a4 else "int8"
        qkv = self._gemv("qkv", xf, mode, "attn", plan)
        a = attention_step(qkv, self.cache, pos, self.cos, self.sin, tuned=self.tuned, pdl=plan.pdl,
                           config=dict(plan.attention) or None)
        if not a4:
            h = self._gemv("o", a, "int8", "o", plan, residual=xf)
            gu = self._gemv("gu", h, "int8", "ffn", plan)
            out = self._gemv("down", gu, "int8", "down", plan, residual=h, glu="silu")
            if buffers is not None:
                buffers.update(qkv=qkv, a=a, h=h, gu=gu, out=out)
            return out.view(1, 1, d)
        if plan.wo == "dense":
            codes, xs = rmsnorm_quant(a, "topk8", self.norm["o"], pdl=plan.pdl, topk_search=plan.topk_search)
            h = w158_matmul(codes, xs, self.wp["o"], self.ws["o"], d, residual=xf, tuned=self.tuned, pdl=plan.pdl)
        else:
            h = self._sparse("o", a, "topk8", plan.wo, xf, plan.pdl, topk_search=plan.topk_search)
        gu = self._gemv("gu", h, "int4", "ffn", plan, gate_first=plan.gate_first)
        if plan.wdown == "dense":
            out = self._gemv("down", gu, "int8", "down", plan, residual=h, glu="relu2")
        else:
            out = self._sparse("down", gu[:, F_:], "int8", plan.wdown, h, plan.pdl, gate=gu[:, :F_])
        if buffers is not None:
            buffers.update(qkv=qkv, a=a, h=h, gu=gu, out=out)
        return out.view(1, 1, d)

    def _sparse(self, name: str, x: torch.Tensor, mode: str, route: str, residual: torch.Tensor, pdl: bool,
                gate: torch.Tensor | None = None, topk_search: str = DEFAULT_TOPK_SEARCH) -> torch.Tensor:
        """Quantizer + sparse GEMV (+ residual) of a4.8's Wo or Wdown (norm of the same name) at decode:
        ``route`` "sparse" (the quantizer writes the index list the GEMV reads) or "masked" (codes only; the
        GEMV picks the rows from them)."""
        N = self.wp[name].shape[0]
        if route == "sparse":
            codes, xs, nzi, nnz = rmsnorm_quant(x, mode, self.norm[name], gate=gate, nonzero=True, pdl=pdl,
                                                topk_search=topk_search)
            return sparse_gemv(codes, nzi[0], nnz, xs, self.wtp[name], self.ws[name], N, residual=residual,
                               tuned=self.tuned, pdl=pdl)
        codes, xs = rmsnorm_quant(x, mode, self.norm[name], gate=gate, pdl=pdl, topk_search=topk_search)
        return sparse_gemv_masked(codes, xs, self.wtp[name], self.ws[name], N, residual=residual, tuned=self.tuned,
                                  pdl=pdl)

    def _gemv(self, name: str, x: torch.Tensor, mode: str, norm: str, plan: DecodePlan,
              residual: torch.Tensor | None = None, glu: str | None = None, gate_first: bool = False) -> torch.Tensor:
        """Norm + quantizer + GEMV of one decode linear, in one launch or two (``plan.prologue``).
        With ``glu``, ``x`` holds gate then up (the gate/up GEMV's output)."""
        N = self.wp[name].shape[0]
        if plan.prologue == "fused":
            return w158_gemv_fused(x, self.wp[name], self.ws[name], N, mode=mode, norm_weight=self.norm[norm], glu=glu,
                                   residual=residual, gate_first=gate_first, tuned=self.tuned, pdl=plan.pdl)
        if glu is not None:
            half = x.shape[1] // 2
            codes, xs = rmsnorm_quant(x[:, half:], mode, self.norm[norm], gate=x[:, :half], glu=glu, pdl=plan.pdl)
        else:
            codes, xs = rmsnorm_quant(x, mode, self.norm[norm], pdl=plan.pdl)
        return w158_matmul(codes, xs, self.wp[name], self.ws[name], N, residual=residual, gate_first=gate_first,
                           tuned=self.tuned, pdl=plan.pdl)

    def launches_fused(self, plan: DecodePlan = DecodePlan()) -> int:
        """Kernel launches of one fused decode step."""
        if plan.persistent:
            return 1
        sep = plan.prologue == "separate"
        if self.dp == "b1.58":
            return 5 + 4 * sep                  # 4 GEMVs + attention (+ 4 quantizers)
        # attention, TopK quantizer, Wo, 3 GEMVs (+ QKV and gate/up quantizers) (+ Wdown quantizer: a sparse
        # Wdown's own kernel, or the separate prologue's)
        return 6 + 2 * sep + (plan.wdown != "dense" or sep)


def _clone_linear(layer: object) -> object:
    """A copy of a torch baseline layer with its own copies of every tensor attribute."""
    other = copy.copy(layer)
    for k, v in vars(layer).items():
        if isinstance(v, torch.Tensor):
            setattr(other, k, v.clone())
    return other
