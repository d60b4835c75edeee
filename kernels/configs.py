"""Tile configurations in one place: what the benchmark sweeps, and what it measured best.

``CANDIDATES[kernel]`` are the configs ``bitsim bench-kernels --configs`` times on every
benchmarked shape.  Each candidate is first checked (bit-exact against ``model.quant`` for the
GEMM/GEMV kernels, relative error < 1e-3 against the float64 reference for attention); only a
correct one can win.  The sweep writes the winners as ``tuned_configs.json`` beside the
measured table, in the form of ``TUNED`` below.

``TUNED[kernel][shape_key(...)]`` is the best measured config of a shape; a launcher uses it
when its shape has an entry and its hand-picked default otherwise.  Empty until a sweep has
been measured and pasted here (the sweep of this candidate list has not run on a GPU yet:
docs/kernels.md).

Why these candidates (sm_90 compile check, Triton 3.9, ``docs/kernels.md``): the GEMM's former
default ``BM=256, BN=128, BK=128, 8 warps`` compiles to 255 registers and 1.6 KB of spills per
thread; ``BM=128, BN=128, BK=64, 8 warps, 4 stages`` is the largest tile tried that does not spill
(199 registers int8, 231 fp8). ``DECODE=1`` decodes four weight codes per 32-bit register op.
"""
from __future__ import annotations

CANDIDATES: dict[str, tuple[dict, ...]] = {
    "gemm": (
        dict(BM=128, BN=128, BK=64, num_warps=8, num_stages=4),
        dict(BM=128, BN=128, BK=64, num_warps=8, num_stages=4, DECODE=1),
        dict(BM=128, BN=128, BK=64, num_warps=8, num_stages=5, DECODE=1, GROUP_M=16),
        dict(BM=128, BN=64, BK=128, num_warps=4, num_stages=4, DECODE=1),
        dict(BM=64, BN=128, BK=128, num_warps=4, num_stages=4, DECODE=1),
        dict(BM=128, BN=64, BK=128, num_warps=4, num_stages=3, SWAP=True, DECODE=1),
        dict(BM=128, BN=256, BK=64, num_warps=8, num_stages=3, DECODE=1),
        dict(BM=256, BN=128, BK=128, num_warps=8, num_stages=3, DECODE=1),
        dict(BM=128, BN=128, BK=128, num_warps=8, num_stages=3),
        dict(BM=64, BN=64, BK=256, num_warps=4, num_stages=4, DECODE=1),     # M ~ 128: more CTAs
    ),
    "gemv": (
        dict(BN=4, WB=64, ITERS=4, num_warps=4),
        dict(BN=8, WB=64, ITERS=2, num_warps=4),
        dict(BN=4, WB=32, ITERS=8, num_warps=4),
        dict(BN=8, WB=32, ITERS=4, num_warps=4),
        dict(BN=2, WB=128, ITERS=4, num_warps=4),
        dict(BN=4, WB=128, ITERS=2, num_warps=8),
        dict(BN=16, WB=64, ITERS=4, num_warps=8),
        dict(BN=8, WB=256, ITERS=4, num_warps=8),
    ),
    "sparse": (
        dict(WBN=32, BI=32, num_warps=4),
        dict(WBN=32, BI=32, num_warps=8),
        dict(WBN=32, BI=64, num_warps=8),
        dict(WBN=16, BI=64, num_warps=4),
        dict(WBN=8, BI=128, num_warps=4),
        dict(WBN=8, BI=64, num_warps=2),
        dict(WBN=64, BI=32, num_warps=8),
    ),
    "attention": (
        dict(FMA=True, BT=32, num_warps=4),
        dict(FMA=True, BT=64, num_warps=8),
        dict(FMA=True, BT=16, num_warps=2),
        dict(FMA=True, BT=32, num_warps=4, S_MUL=2),
        dict(FMA=True, BT=64, num_warps=8, S_MUL=2),
        dict(FMA=True, BT=32, num_warps=4, S_MUL=4),
        dict(FMA=False, USE_DOT=True, BT=128, num_warps=8),
        dict(FMA=False, USE_DOT=True, BT=64, num_warps=4, S_MUL=2),
    ),
}

TUNED: dict[str, dict[str, dict]] = {"gemm": {}, "gemv": {}, "sparse": {}, "attention": {}}


def gemm_m_bucket(M: int) -> str:
    """M ranges for tuned GEMM tiles (those of ``ternary_gemm.gemm_config``, the last one split at 4096)."""
    for top in (16, 64, 256, 4096):
        if M <= top:
            return f"M<={top}"
    return "M>4096"


def ctx_bucket(T: int) -> str:
    """Context-length ranges for attention configs."""
    for top in (2048, 8192, 32768):
        if T <= top:
            return f"T<={top}"
    return "T>32768"


def shape_key(**dims) -> str:
    """``shape_key(N=4096, K=4096, M='M>256', prec='int8')`` -> ``'K=4096,M=M>256,N=4096,prec=int8'``."""
    return ",".join(f"{k}={dims[k]}" for k in sorted(dims))


def tuned(kernel: str, **dims) -> dict | None:
    """The measured best config for this shape, or None."""
    if kernel not in TUNED:
        raise ValueError(f"unknown kernel {kernel!r}; known: {sorted(TUNED)}")
    cfg = TUNED[kernel].get(shape_key(**dims))
    return dict(cfg) if cfg is not None else None
