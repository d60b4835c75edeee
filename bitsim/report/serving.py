"""The report's system view: the committed ``bitsim serve`` runs, per model, a4.8 against the strongest
b1.58, the strongest conventional (FP16 or quantized) baseline and the measured-GPU preset.

Each run is one row of a ``serving_summary`` table.  The columns a run carries decide what is shown:
the highest arrival rate meeting both latency targets (``max_rate_rps``, or ``best_rate`` of a rate
search) and the metrics measured at that rate when the run stored them; otherwise the goodput and
metrics at the rate the run offered, and the table says which.  Model, datapath and accelerator come
from their own columns when present, else from the chip's name.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import PurePath

import pandas as pd

import sim
from bitsim.experiments.baselines import CONVENTIONAL
from bitsim.report.document import Section, Table

#: The highest rate meeting the targets, by the column name a run may carry it under (first found wins).
RATE_COLUMNS = ("max_rate_rps", "best_rate")
#: Where a run stores a metric measured at that highest rate (``contract.serving``: ``<metric>_at_max``); without
#: it (or NaN there), the metric at the offered rate is shown.
AT_MAX_PATTERNS = ("{m}_at_max",)
#: The metrics the system view compares, and their names in its table.
METRICS = {"tokens_per_j": "tokens/J", "output_tokens_per_s_per_mm2": "tok/s per mm2",
           "output_tokens_per_s_per_chip": "tok/s per chip", "ttft_p90_s": "TTFT p90 s", "tpot_p90_s": "TPOT p90 s"}
#: The rows each model's comparison shows, in order.
ROLES = ("a4.8", "strongest b1.58", "strongest conventional", "measured-GPU preset")


@lru_cache(maxsize=None)
def is_measured_gpu(accelerator: str) -> bool:
    """Whether ``accelerator`` is a preset built from a GPU's measured ceilings (dynamic energy only)."""
    try:
        return sim.load_accelerator(accelerator).comparison == "measured-ceilings"
    except (OSError, ValueError, TypeError):
        return False


def _column(srv: pd.DataFrame, names) -> str | None:
    return next((c for c in names if c in srv.columns), None)


def serving_view(srv: pd.DataFrame) -> pd.DataFrame:
    """One row per run: model, datapath, accelerator, its role, the rate compared and the metrics at it.

    ``rate_basis`` says what the rate is: 'highest rate within the targets' (a rate search) or 'goodput at the
    offered rate' (no search stored); each metric's ``<metric>_basis`` says whether it was measured at the
    highest rate or at the offered one.
    """
    out = pd.DataFrame(index=srv.index)
    chip = _text(srv, "chip", pd.Series("?", index=srv.index))
    out["run"] = _text(srv, "run", pd.Series("", index=srv.index))
    out["model"] = [model_name(m) for m in _text(srv, "model", pd.Series("model not recorded", index=srv.index))]
    out["datapath"] = _text(srv, "datapath", chip)
    out["accelerator"] = _text(srv, "accelerator", chip)
    out["chips"] = srv["chips"] if "chips" in srv else math.nan
    rate = _column(srv, RATE_COLUMNS)
    searched = srv[rate].notna() if rate else pd.Series(False, index=srv.index)
    out["rate_rps"] = srv[rate].where(searched, srv["goodput_rps"]) if rate else srv["goodput_rps"]
    out["rate_basis"] = ["highest rate within the targets" if s else "goodput at the offered rate"
                         for s in searched]
    for m in METRICS:
        at = _column(srv, [p.format(m=m) for p in AT_MAX_PATTERNS])
        base = srv[m] if m in srv else pd.Series(math.nan, index=srv.index)
        use_at = srv[at].notna() & searched if at else pd.Series(False, index=srv.index)
        out[m] = srv[at].where(use_at, base) if at else base
        out[f"{m}_basis"] = ["at the highest rate" if u else "at the offered rate" for u in use_at]
    for c in ("ttft_target_s", "tpot_target_s", "target_rate", "chips_needed"):
        out[c] = srv[c] if c in srv else math.nan
    out["gpu_preset"] = [is_measured_gpu(a) for a in out.accelerator]
    out["role"] = [_role(d, g) for d, g in zip(out.datapath, out.gpu_preset)]
    return out


def _text(srv: pd.DataFrame, column: str, fallback: pd.Series) -> pd.Series:
    """``srv[column]`` as text, each missing or empty cell (or the whole column when absent) from ``fallback``."""
    if column not in srv:
        return fallback.astype(str)
    col = srv[column].astype("string").str.strip()
    return col.where(col.notna() & (col != ""), fallback.astype(str)).astype(str)


def model_name(model: str) -> str:
    """A model as a title says it: its preset name, or a model YAML's file stem (never a path)."""
    return PurePath(model).stem if model.endswith((".yaml", ".yml")) else model


def _role(datapath: str, gpu_preset: bool) -> str:
    if gpu_preset:
        return "measured-GPU preset"
    if datapath == "a4.8":
        return "a4.8"
    if datapath.startswith("b1.58"):
        return "strongest b1.58"
    if datapath in CONVENTIONAL:
        return "strongest conventional"
    return "other"


def model_comparison(view: pd.DataFrame) -> pd.DataFrame:
    """Per model and role, the run with the highest rate per chip (the strongest of its kind); roles in
    :data:`ROLES`."""
    models = list(dict.fromkeys(view.model))     # the runs' order: the first model committed first
    v = view[view.role.isin(ROLES)].assign(order=lambda d: d.role.map(ROLES.index),
                                           model_order=lambda d: d.model.map(models.index),
                                           per_chip=lambda d: d.rate_rps / d.chips)
    # the strongest of a kind carries the most requests per chip: deployments of different sizes compare fairly
    v = v.sort_values(["model_order", "order", "per_chip"], ascending=[True, True, False], na_position="last")
    return v.drop_duplicates(["model", "role"]).drop(columns=["order", "model_order", "per_chip"]).reset_index(
        drop=True)


def rival_words(a_rate: float, a_chips: float, role: str, rival) -> str:
    """'1.30x the rate of the strongest b1.58 (b1.58 on 1 x b1.58, 9.6 req/s)'; a rate below reads 'below'; on
    deployments of different sizes, the rate per chip."""
    who = f"{role} ({rival.datapath} on {int(rival.chips)} x {rival.accelerator}, {rival.rate_rps:.3g} req/s)"
    b = rival.rate_rps
    if not (a_rate == a_rate and b == b and b > 0):
        return f"no rate to compare with the {who}"
    r, what = a_rate / b, "the rate"
    if a_chips != rival.chips:   # deployments of different sizes: compare the rate each chip carries
        r, what = r * rival.chips / a_chips, "the rate per chip"
    if abs(r - 1) < 0.005:
        return f"{what} of the {who}"
    return f"{r:.2f}x {what} of the {who}" if r > 1 else f"{1 / r:.2f}x below {what} of the {who}"


def model_lines(best: pd.DataFrame) -> list[str]:
    """One line per model: a4.8's rate within the targets, its chips, and how it stands against each rival."""
    lines = []
    for model, g in best.groupby("model", sort=False):
        rows = g.set_index("role")
        if "a4.8" not in rows.index:
            lines.append(f"- **{model}**: no a4.8 run committed; "
                         + "; ".join(f"{r} {x.datapath} on {int(x.chips)} x {x.accelerator}: {x.rate_rps:.3g} req/s"
                                     for r, x in rows.iterrows()) + ".")
            continue
        a = rows.loc["a4.8"]
        rivals = [rival_words(a.rate_rps, a.chips, r, x) for r, x in rows.drop(index="a4.8").iterrows()]
        lines.append(f"- **{model}: a4.8 serves {a.rate_rps:.3g} req/s on {int(a.chips)} x {a.accelerator}** "
                     f"({a.rate_basis}; {a.tokens_per_j:.3g} tokens/J, {a.output_tokens_per_s_per_mm2:.3g} tok/s "
                     f"per mm2): " + ("; ".join(rivals) if rivals else "no baseline run committed") + ".")
    return lines


def workload_words(srv: pd.DataFrame) -> str:
    """The workload as the runs report it: requests, offered rate, mean prompt and output tokens per request."""
    parts = []
    for c, unit in (("requests", "requests"), ("offered_rate", "req/s offered")):
        if c in srv and srv[c].notna().any():
            lo, hi = srv[c].min(), srv[c].max()
            parts.append(f"{lo:.3g} {unit}" if lo == hi else f"{lo:.3g}-{hi:.3g} {unit}")
    if {"output_tokens_per_s", "total_tokens_per_s", "throughput_rps"} <= set(srv.columns):
        out = (srv.output_tokens_per_s / srv.throughput_rps).median()
        prompt = ((srv.total_tokens_per_s - srv.output_tokens_per_s) / srv.throughput_rps).median()
        if out == out and prompt == prompt:
            parts.append(f"~{prompt:,.0f} prompt and ~{out:,.0f} output tokens per finished request (median over "
                         "runs)")
    return ", ".join(parts) or "not recorded in the summaries"


def _targets(view: pd.DataFrame) -> str:
    pairs = sorted({(t, p) for t, p in zip(view.ttft_target_s, view.tpot_target_s) if t == t and p == p})
    return "; ".join(f"TTFT <= {t:g} s and TPOT <= {p:g} s" for t, p in pairs) or "not recorded"


def comparison_table(best: pd.DataFrame) -> pd.DataFrame:
    """The system view's table: per model, a4.8 and each strongest rival, the rate and the metrics at it."""
    t = best[["model", "role", "datapath", "accelerator", "chips", "rate_rps", "rate_basis"] + list(METRICS)].copy()
    t["energy"] = ["dynamic only (GPU preset; not comparable)" if g else "chip model, dynamic + static"
                   for g in best.gpu_preset]
    need = best.chips_needed.notna() & (best.target_rate > 0)
    if need.any():   # the chips each deployment needs to carry the service's rate within the targets
        t["target req/s"] = best.target_rate.where(need)
        t["chips for the target"] = best.chips_needed.where(need)
    return t.rename(columns={"rate_rps": "req/s", "rate_basis": "rate", **METRICS})


def serving_headline(data) -> str | None:
    """The executive summary's first finding: per model, a4.8's rate within the targets against its strongest
    rivals, with the targets, workload and energy basis it was measured at; None without serving runs."""
    srv = getattr(data, "serving", None)
    if srv is None or not len(srv):
        return None
    view = serving_view(srv)
    best = model_comparison(view)
    lines = [line[2:] for line in model_lines(best)]
    if not lines:
        return None
    return (f"**The system view** (serving simulation; targets {_targets(view)}; workload: {workload_words(srv)}; "
            "chip-model energy, dynamic + static; the Serving section below): " + " ".join(lines))


def serving_section(data, csv_link: str = "{csv:serving}") -> Section | None:
    """The system view: per model, requests per second within the latency targets, chips, tokens per joule and
    per mm2, a4.8 against the strongest b1.58, the strongest conventional baseline and the measured-GPU
    preset; then every run.  None when no run is committed."""
    srv = data.serving
    if srv is None or not len(srv):
        return None
    view = serving_view(srv)
    best = model_comparison(view)
    s = Section("Serving: the system view")
    s.text(f"{len(srv)} committed serving run(s) of `bitsim serve` (a request-level simulation of a deployment: "
           "continuous batching, KV blocks, tensor and pipeline parallelism). Targets: " + _targets(view)
           + f". Workload: {workload_words(srv)}. Energy: the iterations' energy on the chip model (dynamic + "
           "static; idle time between iterations not counted); a measured-GPU preset counts dynamic energy only, so "
           "its tokens/J is not comparable. Per model, the strongest run of each kind (highest rate within the "
           "targets); its metrics at that rate where the run stored them, else at the rate it offered. Every column "
           f"of every run: {csv_link}.")
    if len(best):
        s.text("\n".join(model_lines(best)))
        s.table(Table(name="serving", df=comparison_table(best), caption="Per model: a4.8 against the strongest "
                      "b1.58, the strongest conventional baseline and the measured-GPU preset"))
    shown = view[["run", "model", "datapath", "accelerator", "chips", "rate_rps", "rate_basis"] + list(METRICS)]
    s.table(Table(name="serving", df=shown.rename(columns={"rate_rps": "req/s", "rate_basis": "rate", **METRICS}),
                  caption="Every serving run"))
    return s
