"""Accelerator configs: presets load, bad configs and unrunnable ops fail with clear errors."""
from __future__ import annotations

import copy
import math

import pandas as pd
import pytest
import yaml
from test_sim_synthetic import decoder_trace, gemm_row

import sim
from sim.config import PRESET_DIR, PRESETS, from_dict, load_yaml


def _raw(name="b1.58"):
    return copy.deepcopy(load_yaml(PRESET_DIR / PRESETS[name]))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_loads_and_states_its_comparison_basis(name):
    c = sim.load_accelerator(name)
    assert c.name == name
    assert c.comparison in ("equal-peak-throughput", "measured-ceilings", "standalone")
    assert c.area_assumption.strip()


def test_fp16_b158_a48_have_equal_peak_throughput_of_their_main_operation():
    f, b, a = (sim.load_accelerator(n) for n in ("fp16", "b1.58", "a4.8"))
    assert f.peak_macs_per_cycle("fp16", "fp16") == b.peak_macs_per_cycle("ternary", "int8") \
        == a.peak_macs_per_cycle("ternary", "int4") == 65536
    assert a.peak_macs_per_cycle("ternary", "int8") == 32768          # a4.8's INT8 layers: the unsplit adder
    assert f.offchip == b.offchip == a.offchip and f.sram == b.sram == a.sram
    pe = {c.name: c.chip_costs().area_mm2_by_part["pe"] for c in (f, b)}
    assert pe["fp16"] > 5 * pe["b1.58"] and f.area_mm2 > b.area_mm2


def test_yaml_path_loads_same_config_as_preset_name(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text(yaml.safe_dump(_raw("edge")))
    assert sim.load_accelerator(p) == sim.load_accelerator("edge")


@pytest.mark.parametrize("mutate, field", [
    (lambda r: r.update(clockghz=1.0), "clockghz"),
    (lambda r: r["arrays"][0].update(rowz=4), "rowz"),
    (lambda r: r["arrays"][0].update(rows=-8), "arrays[0].rows"),
    (lambda r: r["sram"].update(weight_buffer_kib=-1), "sram.weight_buffer_kib"),
    (lambda r: r["offchip"].update(bandwidth_gbps=0), "offchip.bandwidth_gbps"),
    (lambda r: r["arrays"][0]["pe_ops"][0].update(acts="int5"), "arrays[0].pe_ops[0].acts"),
    (lambda r: r["arrays"][0].update(dataflow="row-stationary"), "arrays[0].dataflow"),
    (lambda r: r.update(process_nm=28), "process_nm"),
    (lambda r: r.update(kv_formats=["kv-int2"]), "kv_formats"),
    (lambda r: r["offchip"].update(pj_per_bit="hbm9"), "offchip.pj_per_bit"),
    (lambda r: r["arrays"][0].update(rows="128"), "rows"),
    (lambda r: r["vector"].update(passes={"sortt": 2}), "vector.passes"),
    (lambda r: r.pop("sram"), "sram"),
    (lambda r: r["arrays"][0].update(unpack={"int5": 4.0}), "arrays[0].unpack"),
    (lambda r: r["arrays"][0].update(unpack={"ternary": -1.0}), "arrays[0].unpack.ternary"),
    (lambda r: r["arrays"][0].update(unpack={"ternary": "fast"}), "arrays[0].unpack.ternary"),
    (lambda r: r.update(host_launch_ns=-5.0), "host_launch_ns"),
    (lambda r: r.update(calibration={"op_overhead_ns": 3}), "calibration"),
    (lambda r: r["arrays"][0].update(max_m=-4), "arrays[0].max_m"),
    (lambda r: r["arrays"][0].update(max_m=0), "arrays[0].max_m"),
    (lambda r: r["arrays"][0].update(max_m="4"), "arrays[0].max_m"),
    (lambda r: r["arrays"][0].update(max_m=4.5), "arrays[0].max_m"),
    (lambda r: r["arrays"][0].update(max_m=True), "arrays[0].max_m"),
])
def test_bad_config_raises_value_error_naming_the_field(mutate, field):
    raw = copy.deepcopy(_raw())
    mutate(raw)
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        from_dict(raw, where="b1.58.yaml")


def test_unknown_preset_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown accelerator 'b2.0'"):
        sim.load_accelerator("b2.0")
    with pytest.raises(TypeError):
        sim.load_accelerator(3)


def test_strict_policy_refuses_an_op_without_an_exact_pe_pair_naming_the_op():
    cfg = sim.load_accelerator("b1.58").replace(precision_policy="strict")
    tr = pd.DataFrame([gemm_row("q_proj", 1, 64, 64, wfmt="ternary", wbits=2, afmt="int4", abits=4)])
    with pytest.raises(ValueError, match=r"op 'q_proj'.*ternaryxint4"):
        sim.simulate(tr, cfg)


def test_promote_policy_runs_ternary_int4_at_the_int8_pair_rate():
    raw = _raw("b1.58")
    raw["arrays"] = raw["arrays"][:1]  # only ternary x int8 PEs
    b = from_dict(raw)
    tr = pd.DataFrame([gemm_row("q_proj", 512, 512, 512, wfmt="ternary", wbits=2, afmt="int4", abits=4)])
    res = sim.simulate(tr, b)
    assert res.ops["pair"].iloc[0] == "ternaryxint8"
    tr8 = pd.DataFrame([gemm_row("q_proj", 512, 512, 512, wfmt="ternary", wbits=2, afmt="int8", abits=8)])
    # same PE pair, same rate -> same compute cycles as a real ternary x int8 op
    assert res.ops["compute_cycles"].iloc[0] == sim.simulate(tr8, b).ops["compute_cycles"].iloc[0]


def test_int8_op_on_an_fp16_only_accelerator_is_promoted_but_fp16_on_int8_only_is_an_error():
    f = sim.load_accelerator("fp16")
    tr = pd.DataFrame([gemm_row("g", 8, 64, 64, wfmt="int8", wbits=8, afmt="int8", abits=8)])
    assert sim.simulate(tr, f).ops["pair"].iloc[0] == "fp16xfp16"
    raw = _raw("b1.58")
    raw["arrays"] = raw["arrays"][:1]  # ternary x int8 only
    c = from_dict(raw)
    with pytest.raises(ValueError, match="cannot run a fp16xfp16 op"):
        sim.simulate(pd.DataFrame([gemm_row("lm_head", 1, 64, 64)]), c)


def test_unsupported_kv_format_and_unknown_vector_op_are_errors_naming_the_op():
    tr = decoder_trace("a4.8", layers=1, head=False)  # kv-int3
    with pytest.raises(ValueError, match=r"op 'attn_qk'.*kv-int3"):
        sim.simulate(tr, "fp16")
    bad = decoder_trace("b1.58", layers=1, head=False)
    bad.loc[0, "op"] = "mystery_op"
    with pytest.raises(ValueError, match="mystery_op"):
        sim.simulate(bad, "b1.58")


def test_bad_trace_values_are_value_errors_naming_column_and_row():
    tr = decoder_trace("b1.58", layers=1, head=False)
    t1 = tr.copy()
    t1.loc[3, "M"] = -1
    with pytest.raises(ValueError, match="row 3 .*'M'"):
        sim.simulate(t1, "b1.58")
    t2 = tr.copy()
    t2.loc[4, "weight_bytes"] = float("nan")
    with pytest.raises(ValueError, match="row 4 .*weight_bytes"):
        sim.simulate(t2, "b1.58")
    with pytest.raises(ValueError, match="missing columns"):
        sim.simulate(tr.drop(columns=["row_skip"]), "b1.58")
    with pytest.raises(TypeError):
        sim.simulate(tr.to_dict(), "b1.58")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_energy_basis_marks_the_gpu_presets_as_dynamic_only(name):
    c = sim.load_accelerator(name)
    expected = "dynamic-only" if name.startswith(("h100", "h200")) else "model"
    assert c.energy_basis == expected
    if expected == "dynamic-only":
        assert c.static_power_w == 0


def test_h100_like_summary_labels_its_energy_as_dynamic_only_with_no_static_part():
    res = sim.simulate(decoder_trace("b1.58", layers=1), "h100-like")
    s = res.summary
    assert s.energy_basis == "dynamic-only"
    assert s.energy_j_by_component["static"] == 0.0
    assert s.energy_j == pytest.approx(sum(v for k, v in s.energy_j_by_component.items() if k != "static"))
    assert sim.simulate(decoder_trace("b1.58", layers=1), "b1.58").summary.energy_basis == "model"


@pytest.mark.parametrize("value, msg", [
    ("board", "energy_basis must be one of"),
    (3, "energy_basis: expected str"),
])
def test_bad_energy_basis_is_rejected_naming_the_field(value, msg):
    raw = _raw()
    raw["energy_basis"] = value
    with pytest.raises(ValueError, match=msg):
        from_dict(raw)


def test_dynamic_only_energy_basis_with_static_power_is_a_contradiction():
    raw = _raw()
    raw["energy_basis"] = "dynamic-only"
    raw["static_model"], raw["static_power_w"] = "fixed", 5.0
    with pytest.raises(ValueError, match="energy_basis 'dynamic-only' contradicts static_power_w"):
        from_dict(raw)


def test_dynamic_only_energy_basis_with_a_leakage_model_is_a_contradiction():
    raw = _raw()
    assert raw["static_model"] == "leakage"
    raw["energy_basis"] = "dynamic-only"
    with pytest.raises(ValueError, match="energy_basis 'dynamic-only' contradicts static_model 'leakage'"):
        from_dict(raw)


def _h100_like_raw(max_m=None):
    raw = _raw("h100-like")
    raw["arrays"][1]["max_m"] = max_m          # arrays[1] = cuda_cores
    raw["arrays"][0].update(split_reduction=False, split_balanced=False)   # whole folds, as the hand count
    return from_dict(raw)


def test_max_m_dispatch_rule_moves_ops_above_it_to_the_other_array():
    # Hand count (sim.compute.systolic, output-stationary, pipelined folds) of a ternary x int8
    # GEMM M=16, N=K=4096 on h100-like (both arrays promote it to int8 x int8):
    #   cuda_cores 1x128 x132, rate 4:   folds 16*32 = 512 -> 4 waves x ceil(4096/4) + 127 = 4223
    #   tensor_cores 128x128 x132, rate 0.1315206: 32 folds -> 1 wave x ceil(4096/0.1315206) + 254
    from sim.compute import map_op
    shape16, shape4 = (16, 4096, 4096, 1), (4, 4096, 4096, 1)
    free, ruled = _h100_like_raw(), _h100_like_raw(max_m=4)
    m = map_op(free, "ternary", "int8", "t", shape16)
    assert m.array.name == "cuda_cores"
    assert sim.compute.systolic_cycles(*shape16[:3], m.array, 4.0) == 4 * 1024 + 127
    m = map_op(ruled, "ternary", "int8", "t", shape16)
    assert m.array.name == "tensor_cores"
    assert sim.compute.systolic_cycles(*shape16[:3], m.array, m.pe_op.rate) == math.ceil(4096 / 0.1315206) + 254
    # the bound is inclusive: M = max_m still runs on the ruled array
    assert map_op(ruled, "ternary", "int8", "t", shape4).array.name == "cuda_cores"
    # end to end, the simulated op reports the unit it ran on
    tr = pd.DataFrame([gemm_row("up_proj", M, 4096, 4096, wfmt="ternary", wbits=2, afmt="int8", abits=8)
                       for M in (4, 16)])
    assert sim.simulate(tr, ruled).ops["unit"].tolist() == ["cuda_cores", "tensor_cores"]
    assert sim.simulate(tr, free).ops["unit"].tolist() == ["cuda_cores", "cuda_cores"]


def test_op_above_every_arrays_max_m_is_an_error_naming_the_op_and_the_rule():
    raw = _raw("h100-like")
    raw["arrays"] = [dict(raw["arrays"][1], max_m=4)]      # cuda_cores only, GEMV rule
    c = from_dict(raw)
    ok = pd.DataFrame([gemm_row("o_proj", 4, 256, 256)])
    assert sim.simulate(ok, c).ops["unit"].iloc[0] == "cuda_cores"
    bad = pd.DataFrame([gemm_row("o_proj", 5, 256, 256)])
    with pytest.raises(ValueError, match=r"op 'o_proj'.*M=5.*cuda_cores \(max_m=4\)"):
        sim.simulate(bad, c)
