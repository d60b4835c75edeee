"""Zero skipping at batch: the fraction of weight rows whose activation is zero in all M rows.

A chip skips a weight row of a projection only when that row's activation is zero in every one of
the op's M rows (``row_skip``).  A profile that gives only the mean zero fraction ``s`` of a
projection's input (``paper-table2``, ``trained``) needs a rule for how that fraction falls with M.

Rules (``BATCH_RULES``)
-----------------------
* ``beta`` (the default): the zero frequency f of a reduction column varies from column to column;
  it is summarised by a Beta distribution of mean ``s`` (the profile's own sparsity) and
  concentration ``kappa`` (a = s*kappa, b = (1-s)*kappa), and

      row_skip(M) = E[f**M] = prod_{i<M} (a + i) / (a + b + i)

  (the Beta's M-th raw moment).  Only the shape, ``kappa``, is measured: fitted per datapath,
  projection group and row grouping on a trained checkpoint's activations
  (``benchmarks/zero_correlation.py --write``) and read from ONE committed table,
  ``reports/data/zero_correlation_fit.csv`` (:data:`FIT_PATH`).  Rows of a decode step are M
  sequences (grouping ``sequences``); rows of a prefill chunk are consecutive tokens (grouping
  ``tokens``), whose zeros are more alike than those of different sequences.
* ``independent``: ``row_skip = s**M``, zeros independent across rows and columns.  It is the
  limit kappa -> infinity and a lower bound of the ``beta`` rule for every finite kappa
  (each factor (a+i)/(a+b+i) >= s); kept as a labelled bound.

A datapath without fitted constants (none of its projections was measured on a trained model)
falls back to ``independent``, and the description says so.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from contract.config import check_number
from contract.io import files_digest, read_table
from model.paper_sparsity import PROJ_GROUP

BATCH_RULES = ("beta", "independent")
GROUPINGS = ("sequences", "tokens")      # decode: M sequences at one step; prefill: consecutive tokens
GROUPS = ("qkv", "o", "gate", "up", "down")
# reports/ lives next to model/ in the repository root
FIT_PATH = Path(__file__).resolve().parents[1] / "reports" / "data" / "zero_correlation_fit.csv"
FIT_COLUMNS = ("datapath", "group", "grouping", "kappa", "fit_sparsity", "fit_rmse", "fit_checkpoint")
PRODUCT_MAX_M = 4096                     # above this the moment is taken through log-gamma


def beta_row_skip(s: float, kappa: float, m: int) -> float:
    """E[f**m] for f ~ Beta(mean ``s``, concentration ``kappa``); ``kappa`` = inf gives ``s**m``.

    Exact product for m <= ``PRODUCT_MAX_M``, log-gamma above; kept inside its bounds
    [s**m, s] against rounding.
    """
    check_number(s, "sparsity", lo=0.0, hi=1.0)
    check_number(m, "M", integer=True, lo=1)
    if not (isinstance(kappa, (int, float)) and not isinstance(kappa, bool) and kappa > 0):
        raise ValueError(f"kappa: expected a number > 0 (or inf), got {kappa!r}")
    if s in (0.0, 1.0) or math.isinf(kappa):
        return float(s) ** m
    a = s * kappa
    if m <= PRODUCT_MAX_M:
        v = 1.0
        for i in range(m):
            v *= (a + i) / (kappa + i)
    else:
        v = math.exp(math.lgamma(a + m) - math.lgamma(a) + math.lgamma(kappa) - math.lgamma(kappa + m))
    return min(float(s), max(float(s) ** m, v))


# ------------------------------------------------------------------ fitting
def fit_kappa(s: float, ms: list[int], measured: list[float], lo: float = 1e-2, hi: float = 1e6) -> float:
    """The kappa in [lo, hi] whose Beta moments best match ``measured`` row skips at ``ms`` rows
    (least squares of the absolute difference: an error of the fetched fraction 1 - row_skip).

    A log-spaced grid, then golden-section refinement around its best point.  ``hi`` means the
    measurement shows no more skipping than independent zeros would.
    """
    if len(ms) != len(measured) or not ms:
        raise ValueError("fit_kappa: need as many measured row skips as row counts, at least one")

    def loss(log_k: float) -> float:
        k = math.exp(log_k)
        return sum((beta_row_skip(s, k, m) - y) ** 2 for m, y in zip(ms, measured))

    a, b = math.log(lo), math.log(hi)
    grid = [a + (b - a) * i / 400 for i in range(401)]
    best = min(range(len(grid)), key=lambda i: loss(grid[i]))
    x0, x1 = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    g = (math.sqrt(5) - 1) / 2
    for _ in range(60):
        c, d = x1 - g * (x1 - x0), x0 + g * (x1 - x0)
        if loss(c) <= loss(d):
            x1 = d
        else:
            x0 = c
    return math.exp((x0 + x1) / 2)


# ------------------------------------------------------------------ the committed constants
def _check_fit_table(df: pd.DataFrame, path: Path) -> None:
    missing = [c for c in FIT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"zero-correlation fit {path.name}: missing columns {missing}")
    for r in df.itertuples(index=False):
        where = f"zero-correlation fit {path.name}, row {r.datapath}/{r.group}/{r.grouping}"
        if r.group not in GROUPS:
            raise ValueError(f"{where}: group {r.group!r} is none of {list(GROUPS)}")
        if r.grouping not in GROUPINGS:
            raise ValueError(f"{where}: grouping {r.grouping!r} is none of {list(GROUPINGS)}")
        check_number(float(r.kappa), f"{where}: kappa", lo=0.0, lo_open=True)
        check_number(float(r.fit_sparsity), f"{where}: fit_sparsity", lo=0.0, hi=1.0)
    if df.duplicated(["datapath", "group", "grouping"]).any():
        raise ValueError(f"zero-correlation fit {path.name}: a (datapath, group, grouping) appears twice")


@functools.lru_cache(maxsize=4)
def load_fit(path: str | Path | None = None) -> dict[tuple[str, str], dict[str, float]]:
    """``{(datapath, grouping): {group: kappa}}`` of the committed fit (default :data:`FIT_PATH`).

    ``FileNotFoundError`` when the file is missing, ``ValueError`` naming the row when it is malformed.
    """
    p = FIT_PATH if path is None else Path(path)
    if not p.exists():
        raise FileNotFoundError(f"batch_rule 'beta': the zero-correlation fit {p} is missing; it is written by "
                                "`python benchmarks/zero_correlation.py --write` from the trained checkpoints")
    df = read_table(p, schema="zero_correlation_fit")
    _check_fit_table(df, p)
    out: dict[tuple[str, str], dict[str, float]] = {}
    for r in df.itertuples(index=False):
        out.setdefault((str(r.datapath), str(r.grouping)), {})[str(r.group)] = float(r.kappa)
    return out


def fit_digest(path: str | Path | None = None) -> str:
    """SHA-256 of the committed fit's bytes ("missing" when absent): part of every cache key the rule feeds."""
    p = FIT_PATH if path is None else Path(path)
    return files_digest([p]) if p.exists() else "missing"


# ------------------------------------------------------------------ the rule of a trace
@dataclass(frozen=True)
class BatchRule:
    """How a profile's mean sparsity becomes ``row_skip`` at M rows, and the words that say so."""

    name: str                              # a BATCH_RULES word actually applied
    grouping: str                          # sequences (decode) or tokens (prefill)
    kappa: dict[str, float]                # group -> concentration (empty for independent)
    detail: str

    def row_skip(self, group: str, s: float, m: int) -> float:
        return beta_row_skip(s, self.kappa[group], m) if self.name == "beta" else float(s) ** m

    def rows(self, group_sparsity: dict[str, float], m: int) -> dict[str, tuple[float, float]]:
        """``{op: (sparsity, row_skip)}`` of the q/k/v/o/gate/up/down projections at ``m`` rows."""
        return {op: (group_sparsity[g], self.row_skip(g, group_sparsity[g], m)) for op, g in PROJ_GROUP.items()}


def make_rule(datapath: str, phase_rows: str, rule: str = "beta", path: str | Path | None = None) -> BatchRule:
    """The rule for a ``datapath`` trace whose M rows are ``phase_rows`` (``sequences`` or ``tokens``)."""
    if rule not in BATCH_RULES:
        raise ValueError(f"batch_rule: unknown rule {rule!r}; known: {list(BATCH_RULES)}")
    if phase_rows not in GROUPINGS:
        raise ValueError(f"batch rows: unknown grouping {phase_rows!r}; known: {list(GROUPINGS)}")
    indep = "row_skip = sparsity**M (batch_rule 'independent': zeros independent across rows, a lower bound)"
    if rule == "independent":
        return BatchRule("independent", phase_rows, {}, indep)
    p = FIT_PATH if path is None else Path(path)
    kappa = load_fit(p).get((datapath, phase_rows))
    if kappa is None or set(kappa) != set(GROUPS):
        return BatchRule("independent", phase_rows, {},
                         f"{indep}; batch_rule 'beta' has no fitted constants for {datapath} ({phase_rows}) "
                         f"in {p.name}")
    ks = ", ".join(f"{g} {kappa[g]:.4g}" for g in GROUPS)
    rows = "M sequences of a decode step" if phase_rows == "sequences" else "M consecutive tokens of a prefill"
    return BatchRule("beta", phase_rows, dict(kappa),
                     f"row_skip = E[f**M], f ~ Beta(mean sparsity, concentration kappa) (batch_rule 'beta'; "
                     f"kappa fitted on trained {datapath} activations over {rows}: {ks}; "
                     f"reports/data/{p.name}); sparsity**M would be the independent lower bound")
