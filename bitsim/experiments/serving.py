"""Serving a model on simulated chips: the iteration cost model from op traces and ``sim.simulate``,
the serve spec (``bitsim serve SPEC.yaml``), its outputs and figures, and the validation rows.

``sim.serving`` is pure (workloads, scheduler, interconnect, metrics) and takes any iteration cost
model; here one is built for a model, a datapath and an accelerator at a tensor-parallel degree:
each direct evaluation is an op trace of one tensor-parallel shard (``model.trace.build_trace`` on a
config with ``n_heads / tp`` query heads, ``max(1, n_kv_heads / tp)`` KV heads (replicated when fewer
than ``tp``), ``ffn_dim / tp`` and ``vocab_size / tp``: the column-split Q/K/V/gate/up and row-split
O/down projections) simulated by ``sim.simulate``; a grid of them is interpolated
(:class:`sim.serving.GridCostModel`) and its error against direct evaluation off the grid reported.
Direct evaluations are cached in a CSV beside the outputs (building a trace takes seconds).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

import sim
from bitsim.experiments.hardware import make_accelerator
from contract import read_table, validate, write_table
from contract.config import check_fields, check_number, load_yaml, quote
from contract.io import atomic_path, check_input_file, files_digest, write_json_atomic
from contract.limits import limit
from model.config import ModelConfig, get_config, weight_bytes
from model.trace import TRACE_VERSION, build_trace, kv_bytes
from model.zero_batch import fit_digest
from sim.config import PRESET_DIR, PRESETS
from sim.serving import (
    ChipFacts,
    GridCostModel,
    InterconnectConfig,
    ParallelConfig,
    SchedulerConfig,
    ServeResult,
    Targets,
    WorkloadConfig,
    load_interconnect,
    occupancy_over_time,
    search_rate,
    serve,
    write_timeline,
)
from sim.serving.metrics import at_max
from sim.serving.validation import (
    ITERATION_TOLERANCE,
    ROW_COLUMNS,
    allreduce_checks,
    hand_checks,
    iteration_checks,
    row,
)
from sim.serving.workload import anchor, anchors, generate, load_requests
from sim.validation import GPU_PRESETS, gpu_presets, launch_counts, measured_kv_bits, with_launches

PROFILES = ("measured", "paper-table2", "trained")
#: Raised whenever the serving model (engine, interconnect, cost model) changes what a spec produces, so that
#: runs written before are redone (``bitsim serve --each`` skips a run whose digest matches).
RESULTS_VERSION = 4


# ---------------------------------------------------------------------------- the spec
@dataclass(frozen=True, kw_only=True)
class GridConfig:
    """Grid of direct simulations the cost model interpolates (see sim.serving.GridCostModel)."""
    tokens: tuple = (1, 16, 128, 512, 1024)  # at most contract.MAX_BATCH (a decode step of that batch)
    batches: tuple = (1, 16, 128)          # best a subset of tokens: the context-free steps are shared
    contexts: tuple = (512, 4096)
    chunks: tuple = (128, 1024)

    def __post_init__(self) -> None:
        for f in ("tokens", "batches", "contexts", "chunks"):
            v = getattr(self, f)
            if not isinstance(v, (list, tuple)) or not v:
                raise ValueError(f"grid.{f}: expected a non-empty list of integers, got {quote(v)}")
            vals = [check_number(x, f"grid.{f}[{i}]", integer=True, lo=1, hi=1 << 20) for i, x in enumerate(v)]
            if sorted(set(vals)) != vals:
                raise ValueError(f"grid.{f}: values must be increasing, got {quote(v)}")
            object.__setattr__(self, f, tuple(vals))


@dataclass(frozen=True, kw_only=True)
class SearchConfig:
    enabled: bool = False
    lo: float = 0.05
    hi: float = 200.0
    rel_tol: float = 0.05
    requests: int = 0                     # > 0: requests per trial rate (default: the workload's)
    target_rate: float = 0.0              # > 0: req/s the service must carry; sizes chips_needed
    serve_at_best: bool = False           # the run's own tables (requests, iterations) at the rate found

    def __post_init__(self) -> None:
        for f in ("enabled", "serve_at_best"):
            if not isinstance(getattr(self, f), bool):
                raise ValueError(f"search.{f}: expected true or false, got {quote(getattr(self, f))}")
        check_number(self.lo, "search.lo", lo=0, lo_open=True, unit="req/s")
        check_number(self.hi, "search.hi", lo=self.lo, lo_open=True, unit="req/s")
        check_number(self.rel_tol, "search.rel_tol", lo=1e-3, hi=1)
        check_number(self.requests, "search.requests", integer=True, lo=0, hi=10_000_000)
        check_number(self.target_rate, "search.target_rate", lo=0, hi=1e6, unit="req/s")


@dataclass(frozen=True, kw_only=True)
class ServeSpec:
    name: str
    model: str
    datapath: str
    accelerator: str
    profile: str = "measured"
    seed: int = 0
    kv_bits: int | None = None            # KV-cache bits (None: the datapath's own; 4: a 4-bit cache)
    accelerator_overrides: dict = field(default_factory=dict)   # dotted paths, e.g. {kv_formats: [kv-fp16, kv-int4]}
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    interconnect: InterconnectConfig | None = None
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    targets: Targets = field(default_factory=Targets)
    grid: GridConfig = field(default_factory=GridConfig)
    search: SearchConfig = field(default_factory=SearchConfig)


SECTIONS = {"parallel": ParallelConfig, "scheduler": SchedulerConfig, "workload": WorkloadConfig,
            "targets": Targets}


def _section(cls, raw, where: str):
    d = check_fields(raw if raw is not None else {}, [f.name for f in dataclasses.fields(cls)], where)
    return cls(**d)


def spec_from_dict(raw: object, where: str = "serve spec", base: Path | None = None) -> ServeSpec:
    """A validated :class:`ServeSpec`; errors name the field and its choices."""
    known = [f.name for f in dataclasses.fields(ServeSpec)]
    d = check_fields(raw, known, where, required=("name", "model", "datapath", "accelerator"))
    for k in ("name", "model", "datapath", "accelerator", "profile"):
        if k in d and (not isinstance(d[k], str) or not d[k]):
            raise ValueError(f"{where}: {k}: expected a non-empty string, got {quote(d[k])}")
    if d.get("profile", "measured") not in PROFILES:
        raise ValueError(f"{where}: profile: unknown profile {quote(d['profile'])}; known: {PROFILES}")
    check_number(d.get("seed", 0), f"{where}: seed", integer=True, lo=0, hi=2**31 - 1)
    if d.get("kv_bits") is not None:
        check_number(d["kv_bits"], f"{where}: kv_bits", integer=True, lo=2, hi=16, unit="bit")
    if not isinstance(d.get("accelerator_overrides", {}), dict):
        raise ValueError(f"{where}: accelerator_overrides: expected a mapping of dotted paths to values, "
                         f"got {quote(d['accelerator_overrides'])}")
    for k, cls in SECTIONS.items():
        if k in d:
            d[k] = _section(cls, d[k], f"{where}: {k}")
    if "grid" in d:
        d["grid"] = _section(GridConfig, d["grid"], f"{where}: grid")
    if "search" in d:
        d["search"] = _section(SearchConfig, d["search"], f"{where}: search")
    if d.get("interconnect") is not None:
        d["interconnect"] = load_interconnect(d["interconnect"])
    for k in ("model", "accelerator"):
        if d[k].endswith((".yaml", ".yml")):
            d[k] = _spec_file(d[k], k, where, base)
    if base is not None:
        w = d.get("workload")
        if w is not None and w.csv and not Path(w.csv).is_absolute() and (base / w.csv).exists():
            d["workload"] = dataclasses.replace(w, csv=str(base / w.csv))
    spec = ServeSpec(**d)
    model_config(spec.model, spec.datapath, spec.kv_bits)             # the model, datapath and KV bits exist
    _check_accelerator(spec, where)
    return spec


def _spec_file(value: str, field_: str, where: str, base: Path | None) -> str:
    """A YAML file named by field ``field_``: relative to the spec's folder ``base`` when it is there, else to the
    working directory; normalised (``serving/../chips/x.yaml`` -> ``chips/x.yaml``), so the run's summary and its
    digest name the file the same way from every spec. A missing file is an error naming the field."""
    p = Path(value)
    if base is not None and not p.is_absolute() and (base / p).is_file():
        p = base / p
    if not p.is_file():
        looked = f"the spec's folder {base} or the working directory" if base is not None else "the working directory"
        raise ValueError(f"{where}: {field_}: no such YAML file {quote(value)} (looked relative to {looked})")
    return os.path.normpath(p)


def _check_accelerator(spec: ServeSpec, where: str) -> None:
    """The accelerator (a preset or a chip YAML) loads and the overrides apply to it; errors name the field."""
    try:
        make_accelerator(spec.accelerator, {})
    except (ValueError, OSError, TypeError) as e:
        raise ValueError(f"{where}: accelerator: {e}") from None
    try:
        make_accelerator(spec.accelerator, spec.accelerator_overrides)
    except (ValueError, OSError, TypeError) as e:
        raise ValueError(f"{where}: accelerator_overrides: {e}") from None


def model_config(model: "str | ModelConfig", datapath: str, kv_bits: int | None = None) -> ModelConfig:
    """The served model on ``datapath`` with ``kv_bits`` KV bits (None: the datapath's own)."""
    return get_config(model, datapath, **({"kv_bits": kv_bits} if kv_bits is not None else {}))


def spec_digest(spec: ServeSpec) -> str:
    """A digest of everything a run's results depend on: the spec (with the contents of any YAML it names, a
    chip preset named by its name included)
    :data:`RESULTS_VERSION` and the code that turns a shape into a cost (chip simulator, trace version, batch
    rule); a run folder holding the same digest is up to date."""
    files = {k: Path(v).read_text() for k, v in (("model", spec.model), ("accelerator", spec.accelerator))
             if v.endswith((".yaml", ".yml")) and Path(v).is_file()}
    if spec.accelerator in PRESETS:             # a preset by name: its YAML is an input too
        files["accelerator"] = (PRESET_DIR / PRESETS[spec.accelerator]).read_text()
    if spec.workload.csv:
        files["workload.csv"] = hashlib.sha256(Path(spec.workload.csv).read_bytes()).hexdigest()
    doc = json.dumps([RESULTS_VERSION, dataclasses.asdict(spec), files, _results_code_digest()], sort_keys=True,
                     default=str)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def load_spec(path: str | Path) -> ServeSpec:
    p = Path(path)
    return spec_from_dict(load_yaml(p), where=p.name, base=p.parent)


# ---------------------------------------------------------------------------- the cost model
def shard_config(model: "str | ModelConfig", datapath: str, tp: int) -> ModelConfig:
    """The per-chip shard of ``model`` at tensor-parallel degree ``tp`` (see module doc)."""
    cfg = get_config(model, datapath)
    if tp == 1:
        return cfg
    for name, v in (("n_heads", cfg.n_heads), ("ffn_dim", cfg.ffn_dim)):
        if v % tp:
            raise ValueError(f"parallel.tp = {tp} does not divide the model's {name} ({v})")
    kv = cfg.kv_heads
    if kv % tp and tp % kv:
        raise ValueError(f"parallel.tp = {tp} and the model's n_kv_heads ({kv}): one must divide the other")
    return cfg.replace(name=f"{cfg.name}-tp{tp}", n_heads=cfg.n_heads // tp, n_kv_heads=max(1, kv // tp),
                       head_dim=cfg.hd, ffn_dim=cfg.ffn_dim // tp, vocab_size=-(-cfg.vocab_size // tp))


#: Tensor-parallel degrees the chip-count rule tries, smallest first.
TP_CANDIDATES = (1, 2, 4, 8, 16, 32, 64)


def footprint_per_chip(spec: ServeSpec, tp: int) -> dict:
    """Bytes one chip of a ``tp``-way deployment of ``spec`` holds: its weight shard and the KV cache of
    ``scheduler.max_batch`` requests of the workload's mean length (prompt + output), against its usable memory
    (capacity x ``scheduler.memory_fraction``)."""
    full = model_config(spec.model, spec.datapath, spec.kv_bits)
    shard = shard_config(full, spec.datapath, tp)
    accel = make_accelerator(spec.accelerator, spec.accelerator_overrides)
    reqs = generate(dataclasses.replace(spec.workload, requests=min(spec.workload.requests, 10_000)))
    mean_tokens = float((reqs["prompt_tokens"] + reqs["output_tokens"]).mean())
    kv_token = 2 * shard.n_layers * kv_bytes(shard, 1, 1, 2)
    weights = weight_bytes(shard).total
    kv = spec.scheduler.max_batch * mean_tokens * kv_token / spec.parallel.pp
    usable = accel.offchip.capacity_gb * 1e9 * spec.scheduler.memory_fraction
    return dict(tp=tp, weight_bytes=weights / spec.parallel.pp, kv_bytes=kv, usable_bytes=usable,
                fits=weights / spec.parallel.pp + kv <= usable, mean_request_tokens=mean_tokens)


def smallest_tp(spec: ServeSpec) -> int:
    """The chip-count rule of the serving comparison: the smallest tensor-parallel degree (of
    :data:`TP_CANDIDATES` that split the model) whose per-chip weights plus the KV cache of the scheduler's
    maximum batch of mean-length requests fit the usable memory (:func:`footprint_per_chip`)."""
    for tp in TP_CANDIDATES:
        try:
            f = footprint_per_chip(spec, tp)
        except ValueError:              # this degree does not split the model's heads or FFN
            continue
        if f["fits"]:
            return tp
    raise ValueError(f"{spec.name}: no tensor-parallel degree of {TP_CANDIDATES} fits the weights and the KV "
                     f"cache of {spec.scheduler.max_batch} requests")


@functools.lru_cache(maxsize=1)
def _results_code_digest() -> str:
    """SHA-256 of what turns a shape into a cost besides the key's inputs: the chip simulator's source, the
    trace version and the batch rule's fitted constants (a cost cached under other code is never reused)."""
    sources = [p for p in sorted(Path(sim.__file__).resolve().parent.rglob("*.py"))
               if not {"serving", "validation"} & set(p.parts)]     # neither enters a per-iteration cost
    return files_digest(sources, prefix=f"{TRACE_VERSION}|{fit_digest()}")


def _cache_key(shard: ModelConfig, datapath: str, accel: sim.AcceleratorConfig, profile: str, seed: int) -> str:
    doc = json.dumps([dataclasses.asdict(shard), datapath, dataclasses.asdict(accel), profile, seed,
                      _results_code_digest()], sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


class TraceEvaluator:
    """Direct evaluation of one iteration shape: build the shard's op trace, simulate it.

    Returns (seconds of one chip, joules of the ``tp`` chips); results are kept in ``cache_csv``
    (one row per shape, keyed by a hash of model shard, datapath, accelerator, profile and seed)."""

    def __init__(self, shard: ModelConfig, datapath: str, accel: sim.AcceleratorConfig, tp: int,
                 profile: str = "measured", seed: int = 0, cache_csv: "str | Path | None" = None,
                 progress: Callable[[str], None] | None = None) -> None:
        self.shard, self.datapath, self.accel, self.tp = shard, datapath, accel, tp
        self.profile, self.seed, self.progress = profile, seed, progress
        self.key = _cache_key(shard, datapath, accel, profile, seed)
        self.cache_csv = Path(cache_csv) if cache_csv else None
        self.cache: dict = {}
        self.last_summary = None
        self.calls = 0
        if self.cache_csv:
            _KEYS_USED.setdefault(self.cache_csv.resolve(), set()).add(self.key)
        if self.cache_csv and self.cache_csv.exists():
            t = read_cost_cache(self.cache_csv)
            for r in t[t["key"] == self.key].itertuples(index=False):
                self.cache[(r.phase, int(r.batch), int(r.new_tokens), int(r.context))] = (r.seconds, r.joules)

    def __call__(self, phase: str, batch: int, new_tokens: int, context: int) -> tuple[float, float]:
        k = (phase, batch, new_tokens, context)
        if k in self.cache:
            return self.cache[k]
        t0 = time.perf_counter()
        res = self.simulate(phase, batch, new_tokens, context)
        s = res.summary
        self.cache[k] = (float(s.latency_s), float(s.energy_j) * self.tp)
        self.calls += 1
        if self.progress:
            self.progress(f"simulated {phase} batch {batch} new {new_tokens} context {context}: "
                          f"{s.latency_s * 1e3:.3f} ms ({time.perf_counter() - t0:.1f} s)")
        self._save()
        return self.cache[k]

    def simulate(self, phase: str, batch: int, new_tokens: int, context: int) -> sim.SimResult:
        trace = build_trace(self.shard, self.datapath, phase=phase, context=context, batch=batch, seed=self.seed,
                            profile=self.profile, prefill_tokens=new_tokens if phase == "prefill" else None)
        res = sim.simulate(trace, self.accel)
        self.last_summary = res.summary
        return res

    def _save(self) -> None:
        if not self.cache_csv:
            return
        rows = [dict(key=self.key, phase=p, batch=b, new_tokens=n, context=c, seconds=s, joules=j)
                for (p, b, n, c), (s, j) in self.cache.items()]
        old = read_cost_cache(self.cache_csv) if self.cache_csv.exists() else pd.DataFrame()
        if len(old):
            old = old[old["key"] != self.key]
        out = pd.concat([old, pd.DataFrame(rows)], ignore_index=True)
        with atomic_path(self.cache_csv) as tmp:
            out.to_csv(tmp, index=False)


#: The cost-cache keys each cache file was opened with in this process (every :class:`TraceEvaluator` on a file
#: adds its key), so that a run can rewrite its own cache with only the keys it used (:func:`prune_cost_cache`).
_KEYS_USED: dict[Path, set[str]] = {}


def cache_keys_used(cache_csv: "str | Path") -> set[str]:
    """The keys of the evaluators opened on ``cache_csv`` in this process."""
    return set(_KEYS_USED.get(Path(cache_csv).resolve(), ()))


def prune_cost_cache(cache_csv: "str | Path", keys: "set[str] | None" = None) -> int:
    """Rewrite ``cache_csv`` (and its ``.facts.json``) with only the rows of ``keys`` (default: the keys used on it
    in this process, :func:`cache_keys_used`), atomically: a cache carried forward from an earlier run keeps no
    rows that no current evaluation reads.  Returns the number of rows dropped (0 when there is no file)."""
    path = Path(cache_csv)
    keys = cache_keys_used(path) if keys is None else set(keys)
    dropped = 0
    if path.is_file():
        t = read_cost_cache(path)
        keep = t["key"].isin(keys)
        dropped = int((~keep).sum())
        if dropped:
            with atomic_path(path) as tmp:
                t[keep].to_csv(tmp, index=False)
    facts = _facts_path(path)
    if facts is not None and facts.is_file():
        doc = json.loads(facts.read_text())
        if set(doc) - keys:
            write_json_atomic({k: v for k, v in doc.items() if k in keys}, facts, indent=1)
    return dropped


COST_CACHE_COLUMNS = ("key", "phase", "batch", "new_tokens", "context", "seconds", "joules")
MAX_COST_CACHE_BYTES = limit("serving cost-cache file size", 64 << 20, unit="bytes", area="serving",
                             applies_to="bitsim serve --cache", why="a grid of a few hundred simulated points "
                             "per deployment is tens of KB")


def read_cost_cache(path: Path) -> pd.DataFrame:
    """The cached direct simulations (``--cache``): a regular file of bounded size whose times and energies are
    finite and >= 0; anything else is a ``ValueError`` naming the file (a hand-edited cache never reaches a
    result)."""
    check_input_file(path, what="cost cache", expected="a CSV written by bitsim serve --cache",
                     max_bytes=MAX_COST_CACHE_BYTES, why="a cost cache is tens of KB")
    try:
        t = pd.read_csv(path, dtype={"key": str})      # a key of hex digits only must not become a number
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"cost cache {path}: not a CSV written by bitsim serve ({str(e)[:200]})") from None
    missing = [c for c in COST_CACHE_COLUMNS if c not in t.columns]
    if missing:
        raise ValueError(f"cost cache {path}: missing column(s) {missing}; not written by bitsim serve")
    for c in ("batch", "new_tokens", "context", "seconds", "joules"):
        v = pd.to_numeric(t[c], errors="coerce").to_numpy(dtype=float)
        if not (np.isfinite(v) & (v >= 0)).all():
            raise ValueError(f"cost cache {path}: column {c!r} must hold finite numbers >= 0; "
                             f"move the file away to rebuild it")
    if (t["seconds"] <= 0).any():
        raise ValueError(f"cost cache {path}: an iteration of 0 s or less; move the file away to rebuild it")
    return t


def chip_facts(shard: ModelConfig, datapath: str, accel: sim.AcceleratorConfig, tp: int,
               summary: "sim.SimSummary", full: ModelConfig) -> ChipFacts:
    """Weights, KV bytes per token, memory and area of one chip holding ``shard``."""
    kv_token = 2 * shard.n_layers * kv_bytes(shard, 1, 1, 2)
    return ChipFacts(name=accel.name, tp=tp, model=full.name, datapath=datapath,
                     weight_bytes=float(summary.weight_bytes), kv_bytes_per_token=kv_token,
                     capacity_bytes=float(summary.capacity_bytes), area_mm2=float(summary.area_mm2),
                     hidden=full.dim, n_layers=full.n_layers)


def _facts_path(cache_csv: "str | Path | None") -> Path | None:
    return Path(cache_csv).with_suffix(".facts.json") if cache_csv else None


def _cached_facts(ev: TraceEvaluator, cache_csv: "str | Path | None") -> ChipFacts | None:
    p = _facts_path(cache_csv)
    if p is None or not p.exists():
        return None
    doc = json.loads(p.read_text())
    return ChipFacts(**doc[ev.key]) if ev.key in doc else None


def _save_facts(ev: TraceEvaluator, cache_csv: "str | Path | None", facts: ChipFacts) -> None:
    p = _facts_path(cache_csv)
    if p is None:
        return
    doc = json.loads(p.read_text()) if p.exists() else {}
    doc[ev.key] = dataclasses.asdict(facts)
    write_json_atomic(doc, p, indent=1)


def build_cost_model(model: "str | ModelConfig", datapath: str, accelerator: "str | sim.AcceleratorConfig",
                     tp: int = 1, grid: GridConfig | None = None, profile: str = "measured", seed: int = 0,
                     cache_csv: "str | Path | None" = None, progress: Callable[[str], None] | None = None, *,
                     kv_bits: int | None = None, accelerator_overrides: dict | None = None,
                     memory_fraction: float = 1.0) -> GridCostModel:
    """A fitted iteration cost model of ``model`` on ``accelerator`` chips at tensor-parallel degree ``tp``
    (``kv_bits``: the KV cache's bits, None for the datapath's own; ``accelerator_overrides``: dotted paths;
    ``memory_fraction``: the scheduler's share of a chip's memory, beyond which no grid point is simulated)."""
    grid = grid or GridConfig()
    full = model_config(model, datapath, kv_bits)
    shard = shard_config(full, datapath, tp)
    accel = (accelerator if isinstance(accelerator, sim.AcceleratorConfig)
             else make_accelerator(accelerator, accelerator_overrides or {}))
    ev = TraceEvaluator(shard, datapath, accel, tp, profile, seed, cache_csv, progress)
    facts = _cached_facts(ev, cache_csv)
    if facts is None:
        ev.simulate("decode", 1, 1, grid.contexts[0])       # the chip facts (weights, memory, area)
        facts = chip_facts(shard, datapath, accel, tp, ev.last_summary, full)
        _save_facts(ev, cache_csv, facts)
    facts = dataclasses.replace(facts, model=str(model if isinstance(model, str) else model.name), datapath=datapath)
    return GridCostModel(facts=facts, evaluate=ev, tokens=grid.tokens, batches=grid.batches,
                         contexts=grid.contexts, chunks=grid.chunks, memory_fraction=memory_fraction)


def fit_points(grid: GridConfig, cost: GridCostModel | None = None) -> list[tuple[str, int, int, int]]:
    """Shapes off the grid where the fit is checked against direct simulation: decode at every geometric
    midpoint of its batch grid (the batches, and the tokens up to the largest batch: a decode step's weight-bound
    part is interpolated over the tokens, its attention over the batches) and of its contexts, prefill at every
    midpoint of its chunks and of its contexts (``cost``: only decode shapes whose KV cache fits the chip)."""
    def mids(v: tuple) -> list[int]:            # rounded midpoints that fall on a grid value are left out
        return [m for m in (int(round(math.sqrt(x * y))) for x, y in zip(v, v[1:])) if m not in v] or [v[0]]
    batch_grid = tuple(sorted({*grid.batches, *(t for t in grid.tokens if t <= max(grid.batches))}))
    pts = ([("decode", b, 1, c) for c in mids(grid.contexts) for b in mids(batch_grid)]
           + [("prefill", 1, p, p + c) for c in mids(grid.contexts) for p in mids(grid.chunks)])
    return [p for p in pts if cost is None or p[0] == "prefill" or cost.fits(p[1], p[3])]


# ---------------------------------------------------------------------------- running a spec
def run_spec(spec: ServeSpec, cache_csv: "str | Path | None" = None,
             progress: Callable[[str], None] | None = None) -> dict:
    """Build the cost model, search the highest rate meeting the targets (``search.enabled``) and serve the
    workload (at that rate with ``search.serve_at_best``); every table of the run, the summary complete."""
    cost = build_cost_model(spec.model, spec.datapath, spec.accelerator, spec.parallel.tp, spec.grid,
                            spec.profile, spec.seed, cache_csv, progress, kv_bits=spec.kv_bits,
                            accelerator_overrides=spec.accelerator_overrides,
                            memory_fraction=spec.scheduler.memory_fraction)
    out: dict = {"cost": cost, "fit": cost.fit_error(fit_points(spec.grid, cost))}
    workload = spec.workload
    if spec.search.enabled:
        w = dataclasses.replace(workload, requests=spec.search.requests) if spec.search.requests else workload
        best, tried = search_rate(w, cost, spec.scheduler, spec.parallel, spec.interconnect, spec.targets,
                                  spec.search.lo, spec.search.hi, spec.search.rel_tol, progress)
        out["best_rate"], out["search"] = best, tried
        out["chips_needed"] = chips_needed(spec.search.target_rate, best, spec.parallel)
        if spec.search.serve_at_best and best == best:
            workload = dataclasses.replace(workload, rate=best)
    res = serve(workload, cost, spec.scheduler, spec.parallel, spec.interconnect, spec.targets)
    row = dict(res.summary.iloc[0].to_dict(), name=spec.name, model=spec.model, datapath=spec.datapath,
               accelerator=spec.accelerator, profile=spec.profile, target_rate=float(spec.search.target_rate),
               chips_needed=out.get("chips_needed", math.nan))
    if "search" in out:
        row = at_max(row, out["best_rate"], out["search"])
    res.summary = pd.DataFrame([row]).astype({c: res.summary[c].dtype for c in res.summary.columns})
    out["result"] = res
    return out


def chips_needed(target_rate: float, best_rate: float, parallel: ParallelConfig) -> float:
    """Chips to carry ``target_rate`` req/s within the targets: whole deployments of this shape, each
    carrying ``best_rate`` (NaN without a target or when no rate met the targets)."""
    if target_rate <= 0 or not best_rate > 0:
        return math.nan
    return float(math.ceil(target_rate / best_rate - 1e-9) * parallel.chips)


#: The outputs left out by ``small`` (a run of many iterations makes them tens of MB).
LARGE_OUTPUTS = ("requests.csv", "iterations.csv", "timeline.json", "kv_occupancy.png")


def write_outputs(spec: ServeSpec, out: dict, folder: Path, small: bool = False) -> list[Path]:
    """Per-request, per-iteration and summary tables, the fit table, the timeline and the figures
    (``small``: without :data:`LARGE_OUTPUTS`)."""
    res: ServeResult = out["result"]
    summary = res.summary
    summary.attrs = {"spec_digest": spec_digest(spec)}
    paths = [write_table(summary, folder / "summary.csv", "serving_summary")]
    if not small:
        paths += [write_table(res.requests, folder / "requests.csv", "serving_requests"),
                  write_table(res.iterations, folder / "iterations.csv", "serving_iterations"),
                  write_timeline(res.iterations, folder / "timeline.json")]
    fit = out["fit"]
    with atomic_path(folder / "fit.csv") as tmp:
        fit.to_csv(tmp, index=False)
    paths.append(folder / "fit.csv")
    with atomic_path(folder / "occupancy.csv") as tmp:
        occupancy_over_time(res.iterations).to_csv(tmp, index=False)
    paths.append(folder / "occupancy.csv")
    if "search" in out:
        with atomic_path(folder / "search.csv") as tmp:
            out["search"].to_csv(tmp, index=False)
        paths.append(folder / "search.csv")
    paths += plot_run(res, folder, out.get("search"), occupancy=not small)
    doc = dict(spec=spec.name, spec_digest=spec_digest(spec),
               summary=validate(summary, "serving_summary").iloc[0].to_dict(),
               fit_max_abs_error_s=float(np.nanmax(np.abs(fit["error_s"]))) if len(fit) else None,
               chip_facts=dataclasses.asdict(out["cost"].facts))
    paths.append(write_json_atomic(json.loads(json.dumps(doc, default=_json_default)), folder / "summary.json",
                                   indent=2))
    return paths


def run_is_current(spec: ServeSpec, folder: Path) -> bool:
    """Whether ``folder`` holds a finished run of ``spec`` (its summary carries the spec's digest)."""
    f = folder / "summary.json"
    if not f.is_file() or not (folder / "summary.csv").is_file():
        return False
    try:
        return json.loads(f.read_text()).get("spec_digest") == spec_digest(spec)
    except (ValueError, OSError):
        return False


def _json_default(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return str(x)


# ---------------------------------------------------------------------------- figures
def plot_run(res: ServeResult, folder: Path, search: pd.DataFrame | None = None,
             occupancy: bool = True) -> list[Path]:
    """Latency CDFs (TTFT, TPOT, end-to-end), KV occupancy over time and, with a search, throughput vs latency."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    r = res.requests[np.isfinite(res.requests["finish_s"])]
    for ax, m in zip(axes, ("ttft_s", "tpot_s", "e2e_s")):
        x = np.sort(r[m].to_numpy() * 1e3)
        ax.plot(x, np.arange(1, len(x) + 1) / max(len(x), 1))
        ax.set_xlabel(f"{m[:-2].upper()} (ms)")
        ax.set_ylabel("share of requests")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    paths.append(_save(fig, folder / "latency_cdf.png"))
    if occupancy:
        paths.append(_occupancy_figure(res, folder))
    if search is not None and len(search):
        s = search.sort_values("rate")
        fig, ax = plt.subplots(figsize=(6, 3.2))
        for m, lab in (("ttft_p90_s", "TTFT p90"), ("tpot_p90_s", "TPOT p90")):
            ax.plot(s["throughput_rps"], s[m] * 1e3, "o-", label=lab)
        ax.set_xlabel("throughput (req/s)")
        ax.set_ylabel("latency (ms)")
        ax.set_yscale("log")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        paths.append(_save(fig, folder / "throughput_latency.png"))
    return paths


def _occupancy_figure(res: ServeResult, folder: Path) -> Path:
    import matplotlib.pyplot as plt
    occ = occupancy_over_time(res.iterations)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(occ["time_s"], occ["kv_occupancy"], label="KV occupancy")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("share of KV blocks held")
    ax2 = ax.twinx()
    ax2.bar(occ["time_s"], occ["preemptions"], width=(occ["time_s"].diff().median() or 1.0), alpha=0.3,
            color="C3", label="preemptions")
    ax2.set_ylabel("preemptions per window")
    ax2.set_ylim(0, max(1.0, float(occ["preemptions"].max()) * 1.1))
    fig.tight_layout()
    return _save(fig, folder / "kv_occupancy.png")


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------- validation
GPU_MODEL = "llama3-70b"
GPU_DATAPATH = "w8a8-fp8"         # the published runs serve FP8 weights and activations
GPU_TOLERANCE = 0.20
GPU_NOTE = "w8a8-fp8 on h100-like over nvlink4-h100"
#: The request lengths of the published runs the GPU serving checks replay (``arrival_s,prompt_tokens,
#: output_tokens``, every request at t = 0; each file names its source).
PUBLISHED_RUNS = Path(__file__).resolve().parents[2] / "reports" / "specs" / "serving-validation"
#: vLLM v0.5.4 as the published throughput runs started it (LambdaLabsML/vllm-benchmark): its default scheduler
#: -- prefill-first, at most 256 sequences, 2048 tokens per prefill batch at max_model_len 2000.  Its host overhead
#: per iteration comes from :func:`host_overhead`.
VLLM054 = SchedulerConfig(policy="prefill-first", max_batch=256, token_budget=2048)
HOST_FLOOR_MODEL = "llama3-8b"    # the published runs: Meta-Llama-3.1-8B-FP8 on 8 x H100


def published_requests(name: str) -> pd.DataFrame:
    """The requests of one published run (``PUBLISHED_RUNS/<name>.csv``)."""
    return load_requests(PUBLISHED_RUNS / f"{name}.csv")


def host_overhead(cache_csv: "str | Path | None" = None, grid: GridConfig | None = None,
                  progress: Callable[[str], None] | None = None) -> tuple[float, float]:
    """vLLM v0.5.4's host time per iteration, ``(fixed s, s per sequence)``, from a measured floor.

    An 8B FP8 model at TP 8 leaves each GPU ~3-5 ms per step, so the published median inter-token latencies of
    that deployment (4.52 ms at 10 requests, 18.33 ms at 320: the ``host`` anchors) are mostly host time -- the
    Python scheduler, input preparation, sampling and detokenization of a runtime that does not overlap them with
    the GPU, much of it per sequence.  The two unknowns are solved so that the simulated runs of those two
    request sets (:data:`VLLM054` on ``h100-like``, TP 8) reproduce the two latencies; no 70B number enters."""
    cost = build_cost_model(HOST_FLOOR_MODEL, GPU_DATAPATH, "h100-like", 8, grid or GridConfig(), "measured", 0,
                            cache_csv, progress)
    runs = [(published_requests("sharegpt-8b-tp8-10"), anchor("h100.8b.tp8_median_itl_10prompts") * 1e-3),
            (published_requests("sharegpt-8b-tp8-320"), anchor("h100.8b.tp8_median_itl_320prompts") * 1e-3)]
    target = np.array([y for _, y in runs])

    def itl(h: np.ndarray) -> np.ndarray:
        sch = dataclasses.replace(VLLM054, host_overhead_s=float(h[0]), host_overhead_s_per_seq=float(h[1]))
        return np.array([serve(w, cost, sch, ParallelConfig(tp=8), "nvlink4-h100").summary["itl_p50_s"].iloc[0]
                         for w, _ in runs])

    h = np.zeros(2)
    steps = (np.array([1e-4, 0.0]), np.array([0.0, 1e-6]))
    for _ in range(4):              # the median gap is linear in both unknowns between batch changes
        f = itl(h)
        if np.allclose(f, target, rtol=1e-6, atol=0):
            break
        jac = np.column_stack([(itl(h + d) - f) / d.sum() for d in steps])
        h = h + np.linalg.solve(jac, target - f)
    if (h < 0).any() or not np.allclose(itl(h), target, rtol=1e-3, atol=0):
        raise ValueError(f"host_overhead: no non-negative (fixed, per-sequence) host time reproduces the published "
                         f"floor {target * 1e3} ms (got {h} s)")
    return float(h[0]), float(h[1])


def gpu_checks(cache_csv: "str | Path | None" = None, grid: GridConfig | None = None,
               progress: Callable[[str], None] | None = None) -> tuple[pd.DataFrame, dict]:
    """The GPU preset against published 70B serving numbers: inter-token latency at TP 2 and concurrency 1, and
    the published vLLM v0.5.4 throughput runs at TP 2 and TP 8 (their request lengths, all sent at once, vLLM's
    default scheduler and its host overhead, :func:`host_overhead`): the TP 8 over TP 2 throughput, each output
    throughput and each median inter-token latency.  Rows and the runs behind them."""
    src = anchors().set_index("name")["source"]
    grid = grid or GridConfig()
    runs = {}
    costs = {tp: build_cost_model(GPU_MODEL, GPU_DATAPATH, "h100-like", tp, grid, "measured", 0, cache_csv, progress)
             for tp in (2, 8)}
    one = pd.DataFrame([(0.0, 1000, 1000)], columns=["arrival_s", "prompt_tokens", "output_tokens"])
    itl = serve(one, costs[2], SchedulerConfig(), ParallelConfig(tp=2), "nvlink4-h100")     # no host time: NVIDIA's
    runs["itl_tp2"] = itl                                                                  # engine hides it
    rows = [row(f"70B inter-token latency, TP 2, concurrency 1 (1000 in / 1000 out; {GPU_NOTE})", "serving",
                itl.requests["tpot_s"].iloc[0] * 1e3, anchor("h100.70b.tp2_itl_concurrency1"), "ms", GPU_TOLERANCE,
                src["h100.70b.tp2_itl_concurrency1"])]
    h0, h1 = host_overhead(cache_csv, grid, progress)
    sch = dataclasses.replace(VLLM054, host_overhead_s=h0, host_overhead_s_per_seq=h1)
    note = (f"320 ShareGPT requests at once, vLLM v0.5.4 scheduler, host {h0 * 1e3:.2f} ms + {h1 * 1e6:.0f} us per "
            f"sequence per iteration; {GPU_NOTE}")
    tput = {}
    for tp in (2, 8):
        res = serve(published_requests("sharegpt-70b-tp2"), costs[tp], sch, ParallelConfig(tp=tp), "nvlink4-h100")
        runs[f"vllm054_tp{tp}"] = res
        s = res.summary.iloc[0]
        tput[tp] = float(s["output_tokens_per_s"])
        for what, value, name, unit in (("output throughput", tput[tp], f"tp{tp}_output_tps_vllm054", "token/s"),
                                        ("median inter-token latency", s["itl_p50_s"] * 1e3,
                                         f"tp{tp}_median_itl_vllm054", "ms")):
            rows.append(row(f"70B {what}, TP {tp} ({note})", "serving", value, anchor(f"h100.70b.{name}"), unit,
                            GPU_TOLERANCE, src[f"h100.70b.{name}"]))
    rows.append(row(f"70B output throughput TP 8 / TP 2 ({note})", "serving", tput[8] / tput[2],
                    anchor("h100.70b.tp8_over_tp2_throughput"), "ratio", GPU_TOLERANCE,
                    src["h100.70b.tp8_over_tp2_throughput"]))
    for tp, cost in costs.items():
        fit = cost.fit_error(fit_points(grid, cost))
        for r in fit.itertuples(index=False):
            rows.append(row(f"cost-model fit, {GPU_MODEL} {GPU_DATAPATH} h100-like TP {tp}: {r.phase} batch {r.batch} "
                            f"new {r.new_tokens} context {r.context}", "fit", r.fitted_s, r.direct_s, "s", 0.10,
                            "direct sim.simulate of the same shape"))
    return pd.DataFrame(rows), runs


#: The measured batched decode tokens the per-iteration latency is checked against (a measured_trace table).
MEASURED_ITERATIONS = Path(__file__).resolve().parents[2] / "reports" / "data" / "measured_h100_kernels2.parquet"
ITERATION_MODEL = "7b"            # the measured tokens run LLaMA-7B (32 blocks, FP16 LM head over 32000 words)


def iteration_simulator(progress: Callable[[str], None] | None = None) -> Callable[[pd.Series], tuple[float, str]]:
    """``row -> (simulated us, preset)`` for a measured decode token (a ``measured_trace`` row): one decode
    iteration of :data:`ITERATION_MODEL` on the KV bits the measured program ran
    (:func:`sim.validation.measured_kv_bits`) at batch ``M`` and context ``K``, the op trace the serving cost
    model builds with each op's kernel launches as the measured program (the row's ``variant``) issues them
    (:func:`sim.validation.with_launches`), on the preset that matches how it was measured (the GPU's
    measured-ceilings preset for the torch baselines, its fitted preset for ours).  Nothing is fitted to
    these rows."""
    accels: dict[str, sim.AcceleratorConfig] = {}

    def simulate_us(r: pd.Series) -> tuple[float, str]:
        pair = gpu_presets(str(r["gpu"]))
        if pair is None:
            raise ValueError(f"measured decode token {r['kernel']}: no simulator preset for GPU {r['gpu']!r}; "
                             f"known: {sorted(GPU_PRESETS)}")
        preset = pair[0] if str(r["impl"]) == "baseline" else pair[1]
        datapath = str(r["precision"])
        shard = model_config(ITERATION_MODEL, datapath, measured_kv_bits(datapath, r["kv_bits"]))
        trace = build_trace(shard, datapath, phase="decode", context=int(r["K"]), batch=int(r["M"]), seed=0,
                            profile="measured")
        accel = accels.setdefault(preset, make_accelerator(preset, {}))
        res = sim.simulate(with_launches(trace, str(r["variant"]), datapath), accel)
        if progress:
            progress(f"decode iteration {r['kernel']} batch {int(r['M'])} on {preset}: "
                     f"{res.summary.latency_s * 1e3:.3f} ms")
        return res.summary.latency_s * 1e6, preset
    return simulate_us


def iteration_table(measured: "pd.DataFrame | str | Path" = MEASURED_ITERATIONS,
                    progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """The per-iteration latency rows (group ``iteration``) against the measured batched decode tokens."""
    source = "measured batched decode"
    if not isinstance(measured, pd.DataFrame):
        source = Path(measured).name
        measured = read_table(measured, "measured_trace")
    return iteration_checks(measured, iteration_simulator(progress), source)


#: One GPU's share of a tensor-parallel 70B decode step, measured (kernels/bench/shard.py, a measured_trace table).
MEASURED_SHARDS = Path(__file__).resolve().parents[2] / "reports" / "data" / "measured_h100_shard.parquet"
SHARD_MODEL = "llama3-70b"        # the measured shards cut kernels.bench.tensor_parallel.LLAMA_70B (Llama-3-70B's)


def shard_linear_us(tp: int, batch: int, accel: sim.AcceleratorConfig) -> tuple[float, int]:
    """Simulated µs of one layer's linear part of the 70B W8A8-FP8 shard at degree ``tp`` and batch ``batch`` (the
    ops the measured ``shard_linear`` program runs, with its launches), and the kernels that program launches."""
    trace = build_trace(shard_config(SHARD_MODEL, GPU_DATAPATH, tp), GPU_DATAPATH, phase="decode", context=1,
                        batch=batch, seed=0, profile="measured")
    counts = launch_counts("shard_linear", GPU_DATAPATH, False)
    one = with_launches(trace[(trace["layer"] == 0) & trace["op"].isin(list(counts))], "shard_linear", GPU_DATAPATH)
    return sim.simulate(one, accel).summary.latency_s * 1e6, int(one["launches"].sum())


def shard_table(measured: "pd.DataFrame | str | Path" = MEASURED_SHARDS) -> pd.DataFrame:
    """Rows (group ``shard``): one GPU's share of a tensor-parallel 70B decode layer's linear part, simulated on the
    GPU's measured-ceilings preset against the measured ``shard_linear`` rows (W8A8-FP8), within
    :data:`ITERATION_TOLERANCE`; nothing is fitted to them.  The check names the kernels the measured program launches
    beside the launch table's count.  No rows when the table is absent."""
    source = "measured shards"
    if not isinstance(measured, pd.DataFrame):
        if not Path(measured).exists():
            return pd.DataFrame(columns=ROW_COLUMNS)
        source = Path(measured).name
        measured = read_table(measured, "measured_trace")
    sel = measured[(measured["op"] == "shard_linear") & (measured["precision"] == GPU_DATAPATH)]
    accels: dict[str, sim.AcceleratorConfig] = {}
    out = []
    for _, r in sel.iterrows():
        pair = gpu_presets(str(r["gpu"]))
        if pair is None:
            raise ValueError(f"measured shard {r['kernel']}: no simulator preset for GPU {r['gpu']!r}; "
                             f"known: {sorted(GPU_PRESETS)}")
        accel = accels.setdefault(pair[0], make_accelerator(pair[0], {}))
        us, launches = shard_linear_us(int(r["tp"]), int(r["M"]), accel)
        what = f"prefill of {int(r['M'])} tokens" if int(r["M"]) > VLLM054.max_batch else f"batch {int(r['M'])}"
        out.append(row(f"70B layer linear part, TP {int(r['tp'])} shard, {what} ({GPU_DATAPATH}, "
                       f"{launches} launches; measured program {int(r['launches'])} kernels) on {pair[0]}", "shard",
                       us, float(r["us"]), "us", ITERATION_TOLERANCE,
                       f"{source}: shard_linear {r['kernel']} M={int(r['M'])} ({r['gpu']})"))
    return pd.DataFrame(out, columns=ROW_COLUMNS)


def validation_table(cache_csv: "str | Path | None" = None, progress: Callable[[str], None] | None = None,
                     gpu: bool = True) -> pd.DataFrame:
    """Every serving validation row: hand cases, all-reduce latencies, GPU serving numbers, cost-model fits,
    the per-iteration latency against measured batched decode and the measured 70B tensor-parallel shards."""
    parts = [hand_checks(), allreduce_checks()]
    if gpu:
        parts.append(gpu_checks(cache_csv, progress=progress)[0])
        parts.append(iteration_table(progress=progress))
        parts.append(shard_table())
    # a group with no rows (no measured shards yet) is left out: an empty frame would untype the table's columns
    return validate(pd.concat([p for p in parts if len(p)], ignore_index=True), "serving_validation")


# ---------------------------------------------------------------------------- the study's serving comparison
@dataclass(frozen=True, kw_only=True)
class Deployment:
    label: str
    model: str
    datapath: str
    accelerator: str
    tp: int = 1


def compare_deployments(deployments: list[Deployment], workload: WorkloadConfig, scheduler: SchedulerConfig,
                        targets: Targets, interconnect: "InterconnectConfig | str | None" = None,
                        target_rate: float = 0.0, grid: GridConfig | None = None,
                        cache_csv: "str | Path | None" = None, lo: float = 0.05, hi: float = 200.0,
                        progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Each deployment at the highest rate meeting the same targets: chips, tokens per joule, tokens/s per mm2."""
    rows = []
    for d in deployments:
        cost = build_cost_model(d.model, d.datapath, d.accelerator, d.tp, grid, cache_csv=cache_csv, progress=progress)
        par = ParallelConfig(tp=d.tp)
        best, tried = search_rate(workload, cost, scheduler, par, interconnect, targets, lo=lo, hi=hi)
        at = tried[tried["rate"] == best].iloc[0] if best == best else tried.iloc[0]
        rows.append(dict(label=d.label, model=d.model, datapath=d.datapath, accelerator=d.accelerator, tp=d.tp,
                         best_rate=best, chips=par.chips, chips_needed=chips_needed(target_rate, best, par),
                         tokens_per_j=at["tokens_per_j"], output_tokens_per_s=at["output_tokens_per_s"],
                         output_tokens_per_s_per_chip=at["output_tokens_per_s_per_chip"],
                         output_tokens_per_s_per_mm2=at["output_tokens_per_s_per_mm2"],
                         ttft_p90_s=at["ttft_p90_s"], tpot_p90_s=at["tpot_p90_s"],
                         weight_gb_per_chip=cost.facts.weight_bytes / 1e9, area_mm2_per_chip=cost.facts.area_mm2))
    return pd.DataFrame(rows)
