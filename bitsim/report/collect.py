"""Collect everything a report shows, before anything is written (:func:`collect_report`).

One record, :class:`ReportData`, holds the study (its comparisons, axes and sensitivity bands), the
measured GPU data, the claims and every table of the report's ``tables/`` folder with the
registered schema it is written with; the document (:mod:`bitsim.report.sections`) and the files
(:mod:`bitsim.report.build`) are made from it alone.
"""
from __future__ import annotations

import dataclasses
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

import sim
from bitsim.experiments.fair import profile_label
from bitsim.experiments.study import AXIS_SCHEMAS, StudyConfig, StudyResult, accelerator_ceilings, run_study
from bitsim.report.claims import active_param_fraction, claims_table, ratio_table, short_claims
from bitsim.report.display import (
    accelerator_table,
    headline_rows,
    headline_table,
    ladder_table,
    shown_measurements,
    speedup_table,
    validation_classes_table,
    variants_table,
)
from bitsim.report.measured import ANCHORS_SOURCE, load_measured, speedups, validate_simulator
from bitsim.report.validation import published_rows, whole_token_rows
from contract import read_table
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
    claims_preset: str                 # the model preset the claims, the roofline and the axes are about
    measured: pd.DataFrame             # every measured row (+ the anchor timings), with its ``source``
    shown_speedups: pd.DataFrame       # measured_speedups rows of the kernels' own runs (shown_measurements)
    sim_calls: pd.DataFrame            # report_sim_vs_measured: every measured call replayed on its preset
    sim_classes: pd.DataFrame          # per kernel class: n, mape, max_abs_err, mean_err, within_bound
    gpus: list[str]                    # GPU names of the measured rows
    board: pd.DataFrame                # measured board energy (board_energy rows; empty when none is committed)
    tables: Mapping[str, ReportTable]  # file stem -> file under tables/
    serving: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)   # serving runs (load_serving)

    def table_df(self, stem: str) -> pd.DataFrame:
        """The frame of ``tables/<stem>``, or an empty frame when the report has no such table."""
        return self.tables[stem].df if stem in self.tables else pd.DataFrame()

    @property
    def config(self) -> StudyConfig:
        return self.study.config

    @property
    def axes(self) -> Mapping[str, pd.DataFrame]:
        return self.study.axes

    @property
    def profile(self) -> str:
        """The claims preset's comparison profile."""
        return self.study.plan.comparisons[self.claims_preset].profile

    def profile_note(self, presets: list[str] | None = None) -> str:
        """'profile: 7b paper Table 2 sparsity; 2b4t random-weight statistics'."""
        presets = presets or list(self.study.plan.comparisons)
        return "profile: " + "; ".join(f"{p} {profile_label(self.study.plan.comparisons[p].profile)}"
                                       for p in presets)

    @property
    def energy_note(self) -> str:
        """The energy basis of the simulated comparisons and of the GPU reference."""
        gpu = ("GPU reference dropped from energy comparisons: its preset counts dynamic energy only"
               + ("; the measured board energy is another basis, listed apart" if len(self.board) else
                  "; no measured board energy committed"))
        return f"energy: chip model, dynamic + static; {gpu}"

    def note(self, presets: list[str] | None = None, energy: bool = True) -> str:
        """The line every simulated figure carries: its profile(s) and its energy basis."""
        return self.profile_note(presets) + (" · " + self.energy_note if energy else
                                             " · energy: none shown (speed only)")


def accelerator_names(cfg: StudyConfig) -> list[str]:
    """The study's accelerators: the matched ones, then the references, each once."""
    return list(dict.fromkeys(list(cfg.matched.values()) + list(cfg.reference)))


def accelerator_labels(cfg: StudyConfig, progress: ReportLog | None = None) -> dict[str, str]:
    """Accelerator key -> the name the report shows, for every YAML whose ``name`` is a preset's or another
    chip's: 'a4.8 (my.yaml)', so a custom design is never mistaken for the preset it copied (warned once)."""
    names = {key: sim.load_accelerator(key).name for key in accelerator_names(cfg)}
    out = {}
    for key, name in names.items():
        taken = name in sim.PRESETS and key != name or sum(n == name for n in names.values()) > 1
        if taken and key not in sim.PRESETS:
            out[key] = f"{name} ({Path(key).name})"
            msg = f"accelerator {key} is named {name!r}, a name already taken; the report calls it {out[key]!r}"
            warnings.warn(msg, stacklevel=2)
            if progress is not None:
                progress(msg)
    return out


def relabel_accelerators(df: pd.DataFrame, labels: Mapping[str, str]) -> pd.DataFrame:
    """``df`` with the ``accelerator`` of every row whose ``accelerator_key`` is relabelled replaced (in place)."""
    if labels and {"accelerator", "accelerator_key"} <= set(df.columns):
        for key, label in labels.items():
            df.loc[df.accelerator_key.astype(str) == key, "accelerator"] = label
    return df


def roofline_ops(res: StudyResult) -> pd.DataFrame:
    """Ops drawn on the roofline: every op of the claims preset (all contexts, both phases)."""
    return res.ops[res.ops.preset == res.plan.claims_preset]


def own_measurements(measured: pd.DataFrame) -> pd.DataFrame:
    """The measured rows of the kernels' own runs (the anchor timings left out)."""
    return measured[measured.source != ANCHORS_SOURCE] if len(measured) else measured


def latest_run(measured: pd.DataFrame) -> str | None:
    """The measuring run (``source``) of the kernels' own runs with the newest ``date``; None when there is none."""
    own = own_measurements(measured)
    if not len(own):
        return None
    dates = own.groupby("source")["date"].max().astype(str) if "date" in own.columns else None
    return str(dates.sort_values().index[-1]) if dates is not None and len(dates) else str(own.source.iloc[-1])


def load_board_energy(data_dir: str | Path) -> pd.DataFrame:
    """Measured board energy of sustained runs (``*board_energy*.parquet|csv`` under ``data_dir``), or empty.

    Only a whole-model decode token (scope ``7b_token``) is comparable with a simulated token; block
    rows are kept in the file but not used as a model's energy.
    """
    files = sorted(Path(data_dir).glob("*board_energy*.parquet")) if Path(data_dir).is_dir() else []
    stems = {f.stem for f in files}
    files += [f for f in sorted(Path(data_dir).glob("*board_energy*.csv")) if f.stem not in stems] \
        if Path(data_dir).is_dir() else []
    frames = [read_table(f, "board_energy").assign(file=f.name) for f in files]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


#: Where ``bitsim serve`` runs are looked for: ``reports/serving/<run>/summary.csv``, beside ``reports/data``.
SERVING_DIR = "serving"


def load_serving(folder: str | Path) -> pd.DataFrame:
    """Every serving run's summary (``<folder>/**/summary.csv`` of schema ``serving_summary``), tagged with its
    ``run`` (the folder, relative to ``folder``); empty when there is none."""
    folder = Path(folder)
    frames = []
    for f in sorted(folder.glob("**/summary.csv")) if folder.is_dir() else []:
        df = read_table(f)
        if df.attrs.get("schema") == "serving_summary":
            frames.append(df.assign(run=str(f.parent.relative_to(folder))))
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    out.attrs = {}
    return out


TRAINED_TABLE2 = "trained_table2.csv"


def load_trained_table2(data_dir: str | Path) -> pd.DataFrame:
    """The training study's Table-2 layout (``trained_table2.csv``: paper, random and trained rows), or empty."""
    f = Path(data_dir) / TRAINED_TABLE2
    return read_table(f, "trained_table2") if f.is_file() else pd.DataFrame()


def trained_active(t2: pd.DataFrame) -> dict[str, float]:
    """Active-parameter fraction of each trained a4.8 model of the training study (label -> fraction)."""
    if t2.empty:
        return {}
    t = t2[(t2.source == "trained") & (t2.datapath == "a4.8")]
    return {f"a4.8 trained ({r.preset}: {r.total_params / 1e6:.1f} M parameters, not 7B; seed {int(r.seed)}), "
            f"held-out text": float(r.activated_params / r.total_params) for r in t.itertuples()}


def extra_active(res: StudyResult, preset: str, progress: ReportLog) -> dict[str, float]:
    """Active-parameter fraction of a4.8 under the paper's Table 2 statistics when the comparison's own
    profile is random weights (one extra trace); nothing when the comparison already uses Table 2 or a
    trained profile."""
    cfg, comp = res.config, res.plan.comparisons[preset]
    if "a4.8" not in comp.variants or comp.profile != "measured":
        return {}
    try:
        tr = build_trace(preset, "a4.8", phase="decode", context=min(cfg.contexts or (2048,)), batch=cfg.batch,
                         seed=cfg.seed, profile="paper-table2")
    except ValueError as e:  # no Table 2 row for this preset (e.g. tiny, 2b4t)
        progress(f"no paper-table2 profile for {preset}: {e}")
        return {}
    return {"a4.8, paper Table 2 statistics": active_param_fraction(tr)}


def _tables(data: dict[str, Any]) -> dict[str, ReportTable]:
    """Every file of ``tables/``; a table the report has nothing for (no ratios, no ladder, no
    measurements) is left out, and so is its place in the document."""
    res: StudyResult = data["res"]
    files = [
        ReportTable(name="accelerators.csv", df=accelerator_table(data["accelerators"], data["labels"]),
                    schema="report_accelerators"),
        ReportTable(name="variants.csv", df=variants_table(res.plan), schema="report_variants"),
        ReportTable(name="claims.csv", df=data["claims"], schema="report_claims"),
        ReportTable(name="claims_summary.csv", df=short_claims(data["claims"]), schema="report_claims_short"),
        ReportTable(name="summary.csv", df=headline_table(headline_rows(res.summary)), schema="report_summary"),
        ReportTable(name="summary_all.csv", df=headline_table(res.summary), schema="report_summary"),
        ReportTable(name="summary_full.csv", df=res.summary, schema="study_summary"),
        ReportTable(name="ceilings.csv", df=res.ceilings, schema="accelerator_ceilings"),
        ReportTable(name="ops.parquet", df=res.ops, schema="study_ops"),
        ReportTable(name="traces.parquet", df=res.traces, schema="study_traces",
                    meta={"note": "concatenated op traces of the study", "traces": res.trace_meta}),
        ReportTable(name="sim_vs_measured.csv", df=data["sim_calls"], schema="report_sim_vs_measured"),
    ]
    ratios = ratio_table(res.summary)
    if len(ratios):
        files.append(ReportTable(name="ratios.csv", df=ratios, schema="report_ratios"))
    if "ladder" in res.axes:
        files.append(ReportTable(name="gain_ladder.csv", df=ladder_table(res.axes["ladder"]),
                                 schema="report_gain_ladder"))
    for name, df in res.axes.items():
        if name != "ladder":
            files.append(ReportTable(name=f"{name}.csv", df=df, schema=AXIS_SCHEMAS[name]))
    if not data["shown"].empty:
        files.append(ReportTable(name="measured_speedups.csv", df=speedup_table(data["shown"]),
                                 schema="report_measured_speedups"))
    if not data["sim_calls"].empty:
        files.append(ReportTable(name="sim_validation.csv", df=validation_classes_table(data["sim_classes"]),
                                 schema="report_sim_validation"))
    if len(data["trained_table2"]):
        files.append(ReportTable(name=TRAINED_TABLE2, df=data["trained_table2"], schema="trained_table2"))
    if len(data["serving"]):
        files.append(ReportTable(name="serving.csv", df=data["serving"], schema="serving_summary"))
    if len(data["whole_token"]):
        files.append(ReportTable(name="whole_token_validation.csv", df=data["whole_token"], schema="sim_whole_token"))
    if len(data["published"]):
        files.append(ReportTable(name="published_chips.csv", df=data["published"], schema="report_published_chips"))
    if len(data["board"]):
        files.append(ReportTable(name="board_energy.csv", df=data["board"].drop(columns=["file"]),
                                 schema="board_energy"))
    return {t.stem: t for t in files}


def collect_report(cfg: StudyConfig, progress: ReportLog | None = None) -> ReportData:
    """Run the study of ``cfg``, read the measured GPU data, judge the claims and build every table."""
    progress = progress or ReportLog(enabled=False)
    res = run_study(cfg, progress=progress.enabled)
    progress("study done")
    labels = accelerator_labels(cfg, progress)
    for df in (res.summary, res.ops, *res.axes.values()):
        relabel_accelerators(df, labels)
    if labels:   # the roofs are keyed by name alone: rebuilt so a renamed chip keeps its own
        res = dataclasses.replace(res, ceilings=pd.DataFrame(
            [dict(row, accelerator=labels.get(key, row["accelerator"])) for key in accelerator_names(cfg)
             for row in accelerator_ceilings(sim.load_accelerator(key))]))
    measured = load_measured(cfg.measured_path)
    spd = speedups(measured)
    sim_calls, sim_classes = validate_simulator(measured)
    board = load_board_energy(cfg.measured_path)
    serving = load_serving(cfg.measured_path.parent / SERVING_DIR)
    progress(f"{len(measured)} measured kernel rows, {len(sim_calls)} replayed on h100-like / h100-triton; "
             f"board energy: {len(board)} rows")
    preset = res.plan.claims_preset
    t2 = load_trained_table2(cfg.measured_path)
    claims = claims_table(res.summary, res.traces, spd, preset, extra_active=extra_active(res, preset, progress),
                          profile=res.plan.comparisons[preset].profile, ops=res.ops,
                          sensitivity=res.axes.get("sensitivity"), trained_active=trained_active(t2))
    shown = shown_measurements(spd)
    tables = _tables({"res": res, "claims": claims, "shown": shown, "sim_calls": sim_calls,
                      "sim_classes": sim_classes, "board": board, "accelerators": accelerator_names(cfg),
                      "labels": labels, "trained_table2": t2, "serving": serving,
                      "whole_token": whole_token_rows(cfg.measured_path), "published": published_rows()})
    return ReportData(study=res, claims_preset=preset, measured=measured, shown_speedups=shown,
                      sim_calls=sim_calls, sim_classes=sim_classes,
                      gpus=sorted({str(g) for g in measured["gpu"].dropna()}) if len(measured) else [],
                      board=board, tables=tables, serving=serving)
