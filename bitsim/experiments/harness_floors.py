"""Host floors of the A100 BitNet kernel table's timing harness, measured on our own GPU (a benchmark: it needs a
CUDA GPU and ``nvcc``; never run in tests).

    python -m bitsim.experiments.harness_floors OUT    # writes OUT/harness_floors.csv

It imports nothing of the simulator, so it runs on a GPU machine that has only torch and pandas; the table it
writes is read by ``sim.validation.published.load_harness_floors`` (committed as ``sim/data/a100_harness_floors.csv``).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from contract.io import write_text_atomic

# ---- launch floors of the A100 kernel table's timing harness, measured on our own GPU ---------------------------
#: The no-op stand-in for the BitNet W2A8 library entry point: the same C signature (int8 activations, packed
#: int2 weights, bf16 output and scales, M, N, K, stream) launching a one-thread kernel, so that timing it through
#: the harness's Python wrapper measures the host path of a call (wrapper, ctypes, launch) and no kernel work.
_NOOP_CU = r"""
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <stdint.h>
__global__ void touch(__nv_bfloat16* out, const __nv_bfloat16* s) { out[0] = s[0]; }
extern "C" void bitlinear_int8xint2(int8_t* a, int8_t* w, __nv_bfloat16* out, __nv_bfloat16* s,
                                    __nv_bfloat16* ws, int M, int N, int K, cudaStream_t stream) {
  touch<<<1, 1, 0, stream>>>(out, s);
}
"""
#: (N, K) of the A100 table (microsoft/BitNet gpu/README.md), and a tiny shape whose device time is negligible.
HARNESS_SHAPES = ((2560, 2560), (3840, 2560), (13824, 2560), (2560, 6912), (3200, 3200), (4800, 3200),
                  (3200, 10240), (20480, 3200))
FLOOR_SHAPE = (64, 64)


def _build_noop_library(workdir: Path) -> Path:
    import subprocess
    src, lib = workdir / "noop_bitlinear.cu", workdir / "libnoop_bitlinear.so"
    src.write_text(_NOOP_CU)
    subprocess.run(["nvcc", "-O2", "-shared", "-Xcompiler", "-fPIC", "-o", str(lib), str(src)], check=True)
    return lib


def measure_harness_floors(workdir: "str | Path", repeats: int = 5) -> pd.DataFrame:
    """Per-call µs of the A100 table's harness on this machine's GPU (a benchmark: never run in tests).

    The harness times 50 back-to-back calls with ``torch.utils.benchmark.Timer(..., num_threads=1).timeit(50)``,
    which synchronises only before and after the 50, so a call costs max(host issue, device time).  Rows:
    ``w2a8_noop`` (the W2A8 Python wrapper calling a no-op library of the same signature through ctypes: its host
    floor), ``torch_bf16`` (``torch.matmul`` of a 1 x K BF16 row by the transposed N x K weights) at
    :data:`FLOOR_SHAPE` (its host floor) and at :data:`HARNESS_SHAPES` (this GPU's own times).
    """
    import ctypes

    import torch
    from torch.utils import benchmark

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    lib = ctypes.CDLL(str(_build_noop_library(workdir)))

    def w2a8_call(x, w, s, ws, out):
        shape = list(x.shape)
        shape[-1] = w.shape[0]
        stream = torch.cuda.current_stream()
        m, n, k = x.shape[0], w.shape[0], w.shape[1] * 4
        lib.bitlinear_int8xint2(ctypes.c_void_p(x.data_ptr()), ctypes.c_void_p(w.data_ptr()),
                                ctypes.c_void_p(out.data_ptr()), ctypes.c_void_p(s.data_ptr()),
                                ctypes.c_void_p(ws.data_ptr()), ctypes.c_int(m), ctypes.c_int(n), ctypes.c_int(k),
                                ctypes.c_void_p(stream.cuda_stream))
        return out

    def timed(stmt: str, env: dict) -> float:
        t = benchmark.Timer(stmt=stmt, globals=env, num_threads=1)
        t.timeit(5)                                     # warm-up (cuBLAS handle, heuristics)
        return t.timeit(50).mean * 1e6

    rows = []
    dev = "cuda"
    for rep in range(repeats):
        N, K = FLOOR_SHAPE
        env = dict(f=w2a8_call, x=torch.zeros(1, K, dtype=torch.int8, device=dev),
                   w=torch.zeros(N, K // 4, dtype=torch.int8, device=dev),
                   s=torch.ones(1, dtype=torch.bfloat16, device=dev),
                   ws=torch.ones(6, dtype=torch.bfloat16, device=dev),
                   out=torch.empty(1, N, dtype=torch.bfloat16, device=dev))
        rows.append(dict(path="w2a8_noop", N=N, K=K, repeat=rep, us=timed("f(x, w, s, ws, out)", env)))
        for N, K in (FLOOR_SHAPE,) + HARNESS_SHAPES:
            g = torch.Generator(device=dev).manual_seed(rep)
            env = dict(torch=torch, a=torch.randint(-128, 127, (1, K), device=dev, generator=g).to(torch.bfloat16),
                       b=torch.randint(-1, 2, (N, K), device=dev, generator=g).to(torch.bfloat16).T)
            rows.append(dict(path="torch_bf16", N=N, K=K, repeat=rep, us=timed("torch.matmul(a, b)", env)))
    out = pd.DataFrame(rows)
    out.attrs = dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__, cuda=torch.version.cuda)
    return out


def floors_csv_text(table: pd.DataFrame) -> str:
    """The floors table as ``sim.validation.published.load_harness_floors`` reads it: comment lines naming the
    device and software it was measured on (``table.attrs``) and what it is, then the rows."""
    head = [f"# {k}: {v}" for k, v in sorted(table.attrs.items())]
    head.append("# Host floors of the A100 BitNet table's timing harness (torch.utils.benchmark Timer.timeit(50)), "
                "measured by python -m bitsim.experiments.harness_floors on the device above: w2a8_noop = the W2A8 "
                "wrapper calling a no-op library of the same C signature through ctypes; torch_bf16 = torch.matmul, "
                "its smallest shape the host floor. us = mean per call of one timeit(50).")
    return "\n".join(head) + "\n" + table.to_csv(index=False)


def write_harness_floors(table: pd.DataFrame, path: "str | Path") -> Path:
    """Write the measured floors table (:func:`floors_csv_text`) atomically."""
    return write_text_atomic(floors_csv_text(table), path)


if __name__ == "__main__":
    import os
    import sys
    dest = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OUT", "."))
    table = measure_harness_floors(dest / "build")
    write_harness_floors(table, dest / "harness_floors.csv")
    print(table.attrs)
    print(table.groupby(["path", "N", "K"])["us"].describe()[["count", "min", "50%", "max"]].to_string())
