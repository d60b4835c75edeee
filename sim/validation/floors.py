"""Fixed per-launch costs of a GPU preset, derived from the measured floors (nothing fitted to kernels).

Two kinds of measured rows carry them (``kernels/floor.py``: a kernel that only reads its bytes):

* read floors (``op`` floor, kernel ``floor_read``, one launch per CUDA-graph call): a line
  ``us = intercept + bytes / rate`` by least squares; the intercept is what one launch costs beyond
  its bytes, the rate what a single read kernel streams.
* floor chains (``op`` block_decode, kernel ``floor_chain``): a decode block's launch structure with
  every launch a read of the same bytes, with and without programmatic dependent launch (PDL):
  (us - bytes / rate) / launches is the cost of one launch inside a chain.

The chained cost without PDL is what an op of a CUDA graph pays: ``op_overhead_ns`` (dispatch and
synchronisation) + ``offchip.latency_ns`` (the first load's latency).  The measurements fix the sum;
the split is the stated assumption :data:`LATENCY_NS`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: ASSUMPTION: load-to-use latency of an HBM read on an H100/H200-class GPU (order of the published
#: pointer-chase microbenchmarks, ~0.5-0.7 us); only its sum with op_overhead_ns is measured here.
LATENCY_NS = 600.0


@dataclass(frozen=True, kw_only=True)
class FixedCosts:
    read_intercept_ns: float     # one read kernel beyond its bytes (single launch per graph call)
    read_gbps: float             # bytes / s a single read kernel streams (GB/s)
    launch_ns: float             # one launch inside a chain, no PDL
    pdl_launch_ns: float         # one launch inside a chain with PDL
    latency_ns: float            # offchip.latency_ns (assumption, see LATENCY_NS)
    rows: int                    # measured rows used

    @property
    def op_overhead_ns(self) -> float:
        """Dispatch + synchronisation of one op: the chained launch cost less the memory latency."""
        return max(0.0, self.launch_ns - self.latency_ns)

    @property
    def pdl_saving_ns(self) -> float:
        """What PDL takes off each launch (its dispatch overlaps the previous kernel's tail)."""
        return max(0.0, self.launch_ns - self.pdl_launch_ns)

    def provenance(self, source: str) -> dict[str, str]:
        return {
            "op_overhead_ns": (f"{self.op_overhead_ns:.1f}: chained launch cost {self.launch_ns:.1f} ns (floor_chain "
                               f"rows of {source}, bytes at the read-floor rate {self.read_gbps:.0f} GB/s) less "
                               f"offchip.latency_ns; derived from measured floors, not fitted to kernels"),
            "offchip.latency_ns": f"{self.latency_ns:g}: ASSUMPTION (sim.validation.floors.LATENCY_NS)",
        }


def _floor_rows(measured: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    reads = measured[(measured["op"] == "floor") & (measured["kernel"] == "floor_read")
                     & measured["cuda_graph"].astype(bool)]
    chains = measured[(measured["op"] == "block_decode") & (measured["kernel"] == "floor_chain")]
    return reads, chains


def has_floors(measured: pd.DataFrame) -> bool:
    """True when the table has the floor rows :func:`fixed_costs` needs."""
    reads, chains = _floor_rows(measured)
    return len(reads) >= 2 and not chains.empty


def fixed_costs(measured: pd.DataFrame) -> FixedCosts:
    """The fixed costs of :class:`FixedCosts` from a measured table's floor rows (``ValueError`` if it has none)."""
    reads, chains = _floor_rows(measured)
    if len(reads) < 2 or chains.empty:
        raise ValueError("fixed costs need >= 2 read-floor rows (op floor, kernel floor_read) and the "
                         f"floor_chain rows; the table has {len(reads)} and {len(chains)}")
    A = np.c_[np.ones(len(reads)), reads["bytes"].to_numpy(float) / 1e3]
    (intercept_us, us_per_kb), *_ = np.linalg.lstsq(A, reads["us"].to_numpy(float), rcond=None)
    per = (chains["us"] - chains["bytes"] / 1e3 * us_per_kb) / chains["launches"]
    pdl = chains["variant"].astype(str).str.endswith("_pdl")
    return FixedCosts(read_intercept_ns=float(intercept_us) * 1e3, read_gbps=1.0 / float(us_per_kb),
                      launch_ns=float(per[~pdl].mean()) * 1e3, pdl_launch_ns=float(per[pdl].mean()) * 1e3,
                      latency_ns=LATENCY_NS, rows=len(reads) + len(chains))


#: kernel name of the L2 re-read floor rows (kernels/floor.py ``floor_reread``: M programs each read the same N words)
REREAD_KERNEL = "floor_reread"


def reread_gbps(measured: pd.DataFrame) -> tuple[float, int] | None:
    """GB/s at which the L2 feeds re-reads of one buffer to the SMs, and the rows it comes from; None without
    re-read floor rows.  Per buffer size (``N``), a line ``us = intercept + bytes / rate`` over its program counts
    (the bytes grow with the programs, the one DRAM read and the launch do not); the median of the sizes' rates."""
    rows = measured[(measured["op"] == "floor") & (measured["kernel"] == REREAD_KERNEL)
                    & measured["cuda_graph"].astype(bool)]
    rates = []
    for _, g in rows.groupby("N"):
        if g["M"].nunique() < 2:
            continue
        slope, _ = np.polyfit(g["bytes"].to_numpy(float) / 1e3, g["us"].to_numpy(float), 1)
        if slope > 0:
            rates.append(1.0 / slope)
    if not rates:
        return None
    return float(np.median(rates)), len(rows)
