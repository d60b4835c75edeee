"""Kernel launches of the measured batched decode programs, per op of a model op trace.

A measured 7B decode token at batch B > 1 (``token_decode`` rows of variant ``torch_eager`` or
``per_operator``, kernels/bench/block.py) runs each decoder block as separate kernels: the torch
baselines through ``kernels.block.fp16_decode_step`` (eager torch: a cast, a power, a mean ... per
RMSNorm; the W8A8-FP8 and W4A16 linears add their activation quantize and cast kernels), ours through
``KernelBlock.forward`` (one Triton RMSNorm + quantizer launch per linear, one ternary GEMM launch per
fused matrix, torch for RoPE, the KV-cache writes, the GLU and the residual adds).  The model trace
has one row per operation, so :func:`with_launches` writes how many kernel launches each row stands for
(the trace column ``launches``, :mod:`sim.engine.plan`): 0 where the row runs inside another row's
launch (the K and V parts of the fused QKV matrix, a quantizer inside the RMSNorm program), n > 1 where
eager software launches n kernels for it.  Every count below is read off the code named beside it; none
is fitted.  Each extra launch costs the preset's chained launch (``op_overhead_ns`` + the memory latency,
from the measured floor chains: :mod:`sim.validation.floors`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

#: _rmsnorm16 in torch: x.float(), pow, mean, + eps, rsqrt, multiply, gains .float(), multiply, cast back.
TORCH_RMSNORM = 9
#: _apply_rope on q and k: negate the half, cat, x * cos, rot * sin, add -- five kernels each.
TORCH_ROPE = 10
#: Fp8Linear.quantize: x.float(), abs, amax, clamp_min, / FP8_MAX, x / s, cast to FP8.
FP8_QUANTIZE = 7

#: Launches per op of ``fp16_decode_step`` (variant ``torch_eager``), for every torch datapath.
TORCH_EAGER = {
    "embedding": 0,                       # the measured token starts from the hidden state
    "rmsnorm_attn": TORCH_RMSNORM, "rmsnorm_ffn": TORCH_RMSNORM, "rmsnorm_final": TORCH_RMSNORM,
    "rmsnorm_attn_sub": 0, "rmsnorm_ffn_sub": 0,     # the measured LLaMA block has no sub-norms
    "q_proj": 1, "k_proj": 0, "v_proj": 0,           # one fused QKV matrix
    "rope": TORCH_ROPE + 2,               # RoPE of q and k, then the two KV-cache slice writes
    "attn_qk": 1, "softmax": 0,           # scaled_dot_product_attention: one kernel
    "attn_pv": 1,                         # the output's transpose(1, 2).reshape copy
    "o_proj": 2, "down_proj": 2,          # the GEMM and the residual add
    "gate_proj": 1, "up_proj": 0,         # one fused gate/up matrix
    "glu": 2,                             # silu of the gate half, times the up half
    "lm_head": 1,
}
#: What a torch baseline linear adds per GEMM, by weight format: W8A8-FP8 the activation quantizer (run by
#: the trace's ``quant_*`` row before it) and the bf16 -> fp16 cast of its output; W4A16 (Int4Linear) the
#: fp16 -> bf16 cast of its input and the cast back.
TORCH_LINEAR_GLUE = {"fp8": 1, "int4": 2}

#: Launches per op of ``KernelBlock.forward`` at B > 1 (variant ``per_operator``), b1.58 and a4.8.
PER_OPERATOR = {
    **TORCH_EAGER,
    "rmsnorm_attn": 1, "rmsnorm_ffn": 1,             # rmsnorm_quant: one Triton program, norm + quantizer
    "rmsnorm_attn_sub": 1, "rmsnorm_ffn_sub": 1,     # the quantizers of Wo and Wdown (norm + quantizer)
    "quant_qkv": 0, "quant_o": 0, "quant_ffn": 0, "quant_down": 0, "topk_o": 0,   # inside those programs
    "kv_quant": 3,                        # k, v .contiguous() copies and the kv_write kernel
}
#: Quantized-KV attention (kernels/kv_attention.py decode_attention): q[:, :, 0].contiguous(), the split
#: kernel and the combine kernel; the output reshape is a view.  RoPE then writes no fp16 cache slices.
QUANT_KV_ATTENTION = {"rope": TORCH_ROPE, "attn_qk": 2, "softmax": 0, "attn_pv": 1}


#: Launches per op of one tensor-parallel shard's linear part (``ShardedLayer.step`` without its all-reduces,
#: variant ``shard_linear`` of kernels/bench/shard.py; its linears are ``kernels.baselines.Fp8Linear``): the four
#: GEMMs, each after its activation quantizer (:data:`FP8_QUANTIZE`) and followed by the cast of its bf16 output,
#: the two residual adds and the ReLU² GLU (relu, square, times the up half).  Ops it does not run are absent.
SHARD_LINEAR = {
    "quant_qkv": FP8_QUANTIZE, "quant_o": FP8_QUANTIZE, "quant_ffn": FP8_QUANTIZE, "quant_down": FP8_QUANTIZE,
    "q_proj": 2, "k_proj": 0, "v_proj": 0,           # one fused QKV matrix and its cast
    "o_proj": 3, "down_proj": 3,                     # the GEMM, its cast and the residual add
    "gate_proj": 2, "up_proj": 0,                    # one fused gate/up matrix and its cast
    "glu": 3,
}


def launch_counts(program: str, datapath: str, quantized_kv: bool) -> dict[str, int]:
    """Launches per trace op of one measured program (``torch_eager``, ``per_operator`` or ``shard_linear``)."""
    if program == "shard_linear":
        if datapath != "w8a8-fp8":
            raise ValueError(f"shard_linear launch table: W8A8-FP8 only, got {datapath!r}")
        return dict(SHARD_LINEAR)
    if program == "torch_eager":
        return {**TORCH_EAGER, **{f"quant_{k}": FP8_QUANTIZE for k in ("qkv", "o", "ffn", "down")}}
    if program == "per_operator":
        counts = {**PER_OPERATOR, **(QUANT_KV_ATTENTION if quantized_kv else {})}
        if datapath == "a4.8":      # the GLU runs inside the Wdown quantizer (rmsnorm_quant with gate=)
            counts["glu"] = 0
        return counts
    raise ValueError(f"measured program {program!r} has no launch table; known: ['torch_eager', 'per_operator', "
                     f"'shard_linear']")


#: Op names of a replayed decoder block (:func:`sim.validation.whole_token.block_ops`) that the model trace, and so
#: the tables above, name otherwise
BLOCK_OP_NAMES = {"qkv_proj": "q_proj", "gate_up_proj": "gate_proj"}
#: Ops of a replayed block that run inside another row's count: its residual adds (counted with ``o_proj`` and
#: ``down_proj``) and what a quantizer program writes beside its codes (TopK, the index list)
BLOCK_OPS_INSIDE = ("residual", "topk_o", "nzlist_o", "nzlist_down")


def with_launches(trace: pd.DataFrame, program: str, datapath: str, block: bool = False) -> pd.DataFrame:
    """``trace`` with the ``launches`` column of the measured ``program`` (see the module docstring); a
    ``ValueError`` names any op the tables do not cover.  ``block``: the trace is a replayed decoder block
    (:data:`BLOCK_OP_NAMES`, :data:`BLOCK_OPS_INSIDE`), and its ``fused`` column follows the counts."""
    quantized_kv = bool((trace["op_class"] == "attention").any()) and not (
        trace.loc[trace["op_class"] == "attention", "weight_format"] == "kv-fp16").all()
    counts = launch_counts(program, datapath, quantized_kv)
    if block:
        counts.update({mine: counts[theirs] for mine, theirs in BLOCK_OP_NAMES.items() if theirs in counts})
        counts.update(dict.fromkeys(BLOCK_OPS_INSIDE, 0))
    missing = sorted(set(trace["op"]) - set(counts))
    if missing:
        raise ValueError(f"{program} launch table: no count for trace op(s) {missing}")
    out = trace.copy()
    glue = out["weight_format"].map(TORCH_LINEAR_GLUE).fillna(0).astype(int) if program == "torch_eager" else 0
    out["launches"] = out["op"].map(counts).astype(int) + glue * (out["op_class"] == "gemm") * (
        out["op"].map(counts) > 0)
    if block:
        out["fused"] = out["launches"] == 0
    return out


def measured_kv_bits(precision: str, kv_bits: "float | None") -> int | None:
    """KV-cache bits the measured program ran for a token row (None: the datapath's own).  An a4.8 block always
    runs its 3-bit cache (``KernelBlock``: ``kv_bits`` None means 3 for a4.8) while the token rows record the
    datapath label's bits (16); every other row's ``kv_bits`` is what ran."""
    if precision == "a4.8":
        return 3
    return None if kv_bits is None or pd.isna(kv_bits) else int(kv_bits)


#: The torch W4A16 kernel rows the int4 unpack rate is derived from (the largest M measured: decode-bound).
INT4_KERNEL, INT4_M = "torch_int4_w4a16", 128


def int4_unpack_rate(measured: pd.DataFrame, copies: int, clock_ghz: float, launch_ns: float) -> float:
    """Elements per cycle per SM at which torch's W4A16 kernel (``torch._weight_int4pack_mm``) decodes its int4
    weights, decoding them again for every activation row: the median over the ``torch_int4_w4a16`` gemm rows at
    M = 128 of M N K / ((us - launch) x copies x clock).  ``launch_ns``: the preset's chained launch cost
    (op_overhead_ns + offchip.latency_ns).  ``ValueError`` when the table has no such row."""
    rows = measured[(measured["kernel"] == INT4_KERNEL) & (measured["op"] == "gemm") & (measured["M"] == INT4_M)]
    if rows.empty:
        raise ValueError(f"int4 unpack rate: no {INT4_KERNEL} gemm rows at M = {INT4_M} in the table")
    busy_s = (rows["us"].to_numpy(float) - launch_ns / 1e3) * 1e-6
    if (busy_s <= 0).any():
        raise ValueError(f"int4 unpack rate: a {INT4_KERNEL} row is not longer than the launch cost {launch_ns} ns")
    elements = (rows["M"] * rows["N"] * rows["K"]).to_numpy(float)
    return round(float(np.median(elements / (busy_s * copies * clock_ghz * 1e9))), 2)

