"""What an operator reads from a run: latency percentiles, throughput, goodput, energy and silicon per token."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from contract.serving import AT_MAX_METRICS

from .config import ParallelConfig, Targets
from .costmodel import ChipFacts

PERCENTILES = (50, 90, 99)


def met_targets(requests: pd.DataFrame, targets: Targets) -> np.ndarray:
    """Per request: finished, TTFT <= target and TPOT <= target."""
    done = np.isfinite(requests["finish_s"].to_numpy())
    return done & (requests["ttft_s"].to_numpy() <= targets.ttft_s) & (requests["tpot_s"].to_numpy() <= targets.tpot_s)


#: Share of requests, latest arrivals first, whose attainment also decides whether a rate is sustained.
LATE_SHARE = 0.25


def late_attainment(requests: pd.DataFrame, targets: Targets, share: float = LATE_SHARE) -> float:
    """Share of the latest-arriving ``share`` of requests that meet both targets.

    A deployment offered more than it can serve builds a queue that grows for as long as requests
    arrive: on a finite run the overall attainment can still pass while the last arrivals wait ever
    longer.  Their attainment is the run's test of a sustained rate (a stable queue serves late and
    early arrivals alike)."""
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share!r}")
    order = np.argsort(requests["arrival_s"].to_numpy(), kind="stable")
    n = max(1, int(math.ceil(share * len(order))))
    late = requests.iloc[order[-n:]]
    return float(met_targets(late, targets).mean())


def _pct(x: np.ndarray, q: float) -> float:
    x = x[np.isfinite(x)]
    return float(np.percentile(x, q)) if len(x) else math.nan


def summarize(requests: pd.DataFrame, iterations: pd.DataFrame, facts: ChipFacts, parallel: ParallelConfig,
              targets: Targets, itl_s: "np.ndarray | None" = None) -> dict:
    """The one summary row of a run (the ``serving_summary`` table); ``itl_s``: every inter-token gap."""
    done = np.isfinite(requests["finish_s"].to_numpy())
    fin = requests[done]
    t0 = float(requests["arrival_s"].min())
    t1 = float(fin["finish_s"].max()) if len(fin) else t0
    span = max(t1 - t0, 1e-12)
    out_tokens = float(fin["output_tokens"].sum())
    energy = float(iterations["energy_j"].sum()) if len(iterations) else 0.0
    met = met_targets(requests, targets)
    chips = parallel.chips
    row = dict(
        name="", model=facts.model, datapath=facts.datapath, accelerator=facts.name, profile="", chip=facts.name,
        tp=parallel.tp, pp=parallel.pp, instances=parallel.instances,
        disaggregated=parallel.disaggregated, chips=chips, requests=len(requests), finished=int(done.sum()),
        rejected=int(requests["rejected"].sum()), duration_s=span,
        offered_rate=(len(requests) - 1) / max(float(requests["arrival_s"].max()) - t0, 1e-12)
        if len(requests) > 1 else math.nan,
        throughput_rps=len(fin) / span, output_tokens_per_s=out_tokens / span,
        total_tokens_per_s=(out_tokens + float(fin["prompt_tokens"].sum())) / span,
        goodput_rps=float(met.sum()) / span, attainment=float(met.mean()),
        ttft_target_s=targets.ttft_s, tpot_target_s=targets.tpot_s,
        energy_j=energy, tokens_per_j=out_tokens / energy if energy > 0 else math.nan,
        output_tokens_per_s_per_chip=out_tokens / span / chips,
        output_tokens_per_s_per_mm2=out_tokens / span / (chips * facts.area_mm2) if facts.area_mm2 else math.nan,
        area_mm2=chips * facts.area_mm2, preemptions=int(requests["preemptions"].sum()),
        kv_occupancy_mean=float((iterations["kv_blocks_used"] / iterations["kv_blocks_total"]).mean())
        if len(iterations) else math.nan,
        kv_occupancy_max=float((iterations["kv_blocks_used"] / iterations["kv_blocks_total"]).max())
        if len(iterations) else math.nan,
        iterations=len(iterations),
        mean_batch=float(iterations["decode_requests"].mean()) if len(iterations) else math.nan,
    )
    for m in ("ttft", "tpot", "e2e"):
        x = requests[f"{m}_s"].to_numpy(dtype=float)[done]
        for q in PERCENTILES:
            row[f"{m}_p{q}_s"] = _pct(x, q)
    itl = np.asarray(itl_s if itl_s is not None else (), dtype=float)
    for q in PERCENTILES:
        row[f"itl_p{q}_s"] = _pct(itl, q)
    row["max_rate_rps"] = math.nan
    row.update({f"{m}_at_max": math.nan for m in AT_MAX_METRICS})
    row.update(target_rate=0.0, chips_needed=math.nan)
    return row


def at_max(summary: dict, best_rate: float, tried: pd.DataFrame) -> dict:
    """``summary`` with the rate search's result: ``max_rate_rps`` and the ``<metric>_at_max`` of the run at it."""
    out = dict(summary, max_rate_rps=best_rate)
    hit = tried[tried["rate"] == best_rate] if best_rate == best_rate else tried.iloc[:0]
    for m in AT_MAX_METRICS:
        out[f"{m}_at_max"] = float(hit[m].iloc[0]) if len(hit) else math.nan
    return out


def occupancy_over_time(iterations: pd.DataFrame, bins: int = 200) -> pd.DataFrame:
    """KV occupancy, running requests and preemptions in ``bins`` equal time windows (all instances)."""
    if iterations.empty:
        return pd.DataFrame(columns=["time_s", "kv_occupancy", "running", "preemptions"])
    t = iterations["start_s"].to_numpy()
    edges = np.linspace(t.min(), t.max() + 1e-12, bins + 1)
    k = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, bins - 1)
    g = pd.DataFrame({"bin": k, "occ": iterations["kv_blocks_used"] / iterations["kv_blocks_total"],
                      "running": iterations["running"], "pre": iterations["preemptions"]}).groupby("bin")
    out = pd.DataFrame({"time_s": edges[:-1][g.size().index], "kv_occupancy": g["occ"].mean().to_numpy(),
                        "running": g["running"].mean().to_numpy(), "preemptions": g["pre"].sum().to_numpy()})
    return out.reset_index(drop=True)
