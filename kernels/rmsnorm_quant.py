"""Fused RMSNorm + per-token activation quantizers (one program per token row).

Every linear layer of the BitNet datapaths has an RMSNorm right in front of
its activation quantizer (docs/decisions.md 9), so one kernel reads the row once,
normalises it, reduces it (max|y| or mean|y|) and writes integer codes plus one
fp32 scale per row.  Modes (``model.quant`` names in brackets):

* ``"int8"``   per-token absmax INT8             [quantize_int8]
* ``"int4"``   per-token absmean INT4, sqrt(7)   [quantize_int4]; codes as int8,
               or as FP8 e4m3 (``out_fp8=True``, exact: every integer in
               [-8, 7] is an e4m3 value) for the FP8 tensor-core GEMM
* ``"topk8"``  TopK-50 % then INT8 (Wo input)    [quantize_topk_int8]
* ``gate=``    ReLU²GLU product first (Wdown input) [relu2glu], then the norm
               and the chosen quantizer (``"int8"`` in a4.8)

``nonzero=True`` also writes, per row, the ascending indices of the non-zero
codes and their count: the sparse GEMV (``kernels/sparse_gemv.py``) reads
only the weight rows listed there.

RMSNorm arithmetic (defined here, reproduced by :func:`rmsnorm_reference`)
--------------------------------------------------------------------------
``x`` upcast to fp32; ``ms = fp32( sum_fp64(x*x) / D )`` (squares of fp32
values are exact in fp64; the fp64 sum is rounded once); ``r = sqrt_rn(ms +
eps)`` in fp32; ``y = div_rn(x, r) * w`` (correctly rounded fp32 division,
then one fp32 multiply by the fp32-upcast norm weight).  The quantizers then
follow the arithmetic contract of ``model/quant.py`` exactly (max exact; mean
|y| as an fp64 sum rounded once to fp32; ``inv = div_rn(Q, r)``; ``scale =
div_rn(r, Q)``; ``code = clamp(rne(y*inv))``).

Exactness argument.  Every step is a single correctly-rounded IEEE operation
done in the same order as the reference, except the fp64 sums, whose
summation order differs (a tree here, a vector cascade in torch).  Two
orders can differ by a few fp64 ulps; the fp32 rounding of the result then
differs only if the exact sum lies within ~1e-16 (relative) of an fp32
rounding boundary: probability ~1e-8 per row for random data, never seen in
the tests.  The kernels are compiled with ``enable_fp_fusion=False`` so that
``y*inv`` is rounded to fp32 before the rounding step (an FMA would not).
Round-half-even is done as ``(v + 1.5*2^23) - 1.5*2^23`` on a value first
clamped to [lo-1, hi+1] (exact there; clamping before rounding does not
change ``clamp(rne(v))``).
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from kernels.arith import QUANT_MODES, glu_mode, glu_product, quant_codes, quant_mode, quant_params
from kernels.checks import FLOAT_DTYPES, check_device_usable, check_finite, check_shape, check_tensor, next_pow2
from kernels.ternary_gemm import quantize_row
from model import quant as Q


@triton.jit
def _radix_pass(bits, prefix, need, SHIFT: tl.constexpr, NB: tl.constexpr):
    """One digit (bits SHIFT..SHIFT+NB-1) of the radix select: histogram of the digit among the values
    that match ``prefix`` above it; the digit of the ``need``-th largest; what is left to find."""
    bins = tl.arange(0, 256)
    match = (bits >= 0) & ((bits >> (SHIFT + NB)) == (prefix >> (SHIFT + NB)))
    digit = (bits >> SHIFT) & ((1 << NB) - 1)
    h = tl.histogram(digit, 256, mask=match)                       # counts among the matching values
    ge = tl.cumsum(h, axis=0, reverse=True)                          # values with digit >= bin
    d = tl.max(tl.where(ge >= need, bins, -1), axis=0)               # the digit of the need-th largest
    need = need - tl.sum(tl.where(bins > d, h, 0), axis=0)
    return prefix | (d << SHIFT), need


@triton.jit
def _kth_largest_pairs(bits, k_top):
    """The k_top-th largest of non-negative int32 ``bits`` (-1 marks padding), exactly: the bitwise search two
    bits at a time (bit 30, then 29-28 down to 1-0: 16 dependent reductions instead of 31).  The counts of the
    three candidates of a step travel in one int64 sum, 21 bits each (a row holds at most 65536 values)."""
    t = tl.where(tl.sum((bits >= (1 << 30)).to(tl.int32), axis=0) >= k_top, 1 << 30, 0)
    for s in tl.static_range(28, -1, -2):
        c1 = (bits >= (t | (1 << s))).to(tl.int64)
        c2 = (bits >= (t | (2 << s))).to(tl.int64)
        c3 = (bits >= (t | (3 << s))).to(tl.int64)
        tot = tl.sum(c1 + (c2 << 21) + (c3 << 42), axis=0)
        n1 = tot & 0x1FFFFF
        n2 = (tot >> 21) & 0x1FFFFF
        n3 = tot >> 42
        d = tl.where(n3 >= k_top, 3, tl.where(n2 >= k_top, 2, tl.where(n1 >= k_top, 1, 0)))
        t = t | (d << s)
    return t


@triton.jit
def _kth_largest_radix(bits, k_top):
    """The k_top-th largest of non-negative int32 ``bits`` (-1 marks padding), exactly: a radix
    select over the digits 30-23, 22-15, 14-7, 6-0 (4 histograms instead of 31 full reductions)."""
    prefix = tl.zeros((), dtype=tl.int32)
    need = tl.zeros((), dtype=tl.int32) + k_top
    prefix, need = _radix_pass(bits, prefix, need, 23, 8)
    prefix, need = _radix_pass(bits, prefix, need, 15, 8)
    prefix, need = _radix_pass(bits, prefix, need, 7, 8)
    prefix, need = _radix_pass(bits, prefix, need, 0, 7)
    return prefix


# States of the interpolation search (_kth_largest_interp)
_SEARCHING = tl.constexpr(0)
_FOUND = tl.constexpr(1)          # count_ge(probe) == k_top: t = the probe
_NEXT_UP = tl.constexpr(2)        # count_ge(lo) == k_top + 1: t = the smallest value >= lo
_NEXT_DOWN = tl.constexpr(3)      # count_ge(hi) == k_top - 1: t = the largest value < hi
#: Safety cap on the interpolation search's steps, never reached: its bisection schedule ends it within ~72
#: (2 x 31 for the halvings, the probes below the row max, a snap after a stalled probe)
_INTERP_CAP = tl.constexpr(96)


@triton.jit
def _value_at_or_above(bits, v):
    """The smallest of ``bits`` >= v (v >= 0, so padding never counts)."""
    return tl.min(tl.where(bits >= v, bits, 0x7FFFFFFF), axis=0)


@triton.jit
def _value_below(bits, v):
    """The largest of ``bits`` < v (-1, the padding, if none)."""
    return tl.max(tl.where(bits < v, bits, -1), axis=0)


@triton.jit
def _interp_state(c, c_lo, c_hi, k_top):
    """The search's state once the counts are ``c`` (at the last probe), ``c_lo`` and ``c_hi``."""
    return tl.where(c == k_top, _FOUND, tl.where(c_lo == k_top + 1, _NEXT_UP,
                                                  tl.where(c_hi == k_top - 1, _NEXT_DOWN, _SEARCHING)))


@triton.jit
def _interp_probe(lo, hi, c_lo, c_hi, k_top, top, drop, sched):
    """The next probe, strictly inside (lo, hi).

    * No lower bound yet (lo == 0): ``drop`` below the row max, 3 binades first (a Gaussian row of a few
      thousand has its median ~2.4 binades below its max), then twice as far each probe: bit space below
      the data is empty, and interpolating from 0 would only halve it a step at a time.
    * Wider than the bisection schedule ``sched`` (it halves every two steps): the midpoint, so the bracket
      keeps pace with the schedule however badly the counts interpolate.
    * Otherwise where the line through (lo, c_lo) and (hi, c_hi) crosses k_top + 1/2: the bit pattern is
      piecewise linear in log|y|, and a row's counts are smooth there.  fp32 is enough: the fraction only
      places the probe.  0 < frac < 1 and w <= inf's bits + 1 (<= 2^31 - 2^23 as fp32), so the offset
      converts to int32 safely.
    """
    w = hi - lo
    frac = ((c_lo - k_top).to(tl.float32) - 0.5) / (c_lo - c_hi).to(tl.float32)
    cand = tl.where(w.to(tl.float32) > sched, lo + w // 2, lo + (w.to(tl.float32) * frac).to(tl.int32))
    cand = tl.where(lo == 0, top - drop, cand)
    return tl.minimum(tl.maximum(cand, lo + 1), hi - 1)


@triton.jit
def _kth_largest_interp(bits, k_top, n_valid, top):
    """A threshold t of the k_top largest of non-negative int32 ``bits`` (-1 marks padding; ``top`` =
    max(bits)), exactly: a safeguarded interpolation search, one block reduction a step.

    Bracket invariant: count_ge(lo) >= k_top > count_ge(hi) (count_ge(v) = #bits >= v), from lo = 0
    (all n_valid) and hi = top + 1 (none).  A probe that counts as many as a bracket end shows that no
    value lies between them: the next step moves that end onto the nearest value instead (one min / max
    reduction), which finishes rows of a few distinct values (ties, zeros) at once.  The search ends when
    a probe counts exactly k_top (t = the probe), when an end counts k_top +- 1 (t = the value next to
    it, one more reduction), or when hi == lo + 1 (t = lo, the k-th largest).  Every such t has
    count_gt(t) <= k_top <= count_ge(t): all the tie ranking after the search needs (norm_quant_row).
    """
    k_top = tl.zeros((), dtype=tl.int32) + k_top
    lo = tl.zeros((), dtype=tl.int32)
    hi = top + 1
    c_lo = tl.zeros((), dtype=tl.int32) + n_valid
    c_hi = tl.zeros((), dtype=tl.int32)
    t = lo
    state = _interp_state(c_lo, c_lo, c_hi, k_top)
    stall = tl.zeros((), dtype=tl.int32)            # 1 (2): the last probe counted as many as lo (hi)
    drop = tl.zeros((), dtype=tl.int32) + (3 << 23)
    sched = hi.to(tl.float32)
    steps = tl.zeros((), dtype=tl.int32)
    while (state == _SEARCHING) & (hi - lo > 1) & (steps < _INTERP_CAP):
        if stall == 1:
            lo = _value_at_or_above(bits, lo)
            stall = tl.zeros((), dtype=tl.int32)
        elif stall == 2:
            hi = _value_below(bits, hi) + 1
            stall = tl.zeros((), dtype=tl.int32)
        else:
            t = _interp_probe(lo, hi, c_lo, c_hi, k_top, top, drop, sched)
            c = tl.sum((bits >= t).to(tl.int32), axis=0)
            stall = tl.where(c == c_lo, 1, tl.where(c == c_hi, 2, 0))
            lo = tl.where(c > k_top, t, lo)
            c_lo = tl.where(c > k_top, c, c_lo)
            hi = tl.where(c < k_top, t, hi)
            c_hi = tl.where(c < k_top, c, c_hi)
            state = _interp_state(c, c_lo, c_hi, k_top)
            drop = tl.minimum(drop, 0x3FC00000) * 2      # 0x7F800000 at most: no int32 overflow
        sched = sched * 0.70710677
        steps += 1
    if state == _NEXT_UP:
        t = _value_at_or_above(bits, lo)
    elif state == _NEXT_DOWN:
        t = _value_below(bits, hi)
    elif state == _SEARCHING:
        t = lo
    return t


@triton.jit
def _norm_quant_kernel(x_ptr, gate_ptr, w_ptr, codes_ptr, scale_ptr, nzi_ptr, nnz_ptr,
                       D, stride_x, stride_g, stride_c, stride_n, eps, k_top,
                       BLOCK: tl.constexpr, NORM: tl.constexpr, HAS_W: tl.constexpr,
                       GLU: tl.constexpr, MODE: tl.constexpr, OUT_FP8: tl.constexpr,
                       WRITE_NZ: tl.constexpr, PDL: tl.constexpr, SEARCH: tl.constexpr):
    if PDL:                     # programmatic dependent launch: the previous kernel's outputs from here
        tl.extra.cuda.gdc_wait()
        tl.extra.cuda.gdc_launch_dependents()
    norm_quant_row(tl.program_id(0).to(tl.int64), x_ptr, gate_ptr, w_ptr, codes_ptr, scale_ptr, nzi_ptr, nnz_ptr,
                   D, stride_x, stride_g, stride_c, stride_n, eps, k_top,
                   BLOCK, NORM, HAS_W, GLU, MODE, OUT_FP8, WRITE_NZ, SEARCH)


@triton.jit
def norm_quant_row(row, x_ptr, gate_ptr, w_ptr, codes_ptr, scale_ptr, nzi_ptr, nnz_ptr,
                   D, stride_x, stride_g, stride_c, stride_n, eps, k_top,
                   BLOCK: tl.constexpr, NORM: tl.constexpr, HAS_W: tl.constexpr, GLU: tl.constexpr,
                   MODE: tl.constexpr, OUT_FP8: tl.constexpr, WRITE_NZ: tl.constexpr, SEARCH: tl.constexpr):
    """Row ``row`` of :func:`rmsnorm_quant`: (GLU product,) RMSNorm, quantizer, codes + scale (+ the
    non-zero index list and its count)."""
    offs = tl.arange(0, BLOCK)
    inb = offs < D
    x = tl.load(x_ptr + row * stride_x + offs, mask=inb, other=0.0).to(tl.float32)
    if GLU != 0:                                      # the quantizer sees the GLU product of gate and x
        g = tl.load(gate_ptr + row * stride_g + offs, mask=inb, other=0.0).to(tl.float32)
        x = glu_product(g, x, GLU)
    if NORM:
        x64 = x.to(tl.float64)
        ms = (tl.sum(x64 * x64, axis=0) / D).to(tl.float32)
        r = tl.sqrt_rn(ms + eps)
        x = tl.math.div_rn(x, r)
        if HAS_W:
            x = x * tl.load(w_ptr + offs, mask=inb, other=0.0).to(tl.float32)
    ax = tl.abs(x)
    if MODE == 1:
        stat = (tl.sum(ax.to(tl.float64), axis=0) / D).to(tl.float32)
    else:
        stat = tl.max(ax, axis=0)
    inv, scale = quant_params(stat, MODE)
    c = quant_codes(x, inv, MODE)
    if MODE == 2:
        # The k_top largest |x| by an exact threshold search on the fp32 bit patterns (order-preserving
        # for non-negative floats); ties at the threshold go to the lowest indices (stable descending sort).
        bits = tl.where(inb, ax.to(tl.int32, bitcast=True), -1)
        if SEARCH == 1:
            t = _kth_largest_radix(bits, k_top)
        elif SEARCH == 2:
            t = _kth_largest_pairs(bits, k_top)
        elif SEARCH == 3:
            # stat = max|x| is max(bits): |x| >= +0 (abs clears the sign of -0.0), the row is finite,
            # and the padding lanes hold +0
            t = _kth_largest_interp(bits, k_top, D, stat.to(tl.int32, bitcast=True))
        else:
            t = tl.zeros((), dtype=tl.int32)
            for b in tl.static_range(30, -1, -1):
                cand = t | (1 << b)
                cnt = tl.sum((bits >= cand).to(tl.int32), axis=0)
                t = tl.where(cnt >= k_top, cand, t)
        # Each search returns a t with count(bits > t) <= k_top <= count(bits >= t): the k-th largest
        # value v, or (interp) a t that splits the row into exactly k_top above and the rest below, or
        # the (k_top+1)-th largest when exactly k_top values exceed it.  Keeping every value > t, then
        # the values == t by index up to k_top in all, is the stable sort's first k_top: for t == v by
        # definition; otherwise t < v, so count(> t) >= count(>= v) >= k_top makes both exactly k_top
        # and the kept set is {>= v}, no tie crossing the cut.
        gt = bits > t
        eq = bits == t
        need = k_top - tl.sum(gt.to(tl.int32), axis=0)
        rank = tl.cumsum(eq.to(tl.int32), axis=0)
        keep = gt | (eq & (rank <= need))
        c = tl.where(keep, c, 0.0)
    if OUT_FP8:
        tl.store(codes_ptr + row * stride_c + offs, c.to(tl.float8e4nv), mask=inb)
    else:
        tl.store(codes_ptr + row * stride_c + offs, c.to(tl.int8), mask=inb)
    tl.store(scale_ptr + row, scale)
    if WRITE_NZ:
        nz = (c != 0.0) & inb
        pos = tl.cumsum(nz.to(tl.int32), axis=0) - 1
        tl.store(nzi_ptr + row * stride_n + pos, offs, mask=nz)
        tl.store(nnz_ptr + row, tl.sum(nz.to(tl.int32), axis=0))


def _launch_cfg(D: int, num_warps: int | None = None) -> tuple[int, int]:
    """(tile, warps) of the whole-row kernel: one power-of-two tile over the row; ``num_warps`` (a power of two,
    1-32) or one warp per 512 elements, 1-32 (H100 sweep at M = 1: the 4096-wide TopK row fastest at 8 warps,
    5.7 us against 5.9 at 16; the 11008-wide ReLU²GLU row at 32, 8.5 us against 10.2 at 16)."""
    block = next_pow2(D)
    if num_warps is None:
        return block, max(1, min(32, block // 512))
    if isinstance(num_warps, bool) or not isinstance(num_warps, int) or num_warps not in (1, 2, 4, 8, 16, 32):
        raise ValueError(f"num_warps must be None or a power of two in [1, 32], got {num_warps!r}")
    return block, num_warps


#: TopK threshold searches (kernel constant ``SEARCH``): one bit a step, 8-bit radix histograms, two bits a
#: step, a safeguarded interpolation search
TOPK_SEARCHES = {"bitwise": 0, "radix": 1, "pairs": 2, "interp": 3}
#: The search the quantizer and the decode step use unless told: the interpolation search, measured fastest on an
#: H100 (M = 1, D = 4096: 6.4 against 11.1 us for bitwise; docs/kernels.md)
DEFAULT_TOPK_SEARCH = "interp"

#: Chunk width of the chunked kernel (``row_chunk``): measured slower than the whole-row kernel at M = 1 on an
#: H100 (the 11008-wide GLU row: 22.2 against 10.2 us), so whole rows are the default
ROW_CHUNK = 2048


def _row_chunk(row_chunk: int | None, qmode: int) -> int:
    """Chunk width of the chunked kernel (0: the whole-row kernel) for quantizer ``qmode``; checks ``row_chunk``."""
    if row_chunk is None:
        return 0
    if isinstance(row_chunk, bool) or not isinstance(row_chunk, int) or row_chunk < 0:
        raise ValueError(f"row_chunk must be None, 0 or a power of two >= 16, got {row_chunk!r}")
    if row_chunk and (row_chunk < 16 or row_chunk & (row_chunk - 1)):
        raise ValueError(f"row_chunk must be a power of two >= 16, got {row_chunk}")
    if row_chunk and qmode == QUANT_MODES["topk8"]:
        raise ValueError("row_chunk: TopK needs the whole row at once (its threshold search); pass 0 or None")
    return row_chunk


@triton.jit
def _norm_quant_chunked_kernel(x_ptr, gate_ptr, w_ptr, codes_ptr, scale_ptr, nzi_ptr, nnz_ptr,
                               D, stride_x, stride_g, stride_c, stride_n, eps,
                               CHUNK: tl.constexpr, NORM: tl.constexpr, HAS_W: tl.constexpr,
                               GLU: tl.constexpr, MODE: tl.constexpr, OUT_FP8: tl.constexpr,
                               WRITE_NZ: tl.constexpr, PDL: tl.constexpr):
    """:func:`norm_quant_row` on a wide row in three passes over ``CHUNK``-element chunks (the sum of squares,
    the row statistic, the codes: :func:`kernels.ternary_gemm.quantize_row`, the fused-prologue GEMV's row
    quantizer), re-reading the row from L2 instead of holding it in registers."""
    if PDL:
        tl.extra.cuda.gdc_wait()
        tl.extra.cuda.gdc_launch_dependents()
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * stride_x
    if GLU != 0:                      # the gate first, the up half (x) second, as glu_product takes them
        src = gate_ptr + row * stride_g
    else:
        src = x_row
    quantize_row(src, x_row, w_ptr, codes_ptr + row * stride_c, scale_ptr + row, nzi_ptr + row * stride_n,
                 nnz_ptr + row, D, D, eps, CHUNK, CHUNK, NORM, HAS_W, GLU, MODE, OUT_FP8, WRITE_NZ)


def rmsnorm_quant(x: torch.Tensor, mode: str = "int8", norm_weight: torch.Tensor | None = None,
                  *, norm: bool = True, gate: torch.Tensor | None = None, eps: float = 1e-5,
                  topk_ratio: float = 0.5, out_fp8: bool = False, nonzero: bool = False, pdl: bool = False,
                  glu: str = "relu2", topk_search: str = DEFAULT_TOPK_SEARCH, row_chunk: int | None = None,
                  num_warps: int | None = None):
    """Quantize each row of ``x [M, D]`` (optionally after a GLU product and RMSNorm).

    With ``gate``, the quantizer sees ``x · relu(gate)²`` (``glu="relu2"``, a4.8, exact as
    ``model.quant.relu2glu``) or ``fp16(fp16(silu(gate)) · x)`` (``glu="silu"``, the SwiGLU of the
    fp16 torch glue).  ``topk_search``: "bitwise" (31 reductions), "pairs" (two bits a step, 16 reductions of
    int64 packed counts), "radix" (4 histogram passes) or "interp" (a safeguarded interpolation search on
    the bit patterns, one count a step: ~5-9 reductions on typical rows, ~70 at worst); all find the same
    exact TopK set; interp (the default, :data:`DEFAULT_TOPK_SEARCH`) measured fastest, pairs and radix slower
    than bitwise (docs/kernels.md).

    Returns ``(codes [M, D] int8 (or float8_e4m3fn), scale [M, 1] fp32)``, plus
    ``(nz_index [M, D] int32, nnz [M] int32)`` when ``nonzero=True``; entries of
    ``nz_index`` past ``nnz`` are left unwritten.  ``pdl``: launch with programmatic dependent
    launch (CUDA; the kernel waits for the previous one before reading ``x``).  ``row_chunk``: quantize
    each row in three passes over chunks of this many elements (a power of two, >= 16; not TopK) instead of
    holding it whole; None or 0 = whole rows (measured faster at M = 1, :data:`ROW_CHUNK`).  Same codes
    either way.  ``num_warps``: warps of the whole-row program (a power of two, 1-32; default one per 512
    elements, 1-32), for the benchmark's sweep.
    """
    check_tensor(x, "x", FLOAT_DTYPES, dim=2, contiguous=False)
    check_device_usable(x, "x")
    if x.stride(1) != 1:
        raise ValueError("x rows must be contiguous (x.stride(1) == 1)")
    qmode = quant_mode(mode)
    if out_fp8 and mode != "int4":
        raise ValueError("out_fp8 is only exact for INT4 codes (mode='int4'); INT8 codes do not fit e4m3")
    glu_code = glu_mode(glu, ("relu2", "silu"))
    if topk_search not in TOPK_SEARCHES:
        raise ValueError(f"topk_search must be one of {sorted(TOPK_SEARCHES)}, got {topk_search!r}")
    if not 0.0 < topk_ratio <= 1.0:
        raise ValueError(f"topk_ratio must be in (0, 1], got {topk_ratio}")
    if not (isinstance(eps, float) and eps > 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a positive finite float, got {eps!r}")
    M, D = x.shape
    if D > 65536:
        raise ValueError(f"rows longer than 65536 are not supported (one row per program), got D={D}")
    if gate is not None:
        check_tensor(gate, "gate", (x.dtype,), dim=2, device=x.device, contiguous=False)
        check_shape(gate, "gate", (M, D))
        if gate.stride(1) != 1:
            raise ValueError("gate rows must be contiguous (gate.stride(1) == 1)")
    if norm_weight is not None:
        if not norm:
            raise ValueError("norm_weight given but norm=False")
        check_tensor(norm_weight, "norm_weight", FLOAT_DTYPES, dim=1, device=x.device)
        check_shape(norm_weight, "norm_weight", (D,))
    for name, t in (("x", x), ("gate", gate), ("norm_weight", norm_weight)):
        if t is not None:
            check_finite(t, name)
    codes = torch.empty(M, D, device=x.device, dtype=torch.float8_e4m3fn if out_fp8 else torch.int8)
    scale = torch.empty(M, 1, device=x.device, dtype=torch.float32)
    nzi = torch.empty(M, D, device=x.device, dtype=torch.int32) if nonzero else codes
    nnz = torch.empty(M, device=x.device, dtype=torch.int32) if nonzero else scale
    chunk = _row_chunk(row_chunk, qmode)
    block, warps = _launch_cfg(D, num_warps)
    pdl = bool(pdl) and x.device.type == "cuda"
    opts = dict(launch_pdl=True) if pdl else {}
    if chunk:
        _norm_quant_chunked_kernel[(M,)](
            x_ptr=x, gate_ptr=gate if gate is not None else x, w_ptr=norm_weight if norm_weight is not None else x,
            codes_ptr=codes, scale_ptr=scale, nzi_ptr=nzi, nnz_ptr=nnz,
            D=D, stride_x=x.stride(0), stride_g=gate.stride(0) if gate is not None else 0,
            stride_c=codes.stride(0), stride_n=nzi.stride(0), eps=eps,
            CHUNK=chunk, NORM=norm, HAS_W=norm_weight is not None, GLU=glu_code if gate is not None else 0,
            MODE=qmode, OUT_FP8=out_fp8, WRITE_NZ=nonzero, PDL=pdl,
            num_warps=max(1, min(8, chunk // 256)), enable_fp_fusion=False, **opts)
        return (codes, scale, nzi, nnz) if nonzero else (codes, scale)
    k_top = math.ceil(topk_ratio * D)
    _norm_quant_kernel[(M,)](
        # pointers (placeholders where an input is absent: never read)
        x_ptr=x, gate_ptr=gate if gate is not None else x, w_ptr=norm_weight if norm_weight is not None else x,
        codes_ptr=codes, scale_ptr=scale, nzi_ptr=nzi, nnz_ptr=nnz,
        # sizes and strides
        D=D, stride_x=x.stride(0), stride_g=gate.stride(0) if gate is not None else 0,
        stride_c=codes.stride(0), stride_n=nzi.stride(0), eps=eps, k_top=k_top,
        # meta
        BLOCK=block, NORM=norm, HAS_W=norm_weight is not None, GLU=glu_code if gate is not None else 0,
        MODE=qmode, OUT_FP8=out_fp8, WRITE_NZ=nonzero, PDL=pdl, SEARCH=TOPK_SEARCHES[topk_search],
        num_warps=warps, enable_fp_fusion=False, **opts)
    if nonzero:
        return codes, scale, nzi, nnz
    return codes, scale


# ----------------------------------------------------------------------------- reference
def rmsnorm_reference(x: torch.Tensor, norm_weight: torch.Tensor | None = None,
                      eps: float = 1e-5) -> torch.Tensor:
    """The RMSNorm arithmetic the kernel implements, in plain torch (fp32 result).

    Each fp32 operation is computed in fp64 and rounded once to fp32, which
    gives the IEEE (correctly rounded) fp32 result for +, *, / and sqrt: this
    does not trust torch's CPU fp32 kernels (torch 2.13's CPU ``sqrt`` on
    fp32 was seen 1 ulp off the correctly rounded value).
    """
    def f32(t: torch.Tensor) -> torch.Tensor:
        return t.to(torch.float32)

    x = f32(x).to(torch.float64)
    ms = f32((x * x).sum(dim=-1, keepdim=True) / x.shape[-1])
    e = f32(ms.double() + float(torch.tensor(eps, dtype=torch.float32)))
    r = f32(torch.sqrt(e.double()))
    y = f32(x / r.double())
    if norm_weight is not None:
        y = f32(y.double() * f32(norm_weight).double())
    return y


def reference_quant(x: torch.Tensor, mode: str, norm_weight: torch.Tensor | None,
                    gate: torch.Tensor | None = None, topk_ratio: float = 0.5, glu: str = "relu2"):
    """``model.quant`` applied to :func:`rmsnorm_reference` (on the CPU, where its contract holds)."""
    x = x.cpu()
    w = norm_weight.cpu() if norm_weight is not None else None
    if gate is not None and glu == "silu":
        s = torch.nn.functional.silu(gate.cpu().float()).half().float()
        x = (s * x.float()).half().float()
    elif gate is not None:
        x = Q.relu2glu(x, gate.cpu())
    y = rmsnorm_reference(x, w)
    if mode == "int8":
        return Q.quantize_int8(y)
    if mode == "int4":
        return Q.quantize_int4(y)
    return Q.quantize_topk_int8(y, topk_ratio)


