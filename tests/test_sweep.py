"""Design-space sweeps: spec validation, point expansion, resumable results, Dask = local."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from bitsim.experiments.sweep import (done_ids, evaluate_point, load_spec, make_accelerator, parse_spec, read_results,
                          run_sweep)

ROOT = Path(__file__).resolve().parent.parent


def _spec(**over):
    raw = {"name": "t", "accelerator": {"base": "a4.8", "grid": {"offchip.bandwidth_gbps": [400.0, 1600.0],
                                                                  "arrays.ternary.rows": [64, 128]}},
           "workloads": {"preset": "tiny", "datapath": ["b1.58", "a4.8"], "context": [64]}}
    raw.update(over)
    return raw


# ---------------------------------------------------------------- validation
def test_unknown_top_level_field_is_named():
    with pytest.raises(ValueError, match="'workload'"):
        parse_spec(_spec(workload={"preset": "tiny"}))


def test_duplicate_key_in_a_spec_file_is_named_with_its_line(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("name: x\naccelerator:\n  base: a4.8\n  base: b1.58\nworkloads: {preset: tiny, datapath: a4.8}\n")
    with pytest.raises(ValueError, match=r"line 4.*duplicate key .base."):
        load_spec(spec)


def test_unknown_accelerator_parameter_is_named():
    raw = _spec(accelerator={"base": "a4.8", "grid": {"arrays.ternary.rowz": [64]}})
    with pytest.raises(ValueError, match="rowz"):
        parse_spec(raw)
    raw = _spec(accelerator={"base": "a4.8", "grid": {"offchip.bandwith_gbps": [1.0]}})
    with pytest.raises(ValueError, match="bandwith_gbps"):
        parse_spec(raw)


def test_bad_accelerator_value_is_refused_by_the_simulator_config():
    raw = _spec(accelerator={"base": "a4.8", "grid": {"offchip.bandwidth_gbps": [-5.0]}})
    with pytest.raises(ValueError, match="bandwidth_gbps"):
        parse_spec(raw)


def test_unknown_workload_field_and_bad_values_are_named():
    with pytest.raises(ValueError, match="'ctx'"):
        parse_spec(_spec(workloads={"preset": "tiny", "datapath": "a4.8", "ctx": 64}))
    with pytest.raises(ValueError, match="context"):
        parse_spec(_spec(workloads={"preset": "tiny", "datapath": "a4.8", "context": -1}))
    with pytest.raises(ValueError, match="phase"):
        parse_spec(_spec(workloads={"preset": "tiny", "datapath": "a4.8", "phase": "train"}))


def test_points_are_the_cartesian_product_with_stable_ids():
    spec = parse_spec(_spec())
    pts = spec.points()
    assert len(pts) == 2 * 2 * 2  # 2 bandwidths x 2 row counts x 2 datapaths
    assert len({p["point_id"] for p in pts}) == len(pts)
    assert [p["point_id"] for p in parse_spec(_spec()).points()] == [p["point_id"] for p in pts]


def test_overrides_change_only_the_named_fields():
    base = make_accelerator("a4.8", {})
    acc = make_accelerator("a4.8", {"arrays.ternary.rows": 32, "offchip.bandwidth_gbps": 100.0,
                                    "sparsity.skip_compute": False})
    assert acc.arrays[0].rows == 32 and acc.offchip.bandwidth_gbps == 100.0 and not acc.sparsity.skip_compute
    assert acc.arrays[0].cols == base.arrays[0].cols and acc.arrays[1] == base.arrays[1]
    assert acc.sram == base.sram and acc.clock_ghz == base.clock_ghz
    by_index = make_accelerator("a4.8", {"arrays.0.rows": 32})
    assert by_index.arrays[0].rows == 32
    int8_only = make_accelerator("a4.8", {"arrays.ternary.pe_ops": [{"weights": "ternary", "acts": "int8"}]})
    assert [(p.weights, p.acts) for p in int8_only.arrays[0].pe_ops] == [("ternary", "int8")]
    with pytest.raises(ValueError, match="int5"):
        make_accelerator("a4.8", {"arrays.ternary.pe_ops": [{"weights": "ternary", "acts": "int5"}]})


def test_halving_bandwidth_slows_a_memory_bound_point(tmp_path):
    # tiny decode on a4.8 with a narrow channel is memory-bound: time ~ 1/bandwidth
    spec = parse_spec(_spec(accelerator={"base": "a4.8", "grid": {"offchip.bandwidth_gbps": [0.5, 1.0]}},
                            workloads={"preset": "tiny", "datapath": "a4.8", "context": [64]}))
    df = run_sweep(spec, tmp_path / "r.parquet", backend="serial", progress=False)
    df = df.sort_values("hw.offchip.bandwidth_gbps")
    ratio = df.latency_s.iloc[0] / df.latency_s.iloc[1]
    assert 1.8 < ratio <= 2.0 + 1e-9


def test_supported_precisions_are_a_sweepable_parameter(tmp_path):
    int8 = [{"weights": "ternary", "acts": "int8", "rate": 1.0}]
    int4 = [{"weights": "ternary", "acts": "int4", "rate": 2.0}, {"weights": "ternary", "acts": "int8", "rate": 1.0}]
    spec = parse_spec(_spec(accelerator={"base": "a4.8", "grid": {"arrays.ternary.pe_ops": [int8, int4]}},
                            workloads={"preset": "tiny", "datapath": "a4.8", "phase": "prefill", "context": [64]}))
    df = run_sweep(spec, tmp_path / "r.parquet", backend="serial", progress=False)
    assert len(df) == 2 and df["hw.arrays.ternary.pe_ops"].nunique() == 2
    # the override reached the simulator: the same trace times differently on the two arrays
    assert df.latency_s.nunique() == 2


# ---------------------------------------------------------------- results set
def test_rerun_evaluates_nothing_and_returns_every_point(tmp_path):
    spec = parse_spec(_spec())
    out = tmp_path / "r.parquet"
    first = run_sweep(spec, out, backend="serial", progress=False)
    assert len(first) == len(spec.points())

    def must_not_run(point):
        raise AssertionError(f"point {point['point_id']} evaluated twice")

    again = run_sweep(spec, out, backend="serial", progress=False, evaluate=must_not_run)
    pd.testing.assert_frame_equal(first, again)
    assert len(pd.read_parquet(out)) == len(spec.points())  # the folder reads as one table


def test_stale_temporary_files_are_removed(tmp_path):
    spec = parse_spec(_spec())
    out = tmp_path / "r.parquet"
    out.mkdir()
    (out / ".tmp-deadbeef-1.parquet").write_bytes(b"half a file")
    run_sweep(spec, out, backend="serial", progress=False)
    assert not list(out.glob(".tmp-*"))


@pytest.mark.slow
def test_sigkill_mid_sweep_then_rerun_loses_and_duplicates_nothing(tmp_path):
    spec_raw = {"name": "kill", "accelerator": {"base": "a4.8", "grid": {
        "offchip.bandwidth_gbps": [200.0, 400.0, 800.0, 1600.0], "clock_ghz": [0.5, 1.0, 2.0]}},
        "workloads": {"preset": "2b4t", "datapath": "a4.8", "context": [512, 1024]}}
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec_raw))
    spec = load_spec(spec_path)
    n = len(spec.points())
    out = tmp_path / "results.parquet"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "bitsim.cli", "sweep", str(spec_path), "-o", str(out), "--workers", "2", "-q"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while len(done_ids(out)) < 5 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the sweep finished before it could be killed: " + proc.stderr.read().decode()
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its worker processes, mid-sweep
    proc.wait()
    killed_at = len(done_ids(out))
    assert 5 <= killed_at < n

    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    parts = sorted(out.glob("point-*.parquet"))
    assert len(parts) == n
    assert {p["point_id"] for p in spec.points()} == done_ids(out)
    assert not list(out.glob(".tmp-*"))
    table = pd.read_parquet(out)
    assert len(table) == n and table.point_id.is_unique

    # rows equal a direct evaluation of the same points (first, middle, last of one workload)
    got = read_results(out, spec).set_index("point_id")
    pts = [p for p in spec.points() if p["workload"]["context"] == 512]
    for p in (pts[0], pts[len(pts) // 2], pts[-1]):
        want = pd.Series(evaluate_point(p)).drop("point_id")
        assert got.loc[p["point_id"], want.index].tolist() == want.tolist()


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_results(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    spec = parse_spec(_spec())
    local = run_sweep(spec, tmp_path / "local.parquet", backend="process", workers=2, progress=False)
    dask = run_sweep(spec, tmp_path / "dask.parquet", backend="dask", workers=2, progress=False)
    pd.testing.assert_frame_equal(local, dask)
    assert len(dask) == len(spec.points())
