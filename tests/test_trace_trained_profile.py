"""build_trace(profile="trained"): the committed trained profile applied like paper-table2."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import model
import model.trace
import model.trained_profile as tp
from model.trace import PROFILES, build_trace

CSV = Path(model.__file__).resolve().parents[1] / "reports" / "data" / "trained_profile.csv"
OPS = {"q_proj": "qkv", "k_proj": "qkv", "v_proj": "qkv", "o_proj": "out", "gate_proj": "gate",
       "up_proj": "up", "down_proj": "down"}


def _expected(datapath: str) -> dict[str, float]:
    """Independent reference: pandas on the raw CSV, main runs <datapath>-s<seed>, mean over seeds."""
    raw = pd.read_csv(CSV, comment="#")
    main = raw[(raw.datapath == datapath) & (raw.layer == -1)
               & (raw.run == raw.datapath + "-s" + raw.seed.astype(str))]
    assert main.seed.nunique() >= 1
    return main.groupby("proj")["sparsity"].mean().to_dict()


def _layer0(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df.layer == 0) & df.op.isin(list(OPS))].set_index("op")


@pytest.mark.parametrize("datapath", ["a4.8", "b1.58", "a4.8-fp4"])
def test_projection_sparsity_equals_the_seed_mean_of_the_csv(datapath):
    exp = _expected(datapath)
    df = build_trace("tiny", datapath, context=8, profile="trained")
    proj = df[df.op.isin(list(OPS))]
    assert proj.layer.nunique() == df[df.layer >= 0].layer.nunique()     # every layer gets it
    for op, grp in OPS.items():
        v = proj.loc[proj.op == op, "sparsity"]
        assert v.to_numpy() == pytest.approx(exp[grp], rel=0, abs=1e-15), op
        assert (proj.loc[proj.op == op, "row_skip"] == v).all()           # M = 1: sparsity**1


def test_a48_values_are_the_two_seed_mean_by_hand():
    r = _layer0(build_trace("tiny", "a4.8", context=8, profile="trained"))
    # a4.8-s0 / a4.8-s1 layer -1 rows of reports/data/trained_profile.csv
    assert r.loc["o_proj", "sparsity"] == pytest.approx(0.5)
    assert r.loc["up_proj", "sparsity"] == pytest.approx((0.701122 + 0.696335) / 2, abs=2e-6)
    assert r.loc["down_proj", "sparsity"] == pytest.approx((0.859988 + 0.847244) / 2, abs=2e-6)


@pytest.mark.parametrize("kw, m_rows", [(dict(batch=4), 4),
                                        (dict(batch=2, phase="prefill", prefill_tokens=3), 6)])
def test_independent_rule_is_sparsity_to_the_power_m_like_paper_table2(kw, m_rows):
    trained = build_trace("700m", "a4.8", context=8, profile="trained", batch_rule="independent", **kw)
    paper = build_trace("700m", "a4.8", context=8, profile="paper-table2", batch_rule="independent", **kw)
    exp = _expected("a4.8")
    for df, s_of in ((trained, lambda op: exp[OPS[op]]),
                     (paper, lambda op: {"out": 0.5, "up": 0.662, "down": 0.809}.get(OPS[op]))):
        r = _layer0(df)
        for op in OPS:
            s = s_of(op)
            if s is not None:
                assert r.loc[op, "sparsity"] == pytest.approx(s)
            assert r.loc[op, "row_skip"] == pytest.approx(r.loc[op, "sparsity"] ** m_rows, rel=1e-12)
            assert r.loc[op, "macs_effective"] == round(r.loc[op, "macs_dense"] * (1 - r.loc[op, "sparsity"]))
    # everything but the projection statistics is the same seeded random measurement
    other = ~trained.op.isin(list(OPS))
    pd.testing.assert_frame_equal(trained[other], paper[other])


def test_trace_is_labelled_deterministic_and_loads_no_checkpoint(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("profile='trained' must not load a checkpoint")
    monkeypatch.setattr(model.trace, "load_checkpoint", boom)
    monkeypatch.setattr(model.trace, "measure_trained_stats", boom)
    a = build_trace("tiny", "b1.58", context=16, profile="trained", seed=3)
    b = build_trace("tiny", "b1.58", context=16, profile="trained", seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs == b.attrs
    assert "trained" in PROFILES
    assert a.attrs["profile"] == "trained" and a.attrs["stats_source"] == "trained"
    d = a.attrs["stats_detail"]
    for part in ("reports/data/trained_profile.csv", "b1.58-s0", "b1.58-s1", "seeds 0, 1", "step 270",
                 "mean over the seeds", "sparsity**M"):
        assert part in d, part
    assert "a4.8-s0" not in d


def test_ablation_runs_of_the_same_datapath_are_not_used():
    p = tp.trained_sparsity("a4.8")
    assert p.runs == ("a4.8-s0", "a4.8-s1") and p.seeds == (0, 1) and p.train_steps == (270,)


def test_fp16_has_no_trained_profile_and_says_so():
    with pytest.raises(ValueError, match=r"no trained profile exists for datapath 'fp16'.*a4.8"):
        build_trace("tiny", "fp16", context=8, profile="trained")


def test_missing_file_is_a_clear_file_not_found_error(tmp_path, monkeypatch):
    monkeypatch.setattr(tp, "TRAINED_PROFILE_PATH", tmp_path / "nope.csv")
    with pytest.raises(FileNotFoundError, match=r"trained profile .*nope.csv is missing.*bitsim train tables"):
        build_trace("tiny", "a4.8", context=8, profile="trained")


def test_incomplete_profile_is_a_value_error(tmp_path):
    lines = CSV.read_text().splitlines(keepends=True)
    kept = [ln for ln in lines if not (ln.startswith("a4.8-s1,") and ",-1,down," in ln)]
    assert len(kept) == len(lines) - 1
    bad = tmp_path / "trained_profile.csv"
    bad.write_text("".join(kept))
    with pytest.raises(ValueError, match=r"proj 'down'.*runs missing it: \['a4.8-s1'\]"):
        tp.trained_sparsity("a4.8", bad)


def test_checkpoint_with_trained_profile_is_refused():
    with pytest.raises(ValueError, match="profile: a checkpoint trace"):
        build_trace("tiny", "a4.8", profile="trained", checkpoint="whatever.pt")
