"""Sparse-activation ternary GEMV (decode, M = 1): read only the weight rows
whose activation code is non-zero.

a4.8's Wo input (TopK 50 %) and Wdown input (ReLU²GLU, > 80 % zeros) are
sparse.  For ``y = x · Wᵀ`` the zero entries of ``x`` select whole rows of
``Wᵀ [K, N]``, so the weights are packed **transposed**: ``pack_ternary(W.T)``
gives int32 ``[K, Np/16]`` (the byte-lane layout of ``kernels/packing.py``
along N; one K-row of a 4096-wide layer is 1 KiB, read as whole 128-byte
lines).  The list of non-zero indices comes from the quantizer
(``rmsnorm_quant(..., nonzero=True)``), so bytes read fall linearly with
sparsity: ``nnz · Np/4`` instead of ``K · Np/4``.

Grid: (column blocks of ``16·WBN`` outputs) × (``K/BI`` slices of ``BI``
listed rows); slices past ``nnz`` (read on the device) exit at once, so the
work and the bytes follow the real sparsity.  Each live program issues all
its row loads at once, computes ``sum x_k·(code_k+1) - sum x_k`` over its
slice in int32 registers and adds it into an int32 workspace with atomics (integer addition is associative: the result is exact and
independent of order); the last program of a column block (an atomic ticket)
reads and clears the workspace (``atomic_xchg``) and writes
``y = (fp32(acc) * x_scale) * w_scale``.  One launch, self-cleaning
workspace; calls on one device must not overlap (one stream).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.configs import tuned
from kernels.packing import padded_len
from kernels.ternary_gemm import cast_out, check_packed_layer
from kernels.validate import check_device_usable, check_finite, check_tensor


@triton.jit
def _sparse_gemv_kernel(x_ptr, nzi_ptr, nnz_ptr, xs_ptr, wt_ptr, ws_ptr, y_ptr, acc_ptr, ticket_ptr,
                        N, K, NW, stride_wk,
                        WBN: tl.constexpr, BI: tl.constexpr):
    pn = tl.program_id(0)
    ps = tl.program_id(1)
    c = ps * BI + tl.arange(0, BI)
    nnz = tl.load(nnz_ptr)
    idx = tl.load(nzi_ptr + c, mask=c < K, other=0)   # issued beside the nnz load: one round trip, not two
    n_live = tl.maximum(tl.cdiv(nnz, BI), 1)   # slices that hold work (slice 0 always: nnz=0 writes y=0)
    if ps < n_live:
        rw = pn * WBN + tl.arange(0, WBN)                              # word columns
        p = tl.arange(0, 16)                                           # value n % 16 = 4i + b
        shifts = 8 * (p % 4) + 2 * (p // 4)
        live = c < nnz
        idx = tl.where(live, idx, 0)
        xv = tl.load(x_ptr + idx, mask=live, other=0).to(tl.int32)
        wq = tl.load(wt_ptr + idx[:, None].to(tl.int64) * stride_wk + rw[None, :],
                     mask=live[:, None] & (rw[None, :] < NW), other=0)                  # [BI, WBN]
        f = (wq[:, :, None] >> shifts[None, None, :]) & 3                                # [BI, WBN, 16]
        acc = tl.sum(xv[:, None, None] * f, axis=0) - tl.sum(xv, axis=0)                # sum x*(f-1)
        n = rw[:, None] * 16 + p[None, :]                                              # output index
        tl.atomic_add(acc_ptr + n, acc, mask=n < N, sem="relaxed")
        tl.debug_barrier()                                  # every thread's adds precede the ticket
        ticket = tl.atomic_add(ticket_ptr + pn, 1, sem="acq_rel")    # releases our adds
        if ticket == n_live - 1:                                                       # last one in
            tot = tl.atomic_xchg(acc_ptr + n, tl.zeros((WBN, 16), dtype=tl.int32), mask=n < N,
                                 sem="relaxed")
            y = (tot.to(tl.float32) * tl.load(xs_ptr)) * tl.load(ws_ptr)
            tl.store(y_ptr + n, cast_out(y, y_ptr.dtype.element_ty), mask=n < N)
            tl.atomic_xchg(ticket_ptr + pn, 0, sem="relaxed")


_WORKSPACES: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _workspace(device: torch.device, Np: int, n_blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
    key = (str(device), Np, n_blocks)
    if key not in _WORKSPACES:
        _WORKSPACES[key] = (torch.zeros(Np, dtype=torch.int32, device=device),
                            torch.zeros(n_blocks, dtype=torch.int32, device=device))
    return _WORKSPACES[key]


def sparse_config(N: int, K: int) -> dict:
    """Column block of 512 outputs (128-byte row segments) x 32 listed rows per program."""
    return dict(WBN=32, BI=32, num_warps=4)


def sparse_gemv(x_codes: torch.Tensor, nz_index: torch.Tensor, nnz: torch.Tensor, x_scale: torch.Tensor,
                wt_packed: torch.Tensor, w_scale: torch.Tensor, N: int,
                out_dtype: torch.dtype = torch.float16, config: dict | None = None) -> torch.Tensor:
    """``y [1, N] = x [1, K] · W[N, K]ᵀ`` reading only the rows of ``Wᵀ`` listed in ``nz_index``.

    ``x_codes`` int8 ``[1, K]``; ``nz_index`` int32 ``[1, K]`` or ``[K]`` whose first
    ``nnz`` entries are the (distinct) indices of the non-zero codes; ``nnz``
    int32 ``[1]`` on the device; ``wt_packed = pack_ternary(W.T)`` int32 ``[K, Np/16]``.
    """
    check_tensor(x_codes, "x_codes", (torch.int8,))
    check_device_usable(x_codes, "x_codes")
    dev = x_codes.device
    if x_codes.dim() != 2 or x_codes.shape[0] != 1:
        raise ValueError(f"sparse_gemv is a decode kernel: x_codes must be [1, K], got {tuple(x_codes.shape)}")
    K = x_codes.shape[1]
    check_tensor(nz_index, "nz_index", (torch.int32,), device=dev)
    check_tensor(nnz, "nnz", (torch.int32,), device=dev)
    check_tensor(x_scale, "x_scale", (torch.float32,), device=dev)
    check_tensor(wt_packed, "wt_packed", (torch.int32,), dim=2, device=dev)
    check_tensor(w_scale, "w_scale", (torch.float32,), device=dev)
    if nz_index.numel() != K:
        raise ValueError(f"nz_index must hold K={K} entries, got {nz_index.numel()}")
    if nnz.numel() != 1 or x_scale.numel() != 1 or w_scale.numel() != 1:
        raise ValueError("nnz, x_scale and w_scale must each hold one value")
    check_packed_layer(N, wt_packed, "wt_packed", lambda n: (K, padded_len(n) // 16),
                       "(wt_packed must be pack_ternary(W.T))", out_dtype)
    check_finite(x_scale, "x_scale")
    check_finite(w_scale, "w_scale")
    cfg = dict(sparse_config(N, K), **(tuned("sparse", N=N, K=K) or {}), **(config or {}))
    NW = wt_packed.shape[1]
    n_blocks = triton.cdiv(NW, cfg["WBN"])
    acc, ticket = _workspace(dev, NW * 16, n_blocks)
    y = torch.empty(1, N, device=dev, dtype=out_dtype)
    _sparse_gemv_kernel[(n_blocks, triton.cdiv(K, cfg["BI"]))](
        x_codes, nz_index, nnz, x_scale, wt_packed, w_scale, y, acc, ticket, N, K, NW, wt_packed.stride(0),
        WBN=cfg["WBN"], BI=cfg["BI"], num_warps=cfg["num_warps"])
    return y


# ----------------------------------------------------------------------------- GPU check + timing
def _sparse_codes(K: int, sparsity: float, seed: int, device: str):
    """INT8 codes of one token with exactly round(sparsity*K) zeros at random places."""
    from model import quant as Q

    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(1, K, device=device, generator=g)
    zero = torch.randperm(K, device=device, generator=g)[: round(sparsity * K)]
    x[0, zero] = 0.0
    return Q.quantize_int8(x)


def _sweep(rec, q, nzi, nnz, wtp, ws, N, K, real_sp, sp_bytes, ref, pick: bool) -> None:
    """Time every ``kernels.configs.CANDIDATES['sparse']`` entry (checked exact first) in CUDA graphs."""
    from kernels.benchmark import bench_graph_us, n_copies
    from kernels.configs import CANDIDATES, shape_key

    cc = n_copies(wtp.numel() * 4)
    wtps = [wtp.clone() for _ in range(cc)]
    results = []
    for cfg in CANDIDATES["sparse"]:
        try:
            y = sparse_gemv(q.codes, nzi, nnz, q.scale, wtp, ws, N, config=cfg)
            exact = bool(torch.equal(y, ref)) and bool(
                torch.equal(sparse_gemv(q.codes, nzi, nnz, q.scale, wtp, ws, N, config=cfg), ref))
            us = bench_graph_us([lambda i=i: sparse_gemv(q.codes, nzi, nnz, q.scale, wtps[i], ws, N, config=cfg)
                                 for i in range(cc)])
            rec.add("sparse_gemv", "ours_sparse_w158a8_cfg", "ours", "w1.58a8", 1, N, K, us, sp_bytes,
                    2.0 * N * K, exact, sparsity=real_sp, cuda_graph=True, copies=cc, config=str(cfg))
            results.append((us, exact, cfg))
        except Exception as e:  # noqa: BLE001
            rec.note(what="sparse config failed", cfg=str(cfg), error=repr(e)[-300:])
    if pick:
        rec.pick("sparse", shape_key(N=N, K=K), results)
    del wtps


def bench_sparse(rec, check: bool = True, configs: bool = False) -> None:
    """Sparse vs dense GEMV on Wdown (84 % zeros, the paper's ReLU² level) and Wo (TopK 50 %)."""
    from model import quant as Q
    from kernels.benchmark import bench_graph_us, bench_us, n_copies
    from kernels.packing import pack_ternary
    from kernels.ternary_gemm import w158_matmul

    for (N, K, sp) in ((4096, 11008, 0.84), (4096, 11008, 0.5), (4096, 4096, 0.5), (4096, 4096, 0.84)):
        g = torch.Generator(device="cuda").manual_seed(N + K)
        wq = Q.quantize_ternary(torch.randn(N, K, device="cuda", generator=g))
        wp = pack_ternary(wq.codes)
        wtp = pack_ternary(wq.codes.t().contiguous())
        ws = wq.scale.reshape(1)
        q = _sparse_codes(K, sp, seed=K, device="cuda")
        nz = torch.nonzero(q.codes[0]).flatten().to(torch.int32)
        nzi = torch.zeros(K, dtype=torch.int32, device="cuda")
        nzi[: nz.numel()] = nz
        nnz = torch.tensor([nz.numel()], dtype=torch.int32, device="cuda")
        real_sp = 1.0 - nz.numel() / K
        sp_bytes = nz.numel() * wtp.shape[1] * 4 + K + 4 * nz.numel() + 2 * N
        if configs:                 # first: the default-config rows below then run the winner
            _sweep(rec, q, nzi, nnz, wtp, ws, N, K, real_sp, sp_bytes, Q.qlinear(q, wq),
                   pick=sp == (0.84 if K > N else 0.5))   # a4.8: Wdown input ~84 % zeros, Wo input 50 %
        exact = True
        if check:
            ref = Q.qlinear(q, wq)
            for _ in range(3):                    # repeated calls: the workspace must self-clean
                exact &= bool(torch.equal(sparse_gemv(q.codes, nzi, nnz, q.scale, wtp, ws, N), ref))
        dense_bytes = wp.numel() * 4 + K + 2 * N
        ops = 2.0 * N * K
        us = bench_us(lambda: sparse_gemv(q.codes, nzi, nnz, q.scale, wtp, ws, N))
        rec.add("sparse_gemv", "ours_sparse_w158a8", "ours", "w1.58a8", 1, N, K, us, sp_bytes, ops, exact,
                sparsity=real_sp)
        us = bench_us(lambda: w158_matmul(q.codes, q.scale, wp, ws, N))
        rec.add("gemv", "ours_w158a8", "ours", "w1.58a8", 1, N, K, us, dense_bytes, ops, exact,
                sparsity=0.0, note=f"dense reference for sparsity {sp}")
        c = n_copies(dense_bytes)
        wtps = [wtp.clone() for _ in range(c)]
        us = bench_graph_us([lambda i=i: sparse_gemv(q.codes, nzi, nnz, q.scale, wtps[i], ws, N)
                             for i in range(c)])
        rec.add("sparse_gemv", "ours_sparse_w158a8", "ours", "w1.58a8", 1, N, K, us, sp_bytes, ops, exact,
                sparsity=real_sp, cuda_graph=True, copies=c)
        del wtps
        wps = [wp.clone() for _ in range(c)]
        us = bench_graph_us([lambda i=i: w158_matmul(q.codes, q.scale, wps[i], ws, N) for i in range(c)])
        rec.add("gemv", "ours_w158a8", "ours", "w1.58a8", 1, N, K, us, dense_bytes, ops, exact,
                cuda_graph=True, copies=c, note=f"dense reference for sparsity {sp}")
        del wps, wq, wp, wtp
        torch.cuda.empty_cache()
