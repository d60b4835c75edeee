"""The report's system view reads committed serving summaries: per model, a4.8 against the strongest b1.58, the
strongest conventional baseline and the measured-GPU preset, with the newer columns used when present."""
import math
from types import SimpleNamespace

import pandas as pd
import pytest

from bitsim.report.collect import load_serving
from bitsim.report.serving import (
    NO_BASIS,
    binding_target,
    chip_name,
    comparison_table,
    model_comparison,
    model_name,
    next_rate,
    profile_words,
    rival_words,
    run_basis,
    serving_headline,
    serving_section,
    serving_view,
)
from contract import SCHEMAS, write_table

BASE = {c.name: {"int": 1, "float": 1.0, "str": "x", "bool": False}[c.kind] for c in SCHEMAS["serving_summary"]}
NO_SEARCH = {c: float("nan") for c in BASE if c == "max_rate_rps" or c.endswith("_at_max")}
BASE.update(NO_SEARCH, name="", model="", datapath="", accelerator="", target_rate=0.0, chips_needed=float("nan"))


def run(model, datapath, accelerator, chips, rate, **extra):
    return dict(BASE, model=model, datapath=datapath, accelerator=accelerator, chip=accelerator, chips=chips,
                max_rate_rps=rate, goodput_rps=rate / 2, tokens_per_j=10.0 * rate, ttft_target_s=2.0,
                tpot_target_s=0.1, **extra)


@pytest.fixture()
def runs(tmp_path):
    rows = [run("7b", "a4.8", "a4.8", 1, 12.0, tokens_per_j_at_max=99.0),
            run("7b", "b1.58", "b1.58", 1, 8.0), run("7b", "b1.58", "b1.58", 1, 9.0),
            run("7b", "w4a16", "w4a16", 1, 10.0), run("7b", "fp16", "fp16", 1, 3.0),
            run("7b", "fp16", "h200-like", 1, 6.0),
            run("70b", "a4.8", "a4.8", 8, 4.0, target_rate=10.0, chips_needed=24.0),
            run("70b", "w4a16", "w4a16", 16, 5.0, target_rate=10.0, chips_needed=32.0)]
    for i, r in enumerate(rows):
        write_table(pd.DataFrame([r]), tmp_path / "serving" / f"run{i}" / "summary.csv", "serving_summary")
    return load_serving(tmp_path / "serving")


def test_each_model_compares_a48_with_the_strongest_run_of_each_kind(runs):
    best = model_comparison(serving_view(runs)).set_index(["model", "role"])
    assert best.loc[("7b", "strongest b1.58")].rate_rps == 9.0                      # 9 req/s beats 8
    assert best.loc[("7b", "strongest conventional")].datapath == "w4a16"           # 10 beats fp16's 3
    assert best.loc[("7b", "measured-GPU preset")].accelerator == "h200-like"
    assert best.loc[("7b", "a4.8")].tokens_per_j == 99.0        # the metric stored at the highest rate
    assert best.loc[("7b", "strongest b1.58")].tokens_per_j == 90.0   # none stored: the offered rate's
    assert best.loc[("70b", "a4.8")].chips == 8
    table = comparison_table(model_comparison(serving_view(runs))).set_index(["model", "role"])
    assert table.loc[("70b", "a4.8"), "chips for the target"] == 24.0
    assert math.isnan(table.loc[("7b", "a4.8"), "chips for the target"])    # 7b runs set no target rate


def test_the_section_states_rates_chips_and_ratios_and_a_loss_reads_below(runs):
    text = "\n".join(b for b in serving_section(SimpleNamespace(serving=runs)).blocks if isinstance(b, str))
    assert "**7b, iso-peak: a4.8 serves 12 req/s on 1 x a4.8**" in text
    assert f"{12 / 9:.2f}x the rate of the strongest b1.58 (b1.58 on 1 x b1.58, 9 req/s)" in text
    assert f"{12 / 10:.2f}x the rate of the strongest conventional (w4a16" in text
    # 8 chips at 4 req/s against 16 at 5: the rate per chip decides
    assert f"{(4 / 8) / (5 / 16):.2f}x the rate per chip of the strongest conventional (w4a16 on 16 x w4a16" in text
    assert "TTFT <= 2 s and TPOT <= 0.1 s" in text
    assert "dynamic energy only" in text


@pytest.mark.parametrize("drop", [False, True])
def test_a_run_without_a_rate_search_falls_back_to_goodput_and_the_chip_name(tmp_path, drop):
    old = dict(BASE, chip="a4.8", chips=4, goodput_rps=12.5, attainment=0.93)
    path = tmp_path / "serving" / "old" / "summary.csv"
    write_table(pd.DataFrame([old]), path, "serving_summary")
    if drop:   # a summary written before the run's names and the rate search were recorded
        lines = path.read_text().splitlines(keepends=True)
        head = [x for x in lines if x.startswith("#")]
        body = pd.read_csv(path, comment="#").drop(columns=["name", "model", "datapath", "accelerator",
                                                            *NO_SEARCH])
        path.write_text("".join(head) + body.to_csv(index=False))
    (tmp_path / "serving" / "other").mkdir()
    (tmp_path / "serving" / "other" / "summary.csv").write_text("a,b\n1,2\n")   # not a serving summary
    srv = load_serving(tmp_path / "serving")
    assert srv.run.tolist() == ["old"]
    v = serving_view(srv).iloc[0]
    assert (v.datapath, v.rate_rps, v.rate_basis) == ("a4.8", 12.5, "goodput at the offered rate")
    text = "\n".join(b for b in serving_section(SimpleNamespace(serving=srv)).blocks if isinstance(b, str))
    assert "**model not recorded, iso-peak: a4.8 serves 12.5 req/s on 4 x a4.8** (goodput at the offered rate" in text
    assert "no baseline run committed" in text


def test_no_serving_run_no_section():
    assert serving_section(SimpleNamespace(serving=pd.DataFrame())) is None


def test_a_model_yaml_is_named_by_its_file_not_its_path():
    assert model_name("models/llama-70b.yaml") == "llama-70b" and model_name("7b") == "7b"


def test_the_executive_summary_leads_with_the_system_view_and_its_targets(runs):
    head = serving_headline(SimpleNamespace(serving=runs))
    assert head.startswith("**The system view** (serving simulation; targets TTFT <= 2 s and TPOT <= 0.1 s")
    assert "**7b, iso-peak: a4.8 serves 12 req/s on 1 x a4.8**" in head
    assert "**70b, iso-peak: a4.8 serves 4 req/s on 8 x a4.8**" in head
    assert serving_headline(SimpleNamespace(serving=pd.DataFrame())) is None


def test_a_slower_a48_reads_below_and_equal_chips_compare_whole_rates():
    rival = SimpleNamespace(datapath="w4a16", chips=2, accelerator="w4a16", rate_rps=5.0)
    assert rival_words(4.0, 2, "strongest conventional", rival).startswith("1.25x below the rate of the strongest")
    assert rival_words(4.0, 1, "strongest conventional", rival).startswith("1.60x the rate per chip of")


def _verdict_runs(tmp_path, a48_p90, b158_p90):
    """Two 7b runs (a4.8 slower than b1.58; targets TTFT 2 s, TPOT 100 ms) with their cost caches and specs; p90s as
    (TTFT s, TPOT s)."""
    costs = {"a4.8": (0.080, 0.007), "b1.58": (0.060, 0.009)}     # 512-token chunk; 16-sequence decode step
    for d, rate, (ttft, tpot) in (("a4.8", 4.0, a48_p90), ("b1.58", 5.0, b158_p90)):
        folder = tmp_path / "serving" / f"7b-{d}"
        r = run("7b", d, d, 1, rate, ttft_p90_s=ttft, ttft_p90_s_at_max=ttft, tpot_p90_s=tpot, tpot_p90_s_at_max=tpot,
                mean_batch=14.0, ttft_p99_s=6.0, tpot_p99_s=0.2)
        write_table(pd.DataFrame([r]), folder / "summary.csv", "serving_summary")
        pre, dec = costs[d]
        pd.DataFrame([("k", "prefill", 1, 512, 512, pre, 1.0), ("k", "prefill", 1, 128, 128, pre / 4, 1.0),
                      ("k", "decode", 1, 1, 4096, dec / 4, 1.0), ("k", "decode", 16, 1, 4096, dec, 1.0),
                      ("k", "decode", 16, 1, 512, dec / 2, 1.0)],
                     columns=["key", "phase", "batch", "new_tokens", "context", "seconds", "joules"]).to_csv(
            folder / "cost_cache.csv", index=False)
        spec = tmp_path / "specs" / "serving" / f"7b-{d}.yaml"
        spec.parent.mkdir(parents=True, exist_ok=True)
        spec.write_text(f"name: 7b-{d}\nmodel: 7b\ndatapath: {d}\naccelerator: {d}\nprofile: measured\n"
                        "scheduler: {policy: chunked, token_budget: 512}\n")
    data = SimpleNamespace(serving=load_serving(tmp_path / "serving"),
                           config=SimpleNamespace(measured_path=tmp_path / "data"))
    return "\n".join(b for b in serving_section(data).blocks if isinstance(b, str))


def test_the_verdict_names_each_runs_binding_target_and_the_iteration_costs(tmp_path):
    text = _verdict_runs(tmp_path, a48_p90=(1.2, 0.095), b158_p90=(1.92, 0.050))
    assert "a4.8 on a4.8: TPOT binds (TPOT p90 95 ms of 100 ms (95 %), TTFT p90 1.2 s of 2 s (60 %))" in text
    assert "b1.58 on b1.58: TTFT binds (TTFT p90 1.92 s of 2 s (96 %)" in text
    # the chunk and the decode step at the grid batch nearest a4.8's mean batch (14 -> 16), largest context
    assert ("prefill (512-token chunk at context 512) 80 ms, decode (16 sequences at context 4,096) 7 ms, "
            "together 87 ms = 87 % of the TPOT target") in text
    assert ("Against b1.58, a4.8 decodes faster (7 against 9 ms) but prefills slower (80 against 60 ms a chunk): "
            "with chunked prefill (a 512-token budget)") in text and "TPOT is missed first" in text
    assert "Statistic profile of the runs: x" in text      # the summaries' own column, not the specs'


def test_a_run_with_both_p90s_well_inside_the_targets_is_set_by_the_tail(tmp_path):
    text = _verdict_runs(tmp_path, a48_p90=(1.2, 0.060), b158_p90=(0.8, 0.050))
    assert "a4.8 on a4.8: neither p90 is near its target" in text and "(p99 TTFT 6 s, TPOT 200 ms)" in text
    assert "TPOT binds" not in text and "TTFT binds" not in text


def test_the_profile_is_read_from_the_summaries_and_from_the_specs_only_when_a_summary_lacks_it(tmp_path):
    view = pd.DataFrame({"run": ["7b-a4.8", "7b-b1.58"], "profile": ["trained", "measured"]})
    assert profile_words(view, tmp_path, "trained") == ("Statistic profile of the runs: random-weight statistics, "
                                                        "trained-model profile; the study's tables use trained-model "
                                                        "profile")
    old = pd.DataFrame({"run": ["7b-a4.8"], "profile": [None]})
    assert profile_words(old, tmp_path, None).startswith("Statistic profile: not recorded with the runs")


def _two_bases(tmp_path):
    """7b runs on iso-peak presets and on iso-area chip YAMLs (named by a path that does not load here, as a summary
    written in another folder holds it); the iso-area FP16 run is faster than the iso-peak one, so a comparison that
    mixed bases would pick it."""
    chip = "reports/specs/chips/7b-{}-iso-area.yaml"
    rows = [run("7b", "a4.8", "a4.8", 1, 3.0), run("7b", "b1.58", "b1.58", 1, 4.0), run("7b", "fp16", "fp16", 1, 5.0),
            run("7b", "a4.8", chip.format("a4.8"), 1, 14.0, area_mm2=56.8),
            run("7b", "b1.58", chip.format("b1.58"), 1, 15.0, area_mm2=56.7),
            run("7b", "fp16", chip.format("fp16"), 1, 9.0, area_mm2=56.8),
            run("7b", "w4a16", chip.format("w4a16"), 1, 6.0, area_mm2=56.8)]
    for r in rows:
        name = f"7b-{r['datapath']}" + ("-iso-area" if r["accelerator"].endswith(".yaml") else "")
        write_table(pd.DataFrame([r]), tmp_path / "serving" / name / "summary.csv", "serving_summary")
    return load_serving(tmp_path / "serving")


def test_each_basis_is_compared_only_with_itself_and_every_rate_names_its_basis(tmp_path):
    srv = _two_bases(tmp_path)
    best = model_comparison(serving_view(srv)).set_index(["model", "basis", "role"])
    assert best.loc[("7b", "iso-peak", "strongest conventional")].rate_rps == 5.0       # not the iso-area 9
    assert best.loc[("7b", "iso-area", "strongest conventional")].rate_rps == 9.0       # fp16 beats w4a16's 6
    assert best.loc[("7b", "iso-area", "strongest b1.58")].accelerator == "7b-b1.58-iso-area"   # a name, not a path
    text = "\n".join(b for b in serving_section(SimpleNamespace(serving=srv)).blocks if isinstance(b, str))
    peak = next(x for x in text.splitlines() if x.startswith("- **7b, iso-peak: a4.8 serves 3 req/s on 1 x a4.8**"))
    area = next(x for x in text.splitlines() if x.startswith("- **7b, iso-area: a4.8 serves 14 req/s on 1 x "
                                                              "7b-a4.8-iso-area**"))
    assert f"{4 / 3:.2f}x below the rate of the strongest b1.58 (b1.58 on 1 x b1.58, 4 req/s)" in peak
    assert f"{5 / 3:.2f}x below the rate of the strongest conventional (fp16 on 1 x fp16, 5 req/s)" in peak
    assert "iso-area" not in peak.split("**")[2]                   # no iso-area run in the iso-peak comparison
    assert f"{15 / 14:.2f}x below the rate of the strongest b1.58 (b1.58 on 1 x 7b-b1.58-iso-area, 15 req/s)" in area
    assert f"{14 / 9:.2f}x the rate of the strongest conventional (fp16 on 1 x 7b-fp16-iso-area, 9 req/s)" in area
    assert "**iso-area**:" in text and "(chip area 56.7-56.8 mm2)" in text
    tables = [b for b in serving_section(SimpleNamespace(serving=srv)).blocks if not isinstance(b, str)]
    for t in tables:                                               # the comparison and the every-run table
        assert "basis" in t.df.columns
    every = tables[-1].df.set_index("run")
    assert every.loc["7b-a4.8-iso-area", "basis"] == "iso-area" and every.loc["7b-a4.8", "basis"] == "iso-peak"


def test_the_basis_is_read_from_the_chip_and_from_its_name_when_the_chip_does_not_load(tmp_path):
    import dataclasses

    import yaml

    from bitsim.experiments.hardware import make_accelerator
    raw = dict(dataclasses.asdict(make_accelerator("b1.58", {})), name="mine", comparison="equal-area")
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(raw))     # no basis in the name: the field decides
    assert run_basis(str(tmp_path / "plain.yaml")) == "iso-area"
    assert run_basis("b1.58") == "iso-peak" and run_basis("h100-like") == "measured GPU"
    assert run_basis("elsewhere/7b-b1.58-iso-area.yaml") == "iso-area"
    assert run_basis("elsewhere/chip.yaml", "7b-b1.58-iso-power") == "iso-power"
    assert run_basis("elsewhere/chip.yaml", "7b-b1.58") == NO_BASIS
    assert chip_name("reports/specs/chips/7b-b1.58-iso-area.yaml") == "7b-b1.58-iso-area"


@pytest.mark.parametrize("late, binds", [(0.30, "capacity"), (0.75, "the tail")])
def test_a_next_rate_whose_latest_quarter_collapses_says_capacity_binds(tmp_path, late, binds):
    (tmp_path / "r").mkdir()
    pd.DataFrame({"rate": [2.0, 4.0, 4.2], "attainment": [1.0, 0.95, 0.80],
                  "late_attainment": [1.0, 0.93, late]}).to_csv(tmp_path / "r" / "search.csv", index=False)
    nxt = next_rate(tmp_path, "r", 4.0)
    assert nxt.rate == 4.2
    x = pd.Series(dict(ttft_p90_s=3.0, ttft_target_s=5.0, tpot_p90_s=0.03, tpot_target_s=0.1, ttft_p99_s=4.0,
                       tpot_p99_s=0.04))
    bind, words = binding_target(x, nxt)
    assert bind == binds
    if binds == "capacity":
        assert "the next rate tried, 4.2 req/s, fails with its latest-arriving quarter at 30 % within the targets " \
               "against 80 % overall" in words
    assert next_rate(tmp_path, "r", 4.2) is None and next_rate(tmp_path, "missing", 4.0) is None
