"""Bounded trace workloads, outputs that never replace a file or an input, and one
vocabulary for where a trace's statistics come from (``stats_source``)."""
from __future__ import annotations

import time

import pytest
import torch

from bitsim import cli as bitsim_cli
from contract import MAX_BATCH, MAX_CONTEXT, MAX_PREFILL_TOKENS, STATS_SOURCES, read_table
from model.checkpoint import save_inference_checkpoint
from model.config import get_config
from model.model import Transformer
from model.trace import build_trace, check_workload, stats_source_of


def _checkpoint(path, datapath="a4.8"):
    cfg = get_config("tiny", datapath)
    held = torch.randint(0, 96, (2, 9), generator=torch.Generator().manual_seed(0))
    held[:, 0] = 96
    return save_inference_checkpoint(Transformer(cfg, seed=1), path, heldout=held,
                                     meta=dict(run="t", seed=0, step=1, tokens=8, corpus={}))


# ------------------------------------------------------------------ bounds
@pytest.mark.parametrize("kwargs, word", [
    (dict(phase="prefill", context=10 ** 9), "context"),            # would overflow the attention pair count
    (dict(phase="decode", context=MAX_CONTEXT + 1), "context"),
    (dict(phase="prefill", context=MAX_CONTEXT), "prefill_tokens"),  # the default chunk is the whole context
    (dict(phase="prefill", context=MAX_CONTEXT, prefill_tokens=MAX_PREFILL_TOKENS + 1), "prefill_tokens"),
    (dict(batch=MAX_BATCH + 1), "batch"),
    (dict(batch=2.0), "batch"),
])
def test_workloads_beyond_the_shared_limits_are_value_errors_at_once(kwargs, word):
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=word):
        build_trace("7b", "a4.8", **kwargs)
    assert time.perf_counter() - t0 < 0.5


def test_the_limits_themselves_are_accepted():
    assert check_workload("prefill", MAX_CONTEXT, MAX_BATCH, MAX_PREFILL_TOKENS) == MAX_PREFILL_TOKENS
    assert check_workload("prefill", MAX_PREFILL_TOKENS, 1) == MAX_PREFILL_TOKENS
    assert check_workload("decode", MAX_CONTEXT, MAX_BATCH) == 1


def test_cli_refuses_a_huge_prefill_with_one_line_and_exit_2(tmp_path, capsys):
    t0 = time.perf_counter()
    rc = bitsim_cli.main(["trace", "--model", "7b", "--datapath", "a4.8", "--phase", "prefill",
                          "--context", str(10 ** 9), "-o", str(tmp_path / "t.parquet")])
    err = capsys.readouterr().err
    assert rc == 2 and "context" in err and "Traceback" not in err
    assert time.perf_counter() - t0 < 2 and not (tmp_path / "t.parquet").exists()


# ------------------------------------------------------------------ output safety
def _trace_args(out, *extra):
    return ["trace", "--model", "tiny", "--datapath", "a4.8", "--context", "8", "-o", str(out), *extra]


def test_cli_refuses_an_existing_output_without_force_and_replaces_it_with_force(tmp_path, capsys):
    out = tmp_path / "t.csv"
    out.write_text("my notes\n")
    assert bitsim_cli.main(_trace_args(out)) == 2
    assert "--force" in capsys.readouterr().err and out.read_text() == "my notes\n"
    assert bitsim_cli.main(_trace_args(out, "--force")) == 0
    assert read_table(out, "op_trace").attrs["preset"] == "tiny"


def test_cli_refuses_an_output_that_is_the_model_yaml_or_the_checkpoint(tmp_path, capsys):
    yml = tmp_path / "m.yaml"
    get_config("tiny", "a4.8").to_yaml(yml)
    text = yml.read_text()
    # the YAML itself (a .yaml output is refused for its suffix too, so name it through a link)
    link = tmp_path / "m.csv"
    link.symlink_to(yml)
    rc = bitsim_cli.main(["trace", "--model", str(yml), "--datapath", "a4.8", "--context", "8",
                          "-o", str(link), "--force"])
    assert rc == 2 and "also an input" in capsys.readouterr().err and yml.read_text() == text
    ck = _checkpoint(tmp_path / "ck.parquet")           # a checkpoint under a table's name
    before = ck.read_bytes()
    rc = bitsim_cli.main(["trace", "--checkpoint", str(ck), "--context", "8", "-o", str(ck), "--force"])
    assert rc == 2 and "also an input" in capsys.readouterr().err and ck.read_bytes() == before


def test_cli_refuses_a_wrong_suffix_before_any_work(tmp_path, capsys):
    assert bitsim_cli.main(_trace_args(tmp_path / "t.json")) == 2
    assert ".parquet or .csv" in capsys.readouterr().err


def test_cli_knobs_reach_the_trace(tmp_path):
    out = tmp_path / "t.parquet"
    assert bitsim_cli.main(_trace_args(out, "--q-bits", "4", "--lm-head-bits", "8")) == 0
    df = read_table(out, "op_trace")
    assert df.attrs["q_bits"] == 4 and df.attrs["lm_head_bits"] == 8
    assert df.loc[df.op == "attn_qk", "act_format"].unique().tolist() == ["int4"]
    assert df.iloc[-1].weight_format == "int8"


# ------------------------------------------------------------------ stats_source vocabulary
def test_stats_source_is_one_word_of_the_shared_vocabulary_with_the_detail_beside_it(tmp_path):
    rnd = build_trace("tiny", "a4.8", context=8)
    paper = build_trace("7b", "a4.8", context=8, profile="paper-table2")
    trained = build_trace(None, None, checkpoint=_checkpoint(tmp_path / "ck.pt"), context=8)
    assert [t.attrs["stats_source"] for t in (rnd, paper, trained)] == list(STATS_SOURCES)
    assert "seeded random weights" in rnd.attrs["stats_detail"]
    assert "Table 2" in paper.attrs["stats_detail"] and "seeded random weights" in paper.attrs["stats_detail"]
    assert trained.attrs["stats_detail"].startswith("checkpoint ck.pt")
    assert [t.attrs["profile"] for t in (rnd, paper, trained)] == ["measured", "paper-table2", "trained"]
    assert all(stats_source_of(t.attrs) == t.attrs["stats_source"] for t in (rnd, paper, trained))


@pytest.mark.parametrize("text, word", [
    ("measured: 1 full-width block(s) of 7b (a4.8), seeded random weights", "random"),
    ("paper-table2: q/k/v/o/gate/up/down sparsity from ...", "paper-table2"),
    ("trained: checkpoint a4.8-s0.pt (run a4.8-s0, ...)", "trained"),
    ("random", "random"),
])
def test_version_1_descriptions_read_as_their_word(text, word):
    assert stats_source_of({"stats_source": text}) == word


@pytest.mark.parametrize("attrs", [{}, {"stats_source": "a4.8 Table 2 (7B)"}, {"stats_source": 3},
                                   {"stats_source": "x" * 5000}])
def test_an_unknown_stats_source_is_a_short_value_error(attrs):
    with pytest.raises(ValueError, match="stats_source") as e:
        stats_source_of(attrs)
    assert len(str(e.value)) < 400
