"""Decode GEMV (M = 1) and prefill GEMM of the ternary layers, beside cuBLAS and the read floor.

* M = 1, every 7B shape plus the fused QKV (12288x4096) and gate/up (22016x4096) matrices, in
  CUDA graphs over rotating weight copies: our GEMV on given INT8 codes, the fused
  norm+quantizer+GEMV (INT8 and INT4 prologue, what the decode step runs), cuBLAS FP16, and
  ``floor_read`` of the same packed bytes; each of ours checked bit-exact in the same run.
* Prefill, M = 2048 and 8192: A8, A4-int8, A4-FP8 (tensor cores), the FP8 kernel with its weight
  decode left out (codes pre-expanded to one byte: the cost of the decode), cuBLAS FP16/INT8/FP8.
* ``configs``: every ``CANDIDATES`` entry checked and timed first; the winner serves the rest.
* ``fp8_exactness``: where the unpromoted FP8 accumulator stops being exact.
"""
from __future__ import annotations

import json
import traceback

import torch

from kernels.baselines import Fp8Linear, Int4Linear, rel_error
from kernels.bench.floors import floor_row
from kernels.bench.harness import MeasurementLog, time_rotating, time_us
from kernels.configs import CANDIDATES, SERVING_GEMV_CANDIDATES, SMALL_M_GEMM_CANDIDATES, shape_key
from kernels.packing import pack_ternary
from kernels.rmsnorm_quant import rmsnorm_quant
from kernels.ternary_gemm import (
    GEMV_PATH_MAX_M,
    gemm_key,
    gemv_key,
    launch_path,
    scale_epilogue,
    w158_decode_weights,
    w158_gemv_fused,
    w158_matmul,
    w158_matmul_two_pass,
    w158_matmul_unpacked,
)
from model import quant as Q

SHAPES_7B = ((4096, 4096), (11008, 4096), (4096, 11008), (12288, 4096))     # N x K of LLaMA-7B linears
GEMV_SHAPES = SHAPES_7B + ((22016, 4096),)                                  # + fused gate/up
PREFILL_MS = (2048, 8192)
SERVING_MS = (8, 16, 32, 128)                                              # the batch of a decode step
BASELINE_TOL = 2e-2        # relative error of the INT4 baseline against x·W_effᵀ in fp32 (a layout check)


def ternary_weight(N: int, K: int, seed: int) -> Q.QTensor:
    g = torch.Generator(device="cuda").manual_seed(seed)
    return Q.quantize_ternary(torch.randn(N, K, device="cuda", generator=g))


def activations(M: int, K: int, seed: int) -> torch.Tensor:
    g = torch.Generator(device="cuda").manual_seed(seed)
    return torch.randn(M, K, device="cuda", generator=g)


def _try(log: MeasurementLog, what: str, fn, **ctx) -> None:
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - one failing case must not lose the others
        log.note(what=f"{what} failed", error=repr(e)[-600:], tb=traceback.format_exc()[-1200:], **ctx)


# ----------------------------------------------------------------------------- M = 1
def gemv_section(log: MeasurementLog, shapes=GEMV_SHAPES, check: bool = True, configs: bool = False) -> None:
    for (N, K) in shapes:
        _try(log, "gemv shape", lambda: _gemv_shape(log, N, K, check, configs), N=N, K=K)
        torch.cuda.empty_cache()


def _gemv_shape(log: MeasurementLog, N: int, K: int, check: bool, configs: bool) -> None:
    wq = ternary_weight(N, K, seed=N + K)
    wp = pack_ternary(wq.codes)
    ws = wq.scale.reshape(1)
    packed = wp.numel() * 4
    x = activations(1, K, seed=K).to(torch.float16)
    q8 = Q.quantize_int8(x.float())
    ref = Q.qlinear(q8, wq) if (check or configs) else None
    bytes_ = packed + K + 2 * N
    ops = 2.0 * N * K
    if configs:
        results = []
        for cfg in CANDIDATES["gemv"]:
            try:
                ok = bool(torch.equal(w158_matmul(q8.codes, q8.scale, wp, ws, N, config=cfg), ref))
                t, c = time_rotating(lambda w: w158_matmul(q8.codes, q8.scale, w, ws, N, config=cfg), [wp])
                log.add(op="gemv", kernel="ours_w158a8_cfg", impl="ours", precision="w1.58a8", M=1, N=N, K=K,
                        timing=t, bytes=bytes_, ops=ops, exact=ok, cuda_graph=True, copies=c, config=json.dumps(cfg))
                results.append((t.median, ok, cfg))
            except Exception as e:  # noqa: BLE001
                log.note(what="gemv config failed", cfg=cfg, error=repr(e)[-300:])
        log.pick("gemv", shape_key(**gemv_key(1, N, K)), results)
    tuned = log.tuned
    exact = bool(torch.equal(w158_matmul(q8.codes, q8.scale, wp, ws, N, tuned=tuned), ref)) if check else False
    for pdl in (False, True):
        t, c = time_rotating(lambda w: w158_matmul(q8.codes, q8.scale, w, ws, N, tuned=tuned, pdl=pdl), [wp])
        log.add(op="gemv", kernel="ours_w158a8" + ("_pdl" if pdl else ""), impl="ours", precision="w1.58a8", M=1,
                N=N, K=K, timing=t, bytes=bytes_, ops=ops, exact=exact, cuda_graph=True, copies=c, pdl=pdl)
    for mode in ("int8", "int4"):
        nw = (torch.rand(K, device="cuda") + 0.5).to(torch.float16)
        codes, scale = rmsnorm_quant(x, mode, nw)
        ok = False
        if check:
            y, xq, xqs = w158_gemv_fused(x, wp, ws, N, mode=mode, norm_weight=nw, tuned=tuned, return_codes=True)
            ok = bool(torch.equal(xq, codes) and torch.equal(xqs, scale)
                      and torch.equal(y, Q.qlinear(Q.QTensor(codes, scale, mode, 8 if mode == "int8" else 4), wq)))
        t, c = time_rotating(lambda w: w158_gemv_fused(x, w, ws, N, mode=mode, norm_weight=nw, tuned=tuned), [wp])
        log.add(op="gemv", kernel=f"ours_fused_norm_{mode}_gemv", impl="ours",
                precision="w1.58a8" if mode == "int8" else "w1.58a4-int8", M=1, N=N, K=K, timing=t,
                bytes=packed + 2 * K + 2 * N, ops=ops, exact=ok, cuda_graph=True, copies=c)
    w16 = (wq.codes.to(torch.float16) * wq.scale.to(torch.float16)).contiguous()
    t, c = time_rotating(lambda w: x @ w.t(), [w16])
    log.add(op="gemv", kernel="cublas_fp16", impl="baseline", precision="fp16", M=1, N=N, K=K, timing=t,
            bytes=2.0 * N * K + 2 * K + 2 * N, ops=ops, exact=False, cuda_graph=True, copies=c)
    del w16
    for pdl in (False, True):
        floor_row(log, f"packed {N}x{K}", packed, seed=N, pdl=pdl)


# ----------------------------------------------------------------------------- prefill
def prefill_section(log: MeasurementLog, shapes=SHAPES_7B, Ms=PREFILL_MS, check: bool = True,
                    configs: bool = False) -> None:
    for (N, K) in shapes:
        _prefill_weight(log, N, K, Ms, check, configs)
        torch.cuda.empty_cache()


def _prefill_weight(log: MeasurementLog, N: int, K: int, Ms, check: bool, configs: bool) -> None:
    """Every prefill size on one weight matrix (its buffers are freed when this returns)."""
    wq = ternary_weight(N, K, seed=N + K)
    wp = pack_ternary(wq.codes)
    for M in Ms:
        _try(log, "gemm shape", lambda: _gemm_shape(log, wq, wp, M, N, K, check, configs and M == Ms[0]),
             M=M, N=N, K=K)


def _sweep_gemm(log, xx, xs, wp, ws, ref, M, N, K, fp8, bytes_, ops, other_Ms) -> None:
    results = []
    for cfg in CANDIDATES["gemm"]:
        try:
            ok = bool(torch.equal(w158_matmul(xx, xs, wp, ws, N, config=cfg), ref))
            t = time_us(lambda: w158_matmul(xx, xs, wp, ws, N, config=cfg))
            log.add(op="gemm", kernel="ours_w158a4_fp8_cfg" if fp8 else "ours_w158a8_cfg", impl="ours",
                    precision="w1.58a4-fp8" if fp8 else "w1.58a8", M=M, N=N, K=K, timing=t, bytes=bytes_, ops=ops,
                    exact=ok, config=json.dumps(cfg))
            results.append((t.median, ok, cfg))
        except Exception as e:  # noqa: BLE001
            log.note(what="gemm config failed", fp8=fp8, cfg=cfg, error=repr(e)[-400:])
    best = log.pick("gemm", shape_key(**gemm_key(M, N, K, fp8)), results)
    if best is not None:
        for m in other_Ms:          # the larger prefill sizes run the same tile (swept at the first M only)
            log.tuned = log.tuned.with_entry("gemm", shape_key(**gemm_key(m, N, K, fp8)), best)


def _gemm_shape(log, wq, wp, M, N, K, check, configs) -> None:
    x = activations(M, K, seed=M)
    q8 = Q.quantize_int8(x)
    q4 = Q.quantize_int4(x)
    x4f8 = q4.codes.to(torch.float8_e4m3fn)
    ws = wq.scale.reshape(1)
    ops = 2.0 * M * N * K
    bytes_ = wp.numel() * 4 + M * K + 2 * M * N + 4 * M
    ref8 = ref4 = None
    if check or configs:
        ref8, ref4 = Q.qlinear(q8, wq), Q.qlinear(q4, wq)
    if configs:
        others = [m for m in PREFILL_MS if m != M]
        _sweep_gemm(log, q8.codes, q8.scale, wp, ws, ref8, M, N, K, False, bytes_, ops, others)
        _sweep_gemm(log, x4f8, q4.scale, wp, ws, ref4, M, N, K, True, bytes_, ops, others)
    tuned = log.tuned
    cases = (("ours_w158a8", "w1.58a8", q8.codes, q8.scale, ref8), ("ours_w158a4_int8", "w1.58a4-int8", q4.codes,
             q4.scale, ref4), ("ours_w158a4_fp8", "w1.58a4-fp8", x4f8, q4.scale, ref4))
    for kernel, prec, xx, xs, ref in cases:
        ok = bool(torch.equal(w158_matmul(xx, xs, wp, ws, N, tuned=tuned), ref)) if check else False
        t = time_us(lambda: w158_matmul(xx, xs, wp, ws, N, tuned=tuned))
        log.add(op="gemm", kernel=kernel, impl="ours", precision=prec, M=M, N=N, K=K, timing=t, bytes=bytes_,
                ops=ops, exact=ok)
    # the FP8 kernel with the weight decode left out (weights one byte per code): what the decode costs
    wf8 = wq.codes.to(torch.float8_e4m3fn).contiguous()
    best = tuned.lookup("gemm", **gemm_key(M, N, K, True))
    cfg = no_decode_config(best)
    ok = bool(torch.equal(w158_matmul_unpacked(x4f8, q4.scale, wf8, ws, config=cfg), ref4)) if check else False
    t = time_us(lambda: w158_matmul_unpacked(x4f8, q4.scale, wf8, ws, config=cfg))
    log.add(op="gemm", kernel="ours_fp8_nodecode", impl="ours", precision="w1.58a4-fp8", M=M, N=N, K=K, timing=t,
            bytes=N * K + M * K + 2 * M * N, ops=ops, exact=ok, note="weight decode left out (1 byte per code)")
    wi8 = wq.codes.contiguous()
    cfg8 = tuned.lookup("gemm", **gemm_key(M, N, K, False))
    cfg8 = no_decode_config(cfg8)
    ok = bool(torch.equal(w158_matmul_unpacked(q8.codes, q8.scale, wi8, ws, config=cfg8), ref8)) if check else False
    t = time_us(lambda: w158_matmul_unpacked(q8.codes, q8.scale, wi8, ws, config=cfg8))
    log.add(op="gemm", kernel="ours_int8_nodecode", impl="ours", precision="w1.58a8", M=M, N=N, K=K, timing=t,
            bytes=N * K + M * K + 2 * M * N, ops=ops, exact=ok, note="weight decode left out (1 byte per code)")
    _two_pass_rows(log, wp, ws, N, K, M, cases, check)
    del ref8, ref4
    cublas_fp16_row(log, x.to(torch.float16), wq, M, N, K)
    t = time_us(lambda: torch._int_mm(q8.codes, wi8.t()))
    log.add(op="gemm", kernel="cublas_int8", impl="baseline", precision="int8", M=M, N=N, K=K, timing=t,
            bytes=1.0 * N * K + M * K + 4 * M * N, ops=ops, exact=False)
    one = torch.ones((), device="cuda")
    t = time_us(lambda: torch._scaled_mm(x4f8, wf8.t(), scale_a=one, scale_b=one, out_dtype=torch.float16))
    log.add(op="gemm", kernel="cublas_fp8", impl="baseline", precision="fp8", M=M, N=N, K=K, timing=t,
            bytes=1.0 * N * K + M * K + 2 * M * N, ops=ops, exact=False)


#: config keys of the packed weights' decode: the kernel with the decode left out runs the same tile without them
DECODE_KEYS = ("DECODE", "UCODE", "JOIN", "SWAR")


def no_decode_config(cfg: dict | None) -> dict | None:
    """The tuned tile of a shape without its decode keys (:data:`DECODE_KEYS`), or None."""
    return {k: v for k, v in (cfg or {}).items() if k not in DECODE_KEYS} or None


def _two_pass_rows(log, wp, ws, N, K, M, cases, check) -> None:
    """The two-pass route (decode the weights into a one-byte scratch, then cuBLAS INT8 / FP8) for
    A8 and A4-FP8, its decode pass alone, each checked against the fused kernel's reference."""
    scratch = {fp8: w158_decode_weights(wp, fp8) for fp8 in (False, True)}
    for kernel, prec, xx, xs, ref in cases:
        if kernel == "ours_w158a4_int8":
            continue
        fp8 = xx.dtype == torch.float8_e4m3fn
        sc = scratch[fp8]
        ok = bool(torch.equal(w158_matmul_two_pass(xx, xs, wp, ws, N, scratch=sc), ref)) if check else False
        t = time_us(lambda: w158_matmul_two_pass(xx, xs, wp, ws, N, scratch=sc))
        log.add(op="gemm", kernel=kernel.replace("ours_", "ours_twopass_"), impl="ours", precision=prec, M=M, N=N,
                K=K, timing=t, bytes=wp.numel() * 4 + M * K + 2 * M * N, ops=2.0 * M * N * K, exact=ok,
                note="decode 2-bit weights to a 1-byte scratch, then cuBLAS; one-launch epilogue")
    t = time_us(lambda: w158_decode_weights(wp, True, scratch[True]))
    log.add(op="gemm", kernel="ours_twopass_decode_only", impl="ours", precision="w1.58", M=M, N=N, K=K, timing=t,
            bytes=wp.numel() * 4 + N * K, ops=0.0, exact=True, note="first pass alone (packed -> fp8 codes)")
    acc = torch.zeros(M, N, device=wp.device, dtype=torch.float32)
    xs, ws1 = torch.ones(M, device=wp.device), ws.reshape(-1)
    t = time_us(lambda: scale_epilogue(acc, xs, ws1, N // ws1.numel()))
    log.add(op="gemm", kernel="ours_twopass_epilogue_only", impl="ours", precision="w1.58", M=M, N=N, K=K, timing=t,
            bytes=6.0 * M * N, ops=0.0, exact=True, note="last pass alone (fp32 sums -> scaled fp16)")


# ----------------------------------------------------------------------------- serving regime
def serving_section(log: MeasurementLog, shapes=GEMV_SHAPES, Ms=SERVING_MS, check: bool = True,
                    read_gbps: float = 4490.0, checkpoint=None) -> None:
    """Decode-step GEMMs at batch ``M``: ours (A8, A4-FP8 on the tensor cores; A8 and A4 on the batched
    GEMV up to ``GEMV_PATH_MAX_M``) beside cuBLAS FP16, cuBLAS FP8 (W8A8, per-token and per-row scales)
    and torch's INT4 weight-only GEMM (W4A16, group 128); every row carries ``floor_us``, its own weight
    bytes at the measured read rate.  ``checkpoint()`` is called after each weight shape (the outputs so
    far written)."""
    for (N, K) in shapes:
        _try(log, "serving shape", lambda: _serving_weight(log, N, K, Ms, check, read_gbps), N=N, K=K)
        torch.cuda.empty_cache()
        if checkpoint is not None:
            checkpoint()


def _sweep_serving(log: MeasurementLog, kernel: str, prec: str, path: str, xx, xs, wp, ws, ref, M: int, N: int,
                   K: int) -> None:
    """Check and time every serving tile of ``path`` on this shape (``SMALL_M_GEMM_CANDIDATES`` for the
    tensor-core GEMM, ``SERVING_GEMV_CANDIDATES`` for the batched GEMV); the fastest exact one goes into
    the run's config table (the rows timed after it, and the batched tokens' decode steps, run with it)."""
    gemv = path == "gemv"
    results = []
    fp8 = xx.dtype == torch.float8_e4m3fn
    for cfg in SERVING_GEMV_CANDIDATES if gemv else SMALL_M_GEMM_CANDIDATES:
        if fp8 and cfg.get("UCODE"):
            continue                        # the unsigned-field decode is an int8 variant
        try:
            ok = bool(torch.equal(w158_matmul(xx, xs, wp, ws, N, path=path, config=cfg), ref))
            t, c = time_rotating(lambda w: w158_matmul(xx, xs, w, ws, N, path=path, config=cfg), [wp], rep_ms=30)
            log.add(op="gemm", kernel=kernel + "_cfg", impl="ours", precision=prec, M=M, N=N, K=K, timing=t,
                    bytes=wp.numel() * 4 + M * K + 2 * M * N, ops=2.0 * M * N * K, exact=ok, config=json.dumps(cfg),
                    regime="serving", cuda_graph=True, copies=c)
            results.append((t.median, ok, cfg))
        except Exception as e:  # noqa: BLE001 - a tile that does not compile loses, the sweep goes on
            log.note(what=f"serving {path} config failed", cfg=cfg, error=repr(e)[-300:])
    if gemv:
        log.pick("gemv", shape_key(**gemv_key(M, N, K)), results)
    else:
        log.pick("gemm", shape_key(**gemm_key(M, N, K, fp8)), results)


def _serving_weight(log: MeasurementLog, N: int, K: int, Ms, check: bool, read_gbps: float) -> None:
    """Every batch size on one weight matrix.  Each figure is a CUDA graph over rotating weight copies
    (no host launch time in it, weights read from HBM), ours and the baselines alike."""
    wq = ternary_weight(N, K, seed=N + K + 1)
    wp = pack_ternary(wq.codes)
    ws = wq.scale.reshape(1)
    w16 = (wq.codes.to(torch.float16) * wq.scale.to(torch.float16)).contiguous()
    f8 = Fp8Linear(w16)
    i4 = Int4Linear(w16)
    for M in Ms:
        x = activations(M, K, seed=M + 3)
        q8, q4 = Q.quantize_int8(x), Q.quantize_int4(x)
        refs = {}
        for kernel, prec, xx, xs, q in (("ours_w158a8", "w1.58a8", q8.codes, q8.scale, q8),
                                        ("ours_w158a4_fp8", "w1.58a4-fp8", q4.codes.to(torch.float8_e4m3fn),
                                         q4.scale, q4)):
            ref = refs[kernel] = Q.qlinear(q, wq)
            _sweep_serving(log, kernel, prec, "gemm", xx, xs, wp, ws, ref, M, N, K)
            _serving_row(log, kernel, prec, "auto", xx, xs, wp, ws, ref, M, N, K, check, read_gbps)
            if M <= GEMV_PATH_MAX_M:        # the CUDA-core GEMV on the same codes (A4's as int8)
                k_gemv = kernel.removesuffix("_fp8") + "_gemv"
                xi, p_gemv = (xx, prec) if xx.dtype == torch.int8 else (q.codes, "w1.58a4-int8")
                _sweep_serving(log, k_gemv, p_gemv, "gemv", xi, xs, wp, ws, ref, M, N, K)
                _serving_row(log, k_gemv, p_gemv, "gemv", xi, xs, wp, ws, ref, M, N, K, check, read_gbps)
        if M > GEMV_PATH_MAX_M:
            _decode_free_serving_rows(log, wq, q8, refs["ours_w158a8"], M, N, K, check, read_gbps)
        _serving_baselines(log, x.to(torch.float16), w16, f8, i4, M, N, K, check, read_gbps)


def _serving_row(log: MeasurementLog, kernel: str, prec: str, path: str, xx, xs, wp, ws, ref, M: int, N: int,
                 K: int, check: bool, read_gbps: float) -> None:
    """One of ours at batch M with the run's tuned tiles, checked against ``ref`` and timed; the row records the
    tile it ran (column ``config``), so a replay can tell the decode forms apart."""
    ok = bool(torch.equal(w158_matmul(xx, xs, wp, ws, N, path=path, tuned=log.tuned), ref)) if check else False
    t, c = time_rotating(lambda w: w158_matmul(xx, xs, w, ws, N, path=path, tuned=log.tuned), [wp])
    nbytes = wp.numel() * 4 + M * K + 2 * M * N
    fp8 = xx.dtype == torch.float8_e4m3fn
    kernel_run = launch_path(path, M, fp8)
    tile = log.tuned.lookup(kernel_run, **(gemv_key(M, N, K) if kernel_run == "gemv" else gemm_key(M, N, K, fp8)))
    log.add(op="gemm", kernel=kernel, impl="ours", precision=prec, M=M, N=N, K=K, timing=t, bytes=nbytes,
            ops=2.0 * M * N * K, exact=ok, floor_us=nbytes / read_gbps / 1e3, regime="serving",
            cuda_graph=True, copies=c, config=json.dumps(tile) if tile else "")


def decode_free_candidates() -> list[dict]:
    """The serving tiles without their decode keys, each once: the tiles the decode-free kernel can run."""
    out: list[dict] = []
    for cfg in SMALL_M_GEMM_CANDIDATES:
        plain = no_decode_config(cfg)
        if plain and plain not in out:
            out.append(plain)
    return out


def _decode_free_serving_rows(log: MeasurementLog, wq: Q.QTensor, q8: Q.QTensor, ref: torch.Tensor, M: int, N: int,
                              K: int, check: bool, read_gbps: float) -> None:
    """The A8 GEMM at batch ``M`` with its weight decode left out (codes one per byte), in the serving harness:
    with ours' tuned tile (``ours_int8_nodecode``: what the decode costs in that tile), with every decode-free
    tile (``ours_int8_nodecode_cfg``: what the tensor-core loop alone reaches on this shape), and cuBLAS INT8 on
    the same bytes (``ref``: the A8 product of ``q8`` and ``wq``, model/'s).  Where the decode-free kernel is no
    faster than ours, the decode is not what bounds it."""
    wi8 = wq.codes.contiguous()
    ws = wq.scale.reshape(1)
    nbytes = 1.0 * N * K + M * K + 2 * M * N
    tile = no_decode_config(log.tuned.lookup("gemm", **gemm_key(M, N, K, False)))
    for kernel, cfgs in (("ours_int8_nodecode", [tile]), ("ours_int8_nodecode_cfg", decode_free_candidates())):
        for cfg in cfgs:
            try:
                ok = bool(torch.equal(w158_matmul_unpacked(q8.codes, q8.scale, wi8, ws, config=cfg), ref)) \
                    if check else False
                t, c = time_rotating(lambda w: w158_matmul_unpacked(q8.codes, q8.scale, w, ws, config=cfg), [wi8],
                                     rep_ms=30 if kernel.endswith("_cfg") else 60)
            except Exception as e:  # noqa: BLE001 - a tile that does not compile is noted, the rest go on
                log.note(what="decode-free serving tile failed", cfg=cfg, error=repr(e)[-300:])
                continue
            log.add(op="gemm", kernel=kernel, impl="ours", precision="w1.58a8", M=M, N=N, K=K, timing=t,
                    bytes=nbytes, ops=2.0 * M * N * K, exact=ok, floor_us=nbytes / read_gbps / 1e3,
                    regime="serving", cuda_graph=True, copies=c, config=json.dumps(cfg) if cfg else "",
                    note="weight decode left out (1 byte per code)")
    t, c = time_rotating(lambda w: torch._int_mm(q8.codes, w.t()), [wi8])
    i32_bytes = nbytes + 2 * M * N             # the same codes in, int32 sums out
    log.add(op="gemm", kernel="cublas_int8", impl="baseline", precision="int8", M=M, N=N, K=K, timing=t,
            bytes=i32_bytes, ops=2.0 * M * N * K, exact=False, floor_us=i32_bytes / read_gbps / 1e3,
            regime="serving", cuda_graph=True, copies=c,
            note="torch._int_mm on the 1-byte codes (int32 out, no scales)")


def _serving_baselines(log: MeasurementLog, x16, w16, f8: Fp8Linear, i4: Int4Linear, M: int, N: int, K: int,
                       check: bool, read_gbps: float) -> None:
    """cuBLAS FP16, cuBLAS FP8 (W8A8, activations already quantized) and torch INT4 (W4A16) at batch M."""
    act = M * K + 2 * M * N
    xq, xs8 = f8.quantize(x16)
    xb = x16.to(torch.bfloat16)
    cases = (
        ("cublas_fp16", "fp16", lambda w: x16 @ w.t(), w16, 2.0 * N * K + 2 * act, float("nan"), ""),
        ("cublas_fp8_w8a8", "w8a8-fp8",
         lambda w: torch._scaled_mm(xq, w.t(), scale_a=xs8, scale_b=f8.w_scale, out_dtype=torch.bfloat16), f8.wq,
         1.0 * N * K + act, rel_error(f8.matmul(xq, xs8), x16, f8.dequantized()) if check else float("nan"),
         "activations already quantized (per token); per-row weight scales"),
        ("torch_int4_w4a16", "w4a16", lambda w: torch._weight_int4pack_mm(xb, w, i4.group, i4.sz), i4.wp,
         0.5 * N * K + 4.0 * N * K / 128 + 2 * act,
         rel_error(i4(x16), x16, i4.dequantized()) if check else float("nan"),
         "torch._weight_int4pack_mm, group 128, bf16 activations"),
    )
    for kernel, prec, call, weight, nbytes, err, note in cases:
        t, c = time_rotating(call, [weight])
        log.add(op="gemm", kernel=kernel, impl="baseline", precision=prec, M=M, N=N, K=K, timing=t, bytes=nbytes,
                ops=2.0 * M * N * K, exact=False, rel_err=err, floor_us=nbytes / read_gbps / 1e3, regime="serving",
                cuda_graph=True, copies=c, note=note)
        if check and kernel == "torch_int4_w4a16" and not err < BASELINE_TOL:      # a packing-layout check
            log.note(what=f"{kernel} off its dequantized weights", N=N, K=K, M=M, rel_err=err)


def cublas_fp16_row(log: MeasurementLog, x16: torch.Tensor, wq: Q.QTensor, M: int, N: int, K: int) -> float:
    """cuBLAS FP16 ``x16 @ W16ᵀ`` on the dequantized ternary weights (one launch, L2 flushed); µs."""
    w16 = (wq.codes.to(torch.float16) * wq.scale.to(torch.float16)).contiguous()
    t = time_us(lambda: x16 @ w16.t())
    log.add(op="gemm", kernel="cublas_fp16", impl="baseline", precision="fp16", M=M, N=N, K=K, timing=t,
            bytes=2.0 * N * K + 2 * M * K + 2 * M * N, ops=2.0 * M * N * K, exact=False)
    return t.median


# ----------------------------------------------------------------------------- FP8 exactness study
def fp8_exactness(log: MeasurementLog, Ks=(2048, 4096, 11008, 32768)) -> None:
    """Where does the FP8 wgmma accumulator stop being exact on integer data?

    Adversarial data: every product is +8 for half the rows, so the partial sums grow linearly to
    8·K; random data otherwise.  Compares with and without promotion (``max_num_imprecise_acc``).
    """
    M, N = 256, 256
    for K in Ks:
        g = torch.Generator(device="cuda").manual_seed(K)
        xc = torch.randint(-8, 8, (M, K), device="cuda", generator=g, dtype=torch.int32)
        wc = torch.randint(-1, 2, (N, K), device="cuda", generator=g, dtype=torch.int32)
        xc[: M // 2] = -8
        xc[: M // 2, ::5] = -7                 # odd products too, so low bits of the sums are live
        wc[: N // 2] = -1                      # rows/cols 0..127: products +8/+7, sums up to ~7.8K
        ref = (xc.double() @ wc.double().t())
        xs = torch.ones(M, 1, device="cuda")
        ws = torch.ones(1, device="cuda")
        wp = pack_ternary(wc.to(torch.int8))
        xf8 = xc.to(torch.float8_e4m3fn)
        for imp in (1 << 30, 64, 512, 2048):   # 1<<30: no promotion at all; 512 is the default
            try:
                y = w158_matmul(xf8, xs, wp, ws, N, out_dtype=torch.float32, imprecise_acc=imp)
                err = (y.double() - ref).abs()
                log.note(what="fp8_exactness", K=K, imprecise_acc=imp, max_abs_sum=float(ref.abs().max()),
                         exact=bool(err.max() == 0), max_err=float(err.max()),
                         wrong_frac=float((err > 0).double().mean()))
            except Exception as e:  # noqa: BLE001
                log.note(what="fp8_exactness failed", K=K, imprecise_acc=imp, error=repr(e)[:300])
