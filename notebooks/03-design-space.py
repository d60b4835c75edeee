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
# saved as they complete: rerunning this notebook reuses them.  The results set is named after the
# workload knobs (models, batches, context), so changing one and re-running starts a new set beside the old
# one instead of being refused as a different sweep.

# %% tags=["parameters"]
import os

SMALL = os.environ.get("BITSIM_NB_SMALL") == "1"
SPEC = "../reports/specs/design-space.yaml"
WORKERS = 1 if SMALL else 2
MODELS = ["tiny"] if SMALL else ["7b"]            # model presets (a knob): 7B is the study's main model
PROFILE = "paper-table2"                          # the 7B profile the study uses (tiny: random weights)
BATCHES = [1, 4] if SMALL else [1, 16]            # decode batch (a knob): zero skipping pays at small batches
CONTEXT = 64 if SMALL else 2048
ROWS = 15                                         # long tables show their first rows

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
if not SMALL:   # tiny has no Table 2 row: its traces keep their random-weight statistics
    raw["workloads"]["profile"] = PROFILE
spec = parse_spec(raw)
TAG = f"{'-'.join(MODELS)}-b{'_'.join(str(b) for b in BATCHES)}-c{CONTEXT}" + ("-small" if SMALL else "")
RESULTS = os.environ.get("BITSIM_NB_OUT", "../reports/runs") + f"/design-space-{TAG}.parquet"
print(f"{len(spec.points())} points -> {RESULTS}")
df = run_sweep(spec, RESULTS, workers=WORKERS, backend="serial" if WORKERS == 1 else "process", progress=True)
AREA = "area_mm2" if "area_mm2" in df.columns else "compute_area_mm2_45nm"
AREA_LABEL = "chip area (mm², sim: PE, vector, SRAM, PHY)" if AREA == "area_mm2" else "PE-array area (mm², 45 nm)"
hw = [c for c in df.columns if c.startswith("hw.")]
KNOBS = hw + ["preset", "batch"]
fits = df.fits_offchip.astype(bool) if "fits_offchip" in df else pd.Series(True, index=df.index)
feasible, infeasible = df[fits], df[~fits]
print(f"{len(feasible)} of {len(df)} points fit the chip's memory (the others are marked x and kept off the fronts)")


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
fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
fronts = []
for ax, (objectives, ylabel) in zip(axes, panels):
    y = [k for k in objectives if k != "tokens_per_s"][0]
    for b, g in feasible.groupby("batch"):
        ax.scatter(g.tokens_per_s, g[y], s=14, alpha=0.5, label=f"batch {b}")
    if len(infeasible):
        ax.scatter(infeasible.tokens_per_s, infeasible[y], marker="x", s=14, color="0.5", lw=0.8,
                   label=f"does not fit the chip's memory ({len(infeasible)}; not on the front)")
    mask = pareto_mask(feasible, objectives)
    front = feasible[mask].sort_values("tokens_per_s")
    fronts.append(front.assign(objectives=" & ".join(objectives)))
    ax.plot(front.tokens_per_s, front[y], "-o", color="crimson", ms=5, mfc="none",
            label=f"Pareto front ({len(front)} points, labelled with their knobs)")
    for i, (_, r) in enumerate(front.iterrows()):   # alternate sides so neighbouring labels do not collide
        ax.annotate(knob_label(r), (r.tokens_per_s, r[y]), fontsize=5.5, textcoords="offset points",
                    xytext=(4, 4) if i % 2 == 0 else (4, -9))
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    if y == AREA:   # a narrow range of areas: a linear axis
        ax.set_yscale("linear")
    else:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel("decode tokens/s (all sequences of the batch)", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6, loc="best")
profile = PROFILE if not SMALL else "random-weight statistics"
fig.suptitle(f"{spec.name}: {len(feasible)} feasible design points, models {', '.join(MODELS)}, context {CONTEXT}\n"
             f"profile: {profile} · energy: chip model, dynamic + static", fontsize=9)
fig.tight_layout()
plt.show()
table = pd.concat(fronts)[["objectives"] + KNOBS + ["tokens_per_s", "energy_j_per_token", AREA]].round(4)
print(f"{len(table)} front points; the first {min(ROWS, len(table))}:")
display(table.head(ROWS))

# %% [markdown]
# ## What each knob does (median over the other knobs)

# %%
for col in KNOBS:
    if feasible[col].nunique() > 1:
        display(feasible.groupby(col)[["tokens_per_s", "energy_j_per_token", AREA]].median().round(4).head(ROWS))

# %% [markdown]
# ## Takeaways (computed from the sweep)

# %%
lines, flat = [], []
for col in KNOBS:
    if feasible[col].nunique() > 1:
        med = feasible.groupby(col).tokens_per_s.median()
        if med.max() / med.min() < 1.01:   # a knob that moves nothing is named once, not as "x -> x (1.00x)"
            flat.append(col)
            continue
        lines.append(f"- {col}: median decode tokens/s {med.min():.0f} -> {med.max():.0f} "
                     f"({med.max() / med.min():.2f}x) from {med.idxmin()} to {med.idxmax()}.")
if flat:
    lines.append(f"- no effect on median decode tokens/s (< 1 %) in the swept range: {', '.join(flat)}.")
skip = [c for c in hw if c.endswith("skip_weight_fetch")]
if skip:
    for b, g in feasible.groupby("batch"):
        on, off = g[g[skip[0]] == True].tokens_per_s.median(), g[g[skip[0]] == False].tokens_per_s.median()  # noqa: E712
        lines.append(f"- zero skipping at batch {b}: {on / off:.2f}x median decode tokens/s.")
best = fronts[0].iloc[-1]
lines.append(f"- fastest point on the tokens/s-energy front: {knob_label(best)} at {best.tokens_per_s:.0f} tok/s, "
             f"{1e3 * best.energy_j_per_token:.1f} mJ/token.")
print("\n".join(lines))
