"""Fair comparisons: strongest baselines, one profile per comparison, the runner, the one-change ladder."""
import pytest

import bitsim.experiments.runs as runs
import sim
from bitsim.experiments.fair import KV_FORMAT_BITS, best_kv_bits, choose_profile, plan_comparison, strongest
from bitsim.experiments.ladder import ladder_jobs
from bitsim.experiments.runs import Chip, Job, Runner, TraceKey
from bitsim.experiments.study import StudyConfig, plan_study, run_study
from bitsim.report.claims import ratio_table

MATCHED = {"fp16": "fp16", "b1.58": "b1.58", "a4.8": "a4.8", "a4.8-fp4": "a4.8"}


@pytest.fixture(scope="module")
def tiny_study():
    cfg = StudyConfig(presets=("tiny",), datapaths=("fp16", "b1.58", "a4.8"), contexts=(32, 128), prefill_tokens=32,
                      workers=1, experiments=("ladder",))
    return run_study(cfg, progress=False)


def test_b158_baseline_of_every_a48_ratio_uses_the_best_kv_format_it_supports(tiny_study):
    # independent reference: the b1.58 preset's own KV formats, and the [FAQ] floor of 4 bits for b1.58
    formats = sim.load_accelerator("b1.58").kv_formats
    best = min(KV_FORMAT_BITS[f] for f in formats if KV_FORMAT_BITS[f] >= 4)
    assert best == 4
    s = tiny_study.summary
    ratios = ratio_table(s)
    assert len(ratios) == 6  # 2 decode contexts + 1 prefill, matched and reference
    for _, r in ratios.iterrows():
        g = s[(s.preset == r.preset) & (s.phase == r.phase) & (s.context == r.context) & (s.role == r.role)]
        b, a = g[g.datapath == "b1.58"].iloc[0], g[g.datapath == "a4.8"].iloc[0]
        assert b.kv_bits == best
        assert r["speed a4.8/b1.58"] == pytest.approx(a.tokens_per_s / b.tokens_per_s)
    # the matched b1.58 chip also gets a4.8's zero skipping; fp16 gets its best (4-bit) cache, granted
    m = s[s.role == "matched"].set_index(["datapath", "phase", "context"])
    assert set(s[(s.datapath == "b1.58") & (s.role == "matched")].variant) == {"4-bit KV, zero skipping granted"}
    assert (s[s.datapath == "fp16"].kv_bits == 4).all() and (m.loc["a4.8"].kv_bits == 3).all()


def test_strongest_rule_grants_the_comparisons_kv_formats_and_skip_logic():
    v = strongest(["fp16", "b1.58", "a4.8"], MATCHED, "7b")
    assert (v["fp16"].kv_bits, v["b1.58"].kv_bits, v["a4.8"].kv_bits) == (4, 4, None)  # a4.8's own 3-bit cache
    fp16 = v["fp16"].chip.config()
    assert "kv-int4" in fp16.kv_formats and fp16.sparsity.skip_weight_fetch
    assert v["b1.58"].chip.config().sparsity.skip_compute and "kv-int4 granted" not in v["b1.58"].changes
    # without the a4.8 chip nobody has skip logic or a 3-bit format to be granted
    alone = strongest(["fp16", "b1.58"], MATCHED, "7b")
    assert not alone["b1.58"].chip.config().sparsity.skip_weight_fetch
    assert best_kv_bits("a4.8", ["kv-fp16", "kv-int4"]) == 4 and best_kv_bits("b1.58", ["kv-int3"]) == 16
    as_given = strongest(["b1.58"], MATCHED, "7b", policy="as-given")
    assert as_given["b1.58"].kv_bits is None and as_given["b1.58"].chip == Chip.of("b1.58")


def test_one_profile_per_comparison_drops_what_it_cannot_describe():
    prof, dropped, _ = choose_profile("7b", ["fp16", "b1.58", "a4.8", "a4.8-fp4"])
    assert prof == "paper-table2" and set(dropped) == {"a4.8-fp4"}
    prof, dropped, why = choose_profile("2b4t", ["fp16", "b1.58", "a4.8"])
    assert prof == "measured" and not dropped and "Table 2 has no 2b4t" in why
    with pytest.raises(ValueError, match="profile"):
        choose_profile("7b", ["a4.8"], "guess")
    plan = plan_study(StudyConfig(presets=("7b", "2b4t")))
    profiles = {p: c.profile for p, c in plan.comparisons.items()}
    assert profiles == {"7b": "paper-table2", "2b4t": "measured"}
    # every trace of a comparison carries its one profile
    assert {plan.key("7b", d, "decode", 64).profile for d in plan.comparisons["7b"].variants} == {"paper-table2"}


def test_every_study_trace_of_one_comparison_has_one_profile(tiny_study):
    s = tiny_study.summary
    assert s.groupby("preset").profile.nunique().max() == 1


def test_the_ladder_changes_one_thing_per_step(tiny_study):
    lad = tiny_study.axes["ladder"]
    for _ctx, g in lad.groupby("context"):
        g = g.sort_values("step")
        assert g.step.tolist() == [0, 1, 2, 3]
        assert g.kv_bits.tolist() == [16, 4, 3, 3]
        assert g.datapath.tolist() == ["b1.58", "b1.58", "b1.58", "a4.8"]
        kv = g.kv_bytes.to_numpy()
        assert kv[0] > kv[1] > kv[2] == kv[3] and g.weight_bytes.nunique() == 1
        assert g.speedup_total.iloc[1] == pytest.approx(1.0)
    plan = tiny_study.plan
    rungs = {(t["step"], t["skip"]): j for j, t in ladder_jobs(plan).items()}
    # rungs 1 and 2 run on the same b1.58 chip but for the KV format it is granted; skip off only flips skipping
    c1, c2 = rungs[(1, "on")].chip.config(), rungs[(2, "on")].chip.config()
    assert c1.arrays == c2.arrays and c1.sparsity == c2.sparsity
    assert set(c2.kv_formats) - set(c1.kv_formats) == {"kv-int3"}
    off = rungs[(3, "off")].chip.config()
    assert not off.sparsity.skip_weight_fetch and off.arrays == rungs[(3, "on")].chip.config().arrays


def test_the_ladder_ends_on_the_study_rows(tiny_study):
    s, lad = tiny_study.summary, tiny_study.axes["ladder"]
    for ctx, g in lad.groupby("context"):
        dec = s[(s.phase == "decode") & (s.context == ctx) & (s.role == "matched")].set_index("datapath")
        assert g[g.step == 1].tokens_per_s.iloc[0] == pytest.approx(dec.tokens_per_s["b1.58"], rel=1e-12)
        assert g[g.step == 3].tokens_per_s.iloc[0] == pytest.approx(dec.tokens_per_s["a4.8"], rel=1e-12)


def test_the_runner_builds_each_trace_once_and_answers_twin_jobs_with_one_run(monkeypatch):
    calls = []
    real = runs.build_trace
    monkeypatch.setattr(runs, "build_trace", lambda *a, **k: calls.append(k) or real(*a, **k))
    sims = []
    real_sim = runs.sim.simulate
    monkeypatch.setattr(runs.sim, "simulate", lambda *a, **k: sims.append(1) or real_sim(*a, **k))
    key = TraceKey(preset="tiny", datapath="b1.58", phase="decode", context=32)
    jobs = [Job(trace=key, chip=Chip.of("b1.58"), keep_ops=True), Job(trace=key, chip=Chip.of("b1.58")),
            Job(trace=key, chip=Chip.of("a4.8"))]
    with Runner(workers=1) as r:
        out = r.run(jobs)
        again = r.run([Job(trace=key, chip=Chip.of("edge"))])
    assert len(calls) == 1 and len(sims) == 3
    assert out[jobs[0]].ops is not None and out[jobs[1]].row == out[jobs[0]].row
    assert set(again) == {Job(trace=key, chip=Chip.of("edge"))}


def test_chip_overrides_are_validated_by_sim():
    with pytest.raises(ValueError, match="count"):
        Chip.of("a4.8", {"arrays.ternary.count": -1}).config()
    assert Chip.of("a4.8", {"kv_formats": ["kv-fp16"]}).config().kv_formats == ("kv-fp16",)


def test_plan_comparison_names_the_profile_reason():
    c = plan_comparison("7b", ["b1.58", "a4.8"], MATCHED)     # both have committed trained profiles
    assert c.profile == "trained" and "trained" in c.profile_reason and not c.dropped
    assert c.datapaths == ("b1.58", "a4.8")
    with_fp16 = plan_comparison("7b", ["fp16", "b1.58", "a4.8"], {**MATCHED, "fp16": "fp16"})
    assert with_fp16.profile == "paper-table2" and "no trained profile for fp16" in with_fp16.profile_reason
