"""Whole-token replay, fixed costs from measured floors, and the validation subcommands (sim.validation)."""
from __future__ import annotations

import argparse

import pandas as pd
import pytest

import sim
from contract import validate
from sim.validation import block_ops, fixed_costs
from sim.validation.cli import register
from sim.validation.whole_token import host_gaps_us, prefill_ops, ratio_rows


def _launches(rows: list[dict]) -> int:
    return sum(not r["fused"] for r in rows)


@pytest.mark.parametrize("dp, plan, launches", [
    # the kernels' own count (kernels/block.py launches_fused): b1.58 5 + 4 x separate;
    # a4.8 6 + 2 x separate + (Wdown sparse or separate)
    ("b1.58", {"prologue": "separate"}, 9), ("b1.58", {"prologue": "fused"}, 5),
    ("a4.8", {"prologue": "separate", "wdown": "dense"}, 9), ("a4.8", {"prologue": "fused", "wdown": "dense"}, 6),
    ("a4.8", {"prologue": "fused", "wdown": "sparse", "down_skip": 0.6}, 7),
])
def test_block_replay_launches_as_the_measured_kernels_do(dp, plan, launches):
    assert _launches(block_ops(dp, plan, 1, 2048)) == launches


def test_block_replay_moves_the_blocks_weights_and_kv_by_hand():
    d, F, ctx = 4096, 11008, 2048
    weights = (3 * d + d + 2 * F) * d + d * F                       # elements of one LLaMA-7B block
    rows = pd.DataFrame(block_ops("b1.58", {"prologue": "separate"}, 1, ctx))
    gemm = rows[rows.op_class == "gemm"]
    assert gemm.weight_bytes.sum() == weights * 2 / 8                 # 2-bit ternary codes
    attn = rows[rows.op_class == "attention"]
    assert attn.kv_bytes_read.sum() == 2 * 32 * ctx * 128 * 2        # K and V, fp16
    a48 = pd.DataFrame(block_ops("a4.8", {"prologue": "separate", "wdown": "sparse", "down_skip": 0.75}, 1, ctx))
    down = a48[a48.op == "down_proj"].iloc[0]
    assert down.row_skip == 0.75 and a48[a48.op_class == "attention"].kv_bytes_read.sum() == 2 * 32 * ctx * 128 * 3 / 8


@pytest.mark.parametrize("dp, launches", [
    # KernelBlock.forward at T > 1 (kernels/block.py): fp16 = 9 (fp32 RMSNorm) + QKV + 10 (RoPE of q, k) + 2 (cache
    # slices) + SDPA + transpose + Wo + residual + 9 + gate/up + SiLU, product + Wdown + residual; b1.58 = quantizer
    # + QKV + 10 + 2 + SDPA + transpose + 3 x (quantizer + GEMM) + 2 residuals + SiLU, product; a4.8 = as b1.58 with
    # the 3-bit cache write (v copy + kv_write) and the GLU inside the Wdown quantizer
    ("fp16", 40), ("b1.58", 26), ("a4.8", 24)])
def test_prefill_replay_launches_every_kernel_of_the_eager_program(dp, launches):
    assert _launches(prefill_ops(dp, 2048)) == launches


def test_prefill_replay_moves_the_eager_glue_bytes_by_hand():
    M, d, F = 2048, 4096, 11008
    rows = pd.DataFrame(prefill_ops("fp16", M))
    glue = rows[rows.op.str.startswith("add_")]
    big = glue[glue.N > 1]                       # every pass over a [M, d] or [M, F] tensor (the gains: [1, d])
    # RMSNorm 2 x (2+4 + 4+4 + 4 + 4+4 + 4+4 + 4+2) B, RoPE 2 x (1+1 + 2+2 + 2+2 + 2+2 + 4+2), caches 2 x 4,
    # transpose 4, residuals 2 x 6 per element of d; SiLU 4 and its product 6 per element of F
    expect = M * d * (2 * 40 + 2 * 20 + 8 + 4 + 12) + M * F * 10 + 2 * d * 6 + 2 * M * 2 * 8
    assert (big.act_bytes_in + big.act_bytes_out).sum() + (glue[glue.N == 1].act_bytes_in
                                                           + glue[glue.N == 1].act_bytes_out).sum() == expect
    gemm = rows[rows.op_class == "gemm"]
    assert gemm.weight_bytes.sum() == ((3 * d + d + 2 * F) * d + d * F) * 2      # fp16 weights, once


def test_an_eager_launch_waits_on_the_host_only_where_its_issue_outlasts_the_launch_before():
    cfg = sim.load_accelerator("h200-triton").replace(clock_ghz=1.0, host_launch_ns=5000.0)
    cycles = pd.Series([6000, 4000, 2000, 9000, 1000])       # launches: [6000 + 4000], [2000], [9000 + 1000]
    fused = pd.Series([False, True, False, False, True])
    assert host_gaps_us(cycles, fused, cfg) == pytest.approx(3.0)          # only the 2 us launch leaves 3 us idle
    assert host_gaps_us(cycles, fused, cfg.replace(host_launch_ns=0.0)) == 0.0
    assert host_gaps_us(cycles, pd.Series([False] * 5), cfg.replace(host_launch_ns=20000.0)) == pytest.approx(78.0)


def _token_rows(cases, K=2048) -> pd.DataFrame:
    return pd.DataFrame([dict(row="t", op="token_decode", kernel=f"7b_{label}", datapath=label.split("-")[0],
                              variant="", M=1, K=K, launches=9, unit="us", measured=m, simulated=s, rel_error=0.0,
                              preset="p", mechanism="", gpu="G") for label, m, s in cases])


def test_token_ratios_are_throughput_ratios_of_the_token_rows():
    rows = _token_rows((("fp16", 400.0, 300.0), ("b1.58", 200.0, 100.0), ("a4.8", 100.0, 150.0)))
    r = ratio_rows(rows).set_index("datapath")
    assert r.loc["a4.8/fp16", "measured"] == 4.0 and r.loc["a4.8/fp16", "simulated"] == 2.0
    assert r.loc["a4.8/b1.58", "measured"] == 2.0 and r.loc["a4.8/b1.58", "rel_error"] == pytest.approx(-2 / 3)
    validate(pd.concat([rows, ratio_rows(rows)], ignore_index=True), "sim_whole_token")
    assert (ratio_rows(rows)["gpu"] == "G").all()               # a ratio row names the GPU of its tokens


def test_token_ratios_tell_the_4bit_kv_b158_apart_and_keep_each_context_apart():
    rows = pd.concat([_token_rows((("fp16", 400.0, 400.0), ("b1.58", 200.0, 200.0), ("b1.58-kv4", 180.0, 90.0),
                                   ("a4.8", 100.0, 100.0), ("a4.8", 999.0, 999.0))),      # a repeat: the first counts
                      _token_rows((("b1.58-kv4", 500.0, 500.0), ("a4.8", 250.0, 500.0)), K=32768)], ignore_index=True)
    r = ratio_rows(rows).set_index("row")
    assert r.loc["ratio a4.8/b1.58-kv4 tokens/s ctx 2048", "measured"] == 1.8
    assert r.loc["ratio a4.8/b1.58-kv4 tokens/s ctx 2048", "simulated"] == 0.9
    assert r.loc["ratio a4.8/b1.58 tokens/s ctx 2048", "measured"] == 2.0
    assert r.loc["ratio a4.8/b1.58-kv4 tokens/s ctx 32768", "simulated"] == 1.0 and len(r) == 4


def test_a_token_row_replays_the_kv_cache_its_block_ran():
    from sim.validation.whole_token import _row_trace
    base = dict(op="token_decode", precision="b1.58", variant="separate_pdl", K=2048, N=4096, M=1, sparsity=0.0,
                plan="")
    kv4, _ = _row_trace(pd.Series(dict(base, kernel="7b_b1.58-kv4", kv_bits=4.0)))
    fp16, _ = _row_trace(pd.Series(dict(base, kernel="7b_b1.58", kv_bits=16.0)))
    a48, plan = _row_trace(pd.Series(dict(base, kernel="7b_a4.8", precision="a4.8", kv_bits=16.0,
                                          variant="separate_wo-dense_down-dense_pdl")))
    fmts = {name: set(t.loc[t.op_class == "attention", "weight_format"]) for name, t in
            (("kv4", kv4), ("fp16", fp16), ("a48", a48))}
    assert fmts == {"kv4": {"kv-int4"}, "fp16": {"kv-fp16"}, "a48": {"kv-int3"}}   # a4.8 never runs an FP16 cache
    assert plan["kv_bits"] == 3 and (kv4.op == "kv_quant").any() and not (fp16.op == "kv_quant").any()


def test_whole_token_rows_of_an_unknown_or_mixed_gpu_are_refused():
    from sim.validation.whole_token import _gpu_pair
    rows = pd.DataFrame(dict(op=["token_decode"] * 2, gpu=["NVIDIA H100 80GB HBM3", "NVIDIA H200"]))
    with pytest.raises(ValueError, match="one GPU at a time"):
        _gpu_pair(rows)
    with pytest.raises(ValueError, match="no simulator presets describe 'Tesla T4'"):
        _gpu_pair(rows.assign(gpu="Tesla T4"))
    assert _gpu_pair(rows.iloc[:1]) == ("h100-like", "h100-triton")


def _floor_table(intercept_us=2.0, gbps=4000.0, launch_us=1.5, pdl_us=1.0) -> pd.DataFrame:
    base = dict(impl="ours", precision="int32", M=1, K=1, sparsity=0.0, ops=0.0, gbps=0.0, tops=0.0, exact=True,
                gpu="synthetic", torch="-", triton="-", cuda="-", date="2000-01-01", variant="", launches=0.0)
    rows = [dict(base, op="floor", kernel="floor_read", N=b // 4, cuda_graph=True, bytes=float(b),
                 us=intercept_us + b / gbps / 1e3) for b in (1e6, 4e6, 2e7)]
    for variant, per in (("floor_chain", launch_us), ("floor_chain_pdl", pdl_us)):
        rows.append(dict(base, op="block_decode", kernel="floor_chain", N=4096, cuda_graph=True, bytes=8e7,
                         us=8e7 / gbps / 1e3 + 9 * per, variant=variant, launches=9.0))
    return pd.DataFrame(rows)


def test_fixed_costs_recover_the_floor_line_and_the_chained_launch_cost():
    c = fixed_costs(_floor_table())
    assert c.read_intercept_ns == pytest.approx(2000.0) and c.read_gbps == pytest.approx(4000.0)
    assert c.launch_ns == pytest.approx(1500.0) and c.pdl_launch_ns == pytest.approx(1000.0)
    assert c.pdl_saving_ns == pytest.approx(500.0)
    assert c.op_overhead_ns + c.latency_ns == pytest.approx(1500.0)
    with pytest.raises(ValueError, match="floor_chain"):
        fixed_costs(_floor_table().iloc[:3])


def test_validation_subcommands_register_and_refuse_a_bad_output_suffix(tmp_path):
    ap = argparse.ArgumentParser(prog="bitsim")
    register(ap.add_subparsers(dest="command"))
    for cmd in ("validate", "calibrate", "published"):
        assert callable(ap.parse_args([cmd] if cmd != "calibrate" else [cmd, "x.parquet"]).func)
    args = ap.parse_args(["published", "-o", str(tmp_path / "t.txt")])
    with pytest.raises(ValueError, match=r"\.csv"):
        args.func(args)
    args = ap.parse_args(["calibrate", "m.parquet", "-o", str(tmp_path / "p.txt")])
    with pytest.raises(ValueError, match=r"\.yaml"):
        args.func(args)


def test_the_two_pass_route_replays_each_ternary_gemm_as_decode_library_gemm_and_epilogue():
    fused, two = (pd.DataFrame(prefill_ops("a4.8", 2048, route=r)) for r in ("fused", "two_pass"))
    assert len(two) == len(fused) + 2 * 4                         # four linear layers, two launches more each
    gemms = two[two.op_class == "gemm"].set_index("op")
    # INT4 codes take cuBLAS FP8, the 8-bit codes of Wo / Wdown cuBLAS INT8; 8-bit weights, 32-bit sums
    assert gemms.loc[["qkv_proj", "gate_up_proj"], "weight_format"].tolist() == ["fp8", "fp8"]
    assert gemms.loc[["o_proj", "down_proj"], "weight_format"].tolist() == ["int8", "int8"]
    assert (gemms.weight_bits == 8.0).all() and (gemms.out_bits == 32).all()
    dec = two.set_index("op").loc["add_decode_down_proj"]           # 4096 x 11008 weights: 2 bits in, 1 byte out
    assert (dec.act_bytes_in, dec.act_bytes_out) == (4096 * 11008 * 0.25, 4096 * 11008 * 1.0)
    epi = two.set_index("op").loc["add_epilogue0_qkv_proj"]         # 2048 x 12288 sums: 4 bytes in, 2 out
    assert (epi.act_bytes_in, epi.act_bytes_out) == (2048 * 12288 * 4.0, 2048 * 12288 * 2.0)
    with pytest.raises(ValueError, match="route must be one of"):
        prefill_ops("a4.8", 2048, route="split")


def test_a_library_fp8_gemm_pays_no_promotion_and_our_unpacking_one_does():
    import dataclasses

    from sim.engine import plan_ops
    cfg = sim.load_accelerator("h200-triton")
    off = cfg.replace(arrays=(dataclasses.replace(cfg.arrays[0], promote_ns={}), *cfg.arrays[1:]))

    def fp8_cycles(route: str, c) -> list[int]:
        t = pd.DataFrame(prefill_ops("a4.8", 2048, route=route))
        t["phase"] = "prefill"
        t.attrs = {"phase": "prefill"}
        return [p.unit_cycles for p in plan_ops(t, c) if p.pair == "fp8xfp8"]

    assert fp8_cycles("two_pass", cfg) == fp8_cycles("two_pass", off)          # cuBLAS FP8 on native bytes
    ours, bare = fp8_cycles("fused", cfg), fp8_cycles("fused", off)            # ternary codes unpacked: promoted
    assert len(ours) == 2 and all(a > b for a, b in zip(ours, bare))


@pytest.mark.parametrize("variant, wo, wdown", [
    ("separate_wo-dense_down-dense_pdl", "dense", "dense"), ("separate_wo-sparse_down-dense_pdl", "sparse", "dense"),
    ("separate_wo-masked_down-masked_pdl", "masked", "masked"), ("separate_pdl", "dense", "dense")])
def test_a_token_rows_variant_name_gives_its_wo_and_wdown_kinds_and_masked_ones_skip(variant, wo, wdown):
    from sim.validation.whole_token import _row_trace
    row = dict(op="token_decode", precision="a4.8", variant=variant, K=2048, N=4096, M=1, sparsity=0.84, plan="",
               kernel="7b_a4.8", kv_bits=3.0)
    t, plan = _row_trace(pd.Series(row))
    assert (plan["wo"], plan["wdown"]) == (wo, wdown)
    skip = t.groupby("op").row_skip.first()
    assert skip["o_proj"] == (0.5 if wo != "dense" else 0.0)
    assert skip["down_proj"] == (0.84 if wdown != "dense" else 0.0)


def test_an_unknown_gemv_kind_in_a_variant_name_is_refused():
    from sim.validation.whole_token import _row_trace
    row = dict(op="token_decode", precision="a4.8", variant="separate_wo-blocked_down-dense_pdl", K=2048, N=4096,
               M=1, sparsity=0.5, plan="", kernel="7b_a4.8", kv_bits=3.0)
    with pytest.raises(ValueError, match="wo-'blocked'.*known"):
        _row_trace(pd.Series(row))


def test_only_a_listed_sparse_gemv_pays_its_quantizers_index_list():
    listed = pd.DataFrame(block_ops("a4.8", {"prologue": "separate", "wo": "sparse", "wdown": "sparse",
                                             "down_skip": 0.8}, 1, 2048))
    masked = pd.DataFrame(block_ops("a4.8", {"prologue": "separate", "wo": "masked", "wdown": "masked",
                                             "down_skip": 0.8}, 1, 2048))
    lists = listed[listed.op.str.startswith("nzlist")]
    assert list(lists.op) == ["nzlist_o", "nzlist_down"] and lists.fused.all()      # inside the quantizers' launches
    assert list(lists.N) == [4096, 11008] and not masked.op.str.startswith("nzlist").any()
    assert _launches(listed.to_dict("records")) == _launches(masked.to_dict("records")) == 9


@pytest.mark.parametrize("dp, kernel, variant, kv_bits, launches", [
    # fp16_decode_step: 9 (fp32 RMSNorm) + QKV + 10 (RoPE of q, k) + 2 (cache slices) + SDPA + transpose + Wo
    # + residual + 9 + gate/up + SiLU, product + Wdown + residual
    ("fp16", "block_fp16", "torch_eager", 16.0, 40),
    # KernelBlock.forward at B = 1: 4 x (quantizer + GEMV) + 10 + 2 + SDPA + transpose + 2 residuals + SiLU, product
    ("b1.58", "block_b1.58", "per_operator", 16.0, 26),
    # the 4-bit cache: k / v copies + kv_write instead of the slices, the query copy + split kernel + combine
    ("b1.58", "block_b1.58-kv4", "per_operator", 4.0, 28),
    # a4.8: the 3-bit cache as the 4-bit one, the GLU inside the Wdown quantizer
    ("a4.8", "block_a4.8", "per_operator", 3.0, 26)])
def test_an_eager_decode_block_replays_every_launch_of_its_program(dp, kernel, variant, kv_bits, launches):
    from sim.validation.whole_token import _launch_count, _row_trace
    row = pd.Series(dict(op="block_decode", precision=dp, kernel=kernel, variant=variant, K=2048, N=4096, M=1,
                         sparsity=0.66 if dp == "a4.8" else 0.0, kv_bits=kv_bits, plan=""))
    trace, plan = _row_trace(row)
    assert _launch_count(trace) == launches
    assert (trace["fused"] == (trace["launches"] == 0)).all()
    if dp == "a4.8":      # B = 1: listed sparse Wo and Wdown, the quantizers writing their index lists
        assert plan["wo"] == plan["wdown"] == "sparse" and {"nzlist_o", "nzlist_down"} <= set(trace.op)
        assert trace.loc[trace.op == "down_proj", "row_skip"].iloc[0] == pytest.approx(0.66)
