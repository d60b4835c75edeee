"""The serve spec, the trace-built cost model and ``bitsim serve`` end to end (on the tiny model)."""
import json

import pandas as pd
import pytest
import yaml

from bitsim.cli import main
from bitsim.experiments.serving import (
    GridConfig,
    TraceEvaluator,
    build_cost_model,
    chips_needed,
    load_spec,
    shard_config,
    spec_from_dict,
)
from contract import read_table
from sim.serving import ParallelConfig

TINY_GRID = dict(tokens=[1, 4, 16], batches=[1, 4], contexts=[32, 128], chunks=[8, 32])


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
