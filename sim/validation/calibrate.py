"""Fit the GPU-kernel parameters of ``h100-triton`` to measured kernel timings.

``h100-like`` describes the H100 running ideal (cuBLAS-class) kernels.  Our
Triton kernels for packed sub-byte operands are slower for reasons that are
properties of the GPU *as our kernels use it* (docs/kernels.md):

==========================================  =========================================  ==========================
parameter                                   physical meaning                           calibration rows
==========================================  =========================================  ==========================
``op_overhead_ns``                          launch + pipeline fill of every kernel      ours W1.58A8 GEMV
                                            (inside a CUDA graph), beyond the memory     4096x4096, CUDA graph
                                            latency h100-like carries
``host_launch_ns``                          extra launch gap of a kernel launched        same shape, no graph
                                            from the host without a graph
``arrays[tensor_cores].unpack.ternary``     2-bit weights decoded in registers on        ours W1.58A8 GEMM, M=8192
                                            CUDA cores before the INT8/FP8 MMA           (all N x K)
                                            (elements / cycle / SM)
``arrays[cuda_cores].unpack.int3`` (=int4)  KV nibble codes decoded per element          ours KV3 attention,
                                            (elements / cycle / SM)                      B=8, ctx 8192
``offchip.row_miss_ns``                     bus time a scattered run of kept weight      ours sparse GEMV
                                            rows exposes (sim.engine.plan)               4096 x 11008
==========================================  =========================================  ==========================

Not fitted but set from our launcher: ``arrays[cuda_cores].max_m = 4``
(``kernels/ternary_gemm.py`` ``GEMV_MAX_M``: the CUDA-core GEMV runs only for
M <= 4, larger M runs on the tensor-core GEMM and pays the weight unpack).

Each is fitted in that order with the previous ones fixed: the two latencies in
closed form (median of measured - simulated, which is robust to the noisy
launch gaps), the unpack rates by a 1-D least-squares search on the relative
error (the simulated time is max(compute, memory, unpack), not linear in the
rate).  The replay is :func:`sim.validation.compare_measured`, the same one the
validation uses.  Every other row of the table is held out
(:func:`sim.validation.validation_table`).  Second step of ``sim.validation``:
replay (:mod:`.replay`) -> calibrate (here) -> held-out tables (:mod:`.heldout`).

Re-fit after a new measurement, one command::

    bitsim calibrate reports/data/measured_h100_kernels.parquet -o sim/presets/h100-triton.yaml --force
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import yaml

from contract import TUNING_SUFFIX, measured_final_rows, validate

from ..config import PRESET_DIR, PRESETS, from_dict, load_yaml
from .reductions import add_row_reductions, has_reduction_rows, reduction_calibration_mask
from .replay import GEMV_ARRAY, H100_L2_BYTES, compare_measured, recorded_tile

BASE = "h100-like"
NAME = "h100-triton"
KV_OPERANDS = ("int3", "int4")  # one nibble per code for both (kernels/kv_attention.py): one rate
# Kernel-dispatch rule of our launcher, not fitted: kernels/ternary_gemm.py runs the CUDA-core
# GEMV only for M <= GEMV_MAX_M = 4 (int8 codes) and the tensor-core GEMM, which decodes the packed
# weight tile per CTA, otherwise.  So h100-triton's cuda_cores array takes ops with M <= 4 only.
GEMV_MAX_M = 4
DISPATCH_NOTE = ("kernels/ternary_gemm.py GEMV_MAX_M: CUDA-core GEMV only for M <= 4, "
                 "tensor-core GEMM otherwise")


def _is(m: pd.DataFrame, kernel: str, op: str, **eq) -> pd.Series:
    sel = (m["kernel"] == kernel) & (m["op"] == op)
    for k, v in eq.items():
        sel &= m[k] == v
    return sel


@dataclass(frozen=True)
class Fit:
    """One fitted parameter: where it goes, which measured rows fit it, how."""
    param: str                                    # path in the YAML
    rows: str                                     # the calibration subset, in words
    select: Callable[[pd.DataFrame], pd.Series]   # measured table -> bool mask of those rows
    method: str

    def mask(self, m: pd.DataFrame) -> pd.Series:
        """The rows of ``m`` this parameter is fitted on, as a bool mask on ``m``'s index (NaN: not one of them)."""
        return self.select(m).fillna(False).astype(bool)

    def rows_in(self, m: pd.DataFrame) -> pd.DataFrame:
        """Those rows of ``m``, indexed from 0."""
        return m[self.mask(m)].reset_index(drop=True)


FITS = (
    Fit("op_overhead_ns", "ours_w158a8 gemv M=1 N=4096 K=4096 dense, cuda_graph true",
        lambda m: _is(m, "ours_w158a8", "gemv", M=1, N=4096, K=4096, cuda_graph=True) & (m["sparsity"] == 0),
        "median(measured - simulated)"),
    Fit("host_launch_ns", "ours_w158a8 gemv M=1 N=4096 K=4096 dense, cuda_graph false",
        lambda m: _is(m, "ours_w158a8", "gemv", M=1, N=4096, K=4096, cuda_graph=False) & (m["sparsity"] == 0),
        "median(measured - simulated)"),
    Fit("arrays[tensor_cores].unpack.ternary", "ours_w158a8 gemm M=8192 (every N x K)",
        lambda m: _is(m, "ours_w158a8", "gemm", M=8192),
        "least squares on relative error, 1-D search in log(rate)"),
    Fit("arrays[cuda_cores].unpack.int3", "ours_kv3 attention_decode M(batch)=8 K(ctx)=8192",
        lambda m: _is(m, "ours_kv3", "attention_decode", M=8, K=8192),
        "least squares on relative error, 1-D search in log(rate); int4 set equal (same nibble decode)"),
    Fit("offchip.row_miss_ns", "ours_sparse_w158a8 sparse_gemv N=4096 K=11008 (every sparsity)",
        lambda m: _is(m, "ours_sparse_w158a8", "sparse_gemv", N=4096, K=11008),
        "least squares on relative error, 1-D search in log(ns): the bus time each gathered row exposes"),
)


#: The exact FP8 GEMM's accumulation rule, set from our launcher, not fitted (kernels/ternary_gemm.py
#: FP8_PROMOTE_K): the tensor core's FP8 sums are promoted into fp32 every 512 K elements.
PROMOTE_FORMAT, PROMOTE_EVERY_K = "fp8", 512
PROMOTION_FIT = Fit(f"arrays[tensor_cores].promote_ns.{PROMOTE_FORMAT}",
                    "ours_w158a4_fp8 gemm M=8192 (every N x K) of a table whose FP8 kernel promotes",
                    lambda m: _is(m, "ours_w158a4_fp8", "gemm", M=8192),
                    "least squares on relative error, closed form (the replay is linear in the ns)")


#: The batched CUDA-core GEMV's MAC rate as our kernel issues it (kernels/ternary_gemm.py, the launcher's
#: ``path="gemv"`` at M > 1): per (row, output, word) one ``dp4a`` plus its share of the operand broadcasts and
#: the accumulator traffic, so the kernel runs a fraction of the array's ``dp4a`` peak and its time grows with M.
#: Fitted on the rows of one shape (the FFN down projection's, as the sparse GEMV's row cost); every other shape
#: and the A4 twin stay held out.
GEMV_RATE_FIT = Fit(f"arrays[{GEMV_ARRAY}].pe_ops.int8",
                    "ours_w158a8_gemv gemm N=4096 K=11008 (every M) of the serving tables",
                    lambda m: _is(m, "ours_w158a8_gemv", "gemm", N=4096, K=11008),
                    "least squares on relative error, 1-D search in log(rate)")
def _swar_rows(m: pd.DataFrame, kernel: str, M: int) -> pd.Series:
    """``kernel``'s GEMM rows at batch ``M`` that record a ``SWAR`` tile (the tiled replay's decode form)."""
    sel = _is(m, kernel, "gemm", M=M)
    swar = [bool(on) and getattr(recorded_tile(r), "swar", False) for on, (_, r) in zip(sel.to_numpy(), m.iterrows())]
    return pd.Series(swar, index=m.index, dtype=bool)


#: The tiled replay's decode-form rates (``ArrayConfig.unpack_forms``, :func:`sim.validation.replay.decode_form`):
#: each fitted on our kernel's M = 16 rows that ran a SWAR tile, the rows of one batch, so that every other batch
#: of the tiled rows (8, 32, 128) stays held out
DECODE_FORM_FITS = tuple(
    Fit(f"arrays[tensor_cores].unpack_forms.{form}", f"{kernel} gemm M=16 (every N x K) that ran a SWAR tile",
        lambda m, kernel=kernel: _swar_rows(m, kernel, 16),
        "least squares on relative error, 1-D search in log(rate), replayed on each row's tile")
    for form, kernel in (("swar-int8", "ours_w158a8"), ("swar-fp8", "ours_w158a4_fp8")))
#: The search range of the decode-form rates (elements / cycle / SM) and its grid
DECODE_FORM_BOUNDS, DECODE_FORM_GRID = (1.0, 400.0), 16


#: The L2's operand-feed rate (``sram.fill_bandwidth_bytes_per_cycle``), fitted on the A8 kernel's rows at M = 128 with
#: its weight decode left out, in the tile the kernel runs there: with no decode, what remains of such a narrow
#: tile's time beyond its MMAs is its folds' re-reads of the activations
FILL_FIT = Fit("sram.fill_bandwidth_bytes_per_cycle",
               "ours_int8_nodecode gemm M=128 (every N x K) in ours' tile (the A8 kernel with its weight decode "
               "left out: one byte per code into the INT8 MMA)",
               lambda m: _is(m, "ours_int8_nodecode", "gemm", M=128),
               "least squares on relative error, 1-D search in log(bytes per cycle), each row on its own tile")
#: Its search range (bytes / cycle: from below an HBM's share of the clock to the SMs' shared-memory bandwidth)
FILL_BOUNDS, FILL_GRID = (500.0, 20000.0), 16


#: The search range of :data:`GEMV_RATE_FIT` (MACs / lane / cycle: from a 1/80 of the array's 4-MAC dp4a peak to
#: twice it) and its grid (steps of a factor 1.5 before the golden-section search)
GEMV_RATE_BOUNDS, GEMV_RATE_GRID = (0.05, 8.0), 14


def fit_promotion(raw: dict, rows: pd.DataFrame, flush: float) -> float:
    """ns per promotion of one fold (``arrays[tensor_cores].promote_ns.fp8``) minimising
    sum(((sim - measured) / measured)^2) over ``rows``, with promotion every :data:`PROMOTE_EVERY_K`.

    The promotions add serially to an op's busy time, so the replay is t0 + a·ns: two replays (0 and 1000 ns)
    give t0 and a, and the least-squares ns is sum(a (y - t0) / y^2) / sum(a^2 / y^2), floored at 0."""
    def replay(ns: float) -> np.ndarray:
        trial = copy.deepcopy(raw)
        cores = _array(trial, "tensor_cores")
        cores.setdefault("promote_every_k", {})[PROMOTE_FORMAT] = PROMOTE_EVERY_K
        cores.setdefault("promote_ns", {})[PROMOTE_FORMAT] = ns
        return _replay(trial, rows, flush)["sim_us"].to_numpy(float)

    y = rows["us"].to_numpy(float)
    t0 = replay(0.0)
    a = (replay(1000.0) - t0) / 1000.0
    if not (a > 0).any():
        raise ValueError(f"{PROMOTION_FIT.param}: no calibration row runs an FP8 MMA on the tensor cores")
    ns = float(np.sum(a * (y - t0) / y ** 2) / np.sum(a ** 2 / y ** 2))
    return float(round(max(ns, 0.0), 1))


def set_promotion(raw: dict, ns: float, source: str, n_rows: int) -> None:
    """Put the FP8 promotion rule and its fitted cost on ``raw``'s tensor cores, with its provenance."""
    cores = _array(raw, "tensor_cores")
    cores["promote_every_k"] = {PROMOTE_FORMAT: PROMOTE_EVERY_K}
    cores["promote_ns"] = {PROMOTE_FORMAT: ns}
    raw.setdefault("calibration", {})[PROMOTION_FIT.param] = (
        f"{ns:g} fitted by sim.validation.calibrate on {n_rows} rows of {source}: {PROMOTION_FIT.rows}; "
        f"method: {PROMOTION_FIT.method}; promote_every_k {PROMOTE_EVERY_K} from our launcher (FP8_PROMOTE_K), "
        f"not fitted")


def calibration_mask(measured: pd.DataFrame) -> pd.Series:
    """True for the rows any parameter of :data:`FITS` is fitted on, and the two quantizer rows the row-reduction
    costs are derived from (:mod:`sim.validation.reductions`) (index of ``measured``)."""
    mask = reduction_calibration_mask(measured)
    for f in FITS:
        mask |= f.mask(measured)
    return mask & ~measured["kernel"].astype(str).str.endswith(TUNING_SUFFIX)


def _base_raw() -> dict:
    return load_yaml(PRESET_DIR / PRESETS[BASE])


def _array(raw: dict, name: str) -> dict:
    for a in raw["arrays"]:
        if a["name"] == name:
            return a
    raise ValueError(f"{BASE}: no array named {name!r} to calibrate")


def set_param(raw: dict, param: str, value: float) -> None:
    """Put ``value`` at ``param`` of a preset dict: ``arrays[NAME].unpack.OPERAND`` (both KV operands at once),
    ``arrays[NAME].pe_ops.OPERAND`` (the rate of that array's OPERAND x OPERAND pair),
    ``arrays[NAME].unpack_forms.FORM``, ``group.key`` or ``key``."""
    if param.startswith("arrays["):
        name, rest = param[len("arrays["):].split("].", 1)
        kind, operand = rest.split(".")
        if kind == "pe_ops":
            _pair(_array(raw, name), operand)["rate"] = value
            return
        if kind == "unpack_forms":
            _array(raw, name).setdefault("unpack_forms", {})[operand] = value
            return
        ops = KV_OPERANDS if operand in KV_OPERANDS else (operand,)
        unpack = _array(raw, name).setdefault("unpack", {})
        for o in ops:
            unpack[o] = value
    elif "." in param:
        group, key = param.split(".")
        raw.setdefault(group, {})[key] = value
    else:
        raw[param] = value


def _pair(array: dict, operand: str) -> dict:
    for p in array["pe_ops"]:
        if p["weights"] == operand and p["acts"] == operand:
            return p
    raise ValueError(f"{BASE}: array {array['name']!r} has no {operand} x {operand} pair to calibrate")


def _replay(raw: dict, rows: pd.DataFrame, flush: float) -> pd.DataFrame:
    out, _ = compare_measured(rows, from_dict(copy.deepcopy(raw), where=NAME), flush_dirty_bytes=flush)
    if (out["skipped"] != "").any():
        bad = out.loc[out.skipped != "", "skipped"].tolist()
        raise ValueError(f"calibration rows the simulator cannot replay: {bad}")
    return out


def fit_rate(raw: dict, param: str, rows: pd.DataFrame, flush: float, bounds: tuple[float, float] = (0.01, 1e4),
             grid_points: int = 49) -> float:
    """Rate (elements / cycle / copy) in ``bounds`` minimising sum((sim - measured) / measured)^2: the best of
    ``grid_points`` log-spaced rates, then a golden-section search between its neighbours."""
    def loss(log_r: float) -> float:
        trial = copy.deepcopy(raw)
        set_param(trial, param, float(math.exp(log_r)))
        out = _replay(trial, rows, flush)
        return float((out["rel_error"] ** 2).sum())

    grid = np.linspace(math.log(bounds[0]), math.log(bounds[1]), grid_points)
    vals = [loss(g) for g in grid]
    k = int(np.argmin(vals))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    phi = (math.sqrt(5) - 1) / 2
    a, b = lo + (1 - phi) * (hi - lo), lo + phi * (hi - lo)
    fa, fb = loss(a), loss(b)
    for _ in range(40):                         # golden section to ~1e-8 of the bracket
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = lo + (1 - phi) * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + phi * (hi - lo)
            fb = loss(b)
    return float(round(math.exp((lo + hi) / 2), 4))


#: fits already made in this process, by (table content, source, flush bytes, base preset): a fit is a pure function
#: of those, and several derivations (the H200's presets, the H100's current-kernel presets) start from the same one
_FITS: dict[tuple, dict] = {}


def fit(measured: pd.DataFrame, source: str = "measured table",
        flush_dirty_bytes: float = H100_L2_BYTES) -> dict:
    """Fit :data:`FITS` on ``measured`` (a measured_trace table); return the ``h100-triton`` YAML dict.

    The dict is ``h100-like`` plus the fitted parameters, sparse weight-row
    skipping (our sparse GEMV reads only rows of non-zero activations) and a
    ``calibration`` block naming, for every fitted number, the file, the
    measurement date, the rows and the method.  ``ValueError`` if a
    calibration subset is empty.  A fit of the same table is made once per process (a copy is returned).
    """
    validate(measured, "measured_trace")
    digest = hashlib.sha256(pd.util.hash_pandas_object(measured, index=False).to_numpy().tobytes()
                            + repr(list(measured.columns)).encode()).hexdigest()
    key = (digest, source, float(flush_dirty_bytes), json.dumps(_base_raw(), sort_keys=True, default=str))
    if key not in _FITS:
        _FITS[key] = _fit(measured, source, flush_dirty_bytes)
    return copy.deepcopy(_FITS[key])


def _fit(measured: pd.DataFrame, source: str, flush_dirty_bytes: float) -> dict:
    m = measured_final_rows(measured).reset_index(drop=True)
    raw = _base_raw()
    raw.update(name=NAME,
               description="H100 as our Triton kernels use it: h100-like plus fitted launch latency "
                           "and software unpack of packed operands (validation preset)",
               op_overhead_ns=0.0, host_launch_ns=0.0)
    # the measured sparse kernel gathers at every sparsity: no choice of a dense stream in its replay
    raw["sparsity"] = {"skip_weight_fetch": True, "skip_compute": False, "stream_when_cheaper": False}
    _array(raw, GEMV_ARRAY)["max_m"] = GEMV_MAX_M
    dates = sorted(set(m["date"].astype(str)))
    prov = {}
    for f in FITS:
        rows = f.rows_in(m)
        if rows.empty:
            raise ValueError(f"calibration of {f.param}: no rows match '{f.rows}' in {source}")
        if f.method.startswith("median"):
            resid_us = rows["us"].to_numpy() - _replay(raw, rows, flush_dirty_bytes)["sim_us"].to_numpy()
            value = float(round(max(0.0, float(np.median(resid_us))) * 1e3, 1))
        else:
            value = fit_rate(raw, f.param, rows, flush_dirty_bytes)
        set_param(raw, f.param, value)
        prov[f.param] = (f"{value:g} fitted by sim.validation.calibrate on {len(rows)} rows of {source} "
                         f"(measured {', '.join(dates)}): {f.rows}; method: {f.method}")
    if has_reduction_rows(m):    # the quantizers' row costs, on the fitted launch cost
        raw["calibration"] = {}
        add_row_reductions(raw, m, source, flush_dirty_bytes)
        prov.update(raw.pop("calibration"))
    prov[f"arrays[{GEMV_ARRAY}].max_m"] = f"{GEMV_MAX_M}: dispatch rule of {DISPATCH_NOTE}; not fitted"
    prov["sparsity.skip_weight_fetch"] = ("true: ours_sparse_w158a8 reads only weight rows of non-zero "
                                         "activations (kernels/sparse_gemv.py); not fitted")
    raw["calibration"] = prov
    from_dict(copy.deepcopy(raw), where=NAME)   # checked (ranges, words) before anyone writes it
    return raw


def to_yaml(raw: dict, source: str) -> str:
    """YAML text of a fitted preset: a header saying how it was made, fitted lines marked."""
    head = [f"# {NAME}: GENERATED by `bitsim calibrate {source} -o sim/presets/{NAME}.yaml --force`;",
            "# do not edit by hand, re-run the command after a new measurement.",
            f"# = {BASE}.yaml (hardware with ideal, cuBLAS-class kernels) + the parameters our Triton",
            "# kernels need (docs/simulator.md, 'Fitted GPU-kernel parameters'): per-op launch latency,",
            "# host launch gap, software unpack rates of packed ternary weights and KV codes.",
            "# Energy (energy_basis: dynamic-only, inherited from h100-like): mJ/token is the dynamic",
            "# energy of the 7 nm per-op table, no static/board power (static_power_w 0) -- not an",
            "# H100's board energy (~700 W x latency).",
            "# Provenance of every fitted number: the `calibration` block at the end."]
    body = {k: v for k, v in raw.items() if k != "calibration"}
    text = yaml.safe_dump(body, sort_keys=False, default_flow_style=None, width=200)
    fitted = ("op_overhead_ns:", "host_launch_ns:", "unpack:", "offchip:")
    lines = [ln + "   # FITTED (see calibration)" if ln.strip().startswith(fitted)
             else ln + f"   # {DISPATCH_NOTE}" if ln.strip().startswith("max_m:") else ln
             for ln in text.splitlines()]
    cal = yaml.safe_dump({"calibration": raw.get("calibration", {})}, sort_keys=False,
                         default_flow_style=False, width=120)
    return "\n".join(head + lines) + "\n" + cal
