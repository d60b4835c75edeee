"""Roofline, measured-GPU and energy validation of the simulator."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_sim_synthetic import decoder_trace, gemm_row

import sim
from sim import energy
from sim.validation import compare_measured, load_anchors, roofline_bounds

CASES = [("fp16", "fp16"), ("b1.58", "b1.58"), ("a4.8", "a4.8"), ("a4.8", "edge"), ("fp16", "h100-like"),
         ("a4.8", "h100-triton")]


# ---------------------------------------------------------------- roofline
@pytest.mark.parametrize("datapath,accel", CASES)
@pytest.mark.parametrize("phase", ["decode", "prefill"])
def test_no_op_finishes_faster_than_its_roofline(datapath, accel, phase):
    tr = decoder_trace(datapath, layers=2, phase=phase, tokens=256, context=1024)
    res = sim.simulate(tr, accel)
    cfg = sim.load_accelerator(accel)
    # independent bound from the trace and config alone (float64)
    mem = res.ops["bytes_offchip"] / cfg.offchip_bytes_per_cycle
    assert (res.ops["cycles"] >= np.floor(np.maximum(mem, res.ops["ideal_compute_cycles"]))).all()
    assert (res.ops["cycles"] + 1e-9 >= np.floor(roofline_bounds(res.ops, cfg))).all()
    assert res.summary.cycles >= res.ops["cycles"].max()


def test_large_perfectly_tiled_gemm_lands_within_10_percent_of_roofline():
    cfg = sim.load_accelerator("b1.58")
    M, N, K = 8192, 4096, 4096  # multiples of 128 x 4 arrays
    tr = pd.DataFrame([gemm_row("big", M, N, K, wfmt="ternary", wbits=2, afmt="int8", abits=8)])
    res = sim.simulate(tr, cfg)
    compute = M * N * K / cfg.peak_macs_per_cycle("ternary", "int8")  # hand roofline
    memory = (N * K * 2 / 8 + M * K) / cfg.offchip_bytes_per_cycle
    bound = max(compute, memory)
    cyc = res.ops["cycles"].iloc[0]
    assert bound <= cyc <= 1.10 * bound


def test_memory_bound_gemv_lands_within_10_percent_of_bandwidth_roofline():
    cfg = sim.load_accelerator("fp16")
    tr = pd.DataFrame([gemm_row("gemv", 1, 11008, 4096)])
    res = sim.simulate(tr, cfg)
    memory = 11008 * 4096 * 2 / cfg.offchip_bytes_per_cycle
    assert memory <= res.ops["cycles"].iloc[0] <= 1.10 * memory
    assert res.ops["bound"].iloc[0] == "memory"


# ---------------------------------------------------------------- measured GPU
def test_h100_like_reproduces_measured_anchor_timings_per_kernel_class():
    rows, per_class = compare_measured(load_anchors(), "h100-like")
    assert set(per_class["class"]) == {"gemv fp16", "gemm fp16", "gemm int8", "attention_decode fp16"}
    assert (per_class["mape"] <= 0.15).all(), per_class
    assert per_class["n"].sum() == len(load_anchors())


def test_compare_measured_skips_rows_without_an_op_trace_equivalent():
    m = load_anchors().head(2).copy()
    m.loc[1, "op"] = "block_decode"
    rows, per_class = compare_measured(m)
    assert rows["skipped"].iloc[1].startswith("measured row")
    assert per_class["n"].sum() == 1


def test_h100_like_peak_reproduces_the_measured_8192_cubed_ceilings():
    for fmt, ceiling in (("fp16", 679e12), ("int8", 968e12), ("fp8", 1403e12)):
        tr = pd.DataFrame([gemm_row("g", 8192, 8192, 8192, wfmt=fmt, wbits={"fp16": 16}.get(fmt, 8),
                                    afmt=fmt, abits={"fp16": 16}.get(fmt, 8))])
        res = sim.simulate(tr, "h100-like")
        achieved = 2 * 8192**3 / res.summary.latency_s
        assert achieved == pytest.approx(ceiling, rel=0.02), fmt


# ---------------------------------------------------------------- energy
def test_the_papers_counting_rule_reproduces_71_4x_and_the_width_aware_pe_charges_the_accumulator():
    # the papers' rule ([B1] eq. 16-18, [B158] §3): FP16 add + mul vs one INT8 add at 7 nm
    assert energy.mac_pj("fp16", "fp16", 7) / energy.mac_pj("ternary", "int8", 7) == pytest.approx(71.43, abs=0.01)
    # what the simulator charges: the width-aware PE.  Hand count from [B1] Table 2 (7 nm):
    # fp16 PE = FP16 mul 0.34 + FP32 accumulate 0.38; ternary x INT8 PE = a 23-bit add
    # (9-bit products + ceil(log2 16384) = 14 bits of headroom) = 0.007 x 23 / 8; each MAC also writes its
    # moving operand and partial sum into pipeline registers at reg.write_fj_per_bit (1 fJ at 7 nm):
    # FP16 x FP16: 16 + 32 bits; ternary x INT8: 8 + 23 bits
    shape = (64, 4096, 4096)
    fp = sim.simulate(pd.DataFrame([gemm_row("g", *shape)]), "fp16")
    tern = sim.simulate(pd.DataFrame([gemm_row("g", *shape, wfmt="ternary", wbits=2, afmt="int8",
                                               abits=8)]), "b1.58")
    fp_mac, tern_mac = 0.34 + 0.38 + 48e-3, 0.007 * 23 / 8 + 31e-3
    assert fp.ops["energy_compute_pj"].iloc[0] == pytest.approx(np.prod(shape) * fp_mac)
    assert tern.ops["energy_compute_pj"].iloc[0] == pytest.approx(np.prod(shape) * tern_mac)
    ratio = fp.ops["energy_compute_pj"].iloc[0] / tern.ops["energy_compute_pj"].iloc[0]
    assert ratio == pytest.approx(fp_mac / tern_mac)         # 15.0x, not the paper's 71.4x
    assert ratio < 71.4 / 4


def test_45nm_node_gives_the_50x_ratio_of_the_same_rule():
    assert energy.mac_pj("fp16", "fp16", 45) / energy.mac_pj("ternary", "int8", 45) == pytest.approx(50.0)


@pytest.mark.parametrize("datapath,accel", [("fp16", "fp16"), ("b1.58", "b1.58"), ("a4.8", "a4.8")])
def test_memory_bound_decode_energy_is_dominated_by_offchip_bytes(datapath, accel):
    tr = decoder_trace(datapath, layers=2, phase="decode")
    res = sim.simulate(tr, accel)
    cfg = sim.load_accelerator(accel)
    by = res.summary.energy_j_by_component
    dynamic = sum(v for k, v in by.items() if k != "static")
    assert by["offchip"] == max(by.values())
    assert by["offchip"] >= 0.5 * dynamic
    # independent count: every off-chip byte at the config's pJ/bit
    assert by["offchip"] == pytest.approx(res.ops["bytes_offchip"].sum() * 8 * cfg.offchip.pj_per_bit * 1e-12)
    # and those bytes are at least the weights + KV cache the trace says must be read
    g, attn = tr[tr.op_class == "gemm"], tr[tr.op_class == "attention"]
    fetched = 1 - g["row_skip"] if cfg.sparsity.skip_weight_fetch else 1.0
    must = (g["weight_bytes"] * fetched).sum() + attn["kv_bytes_read"].sum()
    assert res.ops["bytes_offchip"].sum() >= must - 1


def test_energy_table_entries_all_name_a_source():
    for t in energy.ARITH_PJ.values():
        for e in t.values():
            assert e.source and (e.source.startswith("[") or e.source.startswith("ASSUMPTION"))
    for e in list(energy.MEMORY_PJ_PER_BIT.values()) + list(energy.AREA_UM2_45NM.values()):
        assert e.source.startswith("[") or e.source.startswith("ASSUMPTION")
    assert "ASSUMPTION" in energy.ARITH_PJ[7]["int4_add"].source


def test_a_measured_two_pass_row_replays_as_decode_library_gemm_and_its_own_epilogue():
    from sim.validation.replay import measured_row_to_trace
    base = dict(op="gemm", kernel="ours_twopass_w158a4_fp8", impl="ours", precision="w1.58a4-fp8", M=2048, N=4096,
                K=4096, sparsity=0.0, cuda_graph=False, us=100.0)
    one = measured_row_to_trace(pd.Series(dict(base, note="one-launch epilogue")))
    old = measured_row_to_trace(pd.Series(dict(base, note="decode ...; epilogue in torch")))
    a8 = measured_row_to_trace(pd.Series(dict(base, kernel="ours_twopass_w158a8", precision="w1.58a8",
                                              note="epilogue in torch")))
    assert len(one) == 3 and len(old) == 5 and len(a8) == 6           # INT8 sums: one cast more in torch
    assert not one["fused"].any()                                      # every pass is a launch of its own
    gemm = one[one.op_class == "gemm"].iloc[0]
    assert (gemm.weight_format, gemm.weight_bits, gemm.out_bits) == ("fp8", 8.0, 32)
    assert a8[a8.op_class == "gemm"].iloc[0].weight_format == "int8"
    assert one.iloc[0].act_bytes_in == 4096 * 4096 * 0.25 and one.iloc[0].act_bytes_out == 4096 * 4096
    assert one.iloc[-1].act_bytes_in == 2048 * 4096 * 4 and one.iloc[-1].act_bytes_out == 2048 * 4096 * 2
