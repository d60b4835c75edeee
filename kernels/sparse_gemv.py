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
slice in int32 registers and adds it into an int32 workspace with atomics
(integer addition is associative: the result is exact and independent of
order); the last program of a column block (an atomic ticket)
reads and clears the workspace (``atomic_xchg``) and writes
``y = (fp32(acc) * x_scale) * w_scale``.  One launch, self-cleaning
workspace; calls on one device must not overlap (one stream).

``sparse_gemv_masked`` needs no index list (the quantizer then writes codes
and scale only): its programs own a column block and a fixed slice of
``KS·BI`` rows each, read the slice's codes and choose the rows from them.
``COMPACT`` (the default) lists the slice's non-zero rows in the program's
own scratch (a prefix count, read back after a barrier) and walks that list
as ``sparse_item`` does; without it every row of the slice is unpacked, its
load masked off where the code is 0: the same bytes, but the unpack of every
row makes that form compute-bound (slower than the dense GEMV on an H100).
Every slice is live, so every program takes a ticket; the epilogue is
``sparse_item``'s.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.arith import cast_out
from kernels.checks import check_device_usable, check_finite, check_index_list, check_tensor, content_checks_enabled
from kernels.configs import NO_TUNING, ConfigTable, resolve_config
from kernels.packing import padded_len
from kernels.ternary_gemm import check_packed_layer, check_packed_ternary
from kernels.tickets import ticket_counters


@triton.jit
def _sparse_gemv_kernel(x_ptr, nzi_ptr, nnz_ptr, xs_ptr, wt_ptr, ws_ptr, res_ptr, y_ptr, acc_ptr, ticket_ptr,
                        N, K, NW, stride_wk,
                        WBN: tl.constexpr, BI: tl.constexpr, RES: tl.constexpr, PDL: tl.constexpr):
    if PDL:                     # programmatic dependent launch: the previous kernel's outputs from here
        tl.extra.cuda.gdc_wait()
        tl.extra.cuda.gdc_launch_dependents()
    sparse_item(tl.program_id(0), tl.program_id(1), x_ptr, nzi_ptr, nnz_ptr, xs_ptr, wt_ptr, ws_ptr, res_ptr, y_ptr,
                acc_ptr, ticket_ptr, N, K, NW, stride_wk, WBN, BI, RES)


@triton.jit
def sparse_item(pn, ps, x_ptr, nzi_ptr, nnz_ptr, xs_ptr, wt_ptr, ws_ptr, res_ptr, y_ptr, acc_ptr, ticket_ptr,
                N, K, NW, stride_wk, WBN: tl.constexpr, BI: tl.constexpr, RES: tl.constexpr):
    """Column block ``pn`` x slice ``ps`` of listed rows (the last live slice of a block writes it)."""
    pn = tl.cast(pn, tl.int32)                 # a loop counter (persistent block) or a program id
    ps = tl.cast(ps, tl.int32)
    c = ps * BI + tl.arange(0, BI)
    # the count and the indices are clamped / masked here, so that no input (content checks off)
    # can make the kernel read outside x or the weights: a count outside [0, K] acts as its clamp,
    # an index outside [0, K) contributes nothing
    nnz = tl.minimum(tl.maximum(tl.load(nnz_ptr), 0), K)
    idx = tl.load(nzi_ptr + c, mask=c < K, other=0)   # issued beside the nnz load: one round trip, not two
    n_live = tl.maximum(tl.cdiv(nnz, BI), 1)   # slices that hold work (slice 0 always: nnz=0 writes y=0)
    if ps < n_live:
        rw = pn * WBN + tl.arange(0, WBN)                              # word columns
        live = (c < nnz) & (idx >= 0) & (idx < K)
        idx = tl.where(live, idx, 0)
        xv = tl.load(x_ptr + idx, mask=live, other=0).to(tl.int32)
        wq = tl.load(wt_ptr + idx[:, None].to(tl.int64) * stride_wk + rw[None, :],
                     mask=live[:, None] & (rw[None, :] < NW), other=0)                  # [BI, WBN]
        _ticket_epilogue(_rows_dot(xv, wq), pn, n_live, xs_ptr, ws_ptr, res_ptr, y_ptr, acc_ptr, ticket_ptr, N,
                         WBN, RES)


@triton.jit
def _rows_dot(xv, wq):
    """``sum_k x_k·(code_k+1) - sum_k x_k`` over the rows of one tile: ``xv [BI]`` int32 codes,
    ``wq [BI, WBN]`` packed words (a row whose code is 0 adds 0 whatever its words hold) ->
    ``[WBN, 16]`` int32, output ``16·w + p`` at ``[w, p]``."""
    p = tl.arange(0, 16)                                           # value n % 16 = 4i + b
    shifts = 8 * (p % 4) + 2 * (p // 4)
    f = (wq[:, :, None] >> shifts[None, None, :]) & 3                                # [BI, WBN, 16]
    return tl.sum(xv[:, None, None] * f, axis=0) - tl.sum(xv, axis=0)                # sum x*(f-1)


@triton.jit
def _ticket_epilogue(acc, pn, n_live, xs_ptr, ws_ptr, res_ptr, y_ptr, acc_ptr, ticket_ptr, N,
                     WBN: tl.constexpr, RES: tl.constexpr):
    """Add one program's sums ``acc [WBN, 16]`` into the workspace of column block ``pn``; the last
    of its ``n_live`` programs (an atomic ticket) takes the total, clears the workspace and the
    ticket, and writes ``y = (fp32(total) * x_scale) * w_scale`` (+ residual)."""
    n = (pn * WBN + tl.arange(0, WBN))[:, None] * 16 + tl.arange(0, 16)[None, :]     # output index
    tl.atomic_add(acc_ptr + n, acc, mask=n < N, sem="relaxed")
    tl.debug_barrier()                                  # every thread's adds precede the ticket
    ticket = tl.atomic_add(ticket_ptr + pn, 1, sem="acq_rel")    # releases our adds
    if ticket == n_live - 1:                                                       # last one in
        tot = tl.atomic_xchg(acc_ptr + n, tl.zeros((WBN, 16), dtype=tl.int32), mask=n < N, sem="relaxed")
        y = cast_out((tot.to(tl.float32) * tl.load(xs_ptr)) * tl.load(ws_ptr), y_ptr.dtype.element_ty)
        if RES:             # residual add, rounded as torch rounds it: fp16(fp16(o) + res)
            res = tl.load(res_ptr + n, mask=n < N, other=0.0)
            y = (y.to(tl.float32) + res.to(tl.float32)).to(y_ptr.dtype.element_ty)
        tl.store(y_ptr + n, y, mask=n < N)
        tl.atomic_xchg(ticket_ptr + pn, 0, sem="relaxed")


@triton.jit
def _masked_slice(x_ptr, wt_ptr, rw, ps, K, NW, stride_wk, WBN: tl.constexpr, BI: tl.constexpr,
                  KS: tl.constexpr):
    """Sums of the ``KS·BI`` rows of slice ``ps``: each row's words are loaded only where its code
    is non-zero (a predicated-off load fetches nothing), every row is unpacked."""
    acc = tl.zeros((WBN, 16), dtype=tl.int32)
    for j in tl.static_range(KS):       # unrolled: every chunk's loads can be in flight at once
        r = (ps * KS + j) * BI + tl.arange(0, BI)
        xv = tl.load(x_ptr + r, mask=r < K, other=0).to(tl.int32)
        wq = tl.load(wt_ptr + r[:, None].to(tl.int64) * stride_wk + rw[None, :],
                     mask=(xv != 0)[:, None] & (rw[None, :] < NW), other=0)             # [BI, WBN]
        acc += _rows_dot(xv, wq)
    return acc


@triton.jit
def _compacted_slice(x_ptr, wt_ptr, slot_ptr, rw, ps, K, NW, stride_wk, WBN: tl.constexpr, BI: tl.constexpr,
                     KS: tl.constexpr):
    """Sums of the ``KS·BI`` rows of slice ``ps``, unpacking only the rows whose code is non-zero:
    the program lists them (a prefix count) in its own ``slot_ptr`` region, then walks that list
    ``BI`` rows at a time as ``sparse_item`` walks the quantizer's."""
    loc = tl.arange(0, KS * BI)
    r = ps * (KS * BI) + loc
    xv = tl.load(x_ptr + r, mask=r < K, other=0).to(tl.int32)
    live = xv != 0
    n_loc = tl.sum(live.to(tl.int32), axis=0)
    # the slice's row and its code in one word, so that one load brings both back
    tl.store(slot_ptr + tl.cumsum(live.to(tl.int32), axis=0) - 1, loc * 256 + (xv + 128), mask=live)
    tl.debug_barrier()                  # the list is written by every thread before any reads it
    acc = tl.zeros((WBN, 16), dtype=tl.int32)
    for c in range(0, tl.cdiv(n_loc, BI)):
        j = c * BI + tl.arange(0, BI)
        key = tl.load(slot_ptr + j, mask=j < n_loc, other=128)     # past the list: code 0 at row 0
        idx = ps * (KS * BI) + (key >> 8)
        xc = (key & 255) - 128
        wq = tl.load(wt_ptr + idx[:, None].to(tl.int64) * stride_wk + rw[None, :],
                     mask=(j < n_loc)[:, None] & (rw[None, :] < NW), other=0)          # [BI, WBN]
        acc += _rows_dot(xc, wq)
    return acc


@triton.jit
def _sparse_masked_kernel(x_ptr, xs_ptr, wt_ptr, ws_ptr, res_ptr, y_ptr, acc_ptr, ticket_ptr, list_ptr,
                          N, K, NW, stride_wk, WBN: tl.constexpr, BI: tl.constexpr, KS: tl.constexpr,
                          COMPACT: tl.constexpr, RES: tl.constexpr, PDL: tl.constexpr):
    """Column block ``program_id(0)`` x the ``KS·BI`` rows of slice ``program_id(1)``, the rows
    chosen from the codes themselves (``COMPACT``: listed by the program, else load-masked)."""
    if PDL:                     # the codes are the previous kernel's output, and they pick the rows
        tl.extra.cuda.gdc_wait()
        tl.extra.cuda.gdc_launch_dependents()
    pn = tl.program_id(0)
    ps = tl.program_id(1)
    rw = pn * WBN + tl.arange(0, WBN)                                  # word columns
    if COMPACT:
        slot = list_ptr + (ps * tl.num_programs(0) + pn).to(tl.int64) * (KS * BI)     # this program's own
        acc = _compacted_slice(x_ptr, wt_ptr, slot, rw, ps, K, NW, stride_wk, WBN, BI, KS)
    else:
        acc = _masked_slice(x_ptr, wt_ptr, rw, ps, K, NW, stride_wk, WBN, BI, KS)
    # every slice takes a ticket (there is no count of live ones): the last one writes the block
    _ticket_epilogue(acc, pn, tl.num_programs(1), xs_ptr, ws_ptr, res_ptr, y_ptr, acc_ptr, ticket_ptr, N, WBN,
                     RES)


_WORKSPACES: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _workspace(device: torch.device, Np: int, n_blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
    key = (str(device), Np, n_blocks)
    if key not in _WORKSPACES:
        _WORKSPACES[key] = (torch.zeros(Np, dtype=torch.int32, device=device),
                            ticket_counters(device, n_blocks, "sparse_gemv"))
    return _WORKSPACES[key]


_LISTS: dict[tuple, torch.Tensor] = {}


def _list_space(device: torch.device, n: int) -> torch.Tensor:
    """Room for every program's own row list (compacted masked route); written before it is read
    in each call, so it is never cleared."""
    key = (str(device), n)
    if key not in _LISTS:
        _LISTS[key] = torch.empty(max(n, 1), dtype=torch.int32, device=device)
    return _LISTS[key]


def sparse_config(N: int, K: int) -> dict:
    """Column block of 256 outputs (64-byte row segments) x 128 listed rows per program, 4 warps:
    the fastest of the H200 sweep (2026-12-01)."""
    return dict(WBN=16, BI=128, num_warps=4)


def sparse_masked_config(N: int, K: int) -> dict:
    """Column block of 256 outputs (64-byte row segments) x a slice of 8·32 rows per program, listed
    by the program, 4 warps: the fastest on Wdown at 84 % zeros in an H100 sweep."""
    return dict(WBN=16, BI=32, KS=8, COMPACT=True, num_warps=4)


def _check_layer(kernel: str, x_codes: torch.Tensor, x_scale: torch.Tensor, wt_packed: torch.Tensor,
                 w_scale: torch.Tensor, N: int, out_dtype: torch.dtype, residual: torch.Tensor | None) -> int:
    """The checks both launchers share, on shapes and dtypes (before any content check); returns K."""
    check_tensor(x_codes, "x_codes", (torch.int8,))
    check_device_usable(x_codes, "x_codes")
    dev = x_codes.device
    if x_codes.dim() != 2 or x_codes.shape[0] != 1:
        raise ValueError(f"{kernel} is a decode kernel: x_codes must be [1, K], got {tuple(x_codes.shape)}")
    K = x_codes.shape[1]
    check_tensor(x_scale, "x_scale", (torch.float32,), device=dev)
    check_tensor(wt_packed, "wt_packed", (torch.int32,), dim=2, device=dev)
    check_tensor(w_scale, "w_scale", (torch.float32,), device=dev)
    if x_scale.numel() != 1 or w_scale.numel() != 1:
        raise ValueError(f"x_scale and w_scale must each hold one value, got {x_scale.numel()} and "
                         f"{w_scale.numel()}")
    check_packed_layer(N, wt_packed, "wt_packed", lambda n: (K, padded_len(n) // 16),
                       "(wt_packed must be pack_ternary(W.T))", out_dtype)
    if residual is not None:
        check_tensor(residual, "residual", (out_dtype,), dim=2, device=dev)
        if tuple(residual.shape) != (1, N):
            raise ValueError(f"residual must have shape (1, {N}), got {tuple(residual.shape)}")
    return K


def _check_values(wt_packed: torch.Tensor, N: int, x_scale: torch.Tensor, w_scale: torch.Tensor,
                  residual: torch.Tensor | None) -> None:
    """Content checks both launchers share (``kernels.checks``): packed fields, finite scales and residual."""
    check_packed_ternary(wt_packed, N, "wt_packed")
    check_finite(x_scale, "x_scale")
    check_finite(w_scale, "w_scale")
    if residual is not None:
        check_finite(residual, "residual")


def sparse_gemv(x_codes: torch.Tensor, nz_index: torch.Tensor, nnz: torch.Tensor, x_scale: torch.Tensor,
                wt_packed: torch.Tensor, w_scale: torch.Tensor, N: int,
                out_dtype: torch.dtype = torch.float16, config: dict | None = None, *,
                residual: torch.Tensor | None = None, tuned: ConfigTable = NO_TUNING,
                pdl: bool = False) -> torch.Tensor:
    """``y [1, N] = x [1, K] · W[N, K]ᵀ`` reading only the rows of ``Wᵀ`` listed in ``nz_index``.

    ``x_codes`` int8 ``[1, K]``; ``nz_index`` int32 ``[1, K]`` or ``[K]`` whose first ``nnz``
    entries are distinct indices in ``[0, K)`` that include every non-zero code (the quantizer's
    ``nonzero=True`` list); ``nnz`` int32 ``[1]`` on the device, ``0 <= nnz <= K``;
    ``wt_packed = pack_ternary(W.T)`` int32 ``[K, Np/16]``.  ``residual [1, N]``: returns
    ``residual + y``.  The index list, the count and the packed fields are checked before the
    launch (content checks, ``kernels.checks``): an index out of range would read outside the
    weights, a repeated one or an unlisted non-zero code would give a wrong sum.
    """
    K = _check_layer("sparse_gemv", x_codes, x_scale, wt_packed, w_scale, N, out_dtype, residual)
    dev = x_codes.device
    check_tensor(nz_index, "nz_index", (torch.int32,), device=dev)
    check_tensor(nnz, "nnz", (torch.int32,), device=dev)
    if nz_index.numel() != K:
        raise ValueError(f"nz_index must hold K={K} entries, got {nz_index.numel()}")
    if nnz.numel() != 1:
        raise ValueError(f"nnz must hold one value, got {nnz.numel()}")
    n = check_index_list(nz_index, nnz, K, "nz_index", "nnz")
    if content_checks_enabled():
        listed = x_codes.reshape(-1)[nz_index.reshape(-1)[:n].long()]
        if int((listed != 0).sum()) != int((x_codes != 0).sum()):
            raise ValueError("nz_index must list every non-zero code of x_codes among its first nnz entries "
                             "(an unlisted non-zero code would be left out of the sum)")
    _check_values(wt_packed, N, x_scale, w_scale, residual)
    cfg = resolve_config("sparse", sparse_config(N, K), tuned, dict(N=N, K=K), config)
    NW = wt_packed.shape[1]
    n_blocks = triton.cdiv(NW, cfg["WBN"])
    acc, ticket = _workspace(dev, NW * 16, n_blocks)
    y = torch.empty(1, N, device=dev, dtype=out_dtype)
    pdl = bool(pdl) and dev.type == "cuda"
    opts = dict(launch_pdl=True) if pdl else {}
    _sparse_gemv_kernel[(n_blocks, triton.cdiv(K, cfg["BI"]))](
        x_ptr=x_codes, nzi_ptr=nz_index, nnz_ptr=nnz, xs_ptr=x_scale, wt_ptr=wt_packed, ws_ptr=w_scale,
        res_ptr=residual if residual is not None else y, y_ptr=y, acc_ptr=acc, ticket_ptr=ticket,
        N=N, K=K, NW=NW, stride_wk=wt_packed.stride(0),
        WBN=cfg["WBN"], BI=cfg["BI"], RES=residual is not None, PDL=pdl, num_warps=cfg["num_warps"], **opts)
    return y


def sparse_gemv_masked(x_codes: torch.Tensor, x_scale: torch.Tensor, wt_packed: torch.Tensor,
                       w_scale: torch.Tensor, N: int, out_dtype: torch.dtype = torch.float16,
                       config: dict | None = None, *, residual: torch.Tensor | None = None,
                       tuned: ConfigTable = NO_TUNING, pdl: bool = False) -> torch.Tensor:
    """``y [1, N] = x [1, K] · W[N, K]ᵀ`` reading only the rows of ``Wᵀ`` whose code is non-zero,
    chosen from the codes themselves (no index list: the quantizer writes codes and scale only).

    ``x_codes`` int8 ``[1, K]``; ``wt_packed = pack_ternary(W.T)`` int32 ``[K, Np/16]``;
    ``residual [1, N]``: returns ``residual + y``.  Every program owns ``16·WBN`` outputs and a
    slice of ``KS·BI`` rows, of which it reads the words of the rows whose code is non-zero
    (``config["COMPACT"]``: listed by the program first; else every row unpacked, zero-code rows'
    loads masked off).  Bytes read: ``nnz · Np/4`` of weights plus the codes once per column block.
    """
    K = _check_layer("sparse_gemv_masked", x_codes, x_scale, wt_packed, w_scale, N, out_dtype, residual)
    _check_values(wt_packed, N, x_scale, w_scale, residual)
    cfg = resolve_config("sparse_masked", sparse_masked_config(N, K), tuned, dict(N=N, K=K), config)
    dev = x_codes.device
    NW = wt_packed.shape[1]
    n_blocks = triton.cdiv(NW, cfg["WBN"])
    slice_rows = cfg["BI"] * cfg["KS"]
    n_slices = triton.cdiv(K, slice_rows)
    acc, ticket = _workspace(dev, NW * 16, n_blocks)
    lists = _list_space(dev, n_blocks * n_slices * slice_rows if cfg["COMPACT"] else 0)
    y = torch.empty(1, N, device=dev, dtype=out_dtype)
    pdl = bool(pdl) and dev.type == "cuda"
    opts = dict(launch_pdl=True) if pdl else {}
    _sparse_masked_kernel[(n_blocks, n_slices)](
        x_ptr=x_codes, xs_ptr=x_scale, wt_ptr=wt_packed, ws_ptr=w_scale,
        res_ptr=residual if residual is not None else y, y_ptr=y, acc_ptr=acc, ticket_ptr=ticket, list_ptr=lists,
        N=N, K=K, NW=NW, stride_wk=wt_packed.stride(0), WBN=cfg["WBN"], BI=cfg["BI"], KS=cfg["KS"],
        COMPACT=cfg["COMPACT"], RES=residual is not None, PDL=pdl, num_warps=cfg["num_warps"], **opts)
    return y
