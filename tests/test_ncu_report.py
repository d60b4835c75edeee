"""The Nsight Compute report reader of benchmarks/ncu_serving_gemm.py: kernels, metrics and which call
launched each, read from a report in ncu's text layout."""
import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "ncu_serving_gemm", Path(__file__).resolve().parents[1] / "benchmarks" / "ncu_serving_gemm.py")
ncu = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(ncu)

REPORT = """\
tile {'BM': 128}; profiled in order: ['ours_w158a8', 'cublas_int8']
==PROF== Profiling "reduce_kernel" - 0: 0%....50%....100% - 18 passes
  void at::reduce_kernel<512, 1>(T3) (4, 1, 1)x(512, 1, 1), Context 1, Stream 7, Device 0, CC 9.0
    Section: GPU Speed Of Light Throughput
    ----------------------- ----------- ------------
    Duration                         us         2.94
  _w158_gemm_kernel (128, 2, 1)x(128, 1, 1), Context 1, Stream 7, Device 0, CC 9.0
    Section: GPU Speed Of Light Throughput
    Duration                         us        18.56
    Compute (SM) Throughput           %        40.51
    Memory Throughput          Gbyte/s       255.52
    Section: Launch Statistics
    Registers Per Thread             register/thread              101
    Waves Per SM                                                  0.65
    Threads                                   thread            32,768
  void cutlass::Kernel2<cutlass_80_tensorop_s8_64x64>(T1::Params) (16, 8, 1)x(128, 1, 1), Context 1
    Duration                         us        13.09
    Achieved Occupancy                        %        11.45
    Grid Size                                                    1,024
"""


def test_each_kernel_section_becomes_a_row_with_its_metrics_and_the_call_that_launched_it():
    rows = ncu.ncu_table(REPORT)
    assert [r["call"] for r in rows] == ["", "ours_w158a8", "cublas_int8"]
    assert [r["kernel"][:17] for r in rows] == ["at::reduce_kernel", "_w158_gemm_kernel", "cutlass::Kernel2<"]
    ours = rows[1]
    assert (ours["grid"], ours["block"]) == (256, 128)
    assert ours["duration_us"] == 18.56 and ours["sm_throughput_pct"] == 40.51
    assert ours["registers_per_thread"] == 101 and ours["waves_per_sm"] == 0.65
    assert "Memory Throughput" not in str(ours) and len(ours) == 8   # unlisted metrics are left out
    assert rows[2]["achieved_occupancy_pct"] == 11.45 and rows[2]["grid"] == 128


def test_a_file_that_is_not_an_ncu_report_is_refused_and_nothing_is_written(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("no kernels here\n")
    out = tmp_path / "t.csv"
    with pytest.raises(ValueError, match="no kernel sections"):
        ncu.main(["--parse", str(bad), "--csv", str(out)])
    assert not out.exists()
    good = tmp_path / "r.txt"
    good.write_text(REPORT)
    assert ncu.main(["--parse", str(good), "--csv", str(out)]) == 0
    assert out.read_text().splitlines()[0].startswith("report,call,kernel,grid,block")
    with pytest.raises(ValueError, match="never overwritten"):
        ncu.main(["--parse", str(good), "--csv", str(good)])
    assert good.read_text() == REPORT
    with pytest.raises(ValueError, match="give the reports"):
        ncu.main(["--csv", str(out)])
