"""The row-reduction costs of a GPU preset (``vector.row_lanes``, ``vector.reduction_ns``), derived from two
measured quantizer rows; every other quantizer row, block and token is held out.

A quantizer at M = 1 (kernels/rmsnorm_quant.py) is one program on one SM: its time beyond the launch is
its element-passes at one SM's rate plus its dependent reductions in series
(:func:`sim.engine.plan.row_reduction_cycles`).  Two rows of one width and different reduction counts
fix both unknowns:

* ``ours_norm_int8`` M = 1: RMSNorm + absmax quantizer (2 reductions, 4 passes per element);
* ``ours_norm_topk8`` M = 1: the same + the exact TopK threshold (33 more reductions, 4 more passes).

Each row's measured time less its replay with the mechanism at no cost (the launch, the latency and the
bytes) is ``element_passes / row_lanes + reductions x reduction_ns``: a 2 x 2 linear system.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..config import AcceleratorConfig, from_dict
from ..engine.plan import REDUCTION_STEPS, op_reduction_steps, vector_kind
from .replay import compare_measured, measured_row_to_trace

#: The calibration rows (kernel names, M = 1, CUDA graph); see the module doc.
CALIBRATION_KERNELS = ("ours_norm_int8", "ours_norm_topk8")
#: row_lanes of the zero-cost replay: so fast that the element-passes cost nothing.
_FREE_LANES = 1e6


@dataclass(frozen=True, kw_only=True)
class RowReductionCosts:
    row_lanes: float          # element-passes per cycle of one SM on one row
    reduction_ns: float       # one dependent reduction step
    rows: str                 # the measured rows used

    def provenance(self, source: str) -> dict[str, str]:
        how = (f"derived from 2 rows of {source} ({self.rows}): measured less the replay at no row cost = "
               f"element-passes / row_lanes + reductions x reduction_ns, solved exactly; not fitted to blocks "
               f"or tokens")
        return {"vector.row_lanes": f"{self.row_lanes:.4g}: {how}",
                "vector.reduction_ns": f"{self.reduction_ns:.4g}: {how}",
                "vector.units": "the SMs (the arrays' count); one quantizer program per row, a power-of-two "
                                "tile (vector.pow2_rows, Triton's tl.arange); not fitted"}


def reduction_calibration_mask(measured: pd.DataFrame) -> pd.Series:
    """True on the rows :func:`row_reduction_costs` derives from (quantizer rows of
    :data:`CALIBRATION_KERNELS`, M = 1, timed in a CUDA graph)."""
    return ((measured["op"] == "quant") & (measured["M"] == 1) & measured["cuda_graph"].astype(bool)
            & measured["kernel"].isin(CALIBRATION_KERNELS))


def _rows(measured: pd.DataFrame) -> pd.DataFrame:
    m = measured[reduction_calibration_mask(measured)]
    out = [m[m["kernel"] == k].head(1) for k in CALIBRATION_KERNELS]
    return pd.concat(out, ignore_index=True)


def has_reduction_rows(measured: pd.DataFrame) -> bool:
    """True when the table has both calibration rows of :data:`CALIBRATION_KERNELS`."""
    return len(_rows(measured)) == len(CALIBRATION_KERNELS)


def _loads(row: pd.Series, cfg: AcceleratorConfig) -> tuple[float, float]:
    """(element-passes, reduction steps) of the row-reduction ops of one measured quantizer row."""
    tr = measured_row_to_trace(row)
    v = cfg.vector
    passes = steps = 0.0
    for _, r in tr.iterrows():
        kind = vector_kind(str(r["op"]), "quantizer row")
        if v.reductions.get(kind, 0) <= 0:
            continue
        width = float(r["N"])
        if v.pow2_rows:
            width = 2.0 ** math.ceil(math.log2(width))
        passes += width * v.passes[kind]
        own = r.get(REDUCTION_STEPS)
        steps += op_reduction_steps(kind, v, None if own is None or pd.isna(own) else float(own))
    return passes, steps


def row_reduction_costs(measured: pd.DataFrame, cfg: AcceleratorConfig,
                        flush_dirty_bytes: float = 0.0) -> RowReductionCosts:
    """``row_lanes`` and ``reduction_ns`` for ``cfg`` (its ``vector.units`` > 0) from the calibration rows
    (``ValueError`` if the table lacks them or they give no positive solution)."""
    if cfg.vector.units <= 0:
        raise ValueError(f"{cfg.name}: vector.units must be > 0 to derive row-reduction costs")
    rows = _rows(measured)
    if len(rows) != len(CALIBRATION_KERNELS):
        raise ValueError(f"row-reduction costs need the M = 1 CUDA-graph rows {list(CALIBRATION_KERNELS)}; "
                         f"the table has {len(rows)} of them")
    free = cfg.replace(vector=dataclasses.replace(cfg.vector, row_lanes=_FREE_LANES, reduction_ns=0.0))
    base, _ = compare_measured(rows, free, flush_dirty_bytes=flush_dirty_bytes)
    extra_us = rows["us"].to_numpy(float) - base["sim_us"].to_numpy(float)
    A = np.array([_loads(r, cfg) for _, r in rows.iterrows()])    # [passes, steps] per row
    us_per_pass, us_per_step = np.linalg.solve(A, extra_us)
    if us_per_pass <= 0 or us_per_step < 0:
        raise ValueError(f"row-reduction rows give no positive costs ({us_per_pass:.3g} us per pass, "
                         f"{us_per_step:.3g} us per step): the mechanism does not describe them")
    return RowReductionCosts(row_lanes=round(float(1.0 / (us_per_pass * 1e3 * cfg.clock_ghz)), 4),
                             reduction_ns=round(float(us_per_step * 1e3), 2),
                             rows=", ".join(f"{k} M=1" for k in CALIBRATION_KERNELS))


def add_row_reductions(raw: dict, measured: pd.DataFrame, source: str, flush_dirty_bytes: float) -> None:
    """Latency-bound row reductions on a GPU preset's YAML dict ``raw`` (in place): one quantizer / norm
    program per row on one of the SMs (the arrays' count), a power-of-two tile per row (Triton), and the
    two costs derived from ``measured``'s quantizer rows; provenance into ``raw["calibration"]``."""
    sms = max(int(a["count"]) for a in raw["arrays"])
    raw["vector"] = dict(raw["vector"], units=sms, pow2_rows=True)
    cfg = from_dict(copy.deepcopy(raw), where=str(raw.get("name", "preset")))
    costs = row_reduction_costs(measured, cfg, flush_dirty_bytes=flush_dirty_bytes)
    raw["vector"].update(row_lanes=costs.row_lanes, reduction_ns=costs.reduction_ns)
    raw.setdefault("calibration", {}).update(costs.provenance(source))


#: The wide-row calibration row: the GLU quantizer (GLU product + RMSNorm + quantizer) of an 11008-wide row, M = 1.
WIDE_KERNEL, WIDE_N = "ours_norm_int8_glu", 11008


def _wide_row(measured: pd.DataFrame) -> pd.DataFrame:
    sel = ((measured["op"] == "quant") & (measured["M"] == 1) & measured["cuda_graph"].astype(bool)
           & (measured["kernel"] == WIDE_KERNEL) & (measured["N"] == WIDE_N))
    return measured[sel].head(1).reset_index(drop=True)


def wide_row_calibration_mask(measured: pd.DataFrame) -> pd.Series:
    """True on the row :func:`wide_row_lanes` derives from (``ours_norm_int8_glu`` M = 1, CUDA graph)."""
    return ((measured["op"] == "quant") & (measured["M"] == 1) & measured["cuda_graph"].astype(bool)
            & (measured["kernel"] == WIDE_KERNEL) & (measured["N"] == WIDE_N))


def has_wide_row(measured: pd.DataFrame) -> bool:
    """True when the table has the wide-row calibration row and the two row-reduction rows."""
    return not _wide_row(measured).empty and has_reduction_rows(measured)


def wide_row_lanes(measured: pd.DataFrame, cfg: AcceleratorConfig, flush_dirty_bytes: float = 0.0) -> tuple[int, float]:
    """(``row_tile``, ``wide_row_lanes``) for ``cfg`` (its row-reduction costs set): the register tile is the width
    of the row-reduction calibration rows (the widest row measured to run at ``row_lanes``); the rate beyond it
    solves the GLU quantizer row exactly (its time less its replay with the spilled part free).  ``ValueError``
    if the row is missing or the tile already explains it."""
    row = _wide_row(measured)
    if row.empty or cfg.vector.units <= 0:
        raise ValueError(f"wide-row costs need the M = 1 CUDA-graph row {WIDE_KERNEL} N={WIDE_N} and vector.units > 0")
    tile = int(_rows(measured)["N"].max())
    free = cfg.replace(vector=dataclasses.replace(cfg.vector, row_tile=tile, wide_row_lanes=_FREE_LANES))
    base, _ = compare_measured(row, free, flush_dirty_bytes=flush_dirty_bytes)
    extra_us = float(row["us"].iloc[0]) - float(base["sim_us"].iloc[0])
    passes, _ = _loads(row.iloc[0], cfg)          # element-passes of the whole (power-of-two) row
    width = 2.0 ** math.ceil(math.log2(WIDE_N)) if cfg.vector.pow2_rows else float(WIDE_N)
    spilled = passes * (width - tile) / width
    if extra_us <= 0 or spilled <= 0:
        raise ValueError(f"{WIDE_KERNEL} gives no wide-row cost ({extra_us:.3g} us beyond the replay with a "
                         f"{tile}-element tile): the mechanism does not describe it")
    return tile, round(float(spilled / (extra_us * 1e3 * cfg.clock_ghz)), 4)


def add_wide_rows(raw: dict, measured: pd.DataFrame, source: str, flush_dirty_bytes: float) -> None:
    """The register tile and the spilled rate on a GPU preset's YAML dict ``raw`` (in place, its row-reduction
    costs already set), provenance into ``raw["calibration"]``."""
    cfg = from_dict(copy.deepcopy(raw), where=str(raw.get("name", "preset")))
    tile, lanes = wide_row_lanes(measured, cfg, flush_dirty_bytes)
    raw["vector"] = dict(raw["vector"], row_tile=tile, wide_row_lanes=lanes)
    how = (f"derived from 1 row of {source} ({WIDE_KERNEL} M=1 N={WIDE_N}): measured less the replay with the "
           f"part beyond the tile free = spilled element-passes / wide_row_lanes, solved exactly; not fitted to "
           f"blocks or tokens")
    raw.setdefault("calibration", {}).update({
        "vector.row_tile": f"{tile}: the width of the row-reduction calibration rows (the widest row measured at "
                           f"row_lanes); not fitted",
        "vector.wide_row_lanes": f"{lanes:.4g}: {how}"})


#: The shared-rows calibration row: the bitwise TopK quantizer (a 31-step threshold search) over far more rows than
#: SMs, one launch: its reductions dominate, so it shows how much of them rows sharing an SM hide
SHARED_KERNEL, SHARED_N, SHARED_MIN_M = "ours_norm_topk8", 4096, 1024
#: Cap of the derived overlap (a unit holds at most this many row programs at once)
_MAX_SHARED = 64.0


def shared_rows_calibration_mask(measured: pd.DataFrame) -> pd.Series:
    """True on the rows :func:`shared_rows` derives from (``ours_norm_topk8``, 4096 wide, M >= 1024)."""
    return ((measured["op"] == "quant") & (measured["kernel"] == SHARED_KERNEL) & (measured["N"] == SHARED_N)
            & (measured["M"] >= SHARED_MIN_M))


def has_shared_row(measured: pd.DataFrame) -> bool:
    """True when the table has the shared-rows calibration row and the two row-reduction rows."""
    return bool(shared_rows_calibration_mask(measured).any()) and has_reduction_rows(measured)


def shared_rows(measured: pd.DataFrame, cfg: AcceleratorConfig, flush_dirty_bytes: float = 0.0) -> float:
    """``vector.shared_rows`` for ``cfg`` (its row-reduction costs set) from the calibration row: the replay is
    A + B / shared_rows (A: the row without its reductions, B: its reductions in series), solved exactly for the
    measured time; 1 where the row is no faster than its serial replay, at most 64."""
    row = measured[shared_rows_calibration_mask(measured)].head(1).reset_index(drop=True)
    if row.empty or cfg.vector.units <= 0 or cfg.vector.reduction_ns <= 0:
        raise ValueError(f"{cfg.name}: shared rows need the row {SHARED_KERNEL} M >= {SHARED_MIN_M} and row-"
                         f"reduction costs on the preset")
    serial = cfg.replace(vector=dataclasses.replace(cfg.vector, shared_rows=1.0))
    free = cfg.replace(vector=dataclasses.replace(cfg.vector, reduction_ns=0.0))
    a = float(compare_measured(row, free, flush_dirty_bytes=flush_dirty_bytes)[0]["sim_us"].iloc[0])
    b = float(compare_measured(row, serial, flush_dirty_bytes=flush_dirty_bytes)[0]["sim_us"].iloc[0]) - a
    extra = float(row["us"].iloc[0]) - a
    if extra <= 0:
        return _MAX_SHARED
    return round(float(min(_MAX_SHARED, max(1.0, b / extra))), 4)


def add_shared_rows(raw: dict, measured: pd.DataFrame, source: str, flush_dirty_bytes: float) -> float:
    """:func:`shared_rows` of ``measured`` on a copy of ``raw`` with the row-reduction costs of ``measured``'s own
    quantizer rows; returns it (the caller puts it on the preset that carries it)."""
    probe = copy.deepcopy(raw)
    probe["calibration"] = {}
    add_row_reductions(probe, measured, source, flush_dirty_bytes)
    return shared_rows(measured, from_dict(probe, where=str(raw.get("name", "preset"))), flush_dirty_bytes)


#: The list calibration row: the GLU quantizer that also writes its row's non-zero indices (the list the sparse
#: GEMV reads), 11008 wide, M = 1
LIST_KERNEL, LIST_N = "ours_norm_int8_glu_nz", 11008


def list_row_calibration_mask(measured: pd.DataFrame) -> pd.Series:
    """True on the row :func:`list_passes` derives from (``ours_norm_int8_glu_nz`` M = 1, CUDA graph)."""
    return ((measured["op"] == "quant") & (measured["M"] == 1) & measured["cuda_graph"].astype(bool)
            & (measured["kernel"] == LIST_KERNEL) & (measured["N"] == LIST_N))


def has_list_row(measured: pd.DataFrame) -> bool:
    """True when the table has the list calibration row and the rows of the costs under it."""
    return bool(list_row_calibration_mask(measured).any()) and has_wide_row(measured)


def list_passes(measured: pd.DataFrame, cfg: AcceleratorConfig, flush_dirty_bytes: float = 0.0) -> float:
    """``vector.passes["nzlist"]`` for ``cfg`` (its row-reduction and wide-row costs set): the list row's replay is
    linear in it, solved exactly for the measured time.  ``ValueError`` if the row is missing or already explained
    without a list."""
    row = measured[list_row_calibration_mask(measured)].head(1).reset_index(drop=True)
    if row.empty or cfg.vector.units <= 0:
        raise ValueError(f"list costs need the M = 1 CUDA-graph row {LIST_KERNEL} N={LIST_N} and vector.units > 0")

    def replay(p: float) -> float:
        c = cfg.replace(vector=dataclasses.replace(cfg.vector, passes={**cfg.vector.passes, "nzlist": p}))
        return float(compare_measured(row, c, flush_dirty_bytes=flush_dirty_bytes)[0]["sim_us"].iloc[0])

    one, two = replay(1.0), replay(2.0)
    p = (float(row["us"].iloc[0]) - (2 * one - two)) / (two - one)
    if not p > 1e-3:
        raise ValueError(f"{LIST_KERNEL} gives no list cost (passes {p:.3g}): the mechanism does not describe it")
    return round(float(p), 4)


def add_list_passes(raw: dict, measured: pd.DataFrame, source: str, flush_dirty_bytes: float) -> None:
    """The index list's element-passes on a GPU preset's YAML dict ``raw`` (in place, its row-reduction and
    wide-row costs already set), provenance into ``raw["calibration"]``."""
    cfg = from_dict(copy.deepcopy(raw), where=str(raw.get("name", "preset")))
    cfg = cfg.replace(vector=dataclasses.replace(cfg.vector, reductions={**cfg.vector.reductions, "nzlist": 1}))
    p = list_passes(measured, cfg, flush_dirty_bytes)
    # the list's prefix count is one reduction step (kinds a preset's reductions leave out are elementwise)
    raw["vector"] = dict(raw["vector"], passes={**raw["vector"].get("passes", {}), "nzlist": p},
                         reductions=dict(cfg.vector.reductions))
    raw.setdefault("calibration", {})["vector.passes.nzlist"] = (
        f"{p:.4g}: derived from 1 row of {source} ({LIST_KERNEL} M=1 N={LIST_N}, the GLU quantizer that also "
        f"writes its non-zero indices): the replay is linear in the passes, solved exactly; not fitted to blocks "
        f"or tokens")
