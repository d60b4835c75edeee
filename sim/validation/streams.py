"""The weight-stream costs of our dense GEMV kernel on a GPU preset (``arrays[].stream_ramp_ns`` and
``stream_efficiency`` of the ternary operand), derived from two measured GEMV rows and the read floors of
the same bytes; every other GEMV row, block and token is held out.

Our ternary GEMV (kernels/ternary_gemm.py, M = 1 on the CUDA cores) reads its packed weights below the rate
of a plain read of the same bytes (``floor_read``, kernels/floor.py): its time less the floor's is a ramp
plus a per-byte excess, ``gemv - floor = ramp + bytes x (1 / efficiency - 1) / rate`` with ``rate`` the
preset's sustained off-chip rate.  Two shapes of different bytes fix both unknowns (the smallest and the
largest weight matrix of the LLaMA-7B block, timed alone in a CUDA graph without PDL, each against the
median of the non-PDL read floors of its weight bytes, N x K / 4).
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..config import AcceleratorConfig

KERNEL = "ours_w158a8"
#: The calibration shapes (N, K) of :data:`KERNEL` at M = 1; the other shapes are held out.
CALIBRATION_SHAPES = ((4096, 4096), (22016, 4096))
#: The array and weight operand the costs belong to.
ARRAY, OPERAND = "cuda_cores", "ternary"


@dataclass(frozen=True, kw_only=True)
class StreamCosts:
    ramp_ns: float            # fixed cost before the stream flows
    efficiency: float         # fraction of the sustained rate the stream reaches
    rows: str                 # the measured rows used

    def provenance(self, source: str) -> dict[str, str]:
        how = (f"derived from 2 rows of {source} ({self.rows}), each less the median non-PDL floor_read of its "
               f"bytes = ramp + bytes x (1 / efficiency - 1) / sustained rate, solved exactly; not fitted to "
               f"blocks or tokens")
        return {f"arrays[{ARRAY}].stream_ramp_ns.{OPERAND}": f"{self.ramp_ns:.4g}: {how}",
                f"arrays[{ARRAY}].stream_efficiency.{OPERAND}": f"{self.efficiency:.4g}: {how}"}


def _gemv_rows(measured: pd.DataFrame) -> pd.Series:
    shape = pd.Series(False, index=measured.index)
    for n, k in CALIBRATION_SHAPES:
        shape |= (measured["N"] == n) & (measured["K"] == k)
    return ((measured["op"] == "gemv") & (measured["kernel"] == KERNEL) & (measured["M"] == 1) & shape
            & measured["cuda_graph"].astype(bool) & (measured["sparsity"] == 0)
            & ~measured.get("pdl", pd.Series("", index=measured.index)).astype(str).isin(("True", "true")))


def stream_calibration_mask(measured: pd.DataFrame) -> pd.Series:
    """True on the GEMV rows :func:`stream_costs` derives from (the read floors are floors, not kernels)."""
    return _gemv_rows(measured)


def _floor_us(measured: pd.DataFrame, nbytes: float) -> float | None:
    pdl = measured.get("pdl", pd.Series("", index=measured.index)).astype(str).isin(("True", "true"))
    f = measured[(measured["op"] == "floor") & (measured["kernel"] == "floor_read") & ~pdl
                 & measured["cuda_graph"].astype(bool) & ((measured["bytes"] - nbytes).abs() <= 0.01 * nbytes)]
    return float(f["us"].median()) if len(f) else None


def _pairs(measured: pd.DataFrame) -> list[tuple[float, float]]:
    """(bytes, gemv us - floor us) of each calibration shape that has both rows."""
    g = measured[_gemv_rows(measured)]
    out = []
    for n, k in CALIBRATION_SHAPES:
        rows = g[(g["N"] == n) & (g["K"] == k)]
        if rows.empty:
            continue
        nbytes = n * k / 4       # the packed 2-bit weights (the floor reads those bytes; the row adds activations)
        floor = _floor_us(measured, nbytes)
        if floor is not None:
            out.append((nbytes, float(rows["us"].median()) - floor))
    return out


def has_stream_rows(measured: pd.DataFrame) -> bool:
    """True when the table has both calibration shapes and their read floors."""
    return len(_pairs(measured)) == len(CALIBRATION_SHAPES)


def stream_costs(measured: pd.DataFrame, cfg: AcceleratorConfig) -> StreamCosts:
    """The ramp and stream efficiency for ``cfg``'s sustained rate (``ValueError`` if the rows are missing or
    give no ramp >= 0 and efficiency in (0, 1])."""
    pairs = _pairs(measured)
    if len(pairs) != len(CALIBRATION_SHAPES):
        raise ValueError(f"stream costs need {KERNEL} gemv rows M=1 of shapes {list(CALIBRATION_SHAPES)} and the "
                         f"floor_read rows of their bytes; the table has {len(pairs)} such pairs")
    (b0, d0), (b1, d1) = pairs
    us_per_byte = (d1 - d0) / (b1 - b0)
    ramp_us = d0 - us_per_byte * b0
    rate = cfg.offchip.bandwidth_gbps * cfg.offchip.sustained_fraction * 1e3   # bytes per us
    if us_per_byte < 0 or ramp_us < 0:
        raise ValueError(f"{KERNEL} rows give no stream costs (ramp {ramp_us:.3g} us, {us_per_byte * 1e6:.3g} us/MB "
                         f"beyond the read floor): the mechanism does not describe them")
    return StreamCosts(ramp_ns=round(ramp_us * 1e3, 1), efficiency=round(1.0 / (1.0 + us_per_byte * rate), 4),
                       rows=", ".join(f"{KERNEL} gemv M=1 N={n} K={k}" for n, k in CALIBRATION_SHAPES))


def add_stream_costs(raw: dict, measured: pd.DataFrame, cfg: AcceleratorConfig, source: str) -> None:
    """The ternary GEMV's ramp and stream efficiency on a GPU preset's YAML dict ``raw`` (in place), with their
    provenance into ``raw["calibration"]``."""
    costs = stream_costs(measured, cfg)
    for a in raw["arrays"]:
        if a["name"] == ARRAY:
            a["stream_ramp_ns"] = {OPERAND: costs.ramp_ns}
            a["stream_efficiency"] = {OPERAND: costs.efficiency}
    raw.setdefault("calibration", {}).update(costs.provenance(source))
