"""Arithmetic shared by the kernels: rounding, the output cast, the GLU product and the quantizers.

One encoding of the activation modes for every kernel that takes them as ``constexpr`` ints:

* :data:`QUANT_MODES` -- the per-token quantizer: ``"int8"`` absmax INT8, ``"int4"`` absmean INT4
  (sqrt 7), ``"topk8"`` TopK-50 % then INT8 (``rmsnorm_quant`` only);
* :data:`GLU_MODES` -- the GLU product the quantizer sees first: none, ``"relu2"``
  ``up·relu(gate)²`` [A48 eq.5] or ``"silu"`` ``fp16(fp16(silu(gate))·up)`` (the fp16 torch glue).

The jit helpers follow the arithmetic contract of ``model/quant.py`` (docs/decisions.md 2):
reductions clamped at 1e-5, ``inv = div_rn(Q, r)``, ``scale = div_rn(r, Q)``,
``code = clamp(rne(y·inv))``.  Callers compile with ``enable_fp_fusion=False`` so that ``y·inv``
is rounded to fp32 before the rounding step (an FMA would not round it).
"""
from __future__ import annotations

import triton
import triton.language as tl

QUANT_MODES = {"int8": 0, "int4": 1, "topk8": 2}
GLU_MODES = {None: 0, "relu2": 1, "silu": 2}
RNE_MAGIC = 12582912.0            # 1.5 * 2**23: (v + M) - M rounds |v| < 2**22 half to even


def quant_mode(mode: str, allowed: tuple[str, ...] = tuple(QUANT_MODES)) -> int:
    """The kernel constant of quantizer ``mode``; ValueError naming the choices otherwise."""
    if mode not in allowed:
        raise ValueError(f"mode must be one of {sorted(allowed)}, got {mode!r}")
    return QUANT_MODES[mode]


def glu_mode(glu: str | None, allowed: tuple = tuple(GLU_MODES)) -> int:
    """The kernel constant of GLU product ``glu``; ValueError naming the choices otherwise."""
    if glu not in allowed:
        raise ValueError(f"glu must be one of {[g for g in allowed]}, got {glu!r}")
    return GLU_MODES[glu]


@triton.jit
def rne(v):
    """Round half to even for |v| < 2**22 (the caller clamps v first)."""
    return (v + 12582912.0) - 12582912.0


@triton.jit
def cast_out(y, out_ty: tl.constexpr):
    """fp32 -> output dtype, round to nearest even.

    bf16 is rounded by hand on the fp32 bit pattern (same result as the hardware's
    ``cvt.rn.bf16.f32`` for finite values; Triton's CPU interpreter would otherwise truncate).
    """
    if out_ty == tl.bfloat16:
        b = y.to(tl.uint32, bitcast=True)
        b = b + 0x7FFF + ((b >> 16) & 1)
        return (b >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)
    else:
        return y.to(out_ty)


@triton.jit
def glu_product(gate, up, GLU: tl.constexpr):
    """fp32 input of the quantizer: ``up`` (GLU = 0), ``up·relu(gate)²`` (1) or the fp16-rounded SwiGLU (2)."""
    if GLU == 1:
        g = tl.maximum(gate, 0.0)
        return up * (g * g)
    elif GLU == 2:
        s = (gate / (1.0 + tl.exp(-gate))).to(tl.float16).to(tl.float32)
        return (s * up).to(tl.float16).to(tl.float32)
    else:
        return up


@triton.jit
def quant_params(stat, QMODE: tl.constexpr):
    """``(inv, scale)`` of a row from its statistic: mean|y| for INT4 (QMODE 1), max|y| otherwise."""
    if QMODE == 1:
        beta = tl.maximum(stat, 1e-5)
        return tl.math.div_rn(2.6457512378692627, beta), tl.math.div_rn(beta, 2.6457512378692627)
    else:
        gamma = tl.maximum(stat, 1e-5)
        return tl.math.div_rn(127.0, gamma), tl.math.div_rn(gamma, 127.0)


@triton.jit
def quant_codes(y, inv, QMODE: tl.constexpr):
    """``clamp(rne(y·inv), lo, hi)`` as fp32 (INT4 [-8, 7] for QMODE 1, INT8 [-128, 127] otherwise).

    ``y·inv`` is clamped to [lo-1, hi+1] before the rounding (exact there, and it does not change
    the clamped result), which keeps it inside the range where :func:`rne` is exact.
    """
    if QMODE == 1:
        lo = -8.0
        hi = 7.0
    else:
        lo = -128.0
        hi = 127.0
    v = tl.minimum(tl.maximum(y * inv, lo - 1.0), hi + 1.0)
    return tl.minimum(tl.maximum(rne(v), lo), hi)
