"""The weight-stream costs of the GEMV kernels on a GPU preset (``arrays[].stream_ramp_ns`` and
``stream_efficiency`` of a weight operand), derived from measured GEMV rows; every other GEMV row, block and
token is held out.

*Ours* (the ternary operand) is derived from two measured GEMV rows and the read floors of the same bytes:

Our ternary GEMV (kernels/ternary_gemm.py, M = 1 on the CUDA cores) reads its packed weights below the rate
of a plain read of the same bytes (``floor_read``, kernels/floor.py): its time less the floor's is a ramp
plus a per-byte excess, ``gemv - floor = ramp + bytes x (1 / efficiency - 1) / rate`` with ``rate`` the
preset's sustained off-chip rate.  Two shapes of different bytes fix both unknowns (the smallest and the
largest weight matrix of the LLaMA-7B block, timed alone in a CUDA graph without PDL, each against the
median of the non-PDL read floors of its weight bytes, N x K / 4).

*cuBLAS's FP16 GEMV* (the fp16 operand: the torch baselines' M = 1 linears and every datapath's FP16 LM head)
has no read floors of its bytes in the tables, so its excess is taken over the preset's own replay of the
same row (launch, memory latency and the bytes at the sustained rate): on both GPUs the largest shape streams
at the preset's rate or faster while the smallest pays a fixed excess, so the efficiency stays 1 and the ramp
is the smallest shape's excess (:func:`baseline_ramp`).
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..config import AcceleratorConfig
from .replay import compare_measured

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


def _calibration_shapes(measured: pd.DataFrame) -> pd.Series:
    """True on the rows of one of :data:`CALIBRATION_SHAPES` (any kernel)."""
    shape = pd.Series(False, index=measured.index)
    for n, k in CALIBRATION_SHAPES:
        shape |= (measured["N"] == n) & (measured["K"] == k)
    return shape


def _gemv_rows(measured: pd.DataFrame) -> pd.Series:
    shape = _calibration_shapes(measured)
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
            a["stream_ramp_ns"] = {**(a.get("stream_ramp_ns") or {}), OPERAND: costs.ramp_ns}
            a["stream_efficiency"] = {**(a.get("stream_efficiency") or {}), OPERAND: costs.efficiency}
    raw.setdefault("calibration", {}).update(costs.provenance(source))


#: cuBLAS's FP16 GEMV: the calibration shapes (N, K) at M = 1 (the smallest and the largest matrix of the
#: LLaMA-7B block), and the operand its ramp belongs to.
BASELINE_KERNEL, BASELINE_OPERAND = "cublas_fp16", "fp16"


def _baseline_rows(measured: pd.DataFrame) -> pd.DataFrame:
    shape = _calibration_shapes(measured)
    return measured[(measured["op"] == "gemv") & (measured["kernel"] == BASELINE_KERNEL) & (measured["M"] == 1)
                    & shape & measured["cuda_graph"].astype(bool)]


def baseline_calibration_mask(measured: pd.DataFrame) -> pd.Series:
    """True on the cuBLAS GEMV row :func:`baseline_ramp` derives its ramp from (the smallest calibration shape)."""
    rows = _baseline_rows(measured)
    n, k = CALIBRATION_SHAPES[0]
    return measured.index.isin(rows[(rows["N"] == n) & (rows["K"] == k)].index)


def has_baseline_rows(measured: pd.DataFrame) -> bool:
    """True when the table has cuBLAS's FP16 GEMV at both calibration shapes."""
    rows = _baseline_rows(measured)
    return all(((rows["N"] == n) & (rows["K"] == k)).any() for n, k in CALIBRATION_SHAPES)


def baseline_ramp(measured: pd.DataFrame, cfg: AcceleratorConfig, flush_dirty_bytes: float) -> float:
    """ns of cuBLAS's FP16 GEMV ramp on ``cfg`` (which must carry none yet): the measured time of the smallest
    calibration shape less the preset's replay of it.  ``ValueError`` when the rows are missing, when that excess
    is negative, or when the largest shape's excess is larger (a per-byte shortfall: the stream efficiency would
    have to fall below 1, which this derivation does not describe)."""
    if not has_baseline_rows(measured):
        raise ValueError(f"the cuBLAS GEMV ramp needs {BASELINE_KERNEL} gemv rows M=1 of shapes "
                         f"{list(CALIBRATION_SHAPES)} timed in a CUDA graph")
    if any(BASELINE_OPERAND in a.stream_ramp_ns for a in cfg.arrays):
        raise ValueError(f"{cfg.name} already carries an {BASELINE_OPERAND} stream ramp; derive on the preset "
                         f"without it")
    rows = _baseline_rows(measured)
    per, _ = compare_measured(rows, cfg, flush_dirty_bytes=flush_dirty_bytes)
    excess = {}
    for (n, k) in CALIBRATION_SHAPES:
        sel = (per["N"] == n) & (per["K"] == k)
        excess[(n, k)] = float(per.loc[sel, "measured_us"].median() - per.loc[sel, "sim_us"].median())
    small, large = (excess[s] for s in CALIBRATION_SHAPES)
    if small < 0 or large > small:
        raise ValueError(f"{BASELINE_KERNEL} rows give no ramp at stream efficiency 1 (excess over the replay: "
                         f"{small:.3g} us at {CALIBRATION_SHAPES[0]}, {large:.3g} us at {CALIBRATION_SHAPES[1]})")
    return round(small * 1e3, 1)


def add_baseline_ramp(raw: dict, measured: pd.DataFrame, cfg: AcceleratorConfig, source: str,
                      flush_dirty_bytes: float) -> None:
    """cuBLAS's FP16 GEMV ramp (:func:`baseline_ramp` on ``cfg``) on a GPU preset's YAML dict ``raw`` (in place),
    with its provenance into ``raw["calibration"]``."""
    ramp = baseline_ramp(measured, cfg, flush_dirty_bytes)
    (n, k), (n1, k1) = CALIBRATION_SHAPES
    for a in raw["arrays"]:
        if a["name"] == ARRAY:
            a["stream_ramp_ns"] = {**(a.get("stream_ramp_ns") or {}), BASELINE_OPERAND: ramp}
    raw.setdefault("calibration", {})[f"arrays[{ARRAY}].stream_ramp_ns.{BASELINE_OPERAND}"] = (
        f"{ramp:.4g}: derived from 1 row of {source} ({BASELINE_KERNEL} gemv M=1 N={n} K={k}) less the preset's "
        f"replay of it; stream efficiency 1 (the N={n1} K={k1} row streams at the preset's rate or faster); not "
        f"fitted to blocks or tokens")
