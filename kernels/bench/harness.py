"""Timing helpers, the measurement log and the output writers of the kernel benchmark.

* :func:`time_us` -- ``triton.testing.do_bench`` (L2 flushed before every call, CUDA events):
  every call is one repeat; the :class:`Timing` keeps the median and the spread (quartiles,
  min, max, count).
* :func:`time_graph` -- the calls captured in one CUDA graph, timed as replays (launch gaps of
  a graph, no Python); per-call time = replay time / number of calls.
* :func:`time_rotating` -- the one weight-rotation loop: a call timed in a CUDA graph over enough
  copies of its large operands that every call reads them from HBM, not from the 60 MB L2.
* :class:`MeasurementLog` -- keyword-only rows of the ``measured_trace`` table, free-form notes,
  and the run's :class:`~kernels.configs.ConfigTable` of sweep winners (a value the log hands to
  the sections; never a module global).
"""
from __future__ import annotations

import datetime
import json
import math
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
import triton
import triton.testing

from contract import MEASURED_TRACE, TUNING_SUFFIX, write_table
from kernels.configs import NO_TUNING, ConfigTable

L2_TARGET_BYTES = 200e6          # rotate copies until one replay touches > 3x the H200's 60 MB L2
MAX_COPIES = 16


@dataclass(frozen=True, kw_only=True)
class Timing:
    """Median and spread of one timed figure, in µs per call."""

    median: float
    p25: float
    p75: float
    min: float
    max: float
    n: int

    @classmethod
    def from_samples(cls, samples_us: Sequence[float]) -> "Timing":
        s = sorted(float(v) for v in samples_us)
        if not s:
            raise ValueError("no timing samples")
        q = statistics.quantiles(s, n=4, method="inclusive") if len(s) > 1 else [s[0]] * 3
        return cls(median=statistics.median(s), p25=q[0], p75=q[2], min=s[0], max=s[-1], n=len(s))

    def scaled(self, factor: float) -> "Timing":
        """The same figure divided by ``factor`` (per call of a replay that made ``factor`` calls)."""
        return Timing(median=self.median / factor, p25=self.p25 / factor, p75=self.p75 / factor,
                      min=self.min / factor, max=self.max / factor, n=self.n)


def time_us(fn: Callable[[], object], rep_ms: int = 60, warmup_ms: int = 20) -> Timing:
    """Per-call times of ``fn()`` (do_bench: L2 flushed before each call) -> :class:`Timing` in µs."""
    ms = triton.testing.do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="all")
    return Timing.from_samples([1e3 * t for t in ms])


def capture_graph(fns: Sequence[Callable[[], object]]) -> "torch.cuda.CUDAGraph":
    """Warm the calls up on a side stream, then capture them, in order, in one CUDA graph."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for f in fns:
            f()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for f in fns:
            f()
    torch.cuda.synchronize()
    return g


def time_graph(fns: Sequence[Callable[[], object]], rep_ms: int = 60) -> Timing:
    """The calls in one CUDA graph, timed as replays; µs per call."""
    g = capture_graph(fns)
    return time_us(g.replay, rep_ms).scaled(len(fns))


def n_copies(bytes_one: float, target: float = L2_TARGET_BYTES, cap: int = MAX_COPIES) -> int:
    """How many copies of an operand of ``bytes_one`` bytes one replay must rotate over (>= 2)."""
    return int(max(2, min(cap, math.ceil(target / max(bytes_one, 1.0)))))


def time_rotating(call: Callable[..., object], rotate: Sequence[torch.Tensor], *,
                  bytes_one: float | None = None, rep_ms: int = 60) -> tuple[Timing, int]:
    """Time ``call(*rotate)`` in a CUDA graph over copies of the ``rotate`` tensors.

    One replay calls ``call`` once per copy (the first with the originals), so each call reads its
    operands from HBM.  Returns the per-call :class:`Timing` and the number of copies.
    """
    nbytes = bytes_one if bytes_one is not None else sum(t.numel() * t.element_size() for t in rotate)
    c = n_copies(nbytes)
    sets = [tuple(rotate)] + [tuple(t.clone() for t in rotate) for _ in range(c - 1)]
    timing = time_graph([lambda s=s: call(*s) for s in sets], rep_ms)
    del sets
    return timing, c


def env_info(command: Sequence[str] | None = None) -> dict:
    """GPU, versions, date and the command line of this run."""
    p = torch.cuda.get_device_properties(0)
    return dict(gpu=p.name, sms=p.multi_processor_count, torch=torch.__version__, triton=triton.__version__,
                cuda=str(torch.version.cuda), driver=_driver_version(),
                date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                command=" ".join(command if command is not None else [Path(sys.argv[0]).name] + sys.argv[1:]),
                l2_mb=getattr(p, "L2_cache_size", 0) / 2 ** 20)


def _driver_version() -> str:
    try:
        import pynvml  # optional: in the GPU image (nvidia-ml-py), not a project dependency

        pynvml.nvmlInit()
        v = pynvml.nvmlSystemGetDriverVersion()
        return v.decode() if isinstance(v, bytes) else str(v)
    except Exception:  # noqa: BLE001 - informational only
        return ""


class MeasurementLog:
    """Rows of the ``measured_trace`` table, notes, and this run's table of tuned configs."""

    def __init__(self, env: dict, tuned: ConfigTable = NO_TUNING):
        self.env = env
        self.rows: list[dict] = []
        self.notes: list[dict] = []
        self.energy: list[dict] = []        # rows of the board_energy table (kernels.bench.energy)
        self.tuned = tuned

    def add(self, *, op: str, kernel: str, impl: str, precision: str, M: int, N: int, K: int, timing: Timing,
            bytes: float, ops: float, exact: bool, sparsity: float = 0.0, cuda_graph: bool = False,
            **extra: object) -> dict:
        """One measured row; ``bytes`` is the fewest bytes the op must move, ``ops`` 2 x MACs."""
        us = timing.median
        row = dict(op=op, kernel=kernel, impl=impl, precision=precision, M=int(M), N=int(N), K=int(K),
                   sparsity=float(sparsity), cuda_graph=bool(cuda_graph), us=float(us), bytes=float(bytes),
                   ops=float(ops), gbps=float(bytes / us / 1e3) if us > 0 else float("nan"),
                   tops=float(ops / us / 1e6) if us > 0 else float("nan"), exact=bool(exact),
                   gpu=self.env["gpu"], torch=self.env["torch"], triton=self.env["triton"],
                   cuda=self.env["cuda"], date=self.env["date"],
                   us_p25=timing.p25, us_p75=timing.p75, us_min=timing.min, us_max=timing.max,
                   repeats=int(timing.n))
        row.update(extra)
        self.rows.append(row)
        print(f"  {op:16s} {kernel:26s} {precision:12s} M={M:<5d} N={N:<6d} K={K:<6d} {us:9.2f} us "
              f"[{timing.p25:.2f}-{timing.p75:.2f}] {row['gbps']:7.0f} GB/s exact={exact}", flush=True)
        return row

    def note(self, **kv: object) -> None:
        self.notes.append(kv)
        print("  note:", json.dumps(kv, default=str)[:600], flush=True)

    def pick(self, kernel: str, key: str, results: Sequence[tuple[float, bool, dict]]) -> dict | None:
        """Keep the fastest correct ``(us, ok, config)`` of a sweep in this run's table; return it."""
        good = [r for r in results if r[1]]
        if not good:
            self.note(what="no correct config", kernel=kernel, key=key)
            return None
        us, _, cfg = min(good, key=lambda r: r[0])
        self.tuned = self.tuned.with_entry(kernel, key, cfg)
        self.note(what="best config", kernel=kernel, key=key, us=us, config=cfg)
        return dict(cfg)


def table_from_rows(rows: list[dict]):
    """measured_trace DataFrame from logged rows (extra columns filled: no NaN in str/num columns)."""
    df = pd.DataFrame(rows)
    known = {c.name for c in MEASURED_TRACE}
    for col in df.columns:
        if col in known:
            continue
        if pd.api.types.is_numeric_dtype(df[col]) and not pd.api.types.is_bool_dtype(df[col]):
            df[col] = df[col].fillna(0)
        else:
            df[col] = df[col].fillna("").astype(str)
    return df


def scrub_paths(text: str, out_dir: Path | None = None) -> str:
    """``text`` with the machine's folders left out: the repository root becomes relative, the output
    folder ``$OUT`` (the data say what ran, not where)."""
    root = str(Path(__file__).resolve().parents[2])
    if out_dir is not None:
        text = text.replace(str(Path(out_dir).resolve()), "$OUT").replace(str(out_dir), "$OUT")
    return text.replace(root + "/", "").replace(root, ".")


def write_outputs(log: MeasurementLog, out_dir: Path, extra_tables: dict | None = None) -> None:
    """JSON log first (rows included, needs nothing but json), then Parquet + CSV tables.

    ``extra_tables``: ``{stem: (DataFrame, schema)}`` written beside the measured trace.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = dict(log.env, source="kernels/bench", command=scrub_paths(log.env.get("command", ""), out_dir))
    tmp = out_dir / ".bench_log.json.tmp"
    tmp.write_text(scrub_paths(json.dumps(dict(meta=meta, notes=log.notes, rows=log.rows, energy=log.energy,
                                               tuned=log.tuned.to_json()), indent=1, default=str), out_dir))
    tmp.replace(out_dir / "bench_log.json")
    if log.tuned.entries:       # winners of --configs, the form load_config_table reads
        tmp = out_dir / ".tuned_configs.json.tmp"
        tmp.write_text(json.dumps(log.tuned.to_json(), indent=1, sort_keys=True))
        tmp.replace(out_dir / "tuned_configs.json")
    if log.rows:
        df = table_from_rows(log.rows)
        write_table(df, out_dir / "measured_trace.parquet", "measured_trace", meta)
        write_table(df, out_dir / "measured_trace.csv", "measured_trace", meta)
    for stem, (df, schema) in (extra_tables or {}).items():
        if len(df):
            write_table(df, out_dir / f"{stem}.parquet", schema, meta)
            write_table(df, out_dir / f"{stem}.csv", schema, meta)


def summary_table(log: MeasurementLog, keep: Callable[[dict], bool] | None = None) -> str:
    """Short table (one line per timed op, tuning variants left out), printed last."""
    lines = [f"{'op':14s} {'kernel':26s} {'M':>5s} {'N':>6s} {'K':>6s} g {'us':>8s} {'IQR':>13s} {'GB/s':>6s} ex"]
    for r in log.rows:
        if r["kernel"].endswith(TUNING_SUFFIX) or (keep is not None and not keep(r)):
            continue
        lines.append(f"{r['op'][:14]:14s} {r['kernel'][:26]:26s} {r['M']:5d} {r['N']:6d} {r['K']:6d} "
                     f"{'G' if r['cuda_graph'] else '-'} {r['us']:8.2f} {r['us_p25']:6.1f}-{r['us_p75']:<6.1f} "
                     f"{r['gbps']:6.0f} {'Y' if r['exact'] else '-'}")
    return "\n".join(lines)
