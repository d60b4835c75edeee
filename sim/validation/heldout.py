"""Held-out validation: every measured kernel call replayed on the preset that describes it.

Last step of ``sim.validation``: replay (:mod:`.replay`) -> calibrate (:mod:`.calibrate`) ->
held-out tables (here).  ``h100-like`` (ideal, cuBLAS-class kernels) replays the baseline rows,
``h100-triton`` (fitted by :mod:`.calibrate`) our kernels' rows, calibration rows apart from
held-out ones.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from contract import measured_final_rows
from contract.sim import SPLITS

from ..config import AcceleratorConfig, load_accelerator
from .calibrate import calibration_mask
from .mape import SIM_VALIDATION_COLUMNS, mape_by_class
from .replay import H100_L2_BYTES, SIM_VS_MEASURED_COLUMNS, compare_measured, with_swept_tiles
from .streams import baseline_calibration_mask


def h100_calibration_mask(m: pd.DataFrame) -> pd.Series:
    """True on the rows the H100 presets are fitted or derived on: :func:`calibration_mask` for ours, and the
    cuBLAS rows ``h100-like``'s baseline stream costs are derived from (both shapes of each
    :data:`sim.validation.streams.BASELINE_STREAMS` entry)."""
    return calibration_mask(m) | (baseline_calibration_mask(m) & (m["impl"] != "ours"))


def validation_table(measured: pd.DataFrame, ideal: "str | Path | AcceleratorConfig" = "h100-like",
                     fitted: "str | Path | AcceleratorConfig" = "h100-triton",
                     flush_dirty_bytes: float = H100_L2_BYTES,
                     calibration: "Callable[[pd.DataFrame], pd.Series]" = h100_calibration_mask
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-class MAPE of the measured kernels, each replayed on the preset that describes it.

    Tuning rows (kernel names ending ``_cfg``) are dropped, after they name the tile of each final row of their run
    that records none (:func:`sim.validation.replay.with_swept_tiles`).  Baseline rows
    (``impl`` baseline: cuBLAS, torch SDPA, gemlite) run on ``ideal``; all are
    ``held-out`` but the cuBLAS rows its stream costs are derived from
    (:func:`sim.validation.streams.baseline_calibration_mask`).  ``calibration``: the mask of the rows the
    presets were fitted or derived on (default: the H100 presets'; the H200 presets' is
    :func:`sim.validation.crossgpu.h200_calibration_mask`).  Our kernels' rows
    (``impl`` ours) run on ``fitted``; rows of the calibration subset of
    :mod:`sim.validation.calibrate` are split ``calibration``, the rest ``held-out``.
    Returns (per row: table ``sim_vs_measured``, per class by ``kernel_class``:
    table ``sim_validation``), per preset then split.
    """
    m = measured_final_rows(with_swept_tiles(measured)).reset_index(drop=True)
    cal = calibration(m)
    tables, parts = [], []
    for preset, sel in ((ideal, m["impl"] != "ours"), (fitted, m["impl"] == "ours")):
        if not sel.any():
            continue
        cfg = load_accelerator(preset)
        rows, _ = compare_measured(m[sel].reset_index(drop=True), cfg, flush_dirty_bytes=flush_dirty_bytes)
        rows = rows.assign(split=np.where(cal[sel].to_numpy(), SPLITS[0], SPLITS[1]))
        parts.append(rows)
        for split in SPLITS:
            part = rows[rows["split"] == split]
            if len(part):
                tables.append(mape_by_class(part, by="kernel_class"))
    if not parts:
        return pd.DataFrame(columns=SIM_VS_MEASURED_COLUMNS), pd.DataFrame(columns=SIM_VALIDATION_COLUMNS)
    return pd.concat(parts, ignore_index=True), pd.concat(tables, ignore_index=True)
