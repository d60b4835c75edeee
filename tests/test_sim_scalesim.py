"""Systolic compute cycles vs SCALE-Sim v3 (PyPI ``scalesim``), run live in the test.

For dense GEMMs with no memory stalls, ``sim.compute.systolic_cycles`` must
equal SCALE-Sim's compute cycles within 5 % for the same array and dataflow,
over tall, wide, square, tiny and ragged shapes.  SCALE-Sim simulates cycle by
cycle, so the shapes stay small.
"""
from __future__ import annotations

import contextlib
import io
import os

import pytest

from sim.compute import systolic_cycles
from sim.config import ArrayConfig, PEOp

scalesim_mod = pytest.importorskip("scalesim.scale_sim")
# scalesim 3.0 trips a numpy deprecation inside its own memory model; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

_CFG = """[general]
run_name = bitsim_check

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

_DF = {"weight-stationary": "ws", "output-stationary": "os", "input-stationary": "is"}


def scalesim_compute_cycles(tmp_path, M, N, K, rows, cols, dataflow) -> int:
    """Run SCALE-Sim on one GEMM (its M, N, K topology format) and read its compute cycles."""
    d = tmp_path / f"{M}_{N}_{K}_{rows}x{cols}_{_DF[dataflow]}"
    d.mkdir()
    (d / "cfg.cfg").write_text(_CFG.format(rows=rows, cols=cols, df=_DF[dataflow]))
    (d / "topo.csv").write_text(f"Layer name, M, N, K,\ngemm, {M}, {N}, {K},\n")
    # SCALE-Sim requires a layout file even with custom layouts off; 21 ignored fields.
    (d / "layout.csv").write_text("Layer," + ",".join(f"c{i}" for i in range(21)) + ",\n"
                                  "gemm," + ",".join(["1"] * 21) + ",\n")
    with contextlib.redirect_stdout(io.StringIO()):
        s = scalesim_mod.scalesim(save_disk_space=True, verbose=False, config=str(d / "cfg.cfg"),
                                  topology=str(d / "topo.csv"), layout=str(d / "layout.csv"),
                                  input_type_gemm=True)
        s.run_scale(top_path=str(d / "out"))
    report = (d / "out" / "bitsim_check" / "COMPUTE_REPORT.csv").read_text().splitlines()
    header = [h.strip() for h in report[0].split(",")]
    values = [v.strip() for v in report[1].split(",")]
    assert "Stall Cycles" in header and int(values[header.index("Stall Cycles")]) == 0
    return int(values[header.index("Total Cycles")])


SHAPES = [  # (M, N, K, rows, cols, label)
    (64, 8, 16, 8, 8, "tall"),
    (4, 96, 40, 8, 8, "wide"),
    (32, 32, 32, 8, 8, "square, perfectly tiled"),
    (3, 5, 2, 16, 16, "tiny"),
    (37, 29, 53, 8, 8, "ragged"),
    (21, 45, 17, 4, 16, "ragged, rectangular array"),
    (1, 64, 48, 16, 8, "gemv"),
]


@pytest.mark.parametrize("dataflow", sorted(_DF))
@pytest.mark.parametrize("M,N,K,rows,cols,label", SHAPES, ids=[s[-1] for s in SHAPES])
def test_compute_cycles_match_scalesim_within_5_percent(tmp_path, M, N, K, rows, cols, label, dataflow):
    ref = scalesim_compute_cycles(tmp_path, M, N, K, rows, cols, dataflow)
    arr = ArrayConfig("a", rows, cols, dataflow, (PEOp("fp16", "fp16", 1.0),))
    ours = systolic_cycles(M, N, K, arr)
    assert abs(ours - ref) / ref <= 0.05, (label, dataflow, ours, ref)
