"""One LLaMA-7B decoder block per datapath (decode step in CUDA graphs, prefill eagerly), and a whole
7B decode token (32 blocks + final norm + FP16 LM head) per datapath.

Decode (B = 1, context ``ctx``): each figure is a CUDA graph over ``R`` replicas of the block
(copies of the weights, own caches), so every step reads its weights from HBM; per-step time =
replay / R.  Rows per datapath: the per-operator composition (``forward``), every fused variant
(``decode_fused`` with a ``DecodePlan``; checked against ``forward`` on the same input and cache),
fp16 in torch eager and, if it compiles, ``torch.compile``; beside them the bytes floor of the
datapath (its bytes at the measured read bandwidth) and ``floor_read`` chains with the fused
step's launch structure (one read kernel per launch, same bytes): the floor of that many launches.
"""
from __future__ import annotations

import ast
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from kernels.bench import energy
from kernels.bench.harness import MeasurementLog, capture_graph, time_graph, time_us
from kernels.block import LLAMA7B, DecodePlan, KernelBlock, _rmsnorm16, fp16_decode_step
from kernels.floor import floor_read
from kernels.rmsnorm_quant import DEFAULT_TOPK_SEARCH

PLANS = {
    "b1.58": (DecodePlan(pdl=True), DecodePlan(prologue="separate"), DecodePlan(prologue="separate", pdl=True)),
    "a4.8": (DecodePlan(wo="dense", wdown="dense", pdl=True),
             DecodePlan(prologue="separate", wo="dense", wdown="dense", pdl=True),
             DecodePlan(prologue="separate", wo="dense", wdown="dense", topk_search="bitwise", pdl=True),
             DecodePlan(prologue="separate", wo="dense", wdown="dense", gate_first=False, pdl=True),
             DecodePlan(prologue="separate", wo="dense", wdown="dense"),
             DecodePlan(prologue="separate", wo="sparse", wdown="dense", pdl=True),
             DecodePlan(prologue="separate", wo="dense", wdown="sparse", pdl=True),
             # the sparse GEMV that picks its rows from the codes: the quantizer writes no index list
             DecodePlan(prologue="separate", wo="masked", wdown="masked", pdl=True),
             DecodePlan(prologue="separate", wo="dense", wdown="masked", pdl=True)),
    # a4.8 on the dense 3-bit cache: the layout changes only the attention step, so only the plans that
    # win on the nibble cache
    "a4.8-dense3": (DecodePlan(prologue="separate", wo="dense", wdown="dense", pdl=True),
                    DecodePlan(prologue="separate", wo="dense", wdown="dense")),
}
#: the datapath labels of the block and token sections (a suffix names a KV format, :data:`KV_SUFFIXES`)
BLOCK_LABELS = ("fp16", "b1.58", "b1.58-kv4", "a4.8", "a4.8-dense3")
VOCAB = 32000
LAYERS = 32


@dataclass(kw_only=True)
class DecodeChoice:
    """The fastest measured decode step of a datapath: what the 7B token and the energy runs use."""

    datapath: str
    variant: str
    us: float
    plan: DecodePlan | None = None      # None: forward (fp16 eager or the per-operator path)
    compiled: Callable | None = None    # fp16: torch.compile'd step
    prefill: Callable | None = None     # one eager prefill of the block (for the energy runs)


#: weight bits per parameter of each datapath (W4A16: 4-bit codes + a bf16 scale and zero per 128)
WEIGHT_BITS = {"fp16": 16.0, "w8a8-fp8": 8.0, "w4a16": 4.0 + 32.0 / 128, "b1.58": 2.0, "a4.8": 2.0}


def block_bytes(datapath: str, ctx: int, dims=LLAMA7B, B: int = 1, kv_bits: int | None = None,
                kv_layout: str = "nibble") -> dict[str, float]:
    """Fewest bytes one decode step of ``B`` sequences moves: weights once, every sequence's KV cache
    read once (ctx rows in our layout: fp16, 4-bit nibbles or dense 3-bit codes, + an fp32 scale per row)."""
    d, F_, H, hd = dims.d_model, dims.d_ffn, dims.n_heads, dims.head_dim
    n_w = (3 * d + d + 2 * F_) * d + d * F_
    if kv_bits is None and datapath == "a4.8":
        kv_bits = 3
    row = hd * 2 if kv_bits is None else (3 * hd // 8 if kv_layout == "dense3" else hd // 2) + 4
    return dict(weights=n_w * WEIGHT_BITS[datapath] / 8.0, kv=2.0 * B * H * ctx * row)


def _plan_name(plan: DecodePlan, datapath: str) -> str:
    name = plan.prologue
    if plan.persistent:
        name = ("persistent" + (f"x{plan.programs_per_sm}" if plan.programs_per_sm > 1 else "")
                + f"_w{plan.warps}_r{plan.tile_rows}")
    if datapath == "a4.8":
        name += f"_wo-{plan.wo}_down-{plan.wdown}" + ("" if plan.gate_first else "_nogatefirst")
        if plan.topk_search != DEFAULT_TOPK_SEARCH:
            name += f"_topk-{plan.topk_search}"
    return name + ("_pdl" if plan.pdl else "")


def _rel(y: torch.Tensor, ref: torch.Tensor, x: torch.Tensor) -> float:
    """Relative difference of two block outputs, measured on the block's update (out - x)."""
    return float((y.double() - ref.double()).norm() / (ref.double() - x.double()).norm())


def block_section(log: MeasurementLog, ctx: int = 2048, prefill: int = 2048, compile_fp16: bool = True,
                  read_gbps: float = 4570.0, replicas: int = 4) -> dict[str, DecodeChoice]:
    """Decode and prefill rows of every datapath; returns the fastest decode step of each."""
    best: dict[str, DecodeChoice] = {}
    d = LLAMA7B.d_model
    T_max = max(ctx, prefill) + 1
    g = torch.Generator(device="cuda").manual_seed(11)
    xp = torch.randn(1, prefill, d, device="cuda", dtype=torch.float16, generator=g)
    xd = torch.randn(1, 1, d, device="cuda", dtype=torch.float16, generator=g)
    for label in BLOCK_LABELS:
        try:
            best[label] = _datapath(log, label, ctx, prefill, T_max, xp, xd, compile_fp16, read_gbps,
                                    2 if label == "fp16" else replicas)
        except Exception as e:  # noqa: BLE001 - one datapath failing must not lose the others
            log.note(what=f"block {label} failed", error=repr(e)[-800:], tb=traceback.format_exc()[-1500:])
        torch.cuda.empty_cache()
    _chains(log, ctx)
    return best


def _datapath(log, label, ctx, prefill, T_max, xp, xd, compile_fp16, read_gbps, R) -> DecodeChoice:
    dp, kv = _label_parts(label)
    impl = "baseline" if dp == "fp16" else "ours"
    blk = KernelBlock(dp, 1, T_max, tuned=log.tuned, **kv)
    if "kv_layout" not in kv:           # a layout only changes the decode step's attention
        _prefill_rows(log, blk, label, xp)
    pos = ctx - 1                                           # the new token makes the context ctx long
    reps = [blk] + [blk.replica() for _ in range(1, R)]
    for b in reps:
        b.fill_cache(pos)
        b.record = False
    blk.record = True
    y_ref = blk.forward(xd, pos)
    sp = dict(blk.sparsity)
    blk.record = False
    by = block_bytes(dp, ctx, **kv)
    floor_us = (by["weights"] + by["kv"]) / read_gbps / 1e3
    common = dict(op="block_decode", impl=impl, precision=dp, M=1, N=d_model(), K=ctx, bytes=by["weights"] + by["kv"],
                  ops=0.0, cuda_graph=True, copies=R, sparsity=sp.get("down_in", 0.0), sparsity_o=sp.get("o_in", 0.0),
                  floor_us=floor_us, kv_bits=blk.kv_bits or 16)
    t = time_graph([lambda b=b: b.forward(xd, pos) for b in reps])
    variant = "torch_eager" if dp == "fp16" else "per_operator"
    # the per-operator path runs the quantizer's default TopK search: its row says which
    log.add(kernel=f"block_{label}", timing=t, exact=False, variant=variant, launches=0, plan=_search_plan(dp),
            **common)
    choice = DecodeChoice(datapath=dp, variant=variant, us=t.median)
    if dp == "fp16":
        if compile_fp16:
            choice = _compiled_fp16(log, reps, xd, pos, y_ref, common, choice)
        choice.prefill = lambda: blk.forward(xp, 0)
        return choice
    for plan in PLANS.get(label) or PLANS[dp]:
        name = _plan_name(plan, dp)
        try:
            y = blk.decode_fused(xd, pos, plan)
            rel = _rel(y, y_ref, xd)
            t = time_graph([lambda b=b: b.decode_fused(xd, pos, plan) for b in reps])
            log.add(kernel=f"block_{label}", timing=t, exact=False, variant=name, launches=blk.launches_fused(plan),
                    rel_err=rel, plan=str(asdict(plan)), **common)
            if rel < 5e-2 and t.median < choice.us:
                choice = DecodeChoice(datapath=dp, variant=name, us=t.median, plan=plan)
        except Exception as e:  # noqa: BLE001
            log.note(what="fused block failed", datapath=dp, plan=str(plan), error=repr(e)[-800:],
                     tb=traceback.format_exc()[-1500:])
    log.note(what="decode choice", datapath=label, variant=choice.variant, us=choice.us, floor_us=floor_us)
    choice.prefill = lambda: blk.forward(xp, 0)
    return choice


def _prefill_rows(log: MeasurementLog, blk: KernelBlock, label: str, xp: torch.Tensor) -> None:
    """Block prefill rows: fp16 once; a ternary datapath by both GEMM routes (``KernelBlock.prefill_route``), the
    two outputs compared bit for bit (each route is exact against model.quant, so they must agree)."""
    dp = blk.dp
    impl = "baseline" if dp == "fp16" else "ours"
    routes = ("auto",) if dp == "fp16" else ("two_pass", "fused")
    outs, sparsity = {}, {}
    for route in routes:
        blk.prefill_route = route
        blk.record = True
        outs[route] = blk.forward(xp, 0)                    # records the activation sparsity
        sparsity[route] = dict(blk.sparsity)
    exact = len(outs) > 1 and all(torch.equal(o, outs[routes[0]]) for o in outs.values())
    blk.record = False
    for route in routes:
        blk.prefill_route = route
        sp_pre = sparsity[route]
        t = time_us(lambda: blk.forward(xp, 0), rep_ms=150)
        log.add(op="block_prefill", kernel=f"block_{label}", impl=impl, precision=dp, M=xp.shape[1], N=d_model(),
                K=xp.shape[1], timing=t, bytes=0.0, ops=0.0, exact=exact, sparsity=sp_pre.get("down_in", 0.0),
                sparsity_o=sp_pre.get("o_in", 0.0), kv_bits=blk.kv_bits or 16,
                variant="" if dp == "fp16" else route, plan=_search_plan(dp))
    blk.prefill_route = "auto"


def _search_plan(datapath: str) -> str:
    """The ``plan`` of a row run by ``KernelBlock.forward``: a4.8's TopK search (the quantizer's default)."""
    return str(dict(topk_search=DEFAULT_TOPK_SEARCH)) if datapath == "a4.8" else ""


def d_model() -> int:
    return LLAMA7B.d_model


def _compiled_fp16(log, reps, xd, pos, y_ref, common, choice) -> DecodeChoice:
    """fp16 decode step through ``torch.compile`` (inductor), replayed in a CUDA graph."""
    dims = LLAMA7B
    try:
        t0 = time.time()
        step = torch.compile(fp16_decode_step, dynamic=False)

        def call(b):
            return step(xd, pos, b.w16, b.norm, b.cache.k, b.cache.v, b.cos, b.sin, dims.n_heads, dims.head_dim,
                        dims.d_ffn)

        y = call(reps[0])
        torch.cuda.synchronize()
        log.note(what="torch.compile fp16 decode", compile_s=round(time.time() - t0, 1))
        rel = _rel(y, y_ref, xd)
        t = time_graph([lambda b=b: call(b) for b in reps])
        log.add(kernel="block_fp16", timing=t, exact=False, variant="torch_compile", launches=0, rel_err=rel, **common)
        if t.median < choice.us:
            return DecodeChoice(datapath="fp16", variant="torch_compile", us=t.median, compiled=step)
    except Exception as e:  # noqa: BLE001 - the eager baseline stands
        log.note(what="torch.compile fp16 failed", error=repr(e)[-800:], tb=traceback.format_exc()[-1500:])
    return choice


def _chains(log: MeasurementLog, ctx: int, R: int = 4) -> None:
    """``floor_read`` chains with the fused step's launch structure: the floor of that many launches."""
    dims = LLAMA7B
    d, F_, H, hd = dims.d_model, dims.d_ffn, dims.n_heads, dims.head_dim
    kv3 = 2 * H * ctx * (hd // 2 + 4)
    kv16 = 2 * H * ctx * hd * 2
    row, frow = 2 * d, 2 * 2 * F_                          # the fp16 activation row a quantizer reads
    sizes = {   # the "separate" plans: quantizer, GEMV, attention, ... one floor_read per launch
        "b1.58": (row, 3 * d * d // 4, kv16, row, d * d // 4, row, 2 * F_ * d // 4, frow, d * F_ // 4),
        "a4.8": (row, 3 * d * d // 4, kv3, row, d * d // 4, row, 2 * F_ * d // 4, frow, d * F_ // 4),
    }
    for dp, sz in sizes.items():
        bufs = [[torch.empty(max(16, s // 4), device="cuda", dtype=torch.int32).random_() for s in sz]
                for _ in range(R)]
        outs = [torch.empty((b.numel() + 8191) // 8192, device="cuda", dtype=torch.int32) for b in bufs[0]]
        for pdl in (False, True):
            t = time_graph([lambda b=b, j=j: floor_read(b, outs[j], pdl=pdl) for bb in bufs for j, b in enumerate(bb)])
            t = t.scaled(1.0 / len(sz))          # per step (len(sz) launches), not per launch
            log.add(op="block_decode", kernel="floor_chain", impl="ours", precision=dp, M=1, N=d, K=ctx,
                    timing=t, bytes=float(sum(sz)), ops=0.0, exact=True, cuda_graph=True, copies=R,
                    launches=len(sz), variant="floor_chain" + ("_pdl" if pdl else ""),
                    note="one floor_read per launch of the separate-prologue step, same bytes")
        del bufs


def _token_step(layers: list[KernelBlock], choice: DecodeChoice, head: torch.Tensor, nw: torch.Tensor,
                x: torch.Tensor, pos: int) -> Callable[[], torch.Tensor]:
    dims = LLAMA7B
    fused = choice.plan is not None and x.shape[0] == 1

    def one_layer(b: KernelBlock, h: torch.Tensor) -> torch.Tensor:
        if fused:
            return b.decode_fused(h, pos, choice.plan)
        if choice.compiled is not None and x.shape[0] == 1:
            return choice.compiled(h, pos, b.w16, b.norm, b.cache.k, b.cache.v, b.cos, b.sin, dims.n_heads,
                                   dims.head_dim, dims.d_ffn)
        return b.forward(h, pos)

    def token() -> torch.Tensor:
        h = x
        for b in layers:
            h = one_layer(b, h)
        return _rmsnorm16(h.reshape(h.shape[0], -1), nw) @ head.t()

    return token


def _token_case(log: MeasurementLog, label: str, choice: DecodeChoice, B: int, ctx: int,
                head: torch.Tensor, nw: torch.Tensor, read_gbps: float) -> tuple[Callable, object]:
    """One whole 7B decode token of ``B`` sequences at context ``ctx``, one CUDA graph; logs the row."""
    dp, kv = _label_parts(label)
    d = LLAMA7B.d_model
    g = torch.Generator(device="cuda").manual_seed(5 + B)
    x = torch.randn(B, 1, d, device="cuda", dtype=torch.float16, generator=g)
    first = KernelBlock(dp, B, ctx, tuned=log.tuned, **kv)
    layers = [first] + [first.replica() for _ in range(1, LAYERS)]
    for b in layers:
        b.record = False
        b.fill_cache(ctx - 1)
    token = _token_step(layers, choice, head, nw, x, ctx - 1)
    graph = capture_graph([token])
    t = time_us(graph.replay, rep_ms=200)
    by = block_bytes(dp, ctx, B=B, **kv)
    nbytes = LAYERS * (by["weights"] + by["kv"]) + 2.0 * VOCAB * d
    fused = choice.plan is not None and B == 1
    variant = choice.variant if (fused or (B == 1 and choice.compiled is not None)) else (
        "torch_eager" if dp in ("fp16", "w8a8-fp8", "w4a16") else "per_operator")
    log.add(op="token_decode", kernel=f"7b_{label}", impl="ours" if dp in ("b1.58", "a4.8") else "baseline",
            precision=dp, M=B, N=d, K=ctx, timing=t, bytes=nbytes, ops=0.0, exact=False, cuda_graph=True,
            variant=variant, tokens_per_s=B * 1e6 / t.median, layers=LAYERS, kv_bits=first.kv_bits or 16,
            floor_us=nbytes / read_gbps / 1e3, plan=str(asdict(choice.plan)) if fused else "")
    return graph.replay, (graph, layers)


def choices_from_rows(rows: list[dict], ctx: int) -> dict[str, DecodeChoice]:
    """The fastest decode step per datapath label as an earlier run measured it (``block_<label>`` rows at
    context ``ctx``), for a resumed run; fp16 falls back to eager (a compiled step is not kept)."""
    best: dict[str, DecodeChoice] = {}
    for r in rows:
        if r.get("op") != "block_decode" or r.get("K") != ctx or not str(r.get("kernel", "")).startswith("block_"):
            continue
        label = r["kernel"][len("block_"):]
        plan_text = str(r.get("plan") or "")
        if label == "fp16" and r.get("variant") == "torch_compile":
            continue
        if label in best and best[label].us <= r["us"]:
            continue
        plan = DecodePlan(**ast.literal_eval(plan_text)) if plan_text else None
        best[label] = DecodeChoice(datapath=label, variant=str(r.get("variant", "")), us=float(r["us"]), plan=plan)
    return best


#: label suffixes that name a KV cache format, as KernelBlock arguments
KV_SUFFIXES = {"-kv4": dict(kv_bits=4), "-dense3": dict(kv_bits=3, kv_layout="dense3")}


def _label_parts(label: str) -> tuple[str, dict]:
    """A datapath label and its cache: 'b1.58-kv4' -> ('b1.58', {kv_bits: 4}); 'a4.8-dense3' -> ('a4.8',
    {kv_bits: 3, kv_layout: 'dense3'}); 'a4.8' -> ('a4.8', {})."""
    for suffix, kv in KV_SUFFIXES.items():
        if label.endswith(suffix):
            return label[: -len(suffix)], dict(kv)
    return label, {}


def _head(d: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator(device="cuda").manual_seed(5)
    head = (torch.randn(VOCAB, d, device="cuda", generator=g) * d ** -0.5).to(torch.float16)
    return head, torch.ones(d, device="cuda", dtype=torch.float16)


def token_section(log: MeasurementLog, best: dict[str, DecodeChoice], ctx: int = 2048, read_gbps: float = 4490.0
                  ) -> dict[str, tuple[Callable, object]]:
    """Whole 7B decode tokens (32 blocks + norm + FP16 LM head) per datapath at B = 1, one CUDA graph
    each, with each datapath's fastest decode step.  Returns each one's graph replay, with the objects
    that keep its buffers alive (for the energy runs)."""
    replays: dict[str, tuple[Callable, object]] = {}
    head, nw = _head(LLAMA7B.d_model)
    for label, choice in best.items():
        try:
            replays[label] = _token_case(log, label, choice, 1, ctx, head, nw, read_gbps)
        except Exception as e:  # noqa: BLE001
            log.note(what=f"7b token {label} failed", error=repr(e)[-800:], tb=traceback.format_exc()[-1500:])
        torch.cuda.empty_cache()
    return replays


#: whole-token datapaths of the serving regime (torch baselines eager in a graph; ours per operator)
BATCH_LABELS = ("fp16", "w8a8-fp8", "w4a16", "b1.58", "b1.58-kv4", "a4.8")


def batch_token_section(log: MeasurementLog, best: dict[str, DecodeChoice], ctx: int = 2048,
                        batches: tuple[int, ...] = (8, 32, 64), long_ctx: int = 32768,
                        energy_at: tuple[int, ...] = (32,), meter=None, idle_w: float = 0.0,
                        read_gbps: float = 4490.0) -> None:
    """Whole 7B decode tokens at batch ``B`` (the serving regime) for every datapath, and at B = 1 with
    a ``long_ctx`` context for the ternary ones; board energy at the ``energy_at`` batches."""
    head, nw = _head(LLAMA7B.d_model)
    cases = [(label, B, ctx) for B in batches for label in BATCH_LABELS]
    cases += [(label, 1, long_ctx) for label in ("b1.58", "b1.58-kv4", "a4.8", "a4.8-dense3")]
    for label, B, c in cases:
        dp, _ = _label_parts(label)
        choice = best.get(label) or best.get(dp) or DecodeChoice(datapath=dp, variant="", us=0.0)
        try:
            replay, keep = _token_case(log, label, choice, B, c, head, nw, read_gbps)
            if meter is not None and B in energy_at and c == ctx:
                energy.sustained(log, meter, datapath=label, phase="decode", scope=f"7b_token_b{B}", step=replay,
                                 tokens_per_step=B, idle_w=idle_w, layers_per_step=LAYERS,
                                 note=f"32 blocks + norm + FP16 LM head, B={B}, ctx {c}, CUDA graph")
            del replay, keep
        except Exception as e:  # noqa: BLE001
            log.note(what=f"7b token {label} B={B} ctx={c} failed", error=repr(e)[-800:],
                     tb=traceback.format_exc()[-1500:])
        torch.cuda.empty_cache()
