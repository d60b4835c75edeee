"""The report's system view: the committed ``bitsim serve`` runs, per model, a4.8 against the strongest
b1.58, the strongest conventional (FP16 or quantized) baseline and the measured-GPU preset.

Each run is one row of a ``serving_summary`` table.  The columns a run carries decide what is shown:
the highest arrival rate meeting both latency targets (``max_rate_rps``, or ``best_rate`` of a rate
search) and the metrics measured at that rate when the run stored them; otherwise the goodput and
metrics at the rate the run offered, and the table says which.  Model, datapath and accelerator come
from their own columns when present, else from the chip's name.

Every run has a comparison basis, read from its chip (:func:`run_basis`): iso-peak (a preset as shipped), iso-area
(a chip YAML scaled to a common area), or a measured GPU. A comparison is made within one model and one basis, never
across bases, and every rate shown carries its basis.

Why the rates come out as they do is read from the same runs: which latency target binds each run at its
highest rate (its p90 against the target), and what an iteration costs split into its prefill chunk and its
decode step (the run's ``cost_cache.csv``, the same points for every run of a model); the statistic profile
comes from the runs' committed specs.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path, PurePath

import numpy as np
import pandas as pd

import sim
from bitsim.experiments.baselines import CONVENTIONAL
from bitsim.experiments.fair import profile_label
from bitsim.experiments.serving import ServeSpec, load_spec, read_cost_cache
from bitsim.report.collect import SERVING_DIR
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
#: A p90 latency at or above this share of its target is said to bind the run's highest rate: the rate search
#: stops within a few per cent of the rate where a target is first missed.
BINDS_AT = 0.9
#: The next rate tried fails by a growing queue when its latest-arriving quarter meets the targets at least this much
#: less often than its requests overall (a rate just past a tail limit loses a few points in both).
QUEUE_GAP = 0.2
#: Where the committed specs of the serving runs sit, relative to the runs' folder's parent (``<name>.yaml``).
SPECS_DIR = ("specs", "serving")
#: A chip's ``comparison`` field -> the basis its runs are compared on.
BASES = {"equal-peak-throughput": "iso-peak", "equal-area": "iso-area", "measured-ceilings": "measured GPU",
         "standalone": "standalone chip"}
#: A run or chip name ending so, when its chip cannot be loaded, says its basis.
BASIS_SUFFIXES = {"-iso-area": "iso-area", "-iso-power": "iso-power", "-iso-peak": "iso-peak"}
NO_BASIS = "basis not recorded"
#: What each basis holds equal, as the section states it.
BASIS_WORDS = {
    "iso-peak": "each datapath on its chip preset, sized for equal peak operations per second of its main operation "
                "(attention array, vector lanes and SRAM bandwidth by the presets' one rule)",
    "iso-area": "each datapath's chip with every compute array, its vector lanes and its SRAM bandwidth scaled by one "
                "factor (the study's iso-area sizing) to one whole-chip area, stated in each chip YAML; SRAM sizes, "
                "off-chip memory and clock as its preset",
    "measured GPU": "a GPU built from its measured ceilings, sized to nothing else",
}


@lru_cache(maxsize=None)
def is_measured_gpu(accelerator: str) -> bool:
    """Whether ``accelerator`` is a preset built from a GPU's measured ceilings (dynamic energy only)."""
    try:
        return sim.load_accelerator(accelerator).comparison == "measured-ceilings"
    except (OSError, ValueError, TypeError):
        return False


@lru_cache(maxsize=None)
def _chip_comparison(accelerator: str) -> str | None:
    try:
        return sim.load_accelerator(accelerator).comparison
    except (OSError, ValueError, TypeError):
        return None


def run_basis(accelerator: str, run: str = "") -> str:
    """The basis a run compares on: its chip's ``comparison`` field (:data:`BASES`); when the chip does not load here
    (a chip YAML named relative to another folder), the suffix of the chip's or the run's name."""
    found = _chip_comparison(accelerator)
    if found is not None:
        return BASES.get(found, found)
    for name in (PurePath(accelerator).stem, PurePath(run).name):
        for suffix, basis in BASIS_SUFFIXES.items():
            if name.endswith(suffix):
                return basis
    return NO_BASIS


def chip_name(accelerator: str) -> str:
    """A chip as a table says it: a preset's name, or a chip YAML's file stem (never a path)."""
    return model_name(accelerator)


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
    accel = _text(srv, "accelerator", chip)
    out["basis"] = (_text(srv, "basis", pd.Series(NO_BASIS, index=srv.index)) if "basis" in srv
                    else [run_basis(a, r) for a, r in zip(accel, out.run)])
    out["accelerator"] = [chip_name(a) for a in accel]
    out["profile"] = srv["profile"] if "profile" in srv else None
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
    for c in ("ttft_target_s", "tpot_target_s", "target_rate", "chips_needed", "mean_batch", "ttft_p99_s",
              "tpot_p99_s", "area_mm2"):
        out[c] = srv[c] if c in srv else math.nan
    out["gpu_preset"] = [is_measured_gpu(a) or b == "measured GPU" for a, b in zip(accel, out.basis)]
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
    """Per model, basis and role, the run with the highest rate per chip (the strongest of its kind on that basis);
    roles in :data:`ROLES`. A comparison never takes runs of two bases."""
    models = list(dict.fromkeys(view.model))     # the runs' order: the first model committed first
    bases = _basis_order(view.basis)
    v = view[view.role.isin(ROLES)].assign(order=lambda d: d.role.map(ROLES.index),
                                           model_order=lambda d: d.model.map(models.index),
                                           basis_order=lambda d: d.basis.map(bases.index),
                                           per_chip=lambda d: d.rate_rps / d.chips)
    # the strongest of a kind carries the most requests per chip: deployments of different sizes compare fairly
    v = v.sort_values(["model_order", "basis_order", "order", "per_chip"], ascending=[True, True, True, False],
                      na_position="last")
    return v.drop_duplicates(["model", "basis", "role"]).drop(
        columns=["order", "model_order", "basis_order", "per_chip"]).reset_index(drop=True)


def _basis_order(bases) -> list[str]:
    """The bases present: those of :data:`BASIS_WORDS` in its order, then any other in order of appearance."""
    present = list(dict.fromkeys(bases))
    return [b for b in BASIS_WORDS if b in present] + [b for b in present if b not in BASIS_WORDS]


def _groups(best: pd.DataFrame):
    """(model, basis, its runs) per comparison, in the table's order."""
    return ((m, b, g) for (m, b), g in best.groupby(["model", "basis"], sort=False))


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
    """One line per model and basis: a4.8's rate within the targets, its chips, and how it stands against each rival
    of the same basis."""
    lines = []
    for model, basis, g in _groups(best):
        rows = g.set_index("role")
        if "a4.8" not in rows.index:
            lines.append(f"- **{model}, {basis}**: no a4.8 run on this basis; "
                         + "; ".join(f"{r} {x.datapath} on {int(x.chips)} x {x.accelerator}: {x.rate_rps:.3g} req/s"
                                     for r, x in rows.iterrows()) + ".")
            continue
        a = rows.loc["a4.8"]
        rivals = [rival_words(a.rate_rps, a.chips, r, x) for r, x in rows.drop(index="a4.8").iterrows()]
        lines.append(f"- **{model}, {basis}: a4.8 serves {a.rate_rps:.3g} req/s on {int(a.chips)} x {a.accelerator}** "
                     f"({a.rate_basis}; {a.tokens_per_j:.3g} tokens/J, {a.output_tokens_per_s_per_mm2:.3g} tok/s "
                     f"per mm2): " + ("; ".join(rivals) if rivals else "no baseline run committed") + ".")
    return lines


def binding_target(x, nxt=None) -> tuple[str, str]:
    """Which latency target binds a run at its highest rate ('TTFT', 'TPOT', 'capacity' or 'the tail'), and the
    words: each p90 against its target, the closer first. When neither p90 reaches :data:`BINDS_AT` of its target
    and the next rate the search tried (``nxt``, a row of the run's ``search.csv``) fails with its latest-arriving
    requests far worse off than the rest (:data:`QUEUE_GAP`), the queue grows there: the chip's capacity binds.
    Otherwise the requests beyond p90 set the rate and their p99 is named."""
    shares = {"TTFT": (x.ttft_p90_s, x.ttft_target_s, "s", 1.0), "TPOT": (x.tpot_p90_s, x.tpot_target_s, "ms", 1e3)}
    ratio = {k: v[0] / v[1] if v[1] and v[1] > 0 else math.nan for k, v in shares.items()}
    if not all(r == r for r in ratio.values()):
        return "", "latency percentiles or targets not recorded"
    order = sorted(ratio, key=ratio.get, reverse=True)
    said = ", ".join(f"{k} p90 {shares[k][0] * shares[k][3]:.3g} {shares[k][2]} of {shares[k][1] * shares[k][3]:.3g} "
                     f"{shares[k][2]} ({100 * ratio[k]:.0f} %)" for k in order)
    if ratio[order[0]] >= BINDS_AT:
        return order[0], f"{order[0]} binds ({said})"
    if nxt is not None and nxt.late_attainment < nxt.attainment - QUEUE_GAP:
        return "capacity", (f"capacity binds: neither p90 is near its target ({said}), and the next rate tried, "
                            f"{nxt.rate:.3g} req/s, fails with its latest-arriving quarter at "
                            f"{100 * nxt.late_attainment:.0f} % within the targets against {100 * nxt.attainment:.0f} "
                            "% overall (a queue that grows while requests arrive)")
    p99 = (f"p99 TTFT {x.ttft_p99_s:.3g} s, TPOT {1e3 * x.tpot_p99_s:.3g} ms" if "ttft_p99_s" in x
           else "p99 not recorded")
    return "the tail", (f"neither p90 is near its target ({said}): the requests that miss either target set the "
                        f"rate ({p99})")


def serving_folder(data) -> Path | None:
    """The folder the report read its serving runs from (None when ``data`` does not say)."""
    measured = getattr(getattr(data, "config", None), "measured_path", None)
    return Path(measured).parent / SERVING_DIR if measured is not None else None


def run_spec(folder: Path | None, run: str) -> ServeSpec | None:
    """The committed spec of serving run ``run`` (None when it is not beside the runs or does not load)."""
    if folder is None or not run:
        return None
    try:
        return load_spec(folder.parent.joinpath(*SPECS_DIR, f"{PurePath(run).name}.yaml"))
    except (OSError, ValueError, TypeError):
        return None


def next_rate(folder: Path | None, run: str, rate: float):
    """The row of the run's ``search.csv`` for the lowest rate tried above ``rate`` (None when not stored)."""
    f = folder / run / "search.csv" if folder is not None and run else None
    if f is None or not f.is_file() or not rate == rate:
        return None
    try:
        t = pd.read_csv(f)
    except (OSError, ValueError):
        return None
    if not {"rate", "attainment", "late_attainment"} <= set(t.columns):
        return None
    above = t[t.rate > rate * (1 + 1e-9)].sort_values("rate")
    return above.iloc[0] if len(above) else None


def cost_cache(folder: Path | None, run: str) -> pd.DataFrame | None:
    """The direct iteration simulations a run stored (``cost_cache.csv``), or None."""
    if folder is None or not run or not (folder / run / "cost_cache.csv").is_file():
        return None
    try:
        return read_cost_cache(folder / run / "cost_cache.csv")
    except (OSError, ValueError):
        return None


def cost_points(cache: pd.DataFrame, mean_batch: float) -> dict[str, tuple[int, int, int]]:
    """The iteration parts compared across a model's runs, as (batch, new tokens, context): the largest prefill
    chunk at its smallest context, and a decode step at the largest context cached, at the batch nearest
    ``mean_batch`` among those cached there (a batch of the token grid, cached only at a short context, would
    show a step that streams no KV)."""
    pre, dec = cache[cache.phase == "prefill"], cache[cache.phase == "decode"]
    out = {}
    if len(pre):
        n = int(pre.new_tokens.max())
        out["prefill"] = (1, n, int(pre[pre.new_tokens == n].context.min()))
    if len(dec):
        dec = dec[dec.context == dec.context.max()]
        batches = np.sort(dec.batch.unique())
        b = int(batches[np.argmin(np.abs(np.log(batches / max(1.0, float(mean_batch)))))])
        out["decode"] = (b, 1, int(dec[dec.batch == b].context.max()))
    return out


def cost_of(cache: pd.DataFrame | None, phase: str, point: tuple[int, int, int]) -> float:
    """Seconds of the cached iteration ``point`` (batch, new tokens, context) of ``phase``; NaN when not cached."""
    if cache is None:
        return math.nan
    b, n, c = point
    hit = cache[(cache.phase == phase) & (cache.batch == b) & (cache.new_tokens == n) & (cache.context == c)]
    return float(hit.seconds.iloc[0]) if len(hit) else math.nan


def _mechanism(a, rival, costs: dict, bind: str, spec: ServeSpec | None) -> str:
    """Why a4.8 serves a lower rate than ``rival``, from the two runs' iteration costs, a4.8's binding target and
    its spec's scheduler."""
    (ap, rp), (ad, rd) = costs.get("prefill", (math.nan,) * 2), costs.get("decode", (math.nan,) * 2)
    if not (ap > rp and ad == ad and rd == rd):
        return ""
    decode = (f"decodes faster ({1e3 * ad:.3g} against {1e3 * rd:.3g} ms)" if ad < rd
              else f"decodes no faster ({1e3 * ad:.3g} against {1e3 * rd:.3g} ms)")
    chunked = spec is not None and spec.scheduler.policy == "chunked"
    carry = (f"with chunked prefill (a {spec.scheduler.token_budget}-token budget) an iteration that decodes also "
             "carries a prompt chunk" if chunked else "an iteration that admits a prompt also runs its prefill")
    why = {"TPOT": f"{carry}, so the slower prefill lengthens the decoding requests' time per output token and TPOT "
                   "is missed first",
           "TTFT": "prompts wait longer for their prefill, so TTFT is missed first",
           "capacity": "the rate is what the chip carries before its queue grows, and its prefill chunks and decode "
                       "steps share that time, so the slower prefill carries fewer requests"}.get(
        bind, "the slower prefill lengthens the iterations that set the tail latencies")
    over = (f"; a chunk alone takes {ap / a.tpot_target_s:.2g}x the TPOT target, so a decode sharing its "
            "iteration misses it" if a.tpot_target_s == a.tpot_target_s and ap > a.tpot_target_s > 0 else "")
    return (f"against {rival.datapath}, a4.8 {decode} but prefills slower ({1e3 * ap:.3g} against "
            f"{1e3 * rp:.3g} ms a chunk{over}): {why}")


def verdict_lines(best: pd.DataFrame, folder: Path | None) -> list[str]:
    """Per model, why the rates come out as they do: each run's binding target and its iteration's prefill and
    decode cost (from the runs' cost caches), and for every rival serving more than a4.8 the mechanism."""
    lines = []
    for model, basis, g in _groups(best):
        rows = g.set_index("role")
        if "a4.8" not in rows.index:
            continue
        a = rows.loc["a4.8"]
        caches = {r: cost_cache(folder, x.run) for r, x in rows.iterrows()}
        points = cost_points(caches["a4.8"], a.mean_batch) if caches["a4.8"] is not None else {}
        parts, binds = [], {}
        for role, x in rows.iterrows():
            binds[role], words = binding_target(x, next_rate(folder, x.run, x.rate_rps))
            parts.append(f"{x.datapath} on {x.accelerator}: {words}" + _cost_words(caches[role], points,
                                                                                  x.tpot_target_s))
        spec = run_spec(folder, a.run)
        why = [_mechanism(a, x, {ph: (cost_of(caches["a4.8"], ph, pt), cost_of(caches[r], ph, pt))
                                 for ph, pt in points.items()}, binds["a4.8"], spec)
               for r, x in rows.drop(index="a4.8").iterrows() if x.rate_rps / x.chips > a.rate_rps / a.chips]
        why = [w for w in why if w]
        lines.append(f"- **{model}, {basis}**, at each run's highest rate: " + "; ".join(parts) + "."
                     + (" " + _sentence("; ".join(why)) + "." if why else ""))
    return lines


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _cost_words(cache: pd.DataFrame | None, points: dict, tpot_target_s: float) -> str:
    """'; iteration parts: prefill (...) 76.6 ms, decode (...) 7.55 ms, together 84.2 ms = 84 % of the TPOT target'
    ('' when the cache holds neither)."""
    cost = {ph: cost_of(cache, ph, pt) for ph, pt in points.items()}
    said = ", ".join(f"{ph} {_point_words(ph, points[ph])} {1e3 * v:.3g} ms" for ph, v in cost.items() if v == v)
    total = sum(cost.values())
    if len(cost) == 2 and total == total and tpot_target_s == tpot_target_s and tpot_target_s > 0:
        said += f", together {1e3 * total:.3g} ms = {100 * total / tpot_target_s:.0f} % of the TPOT target"
    return f"; iteration parts: {said}" if said else ""


def _point_words(phase: str, point: tuple[int, int, int]) -> str:
    b, n, c = point
    seqs = "1 sequence" if b == 1 else f"{b} sequences"
    return f"({n}-token chunk at context {c:,})" if phase == "prefill" else f"({seqs} at context {c:,})"


def _study_profile(data) -> str | None:
    """The study's comparison profile, when ``data`` carries a study."""
    try:
        return data.profile
    except (AttributeError, KeyError):
        return None


def profile_words(view: pd.DataFrame, folder: Path | None, study_profile: str | None) -> str:
    """The statistic profile the runs served with (the summaries' ``profile`` column; for runs written before it
    existed, their specs'), and the study's, so the reader knows the basis of each."""
    study = f"; the study's tables use {profile_label(study_profile)}" if study_profile else ""
    if "profile" in view.columns and view.profile.notna().all():
        return f"Statistic profile of the runs: {', '.join(sorted({profile_label(p) for p in view.profile}))}{study}"
    specs = [run_spec(folder, r) for r in view.run]
    found = sorted({profile_label(s.profile) for s in specs if s is not None})
    if not found:
        return "Statistic profile: not recorded with the runs (a spec's default is random-weight statistics)" + study
    return f"Statistic profile of the runs' specs: {', '.join(found)}{study}"


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


def basis_words(view: pd.DataFrame) -> str:
    """What each basis of the runs holds equal, with the area of one chip of its runs: 'Bases: **iso-peak**: ...'."""
    parts = []
    for b in _basis_order(view.basis):
        runs = view[view.basis == b]
        area = (runs.area_mm2 / runs.chips).dropna()
        span = (f"{area.min():.1f} mm2" if area.max() - area.min() < 0.05 else
                f"{area.min():.1f}-{area.max():.1f} mm2") if len(area) else "not recorded"
        parts.append(f"**{b}**: {BASIS_WORDS.get(b, 'as its chip states')} (chip area {span})")
    return "Bases, each compared only with itself: " + "; ".join(parts)


def _targets(view: pd.DataFrame) -> str:
    pairs = sorted({(t, p) for t, p in zip(view.ttft_target_s, view.tpot_target_s) if t == t and p == p})
    return "; ".join(f"TTFT <= {t:g} s and TPOT <= {p:g} s" for t, p in pairs) or "not recorded"


def comparison_table(best: pd.DataFrame) -> pd.DataFrame:
    """The system view's table: per model, a4.8 and each strongest rival, the rate and the metrics at it."""
    t = best[["model", "basis", "role", "datapath", "accelerator", "chips", "rate_rps", "rate_basis"]
             + list(METRICS)].copy()
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
    basis = profile_words(view, serving_folder(data), None)
    return (f"**The system view** (serving simulation; targets {_targets(view)}; workload: {workload_words(srv)}; "
            f"chip-model energy, dynamic + static; {basis[0].lower() + basis[1:]}; the Serving section below): "
            + " ".join(lines))


def serving_section(data, csv_link: str = "{csv:serving}") -> Section | None:
    """The system view: per model, requests per second within the latency targets, chips, tokens per joule and
    per mm2, a4.8 against the strongest b1.58, the strongest conventional baseline and the measured-GPU
    preset; then every run.  None when no run is committed."""
    srv = data.serving
    if srv is None or not len(srv):
        return None
    view = serving_view(srv)
    best = model_comparison(view)
    folder = serving_folder(data)
    s = Section("Serving: the system view")
    s.text(f"{len(srv)} committed serving run(s) of `bitsim serve` (a request-level simulation of a deployment: "
           "continuous batching, KV blocks, tensor and pipeline parallelism). Targets: " + _targets(view)
           + f". Workload: {workload_words(srv)}. Energy: the iterations' energy on the chip model (dynamic + "
           "static; idle time between iterations not counted); a measured-GPU preset counts dynamic energy only, so "
           "its tokens/J is not comparable. Per model and basis, the strongest run of each kind (highest rate within "
           "the targets); its metrics at that rate where the run stored them, else at the rate it offered. "
           f"{basis_words(view)}. Every column of every run: {csv_link}. "
           f"{profile_words(view, folder, _study_profile(data))}.")
    if len(best):
        s.text("\n".join(model_lines(best)))
        why = verdict_lines(best, folder)
        if why:
            s.text("Why the rates come out so: the rate search keeps the highest rate at which the spec's share of "
                   "requests meets both targets, so a target whose p90 sits near its limit (at least "
                   f"{100 * BINDS_AT:.0f} % of it) is the one that binds; an iteration's cost "
                   "is split into its prefill chunk and its decode step (the runs' cost caches, the same points for "
                   "every run of a model).\n" + "\n".join(why))
        s.table(Table(name="serving", df=comparison_table(best), caption="Per model and basis: a4.8 against the "
                      "strongest b1.58, the strongest conventional baseline and the measured-GPU preset"))
    shown = view[["run", "model", "basis", "datapath", "accelerator", "chips", "rate_rps", "rate_basis"]
                 + list(METRICS)]
    s.table(Table(name="serving", df=shown.rename(columns={"rate_rps": "req/s", "rate_basis": "rate", **METRICS}),
                  caption="Every serving run"))
    return s
