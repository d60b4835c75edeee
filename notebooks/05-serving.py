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
# with the fit's error against direct simulation shown below.
#
# The deployment is one of the study's committed serving specs (`reports/specs/serving/`); its direct
# simulations come from that run's cost cache (`reports/serving/<name>/cost_cache.csv`, copied, never
# written), so the defaults run in about a minute.  Knobs: the **workload** (arrival process, rate,
# lengths from the Azure 2023 traces), the **schedulers** compared (vLLM prefill-first or
# Sarathi-Serve chunked prefill, token budget, batch, preemption) and the **targets** (TTFT, TPOT and the
# share of requests that must meet both).

# %% tags=["parameters"]
import os

SMALL = os.environ.get("BITSIM_NB_SMALL") == "1"
SPEC = "../reports/specs/serving/7b-b1.58.yaml"       # any serve spec: model, datapath, chip, parallelism
WORKLOAD = dict(requests=500, rate=2.0, arrival="poisson", cv=1.0, lengths="conversation", max_prompt=8192,
                max_output=2048, seed=0)
SCHEDULERS = {"prefill-first (vLLM)": dict(policy="prefill-first", token_budget=8192, max_batch=128),
              "chunked 512 (Sarathi-Serve)": dict(policy="chunked", token_budget=512, max_batch=128)}
# A scheduler also takes its runtime's host time per iteration, which the chips wait for and which does not
# shrink with more chips: host_overhead_s + host_overhead_s_per_seq x sequences (vLLM v0.5.4 on H100: about
# 1.3 ms + 0.1 ms per sequence, docs/serving.md); 0 here, a runtime that hides it.
TARGETS = dict(ttft_s=5.0, tpot_s=0.1, attainment=0.9)
SEARCH = dict(requests=300, lo=0.1, hi=100.0, rel_tol=0.1)      # the highest-rate search, per scheduler
OUT = os.environ.get("BITSIM_NB_OUT", "../reports/runs")
if SMALL:        # the tiny model on its own small grid: a few seconds
    SPEC = None
    WORKLOAD = dict(requests=200, rate=50.0, lengths="lognormal", prompt_tokens=20, prompt_p99=60,
                    output_tokens=8, output_p99=24, max_prompt=100, max_output=40)
    SCHEDULERS = {"prefill-first (vLLM)": dict(policy="prefill-first", token_budget=64, max_batch=16),
                  "chunked 32 (Sarathi-Serve)": dict(policy="chunked", token_budget=32, max_batch=16)}
    TARGETS = dict(ttft_s=0.5, tpot_s=0.05, attainment=0.9)
    SEARCH = dict(requests=100, lo=0.1, hi=1000.0, rel_tol=0.2)

# %%
import dataclasses
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from bitsim.experiments.serving import build_cost_model, fit_points, load_spec, spec_from_dict
from sim.serving import SchedulerConfig, Targets, WorkloadConfig, occupancy_over_time, search_rate, serve

if SPEC:
    spec = load_spec(SPEC)
    committed = Path(SPEC).resolve().parents[2] / "serving" / spec.name / "cost_cache.csv"
else:
    spec = spec_from_dict(dict(name="tiny", model="tiny", datapath="b1.58", accelerator="b1.58",
                               grid=dict(tokens=[1, 4, 16], batches=[1, 4], contexts=[32, 128], chunks=[8, 32])))
    committed = None
cache = Path(OUT) / f"serve-cost-{spec.name}.csv"
cache.parent.mkdir(parents=True, exist_ok=True)
if committed is not None and committed.exists() and not cache.exists():
    shutil.copy(committed, cache)
    if committed.with_suffix(".facts.json").exists():
        shutil.copy(committed.with_suffix(".facts.json"), cache.with_suffix(".facts.json"))
cost = build_cost_model(spec.model, spec.datapath, spec.accelerator, spec.parallel.tp, spec.grid, spec.profile,
                        spec.seed, cache, kv_bits=spec.kv_bits, accelerator_overrides=spec.accelerator_overrides)
print(spec.name, cost.facts)
display(cost.fit_error(fit_points(spec.grid, cost)))

# %% [markdown]
# ## One run per scheduler
# The same requests (seeded) under each scheduler: latency percentiles, goodput, tokens per joule.

# %%
workload = WorkloadConfig(**WORKLOAD)
targets = Targets(**TARGETS)
runs = {k: serve(workload, cost, SchedulerConfig(**v), spec.parallel, spec.interconnect, targets)
        for k, v in SCHEDULERS.items()}
cols = ["throughput_rps", "goodput_rps", "attainment", "ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s",
        "tokens_per_j", "preemptions", "kv_occupancy_max"]
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
    ax.legend(fontsize=7)
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
ax.legend(fontsize=7)
fig.tight_layout()

# %% [markdown]
# ## The highest rate meeting the targets
# Bisection on the request rate: the highest rate at which `TARGETS["attainment"]` of the requests meet
# both targets, per scheduler.

# %%
small = dataclasses.replace(workload, requests=min(workload.requests, SEARCH["requests"]))
fig, ax = plt.subplots(figsize=(6, 3.4))
for name, v in SCHEDULERS.items():
    best, tried = search_rate(small, cost, SchedulerConfig(**v), spec.parallel, spec.interconnect, targets,
                              lo=SEARCH["lo"], hi=SEARCH["hi"], rel_tol=SEARCH["rel_tol"])
    print(f"{name}: highest rate meeting the targets {best:.3g} req/s")
    ax.plot(tried["throughput_rps"], tried["ttft_p90_s"] * 1e3, "o-", label=f"{name} TTFT p90")
    ax.plot(tried["throughput_rps"], tried["tpot_p90_s"] * 1e3, "s--", label=f"{name} TPOT p90")
ax.set_xlabel("throughput (req/s)")
ax.set_ylabel("latency (ms)")
ax.set_yscale("log")
ax.legend(fontsize=7)
fig.tight_layout()
