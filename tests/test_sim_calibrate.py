"""The fitted GPU-kernel parameters (sim.validation.calibrate, preset h100-triton) and their held-out validation."""
from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import pandas as pd
import pytest
from test_sim_synthetic import gemm_row

import sim
from contract import measured_final_rows, read_table, validate
from sim.compute import unpack_cycles
from sim.config import from_dict
from sim.validation import FITS, calibration_mask, compare_measured, fit, to_yaml, validation_table
from sim.validation.heldout import h100_calibration_mask

MEASURED = Path(__file__).resolve().parents[1] / "reports" / "data" / "measured_h100_kernels.parquet"
BOUND = 0.15  # the validation bar: MAPE <= 15 % per kernel class


def _measured(rows: list[tuple]) -> pd.DataFrame:
    """A measured_trace table from (op, kernel, impl, precision, M, N, K, cuda_graph, us) tuples."""
    recs = [dict(op=op, kernel=k, impl=impl, precision=p, M=M, N=N, K=K, sparsity=0.0, cuda_graph=g, us=us,
                 bytes=0.0, ops=0.0, gbps=0.0, tops=0.0, exact=True, gpu="synthetic", torch="-", triton="-",
                 cuda="-", date="2000-01-01") for op, k, impl, p, M, N, K, g, us in rows]
    return validate(pd.DataFrame(recs), "measured_trace")


CAL_SHAPES = [("gemv", "ours_w158a8", "ours", "w1.58a8", 1, 4096, 4096, True),
              ("gemv", "ours_w158a8", "ours", "w1.58a8", 1, 4096, 4096, False),
              ("gemm", "ours_w158a8", "ours", "w1.58a8", 8192, 4096, 4096, False),
              ("gemm", "ours_w158a8", "ours", "w1.58a8", 8192, 11008, 4096, False),
              ("attention_decode", "ours_kv3", "ours", "kv3", 8, 32, 8192, False),
              ("sparse_gemv", "ours_sparse_w158a8", "ours", "w1.58a8", 1, 4096, 11008, True),
              ("sparse_gemv", "ours_sparse_w158a8", "ours", "w1.58a8", 1, 4096, 11008, True)]
SPARSITY = {5: 0.84, 6: 0.5}    # CAL_SHAPES rows of the gather fit: fraction of zero activations


def _cal_rows(us: float) -> pd.DataFrame:
    t = _measured([s + (us,) for s in CAL_SHAPES])
    for i, sp in SPARSITY.items():
        t.loc[i, "sparsity"] = sp
    return t


def _truth() -> dict:
    """h100-like plus known values of every fitted parameter (not the fitted ones)."""
    raw = fit.__globals__["_base_raw"]()
    raw.update(name="truth", op_overhead_ns=3300.0, host_launch_ns=4700.0)
    raw["sparsity"] = {"skip_weight_fetch": True, "skip_compute": False, "stream_when_cheaper": False}
    raw["arrays"][0]["unpack"] = {**raw["arrays"][0].get("unpack", {}), "ternary": 9.0}
    raw["arrays"][1]["unpack"] = {"int3": 5.0, "int4": 5.0}
    raw["arrays"][1]["max_m"] = 4
    raw["offchip"] = dict(raw["offchip"], row_miss_ns=1.5)
    return raw


# ---------------------------------------------------------------- (i) the fit recovers known values
def test_fit_recovers_known_parameters_from_rows_the_model_itself_generated():
    truth = _truth()
    shapes = _cal_rows(1.0)
    rows, _ = compare_measured(shapes, from_dict(copy.deepcopy(truth)))
    synthetic = shapes.assign(us=rows["sim_us"].to_numpy())
    got = fit(synthetic, source="synthetic")
    assert got["op_overhead_ns"] == pytest.approx(3300.0, abs=1.0)  # cycle rounding: < 1 cycle = 0.57 ns
    assert got["host_launch_ns"] == pytest.approx(4700.0, abs=1.0)
    assert got["arrays"][0]["unpack"]["ternary"] == pytest.approx(9.0, rel=0.01)
    assert got["arrays"][1]["unpack"]["int3"] == pytest.approx(5.0, rel=0.01)
    assert got["arrays"][1]["unpack"]["int4"] == got["arrays"][1]["unpack"]["int3"]
    assert got["offchip"]["row_miss_ns"] == pytest.approx(1.5, rel=0.01)
    assert set(got["calibration"]) >= {f.param for f in FITS}


def test_fit_names_the_missing_calibration_subset():
    no_attention = _measured([s + (5.0,) for s in CAL_SHAPES[:4]])
    with pytest.raises(ValueError, match="unpack.int3"):
        fit(no_attention)


def test_fitted_yaml_text_loads_back_to_the_same_config(tmp_path):
    raw = _truth()
    raw["calibration"] = {"op_overhead_ns": "synthetic"}
    p = tmp_path / "t.yaml"
    p.write_text(to_yaml(raw, "synthetic.parquet"))
    assert sim.load_accelerator(p) == from_dict(copy.deepcopy(raw))
    assert "FITTED" in p.read_text()


# ---------------------------------------------------------------- unpack model (hand-computed)
def test_unpack_cycles_of_a_large_gemm_match_the_hand_count():
    tc = sim.load_accelerator("h100-triton").arrays[0]
    # 8192 x 4096 x 4096 on 132 output-stationary 128x128 tiles: 64 x 32 = 2048 folds in
    # ceil(2048 / 132) = 16 waves; each fold unpacks its 128-column x 4096 weight tile.
    assert unpack_cycles(8192, 4096, 4096, tc, 8.0) == 16 * math.ceil(128 * 4096 / 8.0)
    # few folds (M = 128: 32 folds, one wave) and no split reduction: a fold's full time, not the total spread
    # over 132 copies
    whole = dataclasses.replace(tc, split_reduction=False, split_balanced=False)
    assert unpack_cycles(128, 4096, 4096, whole, 8.0) == math.ceil(128 * 4096 / 8.0)


def test_unpack_stage_binds_only_packed_operands_and_faster_unpack_is_never_slower():
    base = sim.load_accelerator("h100-triton")
    tern = pd.DataFrame([gemm_row("g", 2048, 4096, 4096, wfmt="ternary", wbits=2, afmt="int8", abits=8)])
    int8 = pd.DataFrame([gemm_row("g", 2048, 4096, 4096, wfmt="int8", wbits=8, afmt="int8", abits=8)])
    lat = []
    for r in (2.0, 8.0, 32.0, 1e4):
        arrays = (dataclasses.replace(base.arrays[0], unpack={**base.arrays[0].unpack, "ternary": r}),
                  base.arrays[1])
        cfg = base.replace(arrays=arrays)
        lat.append(sim.simulate(tern, cfg).summary.cycles)
        # an int8 op needs no unpack: unchanged by the rate
        assert sim.simulate(int8, cfg).summary.cycles == sim.simulate(int8, base).summary.cycles
    assert lat == sorted(lat, reverse=True) and lat[0] > lat[-1]
    # with unpack effectively free, h100-triton's ternary GEMM is h100-like's (with its own launch latency)
    like = sim.load_accelerator("h100-like")
    ideal = sim.simulate(tern, like).summary.cycles
    assert lat[-1] == ideal - like.op_overhead_cycles + base.op_overhead_cycles


# ---------------------------------------------------------------- (ii) held-out MAPE on the committed table
@pytest.fixture(scope="module")
def committed():
    if not MEASURED.exists():
        pytest.skip("no committed measured table")
    table = read_table(MEASURED, schema="measured_trace")
    raw = fit(table, source=str(MEASURED.relative_to(MEASURED.parents[2])))
    rows, per_class = validation_table(table, fitted=from_dict(copy.deepcopy(raw)))
    return table, raw, rows, per_class


def test_committed_h100_triton_preset_is_the_fit_of_the_committed_table(committed):
    _, raw, _, _ = committed
    fitted, preset = from_dict(copy.deepcopy(raw)), sim.load_accelerator("h100-triton")
    msg = ("re-run: bitsim calibrate reports/data/measured_h100_kernels.parquet "
           "-o sim/presets/h100-triton.yaml --force")
    assert fitted.op_overhead_ns == preset.op_overhead_ns, msg
    assert fitted.host_launch_ns == preset.host_launch_ns, msg
    assert [a.unpack for a in fitted.arrays] == [a.unpack for a in preset.arrays], msg
    assert [a.max_m for a in fitted.arrays] == [a.max_m for a in preset.arrays] == [None, 4], msg
    assert fitted == preset, msg


def test_validation_table_has_the_report_columns_and_keeps_calibration_rows_apart(committed):
    table, _, rows, per_class = committed
    assert list(per_class.columns) == ["class", "n", "mape", "max_abs_err", "mean_err", "preset", "split"]
    assert set(per_class["split"]) == {"calibration", "held-out"}
    # every ours row is on h100-triton, every baseline row on h100-like; calibration rows: ours, and the one cuBLAS
    # GEMV shape h100-like's FP16 ramp is derived from
    ran = rows[rows.skipped == ""]
    assert set(ran.loc[ran.kernel.str.startswith("ours"), "preset"]) == {"h100-triton"}
    assert set(ran.loc[~ran.kernel.str.startswith("ours"), "preset"]) == {"h100-like"}
    cal_like = rows[(rows.split == "calibration") & (rows.preset == "h100-like")]
    assert set(zip(cal_like.kernel, cal_like.M, cal_like.N, cal_like.K)) <= {("cublas_fp16", 1, 4096, 4096)}
    n_cal = int(h100_calibration_mask(table).sum())
    assert (rows.split == "calibration").sum() == n_cal > int(calibration_mask(table).sum()) > 0
    assert per_class["n"].sum() == (rows.skipped == "").sum()


def test_h100_like_baseline_classes_meet_the_issue_bound_held_out(committed):
    _, _, rows, pc = committed
    base = pc[(pc.preset == "h100-like") & pc["class"].str.endswith((" cublas", " torch"))].set_index("class")
    assert {"gemm fp16 cublas", "gemm int8 cublas", "gemm fp8 cublas", "gemv fp16 cublas"} <= set(base.index)
    others = base.drop(index="gemm fp8 cublas")
    assert (others["mape"] <= BOUND).all(), others
    # cuBLAS FP8 carries the decode-batch stream costs derived on graph-timed rows (h100-like.yaml); its rows
    # timed one call at a time at M <= 128 replay the L2 flush's dirty write-back in series, which the measured
    # kernel hides (its M = 16 call takes what its M = 8 graph replay does), so they run long.  The GEMMs of a
    # prefill (M >= 2048) meet the bound.
    fp8 = rows[(rows["kernel"] == "cublas_fp8") & (rows["preset"] == "h100-like")]
    big, small = fp8[fp8["M"] >= 2048], fp8[fp8["M"] <= 128]
    assert len(big) and big["rel_error"].abs().mean() <= BOUND, big
    assert len(small) and not small["cuda_graph"].any() and (small["rel_error"] > 0).all(), small


# Classes of our kernels whose held-out MAPE on h100-triton meets the bound with the committed
# table; the rest miss, for the reasons in docs/simulator.md (asserted below to be improved only).
# The GEMV class (16.8 %) is no longer among them: once the harness's L2 flush is shared by the calls a
# CUDA-graph row rotates over, our GEMVs show their cost beyond their bytes (the whole-token rows agree).
# Nor the A4-FP8 GEMM class: its M = 16 / 128 rows time the earlier untuned small-M tiles, 2x the tuned
# kernel the split reduction of the GPU presets describes (docs/simulator.md).
MEETS_BOUND = ("attention_decode kv3 ours",)


def test_h100_triton_meets_the_bound_on_the_classes_docs_say_it_meets(committed):
    _, _, _, pc = committed
    held = pc[(pc.preset == "h100-triton") & (pc.split == "held-out")].set_index("class")
    for c in MEETS_BOUND:
        assert held.loc[c, "mape"] <= BOUND, (c, held.loc[c].to_dict())


def test_h100_triton_fits_decode_bound_large_m_gemms_and_beats_h100_like_on_every_class(committed):
    table, _, rows, pc = committed
    ours = rows[(rows.preset == "h100-triton") & (rows.skipped == "")]
    big = ours[(ours.split == "held-out") & ours.kernel_class.str.startswith("gemm") & (ours.M >= 2048)]
    assert len(big) and big.rel_error.abs().mean() <= 0.10, big[["kernel_class", "M", "N", "K", "rel_error"]]
    # the fitted parameters improve every class of our kernels over the ideal-kernel preset
    m = measured_final_rows(table).reset_index(drop=True)
    ideal_rows, _ = compare_measured(m[m.impl == "ours"].reset_index(drop=True), "h100-like")
    ideal = ideal_rows[ideal_rows.skipped == ""].assign(a=lambda d: d.rel_error.abs()).groupby("kernel_class").a.mean()
    fitted = ours.assign(a=ours.rel_error.abs()).groupby("kernel_class").a.mean()
    for c in fitted.index:
        assert fitted[c] < ideal[c], (c, fitted[c], ideal[c])


def test_h100_triton_dispatch_rule_is_the_launchers_gemv_rule():
    # kernels/ternary_gemm.py runs the CUDA-core GEMV only for M <= GEMV_MAX_M, the tensor-core GEMM otherwise
    from kernels.ternary_gemm import GEMV_MAX_M
    c = sim.load_accelerator("h100-triton")
    assert {a.name: a.max_m for a in c.arrays} == {"tensor_cores": None, "cuda_cores": GEMV_MAX_M}
    tr = pd.DataFrame([gemm_row("gate_proj", M, 11008, 4096, wfmt="ternary", wbits=2, afmt="int8", abits=8)
                       for M in (1, GEMV_MAX_M, GEMV_MAX_M + 1, 16, 128)])
    units = sim.simulate(tr, c).ops["unit"].tolist()
    assert units == ["cuda_cores", "cuda_cores", "tensor_cores", "tensor_cores", "tensor_cores"]


def test_a_row_timed_on_the_gemv_path_replays_on_the_cuda_cores_past_the_dispatch_rule():
    # kernel "..._gemv": the launcher's path="gemv" at a batch the "auto" rule sends to the tensor cores
    from kernels.ternary_gemm import GEMV_MAX_M
    M = 2 * GEMV_MAX_M
    rows = _measured([("gemm", "ours_w158a8", "ours", "w1.58a8", M, 11008, 4096, True, 10.0),
                      ("gemm", "ours_w158a8_gemv", "ours", "w1.58a8", M, 11008, 4096, True, 10.0),
                      ("gemv", "ours_w158a8", "ours", "w1.58a8", 1, 11008, 4096, True, 10.0)])
    got = compare_measured(rows, "h100-triton")[0]
    c = sim.load_accelerator("h100-triton")
    gemv_only = c.replace(arrays=tuple(dataclasses.replace(a, max_m=None, pe_ops=tuple(
        p for p in a.pe_ops if (p.weights, p.acts) == ("int8", "int8"))) for a in c.arrays if a.name == "cuda_cores"))
    tc_only = c.replace(arrays=tuple(a for a in c.arrays if a.name == "tensor_cores"))
    alone = [compare_measured(rows.iloc[[i]].reset_index(drop=True), cfg)[0]["sim_us"].iloc[0]
             for i, cfg in ((0, tc_only), (1, gemv_only))]
    assert got["sim_us"].iloc[0] == pytest.approx(alone[0])          # the "auto" row: the tensor-core GEMM
    assert got["sim_us"].iloc[1] == pytest.approx(alone[1])          # the GEMV row: the CUDA cores
    assert got["sim_us"].iloc[1] < got["sim_us"].iloc[0]
    assert got["kernel_class"].tolist() == ["gemm w1.58a8 ours", "gemm w1.58a8 ours-gemv", "gemv w1.58a8 ours"]


def test_the_gemv_path_replays_at_the_dp4a_rate_without_promoting_to_a_faster_pair():
    # at a quarter of the INT8 rate the batched GEMV's MACs, not its bytes, set its time; the array's
    # FP16 pair stays as fast as before, and the kernel never uses it
    M, N, K = 32, 4096, 4096
    rows = _measured([("gemm", "ours_w158a8_gemv", "ours", "w1.58a8", M, N, K, True, 10.0)])
    c = sim.load_accelerator("h100-triton")
    slow = c.replace(arrays=tuple(dataclasses.replace(a, pe_ops=tuple(
        dataclasses.replace(p, rate=p.rate / 4) if (p.weights, p.acts) == ("int8", "int8") else p
        for p in a.pe_ops)) if a.name == "cuda_cores" else a for a in c.arrays))
    base, slowed = (compare_measured(rows, cfg)[0]["sim_us"].iloc[0] for cfg in (c, slow))
    cores = next(a for a in c.arrays if a.name == "cuda_cores")
    int8_rate = next(p.rate for p in cores.pe_ops if (p.weights, p.acts) == ("int8", "int8"))
    mac_us = M * N * K / (cores.pes * int8_rate / 4 * c.clock_ghz * 1e3)
    assert slowed > base and slowed >= mac_us
