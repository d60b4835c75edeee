"""The serve spec, the trace-built cost model and ``bitsim serve`` end to end (on the tiny model)."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import bitsim.experiments.serving as srv
from bitsim.cli import main
from bitsim.experiments.chipmetrics import chip_area
from bitsim.experiments.hardware import make_accelerator
from bitsim.experiments.runs import Chip
from bitsim.experiments.serving import (
    GridConfig,
    TraceEvaluator,
    build_cost_model,
    chips_needed,
    footprint_per_chip,
    load_spec,
    shard_config,
    smallest_tp,
    spec_digest,
    spec_from_dict,
)
from bitsim.experiments.sizing import size_to_area
from contract import read_table
from sim.serving import ChipFacts, LinearCostModel, ParallelConfig, SchedulerConfig, serve

SPEC_DIR = Path(__file__).resolve().parents[1] / "reports" / "specs" / "serving"
TINY_GRID = dict(tokens=[1, 4, 16], batches=[1, 4], contexts=[32, 128], chunks=[8, 32])


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    """One cost cache for the tiny model shared by the tests below (each direct simulation is made once)."""
    return str(tmp_path_factory.mktemp("serving-cache") / "cost_cache.csv")


def tiny_spec(**over):
    d = dict(name="tiny-serve", model="tiny", datapath="b1.58", accelerator="b1.58",
             scheduler=dict(policy="chunked", token_budget=32, max_batch=8),
             workload=dict(requests=30, rate=50.0, lengths="lognormal", prompt_tokens=20, prompt_p99=60,
                           output_tokens=6, output_p99=20, max_prompt=100, max_output=40),
             targets=dict(ttft_s=0.5, tpot_s=0.05), grid=TINY_GRID)
    d.update(over)
    return d


@pytest.mark.parametrize("patch, match", [
    (dict(colour="red"), "unknown field.*colour"),
    (dict(scheduler=dict(policy="fifo")), "scheduler.policy.*prefill-first"),
    (dict(workload=dict(rate=0)), "workload.rate"),
    (dict(targets=dict(tpot_s=0)), "targets.tpot_s"),
    (dict(datapath="int2"), "datapath"),
    (dict(accelerator="tpu-v9"), "unknown accelerator"),
    (dict(interconnect=dict(name="x", topology="torus")), "topology"),
    (dict(grid=dict(tokens=[4, 1])), "grid.tokens"),
    (dict(parallel=dict(tp=3)), "parallel.tp = 3 does not divide"),
])
def test_bad_specs_name_the_field(patch, match, tmp_path):
    d = tiny_spec(**patch)
    if "parallel" in patch:             # a shard that cannot be cut is refused when the cost model is built
        spec = spec_from_dict(d)
        with pytest.raises(ValueError, match=match):
            shard_config(spec.model, spec.datapath, spec.parallel.tp)
        return
    with pytest.raises(ValueError, match=match):
        spec_from_dict(d)


def test_tensor_parallel_shard_splits_heads_ffn_and_vocab():
    s = shard_config("llama3-70b", "b1.58", 8)
    assert (s.n_heads, s.kv_heads, s.ffn_dim, s.dim, s.hd) == (8, 1, 3584, 8192, 128)
    assert s.vocab_size == 128256 // 8


def test_grid_cost_model_reproduces_direct_simulation_on_its_grid(tmp_path):
    cache = tmp_path / "cache.csv"
    cm = build_cost_model("tiny", "b1.58", "b1.58", 1, GridConfig(**TINY_GRID), cache_csv=cache)
    for b in (1, 4):
        s, _ = cm.direct("decode", b, 1, 128)
        assert cm.cost(b, b * 128, ())[0] == pytest.approx(s, rel=1e-9)
    s, _ = cm.direct("prefill", 1, 32, 32 + 128)
    assert cm.cost(0, 0, [(32, 160)])[0] == pytest.approx(s, rel=1e-9)
    # the cache holds every direct simulation; a second build reads them back without simulating
    ev = TraceEvaluator(shard_config("tiny", "b1.58", 1), "b1.58", cm.evaluate.accel, 1, cache_csv=cache)
    assert len(ev.cache) == len(cm.memo)


def test_bitsim_serve_writes_tables_timeline_and_figures(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(search=dict(enabled=True, lo=1.0, hi=400.0, rel_tol=0.3))))
    out = tmp_path / "out"
    assert main(["serve", str(spec), "-o", str(out), "--quiet"]) == 0
    s = read_table(out / "summary.csv", "serving_summary")
    r = read_table(out / "requests.csv", "serving_requests")
    it = read_table(out / "iterations.csv", "serving_iterations")
    assert s["finished"].iloc[0] == len(r) == 30
    assert s["ttft_p50_s"].iloc[0] <= s["ttft_p90_s"].iloc[0] <= s["ttft_p99_s"].iloc[0]
    assert it["prefill_tokens"].sum() >= r["prompt_tokens"].sum()
    assert (out / "search.csv").exists() and (out / "throughput_latency.png").exists()
    doc = json.loads((out / "timeline.json").read_text())
    assert sum(e["ph"] == "X" for e in doc["traceEvents"]) == len(it)
    # an existing result needs --force; a folder we did not write is never replaced
    assert main(["serve", str(spec), "-o", str(out), "--quiet"]) == 2
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(["serve", str(spec), "-o", str(other), "--quiet", "--force"]) == 2
    assert (other / "notes.txt").read_text() == "mine"


def test_request_csv_in_a_spec_is_read_relative_to_it(tmp_path):
    (tmp_path / "reqs.csv").write_text("arrival_s,prompt_tokens,output_tokens\n0.0,10,3\n0.01,20,2\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(workload=dict(csv="reqs.csv"))))
    s = load_spec(spec)
    assert pd.read_csv(s.workload.csv).shape == (2, 3)


def test_chips_needed_rounds_up_whole_deployments():
    par = ParallelConfig(tp=8)
    assert chips_needed(20.0, 3.0, par) == 7 * 8          # ceil(6.67) deployments of 8 chips
    assert chips_needed(6.0, 3.0, par) == 2 * 8
    assert chips_needed(0.0, 3.0, par) != chips_needed(0.0, 3.0, par)      # no target: NaN
    assert chips_needed(5.0, float("nan"), par) != chips_needed(5.0, float("nan"), par)


def test_summary_names_the_run_and_carries_the_highest_rate_and_its_metrics(tmp_path, tiny_cache):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(search=dict(enabled=True, lo=1.0, hi=400.0, rel_tol=0.3,
                                                         serve_at_best=True))))
    out = tmp_path / "out"
    assert main(["serve", str(spec), "-o", str(out), "--quiet", "--small", "--cache", tiny_cache]) == 0
    s = read_table(out / "summary.csv", "serving_summary").iloc[0]
    assert (s["name"], s["model"], s["datapath"], s["accelerator"]) == ("tiny-serve", "tiny", "b1.58", "b1.58")
    assert s["profile"] == "measured"          # the spec's default statistic profile, carried into the summary
    tried = pd.read_csv(out / "search.csv")
    best = tried[tried["attainment"] >= 0.9]["rate"].max()
    assert s["max_rate_rps"] == pytest.approx(best)
    at = tried[tried["rate"] == best].iloc[0]
    for m in ("goodput_rps", "tokens_per_j", "output_tokens_per_s_per_mm2", "ttft_p90_s", "tpot_p90_s"):
        assert s[f"{m}_at_max"] == pytest.approx(at[m])
    # serve_at_best: the run's own tables are at the rate found (same seed and count: the same run)
    assert s["offered_rate"] == pytest.approx(at["offered_rate"])
    assert not (out / "requests.csv").exists() and not (out / "timeline.json").exists()      # --small


def test_several_specs_go_to_their_folders_and_a_finished_run_is_skipped(tmp_path, capsys, tiny_cache):
    specs = []
    for name, rate in (("run-a", 20.0), ("run-b", 40.0)):
        p = tmp_path / f"{name}.yaml"
        p.write_text(yaml.safe_dump(tiny_spec(name=name, workload=dict(requests=10, rate=rate))))
        specs.append(str(p))
    out = tmp_path / "runs"
    assert main(["serve", *specs, "-o", str(out), "--quiet", "--small", "--cache", tiny_cache]) == 0
    first = {n: (out / n / "summary.csv").stat().st_mtime_ns for n in ("run-a", "run-b")}
    capsys.readouterr()
    assert main(["serve", *specs, "-o", str(out), "--quiet", "--small", "--cache", tiny_cache]) == 0
    assert capsys.readouterr().out.count("up to date") == 2
    assert {n: (out / n / "summary.csv").stat().st_mtime_ns for n in first} == first
    # a changed spec is run again, the other still skipped
    (tmp_path / "run-b.yaml").write_text(yaml.safe_dump(tiny_spec(name="run-b", workload=dict(requests=12))))
    assert main(["serve", *specs, "-o", str(out), "--quiet", "--small", "--cache", tiny_cache]) == 0
    assert read_table(out / "run-b" / "summary.csv")["requests"].iloc[0] == 12
    assert (out / "run-a" / "summary.csv").stat().st_mtime_ns == first["run-a"]


def test_kv_bits_and_accelerator_overrides_reach_the_cost_model(tiny_cache):
    fp16 = spec_from_dict(tiny_spec())
    kv4 = spec_from_dict(tiny_spec(kv_bits=4, accelerator_overrides={"kv_formats": ["kv-fp16", "kv-int4"]}))
    a = build_cost_model(fp16.model, fp16.datapath, fp16.accelerator, 1, fp16.grid, cache_csv=tiny_cache)
    b = build_cost_model(kv4.model, kv4.datapath, kv4.accelerator, 1, kv4.grid, cache_csv=tiny_cache, kv_bits=4,
                         accelerator_overrides=kv4.accelerator_overrides)
    # 4-bit codes and their scales against FP16: a little over a quarter of the bytes per token
    assert 0.25 < b.facts.kv_bytes_per_token / a.facts.kv_bytes_per_token < 0.4
    with pytest.raises(ValueError, match="kv_bits"):
        spec_from_dict(tiny_spec(kv_bits=1))


def test_the_committed_specs_use_the_smallest_tp_that_fits_and_share_workload_scheduler_targets():
    specs = [load_spec(p) for p in sorted(SPEC_DIR.glob("*.yaml"))]
    assert len(specs) >= 10
    for s in specs:
        if s.model != "7b":                     # 7B runs on one chip by construction
            assert s.parallel.tp == smallest_tp(s), s.name
            f = footprint_per_chip(s, s.parallel.tp)
            assert f["weight_bytes"] + f["kv_bytes"] <= f["usable_bytes"]
            if s.parallel.tp > 1:
                g = footprint_per_chip(s, s.parallel.tp // 2)
                assert g["weight_bytes"] + g["kv_bytes"] > g["usable_bytes"]
    for s in specs[1:]:
        assert (s.workload, s.scheduler, s.targets, s.search) == (specs[0].workload, specs[0].scheduler,
                                                                  specs[0].targets, specs[0].search)


def test_footprint_counts_the_max_batch_of_mean_length_requests():
    s = spec_from_dict(tiny_spec())
    f = footprint_per_chip(s, 1)
    shard = shard_config("tiny", "b1.58", 1)
    kv_token = 2 * shard.n_layers * shard.kv_heads * shard.hd * 2           # FP16 K and V of every layer
    assert f["kv_bytes"] == pytest.approx(s.scheduler.max_batch * f["mean_request_tokens"] * kv_token, rel=0.01)


def test_a_carried_cost_cache_keeps_only_the_keys_the_run_used(tmp_path, tiny_cache):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(workload=dict(requests=10))))
    s = load_spec(spec)
    used = build_cost_model(s.model, s.datapath, s.accelerator, 1, s.grid, cache_csv=tiny_cache).evaluate.key
    run = tmp_path / "runs" / s.name                  # an earlier run's folder: its cache plus a stale key
    run.mkdir(parents=True)
    old = pd.read_csv(tiny_cache, dtype={"key": str})
    stale = old[old["key"] == used].head(1).assign(key="0123456789abcdef")
    pd.concat([old, stale]).to_csv(run / "cost_cache.csv", index=False)
    facts = json.loads(Path(tiny_cache).with_suffix(".facts.json").read_text())
    (run / "cost_cache.facts.json").write_text(json.dumps(dict(facts, **{"0123456789abcdef": facts[used]})))
    assert main(["serve", str(spec), "-o", str(tmp_path / "runs"), "--each", "--quiet", "--small"]) == 0
    kept = pd.read_csv(run / "cost_cache.csv", dtype={"key": str})
    assert set(kept["key"]) == {used}
    # every row of the used key carried forward (the run may add points the shared cache did not hold yet)
    shape = ["phase", "batch", "new_tokens", "context"]
    carried = old[old["key"] == used][shape].merge(kept[shape], how="left", indicator=True)
    assert (carried["_merge"] == "both").all()
    assert set(json.loads((run / "cost_cache.facts.json").read_text())) == {used}


def test_host_overhead_is_solved_back_from_the_floor_it_produced(monkeypatch):
    """The floor solver inverts the simulation: latencies made with a known host time give that host time back."""
    facts = ChipFacts(name="toy", tp=8, weight_bytes=1e9, kv_bytes_per_token=1e4, capacity_bytes=80e9, hidden=1024,
                      n_layers=4)
    cost = LinearCostModel(facts=facts, fixed_s=0.002, per_token_s=2e-6)
    monkeypatch.setattr(srv, "build_cost_model", lambda *a, **k: cost)
    true = (0.0015, 8e-5)
    sch = SchedulerConfig(policy="prefill-first", max_batch=256, token_budget=2048, host_overhead_s=true[0],
                          host_overhead_s_per_seq=true[1])
    made = {name: serve(srv.published_requests(f"sharegpt-8b-tp8-{n}"), cost, sch, ParallelConfig(tp=8),
                        "nvlink4-h100").summary["itl_p50_s"].iloc[0] * 1e3
            for name, n in (("h100.8b.tp8_median_itl_10prompts", 10), ("h100.8b.tp8_median_itl_320prompts", 320))}
    monkeypatch.setattr(srv, "anchor", lambda name: made[name])
    assert srv.host_overhead() == pytest.approx(true, rel=1e-3)


def test_published_request_files_hold_the_published_token_totals():
    # totals printed by each published run (total_input_tokens, total_output_tokens; an empty answer counts 1 here)
    for name, n, prompt, output, empty in (("sharegpt-70b-tp2", 320, 65814, 61007, 79),
                                           ("sharegpt-8b-tp8-320", 320, 65578, 44684, 102),
                                           ("sharegpt-8b-tp8-10", 10, 1369, 1143, 3)):
        r = srv.published_requests(name)
        assert len(r) == n and (r["arrival_s"] == 0).all()
        assert r["prompt_tokens"].sum() == prompt
        assert r["output_tokens"].sum() == output + empty


def _chip_file(path, **change):
    """A chip YAML: the b1.58 preset written whole, with ``change`` on top."""
    raw = dict(dataclasses.asdict(make_accelerator("b1.58", {})), name="my-chip", **change)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw))


def test_a_chip_yaml_is_read_relative_to_the_spec_and_named_normalised_in_the_digest(tmp_path):
    _chip_file(tmp_path / "chips" / "mine.yaml", vector=dict(lanes=256))
    spec = tmp_path / "serving" / "spec.yaml"
    spec.parent.mkdir()
    spec.write_text(yaml.safe_dump(tiny_spec(accelerator="../chips/mine.yaml")))
    s = load_spec(spec)
    assert s.accelerator == str(tmp_path / "chips" / "mine.yaml")        # no "serving/.." left in the name
    assert make_accelerator(s.accelerator, {}).vector.lanes == 256
    before = spec_digest(s)
    _chip_file(tmp_path / "chips" / "mine.yaml", vector=dict(lanes=128))
    assert spec_digest(load_spec(spec)) != before                       # the chip's contents are in the digest


def test_a_chip_preset_named_by_name_has_its_yaml_in_the_digest(tmp_path, monkeypatch):
    import bitsim.experiments.serving as serving_experiment
    (tmp_path / "b1.58.yaml").write_text((serving_experiment.PRESET_DIR / "b1.58.yaml").read_text())
    monkeypatch.setattr(serving_experiment, "PRESET_DIR", tmp_path)
    spec = spec_from_dict(tiny_spec())
    before = spec_digest(spec)
    assert spec_digest(spec) == before
    (tmp_path / "b1.58.yaml").write_text((tmp_path / "b1.58.yaml").read_text() + "\n# an edited preset\n")
    assert spec_digest(spec) != before          # a run of the old preset is no longer up to date


@pytest.mark.parametrize("chip, over, match", [
    (None, {}, r"spec.yaml: accelerator: no such YAML file '../chips/mine.yaml'"),
    (dict(vector=dict(lanes=-4)), {}, r"spec.yaml: accelerator: .*vector.lanes"),
    (dict(), {"arrays.0.colour": 3}, r"spec.yaml: accelerator_overrides: .*colour"),
])
def test_a_missing_or_bad_chip_yaml_is_an_error_naming_the_field(tmp_path, chip, over, match):
    if chip is not None:
        _chip_file(tmp_path / "chips" / "mine.yaml", **chip)
    spec = tmp_path / "serving" / "spec.yaml"
    spec.parent.mkdir()
    spec.write_text(yaml.safe_dump(tiny_spec(accelerator="../chips/mine.yaml", accelerator_overrides=over)))
    with pytest.raises(ValueError, match=match):
        load_spec(spec)


def test_the_iso_area_chips_are_the_studys_sizing_of_each_iso_peak_chip_to_the_fp16_chips_area():
    specs = {p.name: load_spec(p) for p in sorted(SPEC_DIR.glob("*-iso-area.yaml"))}
    assert len(specs) >= 4
    ref = {s.name: s for s in map(load_spec, SPEC_DIR.glob("7b-*.yaml"))}
    target = chip_area(make_accelerator("fp16", ref["7b-fp16"].accelerator_overrides))[0]
    for name, s in specs.items():
        chip = make_accelerator(s.accelerator, {})
        peak = ref[s.name.removesuffix("-iso-area")]               # its iso-peak sibling
        sized = size_to_area(Chip.of(peak.accelerator, peak.accelerator_overrides), target).chip.config()
        preset = make_accelerator(peak.accelerator, peak.accelerator_overrides)
        assert chip.comparison == "equal-area", name
        assert abs(chip_area(chip)[0] / target - 1) <= 0.01, name
        assert (chip.arrays, chip.vector, chip.sram) == (sized.arrays, sized.vector, sized.sram), name  # the study's
        # every unit scales: the vector lanes and the SRAM bandwidth grow with the arrays, the SRAM sizes do not
        pes = sum(a.pes for a in chip.arrays) / sum(a.pes for a in preset.arrays)
        way = np.sign(round(pes - 1, 2))                  # grows, shrinks, or (the reference chip) stays
        assert np.sign(chip.vector.lanes - preset.vector.lanes) == way, name
        assert np.sign(chip.sram.bandwidth_bytes_per_cycle - preset.sram.bandwidth_bytes_per_cycle) == way, name
        assert chip.vector.passes == preset.vector.passes, name
        assert (chip.sram.weight_buffer_kib, chip.sram.activation_buffer_kib) == (
            preset.sram.weight_buffer_kib, preset.sram.activation_buffer_kib), name
        assert (chip.offchip, chip.kv_formats, chip.sparsity) == (preset.offchip, preset.kv_formats,
                                                                   preset.sparsity), name
        assert (s.workload, s.scheduler, s.targets, s.grid, s.kv_bits) == (
            peak.workload, peak.scheduler, peak.targets, peak.grid, peak.kv_bits), name
