"""The roofline check: no simulated op may finish faster than max(compute, memory) from the config alone."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..config import AcceleratorConfig, load_accelerator


def roofline_bounds(ops: pd.DataFrame, accel: "str | Path | AcceleratorConfig") -> pd.Series:
    """Lower bound (cycles) of each simulated op: max(compute roofline, off-chip bytes / bandwidth)."""
    cfg = load_accelerator(accel)
    mem = ops["bytes_offchip"].to_numpy(dtype=float) / cfg.offchip_bytes_per_cycle
    return pd.Series(np.maximum(ops["ideal_compute_cycles"].to_numpy(dtype=float), mem), index=ops.index)
