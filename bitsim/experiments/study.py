"""The comparison study behind ``bitsim report``: fair comparisons, then the sweeps an architect asks for.

A study is one **comparison per model preset** (:func:`bitsim.experiments.fair.plan_comparison`):
one activation profile for all its datapaths, and each datapath as its **strongest** baseline (the
fewest KV-cache bits it tolerates, the same zero-skipping logic, the presets' array budget).  Each
trace -- one per (preset, datapath, phase, context) -- is built once and simulated on the
datapath's matched chip and on every reference chip (default ``h100-like``).

On the claims preset (7b when present) the study then runs, in the same worker pool and reusing
every trace it already has (:class:`bitsim.experiments.runs.Runner`):

* the gain ladder from the strongest b1.58 to a4.8 (:mod:`bitsim.experiments.ladder`);
* decode batch, off-chip bandwidth and memory-technology sweeps, and the iso-peak / iso-area /
  iso-power comparison bases (:mod:`bitsim.experiments.axes`), with their crossovers;
* sensitivity bands of the headline ratios (:mod:`bitsim.experiments.sensitivity`);
* a4.8 against every baseline an architect would deploy -- FP16, W4A16, W8A8 INT8 / FP8, W4A4 MXFP4
  and the strongest b1.58 -- at batch 1, 16, 64 and context 2k, 32k on the bases of
  ``baseline_bases`` (:mod:`bitsim.experiments.baselines`).

Tables (pandas DataFrames, each of a schema registered in ``bitsim.experiments.tables``):

``summary``  one row per (trace, chip): preset, datapath, phase, context, tokens, accelerator, role,
             basis, profile, kv_bits, variant, latency, tokens/s, energy and its components, bytes,
             footprint, feasibility, area and power (each with what it comes from), bound shares.
``ops``      sim ops of every study row joined with their trace op, placed on the roofline.
``traces``   the op traces of the study.
``axes``     the experiments above by name (``ladder``, ``batch``, ``bandwidth``, ``technology``,
             ``bases``, ``sensitivity``, ``baselines``, ``crossovers``).
"""
from __future__ import annotations

import dataclasses
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
from tqdm import tqdm

import sim
from bitsim.experiments import axes, ladder, sensitivity
from bitsim.experiments import baselines as against
from bitsim.experiments.chipmetrics import chip_area, row_feasible, row_power
from bitsim.experiments.fair import (
    BASELINE_POLICIES,
    PROFILE_CHOICES,
    Comparison,
    plan_comparison,
    profile_label,
)
from bitsim.experiments.paths import DATA_DIR_NAME, project_path
from bitsim.experiments.runs import Chip, Job, Runner, TraceKey
from bitsim.experiments.sizing import BASES
from contract import MAX_BATCH, MAX_CONTEXT, MAX_PREFILL_TOKENS, validate
from contract.config import check_number, dataclass_fields, quote
from contract.limits import limit
from model.config import DATAPATHS, get_config

DEFAULT_DATAPATHS = ("fp16", "b1.58", "a4.8", "a4.8-fp4")
# Each datapath's own accelerator preset (sim/presets); a4.8-fp4 shares a4.8's.
DEFAULT_MATCHED = {"fp16": "fp16", "b1.58": "b1.58", "a4.8": "a4.8", "a4.8-fp4": "a4.8"}
#: Variants that ride on another datapath's chip: replacing that chip (``--accelerator a4.8=my.yaml``) moves
#: them with it unless they are given a chip of their own.
RIDES_ON = {"a4.8-fp4": "a4.8"}
PROFILES = PROFILE_CHOICES
#: The decode context the headline numbers, the ladder and the sweeps are read at: the study's nearest.
HEADLINE_CONTEXT = 2048
#: The experiments of :data:`StudyConfig.experiments` (all by default).
EXPERIMENTS = ("ladder", "batch", "bandwidth", "technology", "bases", "sensitivity", "baselines")
#: The registered schema of each table of ``StudyResult.axes``.
AXIS_SCHEMAS = {"ladder": "gain_ladder", "batch": "study_batch", "bandwidth": "study_bandwidth",
                "technology": "study_technology", "bases": "study_bases", "sensitivity": "study_sensitivity",
                "baselines": "study_baselines", "crossovers": "study_crossovers"}


def nearest_context(contexts, target: int = HEADLINE_CONTEXT) -> int:
    """The context of ``contexts`` nearest ``target`` (the first met on a tie)."""
    return min(contexts, key=lambda c: abs(c - target))


def _numbers(v: Any, name: str, **bounds: Any) -> tuple:
    """A list of numbers, each checked by ``check_number`` (an error names the field and the entry)."""
    if isinstance(v, str) or not isinstance(v, (tuple, list)):
        raise ValueError(f"{name}: expected a list, got {quote(v)}")
    return tuple(check_number(x, f"{name}[{i}]", **bounds) for i, x in enumerate(v))


MAX_WORKERS = limit("study workers", 256, unit="processes", area="sweeps and reports",
                    applies_to="bitsim report --workers and a study config's workers",
                    why="each worker holds a copy of the traces it builds; more than cores only adds memory")

#: A study name becomes a folder name under reports/runs/: letters, digits, '.', '_' and '-' only.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"name: {quote(name)} is not a plain folder name (letters, digits, '.', '_', '-'; "
                         f"at most 80 characters, not starting with '.' or '-')")
    return name


@dataclass(frozen=True)
class StudyConfig:
    """What to run.  Validated on construction (ValueError naming the field)."""
    name: str = "default"
    presets: tuple[str, ...] = ("7b", "2b4t")
    datapaths: tuple[str, ...] = DEFAULT_DATAPATHS
    contexts: tuple[int, ...] = (512, 2048, 8192, 32768)
    prefill_tokens: int = 2048            # 0: no prefill workload
    batch: int = 1
    seed: int = 0
    profile: str = "auto"                 # activation statistics: the one-profile rule (bitsim.experiments.fair)
    baselines: str = "strongest"          # strongest baselines (fair) or each datapath as its preset has it
    matched: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MATCHED))
    reference: tuple[str, ...] = ("h100-like",)
    measured_dir: str = DATA_DIR_NAME     # relative: a folder of the project (bitsim.experiments.paths)
    workers: int = 2
    experiments: tuple[str, ...] = EXPERIMENTS
    batches: tuple[int, ...] = (1, 4, 16, 64, 256)             # decode batch sweep (claims preset)
    bandwidth_factors: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)   # x each chip's off-chip bandwidth
    # bases of the table of a4.8 against every baseline (iso-power sizes every chip by prefill simulations,
    # the costliest basis: a study that must be quick can leave it out here)
    baseline_bases: tuple[str, ...] = against.DEFAULT_BASES

    def __post_init__(self) -> None:
        for f in ("presets", "datapaths", "contexts", "reference", "experiments", "bandwidth_factors", "batches",
                  "baseline_bases"):
            v = getattr(self, f)
            if isinstance(v, str) or not isinstance(v, (tuple, list)):
                raise ValueError(f"{f}: expected a list, got {quote(v)}")
            object.__setattr__(self, f, tuple(v))
        check_name(self.name)
        self._check_numbers()
        self._check_choices()
        self._check_matched()

    def _check_numbers(self) -> None:
        set_ = object.__setattr__
        set_(self, "contexts", _numbers(self.contexts, "contexts", integer=True, lo=1, hi=MAX_CONTEXT))
        set_(self, "prefill_tokens", check_number(self.prefill_tokens, "prefill_tokens", integer=True, lo=0,
                                                  hi=MAX_PREFILL_TOKENS))
        set_(self, "batch", check_number(self.batch, "batch", integer=True, lo=1, hi=MAX_BATCH))
        set_(self, "seed", check_number(self.seed, "seed", integer=True, lo=0, hi=2**31 - 1))
        set_(self, "workers", check_number(self.workers, "workers", integer=True, lo=1, hi=MAX_WORKERS))
        set_(self, "batches", _numbers(self.batches, "batches", integer=True, lo=1, hi=MAX_BATCH))
        set_(self, "bandwidth_factors", _numbers(self.bandwidth_factors, "bandwidth_factors", lo=0.01, hi=100))
        if not self.contexts and not self.prefill_tokens:
            raise ValueError("contexts: give decode contexts or a prefill (prefill_tokens > 0)")

    def _check_choices(self) -> None:
        if not self.presets:
            raise ValueError("presets: at least one model preset is required")
        if not self.datapaths:
            raise ValueError("datapaths: at least one datapath is required")
        for f, value, choices in (("profile", self.profile, PROFILES),
                                  ("baselines", self.baselines, BASELINE_POLICIES)):
            if value not in choices:
                raise ValueError(f"{f}: must be one of {list(choices)}, got {quote(value)}")
        for f, values, known in (("datapaths", self.datapaths, DATAPATHS),
                                 ("experiments", self.experiments, EXPERIMENTS),
                                 ("baseline_bases", self.baseline_bases, BASES)):
            unknown = [x for x in values if x not in known]
            if unknown:
                raise ValueError(f"{f}: unknown {quote(unknown)}; known: {list(known)}")

    def _check_matched(self) -> None:
        if not isinstance(self.matched, Mapping):
            raise ValueError(f"matched: expected a mapping datapath -> accelerator, got {quote(self.matched)}")
        stray = [d for d in self.matched if d not in DATAPATHS]
        if stray:
            raise ValueError(f"matched: {quote(stray)} name no datapath; known: {list(DATAPATHS)}")
        missing = [d for d in self.datapaths if d not in self.matched]
        if missing:
            raise ValueError(f"matched: no accelerator given for datapath(s) {missing}")
        object.__setattr__(self, "matched", {d: self.matched[d] for d in self.datapaths})

    @property
    def measured_path(self) -> Path:
        """The folder of measured tables, a relative ``measured_dir`` taken under the project root."""
        return project_path(self.measured_dir)

    def workloads(self) -> list[tuple[str, str, str, int]]:
        """Every (preset, datapath, phase, context) the comparison could need (before the profile rule)."""
        out = []
        for p in self.presets:
            for d in self.datapaths:
                out += [(p, d, "decode", int(c)) for c in self.contexts]
                if self.prefill_tokens:
                    out.append((p, d, "prefill", int(self.prefill_tokens)))
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str = "study config") -> "StudyConfig":
        """Build from a mapping (e.g. parsed YAML); an unknown field is a ValueError naming it."""
        return cls(**dataclass_fields(raw, cls, where))

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["matched"] = dict(self.matched)
        return d


def claims_preset(cfg: StudyConfig) -> str:
    """The model preset the claims and the sweeps are about: 7b when the study has it (the claims are about 7B)."""
    return "7b" if "7b" in cfg.presets else cfg.presets[0]


@dataclass(frozen=True, kw_only=True)
class StudyPlan:
    """What the study runs: one comparison per preset, the claims preset and its headline context."""

    config: StudyConfig
    comparisons: Mapping[str, Comparison]
    claims_preset: str
    headline_context: int | None

    @property
    def main(self) -> Comparison:
        """The comparison of the claims preset (the one the sweeps run on)."""
        return self.comparisons[self.claims_preset]

    def key(self, preset: str, datapath: str, phase: str, context: int, **changes: Any) -> TraceKey:
        """The trace of a workload of ``preset``'s comparison (its profile, its variant's KV cache)."""
        comp, cfg = self.comparisons[preset], self.config
        k = TraceKey(preset=preset, datapath=datapath, phase=phase, context=int(context), batch=cfg.batch,
                     kv_bits=comp.variants[datapath].kv_bits if datapath in comp.variants else None,
                     profile=comp.profile, seed=cfg.seed)
        return dataclasses.replace(k, **changes) if changes else k


def plan_study(cfg: StudyConfig) -> StudyPlan:
    """The comparisons of ``cfg`` (profile and strongest baselines per preset)."""
    comps = {p: plan_comparison(p, cfg.datapaths, cfg.matched, profile=cfg.profile, policy=cfg.baselines,
                                data_dir=cfg.measured_path) for p in cfg.presets}
    return StudyPlan(config=cfg, comparisons=comps, claims_preset=claims_preset(cfg),
                     headline_context=nearest_context(cfg.contexts) if cfg.contexts else None)


@dataclass(kw_only=True)
class StudyResult:
    config: StudyConfig
    plan: StudyPlan
    summary: pd.DataFrame
    ops: pd.DataFrame
    traces: pd.DataFrame
    ceilings: pd.DataFrame
    trace_meta: list[dict]
    seconds: float
    axes: Mapping[str, pd.DataFrame] = field(default_factory=dict)


# ---------------------------------------------------------------------------
def accelerator_ceilings(acc) -> list[dict]:
    """Roofline ceilings of one accelerator: one row per supported operand pair, and its vector unit."""
    rows = []
    clock = acc.clock_ghz * 1e9
    bw = getattr(acc.offchip, "sustained_gbps", acc.offchip.bandwidth_gbps) * 1e9
    seen = set()
    for a in acc.arrays:
        for p in a.pe_ops:
            key = (p.weights, p.acts)
            if key in seen:
                continue
            seen.add(key)
            rows.append({"accelerator": acc.name, "precision": f"{p.weights}x{p.acts}",
                         "peak_ops_s": 2.0 * acc.peak_macs_per_cycle(*key) * clock, "bandwidth_bytes_s": bw})
    # vector ops count one op per element (study_ops.ops): the unit's roof is lanes element-passes per cycle
    rows.append({"accelerator": acc.name, "precision": "vector", "peak_ops_s": float(acc.vector.lanes) * clock,
                 "bandwidth_bytes_s": bw})
    return rows


_chip_cache: dict[Chip, tuple[float, str, str, float]] = {}


def chip_columns(chip: Chip) -> dict[str, Any]:
    """Columns every summary row carries about its chip: area (and what it is), peak bandwidth, capacity."""
    if chip not in _chip_cache:
        acc = chip.config()
        area, what = chip_area(acc)
        _chip_cache[chip] = (area, what, acc.name, float(acc.offchip.capacity_gb))
    area, what, _name, cap = _chip_cache[chip]
    return {"area_mm2": area, "area_source": what, "capacity_gb": cap}


def tidy_row(job: Job, row: Mapping[str, Any], **tags: Any) -> dict:
    """One summary row: the workload, the tags, the chip's columns, then sim's numbers and power/feasibility."""
    k = job.trace
    out = {"preset": k.preset, "datapath": k.datapath, "phase": k.phase, "context": k.context,
           "tokens": float(k.tokens), "batch": k.batch, "profile": k.profile,
           "kv_bits": int(get_config(k.preset, k.datapath, **({"kv_bits": k.kv_bits} if k.kv_bits else {}))
                          .kv_cache_bits)}
    out.update(tags)
    out.update(chip_columns(job.chip))
    out.update({c: v for c, v in row.items() if c not in out or c in ("tokens", "area_mm2")})
    if "area_mm2" in row:
        out["area_source"] = "whole-chip area (sim summary area_mm2)"
    out["power_w"], out["power_source"] = row_power(row)
    out["feasible"], out["feasible_source"] = row_feasible(row)
    return out


def _study_jobs(plan: StudyPlan) -> dict[Job, dict]:
    """The comparison itself: every workload of every preset on its matched chip and the references."""
    cfg = plan.config
    jobs: dict[Job, dict] = {}
    for preset, comp in plan.comparisons.items():
        for d, var in comp.variants.items():
            chips = [(var.chip, "matched", var.accelerator, var.changes)] + [
                (Chip.of(r), "reference", r, "") for r in cfg.reference if r != var.accelerator]
            wl = [("decode", c) for c in cfg.contexts] + ([("prefill", cfg.prefill_tokens)] if cfg.prefill_tokens
                                                           else [])
            for phase, ctx in wl:
                key = plan.key(preset, d, phase, ctx)
                for chip, role, acc_key, changes in chips:
                    jobs[Job(trace=key, chip=chip, keep_ops=True)] = {
                        "accelerator_key": acc_key, "role": role, "basis": "iso-peak", "variant": changes}
    return jobs


#: Each experiment run as extra jobs: name -> (its jobs, its table from the tidy rows of those jobs).
JOB_EXPERIMENTS = {
    "ladder": (ladder.ladder_jobs, lambda plan, summary, rows: ladder.ladder_table(rows)),
    "batch": (axes.batch_jobs, lambda plan, summary, rows: axes.batch_table(rows)),
    "bandwidth": (axes.bandwidth_jobs, lambda plan, summary, rows: axes.bandwidth_table(rows)),
    "technology": (axes.technology_jobs, lambda plan, summary, rows: axes.technology_table(rows)),
    "sensitivity": (sensitivity.sensitivity_jobs, sensitivity.band_table),
}


def _run_baselines(plan: StudyPlan, runner: Runner) -> pd.DataFrame:
    """a4.8 against every baseline on the claims preset (``bitsim.experiments.baselines``); the iso-power
    basis only when the study has a prefill to size the chips on."""
    cfg = plan.config
    bases = [b for b in cfg.baseline_bases if b != "iso-power" or cfg.prefill_tokens]
    comp = against.plan_baselines(plan.claims_preset, profile=cfg.profile, policy=cfg.baselines,
                                    data_dir=cfg.measured_path)
    return against.run_baselines(comp, runner, bases=bases, prefill_tokens=cfg.prefill_tokens, seed=cfg.seed)


def _tidy(jobs: Mapping[Job, dict], out: Mapping[Job, Any]) -> pd.DataFrame:
    return pd.DataFrame([tidy_row(j, out[j].row, **tags) for j, tags in jobs.items()])


def _study_ops(study_jobs: Mapping[Job, dict], out: Mapping[Job, Any]) -> pd.DataFrame:
    return pd.concat([out[j].ops.assign(preset=j.trace.preset, datapath=j.trace.datapath, context=j.trace.context,
                                        accelerator=out[j].row["accelerator"], role=tags["role"])
                      for j, tags in study_jobs.items()], ignore_index=True)


def _study_traces(runner: Runner, study_jobs: Mapping[Job, dict]) -> tuple[pd.DataFrame, list[dict]]:
    """The comparison's op traces, tagged with their workload, and each trace's metadata."""
    keys = list(dict.fromkeys(j.trace for j in study_jobs))
    traces = pd.concat([_tagged_trace(runner.traces[k], k) for k in keys], ignore_index=True)
    meta = [dict(_meta(runner.traces[k]), preset=k.preset, datapath=k.datapath, phase=k.phase,
                 context=k.context, kv_bits=k.kv_bits, profile=k.profile,
                 trace_seconds=round(runner.trace_seconds.get(k, 0.0), 2)) for k in keys]
    return traces, meta


class StageBars:
    """A tqdm bar per stage of a study on stderr, advanced by each trace the runner finishes; off: silent."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bar: tqdm | None = None

    def __enter__(self) -> "StageBars":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def stage(self, name: str, total: int | None = None) -> None:
        """Close the running stage's bar and open the next one (``total``: its traces, when known)."""
        self.close()
        if self.enabled:
            self.bar = tqdm(total=total, desc=name, unit="trace", file=sys.stderr, leave=True, dynamic_ncols=True)

    def __call__(self, message: str) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(message.split("] ", 1)[-1].split(":", 1)[0], refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _new_traces(runner: Runner, jobs) -> int:
    """How many traces ``runner.run(jobs)`` has left to build or simulate (the length of its stage)."""
    return len({j.trace for j in jobs if j not in runner.results})


def run_study(cfg: StudyConfig, progress: bool = True) -> StudyResult:
    """Run the comparison of every preset, then the claims preset's experiments, each trace built once; with
    ``progress``, a bar per stage on stderr."""
    t0 = time.perf_counter()
    plan = plan_study(cfg)
    accelerators = list(dict.fromkeys(list(cfg.matched.values()) + list(cfg.reference)))
    for name in accelerators:
        sim.load_accelerator(name)  # a bad name or YAML fails before any work
    study_jobs = _study_jobs(plan)
    wanted = set(cfg.experiments) if cfg.contexts else set()
    with StageBars(progress) as bars, Runner(workers=cfg.workers, progress=bars if progress else None) as runner:
        extra = {name: make(plan) for name, (make, _) in JOB_EXPERIMENTS.items() if name in wanted}
        first = list(study_jobs) + [j for jobs in extra.values() for j in jobs]
        bars.stage("study: comparison and sweeps", _new_traces(runner, first))
        out = runner.run(first)
        results: dict[str, pd.DataFrame] = {}
        if "bases" in wanted and cfg.prefill_tokens:
            bars.stage("study: iso-area / iso-power chips")
            results["bases"] = axes.run_bases(plan, runner)
        if "baselines" in wanted:
            bars.stage("study: a4.8 against each baseline")
            results["baselines"] = _run_baselines(plan, runner)
        bars.close()   # the tables below print nothing
        summary = _tidy(study_jobs, out)
        ops = _study_ops(study_jobs, out)
        for name, jobs in extra.items():
            results[name] = JOB_EXPERIMENTS[name][1](plan, summary, _tidy(jobs, out))
        results["crossovers"] = axes.crossovers(plan, summary, results)
        traces, meta = _study_traces(runner, study_jobs)
    ceilings = [row for name in accelerators for row in accelerator_ceilings(sim.load_accelerator(name))]
    axes_tables = {n: validate(df, AXIS_SCHEMAS[n]) for n, df in results.items() if df is not None and len(df)}
    return StudyResult(config=cfg, plan=plan, summary=validate(summary, "study_summary"),
                       ops=validate(ops, "study_ops"), traces=validate(traces, "study_traces"),
                       ceilings=validate(pd.DataFrame(ceilings), "accelerator_ceilings"), trace_meta=meta,
                       seconds=time.perf_counter() - t0, axes=axes_tables)


def _meta(trace: pd.DataFrame) -> dict:
    return {k: (v if isinstance(v, (str, int, float, bool, type(None))) else str(v))
            for k, v in dict(trace.attrs).items()}


def _tagged_trace(trace: pd.DataFrame, key: TraceKey) -> pd.DataFrame:
    tr = trace.copy()
    tr.attrs = {}
    return tr.assign(preset=key.preset, datapath=key.datapath, context=key.context)


def profile_note(plan: StudyPlan, presets=None) -> str:
    """'7b: paper Table 2 sparsity; 2b4t: random-weight statistics' -- each comparison's profile."""
    presets = presets or list(plan.comparisons)
    return "; ".join(f"{p}: {profile_label(plan.comparisons[p].profile)}" for p in presets)
