"""Ceilings of this GPU (copy bandwidth, cuBLAS GEMMs) and the ``floor_read`` kernel on given sizes.

The floor rows answer "how fast can ONE kernel launch that only reads B bytes be", timed like
the GEMVs (a CUDA graph over rotating copies, so every call reads HBM): a kernel of B bytes
within 1.25x of its floor is bounded by the launch and the memory system, not by its own code.
"""
from __future__ import annotations

import torch

from kernels.bench.harness import MeasurementLog, Timing, time_rotating, time_us
from kernels.floor import floor_read, floor_read_reference, floor_reread, floor_reread_reference

#: packed 2-bit bytes of the 7B decode operands (N x K / 4), and the KV3 cache at ctx 2048
FLOOR_SIZES = {
    "wq_wo 4096x4096": 4096 * 4096 // 4,
    "wdown 4096x11008": 4096 * 11008 // 4,
    "wgate 11008x4096": 11008 * 4096 // 4,
    "wqkv 12288x4096": 12288 * 4096 // 4,
    "wgu 22016x4096": 22016 * 4096 // 4,
    "wdown 16% rows": 4096 * 11008 // 4 * 16 // 100,
    "block ternary": (12288 + 4096 + 22016) * 4096 // 4 + 4096 * 11008 // 4,
}
#: int8 activations a serving GEMM's output tiles each re-read (M = 128 rows of K), and the program counts that
#: re-read them: one to eight per SM of an H100, as the 4096- to 22016-wide N of those GEMMs cut in 32-wide tiles
REREAD_SIZES = {"acts 128x4096": 128 * 4096, "acts 128x11008": 128 * 11008}
REREAD_PROGRAMS = (132, 264, 528, 1056)


def measure_ceilings(log: MeasurementLog) -> dict:
    """Copy bandwidth (bytes read + written), cuBLAS FP16 / INT8 / FP8 at 8192³ and the read rate of
    ``floor_read`` over 2 GiB.  Each measurement owns its buffers (freed when it returns)."""
    out = {"copy_gbps": _copy_ceiling(log)}
    out.update(_gemm_ceilings(log))
    torch.cuda.empty_cache()
    out["read_gbps"] = _read_ceiling(log)
    torch.cuda.empty_cache()
    log.note(what="ceilings", **{k: round(v, 1) for k, v in out.items()})
    return out


def _copy_ceiling(log: MeasurementLog) -> float:
    n = 1 << 28                                              # 256 Mi fp32 = 1 GiB
    a = torch.empty(n, device="cuda", dtype=torch.float32).uniform_()
    b = torch.empty_like(a)
    t = time_us(lambda: b.copy_(a), rep_ms=100)
    log.add(op="ceiling", kernel="copy", impl="baseline", precision="fp32", M=1, N=n, K=1, timing=t,
            bytes=2 * n * 4, ops=0.0, exact=True)
    return 2 * n * 4 / t.median / 1e3


def _gemm_ceilings(log: MeasurementLog, S: int = 8192) -> dict:
    x = torch.randn(S, S, device="cuda", dtype=torch.float16)
    w = torch.randn(S, S, device="cuda", dtype=torch.float16)
    xi = torch.randint(-127, 128, (S, S), device="cuda", dtype=torch.int8)
    wi = torch.randint(-127, 128, (S, S), device="cuda", dtype=torch.int8)
    xf, wf = x.to(torch.float8_e4m3fn), w.to(torch.float8_e4m3fn)
    one = torch.ones((), device="cuda")
    cases = (("cublas_fp16", "fp16", lambda: x @ w.t(), 3 * S * S * 2, "fp16_tflops"),
             ("cublas_int8", "int8", lambda: torch._int_mm(xi, wi.t()), 2 * S * S + 4 * S * S, "int8_tops"),
             ("cublas_fp8", "fp8", lambda: torch._scaled_mm(xf, wf.t(), scale_a=one, scale_b=one,
                                                            out_dtype=torch.float16), 4 * S * S, "fp8_tflops"))
    out = {}
    for kernel, prec, fn, nbytes, key in cases:
        t = time_us(fn, rep_ms=150)
        out[key] = 2 * S ** 3 / t.median / 1e6
        log.add(op="ceiling", kernel=kernel, impl="baseline", precision=prec, M=S, N=S, K=S, timing=t,
                bytes=nbytes, ops=2 * S ** 3, exact=True)
    return out


def _time_read() -> tuple[Timing, int]:
    """``floor_read`` over 2 GiB of int32 (its output buffer allocated once): the timing and the bytes read."""
    src = torch.randint(-2 ** 31, 2 ** 31 - 1, (1 << 29,), device="cuda", dtype=torch.int32)
    out = floor_read(src)
    return time_us(lambda: floor_read(src, out), rep_ms=100), src.numel() * 4


def _read_ceiling(log: MeasurementLog) -> float:
    t, nbytes = _time_read()
    log.add(op="ceiling", kernel="floor_read", impl="ours", precision="int32", M=1, N=nbytes // 4, K=1, timing=t,
            bytes=nbytes, ops=0.0, exact=True)
    return nbytes / t.median / 1e3


def measure_read_rate(log: MeasurementLog) -> float:
    """GB/s of ``floor_read`` over 2 GiB, noted as this run's read rate (for the bytes floors of a section
    that runs without the ``floors`` section)."""
    t, nbytes = _time_read()
    gbps = nbytes / t.median / 1e3
    log.note(what="ceilings", read_gbps=round(gbps, 1), src_bytes=nbytes)
    return gbps


def _random_words(nbytes: int, seed: int) -> torch.Tensor:
    """``nbytes`` of seeded random int32 words on the GPU (at least 16 words)."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    return torch.randint(-2 ** 31, 2 ** 31 - 1, (max(16, nbytes // 4),), device="cuda", dtype=torch.int32,
                         generator=g)


def floor_row(log: MeasurementLog, label: str, nbytes: int, seed: int = 0, pdl: bool = False) -> float:
    """Time ``floor_read`` of ``nbytes`` in a CUDA graph over rotating copies; checked; returns µs."""
    src = _random_words(nbytes, seed)
    out = torch.empty((src.numel() + 8191) // 8192, device="cuda", dtype=torch.int32)
    exact = bool(torch.equal(floor_read(src, out).cpu(), floor_read_reference(src)))
    t, c = time_rotating(lambda s: floor_read(s, out, pdl=pdl), [src])
    log.add(op="floor", kernel="floor_read", impl="ours", precision="int32", M=1, N=src.numel(), K=1, timing=t,
            bytes=src.numel() * 4, ops=0.0, exact=exact, cuda_graph=True, copies=c, label=label, pdl=pdl)
    return t.median


def reread_row(log: MeasurementLog, label: str, nbytes: int, programs: int, seed: int = 0) -> float:
    """Time ``floor_reread`` of ``nbytes`` by ``programs`` programs in a CUDA graph over rotating copies (each call
    reads its copy from DRAM once, then from the L2); checked; returns µs.  The row's bytes are those moved from
    the L2 to the SMs (``programs`` x ``nbytes``)."""
    src = _random_words(nbytes, seed)
    out = torch.empty(programs, device="cuda", dtype=torch.int32)
    exact = bool(torch.equal(floor_reread(src, programs, out).cpu(), floor_reread_reference(src, programs)))
    t, c = time_rotating(lambda s: floor_reread(s, programs, out), [src])
    log.add(op="floor", kernel="floor_reread", impl="ours", precision="int32", M=programs, N=src.numel(), K=1,
            timing=t, bytes=programs * src.numel() * 4, ops=0.0, exact=exact, cuda_graph=True, copies=c,
            label=f"reread {label} x{programs}")
    return t.median


def floors_section(log: MeasurementLog) -> dict[str, float]:
    """The floor of every 7B decode operand size (and the whole ternary block's weights), then the L2 re-read
    floors (:data:`REREAD_SIZES` by :data:`REREAD_PROGRAMS`)."""
    out = {label: floor_row(log, label, nbytes, seed=i) for i, (label, nbytes) in enumerate(FLOOR_SIZES.items())}
    for i, (label, nbytes) in enumerate(REREAD_SIZES.items()):
        for p in REREAD_PROGRAMS:
            out[f"reread {label} x{p}"] = reread_row(log, label, nbytes, p, seed=100 + i)
    return out
