"""Reference arithmetic of the quantized baseline datapaths an accelerator study compares against.

Four datapaths, each a weight storage and an activation format (``model.config.WEIGHT_STORAGE``):

* ``w4a16``: INT4 weights, symmetric, one FP16 scale per group of ``weight_group`` (default 128)
  consecutive weights along K (codes in [-7, 7]); FP16 activations.  GPTQ / AWQ-style weight-only
  quantization, stated here without zero points.
* ``w8a8-int8``: INT8 weights with one fp32 absmax scale per output channel (codes in [-127, 127]),
  INT8 activations with one fp32 absmax scale per token (``model.quant.quantize_int8``).
* ``w8a8-fp8``: FP8 E4M3 (OCP ``e4m3fn``, largest finite 448) weights per output channel and
  activations per token, each with an fp32 scale ``max|row| / 448``.
* ``w4a4-mxfp4``: OCP Microscaling MXFP4 on both operands: blocks of 32 consecutive values along K
  share one E8M0 scale ``2**(floor(log2 max|block|) - 2)`` (1 byte); elements are FP4 E2M1
  (round half to even, saturating at +-6).  [OCP Microscaling Formats (MX) v1.0, 2023, §5.3, §6.3.]

Arithmetic contract (what a kernel must do to match):

* Values are float32 from the start; every element value times its scale is exact in float32.
* INT8 x INT8 and FP8 x FP8 (one scale per row on both sides): the accumulator ``acc`` is the exact sum
  of the element products (float64 here; exact below 2**53), then
  ``y = (float32(acc) * act_scale) * weight_scale`` in float32, as in ``model.quant.scale_acc``.
* W4A16 and MXFP4 (scales inside the reduction): ``y = float32(X_deq @ W_deq^T)`` with the
  dequantized operands multiplied and summed in float64.

The op trace counts their bytes with ``model.config.WeightStorage`` and ``ActStorage``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from model.quant import CLAMP, QTensor, absmax, check_float, e2m1_twice, quantize_weight_rows

FP8_E4M3_MAX = 448.0             # largest finite OCP E4M3 (e4m3fn) value
MX_BLOCK = 32                    # MX block size along K [OCP MX v1.0 §5]
E2M1_EMAX = 2                    # exponent of E2M1's largest normal (6 = 1.5 * 2**2)
INT4_WEIGHT_MAX = 7              # symmetric INT4 weight codes


@dataclass(frozen=True)
class GroupQ:
    """Element values (float32) with one float32 scale per ``group`` consecutive elements of the last dim.

    ``values``: the codes as numbers (INT4 / INT8 integers, E4M3 or E2M1 values); ``scale``:
    ``[..., ceil(K / group)]``; value = ``values * scale`` (the last group may be shorter).
    """

    values: torch.Tensor
    scale: torch.Tensor
    group: int
    fmt: str                     # int4, int8, fp8, fp4

    def expanded_scale(self) -> torch.Tensor:
        return self.scale.repeat_interleave(self.group, dim=-1)[..., : self.values.shape[-1]]

    def dequant(self) -> torch.Tensor:
        return self.values * self.expanded_scale()

    def signed_codes(self) -> torch.Tensor:
        """The element values (what a zero-skipping engine sees)."""
        return self.values

    @property
    def per_row(self) -> bool:
        return self.group >= self.values.shape[-1]


def _grouped(x: torch.Tensor, group: int) -> torch.Tensor:
    """``x [..., K]`` as ``[..., ceil(K / group), group]``, the last group padded with zeros."""
    k = x.shape[-1]
    pad = (-k) % group
    if pad:
        x = torch.nn.functional.pad(x, (0, pad))
    return x.reshape(*x.shape[:-1], (k + pad) // group, group)


def quantize_int4_groups(w: torch.Tensor, group: int = 128) -> GroupQ:
    """W4A16 weights: per group, scale = fp16(max(max|w|, 1e-5) / 7) (the stored FP16 scale, as float32);
    code = clamp(rne(w / scale), -7, 7)."""
    w = check_float(w, "w", min_dim=2)
    if not isinstance(group, int) or group < 1:
        raise ValueError(f"group must be a positive int, got {group!r}")
    g = _grouped(w, group)
    scale = (g.abs().amax(dim=-1).clamp_min(CLAMP) / INT4_WEIGHT_MAX).to(torch.float16).to(torch.float32)
    s = scale.repeat_interleave(group, dim=-1)[..., : w.shape[-1]]
    codes = torch.round(w / s).clamp_(-INT4_WEIGHT_MAX, INT4_WEIGHT_MAX)
    return GroupQ(codes, scale, group, "int4")


def quantize_int8_rows(w: torch.Tensor) -> GroupQ:
    """W8A8 INT8 weights: symmetric absmax per output channel (``model.quant.quantize_weight_rows``)."""
    return from_qtensor(quantize_weight_rows(w, 8))


def from_qtensor(qt: QTensor) -> GroupQ:
    """A per-row :class:`~model.quant.QTensor` (scale ``[..., 1]``) as a :class:`GroupQ`."""
    if qt.fmt not in ("int8", "int4") or qt.scale.shape[-1] != 1:
        raise ValueError(f"from_qtensor: needs per-row int8 / int4 codes, got {qt.fmt} with scale "
                         f"{tuple(qt.scale.shape)}")
    return GroupQ(qt.signed_codes().to(torch.float32), qt.scale, qt.codes.shape[-1], qt.fmt)


def e4m3(y: torch.Tensor) -> torch.Tensor:
    """Round float32 ``y`` (|y| <= 448) to the nearest E4M3 value, ties to even (float32 result)."""
    return y.clamp(-FP8_E4M3_MAX, FP8_E4M3_MAX).to(torch.float8_e4m3fn).to(torch.float32)


def quantize_fp8_rows(x: torch.Tensor) -> GroupQ:
    """FP8 E4M3 per row (weights: per output channel; activations: per token):
    scale = max(max|row|, 1e-5) / 448 in float32; value = e4m3(x / scale)."""
    x = check_float(x)
    scale = absmax(x) / FP8_E4M3_MAX
    return GroupQ(e4m3(x / scale), scale, x.shape[-1], "fp8")


def quantize_mxfp4(x: torch.Tensor) -> GroupQ:
    """MXFP4 (OCP MX v1.0): per block of 32 along the last dim, the E8M0 scale
    ``2**clamp(floor(log2 max|block|) - 2, -127, 127)`` (``2**-127`` for an all-zero block) and E2M1
    elements ``rne(x / scale)`` saturated at +-6."""
    x = check_float(x)
    g = _grouped(x, MX_BLOCK)
    amax = g.abs().amax(dim=-1)
    _, exp = torch.frexp(amax)                    # amax = m * 2**exp, m in [0.5, 1): floor(log2) = exp - 1
    shared = torch.where(amax > 0, exp - 1 - E2M1_EMAX, torch.full_like(exp, -127)).clamp(-127, 127)
    scale = torch.ldexp(torch.ones_like(amax, dtype=torch.float64), shared)      # 2**-127 needs float64
    y = (x.to(torch.float64) / scale.repeat_interleave(MX_BLOCK, dim=-1)[..., : x.shape[-1]]).to(torch.float32)
    values = torch.sign(y) * e2m1_twice(y.abs()) * 0.5
    return GroupQ(values, scale.to(torch.float32), MX_BLOCK, "fp4")


#: Weight quantizer of each baseline weight format (``group`` is used by INT4 only).
WEIGHT_QUANTIZERS = {
    "int4": quantize_int4_groups,
    "int8": lambda w, group=None: quantize_int8_rows(w),
    "fp8": lambda w, group=None: quantize_fp8_rows(w),
    "fp4": lambda w, group=None: quantize_mxfp4(w),
}

#: Activation quantizer of each baseline activation format (``model.config`` act_formats words).
ACT_QUANTIZERS = {"fp8": quantize_fp8_rows, "mxfp4": quantize_mxfp4}


def baseline_linear(x: torch.Tensor | GroupQ, w: GroupQ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``y = x . W^T`` under the contract above; returns (float32 y, the accumulator or None).

    ``x``: a float tensor (W4A16's FP16 activations) or quantized activations.
    """
    if isinstance(x, GroupQ) and x.per_row and w.per_row:
        if x.values.shape[-1] != w.values.shape[-1]:
            raise ValueError(f"K mismatch: activations {tuple(x.values.shape)} vs weights {tuple(w.values.shape)}")
        acc = x.values.to(torch.float64) @ w.values.to(torch.float64).transpose(-1, -2)
        return (acc.to(torch.float32) * x.scale) * w.scale.transpose(-1, -2), acc
    xd = x.dequant() if isinstance(x, GroupQ) else check_float(x)
    if xd.shape[-1] != w.values.shape[-1]:
        raise ValueError(f"K mismatch: activations {tuple(xd.shape)} vs weights {tuple(w.values.shape)}")
    return (xd.to(torch.float64) @ w.dequant().to(torch.float64).transpose(-1, -2)).to(torch.float32), None
