"""Synthetic op traces for the simulator tests (model/trace.py is not required here).

``decoder_trace`` writes, from shapes alone, the rows a LLaMA-style decoder
step produces in the ``op_trace`` schema, with the a4.8 paper's Table 2 (7B)
sparsity profile for the a4.8 datapath.  The tests at the bottom check the
builder itself (schema, hand-counted MACs and bytes).
"""
from __future__ import annotations

import pandas as pd
import pytest

from contract import validate

A48_7B_SPARSITY = {"qkv": 0.121, "o": 0.50, "up": 0.714, "gate": 0.120, "down": 0.842}  # [A48] Table 2


def gemm_row(op, M, N, K, *, layer=0, phase="decode", wfmt="fp16", wbits=16.0, afmt="fp16",
             abits=16, out_bits=16, sparsity=0.0, row_skip=None, count=1, op_class="gemm",
             kv_read=0.0, kv_write=0.0):
    row_skip = sparsity ** max(M, 1) if row_skip is None else row_skip
    macs = M * N * K * count
    wbytes = (kv_read if op_class == "attention" else N * K * wbits / 8 * count)
    return dict(layer=layer, op=op, op_class=op_class, phase=phase, M=M, N=N, K=K, count=count,
                weight_format=wfmt, weight_bits=float(wbits), act_format=afmt, act_bits=abits,
                out_bits=out_bits, sparsity=float(sparsity), row_skip=float(row_skip),
                macs_dense=macs, macs_effective=int(round(macs * (1 - sparsity))),
                weight_bytes=float(wbytes), act_bytes_in=float(M * K * abits / 8 * count),
                act_bytes_out=float(M * N * out_bits / 8 * count), kv_bytes_read=float(kv_read),
                kv_bytes_write=float(kv_write))


def vector_row(op, rows, elems, *, layer=0, phase="decode", in_bits=16, out_bits=16, kv_write=0.0,
               table_bytes=0.0):
    n = rows * elems
    return dict(layer=layer, op=op, op_class="vector", phase=phase, M=rows, N=elems, K=0, count=1,
                weight_format="none", weight_bits=0.0, act_format="fp16", act_bits=in_bits,
                out_bits=out_bits, sparsity=0.0, row_skip=0.0, macs_dense=n, macs_effective=n,
                weight_bytes=float(table_bytes), act_bytes_in=float(n * in_bits / 8),
                act_bytes_out=float(n * out_bits / 8), kv_bytes_read=0.0, kv_bytes_write=float(kv_write))


def decoder_trace(datapath="b1.58", layers=2, hidden=4096, ffn=11008, heads=32, vocab=32000,
                  phase="decode", context=2048, batch=1, tokens=2048, head=True) -> pd.DataFrame:
    """One forward step of a LLaMA-shaped decoder as an op trace."""
    if datapath not in ("fp16", "b1.58", "a4.8"):
        raise ValueError(datapath)
    h, f, hd = hidden, ffn, hidden // heads
    new = batch if phase == "decode" else batch * tokens
    q_rows = 1 if phase == "decode" else tokens
    keys = context if phase == "decode" else tokens
    tern = datapath != "fp16"
    wfmt, wbits = ("ternary", 2.0) if tern else ("fp16", 16.0)
    kvfmt, kvbits = ("kv-int3", 3) if datapath == "a4.8" else ("kv-fp16", 16)
    sp = A48_7B_SPARSITY if datapath == "a4.8" else dict.fromkeys(A48_7B_SPARSITY, 0.0)
    if datapath == "fp16":
        a_in, a_o, a_dn = ("fp16", 16), ("fp16", 16), ("fp16", 16)
    elif datapath == "b1.58":
        a_in, a_o, a_dn = ("int8", 8), ("int8", 8), ("int8", 8)
    else:
        a_in, a_o, a_dn = ("int4", 4), ("int8-topk", 8), ("int8", 8)
    kv_total = batch * keys * h * kvbits / 8
    rows = []
    if head:
        rows.append(vector_row("embedding", new, h, layer=-1, phase=phase, table_bytes=new * h * 2))
    for L in range(layers):
        g = dict(layer=L, phase=phase, wfmt=wfmt, wbits=wbits)
        rows.append(vector_row("rmsnorm_attn", new, h, layer=L, phase=phase))
        if tern:
            rows.append(vector_row("quant_qkv", new, h, layer=L, phase=phase, out_bits=a_in[1]))
        for p in ("q_proj", "k_proj", "v_proj"):
            rows.append(gemm_row(p, new, h, h, afmt=a_in[0], abits=a_in[1], sparsity=sp["qkv"], **g))
        rows.append(vector_row("rope", new, 2 * h, layer=L, phase=phase))
        rows.append(vector_row("kv_quant", new, 2 * h, layer=L, phase=phase, out_bits=kvbits,
                               kv_write=2 * new * h * kvbits / 8))
        att = dict(layer=L, phase=phase, wfmt=kvfmt, wbits=kvbits, op_class="attention",
                   count=batch * heads)
        rows.append(gemm_row("attn_qk", q_rows, keys, hd, afmt="fp16", abits=16, kv_read=kv_total, **att))
        rows.append(vector_row("softmax", batch * heads * q_rows, keys, layer=L, phase=phase))
        rows.append(gemm_row("attn_pv", q_rows, hd, keys, afmt="fp16", abits=16, kv_read=kv_total, **att))
        rows.append(vector_row("rmsnorm_o", new, h, layer=L, phase=phase))
        if tern:
            rows.append(vector_row("topk_o" if datapath == "a4.8" else "quant_o", new, h, layer=L,
                                   phase=phase, out_bits=8))
        rows.append(gemm_row("o_proj", new, h, h, afmt=a_o[0], abits=a_o[1], sparsity=sp["o"], **g))
        rows.append(vector_row("rmsnorm_ffn", new, h, layer=L, phase=phase))
        if tern:
            rows.append(vector_row("quant_ffn", new, h, layer=L, phase=phase, out_bits=a_in[1]))
        rows.append(gemm_row("gate_proj", new, f, h, afmt=a_in[0], abits=a_in[1], sparsity=sp["gate"], **g))
        rows.append(gemm_row("up_proj", new, f, h, afmt=a_in[0], abits=a_in[1], sparsity=sp["up"], **g))
        rows.append(vector_row("glu", new, f, layer=L, phase=phase))
        if tern:
            rows.append(vector_row("quant_down", new, f, layer=L, phase=phase, out_bits=8))
        rows.append(gemm_row("down_proj", new, h, f, afmt=a_dn[0], abits=a_dn[1], sparsity=sp["down"], **g))
    if head:
        lm_rows = batch
        rows.append(vector_row("rmsnorm_final", lm_rows, h, layer=-1, phase=phase))
        rows.append(gemm_row("lm_head", lm_rows, vocab, h, layer=-1, phase=phase))
    df = pd.DataFrame(rows)
    df.attrs = {"preset": "synthetic", "datapath": datapath, "phase": phase, "batch": batch,
                "context": context, "seed": 0, "stats_source": "a4.8 Table 2 (7B)", "version": "test"}
    return df


# ---------------------------------------------------------------------------
def test_decoder_trace_conforms_to_op_trace_schema():
    for dp in ("fp16", "b1.58", "a4.8"):
        for ph in ("decode", "prefill"):
            validate(decoder_trace(dp, layers=1, phase=ph, tokens=64), "op_trace")


def test_decoder_trace_counts_match_hand_computed_7b_layer():
    df = decoder_trace("b1.58", layers=1, head=False)
    g = df[df.op_class == "gemm"]
    # 4h^2 + 3hf weights per layer, ternary at 2 bits
    assert g.macs_dense.sum() == 4 * 4096**2 + 3 * 4096 * 11008
    assert g.weight_bytes.sum() == pytest.approx((4 * 4096**2 + 3 * 4096 * 11008) * 2 / 8)
    kv = df[df.op == "attn_qk"].kv_bytes_read.iloc[0]
    assert kv == 2048 * 4096 * 2  # K cache of ctx 2048, fp16
