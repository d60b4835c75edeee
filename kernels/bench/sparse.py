"""Sparse-activation GEMV (decode) against our dense GEMV and the read floor of its bytes.

Wdown (4096x11008) at 84 % zeros (the paper's ReLU² level) and 50 %, Wo (4096x4096) at 50 %
(TopK) and 84 %; CUDA graphs over rotating weight copies; checked bit-exact (three calls in a
row: the workspace cleans itself).
"""
from __future__ import annotations

import json

import torch

from kernels.bench.floors import floor_row
from kernels.bench.harness import MeasurementLog, time_rotating
from kernels.checks import content_checks
from kernels.configs import CANDIDATES, shape_key
from kernels.packing import pack_ternary
from kernels.sparse_gemv import sparse_gemv
from kernels.ternary_gemm import w158_matmul
from model import quant as Q

CASES = ((4096, 11008, 0.84), (4096, 11008, 0.5), (4096, 4096, 0.5), (4096, 4096, 0.84))


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
        real_sp = 1.0 - nz.numel() / K
        sp_bytes = nz.numel() * wtp.shape[1] * 4 + K + 4 * nz.numel() + 2 * N
        dense_bytes = wp.numel() * 4 + K + 2 * N
        ops = 2.0 * N * K
        ref = Q.qlinear(q, wq) if (check or configs) else None
        if configs and sp == (0.84 if K > N else 0.5):     # a4.8: Wdown input ~84 % zeros, Wo input 50 %
            results = []
            for cfg in CANDIDATES["sparse"]:
                try:
                    ok = all(bool(torch.equal(sparse_gemv(q.codes, nzi, nnz, q.scale, wtp, ws, N, config=cfg), ref))
                             for _ in range(2))
                    with content_checks(False):
                        t, c = time_rotating(lambda w: sparse_gemv(q.codes, nzi, nnz, q.scale, w, ws, N, config=cfg),
                                             [wtp], bytes_one=dense_bytes)
                    log.add(op="sparse_gemv", kernel="ours_sparse_w158a8_cfg", impl="ours", precision="w1.58a8",
                            M=1, N=N, K=K, timing=t, bytes=sp_bytes, ops=ops, exact=ok, sparsity=real_sp,
                            cuda_graph=True, copies=c, config=json.dumps(cfg))
                    results.append((t.median, ok, cfg))
                except Exception as e:  # noqa: BLE001
                    log.note(what="sparse config failed", cfg=cfg, error=repr(e)[-300:])
            log.pick("sparse", shape_key(N=N, K=K), results)
        tuned = log.tuned
        exact = all(bool(torch.equal(sparse_gemv(q.codes, nzi, nnz, q.scale, wtp, ws, N, tuned=tuned), ref))
                    for _ in range(3)) if check else False
        with content_checks(False):
            t, c = time_rotating(lambda w: sparse_gemv(q.codes, nzi, nnz, q.scale, w, ws, N, tuned=tuned), [wtp],
                                 bytes_one=dense_bytes)
        log.add(op="sparse_gemv", kernel="ours_sparse_w158a8", impl="ours", precision="w1.58a8", M=1, N=N, K=K,
                timing=t, bytes=sp_bytes, ops=ops, exact=exact, sparsity=real_sp, cuda_graph=True, copies=c)
        exact_d = bool(torch.equal(w158_matmul(q.codes, q.scale, wp, ws, N, tuned=tuned), ref)) if check else False
        t, c = time_rotating(lambda w: w158_matmul(q.codes, q.scale, w, ws, N, tuned=tuned), [wp])
        log.add(op="gemv", kernel="ours_w158a8", impl="ours", precision="w1.58a8", M=1, N=N, K=K, timing=t,
                bytes=dense_bytes, ops=ops, exact=exact_d, cuda_graph=True, copies=c,
                note=f"dense reference for sparsity {sp}")
        floor_row(log, f"sparse rows {N}x{K} s={real_sp:.2f}", sp_bytes, seed=K)
        del wq, wp, wtp
        torch.cuda.empty_cache()
