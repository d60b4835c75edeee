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
# # 03 · Design space of an a4.8 accelerator
#
# A sweep over array shape, off-chip bandwidth, activation buffer, clock and sparsity support
# (`reports/specs/design-space.yaml`), run with `bitsim.experiments.sweep` (the same engine as
# `bitsim sweep`), then the Pareto front of energy per token vs tokens/s vs PE-array area.
# Finished points are saved as they complete: rerunning this notebook reuses them.

# %% tags=["parameters"]
import os

SMALL = os.environ.get("BITSIM_NB_SMALL") == "1"
SPEC = "../reports/specs/design-space.yaml"
RESULTS = os.environ.get("BITSIM_NB_OUT", "../reports/runs") + ("/design-space-small.parquet" if SMALL
                                                                 else "/design-space.parquet")
WORKERS = 1 if SMALL else 2

# %%
import matplotlib.pyplot as plt
import yaml
from IPython.display import display

from bitsim.experiments.pareto import pareto_front, plot_pareto
from bitsim.experiments.sweep import parse_spec, run_sweep

raw = yaml.safe_load(open(SPEC))
if SMALL:  # a corner of the same space, on the tiny model
    raw["accelerator"]["grid"] = {"arrays.ternary.rows": [64, 128], "offchip.bandwidth_gbps": [409.6, 1638.4]}
    raw["workloads"] = {"preset": "tiny", "datapath": "a4.8", "context": [64]}
spec = parse_spec(raw)
print(f"{len(spec.points())} points")
df = run_sweep(spec, RESULTS, workers=WORKERS, backend="serial" if WORKERS == 1 else "process", progress=False)
df.describe().T[["min", "max"]]

# %% [markdown]
# ## Pareto front: tokens/s up, J/token down, PE-array area down

# %%
objectives = {"tokens_per_s": "max", "energy_j_per_token": "min", "compute_area_mm2_45nm": "min"}
front = pareto_front(df, objectives)
hw = [c for c in df.columns if c.startswith("hw.")]
display(front[hw + list(objectives)].round(4))

# %%
ax = plot_pareto(df, "tokens_per_s", "energy_j_per_token", objectives, color="compute_area_mm2_45nm",
                 xlabel="tokens/s (batch 1 decode)", ylabel="energy per token (J)",
                 color_label="PE-array area (mm², 45 nm)", logx=True, logy=True)
ax.set_title(f"{spec.name}: {len(df)} design points")
plt.show()

# %% [markdown]
# ## What each knob does (median over the other knobs)

# %%
for col in hw:
    display(df.groupby(col)[["tokens_per_s", "energy_j_per_token"]].median().round(4))
