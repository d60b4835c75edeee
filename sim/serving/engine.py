"""The serving engine: continuous batching over paged KV on one or more instances, in a plain event loop.

A plain ``heapq`` event loop (arrivals, iteration ends, KV-transfer ends) rather than simpy: the
engine runs tens of thousands of iterations, each a handful of list operations, and a simpy process
switch per iteration would cost more than the iteration's own bookkeeping.

Token accounting of one request: a prefill of ``need`` tokens (the prompt; prompt + generated
tokens after a recompute preemption) fills the KV cache with ``need`` tokens and emits one token;
each decode iteration appends the last emitted token to the cache (attending to ``kv + 1`` keys)
and emits the next.  A request is finished when it has emitted ``output_tokens``.  KV blocks hold
``block_tokens`` tokens each; a request holds ``ceil(kv / block_tokens)`` blocks.
"""
from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .config import ParallelConfig, SchedulerConfig
from .costmodel import IterationCostModel
from .interconnect import InterconnectConfig, allreduce_joules, allreduce_seconds, transfer_seconds

ARRIVE, DONE, KV_READY = 0, 1, 2
ITERATION_COLUMNS = ("instance", "start_s", "end_s", "decode_requests", "decode_context", "prefill_requests",
                     "prefill_tokens", "kv_blocks_used", "kv_blocks_total", "preemptions", "running", "waiting",
                     "compute_s", "comm_s", "swap_s", "host_s", "energy_j")


@dataclass
class Instance:
    """One tp x pp group of chips serving requests; ``role`` is mixed, prefill or decode."""
    idx: int
    role: str
    blocks_total: int
    free: int = 0
    waiting: deque = field(default_factory=deque)     # need a prefill (new, or recompute after preemption)
    incoming: deque = field(default_factory=deque)    # KV arrived from a prefill instance
    swapped: deque = field(default_factory=deque)
    running: list = field(default_factory=list)       # hold KV: prefilling or decoding, in admission order
    busy: bool = False
    plan: tuple = ()

    def __post_init__(self) -> None:
        self.free = self.blocks_total

    @property
    def load(self) -> int:
        return len(self.waiting) + len(self.incoming) + len(self.swapped) + len(self.running)


class Engine:
    """Runs a request table through instances; :meth:`run` returns (requests, iterations) tables; ``itl`` holds
    every inter-token gap after the run."""

    def __init__(self, requests: pd.DataFrame, cost: IterationCostModel, scheduler: SchedulerConfig,
                 parallel: ParallelConfig, interconnect: InterconnectConfig | None) -> None:
        if parallel.tp != cost.facts.tp:
            raise ValueError(f"parallel.tp = {parallel.tp} but the cost model is for tp = {cost.facts.tp}")
        if (parallel.tp > 1 or parallel.pp > 1 or parallel.disaggregated) and interconnect is None:
            raise ValueError("interconnect: tp > 1, pp > 1 or disaggregated serving needs an interconnect")
        self.cost, self.sch, self.par, self.ic = cost, scheduler, parallel, interconnect
        f = cost.facts
        self.kv_token_bytes = f.kv_bytes_per_token / parallel.pp          # per chip
        self.block_bytes = self.kv_token_bytes * scheduler.block_tokens
        self.blocks = scheduler.kv_blocks or self._blocks_from_memory()
        self.wire_token_bytes = f.hidden * f.act_bytes
        self.arrival = requests["arrival_s"].to_numpy(dtype=float).tolist()
        self.prompt = requests["prompt_tokens"].to_numpy(dtype=np.int64).tolist()
        self.output = requests["output_tokens"].to_numpy(dtype=np.int64).tolist()
        n = len(self.arrival)
        self.need, self.done, self.kv, self.gen = list(self.prompt), [0] * n, [0] * n, [0] * n
        self.held = [0] * n
        self.first = [math.nan] * n
        self.last = [math.nan] * n          # time of each request's latest output token
        self.itl: list[float] = []          # every gap between two consecutive output tokens of a request
        self.finish = [math.nan] * n
        self.preempt = [0] * n
        self.where = [-1] * n
        self.rejected = [False] * n
        roles = (["prefill"] * parallel.prefill_instances + ["decode"] * parallel.decode_instances
                 if parallel.disaggregated else ["mixed"] * parallel.replicas)
        self.inst = [Instance(i, r, self.blocks) for i, r in enumerate(roles)]
        self.events: list = []
        self.seq = 0
        self.it: list[tuple] = []
        self._comm_memo: dict[int, tuple[float, float]] = {}

    def _blocks_from_memory(self) -> int:
        f, p = self.cost.facts, self.par
        weights = f.weight_bytes / p.pp
        usable = f.capacity_bytes * self.sch.memory_fraction - weights
        blocks = int(usable // self.block_bytes) if usable > 0 else 0
        if blocks < 1:
            raise ValueError(f"the model does not fit: {weights / 1e9:.2f} GB of weights per chip leave "
                             f"{max(usable, 0) / 1e9:.2f} GB of {f.capacity_bytes / 1e9:.2f} GB x "
                             f"memory_fraction {self.sch.memory_fraction} for the KV cache, less than one "
                             f"{self.sch.block_tokens}-token block ({self.block_bytes / 1e6:.3f} MB); "
                             "raise parallel.tp or parallel.pp")
        return blocks

    # ------------------------------------------------------------------ events
    def _push(self, t: float, kind: int, a: int) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, kind, a))

    def run(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        for r, t in enumerate(self.arrival):
            self._push(t, ARRIVE, r)
        pending: set[int] = set()       # instances to schedule once every event of this instant is in
        while self.events:
            t, _, kind, a = heapq.heappop(self.events)
            if kind == ARRIVE:
                pending.add(self._dispatch(a, "prefill" if self.par.disaggregated else "mixed"))
            elif kind == DONE:
                self._finish_iteration(self.inst[a], t)
                pending.add(a)
            else:
                pending.add(self._dispatch(a, "decode"))
            if not self.events or self.events[0][0] > t:
                for i in sorted(pending):
                    self._kick(self.inst[i], t)
                pending.clear()
        return self._request_table(), pd.DataFrame(self.it, columns=list(ITERATION_COLUMNS))

    def _dispatch(self, r: int, role: str) -> int:
        """Send ``r`` to the least-loaded instance of ``role``; its index."""
        inst = min((i for i in self.inst if i.role == role), key=lambda i: i.load)
        self.where[r] = inst.idx
        (inst.incoming if role == "decode" else inst.waiting).append(r)
        return inst.idx

    def _kick(self, inst: Instance, t: float) -> None:
        if inst.busy:
            return
        plan = self._form(inst)
        if plan is None:
            return
        dt = self._time(inst, plan, t)
        inst.busy, inst.plan = True, plan
        self._push(t + dt, DONE, inst.idx)

    # ------------------------------------------------------------------ blocks and preemption
    def _blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.sch.block_tokens)

    def _grow(self, inst: Instance, r: int, tokens: int) -> bool:
        """Hold enough blocks for ``tokens`` of KV of ``r``; False when the instance has too few free."""
        extra = self._blocks_for(tokens) - self.held[r]
        if extra <= 0:
            return True
        if extra > inst.free:
            return False
        inst.free -= extra
        self.held[r] += extra
        return True

    def _preempt(self, inst: Instance, victim: int, swap: list) -> None:
        inst.running.remove(victim)
        self.preempt[victim] += 1
        inst.free += self.held[victim]
        if self.sch.preemption == "swap" and self.done[victim] == self.need[victim]:
            swap.append(self.held[victim])
            inst.swapped.appendleft(victim)
        else:
            self.held[victim] = 0
            self.kv[victim] = 0
            self.done[victim] = 0
            self.need[victim] = self.prompt[victim] + self.gen[victim]
            inst.waiting.appendleft(victim)

    # ------------------------------------------------------------------ forming an iteration
    def _admit_incoming(self, inst: Instance, swap: list) -> None:
        """KV already made elsewhere (swapped out, or sent by a prefill instance): admit while blocks allow
        (swapped-out requests first, as vLLM)."""
        for queue, swapped in ((inst.swapped, True), (inst.incoming, False)):
            while queue and len(inst.running) < self.sch.max_batch:
                r = queue[0]
                nb = self._blocks_for(self.kv[r] + 1)       # room for its next token too: no thrashing
                if nb > inst.free:
                    break
                queue.popleft()
                inst.free -= nb
                self.held[r] = nb
                if self.done[r] < self.need[r]:         # arrived from prefill: the prefill is complete
                    self.done[r] = self.need[r]
                inst.running.append(r)
                if swapped:
                    swap.append(self._blocks_for(self.kv[r]))     # the blocks holding data come back

    def _admit_prefills(self, inst: Instance, budget: int, chunked: bool) -> list:
        """New prefills from ``waiting`` (FCFS) within the token budget, the batch and the free blocks."""
        chunks = []
        while inst.waiting and len(inst.running) < self.sch.max_batch and budget > 0:
            r = inst.waiting[0]
            if self._blocks_for(self.need[r]) > inst.blocks_total:
                inst.waiting.popleft()
                self.rejected[r] = True
                continue
            n = min(self.need[r], budget) if chunked else self.need[r]
            if not chunked and chunks and n > budget:
                break
            if not self._grow(inst, r, n):
                break
            inst.waiting.popleft()
            inst.running.append(r)
            chunks.append((r, n))
            budget -= n
        return chunks

    def _decodes(self, inst: Instance, swap: list) -> tuple[list, int]:
        """Every running request past its prefill decodes one token; a missing block is made by preempting
        the latest admitted request (possibly the one that needs it)."""
        dec, preempted, i = [], 0, 0
        while i < len(inst.running):
            r = inst.running[i]
            if self.done[r] < self.need[r]:
                i += 1
                continue
            alive = True
            while alive and not self._grow(inst, r, self.kv[r] + 1):
                victim = inst.running[-1]
                self._preempt(inst, victim, swap)
                preempted += 1
                alive = victim != r
            if alive:
                dec.append(r)
                i += 1
        return dec, preempted

    def _form(self, inst: Instance) -> tuple | None:
        swap: list = []
        self._admit_incoming(inst, swap)
        sch = self.sch
        preempted = 0
        if inst.role == "prefill" or sch.policy == "prefill-first":
            chunks = [] if inst.swapped else self._admit_prefills(inst, sch.token_budget, chunked=False)
            if chunks or inst.role == "prefill":
                return (([], chunks, swap, preempted) if chunks or swap else None)
            dec, preempted = self._decodes(inst, swap)
            plan = (dec, [], swap, preempted)
        else:
            dec, preempted = self._decodes(inst, swap)
            budget = sch.token_budget - len(dec)
            chunks = []
            for r in inst.running:
                if budget <= 0:
                    break
                if self.done[r] < self.need[r]:
                    n = min(self.need[r] - self.done[r], budget)
                    if self._grow(inst, r, self.done[r] + n):
                        chunks.append((r, n))
                        budget -= n
            if not inst.swapped:
                chunks += self._admit_prefills(inst, budget, chunked=True)
            plan = (dec, chunks, swap, preempted)
            if not dec and not chunks and inst.running and not swap:
                self._preempt(inst, inst.running[-1], swap)      # prefills stuck on blocks: free the latest
                return self._form(inst)
        if plan[0] or plan[1] or plan[2]:
            return plan
        return self._form(inst) if preempted and inst.waiting else None     # the evicted may fit (or be rejected)

    # ------------------------------------------------------------------ cost of an iteration
    def _time(self, inst: Instance, plan: tuple, t: float) -> float:
        dec, chunks, swap, preempted = plan
        ctx = sum(self.kv[r] + 1 for r in dec)
        ch = [(n, self.done[r] + n) for r, n in chunks]
        m = min(self.par.micro_batches, max(len(dec) + len(ch), 1))
        groups = [(dec[k::m], ch[k::m]) for k in range(m)] if m > 1 else [(dec, ch)]
        times, energy, comm = [], 0.0, 0.0
        for gd, gc in groups:
            s, j = self.cost.cost(len(gd), ctx if m == 1 else sum(self.kv[r] + 1 for r in gd), gc)
            c_s, c_j = self._comm(len(gd) + sum(n for n, _ in gc))
            times.append(s + c_s)
            energy += j + c_j
            comm += c_s
        S = self.par.pp
        if S > 1:
            hand = transfer_seconds(self.wire_token_bytes * (len(dec) + sum(n for n, _ in ch)) / m, self.ic)
            total = sum(times) / S + (S - 1) * (max(times) / S + hand)
        else:
            total = sum(times)
        swap_s = sum(swap) * self.block_bytes / (self.sch.swap_gbps * 1e9)
        host_s = self.sch.host_overhead_s + self.sch.host_overhead_s_per_seq * (len(dec) + len(ch))
        total += swap_s + host_s
        self._record(inst, t, total, dec, ctx, ch, preempted, comm, swap_s, host_s, energy)
        return total

    def _record(self, inst: Instance, t: float, total: float, dec: list, ctx: int, ch: list, preempted: int,
                comm: float, swap_s: float, host_s: float, energy: float) -> None:
        self.it.append((inst.idx, t, t + total, len(dec), ctx, len(ch), sum(n for n, _ in ch),
                        inst.blocks_total - inst.free, inst.blocks_total, preempted, len(inst.running),
                        len(inst.waiting), total - comm - swap_s - host_s, comm, swap_s, host_s, energy))

    def _comm(self, tokens: int) -> tuple[float, float]:
        """Tensor-parallel all-reduces of one iteration: two per layer of ``tokens`` x hidden activations."""
        tp = self.par.tp
        if tp <= 1 or tokens == 0:
            return 0.0, 0.0
        hit = self._comm_memo.get(tokens)
        if hit is None:
            nbytes = tokens * self.wire_token_bytes
            count = 2 * self.cost.facts.n_layers
            hit = self._comm_memo[tokens] = (count * allreduce_seconds(nbytes, tp, self.ic),
                                             count * allreduce_joules(nbytes, tp, self.ic))
        return hit

    # ------------------------------------------------------------------ end of an iteration
    def _finish_iteration(self, inst: Instance, t: float) -> None:
        dec, chunks, _, _ = inst.plan
        inst.busy, inst.plan = False, ()
        out = []
        for r in dec:
            self.kv[r] += 1
            self.gen[r] += 1
            out.append(r)
        for r, n in chunks:
            self.done[r] += n
            self.kv[r] = self.done[r]
            if self.done[r] == self.need[r]:
                self.gen[r] += 1
                if math.isnan(self.first[r]):
                    self.first[r] = t
                out.append(r)
        for r in out:
            if not math.isnan(self.last[r]):
                self.itl.append(t - self.last[r])
            self.last[r] = t
            if self.gen[r] >= self.output[r]:
                self.finish[r] = t
                inst.running.remove(r)
                inst.free += self.held[r]
                self.held[r] = 0
            elif inst.role == "prefill" and self.done[r] == self.need[r]:
                inst.running.remove(r)
                inst.free += self.held[r]
                self.held[r] = 0
                self._push(t + transfer_seconds(self.kv[r] * self.kv_token_bytes, self.ic), KV_READY, r)

    def _request_table(self) -> pd.DataFrame:
        arrival = np.asarray(self.arrival)
        first, finish = np.asarray(self.first), np.asarray(self.finish)
        out = np.asarray(self.output, dtype=np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            tpot = np.where(out > 1, (finish - first) / np.maximum(out - 1, 1), 0.0)
        return pd.DataFrame({
            "request": np.arange(len(arrival), dtype=np.int64), "instance": np.asarray(self.where, dtype=np.int64),
            "arrival_s": arrival, "prompt_tokens": np.asarray(self.prompt, dtype=np.int64), "output_tokens": out,
            "first_token_s": first, "finish_s": finish, "ttft_s": first - arrival, "tpot_s": tpot,
            "e2e_s": finish - arrival, "preemptions": np.asarray(self.preempt, dtype=np.int64),
            "rejected": np.asarray(self.rejected, dtype=bool)})
