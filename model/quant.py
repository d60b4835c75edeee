"""Bit-exact quantizers of the BitNet datapaths (the golden reference).

Every quantizer returns a :class:`QTensor` (integer codes + fp32 scales) and
its exact arithmetic is fixed here, so that ``kernels/`` and hardware models
can reproduce codes and scales **bit for bit**.  Formulas: BitNet a4.8
(arXiv 2411.04965) eq. 1-9, b1.58 (arXiv 2402.17764) eq. 1-3; conventions:
``docs/decisions.md`` 1-8 (restated in ``docs/numerics.md``).

Arithmetic contract (what a kernel must do to match):

* Inputs of any float dtype are upcast to float32 first.
* Reductions: ``max|x|`` is exact; ``mean|x|`` and sums accumulate in float64
  and are rounded once to float32, then clamped at 1e-5 (``CLAMP``).
* One float32 division gives the quantizing multiplier (``inv = Q / r``) and
  one gives the dequantizing scale (``scale = r / Q``), each correctly rounded
  (IEEE; in Triton use ``tl.math.div_rn``).
* ``code = clamp(round_half_even(x * inv), lo, hi)`` with one float32 multiply.
* Integer GEMM: int32 accumulation of codes; then
  ``y = (float32(acc) * act_scale) * weight_scale`` in float32, then cast.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

CLAMP = 1e-5  # reductions clamped at 1e-5, as the official BitNet code does [docs/decisions.md 2]
SQRT7 = float(torch.tensor(7.0, dtype=torch.float32).sqrt())  # fp32 sqrt(7), INT4 absmean [A48 eq.7]

FORMATS = ("ternary", "int8", "int4", "fp4", "kv")


@dataclass(frozen=True)
class QTensor:
    """Integer codes plus float32 scale(s).

    ``codes`` is an int8 tensor.  ``scale`` broadcasts against ``codes``:
    a 0-d tensor (per matrix) or shape ``[..., 1]`` (per token / per head).
    Value = ``codes * scale`` for ternary/int8/int4/fp4 (fp4 codes are twice
    the E2M1 value, i.e. integers in {0,±1,±2,±3,±4,±6,±8,±12}).
    For ``kv`` the codes are unsigned in ``[0, levels]`` and
    value = ``(2*codes - levels) * scale``; ``levels = 2**bits - 1`` per row.
    """

    codes: torch.Tensor
    scale: torch.Tensor
    fmt: str
    bits: int
    levels: torch.Tensor | None = None  # kv only: 2**bits-1 per (token, head) row

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise ValueError(f"unknown quantized format {self.fmt!r}; known: {FORMATS}")
        if self.codes.dtype != torch.int8:
            raise TypeError(f"codes must be int8, got {self.codes.dtype}")
        if self.scale.dtype != torch.float32:
            raise TypeError(f"scale must be float32, got {self.scale.dtype}")

    def signed_codes(self) -> torch.Tensor:
        """Signed integer codes (int32) whose product with ``scale`` is the value."""
        c = self.codes.to(torch.int32)
        if self.fmt == "kv":
            return 2 * c - self.levels.to(torch.int32)
        return c

    def dequant(self) -> torch.Tensor:
        """Float32 value the codes stand for."""
        return self.signed_codes().to(torch.float32) * self.scale

    @property
    def zero_fraction(self) -> float:
        """Fraction of exact-zero values (the sparsity an engine can skip)."""
        return float((self.signed_codes() == 0).float().mean())


# ---------------------------------------------------------------- helpers
def check_float(x: torch.Tensor, name: str = "x", min_dim: int = 1) -> torch.Tensor:
    """Validate a float tensor (type, rank, non-empty, finite); return it as float32."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimension(s), got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return x.to(torch.float32)


def round_half_even(x: torch.Tensor) -> torch.Tensor:
    """Round to nearest, ties to even (torch.round semantics) [docs/decisions.md 3]."""
    return torch.round(x)


def absmax(x: torch.Tensor, dim: int | None = -1) -> torch.Tensor:
    """max|x| over ``dim`` (None: whole tensor), clamped at 1e-5; exact."""
    a = x.abs().amax() if dim is None else x.abs().amax(dim=dim, keepdim=True)
    return a.clamp_min(CLAMP).to(torch.float32)


def absmean(x: torch.Tensor, dim: int | None = -1) -> torch.Tensor:
    """mean|x| over ``dim`` accumulated in float64, rounded once to float32, clamped at 1e-5."""
    a64 = x.to(torch.float64).abs()
    m = a64.mean() if dim is None else a64.mean(dim=dim, keepdim=True)
    return m.to(torch.float32).clamp_min(CLAMP)


def _div(a: float | torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Correctly rounded float32 division."""
    return torch.as_tensor(a, dtype=torch.float32) / b


def _codes(x: torch.Tensor, inv: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    return round_half_even(x * inv).clamp_(lo, hi).to(torch.int8)


# ------------------------------------------------------------ quantizers
def quantize_ternary(w: torch.Tensor) -> QTensor:
    """Ternary absmean weights, one scale per matrix [A48 eq.2, B158 eq.1-3].

    alpha = max(mean|W|, 1e-5); code = clamp(rne(W * (1/alpha)), -1, 1).
    """
    w = check_float(w, "w", min_dim=2)
    alpha = absmean(w, dim=None)
    inv = _div(1.0, alpha)
    return QTensor(_codes(w, inv, -1, 1), alpha, "ternary", 2)


def quantize_int8(x: torch.Tensor) -> QTensor:
    """Per-token INT8 absmax [A48 eq.3]: code = clamp(rne(x * 127/gamma), -128, 127)."""
    x = check_float(x)
    gamma = absmax(x)
    return QTensor(_codes(x, _div(127.0, gamma), -128, 127), gamma / 127.0, "int8", 8)


def quantize_int4(x: torch.Tensor) -> QTensor:
    """Per-token INT4 absmean [A48 eq.7]: code = clamp(rne(x * sqrt7/beta), -8, 7)."""
    x = check_float(x)
    beta = absmean(x)
    return QTensor(_codes(x, _div(SQRT7, beta), -8, 7), beta / SQRT7, "int4", 4)


def quantize_fp4(x: torch.Tensor) -> QTensor:
    """Per-token FP4 E2M1 MinMax [A48 eq.8-9], as RTN-even onto the E2M1 grid.

    y = x * (6/gamma); |y| is rounded to nearest even on {0,.5,1,1.5,2,3,4,6};
    the code stored is 2*y (an integer), scale = gamma/12.
    """
    x = check_float(x)
    gamma = absmax(x)
    codes = (torch.sign(x) * e2m1_twice((x * _div(6.0, gamma)).abs())).to(torch.int8)
    return QTensor(codes, gamma / 12.0, "fp4", 4)


def e2m1_twice(y: torch.Tensor) -> torch.Tensor:
    """Twice the FP4 E2M1 magnitude nearest to ``y >= 0`` (ties to even), saturating at 6.

    The E2M1 magnitudes are {0, .5, 1, 1.5, 2, 3, 4, 6}; twice them are the integers
    {0, 1, 2, 3, 4, 6, 8, 12} (float32).
    """
    return torch.where(y < 2.0, round_half_even(2.0 * y),            # step 0.5 -> 2y in {0..4}
           torch.where(y < 4.0, 2.0 * round_half_even(y),            # step 1   -> 2y in {4,6,8}
                       4.0 * round_half_even(0.5 * y))).clamp_(max=12.0)  # step 2 -> {8,12}


def quantize_weight_rows(w: torch.Tensor, bits: int) -> QTensor:
    """Symmetric absmax weight codes, one scale per output row (the quantized LM head).

    ``w``: [N, K] (N outputs).  Q = 2**(bits-1) - 1 (127 for 8 bits, 7 for 4);
    gamma = max(max|W_row|, 1e-5); code = clamp(rne(W * (Q/gamma)), -Q, Q); scale =
    gamma / Q, shape [N, 1].  No paper specifies a quantized output head
    (``model.config.ModelConfig.lm_head_bits``); this is the plainest per-channel rule.
    """
    w = check_float(w, "w", min_dim=2)
    if bits not in (8, 4):
        raise ValueError(f"bits must be 8 or 4, got {bits!r}")
    qmax = float(2 ** (bits - 1) - 1)
    gamma = absmax(w)
    return QTensor(_codes(w, _div(qmax, gamma), -int(qmax), int(qmax)), gamma / qmax,
                   "int8" if bits == 8 else "int4", bits)


def topk_mask(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Per-token mask of the k = ceil(ratio*d) largest |x| [A48 eq.1, docs/decisions.md 6].

    Ties at the k-th value: the lower feature index wins (stable sort).
    """
    x = check_float(x)
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"topk ratio must be in (0, 1], got {ratio}")
    d = x.shape[-1]
    k = math.ceil(ratio * d)
    order = torch.sort(x.abs(), dim=-1, descending=True, stable=True).indices
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask.scatter_(-1, order[..., :k], True)
    return mask


def quantize_topk_int8(x: torch.Tensor, ratio: float = 0.5) -> QTensor:
    """TopK-then-INT8 (a4.8 Wo input) [A48 eq.1]: gamma = max|x| of the unmasked x."""
    q = quantize_int8(x)
    codes = torch.where(topk_mask(x, ratio), q.codes, torch.zeros_like(q.codes))
    return QTensor(codes, q.scale, "int8", 8)


def relu2glu(up: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """ReLU²GLU product in float32: up * (relu(gate) * relu(gate)) [A48 eq.5]."""
    up, gate = check_float(up, "up"), check_float(gate, "gate")
    if up.shape != gate.shape:
        raise ValueError(f"up and gate shapes differ: {tuple(up.shape)} vs {tuple(gate.shape)}")
    g = gate.clamp_min(0.0)
    return up * (g * g)


def quantize_kv(x: torch.Tensor, bits: int = 3, bos_bits: int | None = 4,
                positions: torch.Tensor | None = None) -> QTensor:
    """Post-RoPE KV quantizer, one absmax scale per (token, head) [docs/decisions.md 8].

    ``x``: [..., T, head_dim] (any leading dims, e.g. batch, heads).  Unsigned
    code c = clamp(rne((x/s + 1) * L/2), 0, L), L = 2**bits - 1; value =
    (2c - L) * (s/L).  Rows whose position is 0 (the BOS token) use
    ``bos_bits`` instead (a4.8 §3.1: BOS heads kept at 4 bits).
    """
    x = check_float(x, min_dim=2)
    for name, b in (("bits", bits), ("bos_bits", bos_bits)):
        # at most 7 bits: codes and levels are stored in int8 (8 bits would wrap 255 to -1)
        if b is not None and not (isinstance(b, int) and 2 <= b <= 7):
            raise ValueError(f"{name} must be an int in [2, 7], got {b!r}")
    T = x.shape[-2]
    if positions is None:
        positions = torch.arange(T)
    if positions.shape != (T,):
        raise ValueError(f"positions must have shape ({T},), got {tuple(positions.shape)}")
    row_bits = torch.full((T, 1), bits, dtype=torch.int32)
    if bos_bits is not None:
        row_bits[positions == 0] = bos_bits
    levels = (2 ** row_bits - 1).expand(*x.shape[:-1], 1).contiguous()
    L = levels.to(torch.float32)
    s = absmax(x)
    c = round_half_even((x / s + 1.0) * (L * 0.5))
    c = torch.minimum(c.clamp_min(0.0), L)
    return QTensor(c.to(torch.int8), s / L, "kv", bits, levels.to(torch.int8))


ACT_QUANTIZERS = {
    "int8": quantize_int8,
    "int4": quantize_int4,
    "fp4": quantize_fp4,
}


# ------------------------------------------------------------ integer GEMM
def int_gemm(x: QTensor, w: QTensor) -> torch.Tensor:
    """Exact int32 accumulator of x.codes @ w.codes^T (float64 BLAS; exact below 2^53)."""
    if x.codes.shape[-1] != w.codes.shape[-1]:
        raise ValueError(f"K mismatch: activations {tuple(x.codes.shape)} vs weights {tuple(w.codes.shape)}")
    acc = x.signed_codes().to(torch.float64) @ w.signed_codes().to(torch.float64).transpose(-1, -2)
    if acc.abs().max() >= 2 ** 31:
        raise OverflowError("int32 accumulator overflow")
    return acc.to(torch.int32)


def scale_acc(acc: torch.Tensor, x_scale: torch.Tensor, w_scale: torch.Tensor,
              out_dtype: torch.dtype = torch.float16) -> torch.Tensor:
    """y = (float32(acc) * act_scale) * weight_scale in float32, then cast [docs/decisions.md 5]."""
    return ((acc.to(torch.float32) * x_scale) * w_scale).to(out_dtype)


def qlinear(x: QTensor, w: QTensor, out_dtype: torch.dtype = torch.float16) -> torch.Tensor:
    """Integer-exact quantized linear: int GEMM, then scales."""
    return scale_acc(int_gemm(x, w), x.scale, w.scale, out_dtype)
