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
# # 01 · The four datapaths: FP16, BitNet b1.58, BitNet a4.8 (INT4 and FP4)
#
# What each datapath does to every op of one decoder (operand bits, input sparsity), how many
# weights actually meet a non-zero activation (the a4.8 paper's "55 % active parameters"), and
# what that buys on each datapath's own accelerator and on an H100-like GPU.
#
# Everything here calls the library (`model.trace`, `sim`, `bitsim.experiments.study`, `bitsim.report.figures`,
# `bitsim.report.claims`); the notebook only chooses parameters and shows results.
# Set `BITSIM_NB_SMALL=1` for the small CI run.

# %% tags=["parameters"]
import os

SMALL = os.environ.get("BITSIM_NB_SMALL") == "1"
PRESET = "tiny" if SMALL else "2b4t"
CONTEXTS = (64, 256) if SMALL else (512, 2048, 8192, 32768)
PREFILL_TOKENS = 64 if SMALL else 2048
WORKERS = 1 if SMALL else 2

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from bitsim.report import figures
from bitsim.report.claims import active_param_fraction, projection_sparsity, ratio_table
from bitsim.experiments.study import StudyConfig, run_study

cfg = StudyConfig(name="01-datapaths", presets=(PRESET,), contexts=CONTEXTS, prefill_tokens=PREFILL_TOKENS,
                  workers=WORKERS)
res = run_study(cfg, progress=False)
print(f"{len(cfg.workloads())} traces, {len(res.summary)} simulations in {res.seconds:.1f} s")

# %% [markdown]
# ## Operand bits and input sparsity of every op
# Measured on a seeded random-weight model (docs/decisions.md item 12): the INT4 zero bin (~12 %) and the
# TopK 50 % on the Wo input are reproduced; the FFN sparsity of a *trained* model is not.

# %%
fig = figures.sparsity_and_bits(res.traces, PRESET)
plt.show()

# %%
decode = res.traces[(res.traces.phase == "decode") & (res.traces.context == min(CONTEXTS))]
rows = []
for dp, t in decode.groupby("datapath", sort=False):
    rows.append({"datapath": dp, "active params %": 100 * active_param_fraction(t),
                 **{f"{op} %": v for op, v in projection_sparsity(t).items()}})
display(pd.DataFrame(rows).round(1))

# %% [markdown]
# ## Energy, speed and memory on matched and reference accelerators

# %%
figures.energy_by_component(res.summary)
plt.show()
figures.throughput(res.summary)
plt.show()
figures.footprint(res.summary)
plt.show()

# %% [markdown]
# ## a4.8 against b1.58 and FP16 (x, higher = a4.8 better)

# %%
display(ratio_table(res.summary).round(2))
