"""Bad and oversized inputs of the model side: each is refused before any work with one clear line.

Checkpoints that contradict themselves, held-out text and corpora beyond their bounds (sparse files,
so no disk is used), training plans past their sizes, a checkpoint that is a symlink to itself.
"""
from __future__ import annotations

import time

import pytest
import torch

from bitsim import cli as bitsim_cli
from model import corpus as mc
from model.checkpoint import MAX_HELDOUT_SEQUENCES, load_checkpoint, save_inference_checkpoint
from model.config import get_config
from model.model import Transformer
from model.trace import build_trace
from model.train import TrainConfig, load_plan


def _held(n: int = 2, t: int = 9) -> torch.Tensor:
    held = torch.randint(0, 96, (n, t), generator=torch.Generator().manual_seed(0))
    held[:, 0] = 96
    return held


def _save(path, datapath="b1.58", meta_datapath=None, heldout=None):
    meta = dict(run="t", seed=0, step=1, tokens=8, corpus={})
    if meta_datapath is not None:
        meta["datapath"] = meta_datapath
    return save_inference_checkpoint(Transformer(get_config("tiny", datapath), seed=1), path,
                                     heldout=_held() if heldout is None else heldout, meta=meta)


def _cli_error(argv, capsys) -> str:
    t0 = time.perf_counter()
    rc = bitsim_cli.main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert time.perf_counter() - t0 < 10
    return err


# ------------------------------------------------------------------ checkpoints
def test_a_checkpoint_whose_metadata_names_another_datapath_is_refused(tmp_path):
    ok = _save(tmp_path / "ok.pt", "b1.58", "b1.58")
    assert load_checkpoint(ok).config.datapath == "b1.58"
    bad = _save(tmp_path / "bad.pt", "b1.58", "a4.8")
    with pytest.raises(ValueError, match="config says datapath 'b1.58' but its metadata says 'a4.8'"):
        load_checkpoint(bad)
    with pytest.raises(ValueError, match="metadata says"):
        build_trace(None, None, checkpoint=bad, context=8)


def test_a_checkpoint_whose_config_says_ternary_over_float_weights_is_refused(tmp_path):
    path = _save(tmp_path / "fp16.pt", "fp16", "fp16")
    obj = torch.load(path, weights_only=True)
    obj["config"]["datapath"] = obj["meta"]["datapath"] = "b1.58"   # fp16 weights relabelled as b1.58
    torch.save(obj, path)
    with pytest.raises(ValueError, match="stored as float weights but the config \\(b1.58\\) makes the layer ternary"):
        load_checkpoint(path)


def test_a_checkpoint_with_too_many_heldout_sequences_is_refused(tmp_path):
    path = _save(tmp_path / "big.pt", heldout=_held(MAX_HELDOUT_SEQUENCES + 1, 3))
    with pytest.raises(ValueError, match=f"{MAX_HELDOUT_SEQUENCES + 1} sequences are above the limit"):
        load_checkpoint(path)


def test_a_checkpoint_symlinked_to_itself_is_one_clear_error(tmp_path, capsys):
    loop = tmp_path / "loop.pt"
    loop.symlink_to(loop)
    err = _cli_error(["trace", "--checkpoint", str(loop), "-o", str(tmp_path / "t.csv")], capsys)
    assert "symlink" in err and "loop.pt" in err


# ------------------------------------------------------------------ held-out text
@pytest.mark.parametrize("n", ["0", "-3", "1000000000"])
def test_heldout_sequence_counts_out_of_range_are_refused(tmp_path, capsys, n):
    ck = _save(tmp_path / "ck.pt", "a4.8", "a4.8")
    text = tmp_path / "held.txt"
    text.write_text("x = 1\n" * 200)
    err = _cli_error(["trace", "--checkpoint", str(ck), "--heldout", str(text), "--heldout-sequences", n,
                      "-o", str(tmp_path / "t.csv")], capsys)
    assert "--heldout-sequences" in err and not (tmp_path / "t.csv").exists()


def _sparse(path, size: int):
    with open(path, "wb") as f:
        f.truncate(size)          # no disk blocks: st_size says 20 GB
    return path


def test_a_20_gb_heldout_file_is_refused_without_reading_it(tmp_path, capsys):
    ck = _save(tmp_path / "ck.pt", "a4.8", "a4.8")
    huge = _sparse(tmp_path / "huge.txt", 20 << 30)
    err = _cli_error(["trace", "--checkpoint", str(ck), "--heldout", str(huge), "-o", str(tmp_path / "t.csv")],
                     capsys)
    assert "more than the limit" in err


def test_a_20_gb_training_corpus_is_refused_without_reading_it(tmp_path):
    huge = _sparse(tmp_path / "corpus.py", 20 << 30)
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="more than the limit"):
        mc.build_corpus(huge)
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(200):                       # each under the per-file cap, together past the total
        _sparse(folder / f"m{i}.py", mc.MAX_FILE_BYTES)
    with pytest.raises(ValueError, match="more than the limit"):
        mc.build_corpus(folder)
    assert time.perf_counter() - t0 < 2


# ------------------------------------------------------------------ training plans
@pytest.mark.parametrize("field, value, word", [
    ("batch_size", "1e8", "batch_size"),
    ("batch_size", "100000000", "batch_size"),
    ("seq_len", "10000000", "seq_len"),
    ("steps", "1e12", "steps"),
    ("heldout_sequences", "60000", "heldout_sequences"),
    ("eval_sequences", "0", "eval_sequences"),
])
def test_training_plan_sizes_out_of_range_are_one_line_errors(tmp_path, capsys, field, value, word):
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"base: {{model: tiny, {field}: {value}}}\nruns: [{{datapath: b1.58}}]\n")
    with pytest.raises(ValueError, match=word):
        load_plan(plan)
    err = _cli_error(["train", "run", "--plan", str(plan), "--out", str(tmp_path / "out")], capsys)
    assert word in err and not (tmp_path / "out").exists()


def test_tokens_per_step_are_bounded_even_when_each_size_is_allowed():
    with pytest.raises(ValueError, match="tokens per step"):
        TrainConfig(model="tiny", batch_size=4096, seq_len=4096)
    assert TrainConfig(model="tiny", batch_size=128, seq_len=512).tokens_per_step == 65536


def test_a_block_too_large_to_measure_is_refused_before_it_is_built():
    cfg = get_config("tiny").replace(dim=16384, n_heads=128, ffn_dim=53248, n_layers=2, name="huge")
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="one block of huge has 3.16e\\+09 parameters"):
        build_trace(cfg, "b1.58", context=8)
    assert time.perf_counter() - t0 < 2
