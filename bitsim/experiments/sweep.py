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
      # batch, prefill_tokens, profile, seed; kv_bits: the KV cache's bits (2-7 or 16), left out = the
      # datapath's own (results: -1)

Results: ``-o RESULTS.parquet`` is a directory of one Parquet file per point,
``point-<id>.parquet``, where ``<id>`` hashes the point's workload and
accelerator parameters.  A part is written to a hidden temporary file and
renamed into place (atomic on POSIX), so a killed sweep leaves only whole
points; rerunning skips every point whose part exists: none lost, none
duplicated.  Each part carries the SHA-256 of its content in its Parquet
metadata; a part that fails it (truncated, or edited by hand) is recomputed
on resume and refused by :func:`read_results`.  ``pandas.read_parquet(RESULTS.parquet)`` reads the whole set
(files starting with ``_`` or ``.`` are ignored by Arrow).  :func:`read_results` adds ``feasible`` and
``infeasible_reason``: a point whose weights and KV cache exceed its chip's off-chip memory is simulated
(as if the memory were unlimited) but marked, so a Pareto front never ranks it.  :func:`results_folder`
names a folder after a spec's digest, so a notebook that changes a knob gets a new folder, not a refusal.

Parallelism: local processes (``concurrent.futures``) by default, each op
trace built once in the calling process and shipped to the workers, which
only simulate (:mod:`bitsim.experiments.hardware`); past one machine, Dask
distributed (``backend="dask"`` with a scheduler address, or a
``LocalCluster``).  Only the calling process writes results, so every backend
produces the same files.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import sys
import time
import warnings
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from bitsim.experiments.hardware import file_digest, make_accelerator, simulate_point
from contract import MAX_BATCH, MAX_CONTEXT, MAX_PREFILL_TOKENS, PHASES, validate
from contract.config import check_fields, check_number, load_yaml, quote
from contract.io import check_input_file, write_text_atomic
from contract.limits import limit
from model.config import get_config
from model.trace import build_trace

SPEC_FIELDS = ("name", "description", "accelerator", "workloads")
ACCEL_FIELDS = ("base", "grid", "points")
WORKLOAD_FIELDS = ("preset", "datapath", "phase", "context", "batch", "prefill_tokens", "profile", "seed", "kv_bits")
WORKLOAD_DEFAULTS: dict[str, Any] = {"phase": "decode", "context": 2048, "batch": 1,
                                     "prefill_tokens": None, "profile": "measured", "seed": 0, "kv_bits": None}
#: Workload fields added after results sets existed: left out of a point's id while at their default, so the
#: points of an earlier spec keep their ids (and their finished parts).
LATER_FIELDS = ("kv_bits",)
#: KV-cache bits a workload may ask for: the model's 2- to 7-bit codes or 16 (FP16); None = the datapath's own.
KV_BITS = (2, 3, 4, 5, 6, 7, 16)
PART_PREFIX = "point-"
#: Parquet metadata key of a part's content checksum (checked on every read, so an edited part is caught).
CHECKSUM_KEY = b"bitsim.content_sha256"
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

    @cached_property
    def _points(self) -> tuple[dict, ...]:
        hw = [(dict(ov), accelerator_digest(self.accelerator_base, ov)) for ov in self.overrides]
        out = []
        for w in self.workloads:
            wd = workload_digest(w)
            for ov, ad in hw:
                out.append({"workload": dict(w), "accelerator": self.accelerator_base, "overrides": ov,
                            "point_id": _digest({"workload": wd, "accelerator": ad})})
        return tuple(out)

    def points(self) -> list[dict]:
        """Every (workload x hardware) point, each with a ``point_id`` that hashes its contents.

        Resolved once per spec object (each id hashes a validated accelerator), then copied.
        """
        return [{**p, "workload": dict(p["workload"]), "overrides": dict(p["overrides"])} for p in self._points]

    def digest(self) -> str:
        """Hash of the whole resolved spec: one results folder holds one spec."""
        return _digest(sorted(p["point_id"] for p in self.points()))


def _digest(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def accelerator_digest(base: str, overrides: Mapping[str, Any]) -> str:
    """Hash of the resolved accelerator (base YAML contents + overrides, as validated), not of a path:
    editing the base file changes every point's id, so a resumed sweep never keeps stale results."""
    return _digest(dataclasses.asdict(make_accelerator(base, overrides)))


def workload_digest(workload: Mapping[str, Any]) -> str:
    """Hash of a workload; a model given as a YAML path is hashed by its contents."""
    w = {k: v for k, v in dict(workload).items() if not (k in LATER_FIELDS and v == WORKLOAD_DEFAULTS[k])}
    return _digest({**w, "preset_file": file_digest(str(workload["preset"]))})


def point_id(point: Mapping[str, Any]) -> str:
    """Content hash of a point: its workload and its resolved accelerator."""
    return _digest({"workload": workload_digest(point["workload"]),
                    "accelerator": accelerator_digest(point["accelerator"], point["overrides"])})


def _unknown(given: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    """The one field check of every config (contract.config), worded for a sweep spec."""
    check_fields(given, allowed, f"sweep spec: {where}")


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


MAX_POINTS = limit("sweep points", 100_000, unit="points", area="sweeps and reports",
                   applies_to="the (workload x hardware) points one sweep spec expands to",
                   why="each point takes 0.05-1 s to simulate: more is days of work; split the sweep")


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
            raise ValueError(f"sweep spec: {where}.{key} must be a string, got {quote(full[key])}")
    if full["phase"] not in PHASES:
        raise ValueError(f"sweep spec: {where}.phase must be one of {PHASES}, got {quote(full['phase'])}")
    for key, hi in (("context", MAX_CONTEXT), ("batch", MAX_BATCH)):
        check_number(full[key], f"sweep spec: {where}.{key}", integer=True, lo=1, hi=hi)
    check_number(full["seed"], f"sweep spec: {where}.seed", integer=True, lo=0, hi=2**31 - 1)
    if full["kv_bits"] is not None and (isinstance(full["kv_bits"], bool) or full["kv_bits"] not in KV_BITS):
        raise ValueError(f"sweep spec: {where}.kv_bits must be one of {KV_BITS} (or left out: the datapath's own "
                         f"KV cache), got {quote(full['kv_bits'])}")
    if full["prefill_tokens"] is not None:
        check_number(full["prefill_tokens"], f"sweep spec: {where}.prefill_tokens", integer=True, lo=1,
                     hi=MAX_PREFILL_TOKENS)
    return full


def _workload_grids(wl: Any) -> list[dict]:
    """The workloads of a spec: one grid mapping or a non-empty list of them, no list in them empty."""
    if isinstance(wl, Mapping):
        grids = [("workloads", wl)]
    elif isinstance(wl, list) and wl:
        grids = [(f"workloads[{i}]", w) for i, w in enumerate(wl)]
    else:
        raise ValueError("sweep spec: 'workloads' must be a mapping or a non-empty list of mappings")
    out = []
    for where, w in grids:
        if not isinstance(w, Mapping):
            raise ValueError(f"sweep spec: {where} must be a mapping")
        _unknown(w, WORKLOAD_FIELDS, where)
        for k, v in w.items():
            if isinstance(v, (list, tuple)) and len(v) == 0:
                raise ValueError(f"sweep spec: {where}.{k} is an empty list (a sweep needs at least one value)")
        out += _grid(w)
    return out


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

    wl_list = _workload_grids(raw["workloads"])
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
@lru_cache(maxsize=16)
def cached_trace(preset: str, datapath: str, phase: str, context: int, batch: int,
                 seed: int, profile: str, prefill_tokens: int | None, kv_bits: int | None = None) -> pd.DataFrame:
    """Build an op trace once per process and reuse it for every hardware point."""
    model = preset if kv_bits is None else get_config(preset, datapath, kv_bits=int(kv_bits))
    return build_trace(model, datapath, phase=phase, context=context, batch=batch, seed=seed,
                       profile=profile, prefill_tokens=prefill_tokens)


def workload_trace(w: Mapping[str, Any]) -> pd.DataFrame:
    """The op trace of a workload (built once per process, see :func:`cached_trace`)."""
    return cached_trace(w["preset"], w["datapath"], w["phase"], w["context"], w["batch"], w["seed"], w["profile"],
                        w["prefill_tokens"], w.get("kv_bits"))


def stored_row(row: Mapping[str, Any]) -> dict:
    """A results row as a part stores it: ``kv_bits`` -1 for the datapath's own KV cache (one type per column)."""
    return {**row, "kv_bits": -1 if row.get("kv_bits") is None else int(row["kv_bits"])}


def evaluate_point(point: Mapping[str, Any]) -> dict:
    """Simulate one sweep point (its trace built here, or reused); returns one flat results row."""
    row, found = simulate_point(point, workload_trace(point["workload"]), WORKLOAD_FIELDS)
    for message in found:
        warnings.warn(message, stacklevel=2)
    return stored_row(row)


# ---------------------------------------------------------------------------
# Results directory
# ---------------------------------------------------------------------------
def part_path(out_dir: Path, pid: str) -> Path:
    return out_dir / f"{PART_PREFIX}{pid}.parquet"


def content_checksum(table: pa.Table) -> str:
    """SHA-256 of a part's rows (column names and values), as Arrow holds them."""
    rows = table.to_pylist()
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=repr).encode()).hexdigest()


def read_part(path: Path) -> pd.DataFrame:
    """One finished point: a ``sweep_results`` row holding its own point id and the checksum of its content.

    Anything else (unreadable, truncated, edited after it was written, another point's row) is a
    ``ValueError`` naming the file.
    """
    try:
        table = pq.read_table(path)
        stored = (table.schema.metadata or {}).get(CHECKSUM_KEY, b"").decode("ascii", "replace")
        if stored != content_checksum(table):
            raise ValueError("its content does not match the checksum written with it")
        df = validate(table.to_pandas(), "sweep_results")
    except (OSError, ValueError, TypeError, KeyError, RecursionError, pa.ArrowException) as e:
        why = "nested too deeply to read" if isinstance(e, RecursionError) else " ".join(str(e).split())[:200]
        raise ValueError(f"sweep part {path.name} is not a finished point: {why}") from None
    if len(df) != 1 or str(df["point_id"].iloc[0]) != path.stem[len(PART_PREFIX):]:
        raise ValueError(f"sweep part {path.name} is not a finished point: it holds another point's row")
    return df


def _part_ok(path: Path) -> bool:
    try:
        read_part(path)
    except ValueError:
        return False
    return True


def done_ids(out_dir: Path, repair: bool = False) -> set[str]:
    """Ids of the points whose part file is whole; with ``repair``, bad parts are removed (and rerun)."""
    out_dir = Path(out_dir)
    if not out_dir.exists():
        return set()
    done = set()
    for p in sorted(out_dir.glob(f"{PART_PREFIX}*.parquet")):
        if _part_ok(p):
            done.add(p.stem[len(PART_PREFIX):])
        elif repair:
            print(f"sweep: {p.name} is corrupt, truncated or edited; recomputing it", file=sys.stderr, flush=True)
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
    """Write one point's row with the checksum of its content, atomically: a temporary file, then rename."""
    final = part_path(out_dir, row["point_id"])
    tmp = out_dir / f".tmp-{row['point_id']}-{os.getpid()}-{os.urandom(4).hex()}.parquet"
    table = pa.Table.from_pylist([dict(row)])
    table = table.replace_schema_metadata({CHECKSUM_KEY: content_checksum(table).encode("ascii")})
    try:
        # no fsync: a part torn by a crash fails its checksum and is recomputed on resume
        pq.write_table(table, tmp)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def _gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.3g} GB"


def infeasible_reason(row: Mapping[str, Any]) -> str:
    """Why a point's weights and KV cache do not fit its chip's off-chip memory ('' when they fit).

    Read from the row's own byte counts: the KV cache alone when it exceeds the capacity (the case of a
    chip whose weights live in on-chip SRAM, too), else weights + KV cache.
    """
    if bool(row.get("fits_offchip", True)):
        return ""
    kv, weights, cap = (float(row.get(k, float("nan"))) for k in ("kv_bytes", "weight_bytes", "capacity_bytes"))
    where = f"batch {int(row['batch'])}, context {int(row['context'])}" if "batch" in row else "this workload"
    if math.isnan(cap):   # a part written before sim reported its capacity
        return f"weights + KV cache exceed the chip's off-chip memory ({where})"
    if kv > cap:
        return f"KV cache {_gb(kv)} alone exceeds the {_gb(cap)} off-chip memory ({where})"
    return (f"weights {_gb(weights)} + KV cache {_gb(kv)} = {_gb(weights + kv)} exceed the {_gb(cap)} "
            f"off-chip memory ({where})")


def with_feasibility(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with ``feasible`` (weights + KV cache fit the chip's off-chip memory) and ``infeasible_reason``
    (the numbers, '' when feasible) columns; an infeasible point's timing is what the chip would do with
    unlimited memory, so it is marked, never ranked."""
    out = df.copy()
    if "fits_offchip" not in out.columns:
        out["feasible"], out["infeasible_reason"] = True, ""
        return out
    out["feasible"] = out["fits_offchip"].astype(bool)
    out["infeasible_reason"] = [infeasible_reason(r) for r in out.to_dict("records")]
    return out


def read_results(out_dir: str | Path, spec: SweepSpec | None = None) -> pd.DataFrame:
    """All finished points in ``out_dir`` (only ``spec``'s points when given), sorted by id, with their
    feasibility (:func:`with_feasibility`).

    A part that fails its checksum is a ``ValueError`` (rerunning the sweep recomputes it).
    """
    out_dir = Path(out_dir)
    parts = sorted(out_dir.glob(f"{PART_PREFIX}*.parquet"))
    if spec is not None:
        want = {p["point_id"] for p in spec.points()}
        parts = [p for p in parts if p.stem[len(PART_PREFIX):] in want]
    if not parts:
        return pd.DataFrame()
    df = pd.concat([read_part(p) for p in parts], ignore_index=True)
    return with_feasibility(validate(df.sort_values("point_id", ignore_index=True), "sweep_results"))


def results_folder(spec: SweepSpec, root: str | Path) -> Path:
    """The results folder of ``spec`` under ``root``, named after the spec and its digest: rerunning the same
    spec finds its finished points again, and a spec with one knob changed gets a folder of its own instead
    of being refused as another spec's results."""
    name = "".join(c if c.isalnum() or c in "._-" else "-" for c in spec.name).strip("-.") or "sweep"
    return Path(root) / f"{name}-{spec.digest()}.parquet"


def resident_weight_mib(spec: SweepSpec) -> float:
    """MiB of on-chip SRAM that holds the weights of the largest (model, datapath) among ``spec``'s workloads,
    as sim counts them (one simulation of each on the base chip): the ``sram.weight_store_mib`` of a
    weights-resident variant of the sweep (``weight_residency: sram``)."""
    need: dict[tuple, float] = {}
    for p in spec.points():
        w = p["workload"]
        key = (w["preset"], w["datapath"], w["profile"], w["seed"])
        if key not in need:
            need[key] = float(evaluate_point({**p, "overrides": {}})["weight_bytes"])
    return float(math.ceil(max(need.values()) / 2**20))


# ---------------------------------------------------------------------------
# Runner
# ---------------------------------------------------------------------------
MANIFEST = "_spec.json"  # Arrow skips files starting with "_" when it reads the folder as one table
MAX_MANIFEST_BYTES = limit("sweep manifest", 256 << 20, unit="bytes", area="sweeps and reports",
                           applies_to="the _spec.json of a sweep results folder, read on resume",
                           why="the manifest of the largest spec (MAX_POINTS points) stays far below it")


def _is_sweep_file(name: str) -> bool:
    return (name == MANIFEST or (name.startswith(PART_PREFIX) and name.endswith(".parquet"))
            or (name.startswith(".tmp-") and name.endswith(".parquet")) or name.startswith(f".{MANIFEST}."))


def _manifest_digest(path: Path) -> str | None:
    """The spec digest a results folder's manifest records (None when it records none or is unreadable)."""
    check_input_file(path, what="sweep manifest", expected="a JSON file written by bitsim sweep",
                     max_bytes=MAX_MANIFEST_BYTES, why="it holds one spec of at most MAX_POINTS points")
    try:
        body = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (ValueError, RecursionError):
        return None
    return body.get("spec_digest") if isinstance(body, dict) else None


def _claim_folder(out_dir: Path, spec: SweepSpec) -> None:
    """Write (or check) the folder's manifest: one results folder holds the points of one spec."""
    path = out_dir / MANIFEST
    digest = spec.digest()
    if path.exists() or path.is_symlink():
        have = _manifest_digest(path)
        if have != digest:
            raise ValueError(f"{out_dir}: holds the results of another sweep spec ({MANIFEST} records "
                             f"{'no readable digest' if have is None else f'digest {quote(have)}'}, this spec "
                             f"{digest}); write to another folder or remove that one")
        return
    write_text_atomic(json.dumps({"spec_digest": digest, **dataclasses.asdict(spec)}, indent=1, default=str), path)


def _check_results_folder(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: exists and is not a sweep results folder")
    foreign = [f.name for f in out_dir.iterdir() if not _is_sweep_file(f.name)] if out_dir.is_dir() else []
    if foreign:
        raise ValueError(f"{out_dir}: is a folder that holds no sweep results ({quote(foreign[:3])}); "
                         f"choose another output")


def _label(point: Mapping[str, Any]) -> str:
    w = point["workload"]
    return f"{w['preset']}/{w['datapath']}/{w['phase']}@{w['context']}"


def pool_context():
    """Fork where the platform has it: workers start at once, holding the parent's imports; else spawn.

    Forking is safe here because the parent forks before it computes anything with torch (a worker that
    builds traces pins torch to one thread) and workers return plain tables.
    """
    import multiprocessing as mp  # stdlib, only when a pool is needed
    return mp.get_context("fork" if sys.platform == "linux" else "spawn")


def _run_local(todo: list[dict], workers: int | None, finish: Callable[[dict, dict, list[str]], None]) -> None:
    """Simulate ``todo`` in a local process pool, each distinct op trace built once here and shipped."""
    from concurrent.futures import ProcessPoolExecutor, as_completed  # stdlib

    traces = {json.dumps(w, sort_keys=True, default=str): workload_trace(w)
              for w in (p["workload"] for p in todo)}
    n = workers or min(len(todo), os.cpu_count() or 1)
    with ProcessPoolExecutor(max_workers=n, mp_context=pool_context(), initializer=exit_with_parent,
                             initargs=(os.getpid(),)) as ex:
        futs = {ex.submit(simulate_point, p, traces[json.dumps(p["workload"], sort_keys=True, default=str)],
                          WORKLOAD_FIELDS): p for p in todo}
        for fut in as_completed(futs):
            row, found = fut.result()
            finish(futs[fut], row, found)


def run_sweep(spec: SweepSpec, out_dir: str | Path, workers: int | None = None,
              backend: str = "process", scheduler: str | None = None, progress: bool = True,
              evaluate: Callable[[Mapping[str, Any]], dict] | None = None) -> pd.DataFrame:
    """Run every point of ``spec`` not yet in ``out_dir``; return all of its results.

    ``backend``: ``"process"`` (local process pool of ``workers``), ``"dask"`` (``scheduler`` address,
    or a LocalCluster of ``workers`` when None), or ``"serial"``.  Each finished point is written at
    once; ``progress`` shows one progress bar on stderr; each distinct simulator warning is raised once,
    after it.  ``evaluate`` replaces the simulation of a point (e.g. a stand-in in a test); it runs in
    this process, one point after another.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if workers is not None:
        check_number(workers, "workers", integer=True, lo=1, hi=1024)
    out_dir = Path(out_dir)
    _check_results_folder(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _claim_folder(out_dir, spec)
    remove_dead_temporaries(out_dir)
    points = spec.points()
    have = done_ids(out_dir, repair=True)
    todo = [p for p in points if p["point_id"] not in have]
    todo.sort(key=lambda p: json.dumps(p["workload"], sort_keys=True, default=str))  # one trace after another
    found: dict[str, None] = {}
    bar = tqdm(total=len(points), initial=len(points) - len(todo), desc=f"sweep {spec.name}", unit="point",
               disable=not progress, file=sys.stderr, dynamic_ncols=True)

    def finish(point: dict, row: dict, messages: list[str] = ()) -> None:
        write_part(out_dir, stored_row(row))
        found.update(dict.fromkeys(messages))
        bar.set_postfix_str(_label(point), refresh=False)
        bar.update()

    with bar:
        if not todo:
            pass
        elif evaluate is not None or backend == "serial" or (backend == "process" and workers == 1):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                for p in todo:
                    finish(p, (evaluate or evaluate_point)(p))
            found.update(dict.fromkeys(str(c.message) for c in caught))
        elif backend == "process":
            _run_local(todo, workers, finish)
        else:
            _run_dask(todo, evaluate_point, finish, workers, scheduler)
    for message in found:  # each distinct simulator warning once, after the bar
        warnings.warn(message, UserWarning, stacklevel=2)
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
