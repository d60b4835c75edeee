"""The weight-stream costs of the streaming kernels on a GPU preset (``arrays[].stream_ramp_ns`` and
``stream_efficiency`` of a weight operand), derived from two measured rows each; every other row, block and
token is held out.

*Ours* (the ternary operand) is derived from two measured GEMV rows and the read floors of the same bytes:

Our ternary GEMV (kernels/ternary_gemm.py, M = 1 on the CUDA cores) reads its packed weights below the rate
of a plain read of the same bytes (``floor_read``, kernels/floor.py): its time less the floor's is a ramp
plus a per-byte excess, ``gemv - floor = ramp + bytes x (1 / efficiency - 1) / rate`` with ``rate`` the
preset's sustained off-chip rate.  Two shapes of different bytes fix both unknowns (the smallest and the
largest weight matrix of the LLaMA-7B block, timed alone in a CUDA graph without PDL, each against the
median of the non-PDL read floors of its weight bytes, N x K / 4).

*The baseline library kernels* (:data:`BASELINE_STREAMS`: cuBLAS's FP16 GEMV, the torch baselines' M = 1
linears and every datapath's FP16 LM head; cuBLAS's FP8 GEMM of a decode batch, W8A8-FP8) have no read floors
of their bytes in the tables, so their excess is taken over the preset's own replay of the same rows (launch,
memory latency and the bytes at the sustained rate), at the same two shapes (:func:`baseline_stream_costs`):
the ramp is the small shape's excess; if the large shape then replays at or above its measured time the
efficiency stays 1 (cuBLAS's FP16 GEMV on both GPUs), else it is the efficiency at which the large shape's
replay meets its measured time (cuBLAS's FP8 GEMM at batch 8 on the H100 streams at 0.89 of the copy rate
after a 4.6 us ramp).  The engine hides a stream's ramp under the array time of a compute-bound op
(``sim.engine.plan``), so these costs land on the streaming kernels of decode and not on large GEMMs.
"""
from __future__ import annotations

import dataclasses
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


@dataclass(frozen=True, kw_only=True)
class BaselineStream:
    """A baseline library kernel whose weight stream costs a preset carries: its rows (``kernel``, ``op`` at
    ``M``, both :data:`CALIBRATION_SHAPES`, timed in a CUDA graph) and where the costs go (``array``,
    weight ``operand``)."""
    kernel: str
    op: str
    M: int
    array: str
    operand: str

    def rows(self, measured: pd.DataFrame) -> pd.DataFrame:
        shape = _calibration_shapes(measured)
        return measured[(measured["op"] == self.op) & (measured["kernel"] == self.kernel)
                        & (measured["M"] == self.M) & shape & measured["cuda_graph"].astype(bool)]

    def describe(self) -> str:
        return f"{self.kernel} {self.op} M={self.M}"


#: cuBLAS's FP16 GEMV (the torch baselines' M = 1 linears and every datapath's FP16 LM head, on the CUDA cores),
#: and cuBLAS's FP8 GEMM of a decode batch (``torch._scaled_mm`` on per-token quantized activations, W8A8-FP8, on
#: the tensor cores), at the smallest batch measured.
BASELINE_STREAMS = (BaselineStream(kernel="cublas_fp16", op="gemv", M=1, array="cuda_cores", operand="fp16"),
                    BaselineStream(kernel="cublas_fp8_w8a8", op="gemm", M=8, array="tensor_cores", operand="fp8"))


def baseline_calibration_mask(measured: pd.DataFrame) -> pd.Series:
    """True on the rows :func:`baseline_stream_costs` derives from (both calibration shapes of every
    :data:`BASELINE_STREAMS` entry: the small one gives the ramp, the large one the efficiency or its check)."""
    mask = pd.Series(False, index=measured.index)
    for spec in BASELINE_STREAMS:
        mask |= measured.index.isin(spec.rows(measured).index)
    return mask


def has_baseline_rows(measured: pd.DataFrame, spec: BaselineStream) -> bool:
    """True when the table has ``spec``'s rows at both calibration shapes."""
    rows = spec.rows(measured)
    return all(((rows["N"] == n) & (rows["K"] == k)).any() for n, k in CALIBRATION_SHAPES)


def _with_costs(cfg: AcceleratorConfig, spec: BaselineStream, ramp_ns: float, efficiency: float
                ) -> AcceleratorConfig:
    arrays = tuple(dataclasses.replace(a, stream_ramp_ns={**a.stream_ramp_ns, spec.operand: ramp_ns},
                                       stream_efficiency={**a.stream_efficiency, spec.operand: efficiency})
                   if a.name == spec.array else a for a in cfg.arrays)
    return dataclasses.replace(cfg, arrays=arrays)


def _medians(rows: pd.DataFrame, cfg: AcceleratorConfig, flush: float) -> tuple[list[float], list[float]]:
    """(measured, simulated) median µs of each calibration shape."""
    per, _ = compare_measured(rows, cfg, flush_dirty_bytes=flush)
    meas, sim = [], []
    for n, k in CALIBRATION_SHAPES:
        sel = (per["N"] == n) & (per["K"] == k)
        meas.append(float(per.loc[sel, "measured_us"].median()))
        sim.append(float(per.loc[sel, "sim_us"].median()))
    return meas, sim


#: The lowest stream efficiency the bisection of :func:`baseline_stream_costs` tries.
_EFFICIENCY_FLOOR = 0.05


def baseline_stream_costs(measured: pd.DataFrame, cfg: AcceleratorConfig, spec: BaselineStream,
                          flush_dirty_bytes: float) -> StreamCosts:
    """The ramp and stream efficiency of ``spec``'s weight stream on ``cfg`` (which must carry neither yet), so
    that the preset's replay of both calibration rows equals their measured times.

    The ramp is the small shape's excess over the replay; when the large shape then replays at or above its
    measured time the stream keeps efficiency 1 (it streams at the preset's rate or faster: only a fixed cost
    is missing).  Otherwise the efficiency is the one, found by bisection, at which the large shape's replay
    (with the ramp the small shape then gives) meets its measured time.  ``ValueError`` when the rows are
    missing or no ramp >= 0 with an efficiency in (0, 1] reproduces them."""
    if not has_baseline_rows(measured, spec):
        raise ValueError(f"the {spec.operand} stream costs need {spec.describe()} rows of shapes "
                         f"{list(CALIBRATION_SHAPES)} timed in a CUDA graph")
    array = next((a for a in cfg.arrays if a.name == spec.array), None)
    if array is None:
        raise ValueError(f"{cfg.name} has no array {spec.array!r} for the {spec.operand} stream costs")
    if spec.operand in array.stream_ramp_ns or spec.operand in array.stream_efficiency:
        raise ValueError(f"{cfg.name} already carries an {spec.operand} stream ramp or efficiency; derive on the "
                         f"preset without them")
    rows = spec.rows(measured)

    def ramp_at(eff: float) -> float:
        meas, sim = _medians(rows, _with_costs(cfg, spec, 0.0, eff), flush_dirty_bytes)
        return (meas[0] - sim[0]) * 1e3

    def shortfall_at(eff: float) -> float:      # > 0: the large shape replays too fast
        ramp = ramp_at(eff)
        meas, sim = _medians(rows, _with_costs(cfg, spec, max(ramp, 0.0), eff), flush_dirty_bytes)
        return meas[1] - sim[1]

    ramp = ramp_at(1.0)
    if ramp < 0:
        raise ValueError(f"{spec.describe()} rows give no ramp: the small shape replays "
                         f"{-ramp / 1e3:.3g} us slower than measured")
    where = f"{spec.describe()} N={{}} K={{}}"
    used = ", ".join(where.format(n, k) for n, k in CALIBRATION_SHAPES)
    if shortfall_at(1.0) <= 0:
        return StreamCosts(ramp_ns=round(ramp, 1), efficiency=1.0, rows=used)
    lo, hi = _EFFICIENCY_FLOOR, 1.0
    if shortfall_at(lo) > 0:
        raise ValueError(f"{spec.describe()}: the large shape stays slower than any stream efficiency >= "
                         f"{_EFFICIENCY_FLOOR} replays: the mechanism does not describe it")
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if shortfall_at(mid) < 0 else (lo, mid)
    eff = round(0.5 * (lo + hi), 4)
    ramp = ramp_at(eff)
    if ramp < 0:
        raise ValueError(f"{spec.describe()}: at stream efficiency {eff} the small shape needs a negative ramp "
                         f"({ramp:.4g} ns): the mechanism does not describe them")
    return StreamCosts(ramp_ns=round(ramp, 1), efficiency=eff, rows=used)


def add_baseline_stream(raw: dict, measured: pd.DataFrame, cfg: AcceleratorConfig, spec: BaselineStream,
                        source: str, flush_dirty_bytes: float) -> None:
    """``spec``'s stream costs (:func:`baseline_stream_costs` on ``cfg``) on a GPU preset's YAML dict ``raw``
    (in place), with their provenance into ``raw["calibration"]``."""
    costs = baseline_stream_costs(measured, cfg, spec, flush_dirty_bytes)
    how = (f"derived from 2 rows of {source} ({costs.rows}): the ramp is the small shape's excess over the "
           f"preset's replay, the efficiency the one at which the large shape's replay meets its measured time "
           f"(1 when it already does); not fitted to blocks or tokens")
    for a in raw["arrays"]:
        if a["name"] == spec.array:
            a["stream_ramp_ns"] = {**(a.get("stream_ramp_ns") or {}), spec.operand: costs.ramp_ns}
            if costs.efficiency < 1.0:
                a["stream_efficiency"] = {**(a.get("stream_efficiency") or {}), spec.operand: costs.efficiency}
    cal = raw.setdefault("calibration", {})
    cal[f"arrays[{spec.array}].stream_ramp_ns.{spec.operand}"] = f"{costs.ramp_ns:.4g}: {how}"
    if costs.efficiency < 1.0:
        cal[f"arrays[{spec.array}].stream_efficiency.{spec.operand}"] = f"{costs.efficiency:.4g}: {how}"


def drop_baseline_stream(raw: dict, spec: BaselineStream) -> None:
    """Remove ``spec``'s stream costs and their provenance from a preset's YAML dict (in place): a preset
    derived from another GPU's derives its own."""
    for a in raw["arrays"]:
        if a["name"] == spec.array:
            for key in ("stream_ramp_ns", "stream_efficiency"):
                (a.get(key) or {}).pop(spec.operand, None)
    for key in ("stream_ramp_ns", "stream_efficiency"):
        raw.get("calibration", {}).pop(f"arrays[{spec.array}].{key}.{spec.operand}", None)
