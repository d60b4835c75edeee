"""Every relative Markdown link of the hand-written docs, the README and reports/*.md resolves (file and anchor)."""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"```.*?```", re.S)


def heading_anchor(title: str) -> str:
    """GitHub's anchor of a heading: lower case, letters, digits, '-' and '_' kept, spaces to '-'."""
    kept = [c for c in title.strip().lower() if c in "-_ " or unicodedata.category(c)[0] in "LN"]
    return "".join(kept).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {heading_anchor(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, re.M)}


def broken_links(path: Path) -> list[str]:
    bad = []
    for m in LINK.finditer(FENCE.sub("", path.read_text())):
        target = m.group(1)
        if re.match(r"^[a-z]+:", target):        # http:, https:, mailto:
            continue
        file, _, frag = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            bad.append(f"missing {target}")
        elif frag and dest.suffix == ".md" and frag not in anchors(dest):
            bad.append(f"no anchor {target}")
    return bad


DOCS = sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "reports").glob("*.md")) + [ROOT / "README.md"]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path):
    assert broken_links(path) == []


def test_the_checker_finds_a_missing_file_and_a_missing_anchor(tmp_path):
    (tmp_path / "a.md").write_text("# Start here\n[ok](#start-here) [gone](b.md) [no](a.md#nowhere)\n")
    assert broken_links(tmp_path / "a.md") == ["missing b.md", "no anchor a.md#nowhere"]
