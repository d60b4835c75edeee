"""Serial costs of our GPU kernels before or after their streams, and the H200 rows they are derived from:
the dense weight stream of our GEMV (a ramp and a stream below the read rate, ``arrays[].stream_ramp_ns`` /
``stream_efficiency``; sim.validation.streams), the in-kernel combine of a split attention step
(``arrays[].split_combine_ns``), and the KV-code decode rate fitted on the H200's own KV3 row
(sim.validation.crossgpu)."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
from test_sim_synthetic import gemm_row

import sim
from contract import validate
from sim.config import PRESET_DIR, PRESETS, from_dict, load_yaml
from sim.engine import plan_ops
from sim.validation.crossgpu import H200_L2_BYTES, OwnRows, combine_tail_of_own, kv_rate_of_own
from sim.validation.streams import stream_costs


def _gpu(ramp: dict | None = None, eff: dict | None = None, **top):
    """h200-triton at a 1 GHz clock, no launch cost or latency, occupancy rule off, the CUDA-core stream as given."""
    a = sim.load_accelerator("h200-triton")
    arrays = tuple(dataclasses.replace(x, stream_ramp_ns=ramp or {}, stream_efficiency=eff or {})
                   if x.name == "cuda_cores" else x for x in a.arrays)
    return a.replace(clock_ghz=1.0, offchip=dataclasses.replace(a.offchip, latency_ns=0.0), op_overhead_ns=0.0,
                     occupancy_limited_reads=False, arrays=arrays, **top)


def _trace(rows: list[dict]) -> pd.DataFrame:
    t = pd.DataFrame(rows)
    t.attrs = {"phase": "decode", "batch": 1}
    return t


def _ternary_gemv(N=4096, K=4096, **kw) -> dict:
    return gemm_row("o_proj", 1, N, K, wfmt="ternary", wbits=2.0, afmt="int8", abits=8, **kw)


def _latency_cycles(tr: pd.DataFrame, cfg) -> float:
    return sim.simulate(tr, cfg).summary.latency_s * cfg.clock_ghz * 1e9


def test_a_dense_ternary_gemv_pays_the_ramp_and_streams_its_bytes_at_the_stated_efficiency():
    tr = _trace([_ternary_gemv()])
    off, on = _gpu(), _gpu(ramp={"ternary": 500.0}, eff={"ternary": 0.5})
    (p,) = plan_ops(tr, on)
    assert p.ramp_cycles == 500 and p.read_efficiency == pytest.approx(0.5)
    stream = p.traffic.offchip_read / on.offchip_bytes_per_cycle          # cycles of the bytes at the full rate
    # by hand: the ramp + the stream once more (1 / 0.5 - 1 = 1 extra stream time), the op memory-bound
    assert _latency_cycles(tr, on) - _latency_cycles(tr, off) == pytest.approx(500 + stream, abs=3)


def test_the_stream_costs_switched_off_leave_the_gemv_as_before():
    tr = _trace([_ternary_gemv()])
    (p,) = plan_ops(tr, _gpu())
    assert p.ramp_cycles == 0 and p.read_efficiency == 1.0


def test_only_the_named_weight_operand_and_dense_streams_pay_the_stream_costs():
    cfg = _gpu(ramp={"ternary": 500.0}, eff={"ternary": 0.5})
    fp16 = gemm_row("lm_head", 1, 4096, 4096)                          # another operand on the same array
    gather = _ternary_gemv(sparsity=0.6, row_skip=0.6)                 # gathers its surviving rows instead
    p_fp16, p_gather = plan_ops(_trace([fp16, gather]), cfg)
    assert p_fp16.unit == "cuda_cores" and p_fp16.ramp_cycles == 0 and p_fp16.read_efficiency == 1.0
    assert p_gather.ramp_cycles == 0
    assert p_gather.read_efficiency == pytest.approx(plan_ops(_trace([gather]), _gpu())[0].read_efficiency)


@pytest.mark.parametrize("field,value,needle", [
    ("stream_efficiency", {"ternary": 0.0}, "stream_efficiency.ternary"),
    ("stream_efficiency", {"ternary": 1.5}, "stream_efficiency.ternary"),
    ("stream_ramp_ns", {"ternary": -1.0}, "stream_ramp_ns.ternary"),
    ("stream_ramp_ns", {"nibble": 10.0}, "stream_ramp_ns key"),
])
def test_a_bad_stream_field_is_refused_naming_it(field, value, needle):
    raw = load_yaml(PRESET_DIR / PRESETS["h200-triton"])
    for a in raw["arrays"]:
        if a["name"] == "cuda_cores":
            a[field] = value
    with pytest.raises(ValueError, match=needle.replace(".", r"\.")):
        from_dict(raw, where="test")


def _measured(rows: list[tuple[str, str, int, int, float, float, str]]) -> pd.DataFrame:
    recs = [dict(op=op, kernel=k, impl="ours", precision="w1.58a8", M=1, N=n, K=kk, sparsity=0.0, cuda_graph=True,
                 us=us, bytes=b, ops=0.0, gbps=0.0, tops=0.0, exact=True, gpu="synthetic", torch="-", triton="-",
                 cuda="-", date="2000-01-01", pdl=pdl) for op, k, n, kk, us, b, pdl in rows]
    return validate(pd.DataFrame(recs), "measured_trace")


def test_the_stream_costs_are_recovered_from_two_gemv_rows_and_their_read_floors():
    cfg = sim.load_accelerator("h200-triton")
    rate = cfg.offchip.bandwidth_gbps * cfg.offchip.sustained_fraction * 1e3          # bytes per us
    ramp_us, eff = 0.4, 0.7
    rows = []
    for n, k, floor_us in ((4096, 4096, 3.9), (22016, 4096, 8.3)):
        b = n * k / 4
        gemv_us = floor_us + ramp_us + b / rate * (1 / eff - 1)                        # the rule, by hand
        rows += [("floor", "floor_read", n * k // 16, 1, floor_us, b, "False"),
                 ("floor", "floor_read", n * k // 16, 1, floor_us + 5.0, b, "True"),   # PDL floor: not used
                 ("gemv", "ours_w158a8", n, k, gemv_us, b + n * 2 + k, "False")]
    got = stream_costs(_measured(rows), cfg)
    assert got.ramp_ns == pytest.approx(400.0, abs=0.1) and got.efficiency == pytest.approx(0.7, abs=1e-4)


def test_stream_costs_without_their_rows_are_refused():
    cfg = sim.load_accelerator("h200-triton")
    with pytest.raises(ValueError, match="floor_read"):
        stream_costs(_measured([("gemv", "ours_w158a8", 4096, 4096, 5.0, 4.2e6, "False")]), cfg)


def test_the_h200_kv_decode_rate_is_recovered_from_its_own_kv3_row_made_with_a_known_rate():
    raw = load_yaml(PRESET_DIR / PRESETS["h200-triton"])
    for a in raw["arrays"]:
        if a["name"] == "cuda_cores":
            a["unpack"] = {"int3": 5.0, "int4": 5.0}
    row = dict(op="attention_decode", kernel="ours_kv3", impl="ours", precision="kv3", M=8, N=32, K=8192,
               sparsity=0.0, cuda_graph=True, us=1.0, bytes=0.0, ops=0.0, gbps=0.0, tops=0.0, exact=True,
               gpu="synthetic", torch="-", triton="-", cuda="-", date="2000-01-01")
    table = validate(pd.DataFrame([row]), "measured_trace")
    made = sim.validation.compare_measured(table, from_dict(dict(raw), where="truth"), flush_dirty_bytes=H200_L2_BYTES)
    table["us"] = made[0]["sim_us"].to_numpy()
    for a in raw["arrays"]:
        if a["name"] == "cuda_cores":
            a["unpack"] = {"int3": 50.0, "int4": 50.0}           # the H100's rate, to be replaced
    kv_rate_of_own(raw, OwnRows(table, "the measured H200 table", H200_L2_BYTES))
    got = next(a for a in raw["arrays"] if a["name"] == "cuda_cores")["unpack"]
    assert got["int3"] == pytest.approx(5.0, rel=1e-3) and got["int4"] == got["int3"]
    assert "H200" in raw["calibration"]["arrays[cuda_cores].unpack.int3"]


# ---------------------------------------------------------------- in-kernel combine of a split attention op
def _attention_step_rows(ctx: int = 2048, pv_fused: bool = True) -> list[dict]:
    kv = 32 * ctx * 128 * 2.0
    att = dict(op_class="attention", count=32, wfmt="kv-fp16", wbits=16.0, kv_read=kv)
    qk = dict(gemm_row("attn_qk", 1, ctx, 128, **att), fused=False)
    pv = dict(gemm_row("attn_pv", 1, 128, ctx, **att), fused=pv_fused)
    return [qk, pv]


def _with_tail(ns: float):
    a = _gpu()
    return a.replace(arrays=tuple(dataclasses.replace(x, split_combine_ns=ns) if x.name == "cuda_cores" else x
                                  for x in a.arrays))


def test_a_split_attention_op_inside_the_launch_pays_the_combine_tail_in_series():
    tr = _trace(_attention_step_rows())
    qk, pv = plan_ops(tr, _with_tail(1500.0))
    assert pv.ramp_cycles == 1500 and qk.ramp_cycles == 0          # P.V is split over idle SMs; q.K is not
    # by hand: the tail is serial, so the step takes exactly 1500 cycles (1 GHz) longer
    assert _latency_cycles(tr, _with_tail(1500.0)) - _latency_cycles(tr, _with_tail(0.0)) == pytest.approx(1500, abs=2)


def test_the_combine_tail_is_not_charged_to_a_combine_in_a_launch_of_its_own_or_when_switched_off():
    (_, separate) = plan_ops(_trace(_attention_step_rows(pv_fused=False)), _with_tail(1500.0))
    (_, off) = plan_ops(_trace(_attention_step_rows()), _with_tail(0.0))
    assert separate.ramp_cycles == 0 and off.ramp_cycles == 0


def test_the_combine_tail_is_recovered_from_the_step_and_decode_rows_made_with_a_known_tail():
    raw = load_yaml(PRESET_DIR / PRESETS["h200-triton"])
    rows = []
    for op, kernel in (("attention_step", "ours_step_kv3"), ("attention_decode", "ours_kv3")):
        rows.append(dict(op=op, kernel=kernel, impl="ours", precision="kv3", M=1, N=32, K=2048, sparsity=0.0,
                         cuda_graph=True, us=1.0, bytes=0.0, ops=0.0, gbps=0.0, tops=0.0, exact=True, gpu="synthetic",
                         torch="-", triton="-", cuda="-", date="2000-01-01"))
    table = validate(pd.DataFrame(rows), "measured_trace")
    truth = load_yaml(PRESET_DIR / PRESETS["h200-triton"])
    for a in truth["arrays"]:
        if a["name"] == "cuda_cores":
            a["split_combine_ns"] = 1200.0
    made = sim.validation.compare_measured(table, from_dict(truth, where="truth"), flush_dirty_bytes=H200_L2_BYTES)
    table["us"] = made[0]["sim_us"].to_numpy()
    for a in raw["arrays"]:
        if a["name"] == "cuda_cores":
            a["split_combine_ns"] = 0.0
    combine_tail_of_own(raw, OwnRows(table, "the measured H200 table", H200_L2_BYTES))
    got = next(a for a in raw["arrays"] if a["name"] == "cuda_cores")["split_combine_ns"]
    assert got == pytest.approx(1200.0, abs=2.0)
