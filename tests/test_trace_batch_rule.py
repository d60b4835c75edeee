"""Zero skipping at batch (model.zero_batch): the Beta rule, its committed constants, and the knob in build_trace."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import model.trace_stats as ts
import model.zero_batch as zb
from bitsim.cli import main as cli_main
from contract import read_table
from model import stats_cache
from model.checkpoint import load_checkpoint, save_inference_checkpoint
from model.config import get_config
from model.model import ActivationCapture, Transformer
from model.trace import build_trace

PROJ = {"q_proj": "qkv", "k_proj": "qkv", "v_proj": "qkv", "o_proj": "o", "gate_proj": "gate",
        "up_proj": "up", "down_proj": "down"}
CHECK_PATH = zb.FIT_PATH.with_name("zero_correlation_check.csv")


def _fit_csv() -> pd.DataFrame:
    """Independent read of the committed constants: pandas on the raw file."""
    return pd.read_csv(zb.FIT_PATH, comment="#")


def _kappa(datapath: str, group: str, grouping: str) -> float:
    f = _fit_csv()
    row = f[(f.datapath == datapath) & (f.group == group) & (f.grouping == grouping)]
    assert len(row) == 1
    return float(row.kappa.iloc[0])


# ------------------------------------------------------------------ the closed form
@pytest.mark.parametrize("m", [1, 2, 5, 17, 64])
def test_beta_moment_matches_hand_computed_uniform_and_beta_1_3(m):
    # s = 0.5, kappa = 2: Beta(1, 1), the uniform law: E[f^M] = 1 / (M + 1)
    assert zb.beta_row_skip(0.5, 2.0, m) == pytest.approx(1 / (m + 1), rel=1e-12)
    # s = 0.25, kappa = 4: Beta(1, 3): E[f^M] = B(M+1, 3) / B(1, 3) = 6 / ((M+1)(M+2)(M+3))
    assert zb.beta_row_skip(0.25, 4.0, m) == pytest.approx(6 / ((m + 1) * (m + 2) * (m + 3)), rel=1e-12)


@pytest.mark.parametrize("s, kappa", [(0.842, 1.7), (0.5, 9.0), (0.121, 40.0)])
def test_beta_moment_matches_monte_carlo(s, kappa):
    rng = np.random.default_rng(7)
    f = rng.beta(s * kappa, (1 - s) * kappa, size=400_000)
    for m in (1, 2, 8, 32):
        mc = f ** m
        se = mc.std() / math.sqrt(mc.size)
        assert abs(zb.beta_row_skip(s, kappa, m) - mc.mean()) < 5 * se + 1e-12, m


def test_log_gamma_branch_agrees_with_the_float64_product():
    s, kappa, m = 0.84, 3.0, zb.PRODUCT_MAX_M + 5
    a, prod = s * kappa, 1.0
    for i in range(m):            # the moment restated as the plain product, float64
        prod *= (a + i) / (kappa + i)
    assert zb.beta_row_skip(s, kappa, m) == pytest.approx(prod, rel=1e-9)


@pytest.mark.parametrize("s", [0.012, 0.121, 0.5, 0.842, 0.99])
@pytest.mark.parametrize("kappa", [0.05, 1.0, 30.0, 1e4])
def test_rule_is_s_at_one_row_non_increasing_and_above_the_independent_bound(s, kappa):
    v = [zb.beta_row_skip(s, kappa, m) for m in range(1, 129)]
    assert v[0] == pytest.approx(s, rel=1e-12)
    assert all(b <= a for a, b in zip(v, v[1:]))
    assert all(x >= s ** m for m, x in zip(range(1, 129), v))
    assert v[31] > s ** 32 * (1 + 1e-9)                     # strictly above for finite kappa


def test_infinite_kappa_and_the_edges_are_the_independent_rule():
    assert zb.beta_row_skip(0.7, math.inf, 9) == 0.7 ** 9
    assert zb.beta_row_skip(0.7, 1e12, 9) == pytest.approx(0.7 ** 9, rel=1e-6)
    assert zb.beta_row_skip(0.0, 2.0, 5) == 0.0 and zb.beta_row_skip(1.0, 2.0, 5) == 1.0


@pytest.mark.parametrize("bad", [dict(s=1.2), dict(kappa=0.0), dict(kappa=-1.0), dict(m=0), dict(m=2.5)])
def test_bad_arguments_are_value_errors(bad):
    args = dict(s=0.5, kappa=2.0, m=4) | bad
    with pytest.raises(ValueError):
        zb.beta_row_skip(args["s"], args["kappa"], args["m"])


def test_fit_recovers_kappa_from_simulated_columns():
    # columns with Beta(s, kappa0) zero frequencies, M rows drawn independently per column
    rng = np.random.default_rng(3)
    s, k0, cols = 0.8, 2.5, 40_000
    f = rng.beta(s * k0, (1 - s) * k0, size=cols)
    z = rng.random((32, cols)) < f
    ms = [1, 2, 4, 8, 16, 32]
    measured = [float(z[:m].all(axis=0).mean()) for m in ms]
    assert zb.fit_kappa(float(z[0].mean()), ms, measured) == pytest.approx(k0, rel=0.1)
    exact = [zb.beta_row_skip(s, k0, m) for m in ms]
    assert zb.fit_kappa(s, ms, exact) == pytest.approx(k0, rel=1e-4)


# ------------------------------------------------------------------ the committed constants
def test_committed_constants_cover_both_trained_datapaths_and_groupings():
    fit = zb.load_fit()
    for dp in ("a4.8", "b1.58"):
        for grouping in zb.GROUPINGS:
            assert set(fit[(dp, grouping)]) == set(zb.GROUPS)
            for g in zb.GROUPS:
                assert fit[(dp, grouping)][g] == _kappa(dp, g, grouping)


def test_committed_constants_reproduce_the_committed_error_table():
    check = pd.read_csv(CHECK_PATH, comment="#")
    assert set(check.M[check.grouping == "sequences"]) >= {1, 2, 4, 8, 16, 32}
    fit = zb.load_fit()
    for r in check.itertuples():
        k = fit[(r.datapath, r.grouping)][r.group]
        assert r.kappa == k
        assert zb.beta_row_skip(float(r.sparsity), k, int(r.M)) == pytest.approx(r.beta, rel=1e-8, abs=1e-12)
        assert r.independent == pytest.approx(r.sparsity ** r.M, rel=1e-8, abs=1e-15)


def test_committed_error_table_shows_the_beta_rule_beats_independence_on_held_out_models():
    c = pd.read_csv(CHECK_PATH, comment="#")
    for (dp, grouping), g in c.groupby(["datapath", "grouping"]):
        assert g.beta_error.abs().mean() < g.independent_error.abs().mean(), (dp, grouping)
    down = c[(c.datapath == "a4.8") & (c.group == "down") & (c.grouping == "sequences")].set_index("M")
    assert abs(down.loc[32, "beta_error"]) < 0.02 < abs(down.loc[32, "independent_error"])


def test_missing_or_malformed_fit_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"zero_correlation.py --write"):
        zb.load_fit(tmp_path / "none.csv")
    bad = tmp_path / "fit.csv"
    bad.write_text(zb.FIT_PATH.read_text().replace(",sequences,", ",rows,", 1))
    with pytest.raises(ValueError, match=r"grouping 'rows' is none of"):
        zb.load_fit(bad)


# ------------------------------------------------------------------ the knob in build_trace
def _layer0(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df.layer == 0) & df.op.isin(list(PROJ))].set_index("op")


@pytest.mark.parametrize("profile", ["paper-table2", "trained"])
def test_independent_knob_gives_sparsity_to_the_m_exactly(profile):
    r = _layer0(build_trace("700m", "a4.8", context=8, batch=16, profile=profile, batch_rule="independent"))
    for op in PROJ:
        assert r.loc[op, "row_skip"] == r.loc[op, "sparsity"] ** 16


@pytest.mark.parametrize("kw, m, grouping", [(dict(batch=16), 16, "sequences"),
                                              (dict(batch=2, phase="prefill", prefill_tokens=4), 8, "tokens")])
def test_default_rule_is_the_fitted_beta_named_in_the_detail(kw, m, grouping):
    df = build_trace("700m", "a4.8", context=8, profile="paper-table2", **kw)
    ind = build_trace("700m", "a4.8", context=8, profile="paper-table2", batch_rule="independent", **kw)
    r, ri = _layer0(df), _layer0(ind)
    for op, g in PROJ.items():
        s = r.loc[op, "sparsity"]
        assert s == ri.loc[op, "sparsity"]
        assert r.loc[op, "row_skip"] == pytest.approx(zb.beta_row_skip(s, _kappa("a4.8", g, grouping), m), rel=1e-12)
        assert r.loc[op, "row_skip"] >= ri.loc[op, "row_skip"]
    assert r.loc["down_proj", "row_skip"] > 1.5 * ri.loc["down_proj", "row_skip"]   # 1.8x at 8 tokens, 2.9x at 16 seqs
    assert "batch_rule 'beta'" in df.attrs["stats_detail"] and "zero_correlation_fit.csv" in df.attrs["stats_detail"]
    assert "batch_rule 'independent'" in ind.attrs["stats_detail"]
    other = ~df.op.isin(list(PROJ))          # nothing else moves
    pd.testing.assert_frame_equal(df[other], ind[other])


def test_datapath_without_constants_falls_back_to_independent_and_says_so():
    df = build_trace("tiny", "a4.8-fp4", context=8, batch=4, profile="trained")
    r = _layer0(df)
    assert (r.row_skip == r.sparsity ** 4).all()
    assert "no fitted constants for a4.8-fp4" in df.attrs["stats_detail"]


@pytest.mark.parametrize("kw, msg", [
    (dict(profile="paper-table2", batch_rule="poisson"), "unknown rule 'poisson'"),
    (dict(profile="measured", batch_rule="independent"), "only the profiles"),
    (dict(batch_rule="beta", checkpoint="whatever.pt"), "only the profiles"),
])
def test_batch_rule_errors_name_the_field(kw, msg):
    with pytest.raises(ValueError, match=f"batch_rule: .*{msg}"):
        build_trace("tiny", "a4.8", context=8, **kw)


def test_stats_cache_key_changes_with_the_committed_constants(tmp_path, monkeypatch):
    seen = []
    real = stats_cache.cached

    def spy(kind, parts, compute):
        seen.append(parts)
        return real(kind, parts, compute)
    monkeypatch.setattr(stats_cache, "cached", spy)
    monkeypatch.setenv(stats_cache.ENV_DIR, str(tmp_path / "cache"))
    cfg = get_config("tiny", "a4.8")
    ts.random_stats(cfg, 1, 1, 8, 0, 1)
    other = tmp_path / "fit.csv"
    other.write_text(zb.FIT_PATH.read_text() + "\n")
    monkeypatch.setattr(zb, "FIT_PATH", other)
    ts.random_stats(cfg, 1, 1, 8, 0, 1)
    assert len(seen) == 2 and stats_cache.cache_key(seen[0]) != stats_cache.cache_key(seen[1])
    stats_cache.clear_memo()


@pytest.mark.parametrize("rule", [None, "independent"])
def test_trace_command_takes_the_batch_rule(tmp_path, rule):
    out = tmp_path / "t.csv"
    args = ["trace", "--model", "tiny", "--datapath", "a4.8", "--profile", "trained", "--batch", "4", "-o", str(out)]
    assert cli_main(args + (["--batch-rule", rule] if rule else [])) == 0
    r = _layer0(read_table(out, "op_trace"))
    down = r.loc["down_proj"]
    if rule == "independent":
        assert down.row_skip == pytest.approx(down.sparsity ** 4, rel=1e-12)
    else:
        assert down.row_skip == pytest.approx(zb.beta_row_skip(down.sparsity, _kappa("a4.8", "down", "sequences"), 4),
                                              rel=1e-12)


def test_checkpoint_decode_row_skip_is_the_per_column_moment_and_prefill_groups_tokens(tmp_path):
    cfg = get_config("tiny", "a4.8")
    held = torch.randint(0, 96, (8, 17), generator=torch.Generator().manual_seed(0))
    held[:, 0] = 96
    path = save_inference_checkpoint(Transformer(cfg, seed=1), tmp_path / "ck.pt", heldout=held,
                                     meta=dict(run="t", seed=0, step=1, tokens=8, corpus={}))
    ck = load_checkpoint(path)
    cap = ActivationCapture()
    with torch.no_grad():
        ck.model(held[:, :-1].long(), rec=cap)
    z = (cap[(0, "in_down")].reshape(-1, cfg.ffn_dim) == 0).numpy().astype(np.float64)   # [8*16, F]
    assert 0.2 < z.mean() < 0.95
    df = build_trace(None, None, checkpoint=ck, context=16, batch=4)
    dec = _layer0(df)
    assert dec.loc["down_proj", "row_skip"] == pytest.approx((z.mean(axis=0) ** 4).mean(), rel=1e-9)
    assert "of 4 sequences as mean_j f_j**M" in df.attrs["stats_detail"]
    pre = _layer0(build_trace(None, None, checkpoint=ck, context=16, phase="prefill", prefill_tokens=4))
    groups = z.reshape(-1, 4, z.shape[1]).min(axis=1)        # 4 consecutive tokens of one sequence
    assert pre.loc["down_proj", "row_skip"] == pytest.approx(groups.mean(), rel=1e-9)
