"""Measured GPU kernel timings (``reports/data/measured_*``): loading and speedups.

The kernels team commits measured op traces (schema ``measured_trace``) as
Parquet or CSV files.  Here they are read, de-duplicated (Parquet wins over a
CSV copy of the same run) and turned into speedups against the FP16 baseline
of the same shape: cuBLAS FP16 for linear layers, torch SDPA for attention.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bitsim.report.tables import MEASURED_SPEEDUPS, REPORT_SIM_VS_MEASURED
from contract import MEASURED_TRACE, measured_final_rows, read_table, validate
from sim import PRESETS
from sim.config import from_dict
from sim.validation import H100_L2_BYTES, gpu_presets, load_anchors, validation_table
from sim.validation.crossgpu import (
    H100_CURRENT_SOURCES,
    H100_CURRENT_TABLES,
    H100_FLOOR_TABLES,
    H100_SERVING_TABLES,
    H200_L2_BYTES,
    H200_MEASURED,
    current_calibration_mask,
    h100_current_presets,
    h200_calibration_mask,
)
from sim.validation.heldout import h100_calibration_mask
from sim.validation.replay import H100_MEASURED

LINEAR_OPS = ("gemm", "gemv", "sparse_gemv")
ATTENTION_OPS = ("attention_decode",)
BLOCK_OPS = ("block_decode", "block_prefill")  # one whole decoder block per datapath (kernels/block.py)
BASELINES = {"linear": "cublas_fp16", "attention": "torch_sdpa", "block": "block_fp16"}


#: ``source`` of the H100 anchor timings (docs/gpu-facts.md §1) that sim/ ships as sim/data/h100_anchors.csv.
ANCHORS_SOURCE = "docs/gpu-facts.md §1 (sim/data/h100_anchors.csv)"


def load_measured(data_dir: str | Path = "reports/data", include_anchors: bool = True) -> pd.DataFrame:
    """All measured traces under ``data_dir`` as one table (empty if none).

    Files ``measured_*.parquet`` are preferred; a ``.csv`` with the same stem
    is read only when its Parquet twin is missing; a file whose metadata names another schema
    (the run's board energy) is left to its own reader.  With ``include_anchors``
    the H100 anchor timings of docs/gpu-facts.md §1 (cuBLAS, SDPA; shipped by sim/)
    are added.  Adds ``source`` (file name): ratios are only ever taken
    between rows of one source, i.e. one measuring run.
    """
    data_dir = Path(data_dir)
    cols = [c.name for c in MEASURED_TRACE] + ["source"]
    files = []
    if data_dir.is_dir():
        files = sorted(data_dir.glob("measured_*.parquet"))
        stems = {f.stem for f in files}
        files += [f for f in sorted(data_dir.glob("measured_*.csv")) if f.stem not in stems]
    frames = []
    for f in files:
        df = read_table(f)
        if df.attrs.get("schema", "measured_trace") != "measured_trace":
            continue   # another table of the same run (e.g. measured_h200_board_energy: schema board_energy)
        if "schema" not in df.attrs and not {"op", "kernel", "us"} <= set(df.columns):
            warnings.warn(f"{f.name}: not a measured_trace table (no schema, no op/kernel/us columns); left out",
                          stacklevel=2)
            continue   # a run's other output without metadata (e.g. its goals table)
        frames.append(validate(df, "measured_trace").assign(source=f.name))
    if include_anchors:
        frames.append(load_anchors().assign(source=ANCHORS_SOURCE))
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=cols)
    out = pd.concat(frames, ignore_index=True)
    out.attrs = {}
    return out


VALIDATION_BOUND = 0.15  # the simulator's accuracy goal: MAPE per kernel class <= 15 % against the measured GPU


#: GPU name fragment -> (preset of its measured ceilings, preset fitted to our kernels on it).
#: GPU name fragment -> dirty bytes the timing harness's L2 flush leaves behind (its L2 size).
GPU_L2_BYTES = {"H100": H100_L2_BYTES, "H200": H200_L2_BYTES}
#: The GPU whose rows the fitted presets were calibrated on: every other GPU's row is held out.
FIT_GPU = "H100"


def sim_presets() -> tuple[str, ...]:
    return tuple(PRESETS)


def unreplayed_gpus(measured: pd.DataFrame) -> list[str]:
    """GPUs with measured rows that no sim preset describes (their rows are not replayed)."""
    if measured is None or not len(measured):
        return []
    return sorted({str(g) for g in measured.gpu.dropna().unique() if gpu_presets(str(g)) is None})


def validate_simulator(measured: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every measured kernel call replayed on the presets of its own GPU (sim.validation.validation_table).

    Per GPU (:data:`sim.validation.GPU_PRESETS`): baselines (cuBLAS, SDPA, gemlite) run on the ideal preset (peaks
    from that GPU's measured ceilings, nothing fitted to them); our Triton kernels on the fitted one
    (ideal plus launch latency and weight/KV decode rates fitted on a named calibration subset, see
    sim/validation/calibrate.py).  Rows of a GPU no preset describes are not replayed
    (:func:`unreplayed_gpus`).  Returns (per call, per class): per call, a ``report_sim_vs_measured``
    table (the ``sim_vs_measured`` rows the simulator could replay, without the ``skipped`` column);
    per class, the ``sim_validation`` columns class, preset, split, n, mape, max_abs_err, mean_err,
    plus within_bound (mape <= :data:`VALIDATION_BOUND`).
    """
    calls_cols = [c.name for c in REPORT_SIM_VS_MEASURED]
    class_cols = ["class", "preset", "split", "n", "mape", "max_abs_err", "mean_err", "within_bound"]
    if measured is None or len(measured) == 0:
        return pd.DataFrame(columns=calls_cols), pd.DataFrame(columns=class_cols)
    calls, classes = [], []
    for gpu, rows_gpu in measured.groupby(measured.gpu.astype(str), sort=True):
        pair = gpu_presets(gpu)
        if pair is None:
            continue
        l2 = next((b for frag, b in GPU_L2_BYTES.items() if frag in gpu), H100_L2_BYTES)
        # the H100 presets are fitted on the first H100 table; the H100 tables of the current kernels run on
        # presets derived for them; the H200 presets carry the H100 fit plus costs derived from a few named H200
        # rows, split apart as calibration
        for part, presets, cal in _generations(rows_gpu, pair, FIT_GPU in gpu):
            rows, per_class = validation_table(part.drop(columns=["source"], errors="ignore"), *presets,
                                               flush_dirty_bytes=l2, calibration=cal)
            calls.append(rows[rows.skipped == ""])
            classes.append(per_class.assign(within_bound=per_class.mape <= VALIDATION_BOUND))
    if not calls:
        return pd.DataFrame(columns=calls_cols), pd.DataFrame(columns=class_cols)
    rows, per_class = pd.concat(calls, ignore_index=True), pd.concat(classes, ignore_index=True)
    return (validate(rows[calls_cols].reset_index(drop=True), "report_sim_vs_measured"),
            per_class[class_cols].reset_index(drop=True))


def _generations(rows: pd.DataFrame, pair: tuple[str, str], fit_gpu: bool) -> list[tuple]:
    """``(rows, (ideal, fitted), calibration mask)`` per kernel generation of one GPU's rows.  On the fit GPU,
    the tables of the current kernels (:data:`sim.validation.crossgpu.H100_CURRENT_SOURCES`) run on presets
    derived for them (:func:`sim.validation.crossgpu.h100_current_presets`, from the first table and the current
    tables' kernel rows) when those tables are among the rows; every other row on the committed presets."""
    source = rows["source"] if "source" in rows else pd.Series("", index=rows.index)
    if not fit_gpu:
        # the H200 presets derive their costs from named rows of the first H200 table alone: every row of a
        # later H200 run is held out, whatever its kernel (rows without a source: the caller's own table)
        first = (source == H200_MEASURED.name).to_numpy() if "source" in rows else np.ones(len(rows), bool)
        parts = [(rows[first], pair, h200_calibration_mask), (rows[~first], pair, _no_calibration)]
        return [p for p in parts if len(p[0])]
    current = source.isin(H100_CURRENT_SOURCES)
    first = rows[source == H100_MEASURED.name]
    derive = rows[source.isin([p.name for p in H100_CURRENT_TABLES])]
    if not current.any() or first.empty or derive.empty:
        return [(rows, pair, h100_calibration_mask)]
    cols = [c.name for c in MEASURED_TRACE]
    serving = rows[source.isin([p.name for p in H100_SERVING_TABLES])]
    # the serving rows keep their tiles and copies: the decode forms are fitted on rows replayed on their tiles
    kept = cols + [c for c in ("config", "copies") if c in serving.columns]
    floors = rows[source.isin([p.name for p in H100_FLOOR_TABLES])]
    like, kernels = h100_current_presets(first[cols].reset_index(drop=True), derive[cols].reset_index(drop=True),
                                         serving[kept].reset_index(drop=True) if len(serving) else None,
                                         floors[cols].reset_index(drop=True) if len(floors) else None)
    presets = (from_dict(like, where=like["name"]), from_dict(kernels, where=kernels["name"]))
    return [(rows[~current], pair, h100_calibration_mask), (rows[current], presets, current_calibration_mask)]


def _no_calibration(rows: pd.DataFrame) -> pd.Series:
    """Calibration mask of a table no preset cost is derived from: every row held out."""
    return pd.Series(False, index=rows.index)


def _family(op: str) -> str | None:
    if op in LINEAR_OPS:
        return "linear"
    if op in ATTENTION_OPS:
        return "attention"
    if op in BLOCK_OPS:
        return "block"
    return None


def shape_label(row) -> str:
    """``gemv 1x11008x4096``, ``attn B1 H32 ctx8192``, ``block decode ctx2048``, ``block prefill 2048``."""
    fam = _family(row["op"])
    M, N, K = int(row["M"]), int(row["N"]), int(row["K"])
    if fam == "attention":
        return f"attn B{M} H{N} ctx{K}"
    if fam == "block":
        return f"block decode B{M} ctx{K}" if row["op"] == "block_decode" else f"block prefill {M} tok"
    return f"{'gemv' if M == 1 else 'gemm'} {M}x{N}x{K}"


#: Spread columns of a measured row (kernels/bench/harness.py), in order of preference: quartiles, then min/max.
SPREADS = (("iqr", "us_p25", "us_p75"), ("min-max", "us_min", "us_max"))


def _with_spread(m: pd.DataFrame) -> pd.DataFrame:
    """``us_lo`` / ``us_hi`` / ``spread`` / ``repeats`` of every row: its quartiles, else min/max, else NaN ('none')."""
    m = m.copy()
    m["us_lo"], m["us_hi"], m["spread"] = np.nan, np.nan, "none"
    for name, lo, hi in reversed(SPREADS):
        if lo in m.columns and hi in m.columns:
            ok = m[lo].notna() & m[hi].notna() & (m[lo] > 0)
            m.loc[ok, "us_lo"], m.loc[ok, "us_hi"], m.loc[ok, "spread"] = m.loc[ok, lo], m.loc[ok, hi], name
    m["repeats"] = m["repeats"].astype(float) if "repeats" in m.columns else np.nan
    return m


def speedups(measured: pd.DataFrame) -> pd.DataFrame:
    """Speedup of every kernel over the FP16 baseline timed at the same shape in the same run.

    Returns columns source, shape, family, op, kernel, impl, precision, M, N,
    K, sparsity, us, baseline_us, speedup (baseline_us / us), gbps.  The
    baseline row itself is included (speedup 1).  Rows whose shape has no
    baseline measurement in their source are dropped.  When a kernel was timed
    several times at one shape, the baseline is the one timed in the same mode
    (``cuda_graph``) and the fastest pairing is kept.
    """
    cols = [c.name for c in MEASURED_SPEEDUPS]
    if measured is None or len(measured) == 0:
        return pd.DataFrame(columns=cols)
    validate(measured, "measured_trace")
    m = measured_final_rows(measured).copy()
    if "source" not in m.columns:
        m["source"] = "measured"
    m["family"] = m["op"].map(_family)
    m = m[m.family.notna() & (m.us > 0)]
    if m.empty:
        return pd.DataFrame(columns=cols)
    m["shape"] = m.apply(shape_label, axis=1)
    sparse = (m.sparsity > 0) & (m.op == "sparse_gemv")  # a block's sparsity is a property, not a variant
    m.loc[sparse, "kernel"] = [f"{k} (s={100 * s:.0f}%)" for k, s in zip(m.loc[sparse, "kernel"],
                                                                          m.loc[sparse, "sparsity"])]
    # a kernel and its baseline are compared in the same timing mode (both as CUDA-graph replays, or
    # both launched one by one); when a kernel was timed in both modes the faster pairing is kept
    keys = ["source", "family", "M", "N", "K", "cuda_graph"]
    m["cuda_graph"] = m["cuda_graph"].astype(bool)
    m = _with_spread(m)
    m = m.sort_values("us").groupby(keys + ["kernel"], as_index=False).first()
    base = m[m.kernel == m.family.map(BASELINES)][keys + ["us", "us_lo", "us_hi"]].rename(
        columns={"us": "baseline_us", "us_lo": "baseline_lo", "us_hi": "baseline_hi"})
    out = m.merge(base, on=keys, how="inner")
    out["speedup"] = out.baseline_us / out.us
    out["speedup_lo"] = out.baseline_lo / out.us_hi
    out["speedup_hi"] = out.baseline_hi / out.us_lo
    out = out.sort_values("us").groupby(keys[:-1] + ["kernel"], as_index=False).first()
    out = out.sort_values(["source", "family", "M", "N", "K", "impl", "kernel"],
                          ascending=[True, False, True, True, True, False, True])
    return validate(out[cols].reset_index(drop=True), "measured_speedups")
