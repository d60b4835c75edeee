"""The repository speaks of the project alone: no issue numbers in code, no paths of a development machine."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXT = re.compile(r"\.(py|md|ya?ml|toml|cfg|txt)$|(^|/)Makefile$")
GENERATED = ("reports/latest/", "reports/runs/", "reports/data/")
ISSUE_REF = re.compile(r"\bissues? ?#?\d+\b", re.I)   # the word issue followed by a number
MACHINE_PATH = re.compile(r"(?<![\w.])/(work|root|home)/")


def tracked_text_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("not a git checkout")
    names = [n for n in out.stdout.splitlines() if TEXT.search(n) and not n.startswith(GENERATED)]
    return [ROOT / n for n in names if (ROOT / n).is_file()]


def offending_lines(path: Path, root: Path = ROOT) -> list[str]:
    bad = []
    for no, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if "github.com" in line:        # a public issue tracker cited as a source
            continue
        if (path.suffix == ".py" and ISSUE_REF.search(line)) or MACHINE_PATH.search(line):
            bad.append(f"{path.relative_to(root)}:{no}: {line.strip()[:100]}")
    return bad


def test_no_issue_numbers_in_code_and_no_development_machine_paths():
    bad = [b for p in tracked_text_files() for b in offending_lines(p)]
    assert bad == []


def test_the_check_catches_an_issue_number_and_a_machine_path(tmp_path):
    f = tmp_path / "m.py"
    machine_path = "/" + "/".join(("home", "someone", "data"))     # built, so this file names no such path
    f.write_text(f"x = 1  # see issue 12\npath = '{machine_path}'\nurl = 'https://github.com/o/r/issues/3'\n")
    assert [b.split(":")[1] for b in offending_lines(f, tmp_path)] == ["1", "2"]
