"""The GPU mechanisms behind the whole-token replay: latency-bound row reductions, split-reduction kernels,
occupancy-limited reads, and a loader whose stream-or-gather choice never makes a costlier gather faster
(sim.engine.plan, sim.compute.systolic, sim.validation.reductions)."""
from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest
from test_sim_synthetic import decoder_trace, gemm_row, vector_row

import sim
from contract import validate
from sim.compute.systolic import split_reduction, systolic_cycles, unpack_cycles
from sim.engine import plan_ops
from sim.engine.plan import read_share
from sim.validation.reductions import list_passes, row_reduction_costs, shared_rows, wide_row_lanes


def _gpu(**vector):
    """h200-triton at a 1 GHz clock, no fixed costs, the vector unit's row rule as given (rows sharing a unit:
    none unless given)."""
    a = sim.load_accelerator("h200-triton")
    oc = dataclasses.replace(a.offchip, latency_ns=0.0)
    return a.replace(clock_ghz=1.0, offchip=oc, op_overhead_ns=0.0,
                     vector=dataclasses.replace(a.vector, **{"shared_rows": 0.0, **vector}))


def _trace(rows: list[dict]) -> pd.DataFrame:
    t = pd.DataFrame(rows)
    t.attrs = {"phase": "decode", "batch": 1}
    return t


# ---------------------------------------------------------------- latency-bound row reductions
def test_a_one_row_quantizer_costs_its_passes_on_one_unit_plus_its_reductions_in_series():
    cfg = _gpu(units=4, row_lanes=8.0, reduction_ns=100.0, pow2_rows=False)
    tr = _trace([vector_row("rmsnorm_attn", 1, 4096), vector_row("quant_qkv", 1, 4096),
                 vector_row("topk_o", 1, 4096), vector_row("residual", 1, 4096)])
    got = [p.unit_cycles for p in plan_ops(tr, cfg)]
    # 4096 elements x 2 passes / 8 per cycle + 1 reduction x 100 ns x 1 GHz; TopK: 4 passes, 33 reductions
    assert got[:3] == [4096 * 2 // 8 + 100, 4096 * 2 // 8 + 100, 4096 * 4 // 8 + 33 * 100]
    assert got[3] == 1                     # elementwise: the pooled lanes (4096 / 16896 of a cycle)


def test_an_op_that_states_its_reduction_steps_pays_those_not_its_kinds():
    cfg = _gpu(units=4, row_lanes=8.0, reduction_ns=100.0, pow2_rows=False)
    rows = [dict(vector_row("topk_o", 1, 4096), reduction_steps=12.0), vector_row("topk_o", 1, 4096),
            dict(vector_row("residual", 1, 4096), reduction_steps=12.0)]
    got = [p.unit_cycles for p in plan_ops(_trace(rows), cfg)]
    # an early-stopping search of 12 steps; the other row (NaN) the kind's 33; elementwise stays elementwise
    assert got == [4096 * 4 // 8 + 12 * 100, 4096 * 4 // 8 + 33 * 100, 1]
    with pytest.raises(ValueError, match="reduction_steps must be a number"):
        plan_ops(_trace([dict(vector_row("topk_o", 1, 4096), reduction_steps=-1.0)]), cfg)


def test_rows_past_the_unit_count_run_in_waves_and_a_row_pads_to_a_power_of_two():
    cfg = _gpu(units=4, row_lanes=8.0, reduction_ns=100.0, pow2_rows=True)
    tr = _trace([vector_row("quant_down", 6, 3000)])
    (p,) = plan_ops(tr, cfg)
    assert p.unit_cycles == 2 * (4096 * 2 // 8 + 100)        # ceil(6 / 4) waves of a 4096-wide row


def test_row_reductions_switched_off_take_the_pooled_lanes():
    cfg = _gpu(units=0, row_lanes=8.0, reduction_ns=100.0)
    (p,) = plan_ops(_trace([vector_row("rmsnorm_attn", 1, 4096)]), cfg)
    assert p.unit_cycles == -(-4096 * 2 // cfg.vector.lanes)


def test_the_row_costs_are_recovered_from_two_quantizer_rows_made_with_known_costs():
    truth = _gpu(units=132, row_lanes=6.0, reduction_ns=250.0, pow2_rows=True)
    free = _gpu(units=132, row_lanes=1e6, reduction_ns=0.0, pow2_rows=True)
    rows = []
    for kernel, passes, steps in (("ours_norm_int8", 4, 2), ("ours_norm_topk8", 8, 35)):
        base = sim.validation.compare_measured(_quant_rows([(kernel, 1.0)]), free, flush_dirty_bytes=0.0)[0]
        us = float(base["sim_us"].iloc[0]) + 4096 * passes / 6.0 / 1e3 + steps * 0.25   # at 1 GHz
        rows.append((kernel, us))
    got = row_reduction_costs(_quant_rows(rows), truth)
    assert got.row_lanes == pytest.approx(6.0, rel=1e-3) and got.reduction_ns == pytest.approx(250.0, rel=1e-3)


def test_rows_sharing_a_unit_overlap_their_reductions_not_their_passes():
    cfg = _gpu(units=4, row_lanes=8.0, reduction_ns=100.0, pow2_rows=False, shared_rows=3.0)
    tr = _trace([vector_row("topk_o", 1, 4096), vector_row("topk_o", 8, 4096), vector_row("topk_o", 40, 4096)])
    got = [p.unit_cycles for p in plan_ops(tr, cfg)]
    passes, steps = 4096 * 4 // 8, 33 * 100                 # one row: 4 passes at 8 per cycle, 33 steps of 100 ns
    # one wave: alone on its unit; 2 waves: two rows share a unit; 10 waves: three at most
    assert got == [passes + steps, 2 * (passes + steps // 2), 10 * (passes + steps // 3)]
    off = _gpu(units=4, row_lanes=8.0, reduction_ns=100.0, pow2_rows=False, shared_rows=0.0)
    (p,) = plan_ops(_trace([vector_row("topk_o", 40, 4096)]), off)
    assert p.unit_cycles == 10 * (passes + steps)


def test_the_shared_rows_are_recovered_from_a_long_topk_row_made_with_a_known_overlap():
    truth = _gpu(units=132, row_lanes=6.0, reduction_ns=250.0, pow2_rows=True, shared_rows=2.5)
    rows = _quant_rows([("ours_norm_topk8", 1.0)])
    rows["M"], rows["cuda_graph"] = 2048, False
    rows["us"] = float(sim.validation.compare_measured(rows, truth, flush_dirty_bytes=0.0)[0]["sim_us"].iloc[0])
    assert shared_rows(rows, truth.replace(vector=dataclasses.replace(truth.vector, shared_rows=0.0)),
                       flush_dirty_bytes=0.0) == pytest.approx(2.5, rel=1e-3)
    rows["us"] = 1.0                                        # faster than no reductions at all: the cap
    assert shared_rows(rows, truth, flush_dirty_bytes=0.0) == 64.0


def test_the_index_lists_passes_are_recovered_from_the_list_writing_glu_row():
    truth = _gpu(units=132, row_lanes=6.0, reduction_ns=250.0, pow2_rows=True, row_tile=4096, wide_row_lanes=3.0)
    truth = truth.replace(vector=dataclasses.replace(truth.vector, passes={**truth.vector.passes, "nzlist": 3.5},
                                                     reductions={**truth.vector.reductions, "nzlist": 1}))
    rows = _quant_rows([("ours_norm_int8_glu_nz", 1.0)])
    rows["N"] = 11008
    rows["us"] = float(sim.validation.compare_measured(rows, truth, flush_dirty_bytes=0.0)[0]["sim_us"].iloc[0])
    start = truth.replace(vector=dataclasses.replace(truth.vector, passes={**truth.vector.passes, "nzlist": 1.0}))
    assert list_passes(rows, start, flush_dirty_bytes=0.0) == pytest.approx(3.5, rel=1e-3)
    # the list row adds its passes at the row's own rates and one reduction step: 16384 padded elements
    free = sim.validation.compare_measured(_quant_rows([("ours_norm_int8_glu", 1.0)]).assign(N=11008), truth,
                                           flush_dirty_bytes=0.0)[0]["sim_us"].iloc[0]
    assert rows["us"].iloc[0] - free == pytest.approx((4096 / 6.0 + 12288 / 3.0) * 3.5 / 1e3 + 0.25, rel=1e-3)


def _quant_rows(rows: list[tuple[str, float]]) -> pd.DataFrame:
    recs = [dict(op="quant", kernel=k, impl="ours", precision="int8", M=1, N=4096, K=0, sparsity=0.0,
                 cuda_graph=True, us=us, bytes=0.0, ops=0.0, gbps=0.0, tops=0.0, exact=True, gpu="synthetic",
                 torch="-", triton="-", cuda="-", date="2000-01-01") for k, us in rows]
    return validate(pd.DataFrame(recs), "measured_trace")


# ---------------------------------------------------------------- split reduction (flash-decoding)
def test_an_attention_op_with_fewer_folds_than_copies_splits_its_context_over_the_idle_copies():
    cfg = sim.load_accelerator("h200-triton")
    cores = next(a for a in cfg.arrays if a.name == "cuda_cores")          # 1 x 128, 132 copies, split on
    assert split_reduction(1, 128, 2048, cores, 32) == (512, 128)          # 32 folds -> 132 // 32 = 4 parts
    rate = 2.0
    # one wave of 128 folds, each streaming 512 keys at 2 per cycle, + the 1 + 128 - 2 cycles of skew
    assert systolic_cycles(1, 128, 2048, cores, rate, 32) == 512 // 2 + 127
    off = dataclasses.replace(cores, split_reduction=False)
    assert systolic_cycles(1, 128, 2048, off, rate, 32) == 2048 // 2 + 127
    # unpack: 128 x 512 elements per fold at 8 per cycle, one wave (off: 128 x 2048 per fold)
    assert unpack_cycles(1, 128, 2048, cores, 8.0, 32) == 128 * 512 // 8
    assert unpack_cycles(1, 128, 2048, off, 8.0, 32) == 128 * 2048 // 8
    assert split_reduction(1, 128, 2048, cores, 200) == (2048, 200)       # enough folds: no split


# ---------------------------------------------------------------- occupancy-limited reads
def _attention_pv(count: int, ctx: int = 2048) -> dict:
    kv = count * ctx * 128 * 2.0
    return gemm_row("attn_pv", 1, 128, ctx, count=count, op_class="attention", wfmt="kv-fp16", wbits=16.0,
                    kv_read=kv)


def test_an_op_with_32_units_on_132_copies_reads_at_32_of_132_of_the_bandwidth():
    a = _gpu()
    cores = tuple(dataclasses.replace(x, split_reduction=False, split_balanced=False) for x in a.arrays)
    cfg = a.replace(arrays=cores, occupancy_limited_reads=True)
    tr = _trace([_attention_pv(32)])
    (p,) = plan_ops(tr, cfg)
    assert read_share(tr.iloc[0].to_dict(), p, cfg) == pytest.approx(32 / 132)
    res = sim.simulate(tr, cfg)
    stream = tr.kv_bytes_read[0] / cfg.offchip_bytes_per_cycle
    assert res.ops.memory_cycles[0] == pytest.approx(stream * 132 / 32, abs=16)   # whole cycles per tile
    full = sim.simulate(tr, cfg.replace(occupancy_limited_reads=False))      # the switch off: every copy's share
    assert full.ops.memory_cycles[0] == pytest.approx(stream, abs=16)
    split = sim.simulate(tr, a.replace(occupancy_limited_reads=True))        # split into 128 units
    assert split.ops.memory_cycles[0] == pytest.approx(stream * 132 / 128, abs=16)


def test_gemms_and_asic_presets_keep_the_whole_bandwidth():
    cfg = _gpu().replace(occupancy_limited_reads=True)
    tr = _trace([gemm_row("o_proj", 1, 4096, 4096, wfmt="ternary", wbits=2.0, afmt="int8", abits=8)])
    (p,) = plan_ops(tr, cfg)
    assert read_share(tr.iloc[0].to_dict(), p, cfg) == 1.0
    for name in ("fp16", "b1.58", "a4.8"):
        asic = sim.load_accelerator(name)
        assert not asic.occupancy_limited_reads and asic.vector.units == 0


# ---------------------------------------------------------------- the loader's stream-or-gather choice
@pytest.mark.parametrize("knob, values", [("offchip.row_miss_ns", (0.0, 0.1, 0.25, 0.5, 1.0, 3.0)),
                                          ("sparsity.index_latency_ns", (0.0, 20.0, 100.0, 400.0, 2000.0))])
def test_a_costlier_gather_never_speeds_a_step_up(knob, values):
    tr = decoder_trace("a4.8", layers=2, head=False)
    base = sim.load_accelerator("a4.8")
    part, key = knob.split(".")
    times = []
    for v in values:
        cfg = base.replace(**{part: dataclasses.replace(getattr(base, part), **{key: v})})
        times.append(sim.simulate(tr, cfg).summary.cycles)
    assert all(b >= a for a, b in zip(times, times[1:])), dict(zip(values, times))


def test_the_loader_gathers_only_when_the_gather_with_its_fixed_costs_beats_a_stream():
    cfg = sim.load_accelerator("a4.8")
    tr = decoder_trace("a4.8", layers=1, head=False)
    row = tr[tr.op == "o_proj"].iloc[0].to_dict()
    stream = row["weight_bytes"] / cfg.offchip_bytes_per_cycle
    eff = sim.engine.plan.scatter_efficiency(sim.engine.plan._row_bytes(row), cfg)
    fixed = sim.engine.plan.index_cycles(int(row["K"]), cfg) + math.ceil(cfg.offchip.latency_ns * cfg.clock_ghz)
    want = (1 - row["row_skip"]) * stream / eff + fixed < stream
    assert sim.engine.plan.fetches_survivors(row, cfg) == want
    # with the fixed costs as large as the stream saving, the loader streams
    slow = cfg.replace(sparsity=dataclasses.replace(cfg.sparsity, index_latency_ns=stream / cfg.clock_ghz))
    assert not sim.engine.plan.fetches_survivors(row, slow)


# ---------------------------------------------------------------- the replayed kernels
def test_a_quantizer_row_replays_as_its_vector_ops_in_one_launch():
    row = _quant_rows([("ours_norm_int8_glu", 10.0)]).iloc[0].copy()
    row["N"] = 11008
    tr = sim.validation.measured_row_to_trace(row)
    assert list(tr.op) == ["glu", "rmsnorm", "quant"] and list(tr.fused) == [False, True, True]
    assert tr.act_bytes_in[0] == 2 * 11008 * 2           # the gate and up halves, fp16
    assert tr.weight_bytes[1] == 2 * 11008 and tr.weight_bytes[2] == 0   # the RMSNorm's gains
    radix = row.copy()
    radix["kernel"] = "ours_norm_topk8_radix"              # another reduction count: not replayed
    with pytest.raises(ValueError, match="no op-trace equivalent"):
        sim.validation.measured_row_to_trace(radix)


def test_an_attention_step_is_one_launch_and_a_decode_attention_two():
    base = _quant_rows([("x", 1.0)]).iloc[0].copy()
    for k, v in dict(precision="fp16", M=1, N=32, K=2048).items():
        base[k] = v
    step, dec = base.copy(), base.copy()
    step["op"], dec["op"] = "attention_step", "attention_decode"
    tr = sim.validation.measured_row_to_trace(step)
    assert list(tr.op) == ["rope", "attn_qk", "softmax", "attn_pv"] and list(tr.fused) == [False, True, True, True]
    assert tr.macs_dense[0] == 2 * 32 * 128               # RoPE of q and k of every head
    assert list(sim.validation.measured_row_to_trace(dec).fused) == [False, True, False]


@pytest.mark.parametrize("vector, field", [({"units": -1}, "vector.units"), ({"units": 1.5}, "vector.units"),
                                           ({"reduction_ns": -2.0}, "vector.reduction_ns"),
                                           ({"row_lanes": float("nan")}, "vector.row_lanes"),
                                           ({"reductions": {"rmsnorm": -1}}, "vector.reductions.rmsnorm"),
                                           ({"reductions": {"norm": 1}}, "unknown op kind"),
                                           ({"shared_rows": -1.0}, "vector.shared_rows"),
                                           ({"shared_rows": 100.0}, "vector.shared_rows")])
def test_a_bad_row_reduction_field_is_refused_naming_it(vector, field):
    raw = sim.config.load_yaml(sim.config.PRESET_DIR / "h200-triton.yaml")
    raw["vector"] = {**raw["vector"], **vector}
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        sim.config.from_dict(raw, where="h200-triton")


# ---------------------------------------------------------------- rows wider than the register tile
def test_the_part_of_a_row_beyond_the_register_tile_runs_at_the_spilled_rate():
    cfg = _gpu(units=4, row_lanes=8.0, reduction_ns=100.0, pow2_rows=True, row_tile=4096, wide_row_lanes=2.0)
    (wide, narrow) = plan_ops(_trace([vector_row("rmsnorm_ffn_sub", 1, 11008), vector_row("quant_o", 1, 4096)]), cfg)
    # by hand: 11008 pads to 16384; 4096 elements x 2 passes / 8 + 12288 x 2 / 2 + 1 reduction x 100 cycles
    assert wide.unit_cycles == 4096 * 2 // 8 + 12288 * 2 // 2 + 100
    assert narrow.unit_cycles == 4096 * 2 // 8 + 100                  # a row inside the tile: unchanged


def test_the_register_tile_switched_off_runs_every_element_at_row_lanes():
    for off in (dict(row_tile=0, wide_row_lanes=2.0), dict(row_tile=4096, wide_row_lanes=0.0)):
        cfg = _gpu(units=4, row_lanes=8.0, reduction_ns=100.0, pow2_rows=True, **off)
        (p,) = plan_ops(_trace([vector_row("rmsnorm_ffn_sub", 1, 11008)]), cfg)
        assert p.unit_cycles == 16384 * 2 // 8 + 100


def test_the_spilled_rate_is_recovered_from_the_glu_quantizer_row_made_with_a_known_rate():
    cfg = _gpu(units=132, row_lanes=6.0, reduction_ns=250.0, pow2_rows=True)
    free = cfg.replace(vector=dataclasses.replace(cfg.vector, row_tile=4096, wide_row_lanes=1e6))
    glu = _quant_rows([("ours_norm_int8_glu", 1.0)]).assign(N=11008)
    base = float(sim.validation.compare_measured(glu, free, flush_dirty_bytes=0.0)[0]["sim_us"].iloc[0])
    # the RMSNorm (2 passes) and the quantizer (2 passes) of the 12288 elements past the tile, at 3 per cycle, 1 GHz
    glu["us"] = base + 12288 * 4 / 3.0 / 1e3
    rows = pd.concat([_quant_rows([("ours_norm_int8", 3.0), ("ours_norm_topk8", 9.0)]), glu], ignore_index=True)
    assert wide_row_lanes(validate(rows, "measured_trace"), cfg) == (4096, pytest.approx(3.0, rel=1e-3))
