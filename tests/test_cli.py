"""The ``bitsim`` command line as a careless user meets it: clear one-line errors, no lost files."""
from pathlib import Path

import pytest

from bitsim.cli import error_line, main

ROOT = Path(__file__).resolve().parents[1]


def _run(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, err


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_report_with_a_bad_accelerator_leaves_the_output_folder_untouched(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("months of work")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nclock_ghz: -1\n")
    before = _snapshot(out)
    code, err = _run(capsys, "report", "-o", str(out), "--accelerator", f"a4.8={bad}", "--presets", "tiny", "-q")
    assert code == 2 and err.count("\n") == 1 and "error:" in err
    assert _snapshot(out) == before


def test_report_refuses_a_folder_it_did_not_write(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    (tmp_path / "notes.txt").write_text("keep me")
    code, err = _run(capsys, "report", "-o", str(tmp_path), "--presets", "tiny", "--contexts", "32",
                     "--prefill-tokens", "0", "--reference", "", "-q", "--force")
    assert code == 2 and "was not written by bitsim" in err
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_accelerator_key_naming_no_datapath_is_refused(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, err = _run(capsys, "report", "--accelerator", "a4.9=a4.8", "-q")
    assert code == 2 and "'a4.9' is not a datapath" in err


def test_measured_dir_pointing_nowhere_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, err = _run(capsys, "report", "--measured-dir", str(tmp_path / "nope"), "-o", str(tmp_path / "r"), "-q")
    assert code == 2 and "no such folder" in err
    assert not (tmp_path / "r").exists()


def test_out_of_range_study_values_are_named(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, err = _run(capsys, "report", "--contexts", str(10 ** 9), "-q")
    assert code == 2 and "contexts: 1000000000 is above the limit" in err
    code, err = _run(capsys, "report", "--batch", "100000", "-q")
    assert code == 2 and "batch: 100000 is above the limit" in err


def test_a_folder_given_as_a_sweep_spec_is_one_line(tmp_path, capsys):
    code, err = _run(capsys, "sweep", str(tmp_path), "-o", str(tmp_path / "r"))
    assert code == 2 and err.count("\n") == 1 and "is a folder" in err


def test_error_line_is_one_short_line():
    e = ValueError("bad\nvalue " + "x" * 5000)
    line = error_line("simulate", e)
    assert "\n" not in line and len(line) <= 400 + len("bitsim simulate: error: ")
    assert error_line("trace", IsADirectoryError(21, "Is a directory", "/tmp")) == \
        "bitsim trace: error: Is a directory: /tmp"


def test_an_earlier_report_is_replaced_only_with_force(tmp_path):
    from bitsim.cli.report import is_report_folder
    from contract import check_output_folder, publish_folder, temporary_sibling

    out = tmp_path / "r"
    out.mkdir()
    (out / "report.md").write_text("old")
    (out / "config.yaml").write_text("versions:\n  bitsim: 0.1.0\n")
    with pytest.raises(ValueError, match="pass --force"):
        check_output_folder(out, is_report_folder, force=False)
    check_output_folder(out, is_report_folder, force=True)
    new = temporary_sibling(out)
    (new / "report.md").write_text("new")
    publish_folder(new, out, is_report_folder)
    assert (out / "report.md").read_text() == "new" and not (out / "config.yaml").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]   # no temporary or old folder left


def test_check_output_refuses_inputs_and_existing_files(tmp_path):
    from contract import check_output

    t = tmp_path / "t.parquet"
    t.write_bytes(b"x")
    with pytest.raises(ValueError, match="also an input"):
        check_output(t, inputs=[t], force=True)
    with pytest.raises(ValueError, match="also an input"):
        check_output(tmp_path / "." / "t.parquet", inputs=[str(t)], force=True)
    with pytest.raises(ValueError, match="exists; pass --force"):
        check_output(t)
    with pytest.raises(ValueError, match="is a folder"):
        check_output(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        check_output(tmp_path / "no" / "x.parquet")
    assert check_output(tmp_path / "new.parquet") == tmp_path / "new.parquet"
