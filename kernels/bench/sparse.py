"""Sparse-activation GEMV (decode) against our dense GEMV and the read floor of its bytes.

Wdown (4096x11008) at 84 % zeros (the paper's ReLU² level) and 50 %, Wo (4096x4096) at 50 %
(TopK) and 84 %; CUDA graphs over rotating weight copies; checked bit-exact (three calls in a
row: the workspace cleans itself).  Two sparse kernels on every case: the one reading the
quantizer's index list (``ours_sparse_w158a8``) and the one choosing its rows from the codes
(``ours_sparse_masked_w158a8``, no list: the bytes of the list are not counted).
"""
from __future__ import annotations

import json
from collections.abc import Callable

import torch

from kernels.bench.floors import floor_row
from kernels.bench.harness import MeasurementLog, time_rotating
from kernels.checks import content_checks
from kernels.configs import CANDIDATES, shape_key
from kernels.packing import pack_ternary
from kernels.sparse_gemv import sparse_gemv, sparse_gemv_masked
from kernels.ternary_gemm import w158_matmul
from model import quant as Q

CASES = ((4096, 11008, 0.84), (4096, 11008, 0.5), (4096, 4096, 0.5), (4096, 4096, 0.84))
#: config kind -> the kernel name of its rows
KERNEL_NAMES = {"sparse": "ours_sparse_w158a8", "sparse_masked": "ours_sparse_masked_w158a8"}


def sparse_codes(K: int, sparsity: float, seed: int) -> Q.QTensor:
    """INT8 codes of one token with exactly round(sparsity*K) zeros at random places."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(1, K, device="cuda", generator=g)
    zero = torch.randperm(K, device="cuda", generator=g)[: round(sparsity * K)]
    x[0, zero] = 0.0
    return Q.quantize_int8(x)


def sparse_section(log: MeasurementLog, check: bool = True, configs: bool = False) -> None:
    for (N, K, sp) in CASES:
        g = torch.Generator(device="cuda").manual_seed(N + K)
        wq = Q.quantize_ternary(torch.randn(N, K, device="cuda", generator=g))
        wp = pack_ternary(wq.codes)
        wtp = pack_ternary(wq.codes.t().contiguous())
        ws = wq.scale.reshape(1)
        q = sparse_codes(K, sp, seed=K)
        nz = torch.nonzero(q.codes[0]).flatten().to(torch.int32)
        nzi = torch.zeros(K, dtype=torch.int32, device="cuda")
        nzi[: nz.numel()] = nz
        nnz = torch.tensor([nz.numel()], dtype=torch.int32, device="cuda")
        row_bytes = nz.numel() * wtp.shape[1] * 4 + K + 2 * N
        dense_bytes = wp.numel() * 4 + K + 2 * N
        case = dict(N=N, K=K, ops=2.0 * N * K, sparsity=1.0 - nz.numel() / K, dense_bytes=dense_bytes)
        ref = Q.qlinear(q, wq) if (check or configs) else None
        calls = {   # kind -> (launch on given weights and config, bytes: the rows + the list where read)
            "sparse": (lambda w, **kw: sparse_gemv(q.codes, nzi, nnz, q.scale, w, ws, N, **kw),
                       row_bytes + 4 * nz.numel()),
            "sparse_masked": (lambda w, **kw: sparse_gemv_masked(q.codes, q.scale, w, ws, N, **kw), row_bytes),
        }
        for kind, (call, nbytes) in calls.items():
            if configs and sp == (0.84 if K > N else 0.5):     # a4.8: Wdown input ~84 % zeros, Wo input 50 %
                _sweep(log, kind, call, wtp, ref, nbytes, case)
            _sparse_row(log, kind, call, wtp, ref if check else None, nbytes, case)
        exact_d = bool(torch.equal(w158_matmul(q.codes, q.scale, wp, ws, N, tuned=log.tuned), ref)) if check else False
        t, c = time_rotating(lambda w: w158_matmul(q.codes, q.scale, w, ws, N, tuned=log.tuned), [wp])
        log.add(op="gemv", kernel="ours_w158a8", impl="ours", precision="w1.58a8", M=1, N=N, K=K, timing=t,
                bytes=dense_bytes, ops=case["ops"], exact=exact_d, cuda_graph=True, copies=c,
                note=f"dense reference for sparsity {sp}")
        floor_row(log, f"sparse rows {N}x{K} s={case['sparsity']:.2f}", calls["sparse"][1], seed=K)
        del wq, wp, wtp
        torch.cuda.empty_cache()


def _sparse_row(log: MeasurementLog, kind: str, call: Callable, wtp: torch.Tensor, ref: torch.Tensor | None,
                nbytes: int, case: dict) -> None:
    """One sparse kernel with the run's tuned config: exact over three calls in a row (the workspace
    cleans itself), then timed with content checks off."""
    tuned = log.tuned
    exact = all(bool(torch.equal(call(wtp, tuned=tuned), ref)) for _ in range(3)) if ref is not None else False
    with content_checks(False):
        t, c = time_rotating(lambda w: call(w, tuned=tuned), [wtp], bytes_one=case["dense_bytes"])
    log.add(op="sparse_gemv", kernel=KERNEL_NAMES[kind], impl="ours", precision="w1.58a8", M=1, N=case["N"],
            K=case["K"], timing=t, bytes=nbytes, ops=case["ops"], exact=exact, sparsity=case["sparsity"],
            cuda_graph=True, copies=c)


def _sweep(log: MeasurementLog, kind: str, call: Callable, wtp: torch.Tensor, ref: torch.Tensor, nbytes: int,
           case: dict) -> None:
    """Every ``CANDIDATES[kind]`` config checked (two calls in a row) and timed; the fastest exact one
    lands in the run's table."""
    results = []
    for cfg in CANDIDATES[kind]:
        try:
            ok = all(bool(torch.equal(call(wtp, config=cfg), ref)) for _ in range(2))
            with content_checks(False):
                t, c = time_rotating(lambda w: call(w, config=cfg), [wtp], bytes_one=case["dense_bytes"])
            log.add(op="sparse_gemv", kernel=KERNEL_NAMES[kind] + "_cfg", impl="ours", precision="w1.58a8", M=1,
                    N=case["N"], K=case["K"], timing=t, bytes=nbytes, ops=case["ops"], exact=ok,
                    sparsity=case["sparsity"], cuda_graph=True, copies=c, config=json.dumps(cfg))
            results.append((t.median, ok, cfg))
        except Exception as e:  # noqa: BLE001
            log.note(what=f"{kind} config failed", cfg=cfg, error=repr(e)[-300:])
    log.pick(kind, shape_key(N=case["N"], K=case["K"]), results)
