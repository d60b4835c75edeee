"""The exact FP8 GEMM's fp32 promotion (``arrays[].promote_every_k`` / ``promote_ns``): its cycle count by hand,
its place in an op's busy time (serial with the MACs and the unpack, FP8 pairs only), the config checks, the fit
that gives a known cost back, and the H200 rows it is carried to from the H100."""
from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest
from test_sim_synthetic import gemm_row

import sim
from contract import read_table
from sim.compute import promotion_cycles
from sim.config import PRESET_DIR, from_dict, load_yaml
from sim.engine import plan_ops
from sim.validation.calibrate import PROMOTE_EVERY_K, fit_promotion
from sim.validation.crossgpu import H100_CURRENT, H200_MEASURED, promotion_of_h100
from sim.validation.replay import MEASURED_DIR, compare_measured


def _array(**kw):
    a = sim.load_accelerator("h200-triton").arrays[0]
    base = dict(rows=128, cols=128, count=2, dataflow="output-stationary", split_reduction=False,
                promote_every_k={"fp8": 512}, promote_ns={"fp8": 100.0})
    return dataclasses.replace(a, **{**base, **kw})


def test_promotion_cycles_are_waves_times_promotions_per_fold_times_the_cost():
    # 256 x 256 outputs = 4 folds of 128 x 128 on 2 copies: 2 waves; K 1024 / 512 = 2 promotions per fold;
    # 100 ns at 1 GHz = 100 cycles each: 2 x 2 x 100
    assert promotion_cycles(256, 256, 1024, _array(), "fp8", 1.0) == 400
    assert promotion_cycles(256, 256, 1025, _array(), "fp8", 1.0) == 600     # a partial slice promotes too
    assert promotion_cycles(256, 256, 1024, _array(), "fp8", 2.0) == 800     # ns -> cycles at the clock
    assert promotion_cycles(256, 256, 1024, _array(), "int8", 1.0) == 0      # integer sums: exact, no promotion
    assert promotion_cycles(256, 256, 1024, _array(promote_ns={}), "fp8", 1.0) == 0


def test_a_split_reduction_spreads_the_promotion_steps_over_the_copies_instead_of_counting_one_per_part():
    # 8 x 11008 outputs = 86 folds on 132 copies; K 4096 = 8 promotion steps per fold.  The balanced split cuts K
    # into many parts, but each part promotes per whole step of its own: the 86 x 8 = 688 steps spread over
    # the 132 copies are ceil(688 / 132) = 6 serial promotions, 600 cycles at 100 ns and 1 GHz
    split = _array(count=132, split_reduction=True, split_balanced=True)
    assert promotion_cycles(8, 11008, 4096, split, "fp8", 1.0) == 600
    # without the split: one wave of whole folds, 8 promotions each
    assert promotion_cycles(8, 11008, 4096, _array(count=132), "fp8", 1.0) == 800
    # as many folds as copies or more: no split, waves x steps as before (172 folds: 2 waves x 8)
    assert promotion_cycles(8, 22016, 4096, split, "fp8", 1.0) == 1600


def _h200(ns: float | None):
    a = sim.load_accelerator("h200-triton")
    cores = a.arrays[0]
    cores = dataclasses.replace(cores, promote_every_k={} if ns is None else {"fp8": PROMOTE_EVERY_K},
                                promote_ns={} if ns is None else {"fp8": ns})
    return a.replace(arrays=(cores, *a.arrays[1:]))


def _trace(afmt: str, abits: int, M=2048, N=4096, K=4096) -> pd.DataFrame:
    t = pd.DataFrame([gemm_row("o_proj", M, N, K, wfmt="ternary", wbits=2.0, afmt=afmt, abits=abits)])
    t.attrs = {"phase": "prefill", "batch": 1}
    return t


def test_an_fp8_gemm_pays_its_promotions_in_series_and_an_int8_gemm_pays_none():
    fp8, int8 = _trace("int4", 4), _trace("int8", 8)
    (plain,), (promoted,) = plan_ops(fp8, _h200(None)), plan_ops(fp8, _h200(1000.0))
    assert plain.pair == promoted.pair == "fp8xfp8"
    cfg = _h200(1000.0)
    cores = cfg.arrays[0]
    expected = promotion_cycles(2048, 4096, 4096, cores, "fp8", cfg.clock_ghz)
    # by hand: 16 x 32 folds of 128 x 128 on 132 SMs = 4 waves, 8 promotions per fold, 1 us each at 1.755 GHz
    assert expected == math.ceil(4 * 8 * 1000.0 * cfg.clock_ghz)
    assert promoted.unit_cycles - plain.unit_cycles == pytest.approx(expected, abs=1)
    (i_plain,), (i_promoted,) = plan_ops(int8, _h200(None)), plan_ops(int8, _h200(1000.0))
    assert i_plain.pair == "int8xint8" and i_promoted.unit_cycles == i_plain.unit_cycles


def test_the_config_refuses_a_promotion_cost_without_its_interval_and_out_of_range_values():
    raw = load_yaml(PRESET_DIR / "h200-triton.yaml")
    bad = dict(raw, arrays=[dict(raw["arrays"][0], promote_every_k={}, promote_ns={"fp8": 10.0}), raw["arrays"][1]])
    with pytest.raises(ValueError, match="promote_ns: format 'fp8' has no promote_every_k"):
        from_dict(bad, where="t")
    neg = dict(raw, arrays=[dict(raw["arrays"][0], promote_ns={"fp8": -1.0}), raw["arrays"][1]])
    with pytest.raises(ValueError, match="promote_ns.fp8"):
        from_dict(neg, where="t")
    frac = dict(raw, arrays=[dict(raw["arrays"][0], promote_every_k={"fp8": 12.5}), raw["arrays"][1]])
    with pytest.raises(ValueError, match="whole number"):
        from_dict(frac, where="t")
    unknown = dict(raw, arrays=[dict(raw["arrays"][0], promote_every_k={"fp9": 512}), raw["arrays"][1]])
    with pytest.raises(ValueError, match="fp9"):
        from_dict(unknown, where="t")


def _fp8_gemm_rows(us: list[float]) -> pd.DataFrame:
    """The four M = 8192 FP8 GEMM rows of the H100 table of the current kernels, timed ``us`` instead."""
    t = read_table(H100_CURRENT, "measured_trace")
    rows = t[(t.kernel == "ours_w158a4_fp8") & (t.op == "gemm") & (t.M == 8192)].reset_index(drop=True)
    assert len(rows) == len(us)
    return rows.assign(us=us)


def test_fit_promotion_gives_back_the_cost_the_rows_were_made_with():
    raw = load_yaml(PRESET_DIR / "h100-triton.yaml")
    truth = load_yaml(PRESET_DIR / "h100-triton.yaml")
    truth["arrays"][0].update(promote_every_k={"fp8": PROMOTE_EVERY_K}, promote_ns={"fp8": 750.0})
    made = compare_measured(_fp8_gemm_rows([1.0] * 4), from_dict(truth, where="t"), flush_dirty_bytes=0.0)[0]
    assert fit_promotion(raw, _fp8_gemm_rows(made["sim_us"].tolist()), 0.0) == pytest.approx(750.0, abs=1.0)
    # rows no slower than the replay without promotion: no promotion cost, never a negative one
    plain = compare_measured(_fp8_gemm_rows([1.0] * 4), from_dict(raw, where="t"), flush_dirty_bytes=0.0)[0]
    assert fit_promotion(raw, _fp8_gemm_rows((plain["sim_us"] * 0.9).tolist()), 0.0) == 0.0


def test_the_h200_fp8_gemm_rows_held_out_are_predicted_from_the_h100_promotion_within_15_percent():
    h100 = read_table(H100_CURRENT, "measured_trace")
    fitted = load_yaml(PRESET_DIR / "h100-triton.yaml")
    promotion_of_h100(fitted, h100)
    ns = fitted["arrays"][0]["promote_ns"]["fp8"]
    assert ns == pytest.approx(sim.load_accelerator("h200-triton").arrays[0].promote_ns["fp8"], abs=0.1)
    h200 = read_table(H200_MEASURED, "measured_trace")
    rows = h200[(h200.kernel == "ours_w158a4_fp8") & (h200.op == "gemm")].reset_index(drop=True)
    out = compare_measured(rows, "h200-triton", flush_dirty_bytes=60e6)[0]
    assert len(out) == 8 and out["rel_error"].abs().mean() < 0.15
    # without the promotion the same rows replay as fast as the INT8 GEMM: about 30 % short
    bare = compare_measured(rows, _h200(None), flush_dirty_bytes=60e6)[0]
    assert bare["rel_error"].mean() < -0.25


def test_the_first_h100_table_has_no_promoting_fp8_kernel_so_its_rows_fit_nothing():
    first = read_table(MEASURED_DIR / "measured_h100_kernels.parquet", "measured_trace")
    f8 = first[(first.kernel == "ours_w158a4_fp8") & (first.M == 8192)].set_index(["N", "K"])["us"]
    i8 = first[(first.kernel == "ours_w158a4_int8") & (first.M == 8192)].set_index(["N", "K"])["us"]
    assert ((f8 / i8).dropna() < 1.05).all()          # the FP8 GEMM of that table: as fast as its INT8 twin
    current = read_table(H100_CURRENT, "measured_trace")
    f8 = current[(current.kernel == "ours_w158a4_fp8") & (current.M == 8192)].set_index(["N", "K"])["us"]
    i8 = current[(current.kernel == "ours_w158a4_int8") & (current.M == 8192)].set_index(["N", "K"])["us"]
    assert ((f8 / i8).dropna() > 1.3).all()           # the promoting kernel: 1.3x and more
