"""The benchmark's CPU-side parts: spreads of timings, keyword-only rows, the tables it writes, the goal
verdicts, and that no kernel module imports the benchmark."""
import ast
import json
from pathlib import Path

import pandas as pd
import pytest

import contract.kernels  # noqa: F401 - registers board_energy
from contract import read_table, validate
from kernels.bench.block import choices_from_rows
from kernels.bench.goals import (
    GOAL_COLUMNS,
    all_goals,
    attention_goals,
    decode_block_goals,
    gemv_floor_goals,
    goals_rows,
    launch_floor_goals,
    persistent_goals,
    prefill_goals,
    serving_goals,
    token_goals,
)
from kernels.bench.harness import MeasurementLog, Timing, write_outputs
from kernels.block import DecodePlan

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(gpu="TestGPU", torch="0", triton="0", cuda="0", date="2026-01-01T00:00:00+00:00", command="test")


def test_timing_keeps_median_quartiles_and_extremes():
    t = Timing.from_samples([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (t.median, t.p25, t.p75, t.min, t.max, t.n) == (3.0, 2.0, 4.0, 1.0, 5.0, 5)
    assert t.scaled(2).median == 1.5 and t.scaled(2).n == 5
    with pytest.raises(ValueError):
        Timing.from_samples([])


def _row(log, **kw):
    base = dict(impl="ours", precision="x", M=1, N=1, K=1, bytes=1.0, ops=0.0, exact=True, cuda_graph=True)
    base.update(kw)
    us = base.pop("us")
    return log.add(timing=Timing.from_samples([us * 0.9, us, us * 1.1]), **base)


def test_rows_are_keyword_only_and_written_as_a_valid_measured_trace(tmp_path):
    log = MeasurementLog(ENV)
    with pytest.raises(TypeError):
        log.add("gemv", "k", "ours", "x", 1, 1, 1, Timing.from_samples([1.0]), 1.0, 0.0, True)   # noqa
    _row(log, op="gemv", kernel="ours_w158a8", us=2.0)
    log.energy.append(dict(datapath="a4.8", phase="decode", scope="7b_token", steps=3, tokens=3.0, seconds=1.0,
                           joules=2.0, mean_power_w=2.0, max_power_w=2.5, idle_power_w=1.0, j_per_token=0.67,
                           j_per_token_above_idle=0.33, us_per_step=3.0, layers_per_step=32, samples=5,
                           source="nvml_total_energy", note="", **{k: ENV[k] for k in ("gpu", "torch", "triton",
                                                                                           "cuda", "date")}))
    write_outputs(log, tmp_path, {"board_energy": (pd.DataFrame(log.energy), "board_energy")})
    df = read_table(tmp_path / "measured_trace.parquet", "measured_trace")
    assert list(df["us"]) == [2.0] and float(df["us_p25"][0]) < 2.0 < float(df["us_p75"][0])
    validate(read_table(tmp_path / "board_energy.csv"), "board_energy")
    assert json.loads((tmp_path / "bench_log.json").read_text())["rows"][0]["kernel"] == "ours_w158a8"


def test_a_sweep_winner_lands_in_the_logs_table_not_in_a_module():
    log = MeasurementLog(ENV)
    best = log.pick("gemv", "K=64,N=8", [(3.0, True, dict(BN=8)), (1.0, False, dict(BN=16)),
                                         (2.0, True, dict(BN=32))])
    assert best == dict(BN=32) and log.tuned.lookup("gemv", N=8, K=64) == dict(BN=32)


def test_goal_verdicts_from_rows_measured_in_one_run():
    log = MeasurementLog(ENV)
    _row(log, op="block_decode", kernel="block_fp16", K=2048, us=200.0, floor_us=96.0, variant="torch_eager")
    _row(log, op="block_decode", kernel="block_fp16", K=2048, us=150.0, floor_us=96.0, variant="torch_compile")
    _row(log, op="block_decode", kernel="block_a4.8", K=2048, us=25.0, floor_us=13.0, variant="fused")
    _row(log, op="block_decode", kernel="block_b1.58", K=2048, us=40.0, floor_us=18.0, variant="fused")
    goals = {g.goal.split(" >=")[0]: g for g in decode_block_goals(log.rows)}
    assert goals["7B block decode a4.8"].value == 6.0 and goals["7B block decode a4.8"].verdict == "met"
    assert goals["7B block decode b1.58"].value == 3.75 and goals["7B block decode b1.58"].verdict == "missed"
    _row(log, op="gemv", kernel="ours_w158a8", N=4096, K=4096, us=5.0)
    _row(log, op="floor", kernel="floor_read", us=4.5, label="packed 4096x4096", pdl=False)
    (g,) = gemv_floor_goals(log.rows)
    assert g.verdict == "met" and abs(g.value - 5.0 / 4.5) < 1e-12
    assert all(a.verdict == "not measured" for a in attention_goals(log.rows))
    assert not any(g.verdict == "met" and g.value != g.value for g in all_goals(log.rows))   # NaN is never met


def test_no_kernel_module_imports_the_benchmark():
    for path in sorted((ROOT / "kernels").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.startswith("kernels.bench") for n in names if path.name != "cli.py"), path


def test_serving_goal_compares_our_fastest_with_the_best_baseline_per_shape():
    log = MeasurementLog(ENV)
    for kernel, us in (("ours_w158a8", 10.0), ("ours_w158a4_fp8", 8.0), ("cublas_fp16", 30.0),
                       ("cublas_fp8_w8a8", 16.0), ("torch_int4_w4a16", 12.0)):
        _row(log, op="gemm", kernel=kernel, M=8, N=64, K=32, us=us, regime="serving", floor_us=4.0)
        _row(log, op="gemm", kernel=kernel, M=128, N=64, K=32, us=us * (2 if kernel.startswith("ours") else 1),
             regime="serving", floor_us=4.0)
    goals = {g.goal.split(" 64x32")[0]: g for g in serving_goals(log.rows)}
    assert goals["serving GEMM M=8"].value == 12.0 / 8.0 and goals["serving GEMM M=8"].verdict == "met"
    assert goals["serving GEMM M=128"].value == 12.0 / 16.0 and goals["serving GEMM M=128"].verdict == "missed"
    assert "3.00x" in goals["serving GEMM M=8"].floor                   # best possible: 12 us / 4 us


def test_serving_goal_shows_the_decode_free_kernel_and_cublas_int8_of_the_same_run():
    log = MeasurementLog(ENV)
    for kernel, us, exact in (("ours_w158a8", 20.0, True), ("cublas_fp8_w8a8", 16.0, False),
                              ("ours_int8_nodecode", 19.0, True), ("ours_int8_nodecode_cfg", 17.5, True),
                              ("ours_int8_nodecode_cfg", 9.0, False), ("cublas_int8", 15.0, False)):
        _row(log, op="gemm", kernel=kernel, M=128, N=64, K=32, us=us, regime="serving", floor_us=4.0, exact=exact)
    g = serving_goals(log.rows)[0]
    assert g.value == 16.0 / 20.0                       # the stage-out rows are not ours' candidates
    assert "same tile 19.00 us" in g.floor and "fastest tile 17.50 us" in g.floor      # the inexact 9 us is not
    assert "cuBLAS INT8 on the codes 15.00 us" in g.floor and g.floor.startswith("ours' weight bytes")


def test_decode_free_serving_tiles_are_the_sweep_without_decode_keys_each_once():
    from kernels.bench.gemm import DECODE_KEYS, decode_free_candidates
    from kernels.configs import SMALL_M_GEMM_CANDIDATES
    tiles = decode_free_candidates()
    assert all(not set(t) & set(DECODE_KEYS) for t in tiles)
    assert len(tiles) == len({json.dumps(t, sort_keys=True) for t in tiles})
    plain = {json.dumps({k: v for k, v in c.items() if k not in DECODE_KEYS}, sort_keys=True)
             for c in SMALL_M_GEMM_CANDIDATES}
    assert {json.dumps(t, sort_keys=True) for t in tiles} == plain
    # hand-worked: the 16x32x512 tile is in the sweep plain and with SWAR; without its decode key it is one tile
    one = dict(BM=16, BN=32, BK=512, num_warps=4, num_stages=3)
    assert one in SMALL_M_GEMM_CANDIDATES and dict(one, SWAR=True) in SMALL_M_GEMM_CANDIDATES
    assert tiles.count(one) == 1


def test_token_goals_take_the_strongest_b158_and_rows_become_a_table():
    log = MeasurementLog(ENV)
    _row(log, op="token_decode", kernel="7b_a4.8", M=1, K=2048, us=625.0, floor_us=500.0, bytes=2e9)
    _row(log, op="token_decode", kernel="7b_b1.58", M=1, K=2048, us=1000.0, floor_us=600.0)
    _row(log, op="token_decode", kernel="7b_b1.58-kv4", M=1, K=2048, us=800.0, floor_us=550.0)
    goals = {g.goal: g for g in token_goals(log.rows)}
    a = goals["7B token B=1 ctx=2048 a4.8 >= 1500 tok/s"]
    assert a.value == 1600.0 and a.verdict == "met" and "2000 tok/s" in a.floor
    assert goals["7B token B=1 ctx=2048 b1.58 >= 1400 tok/s"].value == 1250.0          # kv4 is the strongest
    assert goals["7B token B=1 ctx=2048 a4.8 >= 70% of its bytes floor"].value == 0.8
    assert goals["7B token B=1 ctx=2048 a4.8 >= 1.15x strongest b1.58"].value == 800.0 / 625.0
    assert goals["7B token B=1 ctx=32768 a4.8 >= 1.3x strongest b1.58"].verdict == "not measured"
    rows = goals_rows(list(goals.values()))
    assert set(rows[0]) == set(GOAL_COLUMNS) and len(rows) == len(goals)


def test_attention_goal_ships_only_kernels_checked_within_tolerance():
    log = MeasurementLog(ENV)
    _row(log, op="attention_decode", kernel="torch_sdpa", M=8, K=32768, us=1300.0, exact=False)
    _row(log, op="attention_decode", kernel="ours_kv3", M=8, K=32768, us=700.0)
    _row(log, op="attention_decode", kernel="ours_kv3_dense", M=8, K=32768, us=500.0, exact=False)   # off: not shipped
    _row(log, op="attention_step", kernel="ours_step_kv3_dense", M=8, K=32768, us=600.0)
    g = next(g for g in attention_goals(log.rows) if g.goal.startswith("KV3 attention B=8 ctx=32768"))
    assert g.value == 1300.0 / 600.0 and g.verdict == "met" and "ours_step_kv3_dense" in g.measured


def test_a48_token_goals_take_the_faster_of_its_cache_layouts():
    log = MeasurementLog(ENV)
    _row(log, op="token_decode", kernel="7b_a4.8", M=1, K=32768, us=900.0, floor_us=500.0)
    _row(log, op="token_decode", kernel="7b_a4.8-dense3", M=1, K=32768, us=750.0, floor_us=450.0)
    _row(log, op="token_decode", kernel="7b_b1.58-kv4", M=1, K=32768, us=1000.0, floor_us=550.0)
    _row(log, op="token_decode", kernel="7b_a4.8-dense3", M=1, K=2048, us=800.0, floor_us=500.0)
    assert "7b_a4.8-dense3" not in str([g.measured for g in token_goals(log.rows)])   # its attention unchecked
    _row(log, op="attention_step", kernel="ours_step_kv3_dense", M=8, K=32768, us=500.0)
    _row(log, op="attention_decode", kernel="ours_kv3_dense", M=8, K=32768, us=400.0, exact=False)  # not its kernel
    goals = {g.goal: g for g in token_goals(log.rows)}
    long = goals["7B token B=1 ctx=32768 a4.8 >= 1.3x strongest b1.58"]
    assert long.value == 1000.0 / 750.0 and long.verdict == "met" and "7b_a4.8-dense3" in long.measured
    assert goals["7B token B=1 ctx=2048 a4.8 >= 1500 tok/s"].value == 1250.0              # the dense row alone
    assert goals["7B token B=1 ctx=2048 a4.8 >= 1.15x strongest b1.58"].verdict == "not measured"


def test_resumed_runs_recover_the_fastest_decode_plan_per_datapath():
    rows = [dict(op="block_decode", kernel="block_a4.8", K=2048, us=70.0, variant="per_operator", plan=""),
            dict(op="block_decode", kernel="block_a4.8", K=2048, us=60.0, variant="separate_pdl",
                 plan=str(dict(prologue="separate", wo="dense", wdown="dense", gate_first=True, pdl=True))),
            dict(op="block_decode", kernel="floor_chain", K=2048, us=20.0, variant="floor_chain", plan="")]
    best = choices_from_rows(rows, 2048)
    assert set(best) == {"a4.8"} and best["a4.8"].us == 60.0
    assert best["a4.8"].plan == DecodePlan(prologue="separate", wo="dense", wdown="dense", pdl=True)


def test_launch_floor_goal_takes_the_chain_of_the_same_launches_and_bytes():
    log = MeasurementLog(ENV)
    _row(log, op="block_decode", kernel="block_a4.8", K=2048, us=30.0, bytes=2.0e7, launches=1, variant="persistent")
    _row(log, op="block_decode", kernel="block_a4.8", K=2048, us=60.0, bytes=2.0e7, launches=9, variant="separate")
    _row(log, op="block_decode", kernel="floor_chain", precision="a4.8", K=2048, us=15.0, bytes=2.0e7, launches=1)
    _row(log, op="block_decode", kernel="floor_chain", precision="a4.8", K=2048, us=12.0, bytes=2.0e7, launches=9)
    _row(log, op="block_decode", kernel="floor_chain", precision="a4.8", K=2048, us=5.0, bytes=4.0e7, launches=1)
    _row(log, op="block_decode", kernel="block_b1.58-kv4", K=2048, us=50.0, bytes=2.5e7, launches=1,
         variant="persistent")
    _row(log, op="block_decode", kernel="block_b1.58-kv4", K=2048, us=40.0, bytes=2.5e7, launches=9,
         variant="separate_pdl")
    goals = {g.goal: g for g in launch_floor_goals(log.rows)}
    g = goals["7B block decode a4.8 <= 1.5x same-bytes-same-launches floor"]
    assert g.value == 2.0 and g.verdict == "missed"            # 30 us over the 1-launch chain of its bytes
    assert goals["7B block decode b1.58-kv4 <= 1.5x same-bytes-same-launches floor"].verdict == "not measured"
    pers = {g.goal: g for g in persistent_goals(log.rows)}
    assert pers["7B block decode a4.8 persistent >= 1.0x per-kernel step"].value == 2.0
    assert pers["7B block decode b1.58-kv4 persistent >= 1.0x per-kernel step"].verdict == "missed"


def test_prefill_profile_sums_each_kernel_per_forward_slowest_first():
    from kernels.bench.profile import kernel_table
    events = [("gemm", 100.0), ("rope", 5.0), ("gemm", 120.0), ("sdpa", 40.0), ("gemm", 110.0), ("gemm", 90.0)]
    rows = kernel_table(events, calls=2)
    assert [r["kernel"] for r in rows] == ["gemm", "sdpa", "rope"]
    assert rows[0] == dict(kernel="gemm", launches=2.0, us=210.0)
    assert sum(r["us"] for r in rows) == pytest.approx(sum(us for _, us in events) / 2)
    with pytest.raises(ValueError, match="calls"):
        kernel_table(events, calls=0)
    with pytest.raises(ValueError, match="negative"):
        kernel_table([("x", -1.0)], calls=1)


def test_prefill_goals_state_the_two_pass_floor_of_the_same_run():
    shape = dict(op="gemm", M=2048, N=4096, K=4096)
    rows = [dict(shape, kernel=k, us=us) for k, us in (
        ("ours_w158a4_fp8", 160.0), ("ours_twopass_w158a4_fp8", 80.0), ("cublas_fp16", 90.0), ("cublas_fp8", 55.0),
        ("ours_w158a8", 121.0), ("ours_twopass_w158a8", 110.0), ("cublas_int8", 84.0),
        ("ours_twopass_decode_only", 11.0), ("ours_twopass_epilogue_only", 14.0))]
    f8, a8, block = prefill_goals(rows)
    assert f8.value == pytest.approx(90.0 / 80.0) and f8.verdict == "missed"
    assert "two-pass floor 11.0 + cublas_fp8 55.0 + 14.0 = 80.0 us (at best 1.12x)" in f8.floor
    assert "11.0 + cublas_int8 84.0 + 14.0 = 109.0 us (at best 0.77x)" in a8.floor
    assert block.verdict == "not measured"
    bare = prefill_goals([r for r in rows if "only" not in r["kernel"]])
    assert bare[0].floor == ""                    # no floor without its rows in the same run


def test_the_prefill_and_serving_sizes_options_take_whole_token_counts_and_refuse_the_rest():
    from kernels.bench.driver import _token_counts, build_parser
    assert _token_counts(build_parser().parse_args([]).prefill_ms) == (2048, 8192)
    assert _token_counts(build_parser().parse_args([]).serving_ms, "--serving-ms") == (8, 16, 32, 128)
    assert _token_counts(" 128,256 ,512") == (128, 256, 512)
    for bad in ("", "128,-1", "0", "1e3", "128;256", "70000"):
        with pytest.raises(ValueError, match="--prefill-ms"):
            _token_counts(bad)
        with pytest.raises(ValueError, match="--serving-ms"):
            _token_counts(bad, "--serving-ms")


def test_the_decode_free_prefill_row_runs_the_tuned_tile_without_its_decode_keys():
    # a tuned tile with a decode key (SWAR, UCODE, JOIN) made the decode-free kernel refuse it and the whole
    # prefill shape was lost; stripped, the same tile runs exact on one-byte codes
    import torch

    from kernels.bench.gemm import DECODE_KEYS, no_decode_config
    from kernels.ternary_gemm import w158_matmul_unpacked
    from model import quant as Q
    tuned = dict(BM=16, BN=32, BK=128, num_warps=1, num_stages=1, SWAR=True, JOIN=False, UCODE=True)
    cfg = no_decode_config(tuned)
    assert cfg == dict(BM=16, BN=32, BK=128, num_warps=1, num_stages=1) and not set(cfg) & set(DECODE_KEYS)
    assert no_decode_config(None) is None and no_decode_config({"SWAR": True}) is None
    g = torch.Generator().manual_seed(4)
    wq = Q.quantize_ternary(torch.randn(24, 160, generator=g))
    q = Q.quantize_int8(torch.randn(5, 160, generator=g))
    y = w158_matmul_unpacked(q.codes, q.scale, wq.codes, wq.scale, config=cfg)
    assert torch.equal(y, Q.qlinear(q, wq))
