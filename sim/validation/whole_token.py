"""Whole-token validation: every measured decoder block and 7B decode token replayed on the H200 presets.

The measured rows (``op`` = ``block_decode``, ``block_prefill``, ``token_decode`` of a ``measured_trace``
table) time a whole LLaMA-7B decoder block (or 32 of them + the final norm and the FP16 LM head) as the
GPU ran it: a sequence of kernel launches in a CUDA graph.  :func:`block_ops` writes that sequence as
op-trace rows, one group per launch (``fused`` rows run inside the launch of the row before), from the
row's datapath, context and decode plan; :func:`prefill_ops` writes the eager prefill program kernel by
kernel, torch's own casts, copies and elementwise kernels included; nothing here is fitted to these rows.
The baseline (fp16, torch) rows run on ``h200-like``, ours on ``h200-triton``; launches with programmatic
dependent launch (``pdl`` in the plan) pay the measured PDL launch cost (:func:`sim.validation.floors.fixed_costs`).

:func:`whole_token_table` returns one row per measured row (table ``sim_whole_token``) plus the
measured and simulated a4.8 / fp16 and a4.8 / b1.58 token ratios.
"""
from __future__ import annotations

import ast
import copy

import pandas as pd

from contract import validate
from contract.sim import SIM_WHOLE_TOKEN

from ..config import PRESET_DIR, PRESETS, AcceleratorConfig, from_dict, load_yaml
from ..simulate import simulate
from .eager import with_launches
from .floors import fixed_costs, has_floors
from .gpus import GPU_PRESETS, gpu_presets
from .published import overlapped_call_us
from .replay import _op_row, _vector_row, elementwise_row, list_row, topk_row, two_pass_rows, without_fill

#: LLaMA-7B block of the measured kernels (kernels/block.py ``LLAMA7B``): FFN width, heads, head size.
D_FFN, HEADS, HEAD_DIM = 11008, 32, 128
#: The whole-token row: 32 blocks + final RMSNorm + FP16 LM head over a 32000-word vocabulary.
LAYERS, VOCAB = 32, 32000
WHOLE_OPS = ("block_decode", "block_prefill", "token_decode")
#: Columns of ``sim_whole_token``.
COLUMNS = [c.name for c in SIM_WHOLE_TOKEN]
#: What the replay leaves out, per kind of row (the ``mechanism`` column), with the measured rows that show it.
#: a4.8's Wo / Wdown GEMVs that read only the weight rows of non-zero codes (kernels/block.py ``DecodePlan``): from
#: the quantizer's index list ("sparse", its writing replayed as the quantizer's ``nzlist`` op) or chosen from the codes
#: by the GEMV itself ("masked"); both replay as the skipping GEMV (``row_skip``)
SKIPPING_GEMVS = ("sparse", "masked")

MISSING = {
    "fp16": "torch.compile's fusion is replayed as one launch per op group (cuBLAS's GEMV ramp is derived from "
            "the 4096x4096 GEMV row alone)",
    "b1.58": "the GLU quantizer's spilled-row rate is derived at M = 1 from the GLU kernel, and the measured SiLU "
             "variant is 12 % cheaper; the FP16-KV attention step replays 5.7 % short at ctx 2048 with the "
             "combine tail (ours_step_fp16 14.9 us measured, 14.0 us simulated)",
    "a4.8": "as b1.58; the KV3 attention step replays 3.9 % short at ctx 2048 (ours_step_kv3 11.2 us measured) "
            "with the decode rate fitted on the H200's ours_kv3 row and the combine tail",
    "torch_eager": "replayed with the torch-eager launch table (sim.validation.eager, read off fp16_decode_step: 40 "
                   "launches, 9 per fp32 RMSNorm and 10 for RoPE among them)",
    "per_operator": "replayed with the per-operator launch table (sim.validation.eager, read off KernelBlock.forward: "
                    "26 launches for b1.58, 28 with its 4-bit cache, 26 for a4.8 with its listed sparse Wo and Wdown); "
                    "the 4-bit-cache block replays 13.5 % long on the H100: measured 8 us faster than the FP16-KV "
                    "block, replayed 1 us slower: its two extra launches (k / v copies, the cache write and the query "
                    "copy in place of two slice writes), each priced at the chained-launch cost, cancel its smaller "
                    "cache read)",
    "fused": "fused-prologue GEMVs re-quantize the activations inside every program; the replay runs the quantizer "
             "once. Measured on the H100 (measured_h100_kernels5, kernels8): the b1.58 block is 78 us slower fused "
             "than separate (144.4 against 66.0 us); the standalone fused GEMVs without a GLU "
             "(ours_fused_norm_int8_gemv) cost 5.1 (QKV), 5.9 (Wo), 9.7 (gate/up) and 18.1 us (down) over the "
             "plain GEMV, 19 us net of the four quantizer launches they replace, so about 59 us sit in the down GEMV "
             "whose 512 programs each recompute the SiLU GLU, RMSNorm and quantizer of the 2 x 11008-wide row, "
             "which no kernel row times alone",
    "prefill": "SDPA's flash prefill replayed as systolic GEMMs; a4.8's QKV and gate/up as the FP8 tensor-core "
               "GEMM, with its fp32 promotion every 512 K where the preset carries it (h200-triton: cost fitted "
               "on H100 rows; h100-triton: not, its FP8 kernel did not promote); a two-pass row as that route's "
               "launches; an eager launch waits on the host only where its issue outlasts the launch before it",
}


#: Decode-block variants run eagerly, one kernel per torch operation (kernels/block.py ``fp16_decode_step`` and
#: ``KernelBlock.forward``): replayed with the launch tables of :mod:`.eager`, read off that code
EAGER_BLOCKS = ("torch_eager", "per_operator")


def _gemv(name: str, N: int, K: int, M: int, act: str = "int8", fmt: str = "ternary", skip: float = 0.0) -> dict:
    wbits = 2.0 if fmt == "ternary" else 16.0
    r = _op_row(op=name, op_class="gemm", M=M, N=N, K=K, count=1, weight_format=fmt, weight_bits=wbits,
                act_format=act, act_bits={"fp16": 16, "int4": 4}.get(act, 8), out_bits=16, sparsity=skip)
    r["row_skip"] = skip if M == 1 else 0.0
    return r


def _vector(name: str, width: int, M: int, gains: bool = False) -> dict:
    return _vector_row(name, M, width, gains=gains, glu=name == "glu")


#: KV-cache formats by bits (a measured row's ``kv_bits``: the b1.58 block with its 4-bit cache)
_KV_FORMATS = {3: "kv-int3", 4: "kv-int4", 16: "kv-fp16"}


def _attention(M: int, ctx: int, kv_bits: int) -> list[dict]:
    """The decode (or prefill) attention ops over a cache of ``kv_bits`` (:func:`_kv_bits` at decode)."""
    if kv_bits not in _KV_FORMATS:
        raise ValueError(f"kv_bits must be one of {sorted(_KV_FORMATS)}, got {kv_bits!r}")
    kv_fmt = _KV_FORMATS[kv_bits]
    kv_half = HEADS * ctx * HEAD_DIM * kv_bits / 8
    att = dict(op_class="attention", count=HEADS, weight_format=kv_fmt, weight_bits=kv_bits, act_format="fp16",
               act_bits=16, out_bits=16, sparsity=0.0, kv_read=kv_half)
    rows = [_op_row(op="attn_qk", M=M, N=ctx, K=HEAD_DIM, **att), _vector("softmax", ctx * HEADS, M),
            _op_row(op="attn_pv", M=M, N=HEAD_DIM, K=ctx, **att)]
    if M > 1:   # causal prefill: the MAC count of the masked square (sim.engine.plan._causal_keys)
        pairs = M * (ctx - M) + M * (M + 1) // 2
        for r in (rows[0], rows[2]):
            r.update(macs_dense=HEADS * HEAD_DIM * pairs, macs_effective=HEADS * HEAD_DIM * pairs)
    return rows


def _eager_rmsnorm(name: str, M: int, d: int) -> list[dict]:
    """``kernels.block._rmsnorm16`` in eager torch: fp32 upcast, square, mean, eps and rsqrt of the row
    statistic, scale, fp32 gains, gain product, fp16 downcast; one launch each."""
    steps = (("float", M, d, 2, 4), ("pow", M, d, 4, 4), ("mean", M, d, 4, 0), ("eps", M, 1, 4, 4),
             ("rsqrt", M, 1, 4, 4), ("scale", M, d, 4, 4), ("gains", 1, d, 2, 4), ("mul", M, d, 4, 4),
             ("half", M, d, 4, 2))        # (kernel, rows, width, bytes read, bytes written per element)
    return [elementwise_row(f"{name}_{k}", rows, width, r, w) for k, rows, width, r, w in steps]


def _eager_rope(name: str, M: int, d: int) -> list[dict]:
    """``kernels.block._apply_rope`` on one fp16 [heads, tokens, head_dim] tensor: negate the upper half,
    concatenate, the cos and sin products and their sum; one launch each."""
    steps = (("neg", d // 2, 2, 2), ("cat", d, 2, 2), ("cos", d, 2, 2), ("sin", d, 2, 2), ("sum", d, 4, 2))
    return [elementwise_row(f"{name}_{k}", M, width, r, w) for k, width, r, w in steps]


#: How the replay runs a ternary prefill GEMM (kernels/block.py ``PREFILL_ROUTES``, without "auto")
PREFILL_ROUTES = ("fused", "two_pass")


def prefill_ops(datapath: str, M: int, d: int = 4096, route: str = "fused", topk_search: str = "bitwise") -> list[dict]:
    """Op rows of one decoder block's prefill of ``M`` tokens at position 0 as ``KernelBlock.forward`` runs it
    eagerly (kernels/block.py), one launch per row unless ``fused``: the datapath's GEMMs and fused quantizers,
    and torch's own kernels between them, each with the bytes its dtypes move (the fp16 block's fp32 RMSNorm,
    RoPE by negate / cat / mul / add, the FP16 cache writes, the attention output's transpose copy, the SiLU
    product, the residual adds).  SDPA's flash prefill runs as the attention ops of one launch.  ``route``: a
    ternary GEMM as our fused kernel or by the two-pass route (:func:`.replay.two_pass_rows`); ``topk_search``:
    a4.8's TopK threshold search (:func:`.replay.topk_row`)."""
    if route not in PREFILL_ROUTES:
        raise ValueError(f"route must be one of {PREFILL_ROUTES}, got {route!r}")
    F = D_FFN
    ternary = datapath != "fp16"
    act, fmt = ("int8", "ternary") if ternary else ("fp16", "fp16")
    # a4.8's INT4 codes into QKV and gate/up reach the FP8 tensor-core GEMM (kernels/block.py, T > 4): the replay
    # maps int4 activations to the fp8 pair, as it does the measured w1.58a4-fp8 GEMM rows
    act_in = "int4" if datapath == "a4.8" else act

    def linear(name: str, N: int, K: int, norm: str, width: int, a: str, topk: tuple = ()) -> list[dict]:
        if not ternary:
            return [_gemv(name, N, K, M, "fp16", "fp16")]
        quant = [_vector(norm, width, M, gains=True), *[topk_row(M, width, topk_search, op=t) for t in topk],
                 _vector(f"quant_{name}", width, M)]
        return [dict(r, fused=j > 0) for j, r in enumerate(quant)] + gemm(name, N, K, a)

    def gemm(name: str, N: int, K: int, a: str) -> list[dict]:
        return two_pass_rows(name, M, N, K, a) if route == "two_pass" else [_gemv(name, N, K, M, a, fmt)]

    rows: list[dict] = []
    rows += _eager_rmsnorm("rmsnorm_attn", M, d) if not ternary else []
    rows += linear("qkv_proj", 3 * d, d, "rmsnorm_attn", d, act_in)
    rows += _eager_rope("rope_q", M, d) + _eager_rope("rope_k", M, d)
    if datapath == "a4.8":      # kv_write of the 3-bit cache (ours): k is contiguous, v a strided view copied first
        rows += [elementwise_row("v_contiguous", M, d, 2, 2), _vector("kv_quant", 2 * d, M)]
    else:                       # the FP16 cache: two slice copies
        rows += [elementwise_row("k_cache", M, d, 2, 2), elementwise_row("v_cache", M, d, 2, 2)]
    rows += [dict(r, fused=j > 0) for j, r in enumerate(_attention(M, M, 16))]   # SDPA on the fp16 k, v
    rows += [elementwise_row("attn_transpose", M, d, 2, 2)]
    rows += linear("o_proj", d, d, "rmsnorm_attn_sub", d, act, ("topk_o",) if datapath == "a4.8" else ())
    rows += [elementwise_row("residual_attn", M, d, 4, 2)]
    rows += _eager_rmsnorm("rmsnorm_ffn", M, d) if not ternary else []
    rows += linear("gate_up_proj", 2 * F, d, "rmsnorm_ffn", d, act_in)
    if datapath == "a4.8":      # ReLU^2 GLU inside the down quantizer (rmsnorm_quant with gate)
        down = [_vector("glu", F, M), _vector("rmsnorm_ffn_sub", F, M, gains=True), _vector("quant_down", F, M)]
        rows += [dict(r, fused=j > 0) for j, r in enumerate(down)] + gemm("down_proj", d, F, act)
    else:
        rows += [elementwise_row("silu", M, F, 2, 2), elementwise_row("silu_mul", M, F, 4, 2)]
        rows += linear("down_proj", d, F, "rmsnorm_ffn_sub", F, act)
    rows += [elementwise_row("residual_ffn", M, d, 4, 2)]
    return [dict(r, fused=bool(r.get("fused", False))) for r in rows]


def block_ops(datapath: str, plan: dict, M: int, ctx: int, d: int = 4096) -> list[dict]:
    """Op rows of one decoder block as the measured kernels run it, each with ``fused`` (runs inside the
    previous row's launch).  ``plan``: the measured decode plan (prologue separate/fused, wo / wdown
    dense/sparse); empty for fp16 and the per-operator path (one launch per op group)."""
    F = D_FFN
    ternary = datapath != "fp16"
    act_in = "fp16" if not ternary else "int8"
    fmt = "ternary" if ternary else "fp16"
    sparse_o = datapath == "a4.8" and plan.get("wo") in SKIPPING_GEMVS          # only a4.8's Wo / Wdown inputs
    sparse_down = datapath == "a4.8" and plan.get("wdown") in SKIPPING_GEMVS    # are sparse (TopK, ReLU^2 GLU)
    listed_o = sparse_o and plan.get("wo") == "sparse"         # the quantizer writes the GEMV's index list
    listed_down = sparse_down and plan.get("wdown") == "sparse"
    fused_prologue = plan.get("prologue") == "fused"
    kv_bits = _kv_bits(datapath, plan)
    groups: list[list[dict]] = [
        [_vector("rmsnorm_attn", d, M, gains=True)] + ([_vector("quant_qkv", d, M)] if ternary else []),
        [_gemv("qkv_proj", 3 * d, d, M, act_in, fmt)],
        ([_vector("rope", 2 * d, M)] + ([_vector("kv_quant", 2 * d, M)] if kv_bits < 16 else [])
         + _attention(M, ctx, kv_bits)),
        ([_vector("rmsnorm_attn_sub", d, M, gains=True)] if ternary else [])     # BitNet's sub-norms (fp16: none)
        + ([topk_row(M, d, plan.get("topk_search", "bitwise"), op="topk_o")] if datapath == "a4.8" else [])
        + ([_vector("quant_o", d, M)] if ternary else []) + ([list_row(M, d, "nzlist_o")] if listed_o else []),
        [_gemv("o_proj", d, d, M, act_in, fmt, skip=0.5 if sparse_o else 0.0), _vector("residual", d, M)],
        [_vector("rmsnorm_ffn", d, M, gains=True)] + ([_vector("quant_ffn", d, M)] if ternary else []),
        [_gemv("gate_up_proj", 2 * F, d, M, act_in, fmt)],
        [_vector("glu", F, M)] + ([_vector("rmsnorm_ffn_sub", F, M, gains=True)] if ternary else [])
        + ([_vector("quant_down", F, M)] if ternary else []) + ([list_row(M, F, "nzlist_down")] if listed_down else []),
        [_gemv("down_proj", d, F, M, act_in, fmt, skip=plan.get("down_skip", 0.0) if sparse_down else 0.0),
         _vector("residual", d, M)],
    ]
    if fused_prologue:   # each quantizer group runs inside the GEMV launch that follows it (kernels/block.py:
        # b1.58 all four; a4.8 keeps its TopK quantizer apart, and its Wdown quantizer when Wdown is sparse)
        fold = (0, 3, 5, 7) if datapath != "a4.8" else (0, 5) + (() if sparse_down else (7,))
        for k in fold:
            groups[k + 1] = groups[k] + groups[k + 1]
            groups[k] = []
    rows = []
    for g in groups:
        for j, r in enumerate(g):
            rows.append(dict(r, fused=j > 0))
    return rows


def token_ops(datapath: str, plan: dict, ctx: int, d: int = 4096) -> list[dict]:
    """Op rows of one whole decode token: ``LAYERS`` blocks, the final RMSNorm and the FP16 LM head."""
    rows = []
    for layer in range(LAYERS):
        rows += [dict(r, layer=layer) for r in block_ops(datapath, plan, 1, ctx, d)]
    head = [dict(_vector("rmsnorm_final", d, 1, gains=True), fused=False),
            dict(_gemv("lm_head", VOCAB, d, 1, "fp16", "fp16"), fused=False)]
    return rows + [dict(r, layer=-1) for r in head]


def _variant_part(parts: list[str], prefix: str) -> str:
    """The GEMV kind a decode variant's name gives after ``prefix`` (``wo-masked``: "masked"); dense if absent."""
    kinds = [p[len(prefix):] for p in parts if p.startswith(prefix)]
    if kinds and kinds[0] not in ("dense",) + SKIPPING_GEMVS:
        raise ValueError(f"decode variant part {prefix}{kinds[0]!r}: unknown GEMV kind; known: "
                         f"{['dense', *SKIPPING_GEMVS]}")
    return kinds[0] if kinds else "dense"


def _trace(rows: list[dict], phase: str) -> pd.DataFrame:
    t = pd.DataFrame(rows)
    t["phase"] = phase
    t.attrs = {"phase": phase}
    return t


def _kv_bits(datapath: str, plan: dict) -> int:
    """Bits of the decode block's KV cache: the measured row's, else a4.8's 3 and FP16 otherwise."""
    return int(plan.get("kv_bits") or (3 if datapath == "a4.8" else 16))


def _plan(row: pd.Series) -> dict:
    text = str(row.get("plan", "") or "")
    plan = ast.literal_eval(text) if text.startswith("{") else {}
    if not isinstance(plan, dict):
        raise ValueError(f"measured row {row.name}: plan {text!r} is not a mapping")
    plan["down_skip"] = float(row["sparsity"])
    kv = row.get("kv_bits")
    if kv is not None and pd.notna(kv) and int(kv) in _KV_FORMATS:
        plan["kv_bits"] = int(kv)
    if str(row["precision"]) == "a4.8" and plan.get("kv_bits") == 16:
        # a4.8's block never runs an FP16 cache (kernels/block.py: 3 bits unless told 4): a row saying 16 names
        # its label's bits, not the block's (the committed H100 token rows)
        plan["kv_bits"] = 3
    return plan


def _row_trace(row: pd.Series) -> tuple[pd.DataFrame, dict]:
    dp, op = str(row["precision"]), str(row["op"])
    plan = _plan(row)
    if op == "token_decode":
        variant = str(row["variant"])
        if variant.startswith(("separate", "fused")):
            parts = variant.split("_")
            plan.setdefault("prologue", parts[0])
            plan.setdefault("pdl", variant.endswith("_pdl"))
            if dp == "a4.8":
                plan.setdefault("wo", _variant_part(parts, "wo-"))
                plan.setdefault("wdown", _variant_part(parts, "down-"))
        return _trace(token_ops(dp, plan, int(row["K"]), int(row["N"])), "decode"), plan
    M = int(row["M"])
    variant = str(row.get("variant", "") or "")
    route = "two_pass" if variant == "two_pass" else "fused"     # older rows: fused
    if M == 1 and variant in EAGER_BLOCKS and dp == "a4.8":
        plan.update(wo="sparse", wdown="sparse")        # KernelBlock.forward at B = 1: listed sparse Wo and Wdown
    ops = (block_ops(dp, plan, 1, int(row["K"]), int(row["N"])) if M == 1
           else prefill_ops(dp, M, int(row["N"]), route=route, topk_search=plan.get("topk_search", "bitwise")))
    trace = _trace([dict(r, layer=0) for r in ops], "decode" if M == 1 else "prefill")
    if M == 1 and variant in EAGER_BLOCKS:
        trace = with_launches(trace, variant, dp, block=True)
    return trace, plan


def _mechanism(row: pd.Series) -> str:
    variant = str(row["variant"] or "")
    if str(row["op"]) == "block_prefill":
        return MISSING["prefill"]
    if variant in EAGER_BLOCKS:
        return MISSING[variant]
    if variant.startswith("fused"):
        return MISSING["fused"]
    return MISSING.get(str(row["precision"]), "")


def _presets(measured: pd.DataFrame, ideal: dict, kernels: dict) -> dict[tuple[str, bool], AcceleratorConfig]:
    """(impl, pdl) -> preset: h200-like for the baseline, h200-triton for ours; PDL launches cheaper."""
    saving = fixed_costs(measured).pdl_saving_ns if has_floors(measured) else 0.0
    out = {}
    for impl, raw in (("baseline", ideal), ("ours", kernels)):
        # a block's replay does not know its kernels' tiles: no fill bandwidth, as for every untiled kernel row
        cfg = without_fill(from_dict(copy.deepcopy(raw), where=raw["name"]))
        out[(impl, False)] = cfg
        out[(impl, True)] = cfg.replace(op_overhead_ns=max(0.0, cfg.op_overhead_ns - saving))
    return out


def _gpu_pair(measured: pd.DataFrame) -> tuple[str, str]:
    """The (baselines, our kernels) presets of the one GPU the whole-token rows were measured on."""
    gpus = sorted({str(g) for g in measured.loc[measured["op"].isin(WHOLE_OPS), "gpu"].dropna()})
    if len(gpus) != 1:
        raise ValueError(f"whole-token rows of one GPU at a time (their presets differ), got {gpus or 'none'}")
    pair = gpu_presets(gpus[0])
    if pair is None:
        raise ValueError(f"no simulator presets describe {gpus[0]!r} (known: {sorted(GPU_PRESETS)})")
    return pair


def whole_token_table(measured: pd.DataFrame, ideal: "dict | None" = None,
                      kernels: "dict | None" = None) -> pd.DataFrame:
    """Simulated vs measured time of every whole-token and block row (``sim_whole_token``), then the
    token ratios a4.8 / fp16 and a4.8 / b1.58 (tokens per second, measured and simulated).

    ``ideal`` / ``kernels``: the YAML dicts of the baselines' and our kernels' presets (default: the committed
    presets of the rows' GPU, :func:`.gpus.gpu_presets`: h200-like / h200-triton for the H200).  Floor chains
    (kernel ``floor_chain``) are the fixed-cost calibration rows, not replayed here, nor tokens of a batch > 1.
    """
    validate(measured, "measured_trace")
    pair = _gpu_pair(measured)              # one GPU per table, with presets, whoever supplies them
    if ideal is None or kernels is None:
        ideal = ideal if ideal is not None else load_yaml(PRESET_DIR / PRESETS[pair[0]])
        kernels = kernels if kernels is not None else load_yaml(PRESET_DIR / PRESETS[pair[1]])
    presets = _presets(measured, ideal, kernels)
    # a token row of a batch > 1 is left out: the replay builds batch-1 tokens (token_ops)
    sel = (measured["op"].isin(WHOLE_OPS) & (measured["kernel"] != "floor_chain")
           & ~((measured["op"] == "token_decode") & (measured["M"] > 1)))
    out = []
    for idx, row in measured[sel].iterrows():
        trace, plan = _row_trace(row)
        impl = "baseline" if str(row["impl"]) == "baseline" else "ours"
        cfg = presets[(impl, bool(plan.get("pdl", False)))]
        res = simulate(trace, cfg)
        sim_us = res.summary.latency_s * 1e6 + (0.0 if bool(row["cuda_graph"]) else
                                                 host_gaps_us(res.ops["cycles"], trace["fused"], cfg))
        out.append(dict(row=f"{row['op']} {row['precision']} {row['variant'] or ''}".strip(), op=row["op"],
                        kernel=row["kernel"], datapath=row["precision"], variant=str(row["variant"] or ""),
                        M=int(row["M"]), K=int(row["K"]), launches=_launch_count(trace),
                        unit="us", measured=float(row["us"]), simulated=sim_us,
                        rel_error=(sim_us - float(row["us"])) / float(row["us"]), preset=cfg.name,
                        mechanism=_mechanism(row), gpu=str(row["gpu"])))
    rows = pd.DataFrame(out, columns=COLUMNS)
    return pd.concat([rows, ratio_rows(rows)], ignore_index=True)


def _launch_count(trace: pd.DataFrame) -> int:
    """Kernel launches one replayed row stands for: its ``launches`` column where the program's launch table set
    it, else one per launch group (rows not ``fused``)."""
    if "launches" in trace.columns:
        return int(trace["launches"].sum())
    return int((~trace["fused"]).sum())


def host_gaps_us(op_cycles: "pd.Series", fused: "pd.Series", cfg: AcceleratorConfig) -> float:
    """µs the device waits on the host in an eager launch sequence (no CUDA graph): the host issues launch i + 1
    while the device runs launch i, so the device idles only where a launch's issue (``host_launch_ns``)
    outlasts the launch before it: the sum over launches of max(0, host - that launch's device time), the
    overlap rule of :func:`sim.validation.published.overlapped_call_us` less the device time itself."""
    launch = (~fused.astype(bool).to_numpy()).cumsum()
    device_us = pd.Series(op_cycles.to_numpy(float) / cfg.clock_ghz / 1e3).groupby(launch).sum().to_numpy()
    return float((overlapped_call_us(cfg.host_launch_ns / 1e3, device_us) - device_us).sum())


#: Kernel-name prefix of a measured whole-token row (kernels/bench/block.py: ``7b_<label>``)
TOKEN_PREFIX = "7b_"


def token_label(kernel: str) -> str:
    """The datapath label of a token row's kernel (``7b_b1.58-kv4``: b1.58 with its 4-bit KV cache)."""
    return str(kernel).removeprefix(TOKEN_PREFIX)


#: Token ratios reported (numerator, denominator), by the token rows' labels (:func:`token_label`)
RATIOS = (("a4.8", "fp16"), ("a4.8", "b1.58"), ("a4.8", "b1.58-kv4"))


def ratio_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Token-throughput ratios of :data:`RATIOS` at each context with both token rows, measured and simulated
    (the first row of a label where a table repeats it)."""
    tok = rows[rows["op"] == "token_decode"]
    gpu = str(tok["gpu"].iloc[0]) if len(tok) else ""    # one GPU per table (:func:`whole_token_table`)
    out = []
    for ctx, at in tok.groupby("K", sort=True):
        first = at.assign(label=at["kernel"].map(token_label)).drop_duplicates("label")
        by = first.set_index("label")
        for num, den in RATIOS:
            if num not in by.index or den not in by.index:
                continue
            meas = float(by.loc[den, "measured"]) / float(by.loc[num, "measured"])
            sim = float(by.loc[den, "simulated"]) / float(by.loc[num, "simulated"])
            out.append(dict(row=f"ratio {num}/{den} tokens/s" + (f" ctx {ctx}" if tok["K"].nunique() > 1 else ""),
                            op="ratio", kernel="", datapath=f"{num}/{den}", variant="", M=1, K=int(ctx), launches=0,
                            unit="ratio", measured=meas, simulated=sim, rel_error=(sim - meas) / meas, preset="",
                            mechanism="", gpu=gpu))
    return pd.DataFrame(out, columns=COLUMNS)
