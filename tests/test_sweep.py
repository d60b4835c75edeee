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

from bitsim.cli import main
from bitsim.experiments.hardware import make_accelerator
from bitsim.experiments.sweep import (
    MAX_POINTS,
    done_ids,
    evaluate_point,
    infeasible_reason,
    load_spec,
    parse_spec,
    read_results,
    resident_weight_mib,
    results_folder,
    run_sweep,
    workload_digest,
)
from model.config import get_config, weight_bytes

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


# ---------------------------------------------------------------- bad inputs and damaged results
def _fake_evaluate(point):
    return {"point_id": point["point_id"], **point["workload"], "accelerator": point["accelerator"],
            "prefill_tokens": -1, "tokens": 1.0, "cycles": 1.0, "latency_s": 1.0,
            "tokens_per_s": float(point["overrides"].get("offchip.bandwidth_gbps", 1.0)), "energy_j": 1.0,
            "energy_j_per_token": 1.0, "bytes_offchip": 1.0, "weight_bytes": 1.0, "kv_bytes": 1.0,
            "footprint_bytes": 1.0, "fits_offchip": True}


def test_editing_the_base_yaml_changes_point_ids_so_resume_recomputes(tmp_path):
    base = tmp_path / "acc.yaml"
    base.write_text((ROOT / "sim" / "presets" / "a4.8.yaml").read_text())
    raw = _spec(accelerator={"base": str(base), "grid": {"clock_ghz": [1.0]}})
    out = tmp_path / "r.parquet"
    first = run_sweep(parse_spec(raw), out, backend="serial", progress=False)
    text = base.read_text()
    assert "bandwidth_gbps: 1638.4" in text
    base.write_text(text.replace("bandwidth_gbps: 1638.4", "bandwidth_gbps: 100.0"))
    with pytest.raises(ValueError, match="another sweep spec"):   # the folder holds the old spec's points
        run_sweep(parse_spec(raw), out, backend="serial", progress=False)
    second = run_sweep(parse_spec(raw), tmp_path / "r2.parquet", backend="serial", progress=False)
    assert set(first.point_id).isdisjoint(second.point_id)
    # rows come in point-id order, and the ids changed: compare datapath by datapath
    first, second = (df.sort_values("datapath").reset_index(drop=True) for df in (first, second))
    assert (first.datapath == second.datapath).all()
    assert (second.tokens_per_s.to_numpy() < first.tokens_per_s.to_numpy()).all()


def test_a_live_sweeps_temporary_part_survives_a_second_start(tmp_path):
    spec = parse_spec(_spec())
    out = tmp_path / "r.parquet"
    run_sweep(spec, out, backend="serial", progress=False, evaluate=_fake_evaluate)
    live = out / f".tmp-abc-{os.getpid()}-00ff.parquet"          # this process is alive
    dead = out / ".tmp-abc-999999999-00ff.parquet"               # no such process
    live.write_bytes(b"in flight")
    dead.write_bytes(b"left by a killed run")
    run_sweep(spec, out, backend="serial", progress=False, evaluate=_fake_evaluate)
    assert live.exists() and not dead.exists()


def test_a_corrupt_part_is_recomputed_not_counted_as_done(tmp_path):
    spec = parse_spec(_spec())
    out = tmp_path / "r.parquet"
    run_sweep(spec, out, backend="serial", progress=False, evaluate=_fake_evaluate)
    victim = sorted(out.glob("point-*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[:40])                   # truncated
    other = sorted(out.glob("point-*.parquet"))[1]
    other.write_bytes(b"not parquet at all")
    assert len(done_ids(out)) == len(spec.points()) - 2
    calls = []
    run_sweep(spec, out, backend="serial", progress=False, evaluate=lambda p: calls.append(p) or _fake_evaluate(p))
    assert len(calls) == 2
    assert len(read_results(out, spec)) == len(spec.points())


def test_one_results_folder_holds_one_spec(tmp_path):
    out = tmp_path / "r.parquet"
    run_sweep(parse_spec(_spec()), out, backend="serial", progress=False, evaluate=_fake_evaluate)
    other = _spec(workloads={"preset": "tiny", "datapath": "a4.8", "context": [128]})
    with pytest.raises(ValueError, match="another sweep spec"):
        run_sweep(parse_spec(other), out, backend="serial", progress=False, evaluate=_fake_evaluate)


def test_a_folder_of_other_files_is_never_used_as_results(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds no sweep results"):
        run_sweep(parse_spec(_spec()), tmp_path, backend="serial", progress=False, evaluate=_fake_evaluate)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_huge_grid_is_refused_before_it_is_expanded():
    raw = _spec(accelerator={"base": "a4.8", "grid": {"clock_ghz": list(range(1, 10_001)),
                                                      "offchip.bandwidth_gbps": list(range(1, 10_001))}})
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=f"more than {MAX_POINTS}"):
        parse_spec(raw)
    assert time.perf_counter() - t0 < 2.0


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "gone"


def test_a_worker_ends_when_its_parent_is_killed(tmp_path):
    ready = tmp_path / "ready"
    child_code = ("import os, sys, time; sys.path.insert(0, %r)\n"
                  "from bitsim.experiments.sweep import exit_with_parent\n"
                  "exit_with_parent(int(sys.argv[1]), period_s=0.05)\n"
                  "open(%r, 'w').close(); time.sleep(60)\n") % (str(ROOT), str(ready))
    mid_code = ("import os, subprocess, sys, time\n"
                f"c = subprocess.Popen([sys.executable, '-c', {child_code!r}, str(os.getpid())])\n"
                "print(c.pid, flush=True); time.sleep(60)\n")
    mid = subprocess.Popen([sys.executable, "-c", mid_code], stdout=subprocess.PIPE, text=True)
    child = int(mid.stdout.readline())
    deadline = time.time() + 60
    while not ready.exists() and time.time() < deadline:   # the child is up and watching
        time.sleep(0.05)
    assert ready.exists() and _state(child) not in ("gone", "Z")
    os.kill(mid.pid, signal.SIGKILL)
    mid.wait()
    deadline = time.time() + 10
    while _state(child) not in ("gone", "Z") and time.time() < deadline:
        time.sleep(0.05)
    assert _state(child) in ("gone", "Z")


def _rewrite_part(path: Path, **changes) -> None:
    """Rewrite a part as valid Parquet of the same point with ``changes`` (as a hand edit would)."""
    df = pd.read_parquet(path).assign(**changes)
    df.to_parquet(path, index=False)


def test_a_part_edited_after_it_was_written_is_caught_and_recomputed(tmp_path):
    spec = parse_spec(_spec())
    out = tmp_path / "r.parquet"
    first = run_sweep(spec, out, backend="serial", progress=False, evaluate=_fake_evaluate)
    victim = sorted(out.glob("point-*.parquet"))[0]
    _rewrite_part(victim, tokens_per_s=-1.0)
    assert pd.read_parquet(victim)["point_id"].iloc[0] == victim.stem[len("point-"):]   # its own id, valid Parquet
    with pytest.raises(ValueError, match=f"{victim.name} is not a finished point: its content does not match"):
        read_results(out, spec)
    calls = []
    again = run_sweep(spec, out, backend="serial", progress=False,
                      evaluate=lambda p: calls.append(p["point_id"]) or _fake_evaluate(p))
    assert calls == [victim.stem[len("point-"):]]
    pd.testing.assert_frame_equal(again, first)
    assert (again.tokens_per_s > 0).all()


def test_an_empty_list_in_the_workloads_is_an_error_not_zero_points():
    with pytest.raises(ValueError, match=r"workloads.context is an empty list"):
        parse_spec(_spec(workloads={"preset": "tiny", "datapath": "a4.8", "context": []}))
    with pytest.raises(ValueError, match=r"workloads\[1\].datapath is an empty list"):
        parse_spec(_spec(workloads=[{"preset": "tiny", "datapath": "a4.8"}, {"preset": "tiny", "datapath": []}]))


def test_a_deeply_nested_manifest_is_a_clear_error(tmp_path):
    out = tmp_path / "r.parquet"
    out.mkdir()
    (out / "_spec.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="holds the results of another sweep spec .*no readable digest"):
        run_sweep(parse_spec(_spec()), out, backend="serial", progress=False, evaluate=_fake_evaluate)


def test_a_part_with_deeply_nested_metadata_is_a_clear_error(tmp_path):
    import pyarrow.parquet as pq

    spec = parse_spec(_spec())
    out = tmp_path / "r.parquet"
    run_sweep(spec, out, backend="serial", progress=False, evaluate=_fake_evaluate)
    victim = sorted(out.glob("point-*.parquet"))[0]
    table = pq.read_table(victim)
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, b"pandas": deep}), victim)
    with pytest.raises(ValueError, match=f"{victim.name} is not a finished point"):
        read_results(out, spec)
    assert len(done_ids(out)) == len(spec.points()) - 1


# ---------------------------------------------------------------- feasibility and the Pareto output
def test_infeasible_reason_names_what_overflows_with_its_numbers():
    row = {"fits_offchip": False, "weight_bytes": 14e9, "kv_bytes": 107e9, "capacity_bytes": 32e9,
           "batch": 32, "context": 32768}
    assert infeasible_reason(row) == ("KV cache 107 GB alone exceeds the 32 GB off-chip memory "
                                      "(batch 32, context 32768)")
    row.update(kv_bytes=20e9)        # neither alone, both together: 14 + 20 = 34 > 32
    assert infeasible_reason(row) == ("weights 14 GB + KV cache 20 GB = 34 GB exceed the 32 GB off-chip memory "
                                      "(batch 32, context 32768)")
    assert infeasible_reason({**row, "fits_offchip": True}) == ""


def test_results_carry_feasibility_from_the_chips_capacity(tmp_path):
    spec = parse_spec(_spec(accelerator={"base": "a4.8", "grid": {"offchip.capacity_gb": [1e-6, 32.0]}},
                            workloads={"preset": "tiny", "datapath": "a4.8", "context": [64]}))
    df = run_sweep(spec, tmp_path / "r.parquet", backend="serial", progress=False).set_index("hw.offchip.capacity_gb")
    small, big = df.loc[1e-6], df.loc[32.0]
    # independent restatement: feasible iff weights + KV cache <= capacity
    assert small.weight_bytes + small.kv_bytes > 1e3 and not small.feasible
    assert big.feasible and big.infeasible_reason == ""
    assert f"{small.kv_bytes / 1e9:.3g} GB" in small.infeasible_reason and "1e-06 GB" in small.infeasible_reason


def test_pareto_output_uses_chip_area_and_keeps_infeasible_points_off_the_front(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(_spec(
        accelerator={"base": "a4.8", "grid": {"offchip.capacity_gb": [1e-6, 32.0], "arrays.ternary.rows": [64, 128]}},
        workloads={"preset": "tiny", "datapath": "a4.8", "context": [64]})))
    fig = tmp_path / "front.pdf"
    assert main(["sweep", str(spec), "-o", str(tmp_path / "r.parquet"), "--pareto", str(fig), "-q"]) == 0
    out = capsys.readouterr().out
    assert "2 of 4 points do not fit the chip's memory" in out
    assert fig.read_bytes().startswith(b"%PDF")
    table = pd.read_csv(tmp_path / "front.csv")
    assert table.feasible.sum() == 2 and (table.infeasible_reason.fillna("") != "").sum() == 2
    assert not table[~table.feasible].pareto.any() and table.pareto.any()
    # the front is the feasible points no other feasible point beats on tokens/s, J/token and whole-chip area
    fit = table[table.feasible]
    assert fit.area_mm2.nunique() == 2 and "compute_area_mm2_45nm" not in table.columns
    for _, r in fit.iterrows():
        beaten = ((fit.tokens_per_s >= r.tokens_per_s) & (fit.energy_j_per_token <= r.energy_j_per_token)
                  & (fit.area_mm2 <= r.area_mm2) & ((fit.tokens_per_s > r.tokens_per_s)
                  | (fit.energy_j_per_token < r.energy_j_per_token) | (fit.area_mm2 < r.area_mm2))).any()
        assert r.pareto == (not beaten)


def test_results_folder_is_found_again_and_a_changed_knob_gets_its_own(tmp_path):
    spec = parse_spec(_spec(workloads={"preset": "tiny", "datapath": "a4.8", "context": [64], "batch": [1]}))
    again = parse_spec(_spec(workloads={"preset": "tiny", "datapath": "a4.8", "context": [64], "batch": [1]}))
    other = parse_spec(_spec(workloads={"preset": "tiny", "datapath": "a4.8", "context": [64], "batch": [1, 2]}))
    assert results_folder(spec, tmp_path) == results_folder(again, tmp_path) != results_folder(other, tmp_path)
    assert results_folder(spec, tmp_path).parent == tmp_path and results_folder(spec, tmp_path).name.startswith("t-")
    run_sweep(spec, results_folder(spec, tmp_path), backend="serial", progress=False)
    df = run_sweep(other, results_folder(other, tmp_path), backend="serial", progress=False)   # not refused
    assert sorted(df.batch.unique()) == [1, 2]


def test_weights_resident_in_sram_leave_only_kv_and_activations_off_chip(tmp_path):
    raw = _spec(accelerator={"base": "a4.8"}, workloads={"preset": "tiny", "datapath": "a4.8", "context": [64]})
    store = resident_weight_mib(parse_spec(raw))
    w = weight_bytes(get_config("tiny", "a4.8"), "a4.8")    # the model's own count: projections, embedding, head
    assert store == -(-(w.projections + w.embedding + w.lm_head) // 2**20)
    raw["accelerator"]["points"] = [{"weight_residency": "dram", "sram.weight_store_mib": 0.0},
                                    {"weight_residency": "sram", "sram.weight_store_mib": store}]
    df = run_sweep(parse_spec(raw), tmp_path / "r.parquet", backend="serial", progress=False)
    dram, sram = (df[df["hw.weight_residency"] == k].iloc[0] for k in ("dram", "sram"))
    # a decode step of tiny keeps its activations on chip: resident weights leave the KV cache alone off chip
    assert sram.bytes_offchip == pytest.approx(sram.kv_bytes) and dram.bytes_offchip > 5 * sram.bytes_offchip
    assert sram.area_mm2 > dram.area_mm2 and sram.feasible


def test_a_kv_bits_workload_shrinks_the_kv_cache_and_keeps_earlier_point_ids(tmp_path):
    w = {"preset": "tiny", "datapath": "b1.58", "phase": "decode", "context": 64, "batch": 1,
         "prefill_tokens": None, "profile": "measured", "seed": 0}
    assert workload_digest(w) == workload_digest({**w, "kv_bits": None})     # results written before the field
    assert workload_digest(w) != workload_digest({**w, "kv_bits": 4})
    spec = parse_spec(_spec(accelerator={"base": "b1.58", "grid": {"kv_formats": [["kv-fp16", "kv-int4"]]}},
                            workloads=[{"preset": "tiny", "datapath": "b1.58", "context": [64]},
                                       {"preset": "tiny", "datapath": "b1.58", "context": [64], "kv_bits": 4}]))
    df = run_sweep(spec, tmp_path / "r.parquet", backend="serial", progress=False).set_index("kv_bits")
    own, four = df.loc[-1], df.loc[4]
    assert 2.5 < own.kv_bytes / four.kv_bytes < 4.0     # FP16 -> 4-bit codes, plus scales and 4-bit BOS heads
    with pytest.raises(ValueError, match="kv_bits must be one of"):
        parse_spec(_spec(workloads={"preset": "tiny", "datapath": "b1.58", "kv_bits": 8}))
