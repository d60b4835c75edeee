# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Measured GPU kernels
#
# The kernels team's H100 measurements (`reports/data/measured_*`, schema `measured_trace`) plus
# the anchor timings of docs/gpu-facts.md §1: times, speedups over cuBLAS FP16 measured in the same
# run, and what they say about the a4.8 speed claims on a GPU without INT4 tensor cores.

# %% tags=["parameters"]
import os

SMALL = os.environ.get("BITSIM_NB_SMALL") == "1"
MEASURED_DIR = os.environ.get("BITSIM_MEASURED_DIR", "../reports/data")

# %%
import matplotlib.pyplot as plt
from IPython.display import display

from bitsim.report import figures
from bitsim.report.claims import CLAIMS, measured_speed_rows
from bitsim.report.measured import ANCHORS_SOURCE, load_measured, speedups
from bitsim.report.build import shown_measurements

measured = load_measured(MEASURED_DIR)
print(f"{len(measured)} measured rows from: {sorted(set(measured.source))}")
display(measured.groupby(["source", "op", "kernel"]).size().rename("rows").to_frame())

# %% [markdown]
# ## Speedups over cuBLAS FP16 (same shape, same run)

# %%
spd = speedups(measured)
shown = shown_measurements(spd)  # the kernels' own runs (anchors only if there is nothing else)
display(shown[["source", "shape", "kernel", "impl", "us", "baseline_us", "speedup"]].round(2))
figures.measured_speedups(shown)
plt.show()

# %% [markdown]
# ## Bandwidth and the roofline
# Every kernel call at its arithmetic intensity (ops per minimum byte) under the roofs measured
# in the same run (copy bandwidth, cuBLAS 8192³ peaks), and the share of the copy bandwidth the
# decode (M = 1) kernels reach: at M = 1 a kernel is only as fast as the bytes it streams.

# %%
own = measured[measured.source != ANCHORS_SOURCE]
figures.measured_roofline(own)
plt.show()
decode = own[(own.M == 1) & own.op.isin(["gemv", "sparse_gemv"])].sort_values("us")
decode = decode.drop_duplicates(["kernel", "N", "K", "sparsity"])
display(decode[["kernel", "N", "K", "sparsity", "cuda_graph", "us", "bytes", "gbps"]]
        .sort_values(["N", "K", "us"]).round(2))

# %% [markdown]
# ## The speed claims on the measured GPU
# a4.8 vs b1.58: our W1.58A4 kernel (4-bit activations on FP8 tensor cores) vs our W1.58A8
# kernel; a4.8 vs FP16: the same kernel vs cuBLAS FP16.  Empty when those kernels have no
# measurements yet.

# %%
rows = (measured_speed_rows(spd, "ours_w158a4_fp8", "ours_w158a8", CLAIMS["speedup_vs_b158"])
        + measured_speed_rows(spd, "ours_w158a4_fp8", "cublas_fp16", CLAIMS["speedup_vs_fp16"]))
import pandas as pd
display(pd.DataFrame(rows))
