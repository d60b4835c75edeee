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
# # 05 · Serving: many requests under latency targets
#
# A deployment (model, datapath, accelerator, tensor parallelism, interconnect) serves a stream of
# requests with continuous batching over a paged KV cache (`sim.serving`).  Each scheduler iteration
# costs what the chip simulator says for its exact mix of decode tokens and prefill chunks: a grid of
# op traces simulated by `sim.simulate`, interpolated (`bitsim.experiments.serving.build_cost_model`),
# with the fit's error against direct simulation shown below.  Knobs: the **workload** (arrival
# process, rate, lengths from the Azure 2023 traces), the **scheduler** (vLLM prefill-first or
# Sarathi-Serve chunked prefill, token budget, preemption) and the **targets** (TTFT, TPOT).

# %% tags=["parameters"]
import os

SMALL = os.environ.get("BITSIM_NB_SMALL") == "1"
MODEL = "tiny" if SMALL else "7b"
DATAPATH = "b1.58"
ACCELERATOR = "b1.58"
TP = 1
GRID = (dict(tokens=[1, 4, 16], batches=[1, 4], contexts=[32, 128], chunks=[8, 32]) if SMALL else
        dict(tokens=[1, 16, 128, 1024], batches=[1, 16, 128], contexts=[512, 4096], chunks=[128, 1024]))
WORKLOAD = (dict(requests=200, rate=50.0, lengths="lognormal", prompt_tokens=20, prompt_p99=60, output_tokens=8,
                 output_p99=24, max_prompt=100, max_output=40) if SMALL else
            dict(requests=2000, rate=2.0, arrival="poisson", lengths="conversation", max_prompt=8192,
                 max_output=2048))
SCHEDULERS = {"prefill-first": dict(policy="prefill-first", token_budget=64 if SMALL else 8192),
              "chunked": dict(policy="chunked", token_budget=32 if SMALL else 512)}
TARGETS = dict(ttft_s=0.5, tpot_s=0.05) if SMALL else dict(ttft_s=2.0, tpot_s=0.1)
CACHE = os.environ.get("BITSIM_NB_OUT", "../reports/runs") + f"/serve-cost-{MODEL}-{DATAPATH}-{ACCELERATOR}-tp{TP}.csv"

# %%
import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from bitsim.experiments.serving import GridConfig, build_cost_model, fit_points
from sim.serving import SchedulerConfig, Targets, WorkloadConfig, occupancy_over_time, search_rate, serve

grid = GridConfig(**GRID)
cost = build_cost_model(MODEL, DATAPATH, ACCELERATOR, TP, grid, cache_csv=CACHE)
print(cost.facts)
display(cost.fit_error(fit_points(grid)))

# %% [markdown]
# ## One run per scheduler
# The same requests (seeded) under both schedulers: latency percentiles, goodput, tokens per joule.

# %%
workload = WorkloadConfig(**WORKLOAD)
targets = Targets(**TARGETS)
runs = {k: serve(workload, cost, SchedulerConfig(**v), targets=targets) for k, v in SCHEDULERS.items()}
cols = ["throughput_rps", "output_tokens_per_s", "attainment", "ttft_p50_s", "ttft_p99_s", "tpot_p50_s",
        "tpot_p99_s", "tokens_per_j", "preemptions", "kv_occupancy_max"]
display(pd.concat([r.summary[cols].assign(scheduler=k) for k, r in runs.items()]).set_index("scheduler"))

fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
for name, r in runs.items():
    for ax, m in zip(axes, ("ttft_s", "tpot_s")):
        x = np.sort(r.requests[m].dropna().to_numpy() * 1e3)
        ax.plot(x, np.arange(1, len(x) + 1) / len(x), label=name)
        ax.set_xlabel(f"{m[:-2].upper()} (ms)")
for ax, t in zip(axes, (targets.ttft_s, targets.tpot_s)):
    ax.axvline(t * 1e3, color="k", ls=":", label="target")
    ax.set_ylabel("share of requests")
    ax.legend()
fig.tight_layout()

# %% [markdown]
# ## KV occupancy over time

# %%
fig, ax = plt.subplots(figsize=(8, 3))
for name, r in runs.items():
    occ = occupancy_over_time(r.iterations)
    ax.plot(occ["time_s"], occ["kv_occupancy"], label=name)
ax.set_xlabel("time (s)")
ax.set_ylabel("share of KV blocks held")
ax.legend()
fig.tight_layout()

# %% [markdown]
# ## The highest rate meeting the targets
# Bisection on the request rate: the best rate at which 90 % of the requests meet both targets.

# %%
small = dataclasses.replace(workload, requests=min(workload.requests, 300 if SMALL else 1000))
fig, ax = plt.subplots(figsize=(6, 3.4))
for name, v in SCHEDULERS.items():
    best, tried = search_rate(small, cost, SchedulerConfig(**v), targets=targets, lo=0.1, hi=1000 if SMALL else 50,
                              rel_tol=0.1)
    print(f"{name}: highest rate meeting the targets {best:.3g} req/s")
    ax.plot(tried["throughput_rps"], tried["ttft_p90_s"] * 1e3, "o-", label=f"{name} TTFT p90")
    ax.plot(tried["throughput_rps"], tried["tpot_p90_s"] * 1e3, "s--", label=f"{name} TPOT p90")
ax.set_xlabel("throughput (req/s)")
ax.set_ylabel("latency (ms)")
ax.set_yscale("log")
ax.legend(fontsize=7)
fig.tight_layout()
