"""Paper-fidelity knobs: 4-bit Q with 3-bit KV, an INT8 / INT4 LM head, and how the
simulator maps the new formats (fallback pairs are reported, never errors)."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

import sim
from model import quant as q
from model.config import ModelConfig, get_config
from model.model import ActivationCapture, Transformer
from model.trace import build_trace
from model.trace_stats import head_input

# tiny preset: D=64, F=160, 4 query heads, 2 KV heads, head_dim 16, 2 layers, vocab 97


def _rows(df, layer=0):
    return {r.op: r for r in df[df["layer"] == layer].itertuples()}


def _head_cfg(datapath: str = "b1.58", **kw) -> ModelConfig:
    """A one-layer model with 2B4T's LM head (vocabulary 128256 x hidden 2560) and a small FFN: fast to trace."""
    return ModelConfig(name="head2b4t", dim=2560, n_layers=1, n_heads=20, ffn_dim=256, vocab_size=128256,
                       datapath=datapath, **kw)


# ------------------------------------------------------------------ config
@pytest.mark.parametrize("change, field", [
    (dict(lm_head_bits=2), "lm_head_bits"),
    (dict(lm_head_bits=True), "lm_head_bits"),
    (dict(lm_head_bits="8"), "lm_head_bits"),
    (dict(q_bits=8), "q_bits"),
])
def test_bad_knob_values_are_value_errors_naming_the_field(change, field):
    with pytest.raises(ValueError, match=field):
        get_config("tiny", "a4.8", **change)


def test_knob_defaults_keep_the_fp16_head_and_fp16_query():
    c = get_config("7b", "a4.8")
    assert (c.q_bits, c.lm_head_bits, c.lm_head_format) == (None, 16, "fp16")
    assert get_config("7b", "a4.8", lm_head_bits=4).lm_head_format == "int4"


def test_trace_refuses_q_and_kv_widths_the_trace_vocabulary_lacks():
    with pytest.raises(ValueError, match="q_bits"):
        build_trace(get_config("tiny", "a4.8", q_bits=5), "a4.8", context=8)
    with pytest.raises(ValueError, match="kv_bits"):
        build_trace(get_config("tiny", "a4.8", kv_bits=5), "a4.8", context=8)


# ------------------------------------------------------------------ 4-bit Q, 3-bit KV
def test_4bit_query_makes_attn_qk_int4_and_adds_a_quant_q_op_with_hand_counted_bytes():
    base = build_trace("tiny", "a4.8", context=10, batch=3)
    df = build_trace(get_config("tiny", "a4.8", q_bits=4), "a4.8", context=10, batch=3)
    r, r0 = _rows(df), _rows(base)
    qk = r["attn_qk"]
    assert (qk.act_format, qk.act_bits, qk.weight_format) == ("int4", 4, "kv-int3")
    # 3 seqs x 4 heads x 1 new token x (16 codes x 4 bits + one fp16 scale per (token, head))
    assert qk.act_bytes_in == 3 * 4 * (16 * 4 / 8 + 2) == 120
    assert r0["attn_qk"].act_bytes_in == 3 * 4 * 16 * 2 and r0["attn_qk"].act_format == "fp16"
    assert r["quant_q"].op_class == "vector" and r["quant_q"].act_bytes_out == 120
    assert "quant_q" not in r0
    # no other shape or byte changes: the same rows apart from quant_q and the attn_qk activation
    # columns (the measured statistics move: a quantized query changes the attention output)
    measured = ["act_format", "act_bits", "act_bytes_in", "sparsity", "row_skip", "macs_effective"]
    a = df[df.op != "quant_q"].drop(columns=measured).reset_index(drop=True)
    b = base.drop(columns=measured).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    cols = ["op", "act_format", "act_bits", "act_bytes_in"]
    assert df.loc[~df.op.isin(["quant_q", "attn_qk"]), cols].values.tolist() == \
        base.loc[base.op != "attn_qk", cols].values.tolist()
    assert df.attrs["q_bits"] == 4 and "q_bits" not in base.attrs


def test_the_query_codes_of_the_model_are_the_kv_quantizers_4bit_codes():
    cfg = get_config("tiny", "a4.8", q_bits=4)
    m = Transformer(cfg, seed=3)
    rec = ActivationCapture()
    with torch.no_grad():
        m(torch.randint(0, cfg.vocab_size, (2, 6), generator=torch.Generator().manual_seed(1)), rec=rec)
    qa = rec[(0, "q_attn")]                                   # [B, heads, T, head_dim]
    s = qa.abs().amax(-1, keepdim=True)                       # the absmax scale is a value of the row
    codes = qa / s * 15                                       # (2c - 15): odd integers in [-15, 15]
    assert torch.allclose(codes, codes.round(), atol=1e-4)
    assert set(codes.round().unique().tolist()) <= set(range(-15, 16, 2))


# ------------------------------------------------------------------ INT8 / INT4 LM head
@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_lm_head_rows_match_hand_counts(bits):
    df = build_trace(get_config("tiny", "b1.58", lm_head_bits=bits), "b1.58", context=10, batch=3)
    head = df.iloc[-1]
    V, D = 97, 64
    wbytes = V * D * bits / 8 + V * 4                          # codes + fp32 scale per row
    assert (head.op, head.weight_format, head.act_format, head.act_bits) == ("lm_head", f"int{bits}", "int8", 8)
    assert head.weight_bytes == wbytes and head.weight_bits == pytest.approx(8 * wbytes / (V * D))
    assert head.macs_dense == 3 * V * D and head.act_bytes_in == 3 * D + 3 * 4
    quant = df.iloc[-2]
    assert (quant.op, quant.op_class, quant.act_bytes_out) == ("quant_lm_head", "vector", 3 * D + 3 * 4)
    assert df.attrs["lm_head_bits"] == bits


def test_simulated_lm_head_bytes_drop_2x_and_4x_at_the_2b4t_head_shape():
    K = 2560
    got = {}
    for bits in (16, 8, 4):
        tr = build_trace(_head_cfg(lm_head_bits=bits), "b1.58", context=64)
        res = sim.simulate(tr, "b1.58")            # no weight-fetch skipping: bytes are the stored bytes
        got[bits] = float(res.ops.loc[res.ops.op == "lm_head", "bytes_offchip"].sum())
    assert got[16] == 128256 * K * 2
    # hand: FP16 2 bytes per weight; INT8 1 byte + 4 / K; INT4 0.5 byte + 4 / K (fp32 row scales)
    assert got[16] / got[8] == pytest.approx(2 * K / (K + 4), rel=1e-9)     # 1.9969
    assert got[16] / got[4] == pytest.approx(4 * K / (K + 8), rel=1e-9)     # 3.9875
    assert 1.99 < got[16] / got[8] <= 2 and 3.98 < got[16] / got[4] <= 4


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_head_integer_and_fake_paths_agree_bit_for_bit_and_match_a_float64_reference(bits):
    cfg = get_config("tiny", "b1.58", lm_head_bits=bits)
    m = Transformer(cfg, seed=2)
    tok = torch.randint(0, cfg.vocab_size, (2, 5), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        exact, fake = m(tok, exact=True), m(tok, exact=False)
        assert torch.equal(exact, fake)
        # float64 restatement: INT8 absmax per token, symmetric absmax per weight row, scales after the sum
        xn = torch.randn(3, cfg.dim, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
        w = m.output.weight.double()
        qmax = 2 ** (bits - 1) - 1
        gx = xn.abs().amax(-1, keepdim=True)
        gw = w.abs().amax(-1, keepdim=True)
        cx = torch.round(xn * 127 / gx).clamp(-128, 127)
        cw = torch.round(w * qmax / gw).clamp(-qmax, qmax)
        ref = (cx @ cw.T) * (gx / 127) * (gw / qmax).T
        got = m.head(xn.float(), exact=True).double()
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-5)
    qt = q.quantize_weight_rows(m.output.weight.detach(), bits)
    assert int(qt.codes.abs().max()) == qmax                 # each row's largest |w| lands on the top code


def test_quantized_head_trains_through_its_straight_through_estimator():
    cfg = get_config("tiny", "b1.58", lm_head_bits=4)
    m = Transformer(cfg, seed=2)
    tok = torch.randint(0, cfg.vocab_size, (2, 5), generator=torch.Generator().manual_seed(4))
    m(tok).sum().backward()
    g = m.output.weight.grad
    assert g is not None and bool(torch.isfinite(g).all()) and float(g.abs().sum()) > 0


def test_head_statistics_are_measured_on_the_int8_codes_of_a_quantized_head():
    x = torch.tensor([[1.0, 0.001, -0.5, 0.0039]])
    assert torch.equal(head_input(get_config("tiny", "b1.58"), x), x)
    # INT8 absmax: 0.001 * 127 rounds to 0, 0.0039 * 127 = 0.495 rounds to 0 as well
    assert head_input(get_config("tiny", "b1.58", lm_head_bits=8), x).tolist() == [[127.0, 0.0, -64.0, 0.0]]


# ------------------------------------------------------------------ the simulator maps the new formats
def test_sim_runs_4bit_query_on_a_wider_attention_pair_and_lists_it_as_a_fallback():
    tr = build_trace(get_config("tiny", "a4.8", q_bits=4), "a4.8", context=32)
    for accel, pair in (("a4.8", "int4xint4"), ("edge", "fp16xfp16"), ("h100-like", "int8xint8")):
        res = sim.simulate(tr, accel)
        qk = res.ops[res.ops.op == "attn_qk"]
        assert set(qk["needs"]) == {"int3xint4"} and set(qk["pair"]) == {pair} and qk["fallback"].all()
        fb = {(f["op"], f["needs"], f["pair"]): f["count"] for f in res.summary.fallback_ops}
        assert fb[("attn_qk", "int3xint4", pair)] == 2              # one per layer


def test_sim_maps_the_int8_and_int4_heads_exactly_where_a_pair_exists_else_as_fallbacks():
    def head(bits, accel):
        tr = build_trace(get_config("tiny", "b1.58", lm_head_bits=bits), "b1.58", context=16)
        res = sim.simulate(tr, accel)
        h = res.ops[res.ops.op == "lm_head"].iloc[0]
        return h["needs"], h["pair"], bool(h["fallback"]), [f["op"] for f in res.summary.fallback_ops]

    assert head(8, "a4.8") == ("int8xint8", "int8xint8", False, [])            # the attention array's INT8 pair
    assert head(4, "a4.8") == ("int4xint8", "int8xint8", True, ["lm_head"])
    assert head(8, "b1.58") == ("int8xint8", "fp16xfp16", True, ["lm_head"])   # b1.58's small array is FP16 only
    assert head(8, "h100-like")[:3] == ("int8xint8", "int8xint8", False)
