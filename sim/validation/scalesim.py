"""SCALE-Sim v3 (PyPI ``scalesim``) as an independent reference for systolic compute cycles.

:func:`compare_systolic` runs each GEMM shape through SCALE-Sim (cycle by
cycle, so shapes stay small) and through ``sim.compute.systolic_cycles`` on the
same array and dataflow, and tabulates both.  Used by notebook 04; the
simulator's own test (tests/test_sim_scalesim.py) checks the same property.
"""
from __future__ import annotations

import contextlib
import io
import tempfile
import warnings
from pathlib import Path
from typing import Iterable

import pandas as pd

from ..compute import systolic_cycles
from ..config import ArrayConfig, PEOp

DATAFLOW_CODES = {"weight-stationary": "ws", "output-stationary": "os", "input-stationary": "is"}

_CONFIG = """[general]
run_name = ref

[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: 4096
FilterSramSzkB: 4096
OfmapSramSzkB: 4096
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Dataflow: {df}
Bandwidth: 10
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport: false
SparseRep: ellpack_block
OptimizedMapping: false
BlockSize: 8
RandomNumberGeneratorSeed: 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""


def scalesim_cycles(M: int, N: int, K: int, rows: int, cols: int, dataflow: str,
                    workdir: str | Path | None = None) -> dict:
    """SCALE-Sim's total and stall cycles for one GEMM (M x K) . (K x N) on a rows x cols array."""
    # scalesim is an optional test/notebook dependency (heavy: it pulls its own simulator stack),
    # imported here so that importing sim.validation never needs it.
    from scalesim.scale_sim import scalesim

    if dataflow not in DATAFLOW_CODES:
        raise ValueError(f"dataflow must be one of {list(DATAFLOW_CODES)}, got {dataflow!r}")
    for name, v in (("M", M), ("N", N), ("K", K), ("rows", rows), ("cols", cols)):
        if not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        d = Path(tmp)
        (d / "cfg.cfg").write_text(_CONFIG.format(rows=rows, cols=cols, df=DATAFLOW_CODES[dataflow]))
        (d / "topo.csv").write_text(f"Layer name, M, N, K,\ngemm, {M}, {N}, {K},\n")
        # SCALE-Sim wants a layout file even with custom layouts off (21 ignored fields)
        (d / "layout.csv").write_text("Layer," + ",".join(f"c{i}" for i in range(21)) + ",\n"
                                      "gemm," + ",".join(["1"] * 21) + ",\n")
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = scalesim(save_disk_space=True, verbose=False, config=str(d / "cfg.cfg"),
                         topology=str(d / "topo.csv"), layout=str(d / "layout.csv"), input_type_gemm=True)
            s.run_scale(top_path=str(d / "out"))
        lines = (d / "out" / "ref" / "COMPUTE_REPORT.csv").read_text().splitlines()
    head = [h.strip() for h in lines[0].split(",")]
    vals = [v.strip() for v in lines[1].split(",")]
    return {"total_cycles": int(vals[head.index("Total Cycles")]),
            "stall_cycles": int(vals[head.index("Stall Cycles")])}


def compare_systolic(shapes: Iterable[tuple[int, int, int]], rows: int, cols: int,
                     dataflows: Iterable[str] = tuple(DATAFLOW_CODES)) -> pd.DataFrame:
    """Per (shape, dataflow): SCALE-Sim cycles, sim's ``systolic_cycles`` and the relative error."""
    out = []
    for M, N, K in shapes:
        for df in dataflows:
            ref = scalesim_cycles(M, N, K, rows, cols, df)
            arr = ArrayConfig(name="ref", rows=rows, cols=cols, dataflow=df, pe_ops=(PEOp("fp16", "fp16", 1.0),))
            ours = systolic_cycles(M, N, K, arr)
            out.append({"M": M, "N": N, "K": K, "array": f"{rows}x{cols}", "dataflow": df,
                        "scalesim_cycles": ref["total_cycles"], "scalesim_stalls": ref["stall_cycles"],
                        "sim_cycles": ours, "rel_error": (ours - ref["total_cycles"]) / ref["total_cycles"]})
    return pd.DataFrame(out)
