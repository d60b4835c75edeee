"""One LLaMA-7B decoder block built from the kernels, timed for fp16, b1.58 and a4.8.

Datapaths as in decisions.md 10 (pre-norm RMSNorm, RoPE, MHA 32×128, FFN
11008; subln norms before Wo and Wdown in the quantized datapaths):

* ``fp16``  -- torch: cuBLAS FP16 GEMMs (fused QKV, fused gate/up), SwiGLU,
  FP16 KV cache, SDPA.
* ``b1.58`` -- every linear input through ``rmsnorm_quant(int8)``, ternary
  GEMV/GEMM (W1.58A8), SwiGLU, FP16 KV cache + SDPA.
* ``a4.8``  -- INT4 into QKV and gate/up (FP8 tensor-core GEMM for prefill,
  INT8-unpack GEMV for decode), TopK-50 % INT8 into Wo, ReLU²GLU + INT8 into
  Wdown (fused with the subln norm), sparse GEMV for Wo/Wdown at decode,
  3-bit KV cache (write kernel + quantized decode attention).

Glue (RoPE, residual adds, SwiGLU) is plain torch in every datapath.
Simplifications, named: a fused matrix (QKV, gate/up) has one ternary scale
here (the model keeps one per sub-matrix; the time is the same); a4.8
prefill attention runs FP16 SDPA (causal) on the un-quantized K/V and writes
the 3-bit cache.  Decode steps are timed as CUDA-graph replays; prefill
eagerly.  Weights are random, so activation sparsity is what random weights
give (measured and recorded), not a trained model's.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class BlockDims:
    """Decoder-block sizes; the default is LLaMA-7B (Touvron et al. 2023, Table 2)."""

    d_model: int = 4096
    n_heads: int = 32
    head_dim: int = 128
    d_ffn: int = 11008

    def __post_init__(self) -> None:
        for name in ("d_model", "n_heads", "head_dim", "d_ffn"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"BlockDims.{name} must be a positive int, got {v!r}")
        if self.n_heads * self.head_dim != self.d_model:
            raise ValueError(f"n_heads*head_dim ({self.n_heads}*{self.head_dim}) must equal d_model {self.d_model}")


LLAMA7B = BlockDims()


def _rope(T0: int, T: int, hd: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / (10000 ** (torch.arange(0, hd, 2, device=device, dtype=torch.float32) / hd))
    ang = torch.arange(T0, T0 + T, device=device, dtype=torch.float32)[:, None] * inv[None, :]
    ang = torch.cat((ang, ang), dim=-1)
    return ang.cos().to(torch.float16), ang.sin().to(torch.float16)


def _apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    h = x.shape[-1] // 2
    rot = torch.cat((-x[..., h:], x[..., :h]), dim=-1)
    return x * cos + rot * sin


def _rmsnorm16(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-5) * w.float()).to(torch.float16)


class Block:
    """Weights and caches of one decoder block for one datapath."""

    def __init__(self, datapath: str, B: int, T_max: int, seed: int = 0, dims: BlockDims = LLAMA7B,
                 device: str = "cuda"):
        from model import quant as Q
        from kernels.kv_attention import KVCache
        from kernels.packing import pack_ternary

        if datapath not in ("fp16", "b1.58", "a4.8"):
            raise ValueError(f"datapath must be fp16, b1.58 or a4.8, got {datapath!r}")
        self.dp, self.B, self.T_max, self.dims = datapath, B, T_max, dims
        D_MODEL, N_HEADS, HEAD_DIM, D_FFN = dims.d_model, dims.n_heads, dims.head_dim, dims.d_ffn
        g = torch.Generator(device=device).manual_seed(seed)
        s = D_MODEL ** -0.5

        def w(n, k):
            return torch.randn(n, k, device=device, generator=g) * s

        mats = {"qkv": w(3 * D_MODEL, D_MODEL), "o": w(D_MODEL, D_MODEL),
                "gu": w(2 * D_FFN, D_MODEL), "down": w(D_MODEL, D_FFN) * (D_MODEL / D_FFN) ** 0.5}
        self.norm = {n: torch.ones(D_MODEL if n != "down" else D_FFN, device=device, dtype=torch.float16)
                     for n in ("attn", "o", "ffn", "down")}
        if datapath == "fp16":
            self.w16 = {n: m.to(torch.float16) for n, m in mats.items()}
            self.kc = torch.zeros(B, N_HEADS, T_max, HEAD_DIM, device=device, dtype=torch.float16)
            self.vc = torch.zeros_like(self.kc)
        else:
            self.wp, self.ws, self.wtp = {}, {}, {}
            for n, m in mats.items():
                q = Q.quantize_ternary(m)
                self.wp[n], self.ws[n] = pack_ternary(q.codes), q.scale.reshape(1)
                if datapath == "a4.8" and n in ("o", "down"):
                    self.wtp[n] = pack_ternary(q.codes.t().contiguous())
            if datapath == "b1.58":
                self.kc = torch.zeros(B, N_HEADS, T_max, HEAD_DIM, device=device, dtype=torch.float16)
                self.vc = torch.zeros_like(self.kc)
            else:
                self.cache = KVCache.allocate(B, N_HEADS, T_max, HEAD_DIM, device)
        self.sparsity: dict[str, float] = {}
        self.record = True          # measure activation sparsity (syncs: off while timing / capturing)

    # -- linear layers -------------------------------------------------------------------------
    def _lin(self, name: str, x: torch.Tensor, mode: str, norm: str, gate: torch.Tensor | None = None,
             sparse: bool = False) -> torch.Tensor:
        from kernels.rmsnorm_quant import rmsnorm_quant
        from kernels.sparse_gemv import sparse_gemv
        from kernels.ternary_gemm import w158_matmul

        N = self.wp[name].shape[0]
        if sparse:
            codes, xs, nzi, nnz = rmsnorm_quant(x, mode, self.norm[norm], gate=gate, nonzero=True)
            self._last_codes = codes
            return sparse_gemv(codes, nzi[0], nnz, xs, self.wtp[name], self.ws[name], N)
        fp8 = mode == "int4" and x.shape[0] > 4
        codes, xs = rmsnorm_quant(x, mode, self.norm[norm], gate=gate, out_fp8=fp8)
        self._last_codes = codes
        return w158_matmul(codes, xs, self.wp[name], self.ws[name], N)

    def forward(self, x: torch.Tensor, pos0: int) -> torch.Tensor:
        """``x [B, T, d]`` fp16 at positions ``pos0..pos0+T-1``; returns the block output."""
        B, T, d = x.shape
        N_HEADS, HEAD_DIM, D_FFN = self.dims.n_heads, self.dims.head_dim, self.dims.d_ffn
        M = B * T
        decode = T == 1
        cos, sin = _rope(pos0, T, HEAD_DIM, x.device)
        xf = x.reshape(M, d)
        if self.dp == "fp16":
            qkv = _rmsnorm16(xf, self.norm["attn"]) @ self.w16["qkv"].t()
        else:
            qkv = self._lin("qkv", xf, "int8" if self.dp == "b1.58" else "int4", "attn")
        q, k, v = qkv.view(B, T, 3, N_HEADS, HEAD_DIM).permute(2, 0, 3, 1, 4)      # [B, H, T, Dh]
        q, k = _apply_rope(q, cos, sin), _apply_rope(k, cos, sin)
        if self.dp == "a4.8":
            from kernels.kv_attention import decode_attention, kv_write

            kv_write(self.cache, k.contiguous(), v.contiguous(), pos0)
            if decode:
                a = decode_attention(q[:, :, 0].contiguous(), self.cache, pos0 + 1)
                a = a.reshape(M, d)
            else:
                a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                a = a.transpose(1, 2).reshape(M, d)
        else:
            self.kc[:, :, pos0:pos0 + T] = k
            self.vc[:, :, pos0:pos0 + T] = v
            if decode:
                a = F.scaled_dot_product_attention(q, self.kc[:, :, :pos0 + 1], self.vc[:, :, :pos0 + 1])
            else:
                a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            a = a.transpose(1, 2).reshape(M, d)
        if self.dp == "fp16":
            o = a @ self.w16["o"].t()
        elif self.dp == "b1.58":
            o = self._lin("o", a, "int8", "o")
        else:
            o = self._lin("o", a, "topk8", "o", sparse=decode and B == 1)
            if self.record:
                self.sparsity["o_in"] = float((self._last_codes.float() == 0).float().mean())
        h = xf + o
        if self.dp == "fp16":
            gu = _rmsnorm16(h, self.norm["ffn"]) @ self.w16["gu"].t()
            act = F.silu(gu[:, :D_FFN]) * gu[:, D_FFN:]
            dn = act @ self.w16["down"].t()
        elif self.dp == "b1.58":
            gu = self._lin("gu", h, "int8", "ffn")
            act = F.silu(gu[:, :D_FFN]) * gu[:, D_FFN:]
            dn = self._lin("down", act, "int8", "down")
        else:
            gu = self._lin("gu", h, "int4", "ffn")
            gate, up = gu[:, :D_FFN], gu[:, D_FFN:]
            dn = self._lin("down", up, "int8", "down", gate=gate, sparse=decode and B == 1)
            if self.record:
                self.sparsity["down_in"] = float((self._last_codes.float() == 0).float().mean())
        return (h + dn).view(B, T, d)


def bench_block(rec, ctx: int = 2048, prefill: int = 2048) -> None:
    """Decode step (B=1, context ``ctx``, CUDA graph) and ``prefill``-token prefill per datapath."""
    from kernels.benchmark import bench_graph_us, bench_us

    for dp in ("fp16", "b1.58", "a4.8"):
        blk = Block(dp, 1, max(ctx, prefill) + 1)
        D_MODEL = LLAMA7B.d_model
        xp = torch.randn(1, prefill, D_MODEL, device="cuda", dtype=torch.float16)
        blk.forward(xp, 0)
        blk.record = False
        us = bench_us(lambda: blk.forward(xp, 0))
        rec.add("block_prefill", f"block_{dp}", "ours" if dp != "fp16" else "baseline", dp, prefill,
                D_MODEL, prefill, us, 0.0, 0.0, False, sparsity=blk.sparsity.get("down_in", 0.0),
                sparsity_o=blk.sparsity.get("o_in", 0.0))
        xd = torch.randn(1, 1, D_MODEL, device="cuda", dtype=torch.float16)
        blk.record = True
        blk.forward(xd, ctx)
        sp = dict(blk.sparsity)
        blk.record = False
        us = bench_graph_us([lambda: blk.forward(xd, ctx)])
        rec.add("block_decode", f"block_{dp}", "ours" if dp != "fp16" else "baseline", dp, 1, D_MODEL, ctx,
                us, 0.0, 0.0, False, sparsity=sp.get("down_in", 0.0), cuda_graph=True,
                sparsity_o=sp.get("o_in", 0.0))
        del blk
        torch.cuda.empty_cache()
