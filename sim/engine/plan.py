"""Turn each op-trace row into an :class:`OpPlan`: unit, cycles, bytes and energy.

Everything here is per-op arithmetic (tiling, bytes, pJ); *when* things happen
-- contention for the DMA channel, double buffering, overlap between ops -- is
the scheduler's job (:mod:`sim.engine.scheduler`).  :func:`check_trace` is the
gate every trace passes first: schema, then values and their cross-field rules.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd

from contract import (
    ACT_FORMATS,
    MAX_BATCH,
    MAX_CONTEXT,
    MAX_PREFILL_TOKENS,
    OP_CLASSES,
    PHASES,
    WEIGHT_FORMATS,
    validate,
)
from contract.config import quote
from contract.limits import limit

from .. import energy
from ..compute import map_op, promotion_cycles, systolic_cycles, unpack_cycles
from ..compute.precision import ACT_FORMAT_BITS, act_operand, weight_operand
from ..compute.systolic import causal_pairs, causal_systolic_cycles, folds, split_reduction, weight_load_bound
from ..config import AcceleratorConfig, VectorConfig
from ..memory import Traffic, fold_reads, matmul_traffic, vector_traffic

_VECTOR_KINDS = (  # (name prefix, vector.passes key)
    ("rmsnorm", "rmsnorm"), ("layernorm", "rmsnorm"), ("kv_quant", "kv_quant"), ("quant", "quant"),
    ("topk", "topk"), ("softmax", "softmax"), ("glu", "glu"), ("swiglu", "glu"),
    ("relu2glu", "glu"), ("rope", "rope"), ("embedding", "embedding"), ("residual", "residual"),
    ("add", "residual"), ("nzlist", "nzlist"),
)

#: Bits an activation / output element may have (``act_bits``, ``out_bits``; 1 = a TopK mask bit).
SUPPORTED_BITS = (1, 2, 3, 4, 8, 16, 32)
#: Largest storage bits per weight element (``weight_bits``; averages with scales included).
MAX_WEIGHT_BITS = 32.0
#: Trace bounds: rows, and the ``batch`` / ``context`` metadata (the contract's workload bounds).
MAX_TRACE_ROWS = limit("op-trace rows", 100_000, unit="rows", area="simulator", applies_to="sim.simulate, "
                       "bitsim simulate", why="a 70B prefill trace has ~1,000 rows")
#: Per-row shape bounds: a step's tokens (M: batch x prompt), an op's dimensions (N, K) and repeats.
MAX_ROW_TOKENS = limit("op-trace row M", MAX_BATCH * MAX_PREFILL_TOKENS, unit="tokens", area="simulator",
                       applies_to="sim.simulate, bitsim simulate",
                       why="the largest batch times the longest prompt")
MAX_ROW_DIM = limit("op-trace row N or K", 1 << 24, unit="elements", area="simulator",
                    applies_to="sim.simulate, bitsim simulate",
                    why="the largest dimension of a model is its vocabulary (~256 k) or its context (1 M)")
MAX_ROW_COUNT = limit("op-trace row count", 1 << 16, unit="repeats", area="simulator",
                      applies_to="sim.simulate, bitsim simulate",
                      why="an op repeats once per layer and head group: a few thousand at most")
#: Largest value of any M, N, K, count, MAC or byte column: beyond it cycle counts overflow int64.
MAX_TRACE_VALUE = float(1 << 53)


@dataclass(frozen=True, kw_only=True)
class OpPlan:
    """Per-op arithmetic of one trace row (keyword-only: many fields of the same type)."""
    index: int
    unit: str                 # array name or "vector"
    unit_cycles: int          # cycles the unit is busy (systolic / vector, SRAM-bandwidth bound)
    ideal_compute_cycles: float  # compute roofline of the op (no tiling loss)
    traffic: Traffic
    peak_rate: float          # MACs (or element-passes) per cycle of the unit
    work: float               # MACs (or element-passes) done
    energy_compute_pj: float
    energy_sram_pj: float
    energy_offchip_pj: float
    energy_vector_pj: float
    pair: str                 # PE pair used, e.g. "ternaryxint8" ("" for vector ops)
    needs: str = ""           # the op's own operand pair, e.g. "ternaryxfp4" ("" for vector ops)
    # What bounds the unit's busy time: "compute" (MACs streaming, or a software unpack),
    # "weight_load" (folds wait on loading their stationary operand), "sram" (SRAM bandwidth),
    # "vector" (the vector unit).  The simulator labels an op "memory" instead when its DMA
    # time exceeds this (sim.simulate, ``bound`` column).
    limit: str = "compute"
    causal: bool = False      # attention op whose fully masked folds were skipped
    # Zero skipping: the op whose output decides which weight rows survive (-1: the op skips nothing).
    # Its surviving-row list exists only after that op has finished, and building it takes
    # ``index_cycles``; its scattered rows stream at ``read_efficiency`` of the sustained rate, which
    # also carries the op's occupancy share (:func:`read_share`).
    producer: int = -1
    index_cycles: int = 0
    read_efficiency: float = 1.0
    fused: bool = False       # runs inside the previous op's launch: no dispatch cost of its own
    # Further kernels the op's software launches around it (an eager framework's casts, elementwise ops,
    # copies): each is a dependent launch that pays the dispatch (op_overhead_ns) and its first load's
    # latency (offchip.latency_ns) in series with the op.
    glue_launches: int = 0
    # Serial cycles after the launch and the memory latency, before the op's bytes flow: a dense weight
    # stream's own ramp (arrays[].stream_ramp_ns) or a fused split attention op's combine tail
    # (arrays[].split_combine_ns).
    ramp_cycles: int = 0

    @property
    def fallback(self) -> bool:
        """True when the op runs on a wider PE pair because the accelerator has no native one."""
        return bool(self.needs) and self.pair != self.needs


def vector_kind(op: str, where: str) -> str:
    """The ``vector.passes`` key of a vector op, from its name prefix."""
    for prefix, kind in _VECTOR_KINDS:
        if op.startswith(prefix):
            return kind
    raise ValueError(f"{where}: no vector-unit operation for op {quote(op)}; "
                     f"known kinds: {sorted({k for _, k in _VECTOR_KINDS})} (by name prefix)")


def op_reduction_steps(kind: str, vector: VectorConfig, own: float | None = None) -> float:
    """Dependent reduction steps of one vector op: its own count (a trace's ``reduction_steps``) where it states
    one, else its kind's ``vector.reductions``; 0 for a kind that is elementwise."""
    kind_steps = float(vector.reductions.get(kind, 0))
    return kind_steps if own is None or kind_steps <= 0 else float(own)


def row_reduction_cycles(kind: str, M: int, elements: float, accel: AcceleratorConfig,
                         steps: float | None = None) -> float:
    """Cycles of a row reduction (a kind with ``vector.reductions`` steps) on a chip whose lanes are split into
    ``vector.units``: one program per row, each alone on a unit, rows in waves of ``units``:
    ceil(M / units) x (width x passes / row_lanes + reductions x reduction_ns), width = elements / M (rounded
    up to a power of two with ``pow2_rows``); the part of a row beyond ``row_tile`` runs at ``wide_row_lanes``
    (a wider program tile, measured slower per element) when both are set.  A row at M = 1 is
    latency-bound (one unit busy, its dependent reductions in series), not bound by the pooled lanes; with
    ``vector.shared_rows`` > 1 the waves of a longer op overlap their reductions (divided by
    min(shared_rows, waves)), not their element-passes.
    ``steps``: the op's own count of dependent reductions (a search that stops when it finds its answer), else
    the kind's ``vector.reductions``.  0 when the rule is off (units 0) or the kind is elementwise."""
    v = accel.vector
    steps = op_reduction_steps(kind, v, steps)
    if v.units <= 0 or steps <= 0 or M <= 0:
        return 0.0
    per_unit = v.row_lanes or v.lanes / v.units
    width = elements / M
    if v.pow2_rows:
        width = 2 ** math.ceil(math.log2(max(width, 1.0)))
    held = min(width, v.row_tile) if v.row_tile > 0 and v.wide_row_lanes > 0 else width
    row = (held / per_unit + (width - held) / (v.wide_row_lanes or per_unit)) * v.passes[kind]
    waves = math.ceil(M / v.units)
    overlap = max(1.0, min(v.shared_rows, waves))        # rows sharing a unit hide each other's reductions
    row += steps * v.reduction_ns * accel.clock_ghz / overlap
    return waves * row


EXTRA_WRITE = "extra_offchip_write"  # optional trace column: other write traffic an op causes (bytes)
FUSED = "fused"  # optional trace column: the op runs inside the previous op's launch (a replayed GPU kernel)
LAUNCHES = "launches"  # optional trace column: kernel launches the op stands for as a measured program runs it
#: optional trace column: dependent reduction steps of a row-reduction op whose kernel says how many it takes (an
#: exact TopK threshold search that stops early); NaN or absent: the kind's ``vector.reductions``
REDUCTION_STEPS = "reduction_steps"
#: optional trace column: K parts of a split-K GEMM whose last part to finish, elected by a ticket, adds up the
#: parts' partial tiles inside the same launch (a replayed GPU kernel); absent or 1: no such pass
SPLIT_K_PARTS = "split_k_parts"


def plan_ops(trace: pd.DataFrame, accel: AcceleratorConfig) -> list[OpPlan]:
    """Plan every row of a validated op trace (see :func:`check_trace`).

    An optional column ``extra_offchip_write`` adds write traffic that is not
    the op's own output (e.g. dirty cache lines a GPU timing harness leaves
    behind, see sim.validation); it is written back like the op's outputs.
    An optional boolean column ``fused`` marks ops that run inside the previous
    op's launch (replays of fused GPU kernels): they pay no ``op_overhead_ns``.
    An optional integer column ``split_k_parts`` (> 1) marks a split-K GEMM whose
    parts are combined inside its launch: it pays its array's ``split_combine_ns``.
    An optional integer column ``launches`` (default 1) says how many kernel launches the op stands for:
    0 is the same as ``fused``; n > 1 adds n - 1 glue launches (:attr:`OpPlan.glue_launches`).
    """
    with energy.using_costs(accel.cost_table):    # a design's own cost table reaches every energy term
        pj = _ByteEnergy.of(accel)
        cols = {c: trace[c].to_numpy() for c in trace.columns}
        plans = []
        mapping_cache: dict = {}
        for i in range(len(trace)):
            row = {c: v[i] for c, v in cols.items()}
            p = _plan_row(i, row, accel, mapping_cache, pj)
            extra = float(row.get(EXTRA_WRITE, 0.0))
            if extra > 0:
                t = p.traffic
                p = dataclasses.replace(
                    p, traffic=Traffic(offchip_read=t.offchip_read, offchip_write=t.offchip_write + extra,
                                       sram=t.sram),
                    energy_offchip_pj=p.energy_offchip_pj + extra * pj.offchip)
            if bool(row.get(FUSED, False)):
                p = dataclasses.replace(p, fused=True)
            p = _with_launches(p, i, row)
            p = _with_skip(p, i, trace, row, accel, pj)
            p = _with_stream(p, row, accel)
            p = _with_combine_tail(p, row, accel)
            plans.append(dataclasses.replace(p, read_efficiency=p.read_efficiency * read_share(row, p, accel)))
    return plans


def _reduction_steps(row: dict, where: str) -> float | None:
    """The trace's ``reduction_steps`` of a vector op (None where absent or NaN); a negative count is refused."""
    n = row.get(REDUCTION_STEPS)
    if n is None or (isinstance(n, (float, np.floating)) and math.isnan(n)):
        return None
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer, float, np.floating)) or not (
            0.0 <= float(n) < 1e6):
        raise ValueError(f"{where}: reduction_steps must be a number in [0, 1e6), got {n!r}")
    return float(n)


def _with_launches(p: OpPlan, i: int, row: dict) -> OpPlan:
    """The trace's ``launches`` of an op: 0 runs it inside the previous launch, n > 1 adds n - 1 glue launches."""
    if LAUNCHES not in row:
        return p
    n = row[LAUNCHES]
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer, float, np.floating)) or not (
            float(n) >= 0 and float(n) == int(n)):
        raise ValueError(f"trace row {i} (op {quote(row.get('op', '?'))}): launches must be a whole number >= 0, "
                         f"got {n!r}")
    n = int(n)
    if n == 0:
        return dataclasses.replace(p, fused=True)
    return dataclasses.replace(p, glue_launches=n - 1)


@dataclass(frozen=True)
class _ByteEnergy:
    """Energy (pJ) per byte of a design: SRAM (bank access + the on-chip network to the array) and off chip."""
    sram: float
    offchip: float

    @classmethod
    def of(cls, accel: AcceleratorConfig) -> "_ByteEnergy":
        # Every SRAM byte also crosses the on-chip network (sim.energy.chip: 2/3 of the die side at the
        # wire rate), so a larger die -- a resident weight store above all -- pays more per byte.
        noc = energy.chip_costs(accel).noc_pj_per_bit
        return cls(sram=(accel.sram.pj_per_bit + noc) * 8, offchip=accel.offchip.pj_per_bit * 8)


def producer_of(trace: pd.DataFrame, i: int) -> int:
    """Index of the op that produces the activations of GEMM row ``i`` (-1: none in the trace).

    Walking back in trace order, GEMMs reading the same input (same ``K``, ``act_format`` and layer,
    e.g. ``q/k/v_proj`` or ``gate/up_proj``) are siblings, not producers; the first other op is it.
    """
    K, fmt, layer = trace["K"].iat[i], trace["act_format"].iat[i], trace["layer"].iat[i]
    for j in range(i - 1, -1, -1):
        sibling = (trace["op_class"].iat[j] == "gemm" and trace["K"].iat[j] == K
                   and trace["act_format"].iat[j] == fmt and trace["layer"].iat[j] == layer)
        if not sibling:
            return j
    return -1


def scatter_efficiency(row_bytes: float, accel: AcceleratorConfig) -> float:
    """Fraction of the sustained off-chip rate a gather of surviving weight rows reaches.

    The index list names rows, and each listed row is one access (a gather does not merge
    neighbours): its ``row_bytes`` are rounded up to whole bursts, and it exposes ``row_miss_ns``
    of bus time per page it spans (at least one), so
    efficiency = row_bytes / (bursts x burst_bytes + pages x row_miss_ns x sustained bytes per ns).
    """
    o = accel.offchip
    bursts = math.ceil(row_bytes / o.burst_bytes - 1e-9) * o.burst_bytes
    pages = max(1, math.ceil(row_bytes / o.page_bytes - 1e-9))
    return row_bytes / (bursts + pages * o.row_miss_ns * o.sustained_gbps)


def _row_bytes(r: dict) -> float:
    """Bytes of one weight row (one of the K reduction rows) of a GEMM row of the trace."""
    row = float(r["weight_bytes"]) / (int(r["K"]) * int(r["count"]))
    return row if row > 0 else int(r["N"]) / 8


def index_cycles(K: int, accel: AcceleratorConfig) -> int:
    """Cycles from a skipping op's producer finishing to its surviving-row list being ready: the fixed
    ``sparsity.index_latency_ns`` plus one compaction pass over the ``K`` activations on the vector unit."""
    return math.ceil(accel.sparsity.index_latency_ns * accel.clock_ghz) + math.ceil(K / accel.vector.lanes)


def fetches_survivors(r: dict, accel: AcceleratorConfig) -> bool:
    """True when a GEMM reads only its surviving weight rows: the chip skips fetches, the op has zero rows to
    skip, and the gather finishes before a stream of every row would (``sparsity.stream_when_cheaper``; off:
    always gather).  Resident weights are read from the on-chip store, where a skipped row costs nothing.

    The loader's comparison counts what a gather costs beyond its bus time: it cannot start before its
    row list exists (``index_cycles``) and it breaks the stream, so its first request waits the memory
    latency, while a stream needs neither.  Bus time alone would let a costlier gather (a higher
    ``row_miss_ns``) switch an op to streaming and so speed the step up, which no real cost can do.
    gather = (1 - row_skip) x S / efficiency + index + latency  <  S = stream cycles of every row."""
    skip = float(r["row_skip"]) if r["op_class"] == "gemm" else 0.0
    if skip <= 0 or not accel.sparsity.skip_weight_fetch:
        return False
    if accel.weight_residency == "sram" or not accel.sparsity.stream_when_cheaper:
        return True
    stream = float(r["weight_bytes"]) / accel.offchip_bytes_per_cycle
    fixed = index_cycles(int(r["K"]), accel) + math.ceil(accel.offchip.latency_ns * accel.clock_ghz)
    return (1.0 - skip) * stream / scatter_efficiency(_row_bytes(r), accel) + fixed < stream


def read_share(r: dict, p: OpPlan, accel: AcceleratorConfig) -> float:
    """Fraction of the sustained off-chip rate an op's reads reach with ``occupancy_limited_reads``: its work
    units over the copies that run it (units / copies when fewer, else 1).  An attention op's units are its
    folds after the split rule (sim.compute.systolic.split_reduction): one per head and context span, as a
    decode-attention grid; a row reduction's are its rows over ``vector.units``.  A GEMM is never limited:
    a fold of a one-row array is 128 output columns, not a kernel's program (a GEMV launches N / 8 to N / 16
    programs, hundreds), and at M >= 2048 its tensor-core tiles outnumber the copies."""
    if not accel.occupancy_limited_reads or r["op_class"] == "gemm":
        return 1.0
    M, N, K, count = int(r["M"]), int(r["N"]), int(r["K"]), int(r["count"])
    if p.unit == "vector":
        kind = vector_kind(str(r["op"]), "occupancy")
        if accel.vector.units <= 0 or accel.vector.reductions.get(kind, 0) <= 0:
            return 1.0
        return min(1.0, max(M, 1) / accel.vector.units)
    array = next(a for a in accel.arrays if a.name == p.unit)
    k_part, instances = split_reduction(M, N, K, array, count)
    units = folds(M, N, k_part, array.rows, array.cols, array.dataflow, instances)
    return min(1.0, units / array.count)


def _with_skip(p: OpPlan, i: int, trace: pd.DataFrame, r: dict, accel: AcceleratorConfig,
               pj: _ByteEnergy) -> OpPlan:
    """Attach the zero-skipping dependence of a GEMM that fetches only its surviving weight rows."""
    if not fetches_survivors(r, accel):
        return p
    skip = float(r["row_skip"])
    K = int(r["K"])
    # The compaction pass is one vector-unit pass over the K activations; the surviving rows' indices are
    # written to the index buffer and read back once (SRAM).  Their energy is the op's.
    index_pj = K * energy.vector_pj_per_element_pass(accel.process_nm)
    list_pj = 2 * K * (1.0 - skip) * energy.index_bits(K) / 8 * pj.sram * int(r["count"])
    p = dataclasses.replace(p, energy_vector_pj=p.energy_vector_pj + index_pj,
                            energy_sram_pj=p.energy_sram_pj + list_pj)
    if accel.weight_residency == "sram":  # rows come from the on-chip store as the array reaches them: no gather
        return p
    index = index_cycles(K, accel)
    eff = scatter_efficiency(_row_bytes(r), accel)
    return dataclasses.replace(p, producer=producer_of(trace, i), index_cycles=index, read_efficiency=eff)


def _with_stream(p: OpPlan, r: dict, accel: AcceleratorConfig) -> OpPlan:
    """A dense weight stream of a GEMM-class op on an array with a kernel ramp or a stream efficiency for its
    weight operand (``arrays[].stream_ramp_ns`` / ``stream_efficiency``): the ramp runs before the stream,
    which flows at that fraction of the sustained rate.  The ramp is part of the stream: where the array's time
    exceeds the stream's, the ramp hides under that slack, so the op takes max(array time, ramp + stream) and
    its time never falls as its MACs grow.  An op that gathers its surviving rows (:func:`fetches_survivors`)
    pays its gather costs instead."""
    if r["op_class"] != "gemm" or p.unit == "vector" or fetches_survivors(r, accel):
        return p
    array = next(a for a in accel.arrays if a.name == p.unit)
    if not (array.stream_ramp_ns or array.stream_efficiency):
        return p
    wop = weight_operand(str(r["weight_format"]), "stream")
    efficiency = p.read_efficiency * array.stream_efficiency.get(wop, 1.0)
    slack = p.unit_cycles - p.traffic.offchip_read / (accel.offchip_bytes_per_cycle * efficiency)
    ramp = max(0, math.ceil(array.stream_ramp_ns.get(wop, 0.0) * accel.clock_ghz - max(slack, 0.0)))
    return dataclasses.replace(p, ramp_cycles=ramp, read_efficiency=efficiency)


def _with_combine_tail(p: OpPlan, r: dict, accel: AcceleratorConfig) -> OpPlan:
    """A split attention op (its context cut into parts over idle copies) running inside the previous op's
    launch, or a GEMM whose trace row names its split-K parts (:data:`SPLIT_K_PARTS`), pays its array's
    ``split_combine_ns`` serially: the in-kernel combine of the parts' partials by the last part to finish."""
    if p.unit == "vector":
        return p
    array = next(a for a in accel.arrays if a.name == p.unit)
    if array.split_combine_ns <= 0:
        return p
    if r["op_class"] == "gemm" and float(r.get(SPLIT_K_PARTS, 1) or 1) > 1:
        return dataclasses.replace(p, ramp_cycles=p.ramp_cycles + math.ceil(array.split_combine_ns * accel.clock_ghz))
    if r["op_class"] != "attention" or not p.fused:
        return p
    _, instances = split_reduction(int(r["M"]), int(r["N"]), int(r["K"]), array, int(r["count"]))
    if instances <= int(r["count"]):
        return p
    return dataclasses.replace(p, ramp_cycles=p.ramp_cycles + math.ceil(array.split_combine_ns * accel.clock_ghz))


def _plan_row(i: int, r: dict, accel: AcceleratorConfig, cache: dict, pj: _ByteEnergy) -> OpPlan:
    where = f"trace row {i} (layer {int(r['layer'])}, op {quote(r['op'])})"
    cls = r["op_class"]
    node = accel.process_nm
    sram_pj_b, off_pj_b = pj.sram, pj.offchip
    resident = accel.weight_residency == "sram"   # weights (not the KV cache) read from the on-chip store
    if cls == "vector":
        kind = vector_kind(str(r["op"]), where)
        passes = accel.vector.passes[kind]
        elements = float(r["macs_dense"])
        table = float(r["weight_bytes"])  # embedding rows gathered, norm gains: off chip
        t = vector_traffic(accel, act_in=float(r["act_bytes_in"]), act_out=float(r["act_bytes_out"]),
                           table_read=table, kv_write=float(r["kv_bytes_write"]), resident=resident)
        work = elements * passes
        ideal = work / accel.vector.lanes
        sram_c = t.sram / accel.sram.bandwidth_bytes_per_cycle
        rows = row_reduction_cycles(kind, int(r["M"]), elements, accel, _reduction_steps(r, where))
        busy = max(ideal, sram_c, rows)
        return OpPlan(index=i, unit="vector", unit_cycles=int(math.ceil(busy)),
                      ideal_compute_cycles=ideal, traffic=t, peak_rate=accel.vector.lanes, work=work,
                      energy_compute_pj=0.0, energy_sram_pj=t.sram * sram_pj_b,
                      energy_offchip_pj=(t.offchip_read + t.offchip_write) * off_pj_b,
                      energy_vector_pj=work * energy.vector_pj_per_element_pass(node), pair="",
                      limit="sram" if sram_c > max(ideal, rows) else "vector")

    wfmt, afmt = str(r["weight_format"]), str(r["act_format"])
    if cls == "attention" and wfmt not in accel.kv_formats:
        raise ValueError(f"{where}: KV-cache format {wfmt!r} is not supported by accelerator "
                         f"{accel.name!r} (kv_formats: {list(accel.kv_formats)})")
    M, N, K, count = int(r["M"]), int(r["N"]), int(r["K"]), int(r["count"])
    skip = float(r["row_skip"]) if cls == "gemm" else 0.0
    k_eff = max(1, math.ceil(K * (1.0 - skip))) if accel.sparsity.skip_compute and skip > 0 else K
    wop, aop = weight_operand(wfmt, where), act_operand(afmt, where)
    key = (wfmt, afmt, M, N, k_eff, count)
    if key not in cache:
        cache[key] = map_op(accel, wop, aop, where, (M, N, k_eff, count))
    m = cache[key]
    if cls == "attention":
        wread = float(r["kv_bytes_read"]) or float(r["weight_bytes"])
    else:
        wread = float(r["weight_bytes"]) * (1.0 - skip if fetches_survivors(r, accel) else 1.0)
    macs = float(r["macs_effective"] if accel.sparsity.skip_compute else r["macs_dense"])
    t = matmul_traffic(accel, m.array, M=M, N=N, K=K, count=count, weight_read=wread,
                       act_in=float(r["act_bytes_in"]), act_out=float(r["act_bytes_out"]),
                       kv_write=float(r["kv_bytes_write"]), resident=resident and cls == "gemm")
    rate = m.pe_op.rate
    keys_on = _causal_keys(r, cls, accel, M, N, K, count)
    if keys_on:
        cyc = causal_systolic_cycles(M, N, K, m.array, rate, count, keys_on)
    else:
        cyc = systolic_cycles(M, N, k_eff, m.array, rate, count)
    sram_c = max(t.sram / accel.sram.bandwidth_bytes_per_cycle, _fill_cycles(accel, m.array, M=M, N=N, K=K,
                                                                             weight_read=wread,
                                                                             act_in=float(r["act_bytes_in"])))
    # packed weights / KV codes on a PE pair of another format: software unpack, overlapped
    unpack_rate = m.array.unpack.get(wop) if m.pe_op.weights != wop else None
    # unpack_m_tile describes a weight-only GEMM kernel's per-row decode; a packed KV operand (attention) is
    # decoded once per fold, as a fused attention kernel's tile of queries shares it
    m_tile = m.array.unpack_m_tile.get(wop) if cls == "gemm" else None
    unpack = unpack_cycles(M, N, k_eff, m.array, unpack_rate, count, m_tile) if unpack_rate else 0
    # an exact kernel's fp32 promotions of a narrow accumulator, serial with the MACs and the unpack: a kernel that
    # unpacks its weights in software (ours); a library GEMM on native operands has its accumulation in its rate
    promote = promotion_cycles(M, N, k_eff, m.array, m.pe_op.acts, accel.clock_ghz, count) if unpack_rate else 0
    array_c = max(cyc, unpack) + promote
    peak = m.array.pes * rate
    if sram_c > array_c:
        limit = "sram"
    elif cyc >= unpack and weight_load_bound(M, N, k_eff, m.array, rate):
        limit = "weight_load"
    else:
        limit = "compute"
    return OpPlan(index=i, unit=m.array.name, unit_cycles=int(math.ceil(max(array_c, sram_c))),
                  ideal_compute_cycles=macs / peak, traffic=t, peak_rate=peak, work=macs,
                  energy_compute_pj=macs * m.mac_pj, energy_sram_pj=t.sram * sram_pj_b,
                  energy_offchip_pj=(t.offchip_read + t.offchip_write) * off_pj_b, energy_vector_pj=0.0,
                  pair=f"{m.pe_op.weights}x{m.pe_op.acts}", needs=f"{wop}x{aop}", limit=limit,
                  causal=bool(keys_on))


def _fill_cycles(accel: AcceleratorConfig, array, *, M: int, N: int, K: int, weight_read: float,
                 act_in: float) -> float:
    """Cycles the buffer-filling level (``sram.fill_bandwidth_bytes_per_cycle``; 0: not modelled) takes to feed
    the folds' operand reads (:func:`sim.memory.traffic.fold_reads`) of one op."""
    bw = accel.sram.fill_bandwidth_bytes_per_cycle
    if bw <= 0:
        return 0.0
    return fold_reads(array, M=M, N=N, K=K, weight_read=weight_read, act_in=act_in) / bw


def _causal_keys(r: dict, cls: str, accel: AcceleratorConfig, M: int, N: int, K: int, count: int) -> str:
    """``"N"`` (q.K^T) or ``"K"`` (P.V) when the row is a causal attention op whose masked folds the
    accelerator skips; ``""`` otherwise.

    The trace says an op is causal by its MAC count (model/trace.py): ``macs_dense`` =
    count x head_dim x pairs, pairs = P(C - P) + P(P + 1)/2 for P = M new queries over C keys;
    a full-square op (macs_dense = M N K count) or a decode step (M = 1) is not masked.
    """
    if cls != "attention" or M <= 1 or not accel.sparsity.skip_masked_attention:
        return ""
    op = str(r["op"])
    keys_on = "N" if op.startswith("attn_qk") else "K" if op.startswith("attn_pv") else ""
    if not keys_on:
        return ""
    C, hd = (N, K) if keys_on == "N" else (K, N)
    if C < M or not math.isclose(float(r["macs_dense"]), float(count * hd * causal_pairs(M, C)), rel_tol=1e-9):
        return ""
    return keys_on


# --------------------------------------------------------------------------
# The trace gate
# --------------------------------------------------------------------------
_NUMERIC = ("M", "N", "K", "count", "weight_bits", "act_bits", "out_bits", "sparsity", "row_skip",
            "macs_dense", "macs_effective", "weight_bytes", "act_bytes_in", "act_bytes_out",
            "kv_bytes_read", "kv_bytes_write")


def _plain(x: object) -> object:
    return x.item() if isinstance(x, np.generic) else x


def _row_error(trace: pd.DataFrame, bad: np.ndarray, what: str, cols: tuple[str, ...]) -> ValueError:
    j = int(np.flatnonzero(bad)[0])
    vals = ", ".join(f"{c}={quote(_plain(trace[c].iloc[j]), 60)}" for c in cols)
    return ValueError(f"op trace row {j} (layer {quote(_plain(trace['layer'].iloc[j]), 30)}, op "
                      f"{quote(_plain(trace['op'].iloc[j]), 60)}): {what}; it has {vals}"
                      + (f" ({int(bad.sum())} rows in all)" if bad.sum() > 1 else ""))


def _vocabulary(trace: pd.DataFrame, col: str, words: tuple[str, ...]) -> None:
    known = set(words)
    bad = np.array([not (isinstance(x, str) and x in known) for x in trace[col]], dtype=bool)
    if bad.any():
        raise _row_error(trace, bad, f"{col} must be one of {list(words)}", (col,))


def _int_meta(attrs: dict, key: str, lo: int, hi: int) -> None:
    if key not in attrs or attrs[key] is None:
        return
    v = attrs[key]
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not lo <= v <= hi:
        raise ValueError(f"op trace metadata {key!r} must be an integer in [{lo}, {hi}], got {quote(v)}"
                         + (f" (limit {key} <= {hi}: beyond it a step's work is not bounded)"
                            if isinstance(v, numbers.Integral) and v > hi else ""))


def check_trace_metadata(attrs: dict, phase: str) -> None:
    """The metadata the simulator reads (``df.attrs``): phase, batch, context, KV size, tied embeddings."""
    if not isinstance(attrs, dict):
        raise ValueError(f"op trace metadata must be a mapping, got {type(attrs).__name__}")
    if attrs.get("phase") is not None and attrs["phase"] != phase:
        raise ValueError(f"op trace metadata phase {quote(attrs['phase'])} contradicts the rows' phase {phase!r}")
    _int_meta(attrs, "batch", 1, MAX_BATCH)
    _int_meta(attrs, "context", 0, MAX_CONTEXT)
    if "kv_cache_bytes" in attrs:
        v = attrs["kv_cache_bytes"]
        if isinstance(v, bool) or not isinstance(v, numbers.Real) \
                or not (math.isfinite(v) and 0 <= v <= MAX_TRACE_VALUE):
            raise ValueError(f"op trace metadata 'kv_cache_bytes' must be a finite number of bytes >= 0, "
                             f"got {quote(v)}")
    if "tie_word_embeddings" in attrs and not isinstance(attrs["tie_word_embeddings"], (bool, np.bool_)):
        raise ValueError(f"op trace metadata 'tie_word_embeddings' must be true or false, "
                         f"got {quote(attrs['tie_word_embeddings'])}")


def check_trace(trace: pd.DataFrame) -> pd.DataFrame:
    """Validate an op trace (schema, values, cross-field rules, metadata); return it.

    Errors are ``ValueError`` naming the row, layer, op and the offending columns.  Rules:
    the schema (``op_trace``); at most :data:`MAX_TRACE_ROWS` rows; ``op_class``, ``phase``,
    ``weight_format`` and ``act_format`` in the shared vocabulary; one phase per trace;
    every number finite, >= 0 and <= :data:`MAX_TRACE_VALUE`; ``sparsity``, ``row_skip``
    fractions with ``row_skip <= sparsity``; ``macs_effective <= macs_dense``; ``act_bits`` and
    ``out_bits`` in :data:`SUPPORTED_BITS`; ``weight_bits`` 0 exactly when ``weight_format`` is
    none; gemm / attention rows: ``M, N, K, count > 0``, ``macs_dense <= M*N*K*count``,
    ``act_bits`` equal to the width of ``act_format``; the metadata (:func:`check_trace_metadata`).
    """
    validate(trace, "op_trace")
    if len(trace) == 0:
        raise ValueError("op trace is empty")
    if len(trace) > MAX_TRACE_ROWS:
        raise ValueError(f"op trace has {len(trace)} rows; the limit is {MAX_TRACE_ROWS} "
                         f"(one forward step of a 100-layer model has ~2,000)")
    _vocabulary(trace, "op_class", OP_CLASSES)
    _vocabulary(trace, "phase", PHASES)
    _vocabulary(trace, "weight_format", WEIGHT_FORMATS)
    _vocabulary(trace, "act_format", ACT_FORMATS)
    phases = list(dict.fromkeys(trace["phase"]))
    if len(phases) > 1:
        first = trace["phase"].iloc[0]
        raise _row_error(trace, (trace["phase"] != first).to_numpy(),
                         f"an op trace is one forward step of one phase, but row 0 is {first!r}", ("phase",))
    num = [EXTRA_WRITE] if EXTRA_WRITE in trace.columns else []
    num += list(_NUMERIC)
    for c in num:
        try:
            v = trace[c].to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"op trace column {c!r} must be numeric with no missing values") from None
        bad = ~np.isfinite(v) | (v < 0) | (v > MAX_TRACE_VALUE)
        if bad.any():
            raise _row_error(trace, bad, f"column {c!r} must be finite, >= 0 and <= {MAX_TRACE_VALUE:.3g}", (c,))
    f = {c: trace[c].to_numpy(dtype=float) for c in _NUMERIC}
    for c in ("sparsity", "row_skip"):
        if (f[c] > 1).any():
            raise _row_error(trace, f[c] > 1, f"column {c!r} is a fraction (0..1)", (c,))
    if (f["row_skip"] > f["sparsity"] + 1e-9).any():
        raise _row_error(trace, f["row_skip"] > f["sparsity"] + 1e-9,
                         "row_skip (reduction rows zero in every token) cannot exceed sparsity",
                         ("row_skip", "sparsity"))
    if (f["macs_effective"] > f["macs_dense"]).any():
        raise _row_error(trace, f["macs_effective"] > f["macs_dense"],
                         "macs_effective (after skipping zeros) cannot exceed macs_dense",
                         ("macs_effective", "macs_dense"))
    for c in ("act_bits", "out_bits"):
        bad = ~np.isin(f[c], SUPPORTED_BITS)
        if bad.any():
            raise _row_error(trace, bad, f"{c} must be one of {list(SUPPORTED_BITS)}", (c,))
    none_w = (trace["weight_format"] == "none").to_numpy()
    wb = f["weight_bits"]
    bad = (none_w & (wb != 0)) | (~none_w & ((wb <= 0) | (wb > MAX_WEIGHT_BITS)))
    if bad.any():
        raise _row_error(trace, bad, f"weight_bits must be 0 for weight_format none and in (0, {MAX_WEIGHT_BITS:g}] "
                                     f"otherwise", ("weight_format", "weight_bits"))
    for c, hi in (("M", MAX_ROW_TOKENS), ("N", MAX_ROW_DIM), ("K", MAX_ROW_DIM), ("count", MAX_ROW_COUNT)):
        bad = f[c] > hi
        if bad.any():
            raise _row_error(trace, bad, f"{c} must be <= {hi:,} (docs/limits.md)", (c,))
    mm = (trace["op_class"] != "vector").to_numpy()
    shape = np.stack([f["M"], f["N"], f["K"], f["count"]])
    bad = mm & (shape <= 0).any(axis=0)
    if bad.any():
        raise _row_error(trace, bad, "gemm/attention ops need M, N, K, count > 0", ("M", "N", "K", "count"))
    bad = mm & (f["macs_dense"] > shape.prod(axis=0) * (1 + 1e-12))
    if bad.any():
        raise _row_error(trace, bad, "macs_dense of a gemm/attention op cannot exceed M*N*K*count",
                         ("M", "N", "K", "count", "macs_dense"))
    want = trace["act_format"].map(ACT_FORMAT_BITS).to_numpy(dtype=float)
    bad = mm & np.isfinite(want) & (f["act_bits"] != want)
    if bad.any():
        raise _row_error(trace, bad, "act_bits must be the width of act_format "
                                     f"({ACT_FORMAT_BITS})", ("act_format", "act_bits"))
    check_trace_metadata(trace.attrs, str(trace["phase"].iloc[0]))
    return trace
