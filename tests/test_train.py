"""Training (model/train.py), corpus, inference checkpoints, trained-profile traces; CPU, tiny, seeded."""
from __future__ import annotations

import hashlib
import math

import pytest
import torch

from bitsim import cli as bitsim_cli
from contract import read_table
from model import corpus as mc
from model import training_report
from model.checkpoint import load_checkpoint, pack_ternary, save_inference_checkpoint, unpack_ternary
from model.config import get_config
from model.model import Transformer
from model.trace import activated_params, build_trace
from model.train import TrainConfig, lr_wd_at, plan_configs, train_run
from model.training_report import write_training_tables


def _text_folder(tmp_path, n_files: int = 40, size: int = 3000):
    """A folder of deterministic pseudo-source files (no dependency on the interpreter's stdlib)."""
    root = tmp_path / "src"
    g = torch.Generator().manual_seed(0)
    words = [b"def ", b"return ", b"self", b"(x)", b":\n    ", b" = ", b"if ", b"None", b"\n", b"import os\n"]
    for i in range(n_files):
        idx = torch.randint(0, len(words), (size // 4,), generator=g).tolist()
        (root / f"pkg{i % 3}").mkdir(parents=True, exist_ok=True)
        (root / f"pkg{i % 3}" / f"m{i}.py").write_bytes(b"".join(words[j] for j in idx))
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return mc.build_corpus(_text_folder(tmp_path_factory.mktemp("c")), val_percent=20.0)


def _cfg(**kw) -> TrainConfig:
    base = dict(datapath="a4.8", model="tiny", seq_len=32, batch_size=8, steps=16, eval_sequences=8,
                final_eval_sequences=8, heldout_sequences=4, eval_batch=8, lr=1e-2, eval_every=4,
                val_percent=20.0)
    return TrainConfig(**{**base, **kw})


# ------------------------------------------------------------------ corpus
def test_corpus_split_is_by_file_path_hash_and_reproducible(tmp_path):
    root = _text_folder(tmp_path)
    a, b = mc.build_corpus(root, val_percent=20.0), mc.build_corpus(root, val_percent=20.0)
    assert a.manifest == b.manifest and torch.equal(a.train, b.train)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py"))
    val = [f for f in files if hashlib.sha256(f.encode()).digest()[0] < 256 * 0.20]
    assert a.manifest["files_val"] == len(val) and a.manifest["files_train"] == len(files) - len(val)
    # the val stream is those files in path order, each followed by the NUL end-of-file byte
    expect = b"".join((root / f).read_bytes() + b"\0" for f in val)
    assert bytes(a.val.tolist()) == expect
    assert a.manifest["sha256_val"] == hashlib.sha256(expect).hexdigest()
    assert a.manifest["bytes_train"] + a.manifest["bytes_val"] == sum((root / f).stat().st_size + 1 for f in files)


def test_byte_tokenizer_windows_start_with_bos():
    ids = mc.encode("ab\n")
    assert ids.tolist() == [mc.BOS, 97, 98, 10] and mc.decode(ids) == b"ab\n"
    w = mc.windows(torch.arange(10, dtype=torch.uint8), torch.tensor([0, 3]), 4)
    assert w.tolist() == [[256, 0, 1, 2, 3], [256, 3, 4, 5, 6]]
    assert mc.eval_starts(100, 3, 10).tolist() == [0, 45, 90]


# ------------------------------------------------------------------ config and schedule
def test_train_config_rejects_bad_fields_naming_them():
    with pytest.raises(ValueError, match="datapath"):
        _cfg(datapath="int2")
    with pytest.raises(ValueError, match="steps"):
        _cfg(steps=0)
    with pytest.raises(ValueError, match="model_overrides"):
        _cfg(model_overrides={"dim": 8})
    with pytest.raises(ValueError, match="o_act"):
        _cfg(model_overrides={"o_act": "int2"})
    with pytest.raises(ValueError, match="unknown field"):
        TrainConfig.from_dict({"datapath": "a4.8", "stpes": 3})
    with pytest.raises(ValueError, match="repeat"):
        plan_configs({"model": "tiny"}, [{"datapath": "a4.8"}, {"datapath": "a4.8"}])


def test_two_stage_lr_and_weight_decay_schedule():
    c = _cfg(datapath="b1.58", steps=100, warmup_frac=0.1, lr=1e-2, lr_min_ratio=0.1)
    assert lr_wd_at(c, 0) == pytest.approx((1e-3, 0.1))            # warm-up: (step+1)/10 of the peak
    cos = lambda p: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p))  # noqa: E731
    assert lr_wd_at(c, 49) == pytest.approx((1e-2 * cos(39 / 90), 0.1))
    assert lr_wd_at(c, 50) == pytest.approx((1e-2 * 2 / 3 * cos(40 / 90), 0.0))   # midpoint: peak x 2/3, WD 0
    assert lr_wd_at(c, 99)[0] == pytest.approx(1e-2 * 2 / 3 * cos(89 / 90))
    f = _cfg(datapath="fp16", steps=100, warmup_frac=0.1, lr=1e-2)
    assert lr_wd_at(f, 50) == pytest.approx((1e-2 * cos(40 / 90), 0.1))  # fp16: one peak, constant WD
    for dp, ffn in (("fp16", "swiglu"), ("b1.58", "swiglu")):              # one activation stage
        one = _cfg(datapath=dp, steps=100)
        assert one.switch_step == 100 and one.stage_config(0) == one.model_config()
        assert one.stage_config(0).datapath == dp and one.stage_config(0).ffn_kind == ffn
    a = _cfg(steps=100)
    assert a.switch_step == 95 and a.stage_config(94).datapath == "b1.58"
    assert a.stage_config(94).ffn_kind == "relu2glu" and not a.stage_config(94).kv_quantized
    assert a.stage_config(95) == a.model_config() and a.model_config().kv_cache_bits == 3


# ------------------------------------------------------------------ training
def test_training_loss_falls_and_a48_switches_stage(corpus, tmp_path):
    res = train_run(_cfg(), tmp_path, corpus, log=lambda m: None)
    curve = res["curve"]
    assert res["status"] == "done" and res["steps"] == 16 and res["switch_step"] == 15
    assert curve[0]["val_loss"] == pytest.approx(math.log(264), abs=0.6)   # near uniform at init
    assert curve[-1]["val_loss"] < curve[0]["val_loss"] - 1.0
    assert [c["stage"] for c in curve] == ["b1.58"] * 4 + ["a4.8"]
    assert set(res["variants"]) == {"kv3_no_bos_rule", "kv4", "kv_fp16"}
    assert res["tokens"] == 16 * 8 * 32
    again = train_run(_cfg(), tmp_path, corpus, log=lambda m: None)   # done: skipped, same result
    assert again["final"] == res["final"]


def test_resume_continues_bit_for_bit(corpus, tmp_path):
    cfg = _cfg(datapath="b1.58", steps=10, eval_every=5)
    straight = train_run(cfg, tmp_path / "a", corpus, log=lambda m: None)
    assert {c["stage"] for c in straight["curve"]} == {"b1.58"}
    paused = train_run(cfg, tmp_path / "b", corpus, stop_at=3, log=lambda m: None)
    assert paused["status"] == "paused" and (tmp_path / "b" / cfg.run_name / "state.pt").exists()
    resumed = train_run(cfg, tmp_path / "b", corpus, log=lambda m: None)
    assert resumed["final"]["val_loss"] == straight["final"]["val_loss"]
    assert [c["val_loss"] for c in resumed["curve"]] == [c["val_loss"] for c in straight["curve"]]
    sa = torch.load(tmp_path / "a" / cfg.run_name / "state.pt", weights_only=True)["model"]
    sb = torch.load(tmp_path / "b" / cfg.run_name / "state.pt", weights_only=True)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    with pytest.raises(ValueError, match="another config"):
        train_run(cfg.replace(lr=2e-2), tmp_path / "b", corpus, log=lambda m: None)


# ------------------------------------------------------------------ checkpoints and traces
def test_ternary_packing_round_trips():
    codes = torch.randint(-1, 2, (7, 5)).float()
    packed = pack_ternary(codes)
    assert packed.dtype == torch.uint8 and packed.numel() == 9
    assert torch.equal(unpack_ternary(packed, (7, 5)), codes)
    assert pack_ternary(torch.tensor([-1.0, 0.0, 1.0, 1.0])).tolist() == [0 | 1 << 2 | 2 << 4 | 2 << 6]


def test_inference_checkpoint_reproduces_the_trained_forward_exactly(tmp_path):
    cfg = get_config("tiny", "a4.8")
    m = Transformer(cfg, seed=3)
    held = torch.randint(0, cfg.vocab_size, (2, 9))
    path = save_inference_checkpoint(m, tmp_path / "m.pt", heldout=held, meta=dict(run="x", seed=3, step=7))
    ck = load_checkpoint(path)
    tok = torch.randint(0, cfg.vocab_size, (2, 6))
    with torch.no_grad():
        assert torch.equal(ck.model(tok), m(tok))                    # fake-quant path
        assert torch.equal(ck.model(tok, exact=True), m(tok, exact=True))  # integer path
    assert torch.equal(ck.heldout, held) and ck.meta["step"] == 7 and ck.config == cfg
    assert path.stat().st_size < 120_000
    with pytest.raises(ValueError, match="not a"):
        torch.save({"format": "other"}, tmp_path / "bad.pt")
        load_checkpoint(tmp_path / "bad.pt")


def test_trace_from_checkpoint_is_labelled_trained_and_measured_per_layer(corpus, tmp_path):
    train_run(_cfg(), tmp_path, corpus, log=lambda m: None)
    ck = tmp_path / "a4.8-s0" / "final.pt"
    df = build_trace(None, None, checkpoint=ck, context=32)
    assert df.attrs["stats_source"] == "trained" and df.attrs["profile"] == "trained"
    assert df.attrs["train_step"] == 16 and df.attrs["train_run"] == "a4.8-s0"
    assert df.attrs["heldout_tokens"] == 4 * 32
    assert df.attrs["train_corpus"]["sha256_val"] == corpus.manifest["sha256_val"]
    o = df[df.op == "o_proj"]
    assert (o.sparsity == 0.5).all()                                 # TopK 50 % on 32 features: exactly 16
    assert df[df.op == "q_proj"].sparsity.nunique() == 2             # one value per trained layer
    t7 = build_trace("7b", None, checkpoint=ck)                      # transferred to the 7B shape
    assert t7.attrs["stats_source"] == "trained" and "transferred to 7b" in t7.attrs["stats_detail"]
    assert t7[t7.op == "down_proj"].sparsity.iloc[0] == pytest.approx(df[df.op == "down_proj"].sparsity.mean())
    assert 0 < activated_params(t7)["overall_sparsity"] < 1
    with pytest.raises(ValueError, match="trained as"):
        build_trace(None, "b1.58", checkpoint=ck)
    with pytest.raises(ValueError, match="checkpoint"):
        build_trace("tiny", "a4.8", heldout=torch.zeros(1, 4, dtype=torch.long))


def test_cli_train_then_trace_checkpoint(tmp_path, monkeypatch, capsys):
    root = _text_folder(tmp_path)
    out = tmp_path / "runs"
    rc = bitsim_cli.main(["train", "run", "--datapaths", "b1.58", "--seeds", "1", "--set", "model=tiny",
                          "--set", "seq_len=32", "--set", "batch_size=4", "--set", "steps=4",
                          "--set", f"corpus={root}", "--set", "val_percent=20", "--set", "eval_sequences=4",
                          "--set", "final_eval_sequences=4", "--set", "heldout_sequences=2",
                          "--out", str(out), "--export", str(tmp_path / "x")])
    assert rc == 0 and (tmp_path / "x" / "results.json").exists() and (tmp_path / "x" / "checkpoints-0.tar").exists()
    rc = bitsim_cli.main(["trace", "--checkpoint", str(out / "b1.58-s1" / "final.pt"), "--context", "16",
                          "-o", str(tmp_path / "t.csv")])
    assert rc == 0 and "trained statistics" in capsys.readouterr().out
    t = read_table(tmp_path / "t.csv", "op_trace")
    assert t.attrs["datapath"] == "b1.58" and t.attrs["train_seed"] == 1
    assert bitsim_cli.main(["train", "run", "--datapaths", "b1.58", "--set", "stepz=3", "--out", str(out)]) == 2


@pytest.mark.parametrize("datapath", ["fp16", "a4.8"])
def test_fused_training_attention_matches_the_reference_attention(datapath):
    # Seeded tokens: with unseeded ones an a4.8 quantizer downstream of attention can, rarely, flip a
    # code on a rounding boundary from a 1e-7 float difference and amplify it past the tolerance.
    cfg = get_config("tiny", datapath)
    m = Transformer(cfg, seed=1)
    tok = torch.randint(0, cfg.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = m(tok)
        m.fuse_attention(True)
        fused = m(tok)
    assert torch.allclose(fused, ref, atol=1e-4, rtol=1e-4) and not torch.equal(fused, torch.zeros_like(fused))


def test_reconfigure_keeps_parameters_and_refuses_a_shape_change():
    m = Transformer(get_config("tiny", "b1.58", ffn_act="relu2glu"), seed=1)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m.reconfigure(get_config("tiny", "a4.8"))
    assert m.layers[1].attn.cfg.datapath == "a4.8" and m.layers[0].ffn.cfg.kv_cache_bits == 3
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    with pytest.raises(ValueError, match="dim"):
        m.reconfigure(get_config("tiny", "a4.8", dim=32, n_heads=2, n_kv_heads=1))
    with pytest.raises(ValueError, match="weight_format"):
        m.reconfigure(get_config("tiny", "fp16"))


def test_trained_trace_row_skip_never_exceeds_sparsity_for_a_batch(corpus, tmp_path):
    train_run(_cfg(), tmp_path, corpus, log=lambda m: None)
    df = build_trace(None, None, checkpoint=tmp_path / "a4.8-s0" / "final.pt", context=32, batch=4)
    proj = df[df.op.str.endswith("_proj")]
    assert (proj.row_skip <= proj.sparsity + 1e-9).all()          # the simulator's consistency rule
    up, gate = proj[proj.op == "up_proj"], proj[proj.op == "gate_proj"]
    assert (up.sparsity.to_numpy() > gate.sparsity.to_numpy()).all()  # gate-first: ReLU² zeros skip up


def test_training_tables_from_finished_runs(corpus, tmp_path, monkeypatch):
    for dp in ("b1.58", "a4.8"):
        train_run(_cfg(datapath=dp, steps=8), tmp_path / "runs", corpus, log=lambda m: None)
    ck = tmp_path / "ck"
    ck.mkdir()
    for dp in ("b1.58", "a4.8"):
        (ck / f"{dp}-s0.pt").write_bytes((tmp_path / "runs" / f"{dp}-s0" / "final.pt").read_bytes())
    written = write_training_tables([tmp_path / "runs"], ck, tmp_path / "out", command="test")
    names = {p.name for p in written}
    assert {"training_curves.csv", "training_summary.csv", "trained_profile.csv", "trained_table2.csv",
            "training_curves.png", "trained_sparsity.png"} <= names
    s = read_table(tmp_path / "out" / "training_summary.csv", "training_summary")
    assert s.set_index("run").loc["b1.58-s0", "rel_to_b158"] == 0.0
    t2 = read_table(tmp_path / "out" / "trained_table2.csv", "trained_table2").set_index("model")
    paper = t2[(t2.source == "paper") & (t2.datapath == "a4.8")].iloc[0]
    assert [paper[f"{g}_pct"] for g in ("qkv", "out", "up", "gate", "down", "overall")] == \
        [12.1, 50.0, 71.4, 12.0, 84.2, 44.5]
    trained = t2[(t2.source == "trained") & (t2.datapath == "a4.8")].iloc[0]
    assert trained.out_pct == 50.0 and trained.activated_params == pytest.approx(
        trained.total_params * (1 - trained.overall_pct / 100))
    p = read_table(tmp_path / "out" / "trained_profile.csv", "trained_profile")
    one = p[(p.run == "a4.8-s0") & (p.layer == -1)].set_index("proj")
    w = one.loc[["qkv", "out", "up", "gate", "down"], "params"]
    s_ = one.loc[["qkv", "out", "up", "gate", "down"], "sparsity"]
    assert one.loc["overall", "sparsity"] == pytest.approx(float((w * s_).sum() / w.sum()))

    # a failure while writing (here: the last figure) leaves no partial table set behind
    def fail(*args, **kw):
        raise RuntimeError("disk full")

    monkeypatch.setattr(training_report, "plot_sparsity", fail)
    before = {f.name: f.read_bytes() for f in (tmp_path / "out").iterdir()}
    for out, force in ((tmp_path / "out2", False), (tmp_path / "out", True)):
        with pytest.raises(RuntimeError, match="disk full"):
            write_training_tables([tmp_path / "runs"], ck, out, command="again", force=force)
    assert not (tmp_path / "out2").exists()
    assert {f.name: f.read_bytes() for f in (tmp_path / "out").iterdir()} == before
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]     # no staging folder left


def test_read_stream_joins_every_file_with_the_end_of_file_byte(tmp_path):
    (tmp_path / "b.py").write_bytes(b"yy")
    (tmp_path / "a.py").write_bytes(b"x\0x")       # a NUL inside a file is dropped
    (tmp_path / "c.txt").write_bytes(b"zz")
    assert bytes(mc.read_stream(tmp_path).tolist()) == b"xx\0yy\0"
    assert bytes(mc.read_stream(tmp_path, "*.txt").tolist()) == b"zz\0"
    with pytest.raises(ValueError, match="no"):
        mc.read_stream(tmp_path, "*.md")
