"""Bad inputs that must end in a clear error: oversized trace rows, symlink loops, deep JSON, damaged caches."""
from __future__ import annotations

import os

import pandas as pd
import pytest
from test_sim_hardening import _cli, trace_file  # noqa: F401  (trace_file is a fixture)
from test_sim_synthetic import decoder_trace

import sim
from bitsim.experiments.serving import read_cost_cache
from model.train import read_json


@pytest.mark.parametrize("column, value", [("count", 2 ** 53), ("M", 2 ** 40), ("K", 2 ** 30)])
def test_a_trace_row_beyond_its_shape_bound_is_refused_not_simulated(column, value):
    tr = decoder_trace("b1.58", layers=1)
    tr.loc[tr.op_class == "gemm", column] = value
    with pytest.raises(ValueError, match=rf"{column} must be <="):
        sim.simulate(tr, "b1.58")


def test_simulate_with_a_symlink_loop_as_input_is_a_clear_error(tmp_path, trace_file):  # noqa: F811
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)
    with pytest.raises((ValueError, FileNotFoundError), match="symlink loop|no such"):
        _cli(tmp_path, "--trace", str(trace_file), "--accel", str(loop), "-o", str(tmp_path / "r.parquet"))


def test_a_results_json_nested_past_its_bound_is_a_value_error(tmp_path):
    deep = tmp_path / "results.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nested deeper"):
        read_json(deep, "training results file")


def _cache(tmp_path, seconds: float):
    p = tmp_path / "cache.csv"
    pd.DataFrame([dict(key="k", phase="decode", batch=1, new_tokens=1, context=64, seconds=seconds,
                       joules=1.0)]).to_csv(p, index=False)
    return p


def test_a_serving_cost_cache_with_negative_times_or_a_fifo_is_refused(tmp_path):
    assert read_cost_cache(_cache(tmp_path, 0.002)).seconds.iloc[0] == 0.002
    with pytest.raises(ValueError, match="finite numbers >= 0"):
        read_cost_cache(_cache(tmp_path, -1.0))
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        read_cost_cache(fifo)
