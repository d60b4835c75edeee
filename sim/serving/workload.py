"""Request workloads: arrival times with prompt and output lengths, seeded and reproducible.

Arrivals are Poisson (exponential gaps), bursty Gamma gaps with a chosen coefficient of variation
(CV 1 is Poisson; the Azure 2023 code trace has CV 13.2), or evenly spaced (deterministic, for hand
checks).  Lengths are fixed, or log-normal through a published median and 99th percentile
(``sim/data/serving_anchors.csv``, the Azure LLM inference traces 2023), or come with the arrivals
from a user CSV (``arrival_s,prompt_tokens,output_tokens``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from contract.config import check_fields, check_number, quote
from contract.io import check_input_file
from contract.limits import limit

ANCHORS_CSV = Path(__file__).resolve().parents[1] / "data" / "serving_anchors.csv"
ARRIVALS = ("poisson", "gamma", "uniform")
LENGTHS = ("fixed", "conversation", "code", "lognormal")
MAX_TOKENS = limit("request prompt or output length", 1 << 20, unit="tokens", area="serving",
                   applies_to="serve specs and request CSVs", why="the decode-context bound; longer requests "
                   "are refused row by row")
MAX_REQUESTS = limit("requests in one workload", 10_000_000, unit="requests", area="serving",
                     applies_to="serve specs and request CSVs",
                     why="10,000 requests simulate in seconds; 10^7 is the most one run holds in memory")
MIN_RATE = limit("lowest request rate", 1e-6, unit="req/s", area="serving", applies_to="serve specs",
                 why="one request in 11 days; below it a run holds no load")
MAX_RATE = limit("highest request rate", 1e6, unit="req/s", area="serving", applies_to="serve specs",
                 why="far above what any deployment serves; a rate search stops below it")
Z99 = 2.3263478740408408          # standard normal 99th percentile
CSV_MAX_BYTES = 1 << 30


@dataclass(frozen=True, kw_only=True)
class WorkloadConfig:
    """How requests arrive and how long they are (the ``workload`` section of a serve spec)."""
    requests: int = 1000
    rate: float = 1.0                 # req/s (mean); ignored for a CSV
    arrival: str = "poisson"          # ARRIVALS
    cv: float = 1.0                   # inter-arrival coefficient of variation (gamma)
    lengths: str = "conversation"     # LENGTHS
    prompt_tokens: int = 1024         # fixed lengths, or the log-normal median
    output_tokens: int = 128
    prompt_p99: int = 4096            # lognormal only
    output_p99: int = 512
    max_prompt: int = 8192            # lengths drawn above these are clipped (a model's context)
    max_output: int = 4096
    seed: int = 0
    csv: str = ""                     # path of a request CSV; overrides arrivals and lengths

    def __post_init__(self) -> None:
        check_number(self.requests, "workload.requests", integer=True, lo=1, hi=MAX_REQUESTS)
        check_number(self.rate, "workload.rate", lo=MIN_RATE, hi=MAX_RATE, unit="req/s")
        if self.arrival not in ARRIVALS:
            raise ValueError(f"workload.arrival: unknown arrival process {quote(self.arrival)}; known: {ARRIVALS}")
        check_number(self.cv, "workload.cv", lo=0.01, hi=100)
        if self.lengths not in LENGTHS:
            raise ValueError(f"workload.lengths: unknown length distribution {quote(self.lengths)}; known: {LENGTHS}")
        for f in ("prompt_tokens", "output_tokens", "prompt_p99", "output_p99", "max_prompt", "max_output"):
            check_number(getattr(self, f), f"workload.{f}", integer=True, lo=1, hi=MAX_TOKENS)
        check_number(self.seed, "workload.seed", integer=True, lo=0, hi=2**32 - 1)
        if not isinstance(self.csv, str):
            raise ValueError(f"workload.csv: expected a path string, got {quote(self.csv)}")

    @classmethod
    def from_dict(cls, raw: object, where: str = "workload") -> "WorkloadConfig":
        d = check_fields(raw, [f.name for f in fields(cls)], where)
        return cls(**d)


def anchors() -> pd.DataFrame:
    """The published anchors table (``kind,name,value,unit,source``)."""
    return pd.read_csv(ANCHORS_CSV, comment="#")


def anchor(name: str) -> float:
    """One anchor value by name (``conversation.prompt_median``, ``h100.tp8.32kb``, ...)."""
    t = anchors()
    row = t[t["name"] == name]
    if row.empty:
        raise KeyError(f"no anchor {name!r} in {ANCHORS_CSV.name}; known: {sorted(t['name'])}")
    return float(row["value"].iloc[0])


def trace_statistics(kind: str) -> dict[str, float]:
    """Median / p99 of prompt and output and the arrival CV of one published trace (``conversation``, ``code``).

    The code trace comes here with medians only: its p99s take the conversation trace's p99 / median
    ratios (the same log-normal spread; an assumption)."""
    t = anchors()
    rows = t[(t["kind"] == "workload") & t["name"].str.startswith(kind + ".")]
    out = {n.split(".", 1)[1]: float(v) for n, v in zip(rows["name"], rows["value"])}
    if not out:
        raise ValueError(f"workload.lengths: no published statistics for {kind!r}")
    out.setdefault("prompt_p99", out["prompt_median"] * anchor("conversation.prompt_p99")
                   / anchor("conversation.prompt_median"))
    out.setdefault("output_p99", out["output_median"] * anchor("conversation.output_p99")
                   / anchor("conversation.output_median"))
    return out


def lognormal_lengths(rng: np.random.Generator, n: int, median: float, p99: float, hi: int) -> np.ndarray:
    """``n`` integer lengths, log-normal with this median and 99th percentile, clipped to [1, hi]."""
    mu = math.log(median)
    sigma = max(math.log(max(p99, median)) - mu, 0.0) / Z99
    x = rng.lognormal(mu, sigma, size=n) if sigma > 0 else np.full(n, median)
    return np.clip(np.rint(x), 1, hi).astype(np.int64)


def arrival_times(rng: np.random.Generator, n: int, rate: float, arrival: str, cv: float) -> np.ndarray:
    """``n`` arrival times (s) from 0: exponential (Poisson), Gamma with this CV, or evenly spaced gaps."""
    mean = 1.0 / rate
    if arrival == "poisson":
        gaps = rng.exponential(mean, size=n)
    elif arrival == "gamma":
        shape = 1.0 / (cv * cv)
        gaps = rng.gamma(shape, mean / shape, size=n)
    else:
        gaps = np.full(n, mean)
    gaps[0] = 0.0
    return np.cumsum(gaps)


def generate(cfg: WorkloadConfig) -> pd.DataFrame:
    """The requests of ``cfg``: ``request, arrival_s, prompt_tokens, output_tokens`` sorted by arrival."""
    if cfg.csv:
        return load_requests(cfg.csv, max_prompt=cfg.max_prompt, max_output=cfg.max_output)
    rng = np.random.default_rng(cfg.seed)
    n = cfg.requests
    t = arrival_times(rng, n, cfg.rate, cfg.arrival, cfg.cv)
    if cfg.lengths == "fixed":
        p = np.full(n, min(cfg.prompt_tokens, cfg.max_prompt), dtype=np.int64)
        o = np.full(n, min(cfg.output_tokens, cfg.max_output), dtype=np.int64)
    else:
        if cfg.lengths == "lognormal":
            s = dict(prompt_median=cfg.prompt_tokens, prompt_p99=cfg.prompt_p99,
                     output_median=cfg.output_tokens, output_p99=cfg.output_p99)
        else:
            s = trace_statistics(cfg.lengths)
        p = lognormal_lengths(rng, n, s["prompt_median"], s["prompt_p99"], cfg.max_prompt)
        o = lognormal_lengths(rng, n, s["output_median"], s["output_p99"], cfg.max_output)
    return pd.DataFrame({"request": np.arange(n, dtype=np.int64), "arrival_s": t,
                         "prompt_tokens": p, "output_tokens": o})


def check_requests(df: pd.DataFrame, where: str = "requests", max_prompt: int = MAX_TOKENS,
                   max_output: int = MAX_TOKENS) -> pd.DataFrame:
    """Check a request table: columns present, arrivals finite, >= 0 and in order, lengths in range."""
    need = ("arrival_s", "prompt_tokens", "output_tokens")
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}; a request table has {list(need)}")
    if len(df) == 0:
        raise ValueError(f"{where}: no requests")
    if len(df) > MAX_REQUESTS:
        raise ValueError(f"{where}: {len(df)} requests; at most {MAX_REQUESTS}")
    t = pd.to_numeric(df["arrival_s"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(t) | (t < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{where}: row {i}: arrival_s = {quote(df['arrival_s'].iloc[i])} is not a finite "
                         "number >= 0 (seconds)")
    if (np.diff(t) < 0).any():
        i = int(np.argmax(np.diff(t) < 0)) + 1
        raise ValueError(f"{where}: row {i}: arrival_s {t[i]:g} is before the previous row's {t[i - 1]:g}; "
                         "requests must be sorted by arrival time")
    out = {"request": np.arange(len(df), dtype=np.int64), "arrival_s": t}
    for col, hi in (("prompt_tokens", max_prompt), ("output_tokens", max_output)):
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(v) | (v != np.round(v)) | (v < 1) | (v > hi)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{where}: row {i}: {col} = {quote(df[col].iloc[i])} is not an integer in "
                             f"[1, {hi}] tokens")
        out[col] = v.astype(np.int64)
    return pd.DataFrame(out)


def load_requests(path: str | Path, max_prompt: int = MAX_TOKENS, max_output: int = MAX_TOKENS) -> pd.DataFrame:
    """A user request CSV (``arrival_s,prompt_tokens,output_tokens``), checked row by row."""
    p = check_input_file(path, what="request CSV", expected=".csv", max_bytes=CSV_MAX_BYTES,
                         why="a request table of arrival_s,prompt_tokens,output_tokens")
    try:
        df = pd.read_csv(p, comment="#")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"{p.name}: not a readable CSV ({' '.join(str(e).split())[:200]})") from None
    return check_requests(df, where=p.name, max_prompt=max_prompt, max_output=max_output)
