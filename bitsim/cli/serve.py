"""``bitsim serve SPEC.yaml -o DIR``: simulate serving a request stream on a deployment of chips.

The spec names the model, datapath, accelerator (preset or YAML), parallelism, interconnect,
scheduler, workload and latency targets (``bitsim.experiments.serving.ServeSpec``).  DIR receives
``requests.csv``, ``iterations.csv``, ``summary.csv`` / ``summary.json``, ``fit.csv`` (cost-model fit
against direct simulation), ``occupancy.csv``, ``timeline.json`` (Perfetto) and figures; with
``search.enabled`` also ``search.csv`` and the throughput-latency figure.  The direct simulations
are cached in ``DIR/cost_cache.csv`` (or ``--cache``) so a second run starts at once.

Several specs (or ``--each``): each run goes to ``DIR/<spec name>/``, and a run whose folder already
holds a finished run of the same spec (the digest in its ``summary.json``) is skipped, so the command
resumes where it stopped: ``bitsim serve reports/specs/serving/*.yaml -o reports/serving --small``.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bitsim.experiments.serving import (
    load_spec,
    prune_cost_cache,
    run_is_current,
    run_spec,
    validation_table,
    write_outputs,
)
from contract import check_output_folder, publish_folder, temporary_sibling, write_table

OUTPUT_NAMES = ("validation.csv", "requests.csv", "iterations.csv", "summary.csv", "summary.json", "fit.csv",
                "occupancy.csv", "search.csv", "timeline.json", "latency_cdf.png", "kv_occupancy.png",
                "throughput_latency.png", "cost_cache.csv", "cost_cache.facts.json")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve", help="simulate serving a request stream (batching, SLOs)",
        description="Simulate a deployment serving a workload under latency targets: continuous batching "
                    "over paged KV, tensor / pipeline parallelism over an interconnect, per-iteration cost "
                    "from op traces simulated on the accelerator.  Writes per-request, per-iteration and "
                    "summary tables, a Perfetto timeline and figures into DIR.")
    p.add_argument("spec", nargs="*", help="serve spec YAML(s) (see reports/specs/serve-7b.yaml); with several, "
                                          "each run goes to DIR/<spec name>/ and finished runs are skipped")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--each", action="store_true", help="DIR/<spec name>/ per spec (and skip finished runs) even "
                                                       "for one spec")
    p.add_argument("--small", action="store_true", help="leave out the per-request and per-iteration tables, the "
                                                        "timeline and the occupancy figure (for committed runs)")
    p.add_argument("--cache", default=None, help="cost-model cache CSV (default DIR/cost_cache.csv)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder of this command")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--validate", action="store_true",
                   help="instead of a spec: write DIR/validation.csv (hand-computed schedules, all-reduce "
                        "latencies, published 70B GPU serving numbers, cost-model fits, decode iterations "
                        "against the measured H100 batched decode tokens; ~70 direct simulations on a first "
                        "run, cached)")
    p.set_defaults(func=_run)


def _validate(args: argparse.Namespace, out: Path) -> int:
    check_output_folder(out, _owned, force=args.force)
    log = None if args.quiet else (lambda m: print(f"bitsim serve: {m}", file=sys.stderr))
    with _staged_run(args, out) as (tmp, cache):
        table = validation_table(cache, progress=log)
        write_table(table, tmp / "validation.csv", "serving_validation")
    for r in table.itertuples(index=False):
        print(f"{'pass' if r.passed else 'MISS'} {r.error * 100:+7.1f} %  {r.check}: {r.simulated:.4g} vs "
              f"{r.reference:.4g} {r.unit}")
    return 0


@contextmanager
def _staged_run(args: argparse.Namespace, out: Path) -> Iterator[tuple[Path, Path]]:
    """A run written into a sibling of ``out`` with its cost cache (carried forward from ``out`` unless
    ``--cache`` names one): yields (folder, cache).  On success a carried cache is pruned to the keys the run
    used and the folder replaces ``out``; on any error the sibling is removed and ``out`` is left as it was."""
    tmp = temporary_sibling(out)
    cache = Path(args.cache) if args.cache else _carry_cost_cache(out, tmp)
    try:
        yield tmp, cache
        if not args.cache:
            prune_cost_cache(cache)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    publish_folder(tmp, out, _owned)


def _carry_cost_cache(out: Path, tmp: Path) -> Path:
    """The cost cache of the run being written into ``tmp``: an earlier run's in ``out`` copied forward (the
    folder is replaced whole when the run is published), so its direct simulations are not redone.  Once the run
    is done its cache is pruned to the keys it used (``prune_cost_cache``); a ``--cache`` file the user names may
    serve several runs and is left whole."""
    for name in ("cost_cache.csv", "cost_cache.facts.json"):
        if (out / name).exists():
            (tmp / name).write_bytes((out / name).read_bytes())
    return tmp / "cost_cache.csv"


def _owned(folder: Path) -> bool:
    return all(p.name in OUTPUT_NAMES for p in folder.iterdir())


def _run(args: argparse.Namespace) -> int:
    if args.validate == bool(args.spec):
        raise ValueError("give serve spec(s) or --validate (one of them)")
    out = Path(args.out)
    if args.validate:
        return _validate(args, out)
    specs = [load_spec(p) for p in args.spec]       # every spec checked before any run starts
    if len(specs) == 1 and not args.each:
        check_output_folder(out, _owned, force=args.force)
        _run_one(args, specs[0], out)
        return 0
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"spec names must differ (each names its folder under {out}): {dup} repeated")
    for spec in specs:
        folder = out / spec.name
        if not args.force and run_is_current(spec, folder):
            print(f"{spec.name}: up to date in {folder}, skipped")
            continue
        if folder.is_dir() and any(folder.iterdir()) and not _owned(folder):
            raise ValueError(f"output folder {folder} is not empty and was not written by bitsim serve; "
                             "choose another folder (nothing was changed)")
        _run_one(args, spec, folder)
    return 0


def _run_one(args: argparse.Namespace, spec, out: Path) -> None:
    """One spec into ``out`` (written beside it, then moved into place); the cost cache carried forward."""
    t0 = time.perf_counter()
    log = None if args.quiet else (lambda m: print(f"bitsim serve: {spec.name}: {m}", file=sys.stderr))
    with _staged_run(args, out) as (tmp, cache):
        result = run_spec(spec, cache_csv=cache, progress=log)
        write_outputs(spec, result, tmp, small=args.small)
    print(_result_line(spec, result) + f" [{time.perf_counter() - t0:.1f} s] -> {out}")


def _result_line(spec, result: dict) -> str:
    s = result["result"].summary.iloc[0]
    line = (f"{spec.name}: {s['finished']}/{s['requests']} requests on {s['chips']} chip(s), "
            f"{s['throughput_rps']:.3g} req/s, {s['output_tokens_per_s']:.4g} tok/s, "
            f"TTFT p50/p90/p99 {s['ttft_p50_s'] * 1e3:.4g}/{s['ttft_p90_s'] * 1e3:.4g}/{s['ttft_p99_s'] * 1e3:.4g} ms, "
            f"TPOT p50/p90/p99 {s['tpot_p50_s'] * 1e3:.4g}/{s['tpot_p90_s'] * 1e3:.4g}/{s['tpot_p99_s'] * 1e3:.4g} ms, "
            f"goodput {s['goodput_rps']:.3g} req/s (attainment {s['attainment']:.3f}), "
            f"{s['tokens_per_j']:.3g} tok/J")
    if "best_rate" in result:
        line += f", highest rate meeting targets {result['best_rate']:.4g} req/s"
        if result["chips_needed"] == result["chips_needed"]:
            line += f", {result['chips_needed']:.0f} chips for {spec.search.target_rate:g} req/s"
    return line
