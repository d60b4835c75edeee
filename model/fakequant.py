"""Fake-quant (float, trainable) versions of the quantizers in ``model.quant``.

Each function returns **integer-valued float32 codes** carrying a
straight-through estimator plus a detached float32 scale, so that

* the forward values are the very codes ``model.quant`` produces (same
  arithmetic: float32 upcast, clamped reductions, one correctly rounded
  float32 division for the multiplier, round-half-even, clamp);
* the backward pass treats the whole quantizer as the identity on the value
  ``codes * scale`` (STE, [A48 §2.2], [FAQ Fig.3]: ``x + (q(x) - x).detach()``);
  the TopK mask is bypassed unmasked as in Q-Sparse [QS eq.12-13].

The code is written independently of ``model.quant`` (e.g. FP4 uses the
paper's exponent formula, TopK a k-th-value threshold) so that the tests that
compare the two paths check something.  A float32 GEMM on these codes is
exact while every partial sum stays below 2**24 (see ``exact_f32_gemm_ok``).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from model.quant import CLAMP, SQRT7

F32 = torch.float32


def _f32(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"expected a floating-point tensor, got {getattr(x, 'dtype', type(x))}")
    return x.to(F32)


def _divide(num: float, den: torch.Tensor) -> torch.Tensor:
    """num / den as one correctly rounded float32 division (not den.reciprocal() * num)."""
    return torch.div(torch.full_like(den, num), den)


def _ste(u: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Forward: exactly ``codes``; backward: d/du = identity.

    Written ``codes + (u - u.detach())`` rather than ``u + (codes - u).detach()``:
    the latter equals ``codes`` only up to float rounding.
    """
    if not (torch.is_grad_enabled() and u.requires_grad):
        return codes.detach() + 0.0      # the same values (u - u is +0.0 for finite u), half the work
    return codes.detach() + (u - u.detach())


def _rowmax(x: torch.Tensor) -> torch.Tensor:
    return x.detach().abs().amax(dim=-1, keepdim=True).clamp_min(CLAMP)


def _rowmean(x: torch.Tensor) -> torch.Tensor:
    return x.detach().double().abs().mean(dim=-1, keepdim=True).to(F32).clamp_min(CLAMP)


def fake_int8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token INT8 absmax codes (STE) and scale gamma/127 [A48 eq.3]."""
    x = _f32(x)
    gamma = _rowmax(x)
    u = x * _divide(127.0, gamma)
    return _ste(u, torch.round(u).clamp(-128, 127)), gamma / 127.0


def fake_int4(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token INT4 absmean codes (STE) and scale beta/sqrt7 [A48 eq.7]."""
    x = _f32(x)
    beta = _rowmean(x)
    u = x * _divide(SQRT7, beta)
    return _ste(u, torch.round(u).clamp(-8, 7)), beta / SQRT7


def fake_fp4(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token FP4 E2M1 MinMax [A48 eq.8-9]; codes are 2x the E2M1 value.

    With y = x * 6/max|x| (so |y| <= 6), the step of the E2M1 grid at |y| is
    2**(max(floor(log2|y|), 0) - 1); y is rounded (half-even) to that step.
    """
    x = _f32(x)
    gamma = _rowmax(x)
    u = x * _divide(6.0, gamma)
    mag = u.detach().abs()
    _, exp = torch.frexp(mag)                      # mag = m * 2**exp, m in [0.5, 1)
    step = torch.ldexp(torch.ones_like(mag), (exp - 1).clamp_min(0) - 1)  # 0.5, 1 or 2
    q = (torch.round(mag / step) * step).clamp(max=6.0)
    return _ste(2.0 * u, 2.0 * torch.sign(u.detach()) * q), gamma / 12.0


def topk_keep(x: torch.Tensor, ratio: float) -> torch.Tensor:
    """Boolean mask of the k = ceil(ratio*d) largest |x| per row; ties: lower index wins.

    Threshold form: keep everything above the k-th largest value t, then the
    first (k - #above) entries equal to t in index order.
    """
    a = x.detach().abs()
    d = a.shape[-1]
    k = math.ceil(ratio * d)
    t = torch.kthvalue(a, d - k + 1, dim=-1, keepdim=True).values
    above = a > t
    tie = a == t
    need = k - above.sum(dim=-1, keepdim=True)
    return above | (tie & (torch.cumsum(tie.to(torch.int32), dim=-1) <= need))


def fake_topk_int8(x: torch.Tensor, ratio: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """TopK-then-INT8 [A48 eq.1]: gamma of the unmasked row; STE unmasked [QS eq.13]."""
    x = _f32(x)
    gamma = _rowmax(x)
    u = x * _divide(127.0, gamma)
    codes = torch.round(u).clamp(-128, 127) * topk_keep(x, ratio)
    return _ste(u, codes), gamma / 127.0


def _l1_float64(w: torch.Tensor, rows: int = 256) -> torch.Tensor:
    """sum|w| accumulated in float64, in row chunks (no full-size temporaries)."""
    flat = w.reshape(-1, w.shape[-1])
    parts = [torch.linalg.vector_norm(flat[i:i + rows], 1, dtype=torch.float64)
             for i in range(0, flat.shape[0], rows)]
    return torch.stack(parts).sum()


# Two float64 sums of the same float32 values in different orders differ by far less than this
# (relative); a mean this close to a float32 rounding boundary is recomputed in the reference order.
_ORDER_SLACK = 1e-9


def _mean_abs_float32(w: torch.Tensor) -> torch.Tensor:
    """mean|w| as :func:`_l1_float64` / numel rounded once to float32; on the CPU about 6x faster.

    The fast float64 sum (NumPy, in row chunks) sums in another order; where its mean lies within
    ``_ORDER_SLACK`` of a point where float32 rounding changes, the reference sum decides, so the
    result is the same.  On a GPU the reference sum is fast and used as it is.
    """
    n = w.numel()
    if w.device.type != "cpu":
        return (_l1_float64(w) / n).to(F32)
    flat = w.detach().reshape(-1, w.shape[-1]).numpy()
    step = max(1, (1 << 24) // max(1, flat.shape[1]))          # |w| temporaries of at most 64 MB
    mean = sum(float(np.abs(flat[i:i + step]).sum(dtype=np.float64)) for i in range(0, flat.shape[0], step)) / n
    lo, hi = (torch.tensor([mean * (1 - _ORDER_SLACK), mean * (1 + _ORDER_SLACK)], dtype=torch.float64)
              .to(F32).tolist())
    if lo != hi:
        return (_l1_float64(w) / n).to(F32)
    return torch.tensor(lo, dtype=F32)


def fake_ternary(w: torch.Tensor, inplace: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Ternary absmean codes (STE) and the per-matrix scale alpha [A48 eq.2].

    mean|W| is a float64 sum of |W| divided by the count, rounded once to float32.
    Without autograd no STE graph is built; ``inplace=True`` (float32 ``w``,
    no autograd) overwrites ``w`` with its codes, for large inference-only weights.
    """
    w = _f32(w)
    alpha = _mean_abs_float32(w.detach()).clamp_min(CLAMP)
    inv = _divide(1.0, alpha)
    if not (torch.is_grad_enabled() and w.requires_grad):
        u = w.mul_(inv) if inplace else torch.mul(w, inv)
        return u.round_().clamp_(-1, 1), alpha
    if inplace:
        raise ValueError("inplace ternarisation needs autograd off (torch.no_grad())")
    u = w * inv
    return _ste(u, torch.round(u).clamp(-1, 1)), alpha


def fake_weight_rows(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-row symmetric absmax weight codes (STE) and scales [N, 1] (the quantized LM head).

    Codes in [-(2**(bits-1) - 1), 2**(bits-1) - 1]; same arithmetic as ``model.quant.quantize_weight_rows``.
    """
    w = _f32(w)
    qmax = float((1 << (bits - 1)) - 1)
    gamma = _rowmax(w)
    u = w * _divide(qmax, gamma)
    return _ste(u, torch.round(u).clamp(-qmax, qmax)), gamma / qmax


def fake_kv(x: torch.Tensor, bits: int, bos_bits: int | None, positions: torch.Tensor) -> torch.Tensor:
    """Dequantized post-RoPE K/V/Q value (STE) of the unsigned absmax KV code [docs/decisions.md 8].

    ``x``: [..., T, head_dim]; rows at position 0 use ``bos_bits``.
    """
    x = _f32(x)
    T = x.shape[-2]
    nbits = torch.full((T, 1), float(bits), device=x.device)
    if bos_bits is not None:   # torch.where, not a mask assignment: no device sync
        nbits = torch.where(positions.reshape(T, 1).to(x.device) == 0, float(bos_bits), nbits)
    L = torch.exp2(nbits) - 1.0
    s = _rowmax(x)
    c = torch.round((x.detach() / s + 1.0) * (L * 0.5))
    c = torch.minimum(c.clamp_min(0.0), L)
    return _ste(x, (2.0 * c - L) * (s / L))


FAKE_ACT = {"int8": fake_int8, "int4": fake_int4, "fp4": fake_fp4}

# largest |code| per format, for the exactness bound of a float32 GEMM
MAX_CODE = {"int8": 128, "int4": 8, "fp4": 12, "int8-topk": 128, "ternary": 1}


def exact_f32_gemm_ok(act_fmt: str, k: int, weight_max_code: int = MAX_CODE["ternary"]) -> bool:
    """True when a float32 GEMM of codes is exact: every partial sum < 2**24.

    ``weight_max_code``: the largest |weight code| (1 for ternary; 127 / 7 for the INT8 / INT4 LM head).
    """
    return MAX_CODE[act_fmt] * weight_max_code * k < 2 ** 24
