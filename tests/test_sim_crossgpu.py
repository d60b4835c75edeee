"""Cross-GPU held-out validation (sim.validation.crossgpu): h200-like from the measured copy rate,
the H100 fit carried to the H200, every H200 row held out."""
from __future__ import annotations

import pandas as pd
import pytest

from contract import read_table
from sim.config import from_dict
from sim.validation import cross_gpu_table, h200_like_raw, load_anchors

H100 = "reports/data/measured_h100_kernels.parquet"


def _with_copy(table: pd.DataFrame, gbps: float) -> pd.DataFrame:
    row = table.iloc[[0]].copy()
    row[["op", "kernel", "impl", "precision", "M", "N", "K", "us"]] = ["ceiling", "copy", "baseline", "fp32", 1,
                                                                       268435456, 1, 500.0]
    if "gbps" in row:
        row["gbps"] = gbps
    return pd.concat([table, row], ignore_index=True)


def test_h200_like_takes_the_measured_copy_rate_as_its_sustained_fraction():
    t = _with_copy(load_anchors(), 4218.0)
    cfg = from_dict(h200_like_raw(t), where="h200-like")
    assert cfg.offchip.bandwidth_gbps == 4800 and cfg.offchip.capacity_gb == 141
    assert cfg.offchip.sustained_fraction == pytest.approx(4218 / 4800, abs=1e-4)
    assert cfg.offchip_bytes_per_cycle == pytest.approx(4218 / cfg.clock_ghz, rel=1e-3)
    h100 = from_dict(h200_like_raw(None) | {"name": "x"}, where="x")
    assert [a.pe_ops for a in h100.arrays] == [a.pe_ops for a in cfg.arrays]      # compute as the H100


def test_cross_gpu_table_holds_out_every_h200_row_and_fits_only_on_the_h100():
    h100 = read_table(H100, schema="measured_trace")
    h200 = _with_copy(load_anchors(), 4218.0)       # stand-in H200 rows (cuBLAS / SDPA shapes)
    rows, per_class = cross_gpu_table(h100, h200)
    done = rows[rows["skipped"] == ""]
    assert len(done) == len(load_anchors()) and set(done["split"]) == {"held-out"}
    assert set(done["preset"]) == {"h200-like"}
    # the H200's faster memory makes the memory-bound GEMV rows faster than on h100-like
    assert (per_class["preset"] == "h200-like").all() and per_class["n"].sum() == len(done)


def test_the_h100_presets_of_the_current_kernels_take_no_block_or_token_row():
    from sim.validation.crossgpu import H100_CURRENT_TABLES, h100_current_presets
    from sim.validation.replay import H100_MEASURED
    first = read_table(H100_MEASURED, "measured_trace")
    current = pd.concat([read_table(p, "measured_trace") for p in H100_CURRENT_TABLES], ignore_index=True)
    like, kernels = h100_current_presets(first, current)
    assert (like["name"], kernels["name"]) == ("h100-like-current", "h100-triton-current")
    cores = {a["name"]: a for a in kernels["arrays"]}
    assert cores["tensor_cores"]["promote_ns"]["fp8"] > 0                      # the current FP8 GEMM promotes
    assert cores["cuda_cores"]["split_reduction"] and cores["cuda_cores"]["stream_ramp_ns"]["ternary"] > 0
    whole = current["op"].isin(("token_decode", "block_decode", "block_prefill"))
    assert whole.any()
    _, without = h100_current_presets(first, current[~whole].reset_index(drop=True))
    assert without == kernels                                                   # blocks and tokens stay held out


def test_the_batched_gemv_rate_is_recovered_from_rows_replayed_at_a_known_rate_and_marks_only_its_rows():
    import copy

    from sim.validation.calibrate import GEMV_RATE_FIT, set_param
    from sim.validation.crossgpu import current_calibration_mask, gemv_rate_of
    from sim.validation.replay import compare_measured
    raw = copy.deepcopy(h200_like_raw(None))
    raw["name"] = "truth"
    set_param(raw, GEMV_RATE_FIT.param, 0.7)
    rows = load_anchors().iloc[[0, 0, 0, 0]].reset_index(drop=True)
    rows[["op", "kernel", "impl", "precision", "N", "K", "cuda_graph"]] = [
        "gemm", "ours_w158a8_gemv", "ours", "w1.58a8", 4096, 11008, True]
    rows["M"] = [8, 16, 32, 32]
    rows.loc[3, "N"] = 22016                                # another shape: not a calibration row
    replayed, _ = compare_measured(rows, from_dict(copy.deepcopy(raw), where="truth"))
    rows["us"] = replayed["sim_us"].to_numpy()
    fitted = copy.deepcopy(raw)
    set_param(fitted, GEMV_RATE_FIT.param, 4.0)
    gemv_rate_of(fitted, rows, "synthetic", 50e6)
    cores = next(a for a in fitted["arrays"] if a["name"] == "cuda_cores")
    int8 = next(p for p in cores["pe_ops"] if (p["weights"], p["acts"]) == ("int8", "int8"))
    assert int8["rate"] == pytest.approx(0.7, rel=0.01)
    assert "fitted" in fitted["calibration"][GEMV_RATE_FIT.param]
    assert current_calibration_mask(rows).tolist() == [True, True, True, False]


def test_a_ceiling_time_gives_back_the_rate_h100_like_states_for_it():
    # h100-like.yaml's rates are the per-PE rates at which its tiling runs an 8192^3 GEMM in the measured time:
    # 679 TFLOP/s FP16 -> 0.0922511, 968 TOPS INT8 -> 0.1315206, 1403 TFLOP/s FP8 -> 0.1906342
    from sim.config import load_accelerator
    from sim.validation.crossgpu import rate_for_ceiling
    cfg = load_accelerator("h100-like")
    tc = next(a for a in cfg.arrays if a.name == "tensor_cores")
    for tops, rate in ((679, 0.0922511), (968, 0.1315206), (1403, 0.1906342)):
        assert rate_for_ceiling(tc, cfg.clock_ghz, 2 * 8192 ** 3 / tops / 1e6) == pytest.approx(rate, rel=2e-5)
    for bad in (0.0, -5.0, float("nan"), 1e-3):          # 1 ns: below the fold fill at any rate
        with pytest.raises(ValueError):
            rate_for_ceiling(tc, cfg.clock_ghz, bad)


def test_current_presets_take_the_median_ceiling_of_their_own_runs_and_keep_the_rest():
    import copy

    import yaml

    from sim.config import PRESET_DIR
    from sim.validation.crossgpu import current_ceilings
    raw = yaml.safe_load((PRESET_DIR / "h100-like.yaml").read_text())
    raw["calibration"] = {}
    before = copy.deepcopy(raw)
    cube = dict(op="ceiling", M=8192, N=8192, K=8192)
    us = {t: 2 * 8192 ** 3 / t / 1e6 for t in (900.0, 910.0, 980.0)}          # median 910 TOPS
    rows = pd.DataFrame([dict(cube, kernel="cublas_int8", us=u) for u in us.values()]
                        + [dict(op="ceiling", kernel="cublas_fp16", M=4096, N=4096, K=4096, us=1.0),   # not 8192^3
                           dict(op="gemm", kernel="cublas_fp8", M=8192, N=8192, K=8192, us=1.0)])      # not a ceiling
    current_ceilings(raw, rows, "a test table")
    pairs = {(o["weights"], o["acts"]): o["rate"] for a in raw["arrays"] if a["name"] == "tensor_cores"
             for o in a["pe_ops"]}
    old = {(o["weights"], o["acts"]): o["rate"] for a in before["arrays"] if a["name"] == "tensor_cores"
           for o in a["pe_ops"]}
    assert pairs[("int8", "int8")] == pytest.approx(0.1315206 * 910 / 968, rel=2e-3)
    assert {k: v for k, v in pairs.items() if k != ("int8", "int8")} == {k: v for k, v in old.items()
                                                                       if k != ("int8", "int8")}
    assert "910 TOP/s" in raw["calibration"]["arrays[tensor_cores].pe_ops.int8"]
    current_ceilings(raw, rows.iloc[0:0], "no rows")                          # no ceiling rows: unchanged
    assert {(o["weights"], o["acts"]): o["rate"] for a in raw["arrays"] if a["name"] == "tensor_cores"
            for o in a["pe_ops"]} == pairs
