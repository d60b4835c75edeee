"""A small report document (sections of text, tables, figures) rendered to
Markdown and to one self-contained HTML file (figures embedded as base64).

Kept separate from what the report *says* (:mod:`bitsim.report.build`) so any
study can reuse it.  Text blocks understand only ``**bold**``, ``*italic*``
and ```code``` inline marks, and lines starting with ``- `` as a list.

The HTML travels alone: figures are embedded (click one for its full size), and every CSV link
carries the table itself (a ``data:`` download) up to :data:`EMBED_CSV_BYTES`; a larger table, and
the SVG / PDF of each figure, are links to the files beside ``report.html``, labelled as such.
"""
from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass(kw_only=True)
class Table:
    """A table block: ``name`` is the file stem of its CSV (``tables/<name>.csv``) that the Markdown links to."""

    name: str
    df: pd.DataFrame
    caption: str = ""
    floatfmt: str = "{:.3g}"       # for floats below 1000 (see _fmt)


@dataclass
class Figure:
    name: str              # file stem of figures/<name>.png|svg
    caption: str = ""


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)   # str | Table | Figure

    def text(self, s: str) -> "Section":
        self.blocks.append(s)
        return self

    def table(self, t: Table) -> "Section":
        self.blocks.append(t)
        return self

    def figure(self, f: Figure) -> "Section":
        self.blocks.append(f)
        return self


@dataclass
class Document:
    title: str
    sections: list[Section] = field(default_factory=list)

    def section(self, title: str) -> Section:
        s = Section(title)
        self.sections.append(s)
        return s


def _fmt(v, floatfmt: str) -> str:
    """Floats: ``floatfmt`` below 1000, whole numbers up to 1e7 without exponent (1638, not 1.64e+03)."""
    if isinstance(v, float):
        if v != v:  # NaN
            return ""
        if 1000 <= abs(v) < 1e7:
            return f"{v:.0f}"
        return floatfmt.format(v)
    return str(v)


def table_markdown(t: Table) -> str:
    """Pipe table; ``|`` inside cells escaped."""
    df = t.df
    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(_fmt(v, t.floatfmt).replace("|", "\\|") for v in r) + " |"
            for r in df.itertuples(index=False)]
    return "\n".join([head, sep, *rows])


#: ``{fig:<name>}`` in a text block links to the figure ``<name>`` (Markdown: its PNG; HTML: its place on the page).
FIG_REF = re.compile(r"\{fig:([A-Za-z0-9_]+)\}")
#: ``{csv:<name>}`` in a text block links to the attached table ``tables/<name>.csv``.
CSV_REF = re.compile(r"\{csv:([A-Za-z0-9_.]+)\}")


def _refs_markdown(s: str) -> str:
    s = FIG_REF.sub(lambda m: f"[figure: {m.group(1)}](figures/{m.group(1)}.png)", s)
    return CSV_REF.sub(lambda m: f"[{m.group(1)}.csv](tables/{m.group(1)}.csv)", s)


#: Largest CSV embedded in the HTML as a download; a larger one is a link to ``tables/`` beside the page.
EMBED_CSV_BYTES = 1_000_000


def _csv_link(name: str, tables_dir: Path | None) -> str:
    """A link to ``tables/<name>.csv`` that works when the HTML travels alone (the file embedded), or says
    where the file lives."""
    f = Path(tables_dir) / f"{name}.csv" if tables_dir is not None else None
    if f is not None and f.is_file() and f.stat().st_size <= EMBED_CSV_BYTES:
        data = base64.b64encode(f.read_bytes()).decode("ascii")
        return f"<a download='{name}.csv' href='data:text/csv;base64,{data}'>{name}.csv</a>"
    return f"<a href='tables/{name}.csv' title='a file beside report.html'>{name}.csv</a> (in tables/)"


def _inline_html(s: str, tables_dir: Path | None = None) -> str:
    s = html.escape(s)
    s = FIG_REF.sub(lambda m: f"<a href='#fig-{m.group(1)}'>figure: {m.group(1)}</a>", s)
    s = CSV_REF.sub(lambda m: _csv_link(m.group(1), tables_dir), s)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    s = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", s)
    s = re.sub(r"(?<![*\w])\*([^*]+)\*(?![*\w])", r"<i>\1</i>", s)
    return s


def _text_html(s: str, tables_dir: Path | None = None) -> str:
    out, items = [], []
    for line in s.strip().splitlines():
        if line.startswith("- "):
            items.append(f"<li>{_inline_html(line[2:], tables_dir)}</li>")
            continue
        if items:
            out.append("<ul>" + "".join(items) + "</ul>")
            items = []
        if line.strip():
            out.append(f"<p>{_inline_html(line, tables_dir)}</p>")
    if items:
        out.append("<ul>" + "".join(items) + "</ul>")
    return "\n".join(out)


def _table_html(t: Table, tables_dir: Path | None = None) -> str:
    df = t.df
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v, t.floatfmt))}</td>" for v in r) + "</tr>"
                   for r in df.itertuples(index=False))
    link = f" ({_csv_link(t.name, tables_dir)})" if tables_dir is not None else ""
    cap = f"<caption>{_inline_html(t.caption)}{link}</caption>" if t.caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def render_markdown(doc: Document, header: str = "") -> str:
    """Markdown with figures linked as ``figures/<name>.png`` and tables inline."""
    lines = [f"# {doc.title}", ""]
    if header:
        lines += [header, ""]
    lines += ["Contents: " + " · ".join(f"[{s.title}](#{_anchor(s.title)})" for s in doc.sections), ""]
    for s in doc.sections:
        lines += [f"## {s.title}", ""]
        for b in s.blocks:
            if isinstance(b, str):
                lines += [_refs_markdown(b.strip()), ""]
            elif isinstance(b, Table):
                if b.caption:
                    lines += [f"*{b.caption}* ([CSV](tables/{b.name}.csv))", ""]
                lines += [table_markdown(b), ""]
            elif isinstance(b, Figure):
                lines += [f"![{b.name}](figures/{b.name}.png)", "",
                          f"*{_refs_markdown(b.caption)}* ([SVG](figures/{b.name}.svg), "
                          f"[PDF](figures/{b.name}.pdf))", ""]
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #ddd}h2{border-bottom:1px solid #eee;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:0.85em}caption{text-align:left;font-style:italic;
padding:0.3em 0}th,td{border:1px solid #ccc;padding:0.25em 0.5em;text-align:left;vertical-align:top}
th{background:#f4f4f4}tr:nth-child(even) td{background:#fafafa}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #eee;cursor:zoom-in}
figure img.full{max-width:none;cursor:zoom-out}figcaption{font-style:italic;font-size:0.9em}
figcaption .files{font-style:normal;font-size:0.85em;color:#555}
code{background:#f4f4f4;padding:0 0.2em}nav{font-size:0.9em}
"""

#: Clicking a figure toggles it between the page width and its full size.
_ZOOM = "this.classList.toggle('full')"


def _figure_html(f: Figure, figures_dir: Path) -> str:
    """The figure's PNG embedded (click: full size), its caption, and links to its SVG and PDF beside the page."""
    png = Path(figures_dir) / f"{f.name}.png"
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    others = [ext for ext in ("svg", "pdf") if (Path(figures_dir) / f"{f.name}.{ext}").is_file()]
    files = (" <span class='files'>[" + " · ".join(f"<a href='figures/{f.name}.{ext}'>{ext.upper()}</a>"
                                                    for ext in others)
             + " in figures/ beside report.html]</span>") if others else ""
    return (f"<figure id='fig-{f.name}'><img alt='{html.escape(f.name)}' title='click for full size' "
            f"onclick=\"{_ZOOM}\" src='data:image/png;base64,{data}'>"
            f"<figcaption>{_inline_html(f.caption)}{files}</figcaption></figure>")


def render_html(doc: Document, figures_dir: Path, header: str = "", tables_dir: Path | None = None) -> str:
    """One self-contained HTML page: PNG figures from ``figures_dir`` embedded as base64, CSV links carrying
    the tables of ``tables_dir`` (see the module docstring)."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(doc.title)}</title>",
             f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(doc.title)}</h1>"]
    if header:
        parts.append(_text_html(header, tables_dir))
    parts.append("<nav>" + " · ".join(f"<a href='#{_anchor(s.title)}'>{html.escape(s.title)}</a>"
                                      for s in doc.sections) + "</nav>")
    for s in doc.sections:
        parts.append(f"<h2 id='{_anchor(s.title)}'>{html.escape(s.title)}</h2>")
        for b in s.blocks:
            if isinstance(b, str):
                parts.append(_text_html(b, tables_dir))
            elif isinstance(b, Table):
                parts.append(_table_html(b, tables_dir))
            elif isinstance(b, Figure):
                parts.append(_figure_html(b, figures_dir))
    parts.append("</body></html>")
    return "\n".join(parts)
