"""The simulator's design space: memory generations chosen by kind, process nodes, always-on power terms,
SRAM-resident weights and the quantized-baseline presets, each against hand-computed values."""
from __future__ import annotations

import copy
import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
import yaml
from test_sim_synthetic import decoder_trace, gemm_row

import sim
from sim import energy
from sim.compute import map_op
from sim.config import (
    PRESET_DIR,
    PRESETS,
    AcceleratorConfig,
    ArrayConfig,
    OffchipConfig,
    SramConfig,
    check_resident_weights,
    field_help,
    from_dict,
    load_yaml,
)
from sim.energy.datapaths import bit_serial_dot, lut_counts, lut_dot
from sim.energy.memory import QUANTITIES, load_memories

REQUIRED_KINDS = ("hbm3", "hbm3e", "hbm4", "gddr6", "gddr7", "lpddr5", "lpddr5x")


def _raw(name="fp16"):
    return copy.deepcopy(load_yaml(PRESET_DIR / PRESETS[name]))


# ---------------------------------------------------------------- memory table
def test_every_memory_row_is_sourced_or_an_assumption_with_a_band():
    assert set(REQUIRED_KINDS) <= set(energy.MEMORY_KINDS)
    for kind, rows in energy.MEMORIES.items():
        assert tuple(rows) == QUANTITIES or set(rows) == set(QUANTITIES)
        for q, e in rows.items():
            assert e.source.startswith("[") or e.source.startswith("ASSUMPTION"), (kind, q)
            if e.kind == "assumption":
                assert e.low is not None and e.low <= e.value <= e.high, (kind, q)


def test_a_memory_table_missing_a_quantity_or_a_band_is_refused(tmp_path):
    text = energy.MEMORY_TABLE_PATH.read_text().splitlines()
    short = tmp_path / "m.csv"
    short.write_text("\n".join(ln for ln in text if not ln.startswith("gddr7,phy_static_w")) + "\n")
    with pytest.raises(ValueError, match=r"memory 'gddr7' lacks \['phy_static_w'\]"):
        load_memories(short)
    noband = tmp_path / "n.csv"
    noband.write_text("\n".join(ln.replace("lpddr5,pj_per_bit,5.0,pJ/bit,assumption,3.0,8.0",
                                           "lpddr5,pj_per_bit,5.0,pJ/bit,assumption,,") for ln in text) + "\n")
    with pytest.raises(ValueError, match="lpddr5.pj_per_bit: an assumption needs its sensitivity band"):
        load_memories(noband)


def test_kind_alone_selects_energy_and_sustained_fraction():
    raw = _raw()
    raw["offchip"]["kind"] = "lpddr5"
    raw["offchip"]["bandwidth_gbps"] = 2 * 51.2
    c = from_dict(raw)
    assert (c.offchip.pj_per_bit, c.offchip.sustained_fraction) == (5.0, 0.8)
    fp16 = sim.load_accelerator("fp16")
    assert (fp16.offchip.pj_per_bit, fp16.offchip.sustained_fraction) == (2.57, 0.9)


def test_changing_only_the_kind_raises_the_offchip_energy_by_the_pj_ratio():
    tr = decoder_trace("fp16", layers=1)
    hbm = sim.simulate(tr, "fp16").summary.energy_j_by_component["offchip"]
    raw = _raw()
    raw["offchip"].update(kind="lpddr5", bandwidth_gbps=2 * 51.2)
    lp = sim.simulate(tr, from_dict(raw)).summary.energy_j_by_component["offchip"]
    assert lp / hbm == pytest.approx(5.0 / 2.57, rel=1e-9)


def test_a_copy_with_a_new_kind_takes_that_kinds_values_but_keeps_stated_ones():
    raw = dataclasses.asdict(sim.load_accelerator("fp16"))       # as a sweep override does
    raw["offchip"]["kind"] = "gddr7"
    raw["offchip"]["bandwidth_gbps"] = 16 * 128.0
    raw["offchip"]["interfaces"] = 16
    c = from_dict(raw)
    assert (c.offchip.pj_per_bit, c.offchip.sustained_fraction) == (6.0, 0.85)
    raw = dataclasses.asdict(sim.load_accelerator("fp16"))
    raw["offchip"].update(kind="gddr7", interfaces=16, bandwidth_gbps=2048.0, pj_per_bit=9.0)
    assert from_dict(raw).offchip.pj_per_bit == 9.0                    # a stated number is kept


def test_bandwidth_defaults_to_interfaces_times_the_kinds_row():
    raw = _raw()
    raw["offchip"] = {"kind": "gddr7", "capacity_gb": 16, "interfaces": 4}
    assert from_dict(raw).offchip.bandwidth_gbps == 4 * 128.0
    raw["offchip"] = {"kind": "hbm4", "capacity_gb": 16}
    with pytest.raises(ValueError, match=r"offchip.bandwidth_gbps: give it, or offchip.interfaces \(each a hbm4"):
        from_dict(raw)


def test_a_field_set_against_its_kind_is_a_warning():
    raw = _raw()
    raw["offchip"].update(kind="lpddr5", pj_per_bit="hbm3", bandwidth_gbps=102.4)
    with pytest.warns(UserWarning, match="pj_per_bit names hbm3's energy but kind is 'lpddr5'"):
        c = from_dict(raw)
    assert c.offchip.pj_per_bit == 2.57
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sim.load_accelerator("fp16")                                   # a consistent preset warns nothing


def test_an_unknown_kind_is_an_error_listing_the_known_ones():
    raw = _raw()
    raw["offchip"]["kind"] = "hbm33"
    with pytest.raises(ValueError, match=r"unknown memory kind 'hbm33'; known: \[.*'gddr7'.*\] or 'custom'"):
        from_dict(raw)


def test_a_custom_memory_needs_its_bandwidth_and_energy():
    raw = _raw()
    raw["offchip"] = {"kind": "custom", "capacity_gb": 2, "bandwidth_gbps": 1.6}
    with pytest.raises(ValueError, match="offchip.pj_per_bit: required for kind 'custom'"):
        from_dict(raw)
    raw["offchip"]["pj_per_bit"] = 10.0
    c = from_dict(raw)
    assert (c.offchip.sustained_fraction, c.chip_costs().static_w_by_part["dram"]) == (1.0, 0.0)


# ---------------------------------------------------------------- process nodes
def test_nodes_scale_logic_by_tsmc_density_steps_and_sram_by_its_bitcell():
    s = {n: energy.area_scale(n) for n in energy.NODES}
    assert s[45] == 1.0 and s[7] == 0.059
    assert s[16] == pytest.approx(0.059 * 2 * 1.6, rel=1e-3)
    assert s[5] == pytest.approx(0.059 / 1.8, rel=1e-3) and s[3] == pytest.approx(0.059 / 1.8 / 1.6, rel=1e-2)
    sram = {n: energy.sram_mm2_per_kib(n) for n in energy.NODES}
    assert sram[7] == pytest.approx(8192 * 0.027 / 0.6 / 1e6)
    assert sram[3] == sram[5] and s[3] < s[5]                  # below 5 nm SRAM stops shrinking, logic does not
    assert sram[16] / sram[7] < s[16] / s[7]                   # and it shrank less than logic 16 -> 7 nm


def test_node_energies_are_the_7nm_rows_times_the_stated_factor():
    for node, f in ((16, 1 / (0.65 * 0.6)), (5, 0.7), (3, 0.49)):
        assert energy.mac_pj("fp16", "fp16", node) == pytest.approx((0.16 + 0.34) * f, rel=1e-3)
        assert energy.ARITH_PJ[node]["int8_add"].source.startswith("[B1]")


def test_clock_is_checked_against_the_node():
    raw = _raw()
    raw["clock_ghz"] = 50.0
    with pytest.raises(ValueError, match=r"clock_ghz = 50\.0 is outside \[0\.001, 5\] GHz at 7 nm"):
        from_dict(raw)
    raw["clock_ghz"] = 5.5
    with pytest.raises(ValueError, match="at 7 nm"):
        from_dict(raw)
    raw["process_nm"] = 5
    assert from_dict(raw).clock_ghz == 5.5
    raw["process_nm"] = 10
    with pytest.raises(ValueError, match=r"process_nm must be one of \(45, 16, 7, 5, 3\)"):
        from_dict(raw)


# ---------------------------------------------------------------- always-on and delivery energy
def test_operand_delivery_adds_the_register_bits_of_each_mac():
    b = sim.load_accelerator("b1.58")
    arr, op = b.arrays[0], b.arrays[0].pe_ops[0]
    extra = energy.pe_mac_energy_pj(arr, op, 7) - energy.mac_energy_pj("ternary", "int8", 7, 16384)
    assert extra == pytest.approx((8 + 23) * 1.0e-3)            # INT8 act + 23-bit partial sum at 1 fJ/bit


def test_clock_tree_dram_background_and_host_power_by_hand():
    b = sim.load_accelerator("b1.58")
    ternary_bits = 2 * 2 + 8 + 23                                  # double-buffered weight, act, partial sum
    fp16_bits = 16 * 2 + 16 + 32                                   # pipelined folds double-buffer its weight too
    bits = 65536 * ternary_bits + 8192 * fp16_bits + 512 * 48
    part = b.chip_costs().static_w_by_part
    assert part["clock"] == pytest.approx(bits * 1e-15 * 1e9, rel=1e-9)
    assert part["dram"] == pytest.approx(32 * 0.05)
    assert part["host"] == 0.0
    assert b.replace(host_interface="pcie5_x16").chip_costs().static_w_by_part["host"] == 3.0
    assert b.static_w == pytest.approx(sum(part.values()))
    with pytest.raises(ValueError, match="host_interface must be one of"):
        b.replace(host_interface="nvlink")


# ---------------------------------------------------------------- SRAM-resident weights
def test_resident_weight_store_is_charged_in_area_and_leakage():
    c = sim.load_accelerator("b1.58-sram")
    assert c.weight_residency == "sram" and c.sram.weight_store_mib == 2048
    kib = 8192 + 16384 + 2048 * 1024 + 6 * 2 * 16384 * 14 / 8 / 1024    # + the zero-skipping index buffers
    costs = c.chip_costs()
    assert costs.area_mm2_by_part["sram"] == pytest.approx(kib * energy.sram_mm2_per_kib(5))
    assert costs.static_w_by_part["sram"] == pytest.approx(kib * 10e-6)
    assert c.offchip.bandwidth_gbps == pytest.approx(2 * 68.26)


def test_residency_and_weight_store_must_agree():
    raw = _raw("b1.58")
    raw["weight_residency"] = "sram"
    with pytest.raises(ValueError, match="weight_residency 'sram' contradicts sram.weight_store_mib = 0"):
        from_dict(raw)
    raw["weight_residency"] = "dram"
    raw["sram"]["weight_store_mib"] = 64
    with pytest.raises(ValueError, match="weight_residency 'dram' contradicts"):
        from_dict(raw)
    raw["weight_residency"] = "flash"
    with pytest.raises(ValueError, match=r"weight_residency must be one of \('dram', 'sram'\)"):
        from_dict(raw)


# ---------------------------------------------------------------- quantized baselines
QUANTIZED = {"w4a16": ("int4", "fp16", 4), "w8a8-int8": ("int8", "int8", 8), "w8a8-fp8": ("fp8", "fp8", 8),
             "w4a4-mxfp4": ("fp4", "fp4", 4)}


@pytest.mark.parametrize("name", sorted(QUANTIZED))
def test_quantized_presets_are_iso_peak_with_fp16_and_map_every_op_natively(name):
    w, a, abits = QUANTIZED[name]
    c, f = sim.load_accelerator(name), sim.load_accelerator("fp16")
    assert c.peak_macs_per_cycle(w, a) == f.peak_macs_per_cycle("fp16", "fp16") == 65536
    assert c.offchip == f.offchip and c.sram == f.sram and c.clock_ghz == f.clock_ghz
    for need in ((w, a), ("fp16", "fp16")):                        # the linear layers, attention / LM head
        assert map_op(c, *need, "op").exact
    abits_in = 16 if a == "fp16" else abits
    tr = pd.DataFrame([gemm_row("q_proj", 1, 4096, 4096, wfmt=w, wbits=float(abits if w != "int4" else 4),
                                afmt=a, abits=abits_in),
                       gemm_row("attn_qk", 1, 2048, 128, wfmt="kv-fp16", afmt="fp16", op_class="attention",
                                kv_read=2048 * 128 * 2.0, count=32)])
    res = sim.simulate(tr, c)
    assert not res.summary.fallback_ops and list(res.ops["pair"]) == [f"{w}x{a}", "fp16xfp16"]


# ---------------------------------------------------------------- user cost table
def _overlay(tmp_path, rows: str, name="mine.csv"):
    p = tmp_path / name
    p.write_text("quantity,node_nm,value,unit,kind,source\n" + rows)
    return p


def test_a_user_cost_table_overlays_the_built_in_one(tmp_path):
    p = _overlay(tmp_path, "energy.int8_add,7,0.014,pJ,assumption,ASSUMPTION: twice the [B1] 7 nm add\n"
                           "reg.write_fj_per_bit,7,0.0,fJ,assumption,ASSUMPTION: no operand-delivery energy\n")
    base, mine = sim.load_accelerator("b1.58"), sim.load_accelerator("b1.58", costs=p)
    op = base.arrays[0].pe_ops[0]
    assert map_op(base, "ternary", "int8", "op").mac_pj == pytest.approx(0.007 * 23 / 8 + 31e-3)
    assert map_op(mine, "ternary", "int8", "op").mac_pj == pytest.approx(0.014 * 23 / 8)
    with energy.using_costs(mine.cost_table):
        assert energy.pe_mac_energy_pj(mine.arrays[0], op, 7) == pytest.approx(0.014 * 23 / 8)
    assert energy.pe_mac_energy_pj(base.arrays[0], op, 7) == pytest.approx(0.007 * 23 / 8 + 31e-3)  # built-in intact
    assert mine.area_mm2 == base.area_mm2


def test_a_cost_table_named_in_yaml_is_relative_to_the_file(tmp_path):
    _overlay(tmp_path, "logic.leakage_w_per_mm2,7,0.096,W/mm^2,assumption,ASSUMPTION: twice the built-in row\n")
    raw = _raw("b1.58")
    raw["costs"] = "mine.csv"
    y = tmp_path / "chip.yaml"
    y.write_text(yaml.safe_dump(raw))
    c, b = sim.load_accelerator(y), sim.load_accelerator("b1.58")
    assert c.chip_costs().static_w_by_part["logic"] == pytest.approx(2 * b.chip_costs().static_w_by_part["logic"])


@pytest.mark.parametrize("rows, message", [
    ("energy.int8_ad,7,0.01,pJ,sourced,[X] typo\n", "unknown quantity 'energy.int8_ad'"),
    ("energy.int8_add,7,0.01,nJ,sourced,[X] unit slip\n", "is in 'nJ'; the built-in table uses 'pJ'"),
    ("energy.int8_add,7,0.01,pJ,sourced,\n", "source non-empty"),
    ("energy.int8_add,12,0.01,pJ,sourced,[X] a node we do not have\n", "node_nm must be one of"),
    ("energy.int8_add,7,cheap,pJ,sourced,[X] not a number\n", "value a number"),
])
def test_a_bad_user_cost_table_is_refused_naming_the_row(tmp_path, rows, message):
    p = _overlay(tmp_path, rows)
    with pytest.raises(ValueError, match=message):
        sim.load_accelerator("b1.58", costs=p)


def test_a_missing_user_cost_table_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="costs: no such cost table"):
        sim.load_accelerator("b1.58", costs=tmp_path / "none.csv")


# ---------------------------------------------------------------- lookup-table and bit-serial PEs
def _kind(name: str, kind: str, group: int = 4):
    c = sim.load_accelerator(name)
    return c.replace(arrays=(dataclasses.replace(c.arrays[0], pe_kind=kind, lut_group=group),) + c.arrays[1:])


@pytest.mark.parametrize("group", [1, 2, 3, 4, 5])
def test_lut_dot_equals_the_plain_dot_product(group):
    rng = np.random.default_rng(group)
    for n in (1, 7, 64, 130):
        a = rng.integers(-128, 128, n)
        t = rng.integers(-1, 2, n)
        assert lut_dot(t, a, group) == int(np.dot(t, a))
        w4 = rng.integers(-8, 8, n)
        assert lut_dot(w4, a, group, bits=4) == int(np.dot(w4, a))


def test_bit_serial_dot_equals_the_plain_dot_product_in_act_bits_cycles():
    rng = np.random.default_rng(7)
    w, a = rng.integers(-1, 2, 100), rng.integers(-128, 128, 100)
    assert bit_serial_dot(w, a, 8) == (int(np.dot(w, a)), 800)
    a4 = rng.integers(-8, 8, 100)
    assert bit_serial_dot(w, a4, 4) == (int(np.dot(w, a4)), 400)


def test_lut_counts_by_hand_and_the_papers_halved_binary_table():
    c = lut_counts("ternary", 8, 4)
    assert (c.entries, c.stored, c.entry_bits, c.planes) == (81, 41, 8 + 3 + 1, 1)
    # T-MAC / LUT Tensor Core: a binary plane of g = 4 weights indexes 16 sums, 8 stored by symmetry
    b = lut_counts("int4", 8, 4)
    assert (b.entries, b.stored, b.planes) == (16, 8, 4)


def test_lut_pe_rate_energy_and_cycles_on_a_hand_case():
    lut, mac = _kind("b1.58", "lut"), sim.load_accelerator("b1.58")
    arr, op = lut.arrays[0], lut.arrays[0].pe_ops[0]
    assert lut.peak_macs_per_cycle("ternary", "int8") == 4 * mac.peak_macs_per_cycle("ternary", "int8")
    # per lookup: read a 12-bit entry, a 23-bit accumulate, write the 23-bit partial sum, over g = 4 MACs;
    # the table (41 stored entries, each a 12-bit add and write) serves 4 x N MACs
    reg, add = 1e-3, 0.007 / 8
    lookup = 12 * reg + 23 * add + 23 * reg
    build = 41 * (12 * add + 12 * reg)
    assert energy.pe_mac_energy_pj(arr, op, 7, 4096) == pytest.approx(lookup / 4 + build / (4 * 4096))
    m = map_op(lut, "ternary", "int8", "op", (2048, 4096, 4096, 1))
    assert m.array.rows == 128 * 4 and m.pe_op.rate == 1.0         # a PE row covers 4 reduction elements
    # prefill GEMM, weight-stationary, pipelined: 8 x 32 folds over 4 copies, 2048 rows each
    assert sim.compute.systolic_cycles(2048, 4096, 4096, m.array, 1.0) == 1 * 8 + 64 * 2048 + 512 + 128 - 2


def test_bit_serial_pe_takes_act_bits_cycles_and_adds_per_mac():
    bs = _kind("b1.58", "bit-serial")
    arr, op = bs.arrays[0], bs.arrays[0].pe_ops[0]
    assert bs.peak_macs_per_cycle("ternary", "int8") == 65536 / 8
    assert energy.pe_mac_energy_pj(arr, op, 7) == pytest.approx(8 * (23 * 0.007 / 8 + 24e-3))
    m = map_op(bs, "ternary", "int8", "op", (64, 4096, 4096, 1))
    assert m.pe_op.rate == 1 / 8


def test_pe_kinds_refuse_pairs_their_datapath_cannot_compute():
    raw = _raw("fp16")
    raw["arrays"][0]["pe_kind"] = "lut"
    with pytest.raises(ValueError, match=r"arrays\[0\].pe_ops\[0\]: a lut PE takes weights .* got fp16 x fp16"):
        from_dict(raw)
    raw["arrays"][0]["pe_kind"] = "systolic-lut"
    with pytest.raises(ValueError, match=r"pe_kind must be one of \('mac', 'lut', 'bit-serial'\)"):
        from_dict(raw)
    raw = _raw("b1.58")
    raw["arrays"][0].update(pe_kind="lut", lut_group=9)
    with pytest.raises(ValueError, match=r"lut_group = 9 is outside \[1, 6\]"):
        from_dict(raw)


def test_lut_and_bit_serial_arrays_simulate_a_model_trace():
    tr = decoder_trace("b1.58", layers=1, phase="prefill")
    base = sim.simulate(tr, "b1.58").summary
    lut = sim.simulate(tr, _kind("b1.58", "lut")).summary
    bs = sim.simulate(tr, _kind("b1.58", "bit-serial")).summary
    assert lut.latency_s < base.latency_s < bs.latency_s            # 4x, 1x, 1/8x the ternary MAC rate
    assert lut.energy_j_by_component["compute"] < base.energy_j_by_component["compute"]


def test_resident_weights_must_fit_the_store():
    c = sim.load_accelerator("b1.58-sram")
    check_resident_weights(c, 2048 * 2**20)                         # exactly full
    with pytest.raises(ValueError, match=r"2,100.0 MiB of weights do not fit b1.58-sram's resident weight store"):
        check_resident_weights(c, 2100 * 2**20)
    check_resident_weights(sim.load_accelerator("b1.58"), 1e12)     # streamed weights: no store to fit


def test_on_chip_network_energy_is_the_wire_rate_over_two_thirds_of_the_die_side():
    c = sim.load_accelerator("fp16")
    side = c.area_mm2 ** 0.5
    assert c.chip_costs().noc_pj_per_bit == pytest.approx(0.1 * 2 / 3 * side)


def test_every_design_space_field_carries_its_help_text():
    want = {AcceleratorConfig: ("weight_residency", "host_interface", "costs"), ArrayConfig: ("pe_kind", "lut_group"),
            OffchipConfig: ("bandwidth_gbps", "pj_per_bit", "sustained_fraction"), SramConfig: ("weight_store_mib",)}
    for cls, names in want.items():
        helps = field_help(cls)
        for n in names:
            assert len(helps[n]) > 40, (cls.__name__, n)
