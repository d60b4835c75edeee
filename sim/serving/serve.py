"""``serve(...)``: one run of a deployment on a workload; ``search_rate``: the highest rate meeting targets."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import pandas as pd

from contract.config import check_number

from .config import ParallelConfig, SchedulerConfig, Targets
from .costmodel import IterationCostModel
from .engine import Engine
from .interconnect import InterconnectConfig, load_interconnect
from .metrics import late_attainment, met_targets, summarize
from .workload import WorkloadConfig, check_requests, generate


@dataclass
class ServeResult:
    """``requests``: one row per request; ``iterations``: one row per scheduler iteration;
    ``summary``: one row (latency percentiles, throughput, goodput, energy, silicon)."""
    requests: pd.DataFrame
    iterations: pd.DataFrame
    summary: pd.DataFrame

    def __repr__(self) -> str:
        s = self.summary.iloc[0]
        return (f"ServeResult({s['chip']}, {s['chips']} chips, {s['requests']} requests: "
                f"{s['throughput_rps']:.3g} req/s, TTFT p90 {s['ttft_p90_s'] * 1e3:.3g} ms, "
                f"TPOT p90 {s['tpot_p90_s'] * 1e3:.3g} ms, attainment {s['attainment']:.2f})")


def serve(workload: "WorkloadConfig | pd.DataFrame", cost: IterationCostModel,
          scheduler: SchedulerConfig | None = None, parallel: ParallelConfig | None = None,
          interconnect: "InterconnectConfig | str | None" = None, targets: Targets | None = None) -> ServeResult:
    """Simulate serving ``workload`` (a config, or a request table) on a deployment whose iterations cost ``cost``."""
    scheduler = scheduler or SchedulerConfig()
    parallel = parallel or ParallelConfig(tp=cost.facts.tp)
    targets = targets or Targets()
    ic = load_interconnect(interconnect) if interconnect is not None else None
    if isinstance(workload, WorkloadConfig):
        requests = generate(workload)
    elif isinstance(workload, pd.DataFrame):
        requests = check_requests(workload)
    else:
        raise TypeError(f"workload must be a WorkloadConfig or a request DataFrame, got {type(workload).__name__}")
    engine = Engine(requests, cost, scheduler, parallel, ic)
    reqs, its = engine.run()
    reqs["met_targets"] = met_targets(reqs, targets)
    summary = pd.DataFrame([summarize(reqs, its, cost.facts, parallel, targets, engine.itl)])
    return ServeResult(requests=reqs, iterations=its, summary=summary)


def search_rate(workload: WorkloadConfig, cost: IterationCostModel, scheduler: SchedulerConfig | None = None,
                parallel: ParallelConfig | None = None, interconnect: "InterconnectConfig | str | None" = None,
                targets: Targets | None = None, lo: float = 0.01, hi: float = 1000.0, rel_tol: float = 0.05,
                progress: Callable[[str], None] | None = None) -> tuple[float, pd.DataFrame]:
    """Highest request rate (req/s) at which at least ``targets.attainment`` of requests meet both targets,
    the latest-arriving quarter of them included (:func:`late_attainment`: an overloaded deployment's
    queue grows while requests arrive, so a short run could otherwise pass a rate it cannot sustain).

    Bisection in log(rate) between ``lo`` and ``hi`` (same seed and lengths at every rate) until the
    bracket is within ``rel_tol``; returns the best passing rate (NaN when even ``lo`` fails) and one
    summary row per rate tried (with ``late_attainment``)."""
    targets = targets or Targets()
    check_number(lo, "lo", lo=0, lo_open=True)
    check_number(hi, "hi", lo=lo, lo_open=True)
    check_number(rel_tol, "rel_tol", lo=1e-4, hi=1)
    rows = []

    def passes(rate: float) -> bool:
        w = dataclasses.replace(workload, rate=rate)
        res = serve(w, cost, scheduler, parallel, interconnect, targets)
        s = res.summary.iloc[0].to_dict()
        late = late_attainment(res.requests, targets)
        rows.append(dict(s, rate=rate, late_attainment=late))
        if progress:
            progress(f"rate {rate:.4g} req/s: attainment {s['attainment']:.3f}, latest quarter {late:.3f}")
        return s["attainment"] >= targets.attainment and late >= targets.attainment

    if not passes(lo):
        return math.nan, pd.DataFrame(rows)
    if passes(hi):
        if progress:
            progress(f"the search's upper bound {hi:.4g} req/s passes: the highest rate is at least that")
        return hi, pd.DataFrame(rows)
    a, b = lo, hi
    while b / a > 1 + rel_tol:
        mid = math.sqrt(a * b)
        a, b = (mid, b) if passes(mid) else (a, mid)
    return a, pd.DataFrame(rows).sort_values("rate").reset_index(drop=True)
