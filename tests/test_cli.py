"""The ``bitsim`` command line as a careless user meets it: clear one-line errors, no lost files."""
import os
import stat
from pathlib import Path

import pytest

import bitsim.cli.report as report_cli
from bitsim import __version__
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
    assert code == 2 and "contexts[0] = 1000000000 is outside" in err
    code, err = _run(capsys, "report", "--batch", "100000", "-q")
    assert code == 2 and "batch = 100000 is outside" in err


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
    from bitsim.cli.report import is_report_folder, mark_report_folder
    from contract import check_output_folder, publish_folder, temporary_sibling

    out = tmp_path / "r"
    out.mkdir()
    (out / "report.md").write_text("old")
    mark_report_folder(out)
    with pytest.raises(ValueError, match="pass --force"):
        check_output_folder(out, is_report_folder, force=False)
    check_output_folder(out, is_report_folder, force=True)
    new = temporary_sibling(out)
    (new / "report.md").write_text("new")
    publish_folder(new, out, is_report_folder)
    assert (out / "report.md").read_text() == "new" and not (out / ".bitsim-report").exists()
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


def test_version_names_the_package_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"bitsim {__version__}"


def test_report_force_keeps_a_folder_that_only_looks_like_a_report(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    mine = tmp_path / "mine"
    (mine / "data").mkdir(parents=True)
    (mine / "thesis.tex").write_text("months of work")
    (mine / "data" / "results.csv").write_text("a,b\n1,2\n")
    (mine / "report.md").write_text("# my report")
    (mine / "config.yaml").write_text("tool: bitsim\nversions:\n  bitsim: 0.1.0\n")
    before = _snapshot(mine)
    code, err = _run(capsys, "report", "-o", str(mine), "--force", "--presets", "tiny", "-q")
    assert code == 2 and "was not written by bitsim" in err
    assert _snapshot(mine) == before


def _fake_report(tables: dict[str, str], fail: bool = False):
    """A stand-in for make_report: writes ``tables`` under tables/, then fails if asked."""
    def make_report(cfg, out, progress=True, command=""):
        (out / "tables").mkdir()
        for name, text in tables.items():
            (out / "tables" / name).write_text(text)
        (out / "report.md").write_text(f"# {cfg.name}")
        if fail:
            raise OSError(28, "No space left on device", str(out / "figures"))
    return make_report


def _earlier_report(folder: Path) -> dict:
    folder.mkdir()
    (folder / "tables").mkdir()
    (folder / "tables" / "summary.csv").write_text("old")
    report_cli.mark_report_folder(folder)
    return _snapshot(folder)


def test_a_failing_report_force_leaves_the_earlier_report_whole(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(report_cli, "make_report", _fake_report({"summary.csv": "new", "ops.csv": "new"}, fail=True))
    out = tmp_path / "r"
    before = _earlier_report(out)
    code, err = _run(capsys, "report", "-o", str(out), "--force", "--presets", "tiny", "-q")
    assert code == 2 and "No space left on device" in err
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]      # no temporary or partial folder


def test_a_report_folder_behind_a_symbolic_link_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(report_cli, "make_report", _fake_report({"summary.csv": "new"}))
    target = tmp_path / "real"
    before = _earlier_report(target)
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    code, err = _run(capsys, "report", "-o", str(link), "--force", "--presets", "tiny", "-q")
    assert code == 2 and "is a symbolic link" in err
    assert _snapshot(target) == before and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


def test_a_published_report_folder_is_readable_by_others(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(report_cli, "make_report", _fake_report({"summary.csv": "new"}))
    old = os.umask(0o022)
    try:
        code, _ = _run(capsys, "report", "-o", str(tmp_path / "r"), "--presets", "tiny", "-q")
    finally:
        os.umask(old)
    assert code == 0
    assert stat.S_IMODE((tmp_path / "r").stat().st_mode) == 0o755
    assert report_cli.is_report_folder(tmp_path / "r")


def test_a_study_name_that_leaves_the_runs_folder_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("../../../escaped", "a/b", ".hidden", ""):
        code, err = _run(capsys, "report", "--name", name, "--presets", "tiny", "-q")
        assert code == 2 and "is not a plain folder name" in err, (name, err)
    assert list(tmp_path.iterdir()) == []


def test_report_outside_the_project_reads_the_committed_data(tmp_path, capsys, monkeypatch):
    seen = {}

    def make_report(cfg, out, progress=True, command=""):
        seen["data"] = cfg.measured_path
        (out / "report.md").write_text("x")

    monkeypatch.setattr(report_cli, "make_report", make_report)
    monkeypatch.chdir(tmp_path)
    code, err = _run(capsys, "report", "-o", "here", "--presets", "tiny", "-q")
    assert code == 0, err
    assert seen["data"] == ROOT / "reports" / "data" and (tmp_path / "here" / "report.md").is_file()
    (tmp_path / "mydata").mkdir()
    code, err = _run(capsys, "report", "-o", "there", "--measured-dir", "mydata", "--presets", "tiny", "-q")
    assert code == 0 and seen["data"] == tmp_path / "mydata"      # a typed path is the working folder's


TINY_SPEC = ("name: t\naccelerator:\n  base: a4.8\n  grid: {clock_ghz: [1.0]}\n"
             "workloads: {preset: tiny, datapath: a4.8, context: [32]}\n")


def test_sweep_never_overwrites_a_figure_without_force(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(TINY_SPEC)
    precious = tmp_path / "precious.png"
    precious.write_bytes(b"my figure")
    link = tmp_path / "link.png"
    link.symlink_to(precious)
    for target in (precious, link):
        code, err = _run(capsys, "sweep", str(spec), "-o", str(tmp_path / "p.parquet"), "--pareto", str(target), "-q")
        assert code == 2 and "exists; pass --force" in err
    assert precious.read_bytes() == b"my figure" and not (tmp_path / "p.parquet").exists()
    code, err = _run(capsys, "sweep", str(spec), "-o", str(tmp_path / "p.parquet"), "--pareto", str(link), "-q",
                     "--force")
    assert code == 0, err
    assert precious.read_bytes() == b"my figure"             # the link is replaced, not the file it points to
    assert not link.is_symlink() and link.read_bytes().startswith(b"\x89PNG")


def test_docs_graph_check_tells_a_stale_document_from_a_fresh_one(tmp_path, capsys):
    from bitsim.cli.layering import BEGIN, END

    doc = tmp_path / "architecture.md"
    doc.write_text(f"# A\n\n{BEGIN}\n| stale |\n{END}\n\nafter\n")
    code, _ = _run(capsys, "docs", "graph", "-o", str(doc), "--check")
    assert code == 1 and "| stale |" in doc.read_text()
    assert _run(capsys, "docs", "graph", "-o", str(doc))[0] == 0
    text = doc.read_text()
    assert text.startswith(f"# A\n\n{BEGIN}\n| layer |") and text.endswith(f"{END}\n\nafter\n")
    assert _run(capsys, "docs", "graph", "-o", str(doc), "--check")[0] == 0


def test_docs_tables_writes_the_registry_reference(tmp_path, capsys):
    from contract import reference_markdown

    out = tmp_path / "tables.md"
    assert _run(capsys, "docs", "tables", "-o", str(out))[0] == 0
    assert out.read_text() == reference_markdown().rstrip() + "\n"
    assert "## `study_summary`" in out.read_text()          # the application's tables are registered too


def test_only_the_chosen_subcommand_is_loaded():
    from bitsim.cli import chosen_command

    assert chosen_command(["report", "-o", "x"]) == "report"
    assert chosen_command(["-h", "report"]) is None and chosen_command(["--version"]) is None
    assert chosen_command([]) is None
