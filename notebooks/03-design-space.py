# %% [markdown]
# # 03 · Design space of an a4.8 accelerator
#
# A sweep over array shape, off-chip bandwidth, activation buffer, clock and sparsity support
# (`reports/specs/design-space.yaml`), with the **model**, the decode **batch** and the design-space features
# as knobs too: the off-chip **memory** kind, the **process node**, **SRAM-resident weights**, and the two costs
# of zero skipping (the bus time of each **gathered row** and the latency of building the **skip index**).
# The **quantized baselines** (FP16, W4A16, W8A8 INT8/FP8, W4A4 MXFP4, b1.58), each as its strongest variant on
# its own preset chip with the same memory and node, are drawn as reference markers. It runs on
# `bitsim.experiments.sweep` (the same engine as `bitsim sweep`). Each Pareto front is computed on exactly the
# objectives its panel draws, over the points whose weights and KV cache fit the chip's memory, and each front
# point is labelled with its knobs.
#
# Finished points are saved as they complete, in a folder named after the sweep's digest: re-running with
# the same knobs reuses them; changing any knob (e.g. `BATCHES`) starts a new folder beside the old one.
#
# It defaults to the study's main model, **7B with the paper's Table 2 sparsity** (what `bitsim report` uses),
# so the numbers are the README's; `BITSIM_NB_SMALL=1` runs a corner of the space on the tiny model.

# %% tags=["parameters"]
import os

SMALL = os.environ.get("BITSIM_NB_SMALL") == "1"
SPEC = "../reports/specs/design-space.yaml"
WORKERS = 1 if SMALL else 2
MODELS = ["tiny"] if SMALL else ["7b"]            # model presets (a knob): 7B is the study's main model
PROFILE = "paper-table2"                          # the 7B profile the study uses (tiny: random weights)
BATCHES = [1, 4] if SMALL else [1, 16]            # decode batch (a knob): zero skipping pays at small batches
CONTEXT = 64 if SMALL else 2048
# Design-space features: each a list of values to sweep (one value = held at it).
MEMORIES = ["hbm3"]          # offchip.kind: hbm2, hbm2e, hbm3, hbm3e, hbm4, gddr6, gddr7, lpddr5, lpddr5x
NODES = [7]                  # process_nm: 16, 7, 5 or 3 (sim's node scaling; 45 for the papers' PE areas)
GATHER_NS = [0.44]           # offchip.row_miss_ns: bus time per gathered weight row (the band: 0 to 1.5)
INDEX_NS = [20.0]            # sparsity.index_latency_ns: building the surviving-row list (the band: 10 to 300)
SRAM_RESIDENT = False        # True: also every point with the weights resident in on-chip SRAM (area, leakage)
BASELINES = ["fp16", "w4a16", "w8a8-int8", "w8a8-fp8", "w4a4-mxfp4", "b1.58"]   # [] for none
ROWS = 20                                         # long tables show their first rows

# %%
import matplotlib.pyplot as plt
import pandas as pd
import yaml
from IPython.display import display

from bitsim.experiments.fair import strongest
from bitsim.experiments.pareto import pareto_mask, scale_axis
from bitsim.experiments.sweep import parse_spec, resident_weight_mib, results_folder, run_sweep

OUT = os.environ.get("BITSIM_NB_OUT", "../reports/runs")
BACKEND = "serial" if WORKERS == 1 else "process"
raw = yaml.safe_load(open(SPEC))
if SMALL:  # a corner of the same space
    raw["accelerator"]["grid"] = {"arrays.ternary.rows": [64, 128], "offchip.bandwidth_gbps": [409.6, 1638.4]}
FEATURES = {"offchip.kind": MEMORIES, "process_nm": NODES, "offchip.row_miss_ns": GATHER_NS,
            "sparsity.index_latency_ns": INDEX_NS}
raw["accelerator"]["grid"].update(FEATURES)


def workloads(datapath: str) -> dict:
    w = {"preset": MODELS, "datapath": datapath, "phase": "decode", "context": [CONTEXT], "batch": BATCHES}
    if not SMALL:   # tiny has no Table 2 row: its traces keep their random-weight statistics
        w["profile"] = PROFILE
    return w


raw["workloads"] = workloads("a4.8")
if SRAM_RESIDENT:   # every point twice: weights streamed from DRAM, and resident in SRAM sized for the model
    store = resident_weight_mib(parse_spec({**raw, "accelerator": {"base": raw["accelerator"]["base"]}}))
    resident = {"weight_residency": "sram", "sram.weight_store_mib": store}
    streamed = {"weight_residency": "dram", "sram.weight_store_mib": 0.0}
    raw["accelerator"]["points"] = [{**p, **r} for p in raw["accelerator"].get("points") or [{}]
                                    for r in (streamed, resident)]
spec = parse_spec(raw)
RESULTS = results_folder(spec, OUT)
print(f"{len(spec.points())} a4.8 design points -> {RESULTS}")
df = run_sweep(spec, RESULTS, workers=WORKERS, backend=BACKEND, progress=True)
# Each baseline as the study runs it: its strongest variant (the fewest KV bits it tolerates among the formats
# any chip offers, zero skipping granted; bitsim.experiments.fair), on its own preset chip with the memory and
# node knobs of the sweep.
variants = strongest(["a4.8", *BASELINES], {d: d for d in ["a4.8", *BASELINES]}, MODELS[0])
display(pd.DataFrame([{"baseline": d, "chip": v.accelerator, "changes": v.changes or "-"}
                      for d, v in variants.items() if d in BASELINES]))
base_runs = []
for dp in BASELINES:
    v = variants[dp]
    b = parse_spec({"name": f"baseline-{dp}", "accelerator": {"base": dp, "grid": {
        "offchip.kind": MEMORIES, "process_nm": NODES}, "points": [v.chip.override_dict()]},
        "workloads": {**workloads(dp), **({"kv_bits": v.kv_bits} if v.kv_bits else {})}})
    base_runs.append(run_sweep(b, results_folder(b, OUT), workers=WORKERS, backend=BACKEND, progress=True))
base = pd.concat(base_runs, ignore_index=True) if base_runs else pd.DataFrame()
AREA, AREA_LABEL = "area_mm2", "chip area (mm², whole chip)"   # PEs, vector unit, SRAM, memory PHYs
for t in (df, base):
    if len(t):
        t["mj_per_token"] = 1e3 * t.energy_j_per_token
hw = [c for c in df.columns if c.startswith("hw.")]
KNOBS = [c for c in hw if c not in ("hw.sram.weight_store_mib", "hw.sparsity.skip_compute")] + ["preset", "batch"]
feasible, infeasible = df[df.feasible], df[~df.feasible]
print(f"{len(feasible)} of {len(df)} points fit the chip's memory"
      + (f"; the other {len(infeasible)} are marked x and kept off the fronts, e.g. "
         f"{infeasible.infeasible_reason.iloc[0]}" if len(infeasible) else ""))
if len(base):
    print(f"{len(base)} baseline points ({', '.join(BASELINES)}), {int((~base.feasible).sum())} infeasible")

SHORT = {"rows": lambda v: f"{int(v)}r", "cols": lambda v: f"{int(v)}c", "bandwidth_gbps": lambda v: f"{v:.0f}GB/s",
         "activation_buffer_kib": lambda v: f"{v / 1024:.0f}MiB", "clock_ghz": lambda v: f"{v:g}GHz",
         "skip_weight_fetch": lambda v: "skip" if v else "noskip", "kind": str, "process_nm": lambda v: f"{v:g}nm",
         "row_miss_ns": lambda v: f"gather{v:g}ns", "index_latency_ns": lambda v: f"index{v:g}ns",
         "weight_residency": lambda v: f"weights-{v}"}


def knob_label(row) -> str:
    """A point's knobs in a few characters (128r 819GB/s 16MiB 1GHz skip b16), knobs held fixed left out."""
    parts = [SHORT[k.split(".")[-1]](row[k]) for k in hw
             if k.split(".")[-1] in SHORT and df[k].nunique() > 1]
    return " ".join(parts + [f"b{int(row.batch)}"] + ([row.preset] if len(MODELS) > 1 else []))

# %% [markdown]
# ## Pareto fronts, each on the two objectives it draws
# Open black markers: the baselines, each its strongest variant on its own preset chip (at every batch, memory
# and node of the sweep; iso-peak with a4.8's preset, not sized like the sweep's designs).

# %%
MARKERS = dict(zip(BASELINES, "*P^vDs"))
panels = [({"tokens_per_s": "max", "mj_per_token": "min"}, "energy per token (mJ)", True),
          ({"tokens_per_s": "max", AREA: "min"}, AREA_LABEL, False)]
fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
fronts = []
for ax, (objectives, ylabel, logy) in zip(axes, panels):
    y = [k for k in objectives if k != "tokens_per_s"][0]
    for b, g in feasible.groupby("batch"):
        ax.scatter(g.tokens_per_s, g[y], s=14, alpha=0.5, label=f"a4.8 designs, batch {b}")
    if len(infeasible):
        ax.scatter(infeasible.tokens_per_s, infeasible[y], marker="x", s=14, color="0.5", lw=0.8,
                   label=f"does not fit the chip's memory ({len(infeasible)}; not on the front)")
    for dp, g in (base[base.feasible].groupby("datapath", sort=False) if len(base) else []):
        ax.scatter(g.tokens_per_s, g[y], marker=MARKERS.get(dp, "*"), s=70, color="k", facecolors="none",
                   lw=0.9, label=f"{dp} (strongest) on its preset chip")
    mask = pareto_mask(feasible, objectives)
    front = feasible[mask].sort_values("tokens_per_s")
    fronts.append(front.assign(objectives=" & ".join(objectives), number=range(1, len(front) + 1)))
    ax.plot(front.tokens_per_s, front[y], "-o", color="crimson", ms=5, mfc="none",
            label="Pareto front of the panel (numbered: its knobs in the table below)")
    for i, (_, r) in enumerate(front.iterrows()):   # numbers, not knob strings: a dense front stays readable
        ax.annotate(str(i + 1), (r.tokens_per_s, r[y]), fontsize=6, color="crimson", textcoords="offset points",
                    xytext=(-3, 5) if i % 2 == 0 else (-3, -11))
    everything = pd.concat([df, base], ignore_index=True) if len(base) else df
    scale_axis(ax, "x", everything.tokens_per_s, log=True)
    scale_axis(ax, "y", everything[y], log=logy)     # log only when the values span a decade
    ax.set_xlabel("decode tokens/s (all sequences of the batch)", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
handles, labels = axes[0].get_legend_handles_labels()
fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=3, frameon=False)
profile = PROFILE if not SMALL else "random-weight statistics"
fig.suptitle(f"{spec.name}: {len(feasible)} feasible design points, models {', '.join(MODELS)}, context {CONTEXT}\n"
             f"profile: {profile} · energy: chip model, dynamic + static", fontsize=9)
fig.tight_layout(rect=(0, 0.035 * ((len(labels) + 2) // 3), 1, 1))
plt.show()
table = pd.concat(fronts)
table = pd.DataFrame({"#": table.number, "front": table.objectives.str.replace("tokens_per_s", "tokens/s")
                      .str.replace("mj_per_token", "mJ/token").str.replace(AREA, "area"),
                      "knobs": [knob_label(r) for _, r in table.iterrows()],
                      "tokens/s": table.tokens_per_s.round(1),
                      "mJ/token": table.mj_per_token.map(lambda v: float(f"{v:.3g}")),
                      "mm²": table[AREA].round(1)})
print(f"{len(table)} front points (every column: `pd.concat(fronts)`); the first {min(ROWS, len(table))}:")
display(table.head(ROWS))

# %% [markdown]
# ## What each knob does (median over the other knobs)

# %%
for col in KNOBS:
    if feasible[col].nunique() > 1:
        display(feasible.groupby(col)[["tokens_per_s", "mj_per_token", AREA]].median()
                .map(lambda v: float(f"{v:.4g}")).head(ROWS))

# %% [markdown]
# ## Takeaways (computed from the sweep)

# %%
def value(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


METRICS = {"tokens_per_s": ("decode tokens/s", "{:.0f}"), "mj_per_token": ("mJ/token", "{:.3g}"),
           AREA: ("mm²", "{:.1f}")}
lines, flat = [], []
for col in KNOBS:
    if feasible[col].nunique() > 1:
        med = feasible.groupby(col)[list(METRICS)].median()
        moved = [f"{name} {fmt.format(med[m].min())} at {value(med[m].idxmin())}, {fmt.format(med[m].max())} at "
                 f"{value(med[m].idxmax())} ({med[m].max() / med[m].min():.2f}x)"
                 for m, (name, fmt) in METRICS.items() if med[m].max() / med[m].min() >= 1.01]
        if moved:
            lines.append(f"- {col} (medians): " + "; ".join(moved) + ".")
        else:   # a knob that moves nothing is named once, never as "x -> x (1.00x)"
            flat.append(col)
if flat:
    lines.append(f"- no effect (< 1 %) on median tokens/s, energy or area in the swept range: {', '.join(flat)}.")
skip = [c for c in hw if c.endswith("skip_weight_fetch")]
if skip:
    for b, g in feasible.groupby("batch"):
        on, off = g[g[skip[0]] == True].tokens_per_s.median(), g[g[skip[0]] == False].tokens_per_s.median()  # noqa: E712
        lines.append(f"- zero skipping at batch {b}: {on / off:.2f}x median decode tokens/s.")
if len(fronts[0]):
    best = fronts[0].iloc[-1]
    lines.append(f"- fastest point on the tokens/s-energy front: {knob_label(best)} at {best.tokens_per_s:.0f} "
                 f"tok/s, {best.mj_per_token:.3g} mJ/token, {best[AREA]:.1f} mm².")
for b, g in (base[base.feasible].groupby("batch") if len(base) else []):
    top = g.loc[g.tokens_per_s.idxmax()]
    ours = feasible[feasible.batch == b]
    if len(ours):
        fast = ours.loc[ours.tokens_per_s.idxmax()]
        lines.append(f"- batch {b}: the strongest baseline is {top.datapath} ({top.tokens_per_s:.0f} tok/s, "
                     f"{top[AREA]:.1f} mm²); the fastest a4.8 design ({knob_label(fast)}) reaches "
                     f"{fast.tokens_per_s / top.tokens_per_s:.2f}x its tokens/s at {fast[AREA] / top[AREA]:.2f}x its "
                     f"area; {int((ours.tokens_per_s > top.tokens_per_s).sum())} of {len(ours)} designs are faster.")
print("\n".join(lines))
