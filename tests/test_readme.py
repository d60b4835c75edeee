"""The README's Python example runs as written and prints the a4.8 row of the README's own table."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_example(text: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1, "the README has exactly one Python example"
    return blocks[0]


def a48_table_value(text: str) -> float:
    """The decode-2k tokens/s of the a4.8 row of the README's study table."""
    row = next(line for line in text.splitlines() if line.startswith("| a4.8 ") and "on `a4.8`" in line)
    return float(row.split("|")[2].replace(",", ""))


def test_readme_python_example_reproduces_the_a48_row_of_its_table():
    text = README.read_text()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(python_example(text), "README.md", "exec"), {})   # our own README, not untrusted input
    assert float(out.getvalue().strip()) == a48_table_value(text)
