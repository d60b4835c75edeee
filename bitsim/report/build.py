"""``bitsim report``: collect the report's data, then write the report folder.

One run writes, under its output folder::

    report.md, report.html     the report (HTML is self-contained: figures and tables up to 1 MB embedded)
    config.yaml                the study it ran, the command line and every version
    figures/<name>.png|svg|pdf every figure (:data:`FIGURES`)
    tables/<name>.csv          every table of the report (+ ops.parquet, traces.parquet), each written
                               through contract.write_table against its registered schema

:func:`make_report` = :func:`bitsim.report.collect.collect_report` (study, measured GPU data,
claims, every table) then :func:`write_report`.  What is compared:
:mod:`bitsim.experiments.study`; the claims: :mod:`bitsim.report.claims`; measured GPU data:
:mod:`bitsim.report.measured`; what the report says: :mod:`bitsim.report.sections`; drawing:
:mod:`bitsim.report.figures`; Markdown/HTML: :mod:`bitsim.report.document`.
"""
from __future__ import annotations

import datetime as _dt
import importlib.metadata as md
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import yaml

import sim
from bitsim import __version__
from bitsim.experiments.study import StudyConfig
from bitsim.report import figures
from bitsim.report.claims import CLAIMS
from bitsim.report.collect import (
    ReportData,
    ReportLog,
    collect_report,
    latest_run,
    own_measurements,
    roofline_ops,
)
from bitsim.report.display import shown_measurements
from bitsim.report.document import Figure, render_html, render_markdown
from bitsim.report.sections import build_document
from contract import SCHEMAS, write_table
from sim.validation import gpu_presets

__all__ = ["FIGURES", "make_report", "roofline_ops", "shown_measurements", "versions", "write_report"]

def _preset_roofs(data: ReportData) -> dict:
    """Per measuring run, the simulator preset of its GPU as roofs (name, bandwidth, peak TOP/s per precision)."""
    out = {}
    m = own_measurements(data.measured)
    for src, g in (m.groupby("source") if len(m) else []):
        pair = gpu_presets(str(g.gpu.iloc[0]))
        if pair is None:
            continue
        acc = sim.load_accelerator(pair[0])
        clock = acc.clock_ghz * 1e9
        peaks = {}
        for a in acc.arrays:
            for p in a.pe_ops:
                if p.weights == p.acts:
                    peaks[p.acts] = 2.0 * acc.peak_macs_per_cycle(p.weights, p.acts) * clock / 1e12
        bw = getattr(acc.offchip, "sustained_gbps", acc.offchip.bandwidth_gbps)
        out[src] = {"name": acc.name, "bandwidth_gbps": bw, "peaks": peaks}
    return out


def _claimed() -> dict[str, float]:
    return {"speed a4.8/b1.58": CLAIMS["speedup_vs_b158"].value, "speed a4.8/fp16": CLAIMS["speedup_vs_fp16"].value}


def _axis(data: ReportData, name: str):
    return data.axes.get(name)


#: figure name (figures/<name>.png|svg) -> how it is drawn from the report's data; a report draws the figures
#: its document shows (a section the study has nothing for is left out, and so is its figure).
FIGURES: dict[str, Callable[[ReportData], Any]] = {
    "energy_by_component": lambda d: figures.energy_by_component(d.study.summary, note=d.note()),
    "throughput": lambda d: figures.throughput(d.study.summary, note=d.note(energy=False)),
    "footprint": lambda d: figures.footprint(d.study.summary, note=d.note(energy=False)),
    "step_bytes": lambda d: figures.step_bytes(_claims_rows(d), _axis(d, "crossovers"),
                                               note=d.note([d.claims_preset], energy=False)),
    "gain_ladder": lambda d: figures.gain_ladder(_axis(d, "ladder"), note=d.note([d.claims_preset], energy=False)),
    "batch_sweep": lambda d: figures.batch_sweep(_axis(d, "batch"), note=d.note([d.claims_preset], energy=False)),
    "bandwidth_sweep": lambda d: figures.bandwidth_sweep(_axis(d, "bandwidth"), _axis(d, "technology"),
                                                         note=d.note([d.claims_preset])),
    "comparison_bases": lambda d: figures.comparison_bases(_axis(d, "bases"), note=d.note([d.claims_preset])),
    "sensitivity_bands": lambda d: figures.sensitivity_bands(_axis(d, "sensitivity"), _claimed(),
                                                             note=d.note([d.claims_preset])),
    "roofline": lambda d: figures.roofline(roofline_ops(d.study), d.study.ceilings,
                                           title=f"Roofline: {d.claims_preset}, every op",
                                           note=d.note([d.claims_preset], energy=False)),
    "sparsity_bits": lambda d: figures.sparsity_and_bits(d.study.traces, d.claims_preset,
                                                         note=d.note([d.claims_preset], energy=False)),
    "measured_speedups": lambda d: figures.measured_speedups(d.shown_speedups, run=latest_run(d.measured)),
    "measured_roofline": lambda d: figures.measured_roofline(own_measurements(d.measured), _preset_roofs(d)),
    "sim_vs_measured": lambda d: figures.sim_vs_measured(d.sim_calls),
}


def _claims_rows(data: ReportData) -> pd.DataFrame:
    s = data.study.summary
    return s[s.preset == data.claims_preset]


def versions() -> dict[str, str]:
    """Versions of Python, the libraries that shape the numbers, and the git commit."""
    out = {"bitsim": __version__, "python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("numpy", "pandas", "torch", "simpy", "matplotlib", "pyarrow"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    out["git_commit"] = git_description(Path(__file__).resolve().parent.parent)
    return out


def git_description(root: Path) -> str:
    """'commit 1a2b3c4d5e6f' for a clean tree, 'commit 1a2b3c4d5e6f plus uncommitted changes to 3 tracked
    files' otherwise (untracked files, such as report outputs, do not count); 'unknown' outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                 capture_output=True, text=True, timeout=5).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not sha:
        return "unknown"
    n = len(changed)
    return f"commit {sha}" + (f" plus uncommitted changes to {n} tracked file{'s' if n > 1 else ''}" if n else "")


def write_report(data: ReportData, out_dir: str | Path, command: str | None = None,
                 progress: ReportLog | None = None) -> Path:
    """Write the report folder ``out_dir`` from collected ``data``; returns it.

    ``out_dir`` must be absent or empty: nothing is ever deleted here (``bitsim report`` writes into a
    fresh folder beside its output and renames it into place).
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"report folder {out} exists and is not empty; write to a new folder")
    progress = progress or ReportLog(enabled=False)
    doc = build_document(data)
    drawn = {b.name for s in doc.sections for b in s.blocks if isinstance(b, Figure)}
    unknown = drawn - set(FIGURES)
    if unknown:
        raise ValueError(f"the document shows figures nobody draws: {sorted(unknown)}")
    unregistered = {t.name: t.schema for t in data.tables.values() if t.schema not in SCHEMAS}
    if unregistered:
        raise ValueError(f"tables written against unregistered schemas: {unregistered}")

    fdir, tdir = out / "figures", out / "tables"
    fdir.mkdir(parents=True)
    tdir.mkdir()
    for name in sorted(drawn):
        figures.save(FIGURES[name](data), fdir, name)
    progress("figures done")
    for t in data.tables.values():
        write_table(t.df, tdir / t.name, t.schema, meta=t.meta)

    res = data.study
    meta: dict[str, Any] = {"study": data.config.as_dict(), "command": command or " ".join(sys.argv),
                            "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                            "versions": versions(), "study_seconds": round(res.seconds, 1),
                            "traces": res.trace_meta}
    (out / "config.yaml").write_text(yaml.safe_dump(meta, sort_keys=False, width=120))
    v = meta["versions"]
    header = (f"Generated {meta['created_utc']} from {v['git_commit']} by `{meta['command']}` - bitsim "
              f"{v['bitsim']}, torch {v['torch']}, numpy {v['numpy']}, pandas {v['pandas']}. "
              f"Full configuration: `config.yaml`.")
    (out / "report.md").write_text(render_markdown(doc, header))
    (out / "report.html").write_text(render_html(doc, fdir, header, tables_dir=tdir))
    progress(f"wrote {out}")
    return out


def make_report(cfg: StudyConfig, out_dir: str | Path, progress: bool = True,
                command: str | None = None) -> Path:
    """Run the study of ``cfg`` and write the report folder ``out_dir``; returns it."""
    log = ReportLog(enabled=progress)
    return write_report(collect_report(cfg, log), out_dir, command=command, progress=log)
