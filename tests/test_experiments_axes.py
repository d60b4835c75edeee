"""The study's axes: comparison bases, capacity-aware sweeps, crossovers, sensitivity bands."""
import math

import numpy as np
import pandas as pd
import pytest

import sim
from bitsim.experiments.axes import _cross_log, crossovers
from bitsim.experiments.chipmetrics import chip_area, row_feasible, row_power
from bitsim.experiments.runs import Chip, TraceKey, simulate_job
from bitsim.experiments.sensitivity import _energy
from bitsim.experiments.sizing import TOLERANCE, scaled, size_to_area, size_to_power
from bitsim.experiments.study import StudyConfig, run_study
from bitsim.report import figures


@pytest.fixture(scope="module")
def study():
    cfg = StudyConfig(presets=("tiny",), datapaths=("fp16", "b1.58", "a4.8"), contexts=(64, 256), prefill_tokens=64,
                      workers=1, batches=(1, 4), bandwidth_factors=(0.5, 1.0, 2.0),
                      experiments=("batch", "bandwidth", "bases", "sensitivity"))
    return run_study(cfg, progress=False)


def test_iso_area_points_have_equal_area_within_1_percent(study):
    bases = study.axes["bases"]
    target = sim.load_accelerator("fp16").area_mm2   # independent: sim's own area of the fp16 chip
    iso = bases[bases.basis == "iso-area"]
    assert set(iso.datapath) == {"fp16", "b1.58", "a4.8"} and len(iso) == 6  # decode and prefill each
    assert (abs(iso.area_mm2 / target - 1) <= 0.01).all() and iso.basis_within.all()
    assert (iso[iso.datapath != "fp16"].array_factor > 2).all()  # 1-bit chips get several times the PEs
    for base in ("b1.58", "a4.8"):
        for t in (0.6 * target, 3.0 * target):
            s = size_to_area(Chip.of(base), t)
            assert abs(chip_area(s.chip.config())[0] / t - 1) <= TOLERANCE and s.within


def test_iso_power_chip_meets_the_fp16_chips_prefill_power(study):
    b = study.axes["bases"]
    iso = b[(b.basis == "iso-power") & (b.phase == "prefill")].set_index("datapath")
    target = iso.power_w["fp16"]
    assert (abs(iso.power_w / target - 1) <= 0.01).all()
    assert np.allclose(iso.basis_target, target)
    key = TraceKey(preset="tiny", datapath="a4.8", phase="prefill", context=64)
    s = size_to_power(Chip.of("a4.8"), key.build(), 2.0 * row_power(simulate_job(key.build(), Chip.of("a4.8")).row)[0])
    assert s.within and s.factor > 1


def test_scaling_keeps_array_shapes_and_multiplies_pes():
    c = scaled(Chip.of("a4.8"), 2.6).config()
    by = {a.name: a for a in c.arrays}
    assert by["ternary"].cols == 128 and by["ternary"].count == 5   # floor(2 x 2.6)
    assert by["ternary"].pes == pytest.approx(2 * 128 * 128 * 2.6, rel=0.01)
    assert by["attn"].count == 5 and by["attn"].rows == 64        # round(2 x 2.6), shape kept


def test_scaling_multiplies_the_vector_lanes_and_sram_bandwidth_and_keeps_the_sram_sizes():
    base, c = Chip.of("a4.8").config(), scaled(Chip.of("a4.8"), 2.6).config()
    assert (base.vector.lanes, c.vector.lanes) == (512, 1331)                       # round(512 x 2.6)
    assert (base.sram.bandwidth_bytes_per_cycle, c.sram.bandwidth_bytes_per_cycle) == (16384, 42598)
    assert (c.sram.weight_buffer_kib, c.sram.activation_buffer_kib, c.offchip) == (
        base.sram.weight_buffer_kib, base.sram.activation_buffer_kib, base.offchip)


def _line_points(fig) -> set[tuple[float, float]]:
    pts = set()
    for ax in fig.axes:
        for ln in ax.get_lines():
            for x, y in zip(ln.get_xdata(), ln.get_ydata()):
                pts.add((round(float(x), 6), round(float(y), 6)))
    return pts


def test_infeasible_points_never_appear_in_throughput_figures(study):
    s = study.summary.copy()
    dec = (s.phase == "decode") & (s.role == "matched")
    victim = s[dec].index[0]
    s.loc[victim, "feasible"] = False
    x, y = s.loc[victim, "context"], s.loc[victim, "tokens_per_s"]
    fig = figures.throughput(s)
    ys = {p[1] for p in _line_points(fig)}
    assert round(float(y), 6) not in ys and len(ys) > 0
    b = study.axes["batch"].copy()
    bad = (b.datapath == "a4.8") & (b.batch == b.batch.max())   # capacity does not depend on skipping
    b.loc[bad, "feasible"] = False
    fig = figures.batch_sweep(b)
    ys = {p[1] for p in _line_points(fig)}
    others = {round(float(v), 6) for v in b[~bad].tokens_per_s}
    assert all(round(float(v), 6) not in ys or round(float(v), 6) in others for v in b[bad].tokens_per_s)
    assert {round(float(v), 6) for v in b[~bad].tokens_per_s} <= ys   # every feasible point is drawn
    assert x > 0


def test_capacity_marks_a_point_that_does_not_fit_infeasible():
    key = TraceKey(preset="tiny", datapath="b1.58", phase="decode", context=256, batch=4)
    tiny_memory = Chip.of("b1.58", {"offchip.capacity_gb": 1e-6})
    row = simulate_job(key.build(), tiny_memory).row
    assert row["footprint_bytes"] > 1e3 and row_feasible(row)[0] is False


def test_batch_sweep_measures_what_zero_skipping_buys(study):
    b = study.axes["batch"]
    on = b[(b.datapath == "a4.8") & (b.skip == "on")].set_index("batch").tokens_per_s
    off = b[(b.datapath == "a4.8") & (b.skip == "off")].set_index("batch").tokens_per_s
    got = b[(b.datapath == "a4.8") & (b.skip == "on")].set_index("batch").skip_gain
    assert np.allclose(got, on / off) and (got >= 1 - 1e-9).all()
    assert set(b[b.datapath == "fp16"].skip) == {"on"}  # fp16 has no zeros to skip: run once


def test_crossover_interpolates_on_a_log_axis():
    # gain 1.5 at 1, 1.1 at 4, 1.0 at 16: 1.05 is halfway between 4 and 16 on a log axis, i.e. at 8
    assert _cross_log(np.array([1.0, 4.0, 16.0]), np.array([1.5, 1.1, 1.0]), 1.05) == pytest.approx(8.0)
    assert _cross_log(np.array([1.0, 2.0]), np.array([1.5, 1.4]), 1.05) is None


def test_kv_crossover_is_where_kv_bytes_reach_the_weight_bytes(study):
    c = crossovers(study.plan, study.summary, study.axes)
    s = study.summary
    row = s[(s.phase == "decode") & (s.role == "matched") & (s.datapath == "a4.8") & (s.context == 256)].iloc[0]
    got = c[(c.crossover == "context at which the KV cache outweighs the weights") & (c.datapath == "a4.8")]
    assert got.value.iloc[0] == pytest.approx(256 * row.gemm_bytes_offchip / row.attention_bytes_offchip)


def test_energy_band_is_sims_own_energy_at_the_changed_inputs():
    key = TraceKey(preset="tiny", datapath="b1.58", phase="decode", context=256)
    tr = key.build()
    acc = sim.load_accelerator("b1.58")
    nominal = pd.Series(simulate_job(tr, Chip.of("b1.58")).row)
    pj = simulate_job(tr, Chip.of("b1.58", {"offchip.pj_per_bit": 2 * acc.offchip.pj_per_bit})).row
    assert _energy(nominal, f_pj=2.0).energy_j_per_token == pytest.approx(pj["energy_j_per_token"], rel=1e-9)
    static = {"static_model": "fixed", "static_power_w": 3 * acc.static_w}
    st = simulate_job(tr, Chip.of("b1.58", static)).row
    assert _energy(nominal, f_static=3.0).energy_j_per_token == pytest.approx(st["energy_j_per_token"], rel=1e-9)


def test_sensitivity_bands_hold_the_nominal_value(study):
    sens = study.axes["sensitivity"]
    assert set(sens.knob) >= {"off-chip pJ/bit", "static power", "sustained bandwidth", "skip gather cost",
                              "skip index build", "per-op dispatch", "memory latency"}
    assert ((sens.band_low <= sens.nominal + 1e-12) & (sens.nominal <= sens.band_high + 1e-12)).all()
    for _, g in sens.groupby(["ratio", "phase", "context"]):
        assert g.band_low.iloc[0] == pytest.approx(min(g.value.min(), g.nominal.iloc[0]))
    assert math.isfinite(sens.value.sum())
