"""The GPU mechanisms of a batched decode iteration (batch 2-64): glue launches of eager software, a split
reduction balanced over waves, a weight unpack repeated per activation row, the launch tables of the measured
programs and the preset numbers derived from measured rows (sim.engine, sim.compute.systolic,
sim.validation.eager)."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
from test_sim_synthetic import gemm_row, vector_row

import sim
from contract import read_table
from sim.compute.systolic import split_reduction, unpack_cycles
from sim.config import PRESET_DIR, PRESETS, from_dict, load_yaml
from sim.engine import plan_ops
from sim.validation import fixed_costs, int4_unpack_rate, launch_counts, measured_kv_bits, with_launches
from sim.validation.replay import MEASURED_DIR, compare_measured
from sim.validation.streams import BASELINE_STREAMS, baseline_stream_costs

FP16_GEMV, FP8_GEMM = BASELINE_STREAMS


def _gpu(overhead_ns=1000.0, latency_ns=500.0):
    """h100-like at a 1 GHz clock with the fixed costs given (ns = cycles)."""
    a = sim.load_accelerator("h100-like")
    return a.replace(clock_ghz=1.0, op_overhead_ns=overhead_ns,
                     offchip=dataclasses.replace(a.offchip, latency_ns=latency_ns))


def _trace(rows: list[dict], **cols) -> pd.DataFrame:
    t = pd.DataFrame(rows)
    for k, v in cols.items():
        t[k] = v
    t.attrs = {"phase": "decode", "batch": 8}
    return t


def _cycles(trace: pd.DataFrame, cfg) -> float:
    return sim.simulate(trace, cfg).summary.latency_s * cfg.clock_ghz * 1e9


# ---------------------------------------------------------------- glue launches
def test_each_glue_launch_adds_the_dispatch_and_the_memory_latency_in_series():
    cfg = _gpu(overhead_ns=1000.0, latency_ns=500.0)
    rows = [vector_row("residual", 8, 4096), vector_row("residual", 8, 4096)]   # no bytes from off chip
    one = _cycles(_trace(rows), cfg)
    glued = _cycles(_trace(rows, launches=[1, 4]), cfg)
    assert glued - one == pytest.approx(3 * (1000 + 500), abs=2)       # 3 glue launches on the second op


def test_a_trace_without_the_launch_column_is_one_launch_per_op_and_zero_runs_inside_the_previous():
    cfg = _gpu(overhead_ns=1000.0, latency_ns=0.0)
    rows = [vector_row("residual", 8, 4096), vector_row("residual", 8, 4096)]
    base = _cycles(_trace(rows), cfg)
    assert _cycles(_trace(rows, launches=[1, 1]), cfg) == pytest.approx(base, abs=1)     # switched off
    assert base - _cycles(_trace(rows, launches=[1, 0]), cfg) == pytest.approx(1000, abs=2)


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_a_launch_count_that_is_not_a_whole_number_is_refused_naming_the_op(bad):
    cfg = _gpu()
    t = _trace([vector_row("residual", 8, 4096)], launches=[bad])
    with pytest.raises(ValueError, match="residual.*launches must be a whole number"):
        sim.simulate(t, cfg)


# ---------------------------------------------------------------- balanced split reduction
def _tensor_cores(**kw):
    return dataclasses.replace(sim.load_accelerator("h100-like").arrays[0], **kw)


def test_a_balanced_split_spreads_86_tiles_on_132_copies_within_a_rounding_of_evenly_by_hand():
    # M = 8, N = 11008: ceil(11008 / 128) = 86 tiles of K = 4096.  One wave of whole tiles: 4096 (46 copies
    # idle); 3 parts: ceil(258 / 132) = 2 waves x 1366 = 2732; 72 parts: ceil(6192 / 132) = 47 waves x 57 = 2679,
    # against the even spread 86 x 4096 / 132 = 2668.6.
    tc = _tensor_cores(split_reduction=True, split_balanced=True)
    k, parts = split_reduction(8, 11008, 4096, tc)
    assert (k, parts) == (57, 72)
    assert -(-86 * parts // 132) * k == 2679 < 2732 < 4096
    off = _tensor_cores(split_reduction=True, split_balanced=False)      # switched off: copies // tiles = 1
    assert split_reduction(8, 11008, 4096, off) == (4096, 1)


@pytest.mark.parametrize("M, N, K", [(8, 4096, 4096), (32, 11008, 4096), (64, 4096, 11008), (8, 12288, 4096)])
def test_a_balanced_split_is_never_slower_than_one_wave_of_parts_nor_faster_than_an_even_spread(M, N, K):
    tiles = -(-M // 128) * -(-N // 128)
    one_wave = -(-K // max(1, 132 // tiles))
    k, parts = split_reduction(M, N, K, _tensor_cores(split_reduction=True, split_balanced=True))
    took = -(-tiles * parts // 132) * k
    assert tiles * K / 132 <= took <= one_wave
    assert split_reduction(8192, N, K, _tensor_cores(split_reduction=True, split_balanced=True)) == (K, 1)


def test_split_balanced_without_split_reduction_is_refused():
    raw = load_yaml(PRESET_DIR / PRESETS["h100-like"])
    raw["arrays"][0]["split_reduction"] = False
    with pytest.raises(ValueError, match="split_balanced: true needs split_reduction"):
        from_dict(raw, where="h100-like")


# ---------------------------------------------------------------- unpack per activation row block
def test_an_unpack_per_row_repeats_the_weight_decode_for_every_row_by_hand():
    tc = _tensor_cores(split_reduction=False)
    # 32 tiles of 128 x 128 (one wave); a tile unpacks its 128 x 4096 weights: 524288 elements / 2 per cycle
    assert unpack_cycles(32, 4096, 4096, tc, 2.0) == 262144
    # per row: 32 rows, each decoding the tile again
    assert unpack_cycles(32, 4096, 4096, tc, 2.0, m_tile=1) == 32 * 262144
    assert unpack_cycles(32, 4096, 4096, tc, 2.0, m_tile=16) == 2 * 262144


def test_the_preset_field_reaches_the_gemm_and_absent_it_unpacks_once_per_tile():
    cfg = sim.load_accelerator("h100-like").replace(clock_ghz=1.0, op_overhead_ns=0.0)
    tr = _trace([gemm_row("q_proj", 32, 4096, 4096, wfmt="int4", wbits=4.0)])
    (with_rows,) = plan_ops(tr, cfg)
    tc = dataclasses.replace(cfg.arrays[0], unpack_m_tile={})
    (once,) = plan_ops(tr, cfg.replace(arrays=(tc, cfg.arrays[1])))
    rate = cfg.arrays[0].unpack["int4"]
    k, parts = split_reduction(32, 4096, 4096, cfg.arrays[0])
    waves = -(-32 * parts // 132)                 # 32 tiles, each cut into parts of k, in waves over 132 copies
    assert with_rows.unit_cycles == waves * -(-(32 * 128 * k) // rate)       # 32 rows decode a 128 x k part
    # switched off: one decode per tile part (waves x 227 cycles), below the MMA stream, which then bounds it
    assert once.unit_cycles < with_rows.unit_cycles / 4 and once.limit == "compute"


def test_a_packed_kv_cache_in_prefill_attention_is_decoded_once_per_tile_not_once_per_query_row():
    cfg = sim.load_accelerator("h100-like").replace(clock_ghz=1.0, op_overhead_ns=0.0)
    kv = 2048 * 128 * 32 * 0.5
    tr = _trace([gemm_row("attn_qk", 2048, 2048, 128, phase="prefill", wfmt="kv-int4", wbits=4.0, count=32,
                          op_class="attention", kv_read=kv)])
    tc = dataclasses.replace(cfg.arrays[0], unpack_m_tile={})
    (with_field,) = plan_ops(tr, cfg)
    (without,) = plan_ops(tr, cfg.replace(arrays=(tc, cfg.arrays[1])))
    # the weight-only GEMM's per-row decode must not reach attention: 2048 query rows would decode the
    # cache 2048 times (16x the per-tile decode of 128-row tiles)
    assert with_field.unit_cycles == without.unit_cycles


@pytest.mark.parametrize("tile, match", [({"int8": 1}, "has no unpack rate"), ({"int4": 1.5}, "whole number"),
                                         ({"int4": 0}, "unpack_m_tile")])
def test_a_bad_unpack_row_tile_is_refused_naming_the_field(tile, match):
    raw = load_yaml(PRESET_DIR / PRESETS["h100-like"])
    raw["arrays"][0]["unpack_m_tile"] = tile
    with pytest.raises(ValueError, match=match):
        from_dict(raw, where="h100-like")


# ---------------------------------------------------------------- derived preset numbers
def test_the_int4_rate_is_recovered_from_rows_made_with_a_known_rate():
    # rate 50 per cycle per copy, 10 copies at 1 GHz, 1000 ns launch: M N K / (50 x 10 x 1e9) s + 1 us
    rows = pd.DataFrame([dict(op="gemm", kernel="torch_int4_w4a16", M=128, N=n, K=1000,
                              us=1.0 + 128 * n * 1000 / (50 * 10 * 1e9) * 1e6) for n in (1000, 2000, 4000)])
    assert int4_unpack_rate(rows, copies=10, clock_ghz=1.0, launch_ns=1000.0) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="no torch_int4_w4a16 gemm rows at M = 128"):
        int4_unpack_rate(rows.assign(M=32), copies=10, clock_ghz=1.0, launch_ns=1000.0)


def _bare(cfg):
    """``cfg`` without any stream ramp or efficiency (the preset the stream costs are derived on)."""
    return dataclasses.replace(cfg, arrays=tuple(dataclasses.replace(a, stream_ramp_ns={}, stream_efficiency={})
                                                 for a in cfg.arrays))


def test_h100_like_carries_the_fixed_costs_int4_rate_and_stream_costs_its_measured_rows_give():
    cfg = sim.load_accelerator("h100-like")
    costs = fixed_costs(read_table(MEASURED_DIR / "measured_h100_kernels2.parquet", "measured_trace"))
    assert cfg.op_overhead_ns + cfg.offchip.latency_ns == pytest.approx(costs.launch_ns, abs=0.1)
    serving = read_table(MEASURED_DIR / "measured_h100_serving.parquet", "measured_trace")
    rate = int4_unpack_rate(serving, cfg.arrays[0].count, cfg.clock_ghz, costs.launch_ns)
    assert cfg.arrays[0].unpack["int4"] == pytest.approx(rate, abs=0.01)
    measured = read_table(MEASURED_DIR / "measured_h100_kernels2.parquet", "measured_trace")
    gemv = baseline_stream_costs(measured, _bare(cfg), FP16_GEMV, 50e6)
    assert (cfg.arrays[1].stream_ramp_ns, cfg.arrays[1].stream_efficiency) == ({"fp16": gemv.ramp_ns}, {})
    fp8 = baseline_stream_costs(serving, _bare(cfg), FP8_GEMM, 50e6)
    assert cfg.arrays[0].stream_ramp_ns == {"fp8": fp8.ramp_ns}
    assert cfg.arrays[0].stream_efficiency == {"fp8": pytest.approx(fp8.efficiency, abs=1e-4)}
    assert 0.5 < fp8.efficiency < 1.0 and fp8.ramp_ns > 0     # cuBLAS FP8 at batch 8 streams below the copy rate


def _baseline_rows(kernel: str, op: str, M: int, precision: str, us_small: float, us_large: float) -> pd.DataFrame:
    base = dict(op=op, kernel=kernel, impl="baseline", precision=precision, M=M, sparsity=0.0,
                cuda_graph=True, bytes=0.0, ops=0.0, gbps=0.0, tops=0.0, exact=False, gpu="g", torch="t",
                triton="t", cuda="c", date="d")
    return pd.DataFrame([dict(base, N=4096, K=4096, us=us_small), dict(base, N=22016, K=4096, us=us_large)])


def _cublas_gemv_rows(us_small: float, us_large: float) -> pd.DataFrame:
    return _baseline_rows("cublas_fp16", "gemv", 1, "fp16", us_small, us_large)


def _fp8_rows(us_small: float, us_large: float) -> pd.DataFrame:
    return _baseline_rows("cublas_fp8_w8a8", "gemm", 8, "w8a8-fp8", us_small, us_large)


def _with(cfg, array: str, operand: str, ramp_ns: float, efficiency: float | None = None):
    return dataclasses.replace(cfg, arrays=tuple(
        dataclasses.replace(a, stream_ramp_ns={operand: ramp_ns},
                            stream_efficiency={} if efficiency is None else {operand: efficiency})
        if a.name == array else a for a in cfg.arrays))


def test_the_cublas_gemv_ramp_is_the_small_shapes_excess_over_the_replay_and_lands_on_the_gemvs_alone():
    bare = _bare(sim.load_accelerator("h100-like"))
    replay = compare_measured(_cublas_gemv_rows(1.0, 1.0), bare, flush_dirty_bytes=0.0)[0]["sim_us"].tolist()
    rows = _cublas_gemv_rows(replay[0] + 2.5, replay[1] + 1.0)          # 2.5 us over the replay at 4096 x 4096
    costs = baseline_stream_costs(rows, bare, FP16_GEMV, 0.0)
    assert (costs.ramp_ns, costs.efficiency) == (pytest.approx(2500.0, abs=0.1), 1.0)   # large row: fast enough
    ramped = _with(bare, "cuda_cores", "fp16", 2500.0)
    again = compare_measured(rows, ramped, flush_dirty_bytes=0.0)[0]["sim_us"].tolist()
    assert again == pytest.approx([replay[0] + 2.5, replay[1] + 2.5], abs=0.01)
    with pytest.raises(ValueError, match="already carries an fp16 stream ramp"):
        baseline_stream_costs(rows, ramped, FP16_GEMV, 0.0)
    with pytest.raises(ValueError, match="need cublas_fp16 gemv M=1 rows"):
        baseline_stream_costs(rows.iloc[:1], bare, FP16_GEMV, 0.0)
    with pytest.raises(ValueError, match="no ramp"):                        # faster than the replay itself
        baseline_stream_costs(_cublas_gemv_rows(replay[0] - 1.0, replay[1]), bare, FP16_GEMV, 0.0)


def test_a_stream_made_with_a_known_ramp_and_efficiency_gives_them_back():
    bare = _bare(sim.load_accelerator("h100-like"))
    truth = _with(bare, "tensor_cores", "fp8", 3000.0, 0.75)
    made = compare_measured(_fp8_rows(1.0, 1.0), truth, flush_dirty_bytes=0.0)[0]["sim_us"].tolist()
    costs = baseline_stream_costs(_fp8_rows(*made), bare, FP8_GEMM, 0.0)
    assert costs.ramp_ns == pytest.approx(3000.0, rel=0.01)
    assert costs.efficiency == pytest.approx(0.75, abs=0.002)


def test_a_stream_ramp_hides_under_compute_so_a_gemm_never_gets_faster_with_more_rows():
    cfg = _with(sim.load_accelerator("h100-like"), "tensor_cores", "fp8", 20000.0, 0.8)
    bare = _bare(sim.load_accelerator("h100-like"))
    times, plain = [], []
    for m in (8, 64, 256, 512, 1024, 2048, 4096, 8192):
        rows = _fp8_rows(1.0, 1.0).assign(M=m).iloc[:1]
        times.append(compare_measured(rows, cfg, flush_dirty_bytes=0.0)[0]["sim_us"].iloc[0])
        plain.append(compare_measured(rows, bare, flush_dirty_bytes=0.0)[0]["sim_us"].iloc[0])
    assert all(b >= a - 1e-6 for a, b in zip(times, times[1:]))          # monotonic in the work
    assert times[0] > plain[0] + 19.0                                      # a streaming step pays the whole ramp
    assert times[-1] == pytest.approx(plain[-1], rel=1e-3)                 # compute-bound: hidden


# ---------------------------------------------------------------- launch tables of the measured programs
LAYER_OPS = {   # the model trace's ops of one decoder block, by datapath (model/trace.py)
    "fp16": ["rmsnorm_attn", "q_proj", "k_proj", "v_proj", "rope", "attn_qk", "softmax", "attn_pv",
             "rmsnorm_attn_sub", "o_proj", "rmsnorm_ffn", "gate_proj", "up_proj", "glu", "rmsnorm_ffn_sub",
             "down_proj"],
    "quant": ["rmsnorm_attn", "quant_qkv", "q_proj", "k_proj", "v_proj", "rope", "attn_qk", "softmax", "attn_pv",
              "rmsnorm_attn_sub", "quant_o", "o_proj", "rmsnorm_ffn", "quant_ffn", "gate_proj", "up_proj", "glu",
              "rmsnorm_ffn_sub", "quant_down", "down_proj"],
}


def _layer(ops: list[str], wfmt: str, kv: str = "kv-fp16", extra: tuple = ()) -> pd.DataFrame:
    ops = list(ops)
    for name, after in extra:
        ops.insert(ops.index(after) + 1, name)
    cls = {o: ("gemm" if o.endswith("_proj") else "attention" if o.startswith("attn") else "vector") for o in ops}
    fmt = {o: (wfmt if cls[o] == "gemm" else kv if cls[o] == "attention" else "none") for o in ops}
    return pd.DataFrame({"op": ops, "op_class": [cls[o] for o in ops], "weight_format": [fmt[o] for o in ops]})


@pytest.mark.parametrize("program, datapath, layer, launches", [
    # torch eager: 2 RMSNorms x 9, fused QKV 1, RoPE 10 + 2 cache writes, SDPA 1 + its output copy 1,
    # Wo + add 2, fused gate/up 1, SiLU and product 2, Wdown + add 2 = 40
    ("torch_eager", "fp16", _layer(LAYER_OPS["fp16"], "fp16"), 40),
    ("torch_eager", "w4a16", _layer(LAYER_OPS["fp16"], "int4"), 40 + 4 * 2),            # cast in, cast out
    ("torch_eager", "w8a8-fp8", _layer(LAYER_OPS["quant"], "fp8"), 40 + 4 * 7 + 4),     # quantize 7, cast out
    # ours: 4 norm+quantizer programs, 4 GEMMs, RoPE 10 + 2 cache writes, SDPA + copy 2, 2 adds, GLU 2 = 26
    ("per_operator", "b1.58", _layer(LAYER_OPS["quant"], "ternary"), 26),
    # quantized KV: 2 contiguous copies + kv_write 3, no fp16 cache writes, q copy + split + combine 3
    ("per_operator", "b1.58", _layer(LAYER_OPS["quant"], "ternary", "kv-int4", (("kv_quant", "rope"),)), 28),
    ("per_operator", "a4.8", _layer(LAYER_OPS["quant"], "ternary", "kv-int3",
                                    (("kv_quant", "rope"), ("topk_o", "rmsnorm_attn_sub"))), 26),   # GLU in Wdown's
])
def test_the_measured_programs_launch_the_kernels_counted_from_their_code(program, datapath, layer, launches):
    out = with_launches(layer, program, datapath)
    assert int(out["launches"].sum()) == launches
    assert out["launches"].min() >= 0 and "launches" not in layer


def test_the_shard_linear_program_launches_its_quantizers_gemms_adds_and_glu_counted_by_hand():
    ops = ["quant_qkv", "q_proj", "k_proj", "v_proj", "quant_o", "o_proj", "quant_ffn", "gate_proj", "up_proj",
           "glu", "quant_down", "down_proj"]
    out = with_launches(_layer(ops, "fp8"), "shard_linear", "w8a8-fp8")
    # 4 quantizers x 7 torch kernels (Fp8Linear.quantize), each GEMM and the cast of its bf16 output 4 x 2, the Wo
    # and Wdown residual adds 2, relu, square, product 3
    assert int(out["launches"].sum()) == 4 * 7 + 4 * 2 + 2 + 3
    with pytest.raises(ValueError, match="W8A8-FP8 only"):
        launch_counts("shard_linear", "b1.58", False)
    with pytest.raises(ValueError, match="no count for trace op.*'rope'"):
        with_launches(_layer(ops + ["rope"], "fp8"), "shard_linear", "w8a8-fp8")


def test_an_op_or_program_without_a_launch_count_is_refused_naming_it():
    with pytest.raises(ValueError, match="no count for trace op.*'mystery_op'"):
        with_launches(_layer(["mystery_op", "q_proj"], "fp16"), "torch_eager", "fp16")
    with pytest.raises(ValueError, match="measured program 'fused_pdl' has no launch table"):
        launch_counts("fused_pdl", "b1.58", False)


def test_the_a48_tokens_ran_their_3_bit_cache_whatever_the_row_records():
    assert measured_kv_bits("a4.8", 16.0) == 3
    assert measured_kv_bits("b1.58", 4.0) == 4 and measured_kv_bits("fp16", 16.0) == 16
    assert measured_kv_bits("b1.58", float("nan")) is None
