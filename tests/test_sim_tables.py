"""The simulator's tables in the contract: the summary record, sim-vs-measured rows, the one MAPE, one vocabulary."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from test_sim_calibrate import _measured
from test_sim_synthetic import decoder_trace

import sim
from contract import ACT_FORMATS, KV_FORMATS, SCHEMAS, WEIGHT_FORMATS, validate
from contract.sim import ENERGY_COMPONENTS
from sim.compute import precision
from sim.validation import compare_measured, load_anchors, mape_by_class, validation_table


# ---------------------------------------------------------------- the summary record
def test_summary_record_and_the_registered_sim_summary_table_agree_column_by_column():
    res = sim.simulate(decoder_trace("a4.8", layers=2, batch=4), "a4.8")
    s = res.summary
    assert isinstance(s, sim.SimSummary) and len(dataclasses.fields(s)) == 36
    row = s.row()
    assert list(row) == [c.name for c in SCHEMAS["sim_summary"]]
    assert all(c.unit for c in SCHEMAS["sim_summary"] if c.kind in ("int", "float"))   # every number has a unit
    t = sim.summary_table([s, s])
    validate(t, "sim_summary")
    # flat columns are the record's numbers: component energies per token, cycles per bound
    assert row["energy_offchip_j"] == s.energy_j_by_component["offchip"] / 4
    assert sum(row[f"energy_{c}_j"] for c in ENERGY_COMPONENTS) == pytest.approx(
        s.energy_j_per_token)
    assert row["cycles_memory_bound"] == int(res.ops.loc[res.ops.bound == "memory", "cycles"].sum())
    assert json.loads(row["fallback_ops"]) == s.to_dict()["fallback_ops"]


def test_summary_is_a_frozen_record_with_a_json_form_not_a_mapping():
    s = sim.simulate(decoder_trace("b1.58", layers=1), "b1.58").summary
    d = s.to_dict()
    assert d["cycles"] == s.cycles and list(d) == [f.name for f in dataclasses.fields(s)]
    assert json.loads(json.dumps(d))["energy_j_by_component"] == s.energy_j_by_component
    assert not hasattr(s, "__getitem__") and not hasattr(s, "feasible")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.cycles = 0


# ---------------------------------------------------------------- one naming, one MAPE
def test_sim_vs_measured_rows_use_the_registered_names_with_no_renaming():
    rows, per_class = compare_measured(load_anchors())
    validate(rows, "sim_vs_measured")
    validate(per_class, "sim_validation")
    assert {"us", "err"}.isdisjoint(rows.columns)
    assert list(rows.columns) == [c.name for c in SCHEMAS["sim_vs_measured"]]
    ok = rows[rows.skipped == ""]
    np.testing.assert_array_equal(ok.ratio, ok.sim_us / ok.measured_us)
    np.testing.assert_array_equal(ok.rel_error, (ok.sim_us - ok.measured_us) / ok.measured_us)
    assert set(rows.preset) == {"h100-like"} and set(rows.split) == {""}


def test_the_one_mape_aggregation_matches_a_hand_computed_table():
    rows = pd.DataFrame({"class": ["a", "a", "b", "a"], "kernel_class": ["a x", "a y", "b x", "a x"],
                         "rel_error": [0.1, -0.3, 0.05, 0.2], "preset": "p", "split": "held-out",
                         "skipped": ["", "", "", "no op"]})
    t = mape_by_class(rows)
    assert t.to_dict("records") == [
        {"class": "a", "n": 2, "mape": pytest.approx(0.2), "max_abs_err": pytest.approx(0.3),
         "mean_err": pytest.approx(-0.1), "preset": "p", "split": "held-out"},
        {"class": "b", "n": 1, "mape": pytest.approx(0.05), "max_abs_err": pytest.approx(0.05),
         "mean_err": pytest.approx(0.05), "preset": "p", "split": "held-out"}]
    assert mape_by_class(rows, by="kernel_class")["class"].tolist() == ["a x", "a y", "b x"]
    assert mape_by_class(rows.assign(skipped="x")).empty


def test_validation_table_per_class_is_the_one_aggregation_of_its_own_rows():
    m = _measured([("gemv", "cublas_fp16", "baseline", "fp16", 1, 4096, 4096, True, 20.0),
                   ("gemm", "cublas_fp16", "baseline", "fp16", 512, 4096, 4096, True, 60.0),
                   ("gemv", "ours_w158a8", "ours", "w1.58a8", 1, 4096, 4096, True, 9.0),
                   ("gemv", "ours_w158a8", "ours", "w1.58a8", 1, 11008, 4096, False, 14.0)])
    rows, per_class = validation_table(m)
    validate(rows, "sim_vs_measured")
    validate(per_class, "sim_validation")
    again = pd.concat([mape_by_class(g, by="kernel_class") for _, g in rows.groupby(["preset", "split"], sort=False)],
                      ignore_index=True)
    pd.testing.assert_frame_equal(per_class, again)
    # the cuBLAS GEMV at 4096 x 4096 in a graph is the row h100-like's FP16 ramp is derived from
    assert set(zip(rows.preset, rows.split)) == {("h100-like", "calibration"), ("h100-like", "held-out"),
                                                  ("h100-triton", "calibration"), ("h100-triton", "held-out")}
    assert rows.loc[(rows.preset == "h100-like") & (rows.split == "calibration"), "M"].tolist() == [1]


# ---------------------------------------------------------------- one vocabulary
def test_every_format_sim_maps_is_a_word_of_the_shared_vocabulary():
    assert set(precision.WEIGHT_OPERAND) <= set(WEIGHT_FORMATS)
    assert set(precision.ACT_OPERAND) <= set(ACT_FORMATS)
    assert set(KV_FORMATS) <= set(precision.WEIGHT_OPERAND)
    assert set(precision.WEIGHT_OPERAND.values()) | set(precision.ACT_OPERAND.values()) <= set(precision.OPERANDS)
    # every vocabulary word sim cannot map is refused with a message that says so
    for fmt in set(WEIGHT_FORMATS) - set(precision.WEIGHT_OPERAND):
        with pytest.raises(ValueError, match="has no operand precision"):
            precision.weight_operand(fmt, "t")
    with pytest.raises(ValueError, match=r"unknown weight_format 'int2'; the vocabulary"):
        precision.weight_operand("int2", "t")
