"""sim.serving: many requests under latency targets on one or many chips.

    from sim.serving import serve, WorkloadConfig, LinearCostModel, ChipFacts
    res = serve(WorkloadConfig(requests=1000, rate=5), cost_model)   # res.requests, res.iterations, res.summary

``workload`` (arrivals and lengths, published trace statistics), ``config`` (scheduler, parallelism,
targets), ``costmodel`` (the per-iteration cost interface, a closed form and a fitted grid),
``interconnect`` (links, topologies, all-reduce algorithms), ``engine`` (continuous batching over
paged KV, preemption, disaggregated pools), ``metrics``, ``timeline`` (Perfetto), ``spec`` (the
serve-spec YAML).  It imports nothing of ``model``: the application builds a cost model from op
traces and ``sim.simulate``.
"""
from .config import POLICIES, PREEMPTIONS, ParallelConfig, SchedulerConfig, Targets
from .costmodel import ChipFacts, GridCostModel, IterationCostModel, LinearCostModel, attention_pairs
from .interconnect import (
    ALGORITHMS,
    TOPOLOGIES,
    InterconnectConfig,
    allreduce_joules,
    allreduce_seconds,
    load_interconnect,
)
from .metrics import occupancy_over_time, summarize
from .serve import ServeResult, search_rate, serve
from .timeline import chrome_trace, write_timeline
from .workload import ARRIVALS, LENGTHS, WorkloadConfig, anchors, check_requests, generate, load_requests

__all__ = ["ALGORITHMS", "ARRIVALS", "LENGTHS", "POLICIES", "PREEMPTIONS", "TOPOLOGIES", "ChipFacts",
           "GridCostModel", "InterconnectConfig", "IterationCostModel", "LinearCostModel", "ParallelConfig",
           "SchedulerConfig", "ServeResult", "Targets", "WorkloadConfig", "allreduce_joules", "allreduce_seconds",
           "anchors", "attention_pairs", "check_requests", "chrome_trace", "generate", "load_interconnect",
           "load_requests", "occupancy_over_time", "search_rate", "serve", "summarize", "write_timeline"]
