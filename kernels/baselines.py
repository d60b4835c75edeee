"""The quantized GPU baselines that torch ships, as linear layers: W8A8-FP8 (cuBLAS) and W4A16 (INT4
weight-only, group 128), so the benchmark can time them beside the ternary kernels.

* :class:`Fp8Linear` -- weights in ``float8_e4m3fn`` with one fp32 scale per output row, activations
  quantized per token (dynamic absmax to the e4m3 range, in torch), then ``torch._scaled_mm``
  (cuBLAS FP8 on Hopper) with the row-wise scales, fp16 out: the W8A8-FP8 recipe of serving stacks.
* :class:`Int4Linear` -- asymmetric INT4 weights per group of 128 along K (scale and zero per group
  and output row), packed by ``torch._convert_weight_to_int4pack`` and multiplied by
  ``torch._weight_int4pack_mm`` (bf16 activations; fp16 in, fp16 out here, two casts).

Neither is exact (they are other arithmetics); :func:`dequantized` gives each one's effective
weights so a check can compare the layer with ``x @ W_effᵀ`` in fp32.  CUDA only.
"""
from __future__ import annotations

import torch

from kernels.checks import check_tensor

FP8_MAX = 448.0                 # largest finite float8_e4m3fn
INT4_GROUP = 128
INT4_INNER_K_TILES = 8


class Fp8Linear:
    """``y = x · Wᵀ`` with W8A8-FP8: row-wise weight scales, per-token dynamic activation scales."""

    def __init__(self, w: torch.Tensor):
        check_tensor(w, "w", (torch.float16, torch.bfloat16, torch.float32), dim=2)
        wf = w.float()
        self.w_scale = (wf.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / FP8_MAX).t().contiguous()  # [1, N]
        self.wq = (wf / self.w_scale.t()).to(torch.float8_e4m3fn)                                        # [N, K]
        self.N, self.K = w.shape

    def quantize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token FP8 codes ``[M, K]`` and scales ``[M, 1]`` of ``x``."""
        xf = x.float()
        s = xf.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / FP8_MAX
        return (xf / s).to(torch.float8_e4m3fn), s

    def matmul(self, xq: torch.Tensor, x_scale: torch.Tensor) -> torch.Tensor:
        """The cuBLAS FP8 GEMM alone, on codes from :meth:`quantize`."""
        return torch._scaled_mm(xq, self.wq.t(), scale_a=x_scale, scale_b=self.w_scale, out_dtype=torch.bfloat16)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.matmul(*self.quantize(x)).to(x.dtype)

    def emulated(self, x: torch.Tensor) -> torch.Tensor:
        """The same arithmetic in float32 on any device (no cuBLAS): the codes' products accumulated in float32,
        then both scales; a CPU stand-in for :meth:`__call__`."""
        xq, s = self.quantize(x)
        return (xq.float() @ self.wq.float().t()) * s * self.w_scale

    def dequantized(self) -> torch.Tensor:
        return self.wq.float() * self.w_scale.t()


class Int4Linear:
    """``y = x · Wᵀ`` with INT4 weights (asymmetric, one scale and zero per 128 values of a row)."""

    def __init__(self, w: torch.Tensor, group: int = INT4_GROUP):
        check_tensor(w, "w", (torch.float16, torch.bfloat16, torch.float32), dim=2)
        N, K = w.shape
        if K % group or N % 8:
            raise ValueError(f"Int4Linear needs K % {group} == 0 and N % 8 == 0, got N={N}, K={K}")
        wg = w.float().reshape(N, K // group, group)
        lo, hi = wg.amin(dim=2, keepdim=True), wg.amax(dim=2, keepdim=True)
        scale = ((hi - lo).clamp_min(1e-6) / 15.0)
        q = torch.clamp(torch.round((wg - lo) / scale), 0, 15).to(torch.int32)           # [N, K/g, g]
        self.codes = q.reshape(N, K)
        self.scale = scale.reshape(N, K // group)
        self.zero = (lo + 8.0 * scale).reshape(N, K // group)            # dequant: (q - 8)·scale + zero
        self.group, self.N, self.K = group, N, K
        packed = (self.codes[:, ::2] << 4 | self.codes[:, 1::2]).to(torch.uint8)
        self.wp = torch._convert_weight_to_int4pack(packed.contiguous(), INT4_INNER_K_TILES)
        self.sz = torch.stack((self.scale.t(), self.zero.t()), dim=2).to(torch.bfloat16).contiguous()  # [K/g, N, 2]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = torch._weight_int4pack_mm(x.to(torch.bfloat16), self.wp, self.group, self.sz)
        return y.to(x.dtype)

    def dequantized(self) -> torch.Tensor:
        """The weights the kernel multiplies by (scale and zero rounded to bf16, as it reads them)."""
        s = self.sz[..., 0].float().t().repeat_interleave(self.group, dim=1)
        z = self.sz[..., 1].float().t().repeat_interleave(self.group, dim=1)
        return (self.codes.float() - 8.0) * s + z


def rel_error(y: torch.Tensor, x: torch.Tensor, w_eff: torch.Tensor) -> float:
    """``‖y - x·W_effᵀ‖ / ‖x·W_effᵀ‖`` with the reference in fp32."""
    ref = x.float() @ w_eff.t()
    return float((y.float() - ref).norm() / ref.norm().clamp_min(1e-30))
