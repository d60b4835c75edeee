"""Serving-simulator speed: 10,000 requests of a 70B TP8 deployment, the highest-rate search, and the
scaling of the run time in requests and in chips.

Targets: 10,000 requests of a 70B TP8 deployment in <= 30 s on one core; the highest-rate search in
<= 5 min.  The iteration cost model is the fitted grid of ``bitsim.experiments.serving`` (op traces of
the TP8 shard simulated by ``sim.simulate``); building it is timed separately (its direct simulations
are cached in ``--cache``, so a second run starts at once).  Chips scale by data-parallel replicas of
the TP8 instance (8, 16, 32, 64 chips) at a proportional request rate.

    .venv/bin/python benchmarks/bench_serving.py [--cache cost_cache.csv] [--requests 10000] [--quick]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bitsim.experiments.serving import GridConfig, build_cost_model  # noqa: E402
from sim.serving import ParallelConfig, SchedulerConfig, Targets, WorkloadConfig, search_rate, serve  # noqa: E402

MODEL, DATAPATH, ACCEL, TP, LINK = "llama3-70b", "b1.58", "b1.58", 8, "serdes-ring"


def _timed(fn):
    """(seconds, result): CPU seconds of this process, the one-core figure that holds on a shared machine
    (wall time is printed too, in ``WALL``)."""
    t0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    WALL.append(time.perf_counter() - w0)
    return time.process_time() - t0, out


WALL: list[float] = []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=None, help="cost-model cache CSV (kept between runs)")
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=2.5,
                    help="req/s of the timed run (one TP8 instance: below its ~3 req/s knee)")
    ap.add_argument("--quick", action="store_true", help="smaller scaling points, no rate search")
    ap.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = ap.parse_args(argv)

    t_build, cost = _timed(lambda: build_cost_model(MODEL, DATAPATH, ACCEL, TP, GridConfig(), cache_csv=args.cache))
    print(f"cost model ({MODEL} {DATAPATH} on {ACCEL}, TP {TP}): built in {t_build:.1f} CPU s")
    sch = SchedulerConfig(policy="chunked", token_budget=1024, max_batch=256)
    targets = Targets(ttft_s=2.0, tpot_s=0.1)
    w = WorkloadConfig(requests=args.requests, rate=args.rate, lengths="conversation", seed=0)
    par = ParallelConfig(tp=TP)
    t_run, res = _timed(lambda: serve(w, cost, sch, par, LINK, targets))
    s = res.summary.iloc[0]
    print(f"{args.requests} requests, {s['iterations']} iterations: {t_run:.2f} CPU s ({WALL[-1]:.2f} s wall) "
          f"({'meets' if t_run <= 30 else 'MISSES'} the 30 s target); {res}")
    figures = dict(build_s=t_build, run_s=t_run, requests=args.requests, iterations=int(s["iterations"]))

    scale_req = []
    for n in ((1000, 2000, 5000) if args.quick else (1000, 2000, 5000, 10_000, 20_000)):
        t, r = _timed(lambda: serve(dataclasses.replace(w, requests=n), cost, sch, par, LINK, targets))
        scale_req.append(dict(requests=n, seconds=t, iterations=int(r.summary["iterations"].iloc[0])))
        print(f"  requests {n:>6}: {t:6.2f} CPU s ({scale_req[-1]['iterations']} iterations)")
    scale_chips = []
    for replicas in ((1, 2) if args.quick else (1, 2, 4, 8)):
        wr = dataclasses.replace(w, rate=args.rate * replicas)
        pr = ParallelConfig(tp=TP, replicas=replicas)
        t, r = _timed(lambda: serve(wr, cost, sch, pr, LINK, targets))
        scale_chips.append(dict(chips=pr.chips, seconds=t, iterations=int(r.summary["iterations"].iloc[0])))
        print(f"  chips {pr.chips:>3} ({replicas} x TP{TP}): {t:6.2f} CPU s for {args.requests} requests")
    figures.update(scale_requests=scale_req, scale_chips=scale_chips)
    if not args.quick:
        t_search, (best, tried) = _timed(lambda: search_rate(w, cost, sch, par, LINK, targets, lo=0.1, hi=100))
        print(f"highest rate meeting TTFT <= 2 s and TPOT <= 100 ms for 90 % of requests: {best:.3g} req/s, "
              f"{len(tried)} runs of {args.requests} requests in {t_search:.1f} CPU s "
              f"({'meets' if t_search <= 300 else 'MISSES'} the 5 min target)")
        figures.update(search_s=t_search, best_rate=best, search_runs=len(tried))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
