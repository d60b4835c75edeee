"""The one MAPE aggregation of the simulator-vs-measured rows (table ``sim_validation``)."""
from __future__ import annotations

import pandas as pd

from contract.sim import SIM_VALIDATION

SIM_VALIDATION_COLUMNS = [c.name for c in SIM_VALIDATION]


def mape_by_class(rows: pd.DataFrame, by: str = "class") -> pd.DataFrame:
    """MAPE per class of ``sim_vs_measured`` rows (skipped rows left out), per (preset, split).

    ``by`` is ``class`` (``op precision``) or ``kernel_class`` (+ kernel family).  Columns:
    class, n, mape = mean |rel_error|, max_abs_err, mean_err (bias), preset, split; sorted by
    class, preset, split.
    """
    ok = rows[rows["skipped"] == ""]
    if len(ok) == 0:
        return pd.DataFrame(columns=SIM_VALIDATION_COLUMNS)
    t = (ok.assign(abs_err=ok["rel_error"].abs()).groupby([by, "preset", "split"], sort=True)
         .agg(n=("abs_err", "size"), mape=("abs_err", "mean"), max_abs_err=("abs_err", "max"),
              mean_err=("rel_error", "mean"))
         .reset_index().rename(columns={by: "class"}))
    return t[SIM_VALIDATION_COLUMNS]
