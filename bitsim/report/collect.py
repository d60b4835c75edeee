"""Collect everything a report shows, before anything is written (:func:`collect_report`).

One record, :class:`ReportData`, holds the study, the measured GPU data, the claims and every
table of the report's ``tables/`` folder with the registered schema it is written with; the
document (:mod:`bitsim.report.sections`) and the files (:mod:`bitsim.report.build`) are made from
it alone.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd

from bitsim.experiments.ladder import gain_ladder
from bitsim.experiments.study import DEFAULT_MATCHED, StudyConfig, StudyResult, run_study
from bitsim.report.claims import active_param_fraction, claims_table, ratio_table
from bitsim.report.display import (accelerator_table, headline_rows, headline_table, ladder_table, nearest_context,
                                   shown_measurements, speedup_table, validation_classes_table)
from bitsim.report.measured import ANCHORS_SOURCE, load_measured, speedups, validate_simulator
from model.trace import build_trace


class ReportLog:
    """Progress lines on stderr, ``report: <message> (<seconds>s)`` since the report began; silent when off."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.t0 = time.perf_counter()

    def __call__(self, message: str) -> None:
        if self.enabled:
            print(f"report: {message} ({time.perf_counter() - self.t0:.0f}s)", file=sys.stderr, flush=True)


@dataclass(frozen=True, kw_only=True)
class ReportTable:
    """One file under ``tables/``: its name (with the extension), the table, its registered schema, its metadata."""

    name: str
    df: pd.DataFrame
    schema: str
    meta: Mapping[str, Any] | None = None

    @property
    def stem(self) -> str:
        return self.name.rsplit(".", 1)[0]


@dataclass(frozen=True, kw_only=True)
class ReportData:
    """Everything one report shows: the study, the measured GPU data, the claims, and every table file."""

    study: StudyResult
    claims_preset: str                 # the model preset the claims, the roofline and the ladder are about
    measured: pd.DataFrame             # every measured row (+ the anchor timings), with its ``source``
    shown_speedups: pd.DataFrame       # measured_speedups rows of the kernels' own runs (shown_measurements)
    sim_calls: pd.DataFrame            # report_sim_vs_measured: every measured call replayed on its preset
    sim_classes: pd.DataFrame          # per kernel class: n, mape, max_abs_err, mean_err, within_bound
    gpus: list[str]                    # GPU names of the measured rows
    tables: Mapping[str, ReportTable]  # file stem -> file under tables/

    @property
    def config(self) -> StudyConfig:
        return self.study.config


def accelerator_names(cfg: StudyConfig) -> list[str]:
    """The study's accelerators: the matched ones, then the references, each once."""
    return list(dict.fromkeys(list(cfg.matched.values()) + list(cfg.reference)))


def claims_preset(cfg: StudyConfig) -> str:
    """The model preset the claims are judged on: 7b when the study has it (the claims are about 7B)."""
    return "7b" if "7b" in cfg.presets else cfg.presets[0]


def roofline_ops(res: StudyResult) -> pd.DataFrame:
    """Ops drawn on the roofline: every op of the claims preset (all contexts, both phases)."""
    return res.ops[res.ops.preset == claims_preset(res.config)]


def own_measurements(measured: pd.DataFrame) -> pd.DataFrame:
    """The measured rows of the kernels' own runs (the anchor timings left out)."""
    return measured[measured.source != ANCHORS_SOURCE] if len(measured) else measured


def extra_active(cfg: StudyConfig, preset: str, progress: ReportLog) -> dict[str, float]:
    """Active-parameter fraction of a4.8 under the paper's Table 2 statistics (one extra trace)."""
    if "a4.8" not in cfg.datapaths or cfg.profile == "paper-table2":
        return {}
    try:
        tr = build_trace(preset, "a4.8", phase="decode", context=min(cfg.contexts or (2048,)), batch=cfg.batch,
                         seed=cfg.seed, profile="paper-table2")
    except ValueError as e:  # no Table 2 row for this preset (e.g. tiny, 2b4t)
        progress(f"no paper-table2 profile for {preset}: {e}")
        return {}
    return {"a4.8, paper Table 2 statistics": active_param_fraction(tr)}


def study_ladder(cfg: StudyConfig, summary: pd.DataFrame, preset: str) -> pd.DataFrame:
    """The a4.8-over-b1.58 ladder (bitsim.experiments.ladder) at the decode context nearest 2k and the longest one.

    Run only when the study compares b1.58 and a4.8 on their default chips (the ladder's rungs are
    those presets); the study's own b1.58 and a4.8 rows are its first and last rungs.
    """
    if not {"b1.58", "a4.8"} <= set(cfg.datapaths) or not cfg.contexts or any(
            cfg.matched[d] != DEFAULT_MATCHED[d] for d in ("b1.58", "a4.8")):
        return pd.DataFrame()
    ctxs = sorted({nearest_context(cfg.contexts), max(cfg.contexts)})
    own = summary[(summary.preset == preset) & (summary.phase == "decode") & (summary.role == "matched")]
    known = {(r["datapath"], int(r["context"])): r for r in own.to_dict("records")}
    return gain_ladder(preset, ctxs, seed=cfg.seed, batch=cfg.batch, profile=cfg.profile, known=known)


def _tables(res: StudyResult, *, claims: pd.DataFrame, ratios: pd.DataFrame, ladder: pd.DataFrame,
            shown: pd.DataFrame, sim_calls: pd.DataFrame, sim_classes: pd.DataFrame,
            accelerators: list[str]) -> dict[str, ReportTable]:
    """Every file of ``tables/``; a table the report has nothing for (no ratios, no ladder, no
    measurements) is left out, and so is its place in the document."""
    files = [
        ReportTable(name="accelerators.csv", df=accelerator_table(accelerators), schema="report_accelerators"),
        ReportTable(name="claims.csv", df=claims, schema="report_claims"),
        ReportTable(name="summary.csv", df=headline_table(headline_rows(res.summary)), schema="report_summary"),
        ReportTable(name="summary_all.csv", df=headline_table(res.summary), schema="report_summary"),
        ReportTable(name="summary_full.csv", df=res.summary, schema="study_summary"),
        ReportTable(name="ceilings.csv", df=res.ceilings, schema="accelerator_ceilings"),
        ReportTable(name="ops.parquet", df=res.ops, schema="study_ops"),
        ReportTable(name="traces.parquet", df=res.traces, schema="study_traces",
                    meta={"note": "concatenated op traces of the study", "traces": res.trace_meta}),
        ReportTable(name="sim_vs_measured.csv", df=sim_calls, schema="report_sim_vs_measured"),
    ]
    if len(ratios):
        files.append(ReportTable(name="ratios.csv", df=ratios, schema="report_ratios"))
    if len(ladder):
        files.append(ReportTable(name="gain_ladder.csv", df=ladder_table(ladder), schema="report_gain_ladder"))
    if not shown.empty:
        files.append(ReportTable(name="measured_speedups.csv", df=speedup_table(shown),
                                 schema="report_measured_speedups"))
    if not sim_calls.empty:
        files.append(ReportTable(name="sim_validation.csv", df=validation_classes_table(sim_classes),
                                 schema="report_sim_validation"))
    return {t.stem: t for t in files}


def collect_report(cfg: StudyConfig, progress: ReportLog | None = None) -> ReportData:
    """Run the study of ``cfg``, read the measured GPU data, judge the claims and build every table."""
    progress = progress or ReportLog(enabled=False)
    res = run_study(cfg, progress=progress.enabled)
    progress("study done")
    measured = load_measured(cfg.measured_dir)
    spd = speedups(measured)
    sim_calls, sim_classes = validate_simulator(measured)
    progress(f"{len(measured)} measured kernel rows, {len(sim_calls)} replayed on h100-like / h100-triton")
    preset = claims_preset(cfg)
    claims = claims_table(res.summary, res.traces, spd, preset, extra_active=extra_active(cfg, preset, progress),
                          profile=cfg.profile, ops=res.ops)
    ladder = study_ladder(cfg, res.summary, preset)
    if len(ladder):
        progress("a4.8 gain ladder done")
    shown = shown_measurements(spd)
    tables = _tables(res, claims=claims, ratios=ratio_table(res.summary), ladder=ladder, shown=shown,
                     sim_calls=sim_calls, sim_classes=sim_classes, accelerators=accelerator_names(cfg))
    return ReportData(study=res, claims_preset=preset, measured=measured, shown_speedups=shown,
                      sim_calls=sim_calls, sim_classes=sim_classes,
                      gpus=sorted({str(g) for g in measured["gpu"].dropna()}) if len(measured) else [],
                      tables=tables)
