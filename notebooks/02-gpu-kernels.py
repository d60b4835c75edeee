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
# The kernels team's measurements (`reports/data/measured_*`, schema `measured_trace`; H100 and H200 runs)
# plus the anchor timings of docs/gpu-facts.md §1: times, speedups over the FP16 baseline measured in the same
# run and timing mode, with the spread of the repeats where the run stored it, the board energy of sustained
# runs, and what they say about the a4.8 speed claims on a GPU without INT4 tensor cores.

# %% tags=["parameters"]
import os

SMALL = os.environ.get("BITSIM_NB_SMALL") == "1"
MEASURED_DIR = os.environ.get("BITSIM_MEASURED_DIR", "../reports/data")
ROWS = 20          # long tables show their first rows (every row: the DataFrame, or the report's CSV)

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from bitsim.report import figures
from bitsim.report.claims import CLAIMS, measured_speed_rows
from bitsim.report.collect import load_board_energy
from bitsim.report.display import shown_measurements
from bitsim.report.measured import ANCHORS_SOURCE, load_measured, speedups

measured = load_measured(MEASURED_DIR)
print(f"{len(measured)} measured rows from: {sorted(set(measured.source))}")
inventory = measured.groupby(["source", "gpu", "op", "kernel"]).size().rename("rows").to_frame()
print(f"{len(inventory)} (run, GPU, op, kernel) groups; the first {min(ROWS, len(inventory))}:")
display(inventory.head(ROWS))

# %% [markdown]
# ## Speedups over the FP16 baseline (same shape, same run, same timing mode)
# `speedup_lo` / `speedup_hi`: the baseline's and the kernel's spread combined (quartiles of the repeats, or
# min/max); `spread` = none where the run stored one median only.  The first rows are shown (`shown` holds
# every one); the figure draws one run at a time, so kernels of two GPUs or kernel versions never mix.

# %%
spd = speedups(measured)
shown = shown_measurements(spd)  # the kernels' own runs (anchors only if there is nothing else)
cols = ["source", "shape", "kernel", "impl", "cuda_graph", "us", "baseline_us", "speedup", "speedup_lo",
        "speedup_hi", "spread", "repeats"]
print(f"{len(shown)} speedup rows; the first {min(ROWS, len(shown))}:")
display(shown[cols].round(3).head(ROWS))
for run in sorted(shown.source.unique()):
    figures.measured_speedups(shown, run=run)
    plt.show()

# %% [markdown]
# ## Bandwidth and the roofline
# Every kernel call at its arithmetic intensity (ops per minimum byte) under the roofs measured
# in the same run (copy bandwidth, cuBLAS 8192³ peaks), one run per row, and the share of the copy
# bandwidth the decode (M = 1) kernels reach: at M = 1 a kernel is only as fast as the bytes it streams.

# %%
own = measured[measured.source != ANCHORS_SOURCE]
figures.measured_roofline(own)
plt.show()
decode = own[(own.M == 1) & own.op.isin(["gemv", "sparse_gemv"])].sort_values("us")
decode = decode.drop_duplicates(["source", "kernel", "N", "K", "sparsity"])
print(f"{len(decode)} decode kernel calls; the first {min(ROWS, len(decode))}:")
display(decode[["source", "kernel", "N", "K", "sparsity", "cuda_graph", "us", "bytes", "gbps"]]
        .sort_values(["source", "N", "K", "us"]).round(2).head(ROWS))

# %% [markdown]
# ## Board energy of sustained runs (NVML)

# %%
board = load_board_energy(MEASURED_DIR)
if len(board):
    display(board[["gpu", "datapath", "phase", "scope", "j_per_token", "j_per_token_above_idle", "mean_power_w",
                   "idle_power_w", "note"]].round(4))
else:
    print("no board energy committed")

# %% [markdown]
# ## The speed claims on the measured GPU
# a4.8 vs b1.58: our W1.58A4 kernel (4-bit activations on FP8 tensor cores) vs our W1.58A8
# kernel, and the whole decoder block; a4.8 vs FP16: the same against cuBLAS FP16 and the FP16 block.

# %%
rows = (measured_speed_rows(spd, "ours_w158a4_fp8", "ours_w158a8", CLAIMS["speedup_vs_b158"])
        + measured_speed_rows(spd, "ours_w158a4_fp8", "cublas_fp16", CLAIMS["speedup_vs_fp16"])
        + measured_speed_rows(spd, "block_a4.8", "block_b1.58", CLAIMS["speedup_vs_b158"])
        + measured_speed_rows(spd, "block_a4.8", "block_fp16", CLAIMS["speedup_vs_fp16"]))
claims = pd.DataFrame(rows)
with pd.option_context("display.max_colwidth", None):
    print(f"{len(claims)} claim rows" + (f"; the first {ROWS} (every row: `claims`)" if len(claims) > ROWS else ""))
    display(claims[["hardware", "workload", "ours", "verdict"]].head(ROWS) if len(claims) else claims)

# %% [markdown]
# ## Takeaways (computed from the tables above)

# %%
lines = []
for src, g in shown.groupby("source"):
    gemv = g[(g.M == 1) & g.kernel.str.startswith("ours_w158a8") & g.op.eq("gemv")]
    if len(gemv):
        lines.append(f"- {src}: our W1.58A8 GEMV at M = 1 is {gemv.speedup.min():.2f}x-{gemv.speedup.max():.2f}x "
                     "cuBLAS FP16 (bandwidth-bound: ternary weights move 8x fewer bytes).")
    blk = g[g.kernel.isin(["block_a4.8", "block_b1.58"]) & g["shape"].str.contains("decode")]
    for r in blk.itertuples():
        lines.append(f"- {src}: {r.kernel} decode step {r.speedup:.2f}x the FP16 block"
                     + (f" [{r.speedup_lo:.2f}-{r.speedup_hi:.2f}]" if r.speedup_lo == r.speedup_lo else "") + ".")
if len(claims):
    lines.append("- Measured claim rows: " + "; ".join(f"{r.hardware.split(': ')[-1]} {r.ours} ({r.verdict})"
                                                       for r in claims.itertuples()))
for gpu, g in (board[board.scope == "7b_token"].groupby("gpu") if len(board) else []):
    b = g.groupby("datapath").j_per_token.first()
    if {"fp16", "a4.8"} <= set(b.index):
        lines.append(f"- Board energy of a 7B decode token on {gpu}: fp16 {b['fp16']:.2f} J, a4.8 {b['a4.8']:.2f} J "
                     f"({b['fp16'] / b['a4.8']:.2f}x less; the whole board, idle power included).")
print("\n".join(lines) or "no measurements")
