"""Turn each op-trace row into an :class:`OpPlan`: unit, cycles, bytes and energy.

Everything here is per-op arithmetic (tiling, bytes, pJ); *when* things happen
-- contention for the DMA channel, double buffering, overlap between ops -- is
the scheduler's job (:mod:`sim.engine.scheduler`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import energy
from ..compute import map_op, systolic_cycles, unpack_cycles
from ..compute.precision import act_operand, weight_operand
from ..config import AcceleratorConfig
from ..memory import Traffic, matmul_traffic, vector_traffic

_VECTOR_KINDS = (  # (name prefix, vector.passes key)
    ("rmsnorm", "rmsnorm"), ("layernorm", "rmsnorm"), ("kv_quant", "kv_quant"), ("quant", "quant"),
    ("topk", "topk"), ("softmax", "softmax"), ("glu", "glu"), ("swiglu", "glu"),
    ("relu2glu", "glu"), ("rope", "rope"), ("embedding", "embedding"), ("residual", "residual"),
    ("add", "residual"),
)


@dataclass
class OpPlan:
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

    @property
    def fallback(self) -> bool:
        """True when the op runs on a wider PE pair because the accelerator has no native one."""
        return bool(self.needs) and self.pair != self.needs


def vector_kind(op: str, where: str) -> str:
    for prefix, kind in _VECTOR_KINDS:
        if op.startswith(prefix):
            return kind
    raise ValueError(f"{where}: no vector-unit operation for op {op!r}; "
                     f"known kinds: {sorted({k for _, k in _VECTOR_KINDS})} (by name prefix)")


EXTRA_WRITE = "extra_offchip_write"  # optional trace column: other write traffic an op causes (bytes)


def plan_ops(trace: pd.DataFrame, accel: AcceleratorConfig) -> list[OpPlan]:
    """Plan every row of a validated op trace (see :func:`check_trace`).

    An optional column ``extra_offchip_write`` adds write traffic that is not
    the op's own output (e.g. dirty cache lines a GPU timing harness leaves
    behind, see sim.validation); it is written back like the op's outputs.
    """
    cols = {c: trace[c].to_numpy() for c in trace.columns}
    plans = []
    mapping_cache: dict = {}
    for i in range(len(trace)):
        row = {c: v[i] for c, v in cols.items()}
        p = _plan_row(i, row, accel, mapping_cache)
        extra = float(row.get(EXTRA_WRITE, 0.0))
        if extra > 0:
            t = p.traffic
            p.traffic = Traffic(t.offchip_read, t.offchip_write + extra, t.sram)
            p.energy_offchip_pj += extra * 8 * accel.offchip.pj_per_bit
        plans.append(p)
    return plans


def _plan_row(i: int, r: dict, accel: AcceleratorConfig, cache: dict) -> OpPlan:
    where = f"trace row {i} (layer {int(r['layer'])}, op {r['op']!r})"
    cls = r["op_class"]
    node = accel.process_nm
    sram_pj_b = accel.sram.pj_per_bit * 8
    off_pj_b = accel.offchip.pj_per_bit * 8
    if cls == "vector":
        kind = vector_kind(str(r["op"]), where)
        passes = accel.vector.passes[kind]
        elements = float(r["macs_dense"])
        table = float(r["weight_bytes"])  # embedding rows gathered, norm gains: off chip
        t = vector_traffic(accel, float(r["act_bytes_in"]), float(r["act_bytes_out"]), table,
                           float(r["kv_bytes_write"]))
        work = elements * passes
        ideal = work / accel.vector.lanes
        sram_c = t.sram / accel.sram.bandwidth_bytes_per_cycle
        return OpPlan(i, "vector", int(math.ceil(max(ideal, sram_c))), ideal, t, accel.vector.lanes, work,
                      0.0, t.sram * sram_pj_b, (t.offchip_read + t.offchip_write) * off_pj_b,
                      work * energy.vector_pj_per_element_pass(node), "")

    wfmt, afmt = str(r["weight_format"]), str(r["act_format"])
    if cls == "attention" and wfmt not in accel.kv_formats:
        raise ValueError(f"{where}: KV-cache format {wfmt!r} is not supported by accelerator "
                         f"{accel.name!r} (kv_formats: {list(accel.kv_formats)})")
    M, N, K, count = int(r["M"]), int(r["N"]), int(r["K"]), int(r["count"])
    skip = float(r["row_skip"]) if cls == "gemm" else 0.0
    k_eff = max(1, math.ceil(K * (1.0 - skip))) if accel.sparsity.skip_compute and skip > 0 else K
    key = (wfmt, afmt, M, N, k_eff, count)
    if key not in cache:
        cache[key] = map_op(accel, weight_operand(wfmt, where), act_operand(afmt, where), where,
                            (M, N, k_eff, count))
    m = cache[key]
    if cls == "attention":
        wread = float(r["kv_bytes_read"]) or float(r["weight_bytes"])
    else:
        wread = float(r["weight_bytes"]) * (1.0 - skip if accel.sparsity.skip_weight_fetch else 1.0)
    macs = float(r["macs_effective"] if accel.sparsity.skip_compute else r["macs_dense"])
    t = matmul_traffic(accel, m.array, M, N, K, count, wread, float(r["act_bytes_in"]),
                       float(r["act_bytes_out"]), float(r["kv_bytes_write"]))
    rate = m.pe_op.rate
    cyc = systolic_cycles(M, N, k_eff, m.array, rate, count)
    sram_c = t.sram / accel.sram.bandwidth_bytes_per_cycle
    # packed weights / KV codes on a PE pair of another format: software unpack, overlapped
    wop, aop = weight_operand(wfmt, where), act_operand(afmt, where)
    unpack_rate = m.array.unpack.get(wop) if m.pe_op.weights != wop else None
    unpack = unpack_cycles(M, N, k_eff, m.array, unpack_rate, count) if unpack_rate else 0
    peak = m.array.pes * rate
    return OpPlan(i, m.array.name, int(math.ceil(max(cyc, sram_c, unpack))), macs / peak, t, peak, macs,
                  macs * m.mac_pj, t.sram * sram_pj_b, (t.offchip_read + t.offchip_write) * off_pj_b,
                  0.0, f"{m.pe_op.weights}x{m.pe_op.acts}", f"{wop}x{aop}")


def check_trace(trace: pd.DataFrame) -> pd.DataFrame:
    """Validate an op trace (schema + values); return it.  Errors name the row / column."""
    from bitsim.tables import validate

    validate(trace, "op_trace")
    if len(trace) == 0:
        raise ValueError("op trace is empty")
    bad_cls = sorted(set(trace["op_class"]) - {"gemm", "attention", "vector"})
    if bad_cls:
        raise ValueError(f"op trace: unknown op_class value(s) {bad_cls}")
    num = [EXTRA_WRITE] if EXTRA_WRITE in trace.columns else []
    num += ["M", "N", "K", "count", "weight_bits", "act_bits", "out_bits", "sparsity", "row_skip",
           "macs_dense", "macs_effective", "weight_bytes", "act_bytes_in", "act_bytes_out",
           "kv_bytes_read", "kv_bytes_write"]
    for c in num:
        v = trace[c].to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(v) | (v < 0))
        if bad.size:
            j = int(bad[0])
            raise ValueError(f"op trace column {c!r} must be finite and >= 0; row {j} "
                             f"(op {trace['op'].iloc[j]!r}) has {trace[c].iloc[j]!r}")
    for c in ("sparsity", "row_skip"):
        bad = np.flatnonzero(trace[c].to_numpy(dtype=float) > 1)
        if bad.size:
            raise ValueError(f"op trace column {c!r} is a fraction; row {int(bad[0])} has "
                             f"{trace[c].iloc[int(bad[0])]!r}")
    mm = trace["op_class"] != "vector"
    bad = np.flatnonzero(mm.to_numpy() & ((trace[["M", "N", "K", "count"]] <= 0).any(axis=1)).to_numpy())
    if bad.size:
        j = int(bad[0])
        raise ValueError(f"op trace row {j} (op {trace['op'].iloc[j]!r}): gemm/attention ops need "
                         f"M, N, K, count > 0")
    return trace
