"""``bitsim train`` never overwrites an input and resumes only what it wrote;
a corrupt or wrong checkpoint is one clear error.  No training happens here (every check comes first)."""
from __future__ import annotations

import json
import tarfile

import pytest
import torch

from bitsim import cli as bitsim_cli
from model import corpus as mc
from model.checkpoint import load_checkpoint, save_inference_checkpoint
from model.config import get_config
from model.model import Transformer
from model.train import Exporter, TrainConfig, check_train_paths, run_plan, train_run
from model.training_report import write_training_tables


def _cfg(**kw) -> TrainConfig:
    base = dict(datapath="a4.8", model="tiny", seq_len=32, batch_size=8, steps=16, eval_sequences=8,
                final_eval_sequences=8, heldout_sequences=4, eval_batch=8, val_percent=20.0)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("c")
    for i in range(12):
        (root / f"m{i}.py").write_bytes(bytes(range(32, 127)) * 30)
    return mc.build_corpus(root, val_percent=20.0)


def _never(msg: str) -> None:   # a log that fails the test if training starts
    assert "step" not in msg or "resumed" in msg, msg


# ------------------------------------------------------------------ checkpoints
@pytest.fixture(scope="module")
def good_ck(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "good.pt"
    held = torch.randint(0, 96, (2, 9), generator=torch.Generator().manual_seed(0))
    save_inference_checkpoint(Transformer(get_config("tiny", "a4.8"), seed=1), path, heldout=held,
                              meta=dict(run="t", seed=0))
    return path


def _damaged(good_ck, tmp_path, change):
    obj = torch.load(good_ck, weights_only=True)
    change(obj)
    torch.save(obj, tmp_path / "bad.pt")
    return tmp_path / "bad.pt"


def _set_alpha_nan(o):
    next(iter(o["ternary"].values()))["alpha"] = torch.tensor(float("nan"))


def _set_heldout_out_of_range(o):
    o["heldout"] = torch.full((2, 9), 500, dtype=torch.int16)


@pytest.mark.parametrize("change, words", [
    (lambda o: o.pop("ternary"), "'ternary' is missing"),
    (lambda o: o.update(float=[1, 2]), "'float' is missing or not a dict"),
    (_set_alpha_nan, "alpha"),
    (lambda o: o["float"].update({"output.weight": torch.zeros(3, 3)}), "shape"),
    (lambda o: o["float"].update({"output.weight": torch.zeros(97, 64, dtype=torch.int32)}), "not a float tensor"),
    (lambda o: o.update(heldout=torch.zeros(2, 9)), "held-out"),
    (_set_heldout_out_of_range, "token ids"),
    (lambda o: o.update(config={**o["config"], "dim": -1}), "dim"),
    (lambda o: o.update(format="bitsim-train-state"), "training state"),
    (lambda o: o.update(format_version=99), "format version"),
])
def test_a_damaged_checkpoint_is_a_value_error_naming_the_file(good_ck, tmp_path, change, words):
    bad = _damaged(good_ck, tmp_path, change)
    with pytest.raises(ValueError, match=words) as e:
        load_checkpoint(bad)
    assert "bad.pt" in str(e.value)


def test_truncated_random_and_folder_checkpoints_are_value_errors(good_ck, tmp_path):
    data = good_ck.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "noise.pt").write_bytes(bytes(range(256)) * 10)
    for name in ("cut.pt", "noise.pt"):
        with pytest.raises(ValueError, match=f"{name}: not a readable checkpoint"):
            load_checkpoint(tmp_path / name)
    with pytest.raises(ValueError, match="folder"):
        load_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "none.pt")
    assert load_checkpoint(good_ck).config == get_config("tiny", "a4.8")


def test_cli_trace_of_a_corrupt_checkpoint_exits_2_with_one_line(tmp_path, capsys):
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    rc = bitsim_cli.main(["trace", "--checkpoint", str(tmp_path / "x.pt"), "-o", str(tmp_path / "t.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and "x.pt: not a readable checkpoint" in err and "Traceback" not in err


# ------------------------------------------------------------------ train: paths
def test_outputs_may_not_replace_the_plan_or_sit_inside_the_corpus(tmp_path):
    plan = tmp_path / "runs" / "plan.json"
    plan.parent.mkdir()
    plan.write_text("{}")
    with pytest.raises(ValueError, match="would replace the input"):
        check_train_paths([_cfg()], tmp_path / "runs", inputs=[plan])
    text = tmp_path / "text"
    text.mkdir()
    with pytest.raises(ValueError, match="inside the corpus folder"):
        check_train_paths([_cfg(corpus=str(text))], text / "runs")
    with pytest.raises(ValueError, match="inside the corpus folder"):
        check_train_paths([_cfg(corpus=str(text))], tmp_path / "runs", export_dir=text)
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        check_train_paths([_cfg()], tmp_path / "f")
    check_train_paths([_cfg(corpus=str(text))], tmp_path / "runs", tmp_path / "export", inputs=[plan.parent / "p.yaml"])


def test_cli_train_refuses_an_output_folder_that_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("keep")
    rc = bitsim_cli.main(["train", "run", "--datapaths", "b1.58", "--set", "model=tiny", "--out", str(tmp_path / "f")])
    assert rc == 2 and "is a file" in capsys.readouterr().err and (tmp_path / "f").read_text() == "keep"


# ------------------------------------------------------------------ train: resume only what it wrote
def test_a_corrupt_result_json_is_refused_and_kept(corpus, tmp_path):
    run = tmp_path / "a4.8-s0"
    run.mkdir()
    (run / "result.json").write_text('{"status": "do')
    with pytest.raises(ValueError, match="result.json: not a readable run result"):
        train_run(_cfg(), tmp_path, corpus, log=_never)
    assert (run / "result.json").read_text() == '{"status": "do'


def test_a_finished_run_without_its_final_checkpoint_is_refused(corpus, tmp_path):
    run = tmp_path / "a4.8-s0"
    run.mkdir()
    (run / "result.json").write_text(json.dumps(dict(status="done", config=_cfg().to_dict(), final={})))
    with pytest.raises(ValueError, match="final.pt is missing"):
        train_run(_cfg(), tmp_path, corpus, log=_never)


@pytest.mark.parametrize("content, words", [
    (b"garbage", "not a readable training state"),
    ("checkpoint", "not a bitsim-train-state file"),
    ("other-config", "another config"),
    ("bad-step", "outside"),
])
def test_a_corrupt_or_foreign_state_is_refused_and_kept(corpus, tmp_path, good_ck, content, words):
    run = tmp_path / "a4.8-s0"
    run.mkdir()
    state = run / "state.pt"
    if content == "checkpoint":
        state.write_bytes(good_ck.read_bytes())
    elif content in ("other-config", "bad-step"):
        cfg = _cfg(steps=99) if content == "other-config" else _cfg()
        torch.save(dict(format="bitsim-train-state", config=cfg.to_dict(), step=10 ** 6, model={}, optimizer={},
                        curve=[], train_s=0.0, loss_sum=0.0, loss_n=0,
                        corpus_sha256=[corpus.manifest["sha256_train"], corpus.manifest["sha256_val"]]), state)
    else:
        state.write_bytes(content)
    before = state.read_bytes()
    with pytest.raises(ValueError, match=words):
        train_run(_cfg(), tmp_path, corpus, log=_never)
    assert state.read_bytes() == before


def test_a_plan_json_of_another_plan_or_of_another_tool_is_refused_and_kept(corpus, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text('{"my": "notes"}')
    with pytest.raises(ValueError, match="not a training plan"):
        run_plan([_cfg()], tmp_path, fit_seconds=10, log=_never)
    assert plan.read_text() == '{"my": "notes"}'
    plan.write_text(json.dumps(dict(fit=dict(steps=20), runs=[_cfg(datapath="b1.58", steps=20).to_dict()])))
    before = plan.read_text()
    with pytest.raises(ValueError, match="fitted for another set of runs"):
        run_plan([_cfg()], tmp_path, fit_seconds=10, log=_never)
    assert plan.read_text() == before


def test_the_exporter_refuses_a_foreign_results_file_or_tar(tmp_path):
    (tmp_path / "results.json").write_text('[1, 2]')
    with pytest.raises(ValueError, match="not a results file written by bitsim train"):
        Exporter(tmp_path)
    (tmp_path / "results.json").write_text('{"a": {"name": "a", "config": {}}}')
    (tmp_path / "checkpoints-0.tar").write_text("not a tar")
    with pytest.raises(ValueError, match="not a tar file"):
        Exporter(tmp_path)
    (tmp_path / "checkpoints-0.tar").unlink()
    assert Exporter(tmp_path).results == {"a": {"name": "a", "config": {}}}


# ------------------------------------------------------------------ train tables
def test_training_tables_refuse_existing_outputs_without_force_and_outputs_that_are_inputs(tmp_path, capsys):
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "a.pt").write_bytes(b"x")
    out = tmp_path / "out"
    out.mkdir()
    (out / "training_summary.csv").write_text("mine")
    res = tmp_path / "results.json"
    res.write_text("{}")
    with pytest.raises(ValueError, match="exists; pass --force"):
        write_training_tables([res], ck, out)
    with pytest.raises(ValueError, match="also an input"):
        write_training_tables([out / "training_summary.csv"], ck, out, force=True)
    assert (out / "training_summary.csv").read_text() == "mine"
    rc = bitsim_cli.main(["train", "tables", "--results", str(res), "--checkpoints", str(ck), "-o", str(out)])
    assert rc == 2 and "--force" in capsys.readouterr().err


def test_the_exporter_adds_each_finished_run_to_its_tars_once(tmp_path):
    run = tmp_path / "runs" / "a4.8-s0"
    run.mkdir(parents=True)
    (run / "final.pt").write_bytes(b"ck")
    res = dict(name="a4.8-s0", config=dict(datapath="a4.8"), status="done")
    for _ in range(3):                 # a plan run again reports its done runs again
        Exporter(tmp_path / "x")(res, run)
    with tarfile.open(tmp_path / "x" / "checkpoints-0.tar") as t:
        assert t.getnames() == ["a4.8-s0.pt"]
    assert json.loads((tmp_path / "x" / "results.json").read_text()) == {"a4.8-s0": res}
