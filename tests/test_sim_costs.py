"""Area, power and energy of a design: the cost table, the width-aware PE,
whole-chip area and leakage, sustained bandwidth, and checks against an independent per-op table."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from test_sim_synthetic import decoder_trace, gemm_row

import sim
from sim import energy
from sim.energy.table import _load

# Horowitz, "Computing's energy problem", ISSCC 2014, 45 nm (typed from the paper's figure; independent
# of sim/data/hardware_costs.csv, whose arithmetic ENERGIES come from [B1] Table 2)
H14_PJ = {"int8_add": 0.03, "int32_add": 0.1, "int8_mul": 0.2, "int32_mul": 3.1, "fp16_add": 0.4,
          "fp16_mul": 1.1, "fp32_add": 0.9, "fp32_mul": 3.7}
H14_UM2 = {"int8_add": 36, "int16_add": 67, "int32_add": 137, "int8_mul": 282, "int32_mul": 3495}
DFF_45, SCALE_7, CTL = 4.522, 0.059, 0.15       # Nangate DFF_X1, [SB17] 45 -> 7 nm, control fraction


# ---------------------------------------------------------------- the one table
def test_every_cost_row_names_its_kind_and_source():
    assert len(energy.COSTS) > 40
    for (q, node), e in energy.COSTS.items():
        assert e.kind in ("sourced", "derived", "assumption") and e.source.strip(), q
        if e.kind == "assumption":
            assert "ASSUMPTION" in e.source, q
    md = energy.table_markdown()
    assert "| area.int8_add | 45 nm | 36 |" in md and "ASSUMPTION" in md


def test_the_table_loader_refuses_a_duplicate_row_and_a_row_without_a_source(tmp_path):
    p = tmp_path / "c.csv"
    head = "quantity,node_nm,value,unit,kind,source\n"
    p.write_text(head + "a,7,1,pJ,sourced,[X]\na,7,2,pJ,sourced,[X]\n")
    with pytest.raises(ValueError, match="given twice"):
        _load(p)
    p.write_text(head + "a,7,1,pJ,sourced,\n")
    with pytest.raises(ValueError, match="source non-empty"):
        _load(p)


def test_the_45nm_energy_rows_agree_with_horowitz_isscc_2014():
    for k in ("int8_add", "int8_mul", "fp16_add", "fp16_mul", "fp32_add", "fp32_mul"):
        assert energy.ARITH_PJ[45][k].value == pytest.approx(H14_PJ[k], rel=0.05), k


def _rule(kind: str, bits: int) -> float:
    """The width rules of sim.energy.pe applied to the table's 8-bit rows (45 nm)."""
    if kind == "add_pj":      # the PE model itself: a ternary x INT8 accumulate at ``bits`` is the 8-bit add x bits/8
        return energy.mac_energy_pj("ternary", "int8", 45, 2 ** (bits - 9))
    if kind == "mul_pj":      # int8 x int8 multiplier energy x (a x b) / 64, as sim.energy.pe scales it
        return energy.ARITH_PJ[45]["int8_mul"].value * bits * bits / 64
    return energy.AREA_UM2_45NM["int8_add"].value * bits / 8          # add area, linear in width


@pytest.mark.parametrize("kind,bits,h14", [("add_pj", 32, H14_PJ["int32_add"]), ("mul_pj", 32, H14_PJ["int32_mul"]),
                                           ("add_um2", 16, H14_UM2["int16_add"]),
                                           ("add_um2", 32, H14_UM2["int32_add"])])
def test_width_rules_predict_horowitz_points_they_were_not_built_from_within_25_percent(kind, bits, h14):
    predicted = _rule(kind, bits)
    assert abs(predicted - h14) / h14 <= 0.25, (kind, bits, predicted, h14)


def test_the_quadratic_multiplier_area_rule_misses_horowitz_32_bit_by_29_percent():
    # stated miss: our PEs use <= 8-bit integer multipliers, where the rule is anchored; extrapolated to
    # 32 bits it overestimates Horowitz's 3495 um^2 (Booth / Wallace multipliers grow slower than width^2)
    err = (282 * 16 - H14_UM2["int32_mul"]) / H14_UM2["int32_mul"]
    assert 0.25 < err < 0.35


def test_the_table_uses_the_width_rule_the_cross_check_tested():
    a = energy.AREA_UM2_45NM
    assert a["int4_add"].value == a["int8_add"].value / 2 and a["int4_mul"].value == a["int8_mul"].value / 4
    # adder energy linear in width: a 16-bit accumulate is twice the 8-bit add
    assert energy.mac_energy_pj("ternary", "int8", 7, 2 ** 7) == pytest.approx(0.007 * 16 / 8)


# ---------------------------------------------------------------- the width-aware PE
def test_accumulator_width_is_derived_from_the_reduction_length():
    assert energy.accumulator_bits("ternary", "int8", 11008) == 9 + 14 >= 20     # a 7B reduction needs >= 20 bits
    assert energy.accumulator_bits("ternary", "int8", 1024) == 9 + 10
    assert energy.accumulator_bits("ternary", "int4", 16384) == 5 + 14
    assert energy.accumulator_bits("int8", "int8", 16384) == 16 + 14
    assert energy.accumulator_bits("fp16", "fp16", 16384) == 32                  # fp32 accumulation
    assert energy.accumulator_bits("fp16", "fp16", 16384, "fp16") == 16


def test_pe_area_counts_the_accumulator_and_a48s_second_accumulator():
    b, a = sim.load_accelerator("b1.58"), sim.load_accelerator("a4.8")
    # hand count (um^2, 45 nm -> 7 nm): b1.58 ternary x INT8 PE = 23-bit adder (36/8 per bit) +
    # registers (2-bit weight double-buffered, 8-bit input, 23-bit partial sum) at 4.522 per bit
    b_pe = (23 * 4.5 + (2 * 2 + 8 + 23) * DFF_45) * SCALE_7 * (1 + CTL)
    assert energy.pe_area_um2(b.arrays[0], 7) == pytest.approx(b_pe, rel=1e-9)
    # a4.8 split adder: INT4 at 2/cycle = two 19-bit accumulators, two 4-bit inputs, two partial sums
    a_pe = (2 * 19 * 4.5 + (2 * 2 + 2 * (4 + 19)) * DFF_45) * SCALE_7 * (1 + CTL)
    assert energy.pe_area_um2(a.arrays[0], 7) == pytest.approx(a_pe, rel=1e-9)
    assert a_pe > 1.4 * b_pe
    # a narrower accumulator (shorter max_k) is a smaller PE
    short = b.replace(arrays=(b.arrays[0].__class__(**{**b.arrays[0].__dict__, "max_k": 128}), b.arrays[1]))
    assert energy.pe_area_um2(short.arrays[0], 7) < energy.pe_area_um2(b.arrays[0], 7)


def test_chip_area_adds_pes_vector_sram_and_phys_by_hand():
    c = sim.load_accelerator("fp16")
    parts = c.chip_costs().area_mm2_by_part
    fp16_pe = (1640 + 4184 + (16 * 2 + 16 + 32) * DFF_45) * SCALE_7 * (1 + CTL)   # FP16 mul + FP32 add + regs
    assert parts["pe"] == pytest.approx(65536 * fp16_pe / 1e6, rel=1e-9)
    lane = (1640 + 1360 + 48 * DFF_45) * SCALE_7 * (1 + CTL)
    assert parts["vector"] == pytest.approx(512 * lane / 1e6, rel=1e-9)
    assert parts["sram"] == pytest.approx((8192 + 16384) * 8192 * 0.027 / 0.6 / 1e6, rel=1e-9)
    assert parts["phy"] == pytest.approx(2 * 10.0)
    assert c.area_mm2 == pytest.approx(sum(parts.values()))


def test_static_power_is_the_always_on_power_of_the_design_not_a_flat_figure():
    for name in ("fp16", "b1.58", "a4.8"):
        c = sim.load_accelerator(name)
        assert c.static_model == "leakage" and c.static_power_w == 0
        p = c.chip_costs().area_mm2_by_part
        index_kib = 4 * 2 * 16384 * 14 / 8 / 1024 if name == "a4.8" else 0   # zero-skipping index buffers
        leak = (p["pe"] + p["vector"]) * 0.048 + (8192 + 16384 + index_kib) * 10e-6 + 2 * 0.5
        assert c.chip_costs().leakage_w == pytest.approx(leak, rel=1e-9)
        clock = energy.clock_tree_w(c)
        assert c.static_w == pytest.approx(leak + clock + 32 * 0.05, rel=1e-9)   # + clock tree + HBM background
    assert sim.load_accelerator("fp16").static_w > sim.load_accelerator("b1.58").static_w
    # a fixed-static preset keeps its stated figure (GPU presets: 0, dynamic-only)
    assert sim.load_accelerator("h100-like").static_w == 0


def test_summary_reports_area_power_and_efficiency_consistently():
    res = sim.simulate(decoder_trace("a4.8", layers=2), "a4.8")
    s = res.summary
    assert s.area_mm2 == pytest.approx(sim.load_accelerator("a4.8").area_mm2)
    assert s.power_w == pytest.approx(s.energy_j / s.latency_s)
    assert s.power_static_w + s.power_dynamic_w == pytest.approx(s.power_w)
    assert s.tokens_per_s_per_w == pytest.approx(1 / s.energy_j_per_token)
    assert s.tokens_per_s_per_mm2 == pytest.approx(s.tokens_per_s / s.area_mm2)
    assert s.peak_tops == pytest.approx(2 * (32768 * 2 + 8192) * 1e9 / 1e12)   # INT4 at 2/cycle + attn array
    assert s.tops_per_mm2 == pytest.approx(s.peak_tops / s.area_mm2)
    macs = res.ops.shape[0] and decoder_trace("a4.8", layers=2).query("op_class != 'vector'")["macs_dense"].sum()
    assert s.tops == pytest.approx(2 * macs / s.latency_s / 1e12)
    assert s.tops_per_w == pytest.approx(s.tops / s.power_w)
    row = s.row()
    assert row["area_pe_mm2"] == s.area_mm2_by_part["pe"] and row["fits_offchip"] is True


# ---------------------------------------------------------------- memory
def test_memory_generations_have_a_per_bit_energy_with_a_source():
    for k in ("hbm2", "hbm2e", "hbm3", "hbm3e", "lpddr5", "lpddr5x", "gddr6"):
        e = energy.MEMORY_PJ_PER_BIT[k]
        assert 1 < e.value < 20 and e.source.strip()
    hbm3 = 3.9 * (0.75 * (1.1 / 1.2) ** 2 + 0.25 * (0.4 / 1.2) ** 2)
    assert energy.MEMORY_PJ_PER_BIT["hbm3"].value == pytest.approx(hbm3, abs=0.005)
    assert energy.MEMORY_PJ_PER_BIT["hbm"].value == 3.9          # the legacy key keeps its meaning


def test_sustained_bandwidth_fraction_sets_the_dma_rate():
    g = pd.DataFrame([gemm_row("g", 1, 11008, 4096)])        # FP16 GEMV, 90 MB: memory bound
    cfg = sim.load_accelerator("fp16")
    assert cfg.offchip.sustained_fraction == 0.9
    res = sim.simulate(g, cfg)
    op = res.ops.iloc[0]
    half = cfg.sram.weight_buffer_kib * 1024 / 2
    tiles = math.ceil(op["bytes_offchip"] / half)
    per_tile = math.ceil(op["bytes_offchip"] / tiles / (1638.4 * 0.9 / 1.0))
    assert op["memory_cycles"] == tiles * per_tile and op["bound"] == "memory"
    full = sim.simulate(g, cfg.replace(offchip=cfg.offchip.__class__(
        **{**cfg.offchip.__dict__, "sustained_fraction": 1.0})))
    assert res.summary.latency_s / full.summary.latency_s == pytest.approx(1 / 0.9, rel=0.01)
    assert res.summary.offchip_sustained_gbps == pytest.approx(1638.4 * 0.9)


def test_an_unknown_memory_kind_is_refused_listing_the_known_ones():
    raw = sim.load_accelerator("fp16")
    with pytest.raises(ValueError, match=r"offchip.kind: unknown memory kind 'weird'; known: \['hbm2', .*'lpddr5x'\]"):
        raw.replace(offchip=raw.offchip.__class__(**{**raw.offchip.__dict__, "kind": "weird"}))


# ---------------------------------------------------------------- iso-area sizing
def test_size_to_area_meets_the_target_within_one_percent_changing_only_pe_count():
    target = sim.load_accelerator("fp16").area_mm2
    for name in ("b1.58", "a4.8"):
        base = sim.load_accelerator(name)
        c = sim.size_to_area(name, target)
        assert abs(c.area_mm2 - target) / target <= 0.01
        assert c.comparison == "equal-area" and c.arrays[0].count > base.arrays[0].count
        assert c.arrays[1:] == base.arrays[1:] and c.sram == base.sram and c.offchip == base.offchip
    with pytest.raises(ValueError, match="below the"):
        sim.size_to_area("b1.58", 1.0)
