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
# # 04 · Validating the simulator
#
# Three independent references:
# 1. **SCALE-Sim v3** (PyPI `scalesim`): systolic compute cycles of dense GEMMs, same array and
#    dataflow (`sim.validation`).
# 2. **Roofline**: no simulated op may beat max(compute peak, off-chip bandwidth) of its
#    accelerator (`sim.validation.roofline_bounds`); the roofline figure places every op.
# 3. **The measured H100**: every measured kernel shape replayed on the `h100-like` preset
#    (`bitsim.report.measured.validate_simulator`, built on `sim.validation.validation_table`).
#
# The roofline check runs the study's main model, 7B with the paper's Table 2 sparsity (what `bitsim report`
# uses); `BITSIM_NB_SMALL=1` runs the tiny model instead.

# %% tags=["parameters"]
import os

SMALL = os.environ.get("BITSIM_NB_SMALL") == "1"
MEASURED_DIR = os.environ.get("BITSIM_MEASURED_DIR", "../reports/data")
SHAPES = [(64, 8, 16), (37, 29, 53), (1, 64, 48)] if SMALL else \
    [(64, 8, 16), (4, 96, 40), (32, 32, 32), (37, 29, 53), (1, 64, 48), (128, 64, 96), (256, 32, 64)]
PRESET = "tiny" if SMALL else "7b"     # the study's main model, with the profile the study uses for it
CONTEXT = 64 if SMALL else 2048
ROWS = 12                              # long tables show their first rows (every row: the DataFrame itself)
# measured tables replayed in section 3 (file names; None: every table under MEASURED_DIR).  The small run keeps
# the first H100 table, the two the current-kernel presets derive from, and the H200's
SOURCES = ("measured_h100_kernels.parquet", "measured_h100_kernels2.parquet", "measured_h100_kernels3.parquet",
           "measured_h200_kernels.parquet") if SMALL else None

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from bitsim.experiments.study import StudyConfig, run_study
from bitsim.report import figures
from bitsim.report.measured import ANCHORS_SOURCE, load_measured, unreplayed_gpus, validate_simulator
from sim.validation import compare_systolic, roofline_bounds

# %% [markdown]
# ## 1 · Systolic compute cycles vs SCALE-Sim

# %%
cmp_sys = compare_systolic(SHAPES, rows=8, cols=8)
print(f"{len(cmp_sys)} GEMM runs (shape x dataflow); the {min(ROWS, len(cmp_sys))} with the largest error "
      "(every run: `cmp_sys`):")
display(cmp_sys.reindex(cmp_sys.rel_error.abs().sort_values(ascending=False).index).head(ROWS))
print(f"max |error| vs SCALE-Sim: {100 * cmp_sys.rel_error.abs().max():.2f}% over {len(cmp_sys)} runs")

# %% [markdown]
# ## 2 · Roofline: no op faster than its accelerator allows

# %%
res = run_study(StudyConfig(name="04-validation", presets=(PRESET,), contexts=(CONTEXT,), prefill_tokens=CONTEXT,
                            workers=1, experiments=()), progress=not SMALL)
checks = []
for (acc_name, dp, phase), ops in res.ops.groupby(["accelerator", "datapath", "phase"], sort=False):
    key = res.summary[res.summary.accelerator == acc_name].accelerator_key.iloc[0]
    bound = roofline_bounds(ops, key)
    checks.append({"accelerator": acc_name, "datapath": dp, "phase": phase, "ops": len(ops),
                   "ops below roofline": int((ops.cycles < np.floor(bound)).sum()),
                   "sim / roofline (sum)": ops.cycles.sum() / bound.sum()})
checks = pd.DataFrame(checks)
print(f"{len(checks)} (chip, datapath, phase) runs; the first {min(ROWS, len(checks))} (every run: `checks`):")
display(checks.round(3).head(ROWS))

# %%
figures.roofline(res.ops, res.ceilings, title=f"Roofline: {PRESET}, decode @ {CONTEXT} and prefill")
plt.show()

# %% [markdown]
# ## 3 · Simulated vs measured GPU

# %%
measured = load_measured(MEASURED_DIR)
if SOURCES is not None:                 # the anchor timings stay with any choice of tables
    measured = measured[measured.source.isin(SOURCES) | (measured.source == ANCHORS_SOURCE)]
# Each GPU's rows on its own presets: baselines (cuBLAS, SDPA, gemlite) on the ideal one (measured peaks only);
# our Triton kernels on the fitted one (+ launch latency and decode rates fitted on a calibration subset,
# sim/validation/calibrate.py).  Calibration rows are listed apart: they are not validation.
cmp, per_class = validate_simulator(measured)
print(f"{len(per_class)} kernel classes (per GPU preset and split); the first {min(ROWS, len(per_class))} "
      "(every class: `per_class`):")
display(per_class.round(3).head(ROWS))
missing = unreplayed_gpus(measured)
if missing:
    print("not replayed (no sim preset for this GPU yet):", ", ".join(missing))
figures.sim_vs_measured(cmp.assign(kernel=cmp["kernel_class"] + " on " + cmp["preset"]))
plt.show()

# %% [markdown]
# ## Takeaways (computed from the checks above)

# %%
held = per_class[per_class.split == "held-out"]
lines = [f"- SCALE-Sim: largest systolic-cycle error {100 * cmp_sys.rel_error.abs().max():.2f}% over {len(cmp_sys)} "
         "GEMMs.",
         f"- Roofline: {int(checks['ops below roofline'].sum())} simulated ops beat their roofline "
         f"(of {int(checks['ops'].sum())})."]
if len(held):
    ok = held[held.within_bound]
    lines.append(f"- Measured GPU, held-out: {len(ok)} of {len(held)} kernel classes within 15% MAPE; worst: "
                 + ", ".join(f"{r['class']} {100 * r.mape:.0f}%" for _, r in held.nlargest(3, "mape").iterrows())
                 + ".")
print("\n".join(lines))
