"""One serving GEMM shape's kernels, launched once each inside a profiler range, for Nsight Compute.

Run under ``ncu --profile-from-start off`` so only the launches between ``cudaProfilerStart`` and
``cudaProfilerStop`` are profiled (the compiles and warm-up calls before it are not)::

    ncu --profile-from-start off --clock-control none --section SpeedOfLight --section WarpStateStats \\
        python benchmarks/ncu_serving_gemm.py --M 128 --N 4096 --K 4096 --tuned TUNED.json

Launched, in this order: ours A8 with the tuned tile (packed 2-bit weights), the same tile with the weight
decode left out (one byte per code), cuBLAS INT8 on those codes, cuBLAS FP8 (W8A8).  Each is checked exact
(ours) before the profiled range; the script prints the order so the profiler's report can be read by it.

``--parse REPORT --csv OUT``: the profiler's text report as a table, one row per profiled kernel with the
metrics :data:`NCU_METRICS` names (duration, throughputs, registers, shared memory, occupancy, issue rate).
"""
import argparse
import ast
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from kernels.bench.gemm import activations, no_decode_config, ternary_weight  # noqa: E402
from kernels.checks import content_checks  # noqa: E402
from kernels.configs import NO_TUNING, load_config_table  # noqa: E402
from kernels.packing import pack_ternary  # noqa: E402
from kernels.ternary_gemm import gemm_key, w158_matmul, w158_matmul_unpacked  # noqa: E402
from model import quant as Q  # noqa: E402

#: report line name -> column: the metrics that say where a kernel's time goes
NCU_METRICS = {
    "Duration": "duration_us", "Compute (SM) Throughput": "sm_throughput_pct",
    "DRAM Throughput": "dram_throughput_pct", "L2 Cache Throughput": "l2_throughput_pct",
    "L1/TEX Cache Throughput": "l1_throughput_pct", "Registers Per Thread": "registers_per_thread",
    "Dynamic Shared Memory Per Block": "dynamic_smem_kb", "Theoretical Occupancy": "theoretical_occupancy_pct",
    "Achieved Occupancy": "achieved_occupancy_pct", "Warp Cycles Per Issued Instruction": "warp_cycles_per_issue",
    "Waves Per SM": "waves_per_sm",
}
_ORDER = re.compile(r"profiled in order: (\[.*\])")
_HEADER = re.compile(r"^  (\S.*?) \((\d+), (\d+), (\d+)\)x\((\d+), (\d+), (\d+)\), Context")
_METRIC = re.compile(r"^    (\S.*?)\s{2,}(?:\S+\s+)?([-\d.,]+)\s*$")


def ncu_table(text: str) -> list[dict]:
    """One dict per kernel section of an ``ncu`` text report: ``kernel`` (its name, the first 100 characters),
    ``grid`` and ``block`` (x*y*z), the :data:`NCU_METRICS` found in its sections, and ``call``: which of the
    script's calls launched it (the last kernels, one per call, in the order the script printed; "" for the
    kernels before them)."""
    rows: list[dict] = []
    order: list[str] = []
    for line in text.splitlines():
        o = _ORDER.search(line)
        if o:
            order = [str(c) for c in ast.literal_eval(o.group(1))]
        h = _HEADER.match(line)
        if h:
            g = [int(v) for v in h.groups()[1:]]
            rows.append(dict(kernel=h.group(1).removeprefix("void ")[:100],
                             grid=g[0] * g[1] * g[2], block=g[3] * g[4] * g[5]))
            continue
        m = _METRIC.match(line)
        if rows and m and m.group(1).strip() in NCU_METRICS:
            rows[-1][NCU_METRICS[m.group(1).strip()]] = float(m.group(2).replace(",", ""))
    calls = [""] * max(len(rows) - len(order), 0) + order[-len(rows):] if rows else []
    return [dict(call=c, **r) for c, r in zip(calls, rows)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--M", type=int, default=128)
    p.add_argument("--N", type=int, default=4096)
    p.add_argument("--K", type=int, default=4096)
    p.add_argument("--tuned", default=None, help="tuned_configs.json whose GEMM tile ours runs")
    p.add_argument("--parse", nargs="+", default=None, help="ncu text reports to turn into a table (no GPU needed)")
    p.add_argument("--csv", default=None, help="with --parse: the table's path (written atomically)")
    a = p.parse_args(argv)
    if a.parse:
        return _parse_reports(a.parse, a.csv)
    if a.csv:
        raise ValueError("--csv writes the table of --parse REPORT ...; give the reports to parse")
    if min(a.M, a.N, a.K) < 1:
        raise ValueError(f"M, N, K must be positive, got {a.M}, {a.N}, {a.K}")
    if not torch.cuda.is_available():
        raise ValueError("needs a CUDA GPU (none visible)")
    tuned = load_config_table(a.tuned) if a.tuned else NO_TUNING
    M, N, K = a.M, a.N, a.K
    wq = ternary_weight(N, K, seed=N + K + 1)
    wp, ws, wi8 = pack_ternary(wq.codes), wq.scale.reshape(1), wq.codes.contiguous()
    q8 = Q.quantize_int8(activations(M, K, seed=M + 3))
    ref = Q.qlinear(q8, wq)
    tile = tuned.lookup("gemm", **gemm_key(M, N, K, False))
    plain = no_decode_config(tile)
    wf8 = wi8.to(torch.float8_e4m3fn)
    xf8 = q8.codes.to(torch.float8_e4m3fn)
    one = torch.ones((), device="cuda")
    calls = (("ours_w158a8", lambda: w158_matmul(q8.codes, q8.scale, wp, ws, N, tuned=tuned), True),
             ("ours_int8_nodecode", lambda: w158_matmul_unpacked(q8.codes, q8.scale, wi8, ws, config=plain), True),
             ("cublas_int8", lambda: torch._int_mm(q8.codes, wi8.t()), False),
             ("cublas_fp8", lambda: torch._scaled_mm(xf8, wf8.t(), scale_a=one, scale_b=one,
                                                     out_dtype=torch.float16), False))
    for name, fn, check in calls:
        y = fn()
        if check and not torch.equal(y, ref):
            raise RuntimeError(f"{name} is not exact on {M}x{N}x{K}")
    torch.cuda.synchronize()
    print(f"tile {tile}; profiled in order: {[c[0] for c in calls]}", flush=True)
    with content_checks(False):         # the operand scans are not part of a call's device time
        torch.cuda.profiler.start()
        for _, fn, _ in calls:
            fn()
        torch.cuda.synchronize()
        torch.cuda.profiler.stop()
    return 0


def _parse_reports(paths: list[str], csv: str | None) -> int:
    """Each report's kernels as rows (column ``report`` = its file name); printed, or written to ``csv``."""
    import pandas as pd

    from contract.io import atomic_path

    if csv is not None and Path(csv).resolve() in {Path(p).resolve() for p in paths}:
        raise ValueError(f"--csv {csv} is one of the reports to parse: an input is never overwritten")
    rows = []
    for path in paths:
        found = ncu_table(Path(path).read_text(encoding="utf-8", errors="replace"))
        if not found:
            raise ValueError(f"{path}: no kernel sections of an ncu text report")
        rows += [dict(report=Path(path).name, **r) for r in found]
    df = pd.DataFrame(rows)
    if csv is None:
        print(df.to_string(index=False))
        return 0
    with atomic_path(csv) as tmp:
        df.to_csv(tmp, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
