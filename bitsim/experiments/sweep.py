"""Design-space sweeps: a YAML spec of accelerator parameters x workloads,
run point by point in parallel, each finished point saved at once, resumable.

Spec (every field is checked; an unknown one is an error naming it)::

    name: edge-array                  # optional label
    accelerator:
      base: a4.8                      # sim preset name or accelerator YAML path
      grid:                           # cartesian product; keys are dotted paths into
        arrays.ternary.rows: [64, 128]  # the accelerator YAML (sim/presets/*.yaml);
        offchip.bandwidth_gbps: [409.6, 1638.4]   # arrays by name or index
      points:                         # optional explicit override sets, each
        - {clock_ghz: 1.5}            # crossed with the grid
    workloads:                        # a grid (lists) or a list of such mappings
      preset: [2b4t]
      datapath: [b1.58, a4.8]
      phase: [decode]
      context: [2048]

Results: ``-o RESULTS.parquet`` is a directory of one Parquet file per point,
``point-<id>.parquet``, where ``<id>`` hashes the point's workload and
accelerator parameters.  A part is written to a hidden temporary file and
renamed into place (atomic on POSIX), so a killed sweep leaves only whole
points; rerunning skips every point whose part exists: none lost, none
duplicated.  ``pandas.read_parquet(RESULTS.parquet)`` reads the whole set
(files starting with ``_`` or ``.`` are ignored by Arrow).

Parallelism: local processes (``concurrent.futures``) by default; past one
machine, Dask distributed (``backend="dask"`` with a scheduler address, or a
``LocalCluster``).  Only the calling process writes results, so every backend
produces the same files.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd

import sim
from contract import MAX_BATCH, MAX_CONTEXT, MAX_PREFILL_TOKENS, PHASES, validate
from contract.config import check_fields, load_yaml, quote
from model.trace import build_trace
from sim.config import from_dict

SPEC_FIELDS = ("name", "description", "accelerator", "workloads")
ACCEL_FIELDS = ("base", "grid", "points")
WORKLOAD_FIELDS = ("preset", "datapath", "phase", "context", "batch", "prefill_tokens", "profile", "seed")
WORKLOAD_DEFAULTS: dict[str, Any] = {"phase": "decode", "context": 2048, "batch": 1,
                                     "prefill_tokens": None, "profile": "measured", "seed": 0}
PART_PREFIX = "point-"
BACKENDS = ("process", "dask", "serial")

# ---------------------------------------------------------------------------
# Spec
# ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: one accelerator base, override sets, workloads."""
    name: str
    accelerator_base: str
    overrides: tuple[dict, ...]          # one dict (dotted path -> value) per hardware point
    workloads: tuple[dict, ...]          # full workload dicts (every WORKLOAD_FIELDS key)

    def points(self) -> list[dict]:
        """Every (workload x hardware) point, each with a ``point_id`` that hashes its contents."""
        out = []
        hw = [(dict(ov), accelerator_digest(self.accelerator_base, ov)) for ov in self.overrides]
        for w in self.workloads:
            wd = workload_digest(w)
            for ov, ad in hw:
                p = {"workload": dict(w), "accelerator": self.accelerator_base, "overrides": ov}
                p["point_id"] = _digest({"workload": wd, "accelerator": ad})
                out.append(p)
        return out

    def digest(self) -> str:
        """Hash of the whole resolved spec: one results folder holds one spec."""
        return _digest(sorted(p["point_id"] for p in self.points()))


def _digest(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def _file_digest(path: str) -> str | None:
    p = Path(path)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return hashlib.sha1(p.read_bytes()).hexdigest()
    return None


def accelerator_digest(base: str, overrides: Mapping[str, Any]) -> str:
    """Hash of the resolved accelerator (base YAML contents + overrides, as validated), not of a path:
    editing the base file changes every point's id, so a resumed sweep never keeps stale results."""
    return _digest(dataclasses.asdict(make_accelerator(base, overrides)))


def workload_digest(workload: Mapping[str, Any]) -> str:
    """Hash of a workload; a model given as a YAML path is hashed by its contents."""
    return _digest({**dict(workload), "preset_file": _file_digest(str(workload["preset"]))})


def point_id(point: Mapping[str, Any]) -> str:
    """Content hash of a point: its workload and its resolved accelerator."""
    return _digest({"workload": workload_digest(point["workload"]),
                    "accelerator": accelerator_digest(point["accelerator"], point["overrides"])})


def _unknown(given: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    """The one field check of every config (contract.config), worded for a sweep spec."""
    check_fields(given, allowed, f"sweep spec: {where}")


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


MAX_POINTS = 100_000  # a sweep spec expands to at most this many points (each takes ~0.05-1 s)


def _grid(mapping: Mapping[str, Any]) -> list[dict]:
    keys = list(mapping)
    size = 1
    for k in keys:
        size *= max(len(_as_list(mapping[k])), 1)
        if size > MAX_POINTS:
            raise ValueError(f"sweep spec: the grid over {keys} has more than {MAX_POINTS} points; "
                             f"split the sweep")
    return [dict(zip(keys, combo)) for combo in itertools.product(*(_as_list(mapping[k]) for k in keys))]


def _check_workload(w: dict, where: str) -> dict:
    _unknown(w, WORKLOAD_FIELDS, where)
    if "preset" not in w or "datapath" not in w:
        raise ValueError(f"sweep spec: {where} needs 'preset' and 'datapath'")
    full = {**WORKLOAD_DEFAULTS, **w}
    for key in ("preset", "datapath", "phase", "profile"):
        if not isinstance(full[key], str):
            raise ValueError(f"sweep spec: {where}.{key} must be a string, got {full[key]!r}")
    if full["phase"] not in PHASES:
        raise ValueError(f"sweep spec: {where}.phase must be one of {PHASES}, got {full['phase']!r}")
    for key, limit in (("context", MAX_CONTEXT), ("batch", MAX_BATCH)):
        if not isinstance(full[key], int) or isinstance(full[key], bool) or full[key] <= 0:
            raise ValueError(f"sweep spec: {where}.{key} must be a positive integer, got {quote(full[key])}")
        if full[key] > limit:
            raise ValueError(f"sweep spec: {where}.{key} = {full[key]} is above the limit of {limit}")
    pt = full["prefill_tokens"]
    if pt is not None and (not isinstance(pt, int) or isinstance(pt, bool) or not 0 < pt <= MAX_PREFILL_TOKENS):
        raise ValueError(f"sweep spec: {where}.prefill_tokens must be an integer in 1..{MAX_PREFILL_TOKENS}, "
                         f"got {quote(pt)}")
    return full


def parse_spec(raw: Mapping[str, Any], check_accelerator: bool = True) -> SweepSpec:
    """Validate a spec mapping (as loaded from YAML) into a :class:`SweepSpec`.

    With ``check_accelerator`` the base accelerator is loaded and every
    override path is applied once, so a misspelt parameter fails here,
    before any point runs.
    """
    if not isinstance(raw, Mapping):
        raise ValueError(f"sweep spec must be a mapping, got {type(raw).__name__}")
    _unknown(raw, SPEC_FIELDS, "the spec")
    for key in ("accelerator", "workloads"):
        if key not in raw:
            raise ValueError(f"sweep spec: missing field {key!r}")
    acc = raw["accelerator"]
    if isinstance(acc, str):
        acc = {"base": acc}
    if not isinstance(acc, Mapping):
        raise ValueError("sweep spec: 'accelerator' must be a preset name or a mapping")
    _unknown(acc, ACCEL_FIELDS, "accelerator")
    if "base" not in acc or not isinstance(acc["base"], str):
        raise ValueError("sweep spec: accelerator.base (a sim preset name or YAML path) is required")
    grid = acc.get("grid") or {}
    if not isinstance(grid, Mapping):
        raise ValueError("sweep spec: accelerator.grid must map parameter paths to value lists")
    for k, v in grid.items():
        if isinstance(v, (list, tuple)) and len(v) == 0:
            raise ValueError(f"sweep spec: accelerator.grid.{k} is an empty list")
    extra = acc.get("points") or [{}]
    if not isinstance(extra, list) or not all(isinstance(p, Mapping) for p in extra):
        raise ValueError("sweep spec: accelerator.points must be a list of mappings")
    grid_points = _grid(grid)
    if len(extra) * len(grid_points) > MAX_POINTS:
        raise ValueError(f"sweep spec: {len(extra)} points x {len(grid_points)} grid values is more than "
                         f"{MAX_POINTS} hardware points; split the sweep")
    overrides = tuple({**g, **dict(p)} for p in extra for g in grid_points)

    wl = raw["workloads"]
    if isinstance(wl, Mapping):
        _unknown(wl, WORKLOAD_FIELDS, "workloads")
        wl_list = _grid(wl)
    elif isinstance(wl, list) and wl:
        wl_list = []
        for i, w in enumerate(wl):
            if not isinstance(w, Mapping):
                raise ValueError(f"sweep spec: workloads[{i}] must be a mapping")
            _unknown(w, WORKLOAD_FIELDS, f"workloads[{i}]")
            wl_list += _grid(w)
    else:
        raise ValueError("sweep spec: 'workloads' must be a mapping or a non-empty list of mappings")
    if len(wl_list) * len(overrides) > MAX_POINTS:
        raise ValueError(f"sweep spec: {len(wl_list)} workloads x {len(overrides)} hardware points is more "
                         f"than {MAX_POINTS} points; split the sweep")
    workloads = tuple(_check_workload(w, f"workloads[{i}]") for i, w in enumerate(wl_list))
    spec = SweepSpec(name=str(raw.get("name", "sweep")), accelerator_base=acc["base"],
                     overrides=overrides, workloads=workloads)
    if check_accelerator:
        for ov in spec.overrides:
            make_accelerator(spec.accelerator_base, ov)
    return spec


def load_spec(path: str | Path, check_accelerator: bool = True) -> SweepSpec:
    """Read and validate a sweep spec YAML file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such sweep spec: {path}")
    return parse_spec(load_yaml(path), check_accelerator=check_accelerator)


# ---------------------------------------------------------------------------
# One point: build (cached) trace, apply overrides, simulate
# ---------------------------------------------------------------------------
def _set_path(obj: Any, path: list[str], value: Any, full: str) -> Any:
    """Copy of ``obj`` (nested dicts / lists, as parsed from YAML) with ``path`` set to ``value``."""
    head, rest = path[0], path[1:]
    if isinstance(obj, (tuple, list)):
        # element by index ("arrays.0.rows") or by its name ("arrays.main.rows")
        names = [e.get("name") if isinstance(e, Mapping) else None for e in obj]
        if head.isdigit() and int(head) < len(obj):
            idx = int(head)
        elif head in names:
            idx = names.index(head)
        else:
            raise ValueError(f"unknown accelerator parameter {full!r}: {head!r} is neither an index "
                             f"below {len(obj)} nor one of the names {names}")
        new = value if not rest else _set_path(obj[idx], rest, value, full)
        return [new if k == idx else e for k, e in enumerate(obj)]
    if isinstance(obj, Mapping):
        if head not in obj:
            raise ValueError(f"unknown accelerator parameter {full!r}: {head!r} is not one of {sorted(obj)}")
        new = value if not rest else _set_path(obj[head], rest, value, full)
        return {**obj, head: new}
    raise ValueError(f"unknown accelerator parameter {full!r}: {head!r} is below a plain value")


@lru_cache(maxsize=32)
def _cached_accelerator(base: str, contents: str | None):
    return sim.load_accelerator(base)


def _base_accelerator(base: str):
    """The base accelerator, cached by name and file contents (an edited YAML is loaded again)."""
    return _cached_accelerator(base, _file_digest(base))


def make_accelerator(base: str, overrides: Mapping[str, Any]):
    """Load accelerator ``base`` and apply dotted-path ``overrides``.

    Paths name fields of the accelerator YAML (``clock_ghz``,
    ``offchip.bandwidth_gbps``, ``arrays.0.rows`` or ``arrays.<name>.rows``,
    ``arrays.0.pe_ops`` for the supported precisions, ``sparsity.skip_compute``
    ...).  The changed description is re-validated by sim's own loader, so a
    wrong type or a negative size fails with sim's message naming the field.
    """

    acc = _base_accelerator(base)
    if not overrides:
        return acc
    raw: Any = dataclasses.asdict(acc)
    for key, value in overrides.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"accelerator parameter names must be dotted strings, got {key!r}")
        raw = _set_path(raw, key.split("."), value, key)
    return from_dict(raw, where=f"{acc.name} + sweep overrides")


@lru_cache(maxsize=16)
def cached_trace(preset: str, datapath: str, phase: str, context: int, batch: int,
                 seed: int, profile: str, prefill_tokens: int | None) -> pd.DataFrame:
    """Build an op trace once per process and reuse it for every hardware point."""
    return build_trace(preset, datapath, phase=phase, context=context, batch=batch, seed=seed,
                       profile=profile, prefill_tokens=prefill_tokens)


#: Summary fields that are labels or nested records, not numbers of the run (left out of summary_row).
SUMMARY_LABELS = ("accelerator", "comparison", "energy_basis", "phase", "fallback_ops", "ops", "clock_ghz")


def summary_row(summary: Mapping[str, Any]) -> dict:
    """Every number of sim's summary as flat scalar columns, read by name: tokens, cycles, latency,
    throughput, energy, bytes, footprint, component energies as J per token, cycles per bound, and any
    other number sim reports (area, power, feasibility ...), so a new summary field reaches every results
    table unrenamed."""
    tokens = float(summary.get("tokens") or 1)
    row: dict[str, Any] = {}
    for k in summary:
        v = summary[k]
        if k in SUMMARY_LABELS or v is None:
            continue
        if isinstance(v, (bool, np.bool_)):
            row[k] = bool(v)
        elif isinstance(v, (int, float, np.integer, np.floating)):
            row[k] = float(v)
        elif isinstance(v, Mapping) and all(isinstance(x, (int, float, np.integer, np.floating)) for x in v.values()):
            if k == "energy_j_by_component":
                row.update({f"energy_{c}_j": float(j) / tokens for c, j in v.items()})
            elif k == "cycles_by_bound":
                row.update({f"cycles_{b}_bound": float(c) for b, c in v.items()})
            else:
                row.update({f"{k}_{n}": float(x) for n, x in v.items()})
    return row


def evaluate_point(point: Mapping[str, Any]) -> dict:
    """Simulate one sweep point; returns one flat results row."""

    w = point["workload"]
    trace = cached_trace(w["preset"], w["datapath"], w["phase"], w["context"], w["batch"],
                         w["seed"], w["profile"], w["prefill_tokens"])
    acc = make_accelerator(point["accelerator"], point["overrides"])
    result = sim.simulate(trace, acc)
    row = {"point_id": point["point_id"], **{k: w[k] for k in WORKLOAD_FIELDS},
           "accelerator": point["accelerator"]}
    row["prefill_tokens"] = -1 if w["prefill_tokens"] is None else int(w["prefill_tokens"])
    for k, v in point["overrides"].items():
        # one column type per parameter across all part files: numbers as float, structures as JSON
        if isinstance(v, (list, tuple, dict)):
            v = json.dumps(v, sort_keys=True)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            v = float(v)
        row[f"hw.{k}"] = v
    row.update(summary_row(result.summary))
    return row


# ---------------------------------------------------------------------------
# Results directory
# ---------------------------------------------------------------------------
def part_path(out_dir: Path, pid: str) -> Path:
    return out_dir / f"{PART_PREFIX}{pid}.parquet"


def _part_ok(path: Path) -> bool:
    """A part is finished when it reads as one sweep_results row holding its own point id."""
    try:
        df = pd.read_parquet(path)
        validate(df, "sweep_results")
    except Exception:  # any unreadable, truncated or foreign file is not a finished point
        return False
    return len(df) == 1 and str(df["point_id"].iloc[0]) == path.stem[len(PART_PREFIX):]


def done_ids(out_dir: Path, repair: bool = False) -> set[str]:
    """Ids of the points whose part file is whole; with ``repair``, corrupt parts are removed (and rerun)."""
    out_dir = Path(out_dir)
    if not out_dir.exists():
        return set()
    done = set()
    for p in sorted(out_dir.glob(f"{PART_PREFIX}*.parquet")):
        if _part_ok(p):
            done.add(p.stem[len(PART_PREFIX):])
        elif repair:
            print(f"sweep: {p.name} is corrupt or truncated; recomputing it", file=sys.stderr, flush=True)
            p.unlink(missing_ok=True)
    return done


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_dead_temporaries(out_dir: Path) -> None:
    """Delete temporary parts of sweeps that died; a live sweep's temporaries (same folder) stay."""
    for tmp in out_dir.glob(".tmp-*.parquet"):
        try:
            pid = int(tmp.stem.split("-")[-2])
        except (IndexError, ValueError):
            pid = -1
        if pid <= 0 or not _pid_alive(pid):
            tmp.unlink(missing_ok=True)


def write_part(out_dir: Path, row: Mapping[str, Any]) -> Path:
    """Write one point's row atomically: temp file in the same folder, then rename."""
    final = part_path(out_dir, row["point_id"])
    tmp = out_dir / f".tmp-{row['point_id']}-{os.getpid()}-{os.urandom(4).hex()}.parquet"
    pd.DataFrame([dict(row)]).to_parquet(tmp, index=False)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    return final


def read_results(out_dir: str | Path, spec: SweepSpec | None = None) -> pd.DataFrame:
    """All finished points in ``out_dir`` (only ``spec``'s points when given), sorted by id."""
    out_dir = Path(out_dir)
    parts = sorted(out_dir.glob(f"{PART_PREFIX}*.parquet"))
    if spec is not None:
        want = {p["point_id"] for p in spec.points()}
        parts = [p for p in parts if p.stem[len(PART_PREFIX):] in want]
    if not parts:
        return pd.DataFrame()
    df = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    return validate(df.sort_values("point_id", ignore_index=True), "sweep_results")


# ---------------------------------------------------------------------------
# Runner
# ---------------------------------------------------------------------------
class Progress:
    """One line per finished point on stderr: count, rate, ETA."""

    def __init__(self, total: int, already: int, stream=None, enabled: bool = True):
        self.total, self.done, self.t0 = total, already, time.perf_counter()
        self.new = 0
        self.stream = stream or sys.stderr
        self.enabled = enabled

    def step(self, label: str) -> None:
        self.done += 1
        self.new += 1
        if not self.enabled:
            return
        el = time.perf_counter() - self.t0
        eta = el / self.new * (self.total - self.done)
        print(f"[{self.done}/{self.total}] {label}  ({el:.1f}s elapsed, ~{eta:.0f}s left)",
              file=self.stream, flush=True)


def _label(point: Mapping[str, Any]) -> str:
    w = point["workload"]
    hw = " ".join(f"{k}={v}" for k, v in point["overrides"].items())
    return f"{w['preset']}/{w['datapath']}/{w['phase']}@{w['context']} {hw}".strip()


MANIFEST = "_spec.json"  # Arrow skips files starting with "_" when it reads the folder as one table


def _is_sweep_file(name: str) -> bool:
    return (name == MANIFEST or (name.startswith(PART_PREFIX) and name.endswith(".parquet"))
            or (name.startswith(".tmp-") and name.endswith(".parquet")) or name.startswith(f".{MANIFEST}."))


def _claim_folder(out_dir: Path, spec: SweepSpec) -> None:
    """Write (or check) the folder's manifest: one results folder holds the points of one spec."""
    path = out_dir / MANIFEST
    digest = spec.digest()
    if path.exists():
        try:
            have = json.loads(path.read_text()).get("spec_digest")
        except (OSError, ValueError):
            have = None
        if have != digest:
            raise ValueError(f"{out_dir}: holds the results of another sweep spec (digest {have}, this spec "
                             f"{digest}); write to another folder or remove that one")
        return
    body = {"spec_digest": digest, **dataclasses.asdict(spec)}
    tmp = out_dir / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(body, indent=1, default=str))
    os.replace(tmp, path)


def run_sweep(spec: SweepSpec, out_dir: str | Path, workers: int | None = None,
              backend: str = "process", scheduler: str | None = None, progress: bool = True,
              evaluate: Callable[[Mapping[str, Any]], dict] = evaluate_point) -> pd.DataFrame:
    """Run every point of ``spec`` not yet in ``out_dir``; return all of its results.

    ``backend``: ``"process"`` (local process pool of ``workers``),
    ``"dask"`` (``scheduler`` address, or a LocalCluster of ``workers``
    when None), or ``"serial"``.  Each finished point is written at once.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: exists and is not a sweep results folder")
    foreign = [f.name for f in out_dir.iterdir() if not _is_sweep_file(f.name)] if out_dir.is_dir() else []
    if foreign:
        raise ValueError(f"{out_dir}: is a folder that holds no sweep results ({quote(foreign[:3])}); "
                         f"choose another output")
    out_dir.mkdir(parents=True, exist_ok=True)
    _claim_folder(out_dir, spec)
    remove_dead_temporaries(out_dir)
    points = spec.points()
    have = done_ids(out_dir, repair=True)
    todo = [p for p in points if p["point_id"] not in have]
    # group by workload so a worker's trace cache is reused across hardware points
    todo.sort(key=lambda p: json.dumps(p["workload"], sort_keys=True, default=str))
    prog = Progress(len(points), len(points) - len(todo), enabled=progress)
    if progress:
        print(f"sweep {spec.name!r}: {len(points)} points, {len(points) - len(todo)} already done, "
              f"{len(todo)} to run ({backend})", file=sys.stderr, flush=True)

    def finish(point, row):
        write_part(out_dir, row)
        prog.step(_label(point))

    if not todo:
        pass
    elif backend == "serial" or (backend == "process" and workers == 1):
        for p in todo:
            finish(p, evaluate(p))
    elif backend == "process":
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed
        n = workers or min(len(todo), os.cpu_count() or 1)
        with ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("spawn"),
                                 initializer=exit_with_parent, initargs=(os.getpid(),)) as ex:
            futs = {ex.submit(evaluate, p): p for p in todo}
            for fut in as_completed(futs):
                finish(futs[fut], fut.result())
    else:
        _run_dask(todo, evaluate, finish, workers, scheduler)
    return read_results(out_dir, spec)


def exit_with_parent(parent_pid: int, period_s: float = 0.5) -> None:
    """Worker initializer: end this process when ``parent_pid`` dies (kill -9 of the sweep included)."""
    import threading

    def watch() -> None:
        while True:
            time.sleep(period_s)
            if os.getppid() != parent_pid:
                os._exit(3)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _run_dask(todo, evaluate, finish, workers, scheduler) -> None:
    """Submit points to a Dask cluster; results come back here to be written."""
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers or 2, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        futs = client.map(evaluate, todo, pure=False)
        by_key = {f.key: p for f, p in zip(futs, todo)}
        for fut in as_completed(futs):
            finish(by_key[fut.key], fut.result())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
