"""Scheduler, parallelism and latency-target settings of a deployment (sections of a serve spec)."""
from __future__ import annotations

from dataclasses import dataclass, fields

from contract.config import check_fields, check_number, quote

POLICIES = ("prefill-first", "chunked")
PREEMPTIONS = ("recompute", "swap")


def _from_dict(cls, raw: object, where: str):
    d = check_fields(raw, [f.name for f in fields(cls)], where)
    return cls(**d)


@dataclass(frozen=True, kw_only=True)
class SchedulerConfig:
    """Continuous batching: ``prefill-first`` (vLLM: a waiting prompt runs alone before decodes resume)
    or ``chunked`` (Sarathi-Serve: decodes first, then prefill chunks up to ``token_budget`` per iteration).

    ``host_overhead_s + host_overhead_s_per_seq x (sequences in the iteration)``: seconds of host work per
    iteration that the chips wait for -- a runtime that schedules, prepares inputs, samples and detokenizes
    between steps without overlapping them with the next step, much of it per sequence.  It does not shrink with
    the tensor-parallel degree (one host process drives every shard), which is what bounds the gain from more
    chips.  0 for a runtime that hides it (asynchronous output processing, multi-step scheduling, a compiled
    serving engine)."""
    policy: str = "prefill-first"
    max_batch: int = 256               # most requests running at once (vLLM max_num_seqs)
    token_budget: int = 2048           # most tokens per iteration (prefill-first: prompt tokens per prefill)
    block_tokens: int = 16             # paged-KV block
    memory_fraction: float = 0.9       # of a chip's memory the server may use (vLLM gpu_memory_utilization)
    kv_blocks: int = 0                 # > 0: this many KV blocks per instance instead of from memory
    preemption: str = "recompute"      # PREEMPTIONS
    swap_gbps: float = 25.0            # host link for swapped KV (GB/s per chip)
    host_overhead_s: float = 0.0       # host time per iteration the chips wait for (see below)
    host_overhead_s_per_seq: float = 0.0   # and per sequence (request) in the iteration

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"scheduler.policy: unknown policy {quote(self.policy)}; known: {POLICIES}")
        if self.preemption not in PREEMPTIONS:
            raise ValueError(f"scheduler.preemption: unknown preemption {quote(self.preemption)}; "
                             f"known: {PREEMPTIONS}")
        check_number(self.max_batch, "scheduler.max_batch", integer=True, lo=1, hi=65536)
        check_number(self.token_budget, "scheduler.token_budget", integer=True, lo=1, hi=1 << 20)
        check_number(self.block_tokens, "scheduler.block_tokens", integer=True, lo=1, hi=4096)
        check_number(self.memory_fraction, "scheduler.memory_fraction", lo=0, lo_open=True, hi=1)
        check_number(self.kv_blocks, "scheduler.kv_blocks", integer=True, lo=0, hi=1 << 40)
        check_number(self.swap_gbps, "scheduler.swap_gbps", lo=0, lo_open=True, hi=1e6, unit="GB/s")
        check_number(self.host_overhead_s, "scheduler.host_overhead_s", lo=0, hi=10, unit="s")
        check_number(self.host_overhead_s_per_seq, "scheduler.host_overhead_s_per_seq", lo=0, hi=1, unit="s")

    @classmethod
    def from_dict(cls, raw: object, where: str = "scheduler") -> "SchedulerConfig":
        return _from_dict(cls, raw, where)


@dataclass(frozen=True, kw_only=True)
class ParallelConfig:
    """``tp`` x ``pp`` chips per instance; ``replicas`` colocated instances, or disaggregated
    ``prefill_instances`` + ``decode_instances`` (both > 0) with the KV moved over the interconnect."""
    tp: int = 1
    pp: int = 1
    micro_batches: int = 1             # pipeline micro-batches per iteration
    replicas: int = 1
    prefill_instances: int = 0
    decode_instances: int = 0

    def __post_init__(self) -> None:
        check_number(self.tp, "parallel.tp", integer=True, lo=1, hi=1024)
        check_number(self.pp, "parallel.pp", integer=True, lo=1, hi=1024)
        check_number(self.micro_batches, "parallel.micro_batches", integer=True, lo=1, hi=1024)
        check_number(self.replicas, "parallel.replicas", integer=True, lo=1, hi=4096)
        check_number(self.prefill_instances, "parallel.prefill_instances", integer=True, lo=0, hi=4096)
        check_number(self.decode_instances, "parallel.decode_instances", integer=True, lo=0, hi=4096)
        if (self.prefill_instances > 0) != (self.decode_instances > 0):
            raise ValueError("parallel: disaggregated serving needs both prefill_instances and decode_instances "
                             f"> 0 (got {self.prefill_instances} and {self.decode_instances})")

    @property
    def disaggregated(self) -> bool:
        return self.prefill_instances > 0

    @property
    def instances(self) -> int:
        return self.prefill_instances + self.decode_instances if self.disaggregated else self.replicas

    @property
    def chips(self) -> int:
        return self.instances * self.tp * self.pp

    @classmethod
    def from_dict(cls, raw: object, where: str = "parallel") -> "ParallelConfig":
        return _from_dict(cls, raw, where)


@dataclass(frozen=True, kw_only=True)
class Targets:
    """Latency targets: a request meets them when its TTFT and its TPOT are both at most these."""
    ttft_s: float = 2.0
    tpot_s: float = 0.1
    attainment: float = 0.9            # share of requests that must meet both (the rate search)

    def __post_init__(self) -> None:
        check_number(self.ttft_s, "targets.ttft_s", lo=0, lo_open=True, hi=1e6, unit="s")
        check_number(self.tpot_s, "targets.tpot_s", lo=0, lo_open=True, hi=1e6, unit="s")
        check_number(self.attainment, "targets.attainment", lo=0, lo_open=True, hi=1)

    @classmethod
    def from_dict(cls, raw: object, where: str = "targets") -> "Targets":
        return _from_dict(cls, raw, where)
