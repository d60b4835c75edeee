"""Zero skipping as hardware does it, and the fixed per-op costs: causal fetch, index build, gather
efficiency, memory latency, dispatch (sim.engine.plan, sim.engine.scheduler)."""
from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest
from test_sim_synthetic import gemm_row, vector_row

import sim
from sim.engine import plan_ops, schedule_ops
from sim.engine.plan import producer_of, scatter_efficiency


def _chip(**offchip):
    """b1.58 with a 1 GHz clock, 1000 GB/s sustained, zero skipping on and fetch-ahead across ops, and no
    fixed costs (latency, page misses, index build, dispatch: 0; 64-byte bursts) unless a test sets them."""
    a = sim.load_accelerator("b1.58")
    free = {"latency_ns": 0.0, "row_miss_ns": 0.0, "burst_bytes": 64.0, "page_bytes": 1024.0}
    oc = dataclasses.replace(a.offchip, bandwidth_gbps=1000.0, sustained_fraction=1.0, **{**free, **offchip})
    return a.replace(clock_ghz=1.0, offchip=oc, prefetch_across_ops=True, op_overhead_ns=0.0,
                     sparsity=dataclasses.replace(a.sparsity, skip_weight_fetch=True, index_latency_ns=0.0))


def _trace(row_skip: float) -> pd.DataFrame:
    """A long vector op (the producer: 4M element-passes) then a ternary GEMV whose rows it decides."""
    rows = [vector_row("rmsnorm_ffn", 1, 1 << 21, table_bytes=0.0),
            gemm_row("down_proj", 1, 4096, 11008, wfmt="ternary", wbits=2.0, afmt="int8", abits=8,
                     sparsity=row_skip, row_skip=row_skip)]
    t = pd.DataFrame(rows)
    t.attrs = {"phase": "decode", "batch": 1}
    return t


def _first_load(log, op: int) -> int:
    return min(t0 for name, track, i, t0, _ in log.events if track == "dma" and i == op and "load" in name)


def test_a_skipping_op_cannot_start_fetching_before_its_producer_has_finished():
    cfg = _chip()
    plans = plan_ops(_trace(0.5), cfg)
    assert plans[1].producer == 0 and plans[1].index_cycles == math.ceil(11008 / cfg.vector.lanes)
    log = schedule_ops(plans, cfg, ["norm", "down"])
    producer_end = log.timings[0].end
    assert producer_end > 1000                                    # the producer runs long enough to matter
    assert _first_load(log, 1) >= producer_end + plans[1].index_cycles
    # the same GEMV without skipping fetches ahead while the producer computes (fetch-ahead kept)
    dense = plan_ops(_trace(0.0), cfg)
    assert dense[1].producer == -1
    assert _first_load(schedule_ops(dense, cfg, ["norm", "down"]), 1) < producer_end


def test_index_latency_delays_the_first_fetch_by_exactly_its_cycles():
    cfg = _chip()
    slow = cfg.replace(sparsity=dataclasses.replace(cfg.sparsity, index_latency_ns=500.0))
    p0, p1 = plan_ops(_trace(0.5), cfg), plan_ops(_trace(0.5), slow)
    assert p1[1].index_cycles - p0[1].index_cycles == 500              # 500 ns at 1 GHz
    l0 = schedule_ops(p0, cfg, ["n", "d"])
    l1 = schedule_ops(p1, slow, ["n", "d"])
    assert _first_load(l1, 1) - _first_load(l0, 1) == 500


def test_gather_efficiency_of_one_row_by_hand():
    # burst 64 B, page 1024 B, 2 ns exposed per page at 1000 B/ns sustained:
    # a 1000-byte row -> 16 bursts = 1024 B + 1 page x 2 ns x 1000 B/ns = 2000 B -> 1000 / 3024
    cfg = _chip(burst_bytes=64.0, page_bytes=1024.0, row_miss_ns=2.0)
    assert scatter_efficiency(1000.0, cfg) == pytest.approx(1000 / 3024, rel=1e-12)
    # a 1500-byte row spans 2 pages: 24 bursts = 1536 B + 2 x 2000 B
    assert scatter_efficiency(1500.0, cfg) == pytest.approx(1500 / 5536, rel=1e-12)
    # no exposed page time, burst-aligned rows: the stream rate
    assert scatter_efficiency(1024.0, _chip()) == 1.0


def test_gathered_rows_hold_the_channel_for_their_bytes_over_the_efficiency():
    cfg = _chip(burst_bytes=64.0, page_bytes=1024.0, row_miss_ns=1.0)
    plans = plan_ops(_trace(0.5), cfg)
    row_bytes = 4096 * 2 / 8                                    # one K-row: 4096 ternary weights, 2 bits each
    eff = 1024 / (1024 + 1 * 1.0 * 1000)
    assert plans[1].read_efficiency == pytest.approx(eff)
    kept = 11008 * 0.5 * row_bytes
    log = schedule_ops(plans, cfg, ["n", "d"])
    half = cfg.sram.weight_buffer_kib * 1024 / 2
    tiles = math.ceil(kept / half)
    assert log.timings[1].memory == tiles * math.ceil(kept / tiles / eff / 1000.0)


def test_memory_latency_shows_once_per_op_where_compute_waits():
    base = _chip()
    cfg = _chip(latency_ns=700.0).replace(prefetch_across_ops=False)
    t = _trace(0.0)
    a = sim.simulate(t, base.replace(prefetch_across_ops=False)).summary.cycles
    b = sim.simulate(t, cfg).summary.cycles
    assert b - a == 700                       # one op loads weights; its first tile waits 700 cycles
    # with fetch-ahead, two GEMVs stream back to back: only the start of the stream waits the latency
    two = pd.DataFrame([gemm_row(f"g{i}", 1, 4096, 4096, wfmt="ternary", wbits=2.0, afmt="int8", abits=8)
                        for i in range(2)])
    two.attrs = {"phase": "decode", "batch": 1}
    assert sim.simulate(two, _chip(latency_ns=700.0)).summary.cycles - sim.simulate(two, base).summary.cycles == 700


def test_dispatch_cost_is_paid_per_launch_and_not_by_fused_ops():
    cfg = _chip().replace(op_overhead_ns=1000.0)
    t = _trace(0.0)
    free = sim.simulate(t, _chip()).summary.cycles
    assert sim.simulate(t, cfg).summary.cycles - free == 2000          # two launches
    fused = t.assign(fused=[False, True])
    assert sim.simulate(fused, cfg).summary.cycles - sim.simulate(fused, _chip()).summary.cycles == 1000


def test_siblings_reading_the_same_input_share_their_producer():
    rows = [vector_row("quant_ffn", 1, 4096), gemm_row("gate_proj", 1, 11008, 4096, afmt="int8", abits=8),
            gemm_row("up_proj", 1, 11008, 4096, afmt="int8", abits=8), vector_row("glu", 1, 11008),
            gemm_row("down_proj", 1, 4096, 11008, afmt="int8", abits=8)]
    t = pd.DataFrame(rows)
    assert [producer_of(t, i) for i in (1, 2, 4)] == [0, 0, 3]
    assert producer_of(t.iloc[1:].reset_index(drop=True), 0) == -1


def test_new_memory_and_skip_knobs_are_range_checked_naming_the_field():
    a = sim.load_accelerator("b1.58")
    with pytest.raises(ValueError, match=r"offchip\.burst_bytes"):
        a.replace(offchip=dataclasses.replace(a.offchip, burst_bytes=0.0))
    with pytest.raises(ValueError, match=r"offchip\.latency_ns"):
        a.replace(offchip=dataclasses.replace(a.offchip, latency_ns=-1.0))
    with pytest.raises(ValueError, match=r"sparsity\.index_latency_ns"):
        a.replace(sparsity=dataclasses.replace(a.sparsity, index_latency_ns=float("nan")))
