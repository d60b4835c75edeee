"""Op traces: closed-form MACs/bytes for the tiny preset, paper profile, statistics, CLI, errors."""
from __future__ import annotations

import dataclasses

import pytest

from bitsim import cli as bitsim_cli
from contract import OP_TRACE, OP_TRACE_META, read_table, validate
from model.config import get_config
from model.trace import OpRow, OpStats, activated_params, build_trace, op_row

# tiny preset: D=64, F=160, 4 query heads, 2 KV heads, head_dim 16, 2 layers, vocab 97


def _layer0(df):
    return {r.op: r for r in df[df["layer"] == 0].itertuples()}


def test_tiny_a48_decode_counts_match_hand_derived_values():
    # B=3 sequences, context 10: one new token at position 9 attends to 10 keys.
    df = build_trace("tiny", "a4.8", phase="decode", context=10, batch=3)
    r = _layer0(df)
    # q_proj: x[3,64] int4 . W[64,64] ternary
    assert (r["q_proj"].M, r["q_proj"].N, r["q_proj"].K) == (3, 64, 64)
    assert r["q_proj"].macs_dense == 3 * 64 * 64 == 12288
    assert r["q_proj"].weight_bytes == 64 * 64 / 4 == 1024          # 2 bits per weight
    assert r["q_proj"].act_bytes_in == 3 * 64 / 2 + 3 * 4 == 108     # int4 codes + fp32 row scale
    assert r["q_proj"].act_bytes_out == 3 * 64 * 2 == 384
    assert r["k_proj"].macs_dense == 3 * 32 * 64
    # o_proj: int8 (TopK) input, 4 bytes scale per row
    assert r["o_proj"].act_bytes_in == 3 * 64 + 12 and r["o_proj"].act_format == "int8-topk"
    # FFN
    assert r["gate_proj"].macs_dense == r["up_proj"].macs_dense == 3 * 160 * 64 == 30720
    assert r["down_proj"].macs_dense == 3 * 64 * 160 and r["down_proj"].weight_bytes == 64 * 160 / 4
    assert r["down_proj"].act_bytes_in == 3 * 160 + 12
    # attention: 3 seqs x 4 heads, 10 keys, head_dim 16
    assert r["attn_qk"].macs_dense == r["attn_pv"].macs_dense == 3 * 4 * 10 * 16 == 1920
    assert r["attn_qk"].count == 12 and (r["attn_qk"].N, r["attn_qk"].K) == (10, 16)
    # K cache: 3 seqs x 2 KV heads x (BOS: 16*4/8 + 2 bytes, 9 others: 16*3/8 + 2 bytes)
    assert r["attn_qk"].kv_bytes_read == 3 * 2 * (10 + 9 * 8) == 492
    assert r["attn_qk"].weight_bytes == 492 and r["attn_pv"].kv_bytes_read == 492
    assert r["attn_qk"].kv_bytes_write == r["attn_pv"].kv_bytes_write == 3 * 2 * 8 == 48
    assert r["attn_qk"].weight_bits == pytest.approx(8 * 492 / (3 * 2 * 10 * 16))
    assert r["attn_qk"].weight_format == "kv-int3"
    assert r["softmax"].macs_dense == 3 * 4 * 10
    assert r["kv_quant"].act_bytes_out == 2 * 48
    # vector ops
    assert r["rmsnorm_attn"].macs_dense == 3 * 64 and r["rmsnorm_attn"].weight_bytes == 128
    assert r["quant_qkv"].act_bytes_out == 108 and r["quant_down"].act_bytes_out == 3 * 160 + 12
    assert r["glu"].macs_dense == 3 * 160 and r["glu"].act_bytes_in == 2 * 3 * 160 * 2
    assert r["rope"].N == 64 + 32
    # whole model
    emb, head = df.iloc[0], df.iloc[-1]
    assert (emb.op, emb.weight_bytes, emb.act_bytes_in) == ("embedding", 3 * 64 * 2, 12)
    assert (head.op, head.macs_dense, head.weight_bytes) == ("lm_head", 3 * 97 * 64, 97 * 64 * 2)
    assert len(df) == 1 + 2 * len(r) + 2
    assert df["macs_dense"].sum() == 3 * 97 * 64 + 3 * 64 + 64 * 3 + 2 * sum(x.macs_dense for x in r.values())


def test_tiny_b158_causal_prefill_counts_match_hand_derived_values():
    # B=2, a 4-token chunk at positions 2..5 (context 6): keys per query 3,4,5,6 -> 18 pairs
    df = build_trace("tiny", "b1.58", phase="prefill", context=6, prefill_tokens=4, batch=2)
    r = _layer0(df)
    assert r["q_proj"].M == 8 and r["q_proj"].macs_dense == 8 * 64 * 64
    assert r["q_proj"].act_bytes_in == 8 * 64 + 8 * 4
    assert r["attn_qk"].macs_dense == 2 * 4 * 18 * 16 == 2304
    assert r["softmax"].macs_dense == 2 * 4 * 18
    # FP16 KV: 16 * 2 bytes per (token, KV head); read all 6, write the 4 new
    assert r["attn_qk"].kv_bytes_read == 2 * 2 * 6 * 32 == 768
    assert r["attn_pv"].kv_bytes_write == 2 * 2 * 4 * 32 == 512
    assert r["attn_qk"].weight_format == "kv-fp16" and r["attn_qk"].weight_bits == 16
    assert "kv_quant" not in r and "topk_o" not in r
    assert df.iloc[-1].M == 2  # LM head on the last token of each sequence


def test_full_prefill_from_empty_counts_the_causal_triangle():
    df = build_trace("tiny", "fp16", phase="prefill", context=5)
    r = _layer0(df)
    assert r["attn_qk"].macs_dense == 4 * (1 + 2 + 3 + 4 + 5) * 16
    assert r["attn_qk"].kv_bytes_write == r["attn_qk"].kv_bytes_read == 2 * 5 * 32
    assert r["q_proj"].weight_format == "fp16" and r["q_proj"].weight_bytes == 64 * 64 * 2
    assert "quant_qkv" not in r


@pytest.mark.parametrize("datapath", ["fp16", "b1.58", "a4.8", "a4.8-fp4"])
def test_trace_rows_are_consistent(datapath):
    df = build_trace("tiny", datapath, context=16, batch=2)
    validate(df, "op_trace")
    assert set(OP_TRACE_META) <= set(df.attrs)
    assert df.attrs["datapath"] == datapath and df.attrs["stats_source"] == "random"
    assert df.attrs["stats_detail"].startswith("measured on 1 full-width block(s)")
    g = df[df["op_class"] != "vector"]
    assert (g["macs_effective"] == (g["macs_dense"] * (1 - g["sparsity"])).round().astype(int)).all()
    v = df[df["op_class"] == "vector"]
    assert (v["macs_effective"] == v["macs_dense"]).all()
    assert df["sparsity"].between(0, 1).all() and df["row_skip"].between(0, 1).all()
    proj = df[df["op"].str.endswith("_proj")]
    assert (proj["weight_bytes"] == proj["N"] * proj["K"] * proj["weight_bits"] / 8).all()
    assert (df["macs_dense"] == df["M"] * df["N"] * df["K"])[df["op_class"] == "gemm"].all()


def test_paper_profile_7b_a48_gives_44_5_percent_and_55_5_percent_activated():
    df = build_trace("7b", "a4.8", profile="paper-table2")
    a = activated_params(df)
    assert a["overall_sparsity"] == pytest.approx(0.445, abs=5e-4)
    assert a["activated_fraction"] == pytest.approx(0.555, abs=5e-4)
    assert a["total_params"] == get_config("7b").linear_params
    assert a["activated_params"] == pytest.approx(3.59e9, rel=2e-3)  # paper prints 3.4B (docs/paper-facts.md §3.2)
    assert df.attrs["stats_source"] == "paper-table2" and "Table 2" in df.attrs["stats_detail"]
    r = _layer0(df)
    assert r["up_proj"].sparsity == pytest.approx(0.714) and r["o_proj"].sparsity == pytest.approx(0.5)


def test_paper_profile_reproduces_table2_overall_for_smaller_models():
    for preset, overall in (("700m", 0.425), ("3b", 0.447)):
        df = build_trace(preset, "a4.8", profile="paper-table2")
        assert activated_params(df)["overall_sparsity"] == pytest.approx(overall, abs=1.5e-3)


def test_measured_statistics_show_int4_zero_bin_topk_and_gate_first_up():
    cfg = get_config("tiny", dim=1024, n_heads=8, n_kv_heads=8, ffn_dim=2048, name="mid")
    df = build_trace(cfg, "a4.8", context=64, batch=16)
    r = _layer0(df)
    assert r["q_proj"].sparsity == pytest.approx(0.12, abs=0.01)       # INT4 absmean zero bin
    assert r["gate_proj"].sparsity == pytest.approx(0.12, abs=0.01)
    assert r["o_proj"].sparsity >= 0.5                                   # TopK 50 %
    assert r["up_proj"].sparsity > 1 - (1 - r["gate_proj"].sparsity) * 0.7  # gate-first: ReLU² zeros
    assert r["down_proj"].sparsity > 0.3
    assert 0 <= r["q_proj"].row_skip <= r["q_proj"].sparsity
    b = _layer0(build_trace(cfg, "b1.58", context=64, batch=16))
    assert b["q_proj"].sparsity < 0.03 and b["up_proj"].sparsity == b["gate_proj"].sparsity


def test_same_seed_same_trace_other_seed_other_statistics():
    a = build_trace("tiny", "a4.8", context=8, batch=4, seed=1)
    b = build_trace("tiny", "a4.8", context=8, batch=4, seed=1)
    c = build_trace("tiny", "a4.8", context=8, batch=4, seed=2)
    assert a.equals(b) and not a["sparsity"].equals(c["sparsity"])


def test_large_prefill_measures_a_subset_and_says_so():
    df = build_trace("tiny", "a4.8", phase="prefill", context=600, prefill_tokens=512, batch=2,
                     layers_measured=2)
    src = df.attrs["stats_detail"]
    assert "last 128 of 512 prefill tokens" in src and "extrapolated" in src and "2 full-width" in src
    assert _layer0(df)["q_proj"].M == 1024


@pytest.mark.parametrize("kwargs, word", [
    (dict(datapath="int2"), "datapath"),
    (dict(phase="train"), "phase"),
    (dict(profile="table9"), "profile"),
    (dict(context=0), "context"),
    (dict(batch=-1), "batch"),
    (dict(phase="prefill", context=8, prefill_tokens=9), "prefill_tokens"),
    (dict(prefill_tokens=4), "prefill_tokens"),
    (dict(layers_measured=3), "layers_measured"),
    (dict(profile="paper-table2"), "preset 'tiny'"),
    (dict(preset="70b"), "preset"),
])
def test_bad_trace_arguments_raise_value_errors_naming_them(kwargs, word):
    args = dict(preset="tiny", datapath="a4.8", context=8)
    args.update(kwargs)
    with pytest.raises(ValueError, match=word):
        build_trace(args.pop("preset"), args.pop("datapath"), **args)


def test_paper_profile_has_no_fp4_row():
    with pytest.raises(ValueError, match="a4.8-fp4"):
        build_trace("7b", "a4.8-fp4", profile="paper-table2", context=4)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_cli_writes_a_valid_table(tmp_path, suffix, capsys):
    out = tmp_path / f"trace{suffix}"
    rc = bitsim_cli.main(["trace", "--model", "tiny", "--datapath", "a4.8", "--phase", "prefill",
                          "--context", "12", "--prefill-tokens", "6", "--batch", "2", "-o", str(out)])
    assert rc == 0 and "activated" in capsys.readouterr().out
    df = read_table(out, "op_trace")
    assert df.attrs["preset"] == "tiny" and df.attrs["phase"] == "prefill" and df.attrs["context"] == 12
    assert len(df) == len(build_trace("tiny", "a4.8", phase="prefill", context=12, prefill_tokens=6, batch=2))


def test_cli_reports_bad_arguments(tmp_path, capsys):
    rc = bitsim_cli.main(["trace", "--model", "tiny", "--datapath", "a4.8", "--context", "4",
                          "--prefill-tokens", "9", "--phase", "prefill", "-o", str(tmp_path / "x.csv")])
    assert rc == 2 and "prefill_tokens" in capsys.readouterr().err


@pytest.mark.slow
def test_7b_decode_trace_covers_all_layers_with_2bit_weights():
    df = build_trace("7b", "a4.8")
    proj = df[df["op"].str.endswith("_proj")]
    assert df["layer"].max() == 31 and len(proj) == 32 * 7
    assert proj["weight_bytes"].sum() == get_config("7b").linear_params / 4
    r = _layer0(df)
    assert r["q_proj"].sparsity == pytest.approx(0.12, abs=0.02) and r["o_proj"].sparsity == 0.5


def test_op_row_fields_are_the_op_trace_columns_in_order_and_keyword_only():
    assert [f.name for f in dataclasses.fields(OpRow)] == [c.name for c in OP_TRACE]
    assert list(build_trace("tiny", "fp16", context=4).columns) == [c.name for c in OP_TRACE]
    with pytest.raises(TypeError):
        OpRow(0, "q_proj")  # positional construction is refused
    with pytest.raises(TypeError):
        op_row(0, "q_proj")


def test_op_row_derives_effective_macs_from_sparsity_except_for_vector_ops():
    kw = dict(layer=0, op="x", phase="decode", M=1, N=4, K=5, count=1, weight_format="ternary",
              weight_bits=2.0, act_format="int8", act_bits=8, out_bits=16, macs_dense=20,
              weight_bytes=5.0, act_bytes_in=9.0, act_bytes_out=8.0)
    assert op_row(op_class="gemm", stats=OpStats(0.25, 0.0), **kw).macs_effective == 15
    assert op_row(op_class="vector", stats=OpStats(0.25, 0.0), **kw).macs_effective == 20
