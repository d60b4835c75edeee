"""The decode step of one decoder block (B = 1) in one persistent launch, for b1.58 and a4.8.

Why: at B = 1 a block reads ~19-27 MB, 5-19 us of bytes on an H100/H200, but every launch of
the per-kernel step pays its ramp-up, its tail and the gap to the next launch (docs/kernels.md:
nine read-only launches of the same bytes take 34-42 us).  Here one launch of ``programs_per_sm``
programs per SM runs the whole step; its stages are separated by a grid barrier instead of a
kernel boundary, and each program issues the load of its first weight tile of a stage *before*
waiting at that stage's barrier (weights do not depend on activations).

Stages (index, what), each program owning the tiles ``pid, pid + grid, ...`` of a GEMV stage:

0. fused QKV GEMV
1. RoPE + KV-cache write + split-context attention + combine (``attention_step.attention_item``;
   rows x context spans over the programs, one span per program (:func:`attention_config`), the
   last span of a row combines)
2. Wo GEMV + residual (b1.58: INT8 codes; a4.8: TopK-50 % INT8 codes, dense or sparse GEMV)
3. fused gate/up GEMV (a4.8: gate first, the up rows of non-positive gates skipped)
4. Wdown GEMV + residual on the GLU product's INT8 codes (dense, or a4.8's sparse GEMV)

Every GEMV input is normalised and quantized once per program per stage, after the stage's
barrier: each program computes the row statistics itself (the input row, 8-44 KB, sits in L2) and
writes the codes of the whole row (and, for a sparse GEMV, its non-zero index list) into its own
scratch row, then runs its tiles on those codes.  The codes are those of the per-kernel step:
``row_norm_quant_params`` / ``normed_input`` / ``quant_codes`` of the fused-prologue GEMV (same
chunking of the fp64 sums), and ``rmsnorm_quant.norm_quant_row`` for the TopK quantizer, so no
program waits for another one's quantizer and no stage needs a barrier of its own.  The GEMV
tile bodies are those of the per-kernel step (``gemv_tile``, ``sparse_item``), so the output equals
``KernelBlock.decode_fused`` of the plan :func:`reference_plan` gives (the same plan per kernel,
with this step's attention split and warps, which fix the order of the softmax sums) bit for bit.

Two launch modes of the same kernel:

* ``"persistent"`` (CUDA): all stages in one launch, barriers on.  The grid must be co-resident
  (every program running at once), or a barrier waits forever: the launcher computes the
  occupancy of the compiled kernel and refuses a larger grid.
* ``"staged"``: one launch per stage, barriers off (the kernel boundary orders the stages).  The
  interpreter (``TRITON_INTERPRET=1``) runs programs one after another, where a spin barrier
  would never be released: this is the CPU path and the exactness-test path.

Grid barrier: a global int32 arrival counter.  Each program arrives with an ``acq_rel`` atomic
add (after a CTA barrier, so the whole CTA's stores precede it), spins on volatile loads until
the counter reaches ``k · grid`` at its k-th barrier of the launch, then reads it once more with
an ``acquire`` atomic (which orders its later loads after the other programs' stores).  The
counter is reset by the last program to leave (a second counter of departures): every program
has then passed every barrier, and the next launch in the stream starts from zero.  Because the
reset lives in the kernel, the same launch can be replayed from a CUDA graph any number of
times (a generation passed in from the host would be frozen into the graph).
"""
from __future__ import annotations

import os
from dataclasses import replace

import torch
import triton
import triton.language as tl

from kernels.arith import GLU_MODES, QUANT_MODES
from kernels.attention_step import attention_item, attention_step_args
from kernels.checks import check_finite, check_tensor, next_pow2
from kernels.configs import resolve_config
from kernels.packing import padded_len
from kernels.rmsnorm_quant import TOPK_SEARCHES, norm_quant_row
from kernels.sparse_gemv import _workspace as sparse_workspace
from kernels.sparse_gemv import sparse_config, sparse_item
from kernels.ternary_gemm import gemv_config, gemv_key, gemv_prefetch, gemv_tile, quantize_row
from kernels.tickets import ticket_counters

STAGES = ("qkv", "attention", "wo", "gate_up", "down")
MODES = ("auto", "persistent", "staged")
#: parts of the step a diagnostic floor variant may leave out (``DecodePlan.persistent_skip``):
#: "quant" every per-program quantizer pass (the GEMVs read fixed codes), "attention" the attention
#: stage's work (RoPE, cache write, attention, combine), "gemv" every GEMV (its weight prefetch
#: included).  The grid barriers stay; all three skipped leaves the launch and its barriers alone.
SKIPS = ("quant", "attention", "gemv")
#: per-SM limits used when the device does not report them (NVIDIA Hopper, CUDA occupancy tables)
_SM_REGS, _SM_THREADS, _SM_BLOCKS, _SM_SMEM = 65536, 2048, 32, 228 * 1024
#: attention rows x spans: positions per tile and the K loop's pipeline depth of the persistent
#: step (its spans are long, one per program, so bigger tiles than the per-kernel step's 8)
ATT_BT, ATT_STAGES = 32, 3
#: values per chunk of a program's quantizer pass (codes and non-zero list written chunk by chunk)
QUANT_CHUNK = 1024


# ----------------------------------------------------------------------------- grid barrier
@triton.jit
def _grid_sync(bar_ptr, target):
    """Wait until ``target`` arrivals are counted at ``bar_ptr`` (this program's included)."""
    tl.debug_barrier()                                  # the whole CTA's stores precede the arrival
    tl.atomic_add(bar_ptr, 1, sem="acq_rel")
    # spin on plain (volatile) loads, which do not queue behind the other programs' atomics at the
    # counter's L2 line; one acquire read once the count is reached orders what follows
    seen = tl.load(bar_ptr, volatile=True)
    while seen < target:
        seen = tl.load(bar_ptr, volatile=True)
    tl.atomic_add(bar_ptr, 0, sem="acquire")
    tl.debug_barrier()                                  # no thread reads before the arrival is seen


@triton.jit
def _grid_leave(bar_ptr, nprog):
    """Departure: the last program out resets both counters for the next launch."""
    tl.debug_barrier()
    left = tl.atomic_add(bar_ptr + 1, 1, sem="acq_rel")
    if left == nprog - 1:
        tl.atomic_xchg(bar_ptr, 0, sem="relaxed")
        tl.atomic_xchg(bar_ptr + 1, 0, sem="release")


# ----------------------------------------------------------------------------- stage bodies
@triton.jit
def _quantize_row(src_ptr, nw_ptr, q_ptr, qs_ptr, nzi_ptr, nnz_ptr, K, up_off, eps,
                  QB: tl.constexpr, CH: tl.constexpr, GLU: tl.constexpr, QMODE: tl.constexpr,
                  WRITE_NZ: tl.constexpr):
    """This program's codes of one activation row, once per stage (:func:`kernels.ternary_gemm.quantize_row`,
    the up half at ``up_off``, zero-filled up to a whole int32 word): the statistics in chunks of ``QB``, the
    fused-prologue GEMV's chunking, so the codes are the ones the fused per-kernel step computes inside every
    tile."""
    quantize_row(src_ptr, src_ptr + up_off, nw_ptr, q_ptr, qs_ptr, nzi_ptr, nnz_ptr, K, (K + 3) // 4 * 4, eps,
                 QB, CH, True, True, GLU, QMODE, False, WRITE_NZ)
    tl.debug_barrier()                                  # the codes are visible to the whole CTA


@triton.jit
def _gemv_stage(pid, nprog, wq0, qw_ptr, qs_ptr, res_ptr, w_ptr, ws_ptr, y_ptr, N, K, ws_rows,
                BN: tl.constexpr, KB: tl.constexpr, RES: tl.constexpr, GATE_FIRST: tl.constexpr,
                USE_ASM: tl.constexpr, NUM_STAGES: tl.constexpr):
    """Output tiles ``pid, pid + nprog, ...`` of a decode GEMV (M = 1) on this program's codes
    (int32 words at ``qw_ptr``, scale at ``qs_ptr``); the first tile's first words are ``wq0``."""
    KW = (K + 127) // 128 * 8
    K4 = (K + 3) // 4
    n_tiles = tl.cdiv(N, BN)
    xs = tl.load(qs_ptr + tl.arange(0, 1))
    if pid < n_tiles:
        gemv_tile(pid, wq0, 1.0, 1.0, xs, qw_ptr, qw_ptr, qw_ptr, res_ptr, w_ptr, ws_ptr, y_ptr, qw_ptr,
                  1, N, K, K4, KW, ws_rows, 0, 0, KW, 0,
                  1, BN, KB, False, False, False, 0, 0, RES, GATE_FIRST, False, USE_ASM, NUM_STAGES, True)
    for pn in range(pid + nprog, n_tiles, nprog):
        gemv_tile(pn, wq0, 1.0, 1.0, xs, qw_ptr, qw_ptr, qw_ptr, res_ptr, w_ptr, ws_ptr, y_ptr, qw_ptr,
                  1, N, K, K4, KW, ws_rows, 0, 0, KW, 0,
                  1, BN, KB, False, False, False, 0, 0, RES, GATE_FIRST, False, USE_ASM, NUM_STAGES, False)


@triton.jit
def _prefetch(w_ptr, pid, N, K, BN: tl.constexpr, KB: tl.constexpr):
    KW = (K + 127) // 128 * 8
    return gemv_prefetch(w_ptr, pid, N, KW, KW, BN, KB)


@triton.jit
def _sparse_stage(pid, nprog, x_ptr, nzi_ptr, nnz_ptr, xs_ptr, wt_ptr, ws_ptr, res_ptr, y_ptr, acc_ptr, ticket_ptr,
                  N, K, WBN: tl.constexpr, BI: tl.constexpr):
    """Items (slice-major, so the live slices spread over the programs) of a sparse GEMV + residual."""
    NW = (N + 127) // 128 * 8
    n_blocks = tl.cdiv(NW, WBN)
    n_items = n_blocks * tl.cdiv(K, BI)
    for it in range(pid, n_items, nprog):
        sparse_item(it % n_blocks, it // n_blocks, x_ptr, nzi_ptr, nnz_ptr, xs_ptr, wt_ptr, ws_ptr, res_ptr, y_ptr,
                    acc_ptr, ticket_ptr, N, K, NW, NW, WBN, BI, True)


@triton.jit(do_not_specialize=["pos", "stage_lo", "stage_hi"])
def _decode_block_kernel(
        # activations (fp16 rows) and norm weights
        x_ptr, qkv_ptr, a_ptr, h_ptr, gu_ptr, out_ptr, nw_attn, nw_o, nw_ffn, nw_down,
        # packed ternary weights, their scales, transposed packings (sparse GEMVs)
        w_qkv, s_qkv, w_o, s_o, wt_o, w_gu, s_gu, w_down, s_down, wt_down,
        # each program's codes (as int8 and as int32 words), scale, non-zero list; sparse workspace
        q_ptr, qw_ptr, qs_ptr, nzi_ptr, nnz_ptr, sp_acc_ptr, sp_ticket_ptr,
        # attention: RoPE tables, cache, split partials and tickets
        cos_ptr, sin_ptr, kc_ptr, ks_ptr, kb_ptr, vc_ptr, vs_ptr, vb_ptr, m_ptr, l_ptr, o_ptr, at_ticket_ptr,
        bar_ptr,
        pos, T_max, chunk, sm_scale, eps, k_top, stage_lo, stage_hi, DM, FF, H, QROW,
        A48: tl.constexpr, WO_SPARSE: tl.constexpr, DOWN_SPARSE: tl.constexpr, GATE_FIRST: tl.constexpr,
        BN: tl.constexpr, KB: tl.constexpr, KB_DN: tl.constexpr, QB_QKV: tl.constexpr, QB_O: tl.constexpr,
        QB_GU: tl.constexpr, QB_DN: tl.constexpr,
        CH: tl.constexpr, GEMV_STAGES: tl.constexpr, QBLOCK_D: tl.constexpr, WBN: tl.constexpr,
        BI: tl.constexpr, D: tl.constexpr, BT: tl.constexpr, S: tl.constexpr, SP: tl.constexpr,
        KV: tl.constexpr, LN: tl.constexpr, LB: tl.constexpr, ATT_STAGES: tl.constexpr,
        QM: tl.constexpr, QM_TOPK: tl.constexpr, QM_INT8: tl.constexpr, SEARCH: tl.constexpr, GLU: tl.constexpr,
        BARRIER: tl.constexpr, USE_ASM: tl.constexpr,
        SKIP_Q: tl.constexpr, SKIP_ATT: tl.constexpr, SKIP_GEMV: tl.constexpr):
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    NGU: tl.constexpr = 2 if GATE_FIRST else 1          # gate-first: tiles over the gate rows only
    # this program's quantizer outputs (every program quantizes each GEMV input once, itself)
    q_row = q_ptr + pid.to(tl.int64) * QROW
    qw_row = qw_ptr + pid.to(tl.int64) * (QROW // 4)
    qs_row = qs_ptr + pid
    nzi_row = nzi_ptr + pid.to(tl.int64) * QROW
    nnz_row = nnz_ptr + pid
    # 0: fused QKV
    if (stage_lo <= 0) & (0 < stage_hi):
        if not SKIP_GEMV:
            wq = _prefetch(w_qkv, pid, 3 * DM, DM, BN, KB)
        if not SKIP_Q:
            _quantize_row(x_ptr, nw_attn, q_row, qs_row, nzi_row, nnz_row, DM, 0, eps, QB_QKV, CH, 0, QM, False)
        if not SKIP_GEMV:
            _gemv_stage(pid, nprog, wq, qw_row, qs_row, x_ptr, w_qkv, s_qkv, qkv_ptr, 3 * DM, DM, DM,
                        BN, KB, False, False, USE_ASM, GEMV_STAGES)
    # 1: RoPE + cache write + attention + combine
    if (stage_lo <= 1) & (1 < stage_hi):
        if BARRIER:
            _grid_sync(bar_ptr, nprog)
        if not SKIP_ATT:
            for it in range(pid, H * S, nprog):
                attention_item(it // S, it % S, qkv_ptr, cos_ptr, sin_ptr, kc_ptr, ks_ptr, kb_ptr, vc_ptr, vs_ptr,
                               vb_ptr, m_ptr, l_ptr, o_ptr, at_ticket_ptr, a_ptr, pos, T_max, H, chunk, sm_scale,
                               3 * DM, D, BT, S, SP, KV, LN, LB, ATT_STAGES)
    # 2: Wo + residual (a4.8: on the TopK codes, dense or sparse; b1.58: INT8 codes)
    if (stage_lo <= 2) & (2 < stage_hi):
        if A48 and WO_SPARSE:
            if BARRIER:
                _grid_sync(bar_ptr, 2 * nprog)
            if not SKIP_Q:
                norm_quant_row(0, a_ptr, a_ptr, nw_o, q_row, qs_row, nzi_row, nnz_row, DM, 0, 0, 0, 0, eps,
                               k_top, QBLOCK_D, True, True, 0, QM_TOPK, False, True, SEARCH)
                tl.debug_barrier()
            if not SKIP_GEMV:
                _sparse_stage(pid, nprog, q_row, nzi_row, nnz_row, qs_row, wt_o, s_o, x_ptr, h_ptr,
                              sp_acc_ptr, sp_ticket_ptr, DM, DM, WBN, BI)
        else:
            if not SKIP_GEMV:
                wq = _prefetch(w_o, pid, DM, DM, BN, KB)
            if BARRIER:
                _grid_sync(bar_ptr, 2 * nprog)
            if SKIP_Q:
                pass
            elif A48:
                norm_quant_row(0, a_ptr, a_ptr, nw_o, q_row, qs_row, nzi_row, nnz_row, DM, 0, 0, 0, 0, eps,
                               k_top, QBLOCK_D, True, True, 0, QM_TOPK, False, False, SEARCH)
                tl.debug_barrier()
            else:
                _quantize_row(a_ptr, nw_o, q_row, qs_row, nzi_row, nnz_row, DM, 0, eps, QB_O, CH, 0, QM_INT8, False)
            if not SKIP_GEMV:
                _gemv_stage(pid, nprog, wq, qw_row, qs_row, x_ptr, w_o, s_o, h_ptr, DM, DM, DM,
                            BN, KB, True, False, USE_ASM, GEMV_STAGES)
    # 3: fused gate/up
    if (stage_lo <= 3) & (3 < stage_hi):
        if not SKIP_GEMV:
            wq = _prefetch(w_gu, pid, 2 * FF // NGU, DM, BN, KB)
        if BARRIER:
            _grid_sync(bar_ptr, 3 * nprog)
        if not SKIP_Q:
            _quantize_row(h_ptr, nw_ffn, q_row, qs_row, nzi_row, nnz_row, DM, 0, eps, QB_GU, CH, 0, QM, False)
        if not SKIP_GEMV:
            _gemv_stage(pid, nprog, wq, qw_row, qs_row, x_ptr, w_gu, s_gu, gu_ptr, 2 * FF // NGU, DM, FF,
                        BN, KB, False, GATE_FIRST, USE_ASM, GEMV_STAGES)
    # 4: Wdown + residual on the GLU product's INT8 codes (dense, or sparse with the index list)
    if (stage_lo <= 4) & (4 < stage_hi):
        if A48 and DOWN_SPARSE:
            if BARRIER:
                _grid_sync(bar_ptr, 4 * nprog)
            if not SKIP_Q:
                _quantize_row(gu_ptr, nw_down, q_row, qs_row, nzi_row, nnz_row, FF, FF, eps, QB_DN, CH, GLU,
                              QM_INT8, True)
            if not SKIP_GEMV:
                _sparse_stage(pid, nprog, q_row, nzi_row, nnz_row, qs_row, wt_down, s_down, h_ptr, out_ptr,
                              sp_acc_ptr, sp_ticket_ptr, DM, FF, WBN, BI)
        else:
            if not SKIP_GEMV:
                wq = _prefetch(w_down, pid, DM, FF, BN, KB_DN)
            if BARRIER:
                _grid_sync(bar_ptr, 4 * nprog)
            if not SKIP_Q:
                _quantize_row(gu_ptr, nw_down, q_row, qs_row, nzi_row, nnz_row, FF, FF, eps, QB_DN, CH, GLU,
                              QM_INT8, False)
            if not SKIP_GEMV:
                _gemv_stage(pid, nprog, wq, qw_row, qs_row, h_ptr, w_down, s_down, out_ptr, DM, FF, DM,
                            BN, KB_DN, True, False, USE_ASM, GEMV_STAGES)
    if BARRIER:
        _grid_leave(bar_ptr, nprog)


# ----------------------------------------------------------------------------- launcher
_OCCUPANCY: dict[tuple, int] = {}


def active_stages(a48: bool, wdown_sparse: bool) -> tuple[int, ...]:
    """Indices into :data:`STAGES` that a datapath runs: all of them (every quantizer runs inside the
    stage whose GEMV reads its codes, in every program); the arguments are kept for the callers."""
    return tuple(range(len(STAGES)))


def coresident_programs(n_sms: int, n_regs: int, num_warps: int, shared: int, *, sm_regs: int = _SM_REGS,
                        sm_threads: int = _SM_THREADS, sm_blocks: int = _SM_BLOCKS, sm_smem: int = _SM_SMEM) -> int:
    """Programs of one kernel that can all run at once: ``n_sms`` x the blocks per SM that its
    registers (allocated per warp in units of 256), threads and shared memory allow."""
    for name, v in (("n_sms", n_sms), ("num_warps", num_warps)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if n_regs < 0 or shared < 0:
        raise ValueError(f"n_regs and shared must be >= 0, got {n_regs}, {shared}")
    regs_per_warp = -(-max(n_regs, 1) * 32 // 256) * 256
    per_sm = min(sm_blocks, sm_threads // (32 * num_warps), sm_regs // (regs_per_warp * num_warps))
    if shared:
        per_sm = min(per_sm, sm_smem // shared)
    return n_sms * per_sm


def attention_config(n_programs: int, n_heads: int, plan) -> dict:
    """The persistent step's attention config: one context span per program (``n_programs //
    n_heads`` spans per head, so rows x spans fill the grid once), ``ATT_BT`` positions per tile,
    the kernel's warps; ``plan.attention`` overrides any of them."""
    cfg = dict(BT=ATT_BT, S=max(1, n_programs // n_heads), num_warps=plan.warps, num_stages=ATT_STAGES)
    cfg.update(dict(plan.attention))
    return cfg


def reference_plan(plan, n_programs: int, n_heads: int):
    """The per-kernel plan whose ``decode_fused`` the persistent ``plan`` equals bit for bit when it
    runs ``n_programs`` programs: the same plan with the persistent step's attention config."""
    cfg = attention_config(n_programs, n_heads, plan)
    return replace(plan, persistent=False, persistent_skip=(), attention=tuple(sorted(cfg.items())))


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _barrier(device: torch.device) -> torch.Tensor:
    """The arrival and departure counters of one device (zero between launches: the kernel resets them)."""
    return ticket_counters(device, 2, "grid_barrier")


def _stats_chunk(blk, name: str, K: int) -> int:
    """Words per chunk of the per-kernel fused GEMV of ``name``: its statistics are summed in chunks of
    16x that many values, and the persistent step sums them the same way (the same fp64 rounding)."""
    N = blk.wp[name].shape[0]
    return resolve_config("gemv", gemv_config(1, K), blk.tuned, gemv_key(1, N, K), None)["KB"]


def _check_call(blk, x: torch.Tensor, plan, mode: str, grid: int | None, n_sms: int | None) -> None:
    if blk.dp not in ("b1.58", "a4.8"):
        raise ValueError(f"the persistent decode block is for the b1.58 and a4.8 datapaths, got {blk.dp!r}")
    if blk.B != 1:
        raise ValueError(f"the persistent decode block runs one sequence (B=1), got B={blk.B}")
    check_tensor(x, "x", (torch.float16,), dim=3, device=blk.norm["attn"].device)
    if tuple(x.shape) != (1, 1, blk.dims.d_model):
        raise ValueError(f"x must be [1, 1, d_model={blk.dims.d_model}], got {tuple(x.shape)}")
    check_finite(x, "x")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "persistent" and (x.device.type != "cuda" or _interpreting()):
        raise ValueError("mode='persistent' needs a CUDA device without TRITON_INTERPRET=1: the interpreter runs "
                         "programs one after another, so a grid barrier would never be released (use 'staged')")
    if plan.prologue != "fused" or plan.pdl:
        raise ValueError("the persistent decode block quantizes inside its GEMV stages (prologue='fused') and has "
                         f"no kernel boundaries to overlap (pdl=False), got prologue={plan.prologue!r}, pdl={plan.pdl}")
    for name, v in (("grid", grid), ("n_sms", n_sms)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
            raise ValueError(f"{name} must be a positive int, got {v!r}")


def _buffers(blk, x: torch.Tensor, nprog: int, skip: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """The step's rows and each program's quantizer outputs.  The normal step writes every one before
    reading it; a floor variant (``skip``) reads rows no stage wrote, so they start finite: activation
    rows at 0.25, codes at 1 with scale 1/64 and, for a sparse GEMV, the first d_model indices listed
    (the gate-first GEMV then skips about half its up rows, as on real activations)."""
    d, F_ = blk.dims.d_model, blk.dims.d_ffn
    dev = x.device
    n = padded_len(max(d, F_))
    fill = bool(skip)

    def f16(w: int) -> torch.Tensor:
        if fill:
            return torch.full((1, w), 0.25, device=dev, dtype=torch.float16)
        return torch.empty(1, w, device=dev, dtype=torch.float16)

    if fill:
        q = torch.ones(nprog, n, device=dev, dtype=torch.int8)
        qs = torch.full((nprog,), 1 / 64, device=dev, dtype=torch.float32)
        nzi = torch.arange(n, device=dev, dtype=torch.int32).repeat(nprog, 1)
        nnz = torch.full((nprog,), d, device=dev, dtype=torch.int32)
    else:                                                           # every program writes its codes first
        q = torch.empty(nprog, n, device=dev, dtype=torch.int8)
        qs = torch.empty(nprog, device=dev, dtype=torch.float32)
        nzi = torch.empty(nprog, n, device=dev, dtype=torch.int32)
        nnz = torch.empty(nprog, device=dev, dtype=torch.int32)
    return dict(qkv=f16(3 * d), a=f16(d), h=f16(d), gu=f16(2 * F_), out=f16(d), q=q, qw=q.view(torch.int32),
                qs=qs, nzi=nzi, nnz=nnz)


def decode_block_persistent(blk, x: torch.Tensor, pos: int, plan, *, mode: str = "auto", grid: int | None = None,
                            n_sms: int | None = None, buffers: dict | None = None) -> torch.Tensor:
    """Decode step of ``blk`` (a ``kernels.block.KernelBlock``, b1.58 or a4.8, B = 1) for ``x [1, 1, d]``
    fp16 at position ``pos``: the output of ``blk.decode_fused(x, pos, reference_plan(plan, ...))``
    bit for bit (the per-kernel step with this step's attention split and warps).

    ``mode``: "persistent" (one launch, grid barriers; CUDA), "staged" (one launch per stage) or
    "auto" (persistent on CUDA, staged under the interpreter).  ``n_sms``: the SM count the step is
    planned for (default: the device's on CUDA, 3 on the CPU): ``n_sms x plan.programs_per_sm``
    programs, and the attention split follows from that count (:func:`attention_config`).
    ``grid``: programs launched (default that count; the staged CPU path may run fewer programs
    of a step planned for a GPU); a persistent grid larger than the co-resident limit is refused.
    ``buffers``: a dict that receives the step's intermediate rows (qkv, a, h, gu, out).
    ``plan.persistent_skip`` (:data:`SKIPS`) leaves parts of the step out: a diagnostic floor whose
    output is not the block's (its time only says what the parts left in cost).
    """
    _check_call(blk, x, plan, mode, grid, n_sms)
    if mode == "auto":
        mode = "persistent" if x.device.type == "cuda" and not _interpreting() else "staged"
    d, F_, H = blk.dims.d_model, blk.dims.d_ffn, blk.dims.n_heads
    cuda = x.device.type == "cuda"
    if n_sms is None:
        n_sms = torch.cuda.get_device_properties(x.device).multi_processor_count if cuda else 3
    planned = n_sms * plan.programs_per_sm
    nprog = grid or planned
    a48 = blk.dp == "a4.8"
    wo_sparse, down_sparse = a48 and plan.wo == "sparse", a48 and plan.wdown == "sparse"
    skip = tuple(plan.persistent_skip)
    buf = _buffers(blk, x, nprog, skip)
    att, att_meta, _ = attention_step_args(buf["qkv"], blk.cache, pos, blk.cos, blk.sin, buf["a"], tuned=blk.tuned,
                                           config=attention_config(planned, H, plan), qkv_ready=False)
    cfg = sparse_config(d, F_)
    sp_acc, sp_ticket = sparse_workspace(x.device, padded_len(d), triton.cdiv(padded_len(d) // 16, cfg["WBN"]))
    kb = min(128, next_pow2(padded_len(d) // 16))
    kb_dn = min(128, next_pow2(padded_len(F_) // 16))
    wt = blk.wtp if a48 else {}
    args = dict(
        x_ptr=x.reshape(1, d), qkv_ptr=buf["qkv"], a_ptr=buf["a"], h_ptr=buf["h"], gu_ptr=buf["gu"], out_ptr=buf["out"],
        nw_attn=blk.norm["attn"], nw_o=blk.norm["o"], nw_ffn=blk.norm["ffn"], nw_down=blk.norm["down"],
        w_qkv=blk.wp["qkv"], s_qkv=blk.ws["qkv"], w_o=blk.wp["o"], s_o=blk.ws["o"], wt_o=wt.get("o", blk.wp["o"]),
        w_gu=blk.wp["gu"], s_gu=blk.ws["gu"], w_down=blk.wp["down"], s_down=blk.ws["down"],
        wt_down=wt.get("down", blk.wp["down"]),
        q_ptr=buf["q"], qw_ptr=buf["qw"], qs_ptr=buf["qs"], nzi_ptr=buf["nzi"], nnz_ptr=buf["nnz"],
        sp_acc_ptr=sp_acc, sp_ticket_ptr=sp_ticket,
        cos_ptr=att["cos_ptr"], sin_ptr=att["sin_ptr"], kc_ptr=att["kc_ptr"], ks_ptr=att["ks_ptr"],
        kb_ptr=att["kb_ptr"], vc_ptr=att["vc_ptr"], vs_ptr=att["vs_ptr"], vb_ptr=att["vb_ptr"], m_ptr=att["m_ptr"],
        l_ptr=att["l_ptr"], o_ptr=att["o_ptr"],
        at_ticket_ptr=att["ticket_ptr"], bar_ptr=_barrier(x.device),
        pos=pos, T_max=att["T_max"], chunk=att["chunk"], sm_scale=att["sm_scale"], eps=1e-5,
        k_top=-(-d // 2), DM=d, FF=F_, H=H, QROW=buf["q"].shape[1])
    meta = dict(A48=a48, WO_SPARSE=wo_sparse, DOWN_SPARSE=down_sparse, GATE_FIRST=a48 and plan.gate_first,
                BN=plan.tile_rows, KB=kb, KB_DN=kb_dn, QB_QKV=16 * _stats_chunk(blk, "qkv", d),
                QB_O=16 * _stats_chunk(blk, "o", d), QB_GU=16 * _stats_chunk(blk, "gu", d),
                QB_DN=16 * _stats_chunk(blk, "down", F_), CH=QUANT_CHUNK, GEMV_STAGES=3 if cuda else 1,
                QBLOCK_D=next_pow2(d), WBN=cfg["WBN"], BI=cfg["BI"], D=att_meta["D"], BT=att_meta["BT"],
                S=att_meta["S"], SP=att_meta["SP"], KV=att_meta["KV"], LN=att_meta["LN"], LB=att_meta["LB"],
                ATT_STAGES=att_meta["NUM_STAGES"],
                QM=QUANT_MODES["int4" if a48 else "int8"], QM_TOPK=QUANT_MODES["topk8"], QM_INT8=QUANT_MODES["int8"],
                SEARCH=TOPK_SEARCHES[plan.topk_search], GLU=GLU_MODES["relu2" if a48 else "silu"], USE_ASM=cuda,
                num_warps=plan.warps,
                enable_fp_fusion=False,
                SKIP_Q="quant" in skip, SKIP_ATT="attention" in skip, SKIP_GEMV="gemv" in skip)
    if mode == "persistent":
        _check_coresident(args, meta, nprog, x.device)
        _decode_block_kernel[(nprog,)](**args, stage_lo=0, stage_hi=len(STAGES), BARRIER=True, **meta)
    else:
        for s in active_stages(a48, down_sparse):
            _decode_block_kernel[(nprog,)](**args, stage_lo=s, stage_hi=s + 1, BARRIER=False, **meta)
    if hasattr(blk.cache, "mark_written"):
        blk.cache.mark_written(pos + 1)
    if buffers is not None:
        buffers.update({k: buf[k] for k in ("qkv", "a", "h", "gu", "out")})
    return buf["out"].view(1, 1, d)


def _check_coresident(args: dict, meta: dict, nprog: int, device: torch.device) -> None:
    """Refuse a persistent grid that cannot be resident at once (its barriers would never release)."""
    key = (str(device), tuple(sorted((k, v) for k, v in meta.items())))
    props = torch.cuda.get_device_properties(device)
    if key not in _OCCUPANCY:
        try:
            k = _decode_block_kernel.warmup(**args, stage_lo=0, stage_hi=len(STAGES), BARRIER=True, grid=(nprog,),
                                            **meta)
            k._init_handles()
            n_regs, shared = int(k.n_regs), int(k.metadata.shared)
        except (AttributeError, TypeError):     # this Triton does not expose them: one program per SM,
            n_regs, shared = 255, 0             # the most registers a thread can hold
        _OCCUPANCY[key] = coresident_programs(
            props.multi_processor_count, n_regs, meta["num_warps"], shared,
            sm_regs=getattr(props, "regs_per_multiprocessor", _SM_REGS),
            sm_threads=getattr(props, "max_threads_per_multi_processor", _SM_THREADS),
            sm_smem=getattr(props, "shared_memory_per_multiprocessor", _SM_SMEM))
    if nprog > _OCCUPANCY[key]:
        raise ValueError(f"grid={nprog} programs exceed the {_OCCUPANCY[key]} that can be resident at once on "
                         f"{device} (a persistent kernel's grid barrier needs every program running)")
