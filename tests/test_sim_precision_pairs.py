"""Operand pairs: a4.8's ternary x FP4 pair, and the report of ops that fall back to a wider pair."""
from __future__ import annotations

import argparse
import copy

import pandas as pd
import pytest
import yaml
from test_sim_synthetic import decoder_trace, gemm_row

import sim
from sim import energy
from sim.compute import map_op
from sim.config import PRESET_DIR, PRESETS, from_dict, load_yaml
from sim.simulate import fallback_warning

INT8_ADD_7NM_PJ = 0.007       # [B1] Table 2, 7 nm (independent of sim/energy)


def _fp4_gemm(M=2048, N=4096, K=4096):
    return pd.DataFrame([gemm_row("up_proj", M, N, K, phase="prefill", wfmt="ternary", wbits=2.0,
                                  afmt="fp4", abits=4)])


def _a48_raw_without_fp4() -> dict:
    raw = copy.deepcopy(load_yaml(PRESET_DIR / PRESETS["a4.8"]))
    tern = raw["arrays"][0]
    tern["pe_ops"] = [p for p in tern["pe_ops"] if p["acts"] != "fp4"]
    raw["name"] = "a4.8-no-fp4"
    return raw


def test_fp4_codes_of_the_model_need_5_bits_which_is_why_the_pair_uses_the_int8_adder():
    quant = pytest.importorskip("model.quant")
    import torch
    g = torch.Generator().manual_seed(0)
    q = quant.quantize_fp4(torch.randn(64, 512, generator=g))
    codes = set(q.signed_codes().unique().tolist())
    assert codes <= {0, 1, -1, 2, -2, 3, -3, 4, -4, 6, -6, 8, -8, 12, -12}
    assert max(abs(c) for c in codes) == 12          # outside INT4 (-8..7): not a split-adder operand


def test_a48_runs_ternary_fp4_matmuls_natively_on_the_ternary_array_at_the_int8_rate():
    acc = sim.load_accelerator("a4.8")
    assert acc.peak_macs_per_cycle("ternary", "fp4") == 2 * 128 * 128 * 1.0
    res = sim.simulate(_fp4_gemm(), acc)
    op = res.ops.iloc[0]
    assert (op["unit"], op["pair"], bool(op["fallback"])) == ("ternary", "ternaryxfp4", False)
    assert not res.summary.fallback_ops
    # compute-bound prefill GEMM: within 5 % above the hand roofline MACs / (PEs x rate)
    roof = 2048 * 4096 * 4096 / (2 * 128 * 128 * 1.0)
    assert roof <= op["compute_cycles"] <= 1.05 * roof
    # same cycles as ternary x INT8 (same adder), about twice ternary x INT4 (split adder)
    i8 = _fp4_gemm().assign(act_format="int8", act_bits=8)
    i4 = _fp4_gemm().assign(act_format="int4")
    c8 = sim.simulate(i8, acc).ops["compute_cycles"].iloc[0]
    c4 = sim.simulate(i4, acc).ops["compute_cycles"].iloc[0]
    assert op["compute_cycles"] == c8
    assert 1.8 < op["compute_cycles"] / c4 < 2.1


def test_ternary_fp4_mac_energy_is_one_accumulator_add_of_the_5_bit_codes():
    res = sim.simulate(_fp4_gemm(), "a4.8")
    macs = 2048 * 4096 * 4096
    # hand count: 5-bit FP4 codes x ternary -> 6-bit products; a4.8's accumulators hold K <= 16384
    # (14 bits of headroom) -> a 20-bit add = [B1]'s 8-bit add x 20 / 8 (adders linear in width); operand
    # delivery writes the 5-bit code and the 20-bit partial sum into pipeline registers (25 bits per MAC)
    reg_pj = energy.cost("reg.write_fj_per_bit", 7).value * 1e-3
    assert res.ops["energy_compute_pj"].iloc[0] == pytest.approx(macs * (INT8_ADD_7NM_PJ * 20 / 8 + 25 * reg_pj),
                                                                 rel=1e-12)


def test_adding_the_fp4_pair_adds_no_area_because_it_shares_the_int8_adder():
    with_fp4 = sim.load_accelerator("a4.8").compute_area_mm2_45nm()
    without = from_dict(_a48_raw_without_fp4()).compute_area_mm2_45nm()
    # hand count from [H14] areas at 45 nm (um^2): ternary PE = INT4 add 18 + INT8 add 36;
    # attention PE = INT4 MAC (70.5 + 18) + INT8 MAC (282 + 36) + FP16 MAC (1640 + 1360)
    hand = (2 * 128 * 128 * (18 + 36) + 2 * 64 * 64 * (70.5 + 18 + 282 + 36 + 1640 + 1360)) / 1e6
    assert with_fp4 == pytest.approx(hand, rel=1e-12)
    assert without == pytest.approx(hand, rel=1e-12)
    # and the chip's area (width-aware PEs sized by their widest pair: the INT4 split at 2 MACs/cycle)
    assert sim.load_accelerator("a4.8").area_mm2 == pytest.approx(from_dict(_a48_raw_without_fp4()).area_mm2)


def test_a48_fp4_model_trace_has_no_fp4_fallback_on_a48():
    trace_mod = pytest.importorskip("model.trace")
    tr = trace_mod.build_trace("tiny", "a4.8-fp4", phase="prefill", context=64)
    res = sim.simulate(tr, "a4.8")
    fp4 = res.ops[tr["act_format"].to_numpy() == "fp4"]
    assert len(fp4) > 0
    assert set(fp4["pair"]) == {"ternaryxfp4"} and set(fp4["unit"]) == {"ternary"}
    assert not any("fp4" in f["needs"] for f in res.summary.fallback_ops)


def test_without_a_native_pair_fp4_ops_are_listed_as_fallbacks_and_the_pair_choice_is_unchanged():
    acc = from_dict(_a48_raw_without_fp4())
    tr = decoder_trace("a4.8", layers=2, phase="prefill", tokens=256)
    qkv = tr["op"].isin(["q_proj", "k_proj", "v_proj"])
    tr.loc[qkv, "act_format"] = "fp4"
    res = sim.simulate(tr, acc)
    fb = {(f["op"], f["needs"], f["pair"], f["array"]): f["count"] for f in res.summary.fallback_ops}
    for p in ("q_proj", "k_proj", "v_proj"):
        assert fb[(p, "ternaryxfp4", "fp16xfp16", "attn")] == 2      # one per layer
    # the column agrees with the summary, and the pair is the one map_op picks (fp16 holds fp4)
    m = map_op(acc, "ternary", "fp4", "test", None)
    assert (m.pe_op.weights, m.pe_op.acts) == ("fp16", "fp16")
    assert res.ops.loc[qkv.to_numpy(), "fallback"].all()
    assert int(res.ops["fallback"].sum()) == sum(f["count"] for f in res.summary.fallback_ops)


def test_exact_pairs_report_no_fallback():
    res = sim.simulate(decoder_trace("b1.58", layers=2), "b1.58")
    assert not res.summary.fallback_ops and not res.ops["fallback"].any()
    assert fallback_warning(res.summary) is None


def test_h100_like_lists_ternary_gemms_as_running_on_int8_tensor_cores_or_dp4a():
    res = sim.simulate(decoder_trace("b1.58", layers=1, head=False), "h100-like")
    tern = res.ops[res.ops["needs"] == "ternaryxint8"]
    assert len(tern) > 0 and tern["fallback"].all()
    assert set(tern["pair"]) == {"int8xint8"}
    assert {f["op"] for f in res.summary.fallback_ops} >= {"q_proj", "down_proj"}


def test_cli_prints_one_warning_line_on_stderr_for_fallbacks_and_none_otherwise(tmp_path, capsys):
    from contract import write_table
    from sim.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    tr = decoder_trace("a4.8", layers=1, phase="prefill", tokens=128)
    tr.loc[tr["op"] == "q_proj", "act_format"] = "fp4"
    write_table(tr, tmp_path / "t.parquet", "op_trace")
    nofp4 = tmp_path / "nofp4.yaml"
    nofp4.write_text(yaml.safe_dump(_a48_raw_without_fp4()))

    args = parser.parse_args(["simulate", "--trace", str(tmp_path / "t.parquet"), "--accel", str(nofp4),
                              "-o", str(tmp_path / "o.parquet")])
    assert args.func(args) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning:")
    assert "q_proj ternaryxfp4->fp16xfp16 on attn (x1)" in err[0]

    write_table(decoder_trace("b1.58", layers=1), tmp_path / "b.parquet", "op_trace")
    args = parser.parse_args(["simulate", "--trace", str(tmp_path / "b.parquet"), "--accel", "b1.58",
                              "-o", str(tmp_path / "o2.parquet")])
    assert args.func(args) == 0
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------ the paper-fidelity formats
def _qk_int4_over_kv3(M=1, C=2048, hd=128, count=32):
    kv = count * C * (hd * 3 / 8 + 2)
    return pd.DataFrame([gemm_row("attn_qk", M, C, hd, op_class="attention", count=count, wfmt="kv-int3",
                                  wbits=8 * kv / (count * C * hd), afmt="int4", abits=4, kv_read=kv)])


@pytest.mark.parametrize("accel, pair, array", [("a4.8", "int4xint4", "attn"), ("edge", "fp16xfp16", None),
                                                ("h100-like", "int8xint8", None)])
def test_4bit_query_over_a_3bit_cache_runs_on_a_containing_pair_and_is_a_listed_fallback(accel, pair, array):
    res = sim.simulate(_qk_int4_over_kv3(), accel)
    op = res.ops.iloc[0]
    assert (op["needs"], op["pair"], bool(op["fallback"])) == ("int3xint4", pair, True)
    assert [(f["op"], f["needs"], f["pair"]) for f in res.summary.fallback_ops] == [("attn_qk", "int3xint4", pair)]
    if array:
        assert op["unit"] == array
    # strict precision: the same op is an error naming the missing pair, not a silent choice
    raw = copy.deepcopy(load_yaml(PRESET_DIR / PRESETS[accel]))
    raw["precision_policy"] = "strict"
    with pytest.raises(ValueError, match="int3xint4"):
        sim.simulate(_qk_int4_over_kv3(), from_dict(raw))


@pytest.mark.parametrize("wfmt, wbits", [("int8", 8.0), ("int4", 4.0)])
def test_quantized_lm_head_weights_stream_their_own_bytes(wfmt, wbits):
    V, D = 32000, 4096
    rows = {f: pd.DataFrame([gemm_row("lm_head", 1, V, D, wfmt=f, wbits=b, afmt=a, abits=ab)])
            for f, b, a, ab in (("fp16", 16.0, "fp16", 16), (wfmt, wbits, "int8", 8))}
    got = {f: float(sim.simulate(t, "b1.58").ops["bytes_offchip"].iloc[0]) for f, t in rows.items()}
    assert got["fp16"] == V * D * 2 and got[wfmt] == V * D * wbits / 8       # weights are the off-chip bytes
    assert got["fp16"] / got[wfmt] == 16 / wbits
