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
# (`reports/specs/design-space.yaml`), with the **model** and the decode **batch** as knobs too, run with
# `bitsim.experiments.sweep` (the same engine as `bitsim sweep`).  Each Pareto front is computed on exactly
# the objectives its panel draws, and each front point is labelled with its knobs.  Finished points are
# saved as they complete: rerunning this notebook reuses them.

# %% tags=["parameters"]
import os

SMALL = os.environ.get("BITSIM_NB_SMALL") == "1"
SPEC = "../reports/specs/design-space.yaml"
RESULTS = os.environ.get("BITSIM_NB_OUT", "../reports/runs") + ("/design-space-small.parquet" if SMALL
                                                                 else "/design-space.parquet")
WORKERS = 1 if SMALL else 2
MODELS = ["tiny"] if SMALL else ["2b4t"]          # model presets (a knob)
BATCHES = [1, 4] if SMALL else [1, 16]            # decode batch (a knob): zero skipping pays at small batches
CONTEXT = 64 if SMALL else 2048

# %%
import matplotlib.pyplot as plt
import pandas as pd
import yaml
from IPython.display import display

from bitsim.experiments.pareto import pareto_mask
from bitsim.experiments.sweep import parse_spec, run_sweep

raw = yaml.safe_load(open(SPEC))
if SMALL:  # a corner of the same space
    raw["accelerator"]["grid"] = {"arrays.ternary.rows": [64, 128], "offchip.bandwidth_gbps": [409.6, 1638.4]}
raw["workloads"] = {"preset": MODELS, "datapath": "a4.8", "phase": "decode", "context": [CONTEXT], "batch": BATCHES}
spec = parse_spec(raw)
print(f"{len(spec.points())} points")
df = run_sweep(spec, RESULTS, workers=WORKERS, backend="serial" if WORKERS == 1 else "process", progress=False)
AREA = "area_mm2" if "area_mm2" in df.columns else "compute_area_mm2_45nm"
AREA_LABEL = "chip area (mm², sim)" if AREA == "area_mm2" else "PE-array area (mm², 45 nm)"
hw = [c for c in df.columns if c.startswith("hw.")]
KNOBS = hw + ["preset", "batch"]
feasible = df[df.fits_offchip.astype(bool)] if "fits_offchip" in df else df
print(f"{len(feasible)} of {len(df)} points fit the chip's memory (the others are not drawn)")


def knob_label(row) -> str:
    """A point's knobs in a few characters: 128r 819GB/s 16MiB 1.0GHz skip b16."""
    parts = []
    for k in hw:
        v = row[k]
        short = k.split(".")[-1]
        if short == "rows":
            parts.append(f"{int(v)}r")
        elif short == "cols":
            parts.append(f"{int(v)}c")
        elif short == "bandwidth_gbps":
            parts.append(f"{v:.0f}GB/s")
        elif short == "activation_buffer_kib":
            parts.append(f"{v / 1024:.0f}MiB")
        elif short == "clock_ghz":
            parts.append(f"{v:g}GHz")
        elif short == "skip_weight_fetch":
            parts.append("skip" if v else "noskip")
    return " ".join(parts + [f"b{int(row.batch)}"] + ([row.preset] if len(MODELS) > 1 else []))

# %% [markdown]
# ## Pareto fronts, each on the two objectives it draws

# %%
panels = [({"tokens_per_s": "max", "energy_j_per_token": "min"}, "energy per token (J)"),
          ({"tokens_per_s": "max", AREA: "min"}, AREA_LABEL)]
fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
fronts = []
for ax, (objectives, ylabel) in zip(axes, panels):
    y = [k for k in objectives if k != "tokens_per_s"][0]
    for b, g in feasible.groupby("batch"):
        ax.scatter(g.tokens_per_s, g[y], s=14, alpha=0.5, label=f"batch {b}")
    mask = pareto_mask(feasible, objectives)
    front = feasible[mask].sort_values("tokens_per_s")
    fronts.append(front.assign(objectives=" & ".join(objectives)))
    ax.plot(front.tokens_per_s, front[y], "-o", color="crimson", ms=5, mfc="none",
            label=f"Pareto front on {' and '.join(objectives)} ({len(front)} points)")
    for _, r in front.iterrows():
        ax.annotate(knob_label(r), (r.tokens_per_s, r[y]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("decode tokens/s (all sequences of the batch)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
fig.suptitle(f"{spec.name}: {len(feasible)} feasible design points, models {', '.join(MODELS)}, context {CONTEXT}\n"
             "profile: random-weight statistics (the sweep's traces) · energy: chip model, dynamic + static",
             fontsize=10)
fig.tight_layout()
plt.show()
with pd.option_context("display.max_rows", None, "display.width", 200):
    display(pd.concat(fronts)[["objectives"] + KNOBS + ["tokens_per_s", "energy_j_per_token", AREA]].round(4))

# %% [markdown]
# ## What each knob does (median over the other knobs)

# %%
for col in KNOBS:
    if feasible[col].nunique() > 1:
        display(feasible.groupby(col)[["tokens_per_s", "energy_j_per_token", AREA]].median().round(4))

# %% [markdown]
# ## Takeaways (computed from the sweep)

# %%
lines = []
for col in KNOBS:
    if feasible[col].nunique() > 1:
        med = feasible.groupby(col).tokens_per_s.median()
        lines.append(f"- {col}: median decode tokens/s {med.min():.0f} -> {med.max():.0f} "
                     f"({med.max() / med.min():.2f}x) from {med.idxmin()} to {med.idxmax()}.")
skip = [c for c in hw if c.endswith("skip_weight_fetch")]
if skip:
    for b, g in feasible.groupby("batch"):
        on, off = g[g[skip[0]] == True].tokens_per_s.median(), g[g[skip[0]] == False].tokens_per_s.median()  # noqa: E712
        lines.append(f"- zero skipping at batch {b}: {on / off:.2f}x median decode tokens/s.")
best = fronts[0].iloc[-1]
lines.append(f"- fastest point on the tokens/s-energy front: {knob_label(best)} at {best.tokens_per_s:.0f} tok/s, "
             f"{1e3 * best.energy_j_per_token:.1f} mJ/token.")
print("\n".join(lines))
