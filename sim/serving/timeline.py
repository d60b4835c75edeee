"""A Perfetto / chrome://tracing timeline (Chrome trace-event JSON) of a run's iterations."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from contract.io import write_json_atomic

#: Most iterations drawn (a longer run keeps its first ones; a trace viewer slows past ~1e6 events).
MAX_EVENTS = 200_000


def chrome_trace(iterations: pd.DataFrame) -> dict:
    """One complete event per iteration on its instance's track, with the batch in its args,
    and a KV-occupancy counter track."""
    ev = []
    it = iterations.head(MAX_EVENTS)
    for row in it.itertuples(index=False):
        kind = "prefill" if row.prefill_tokens and not row.decode_requests else (
            "mixed" if row.prefill_tokens else "decode")
        ev.append({"name": kind, "ph": "X", "pid": 0, "tid": int(row.instance), "ts": row.start_s * 1e6,
                   "dur": (row.end_s - row.start_s) * 1e6,
                   "args": {"decode_requests": int(row.decode_requests), "prefill_tokens": int(row.prefill_tokens),
                            "comm_us": row.comm_s * 1e6, "energy_mj": row.energy_j * 1e3,
                            "preemptions": int(row.preemptions)}})
        ev.append({"name": f"kv occupancy {int(row.instance)}", "ph": "C", "pid": 0, "ts": row.start_s * 1e6,
                   "args": {"used": row.kv_blocks_used / max(row.kv_blocks_total, 1)}})
    meta = [{"name": "thread_name", "ph": "M", "pid": 0, "tid": int(i), "args": {"name": f"instance {int(i)}"}}
            for i in sorted(set(it["instance"]))]
    return {"traceEvents": meta + ev, "displayTimeUnit": "ms"}


def write_timeline(iterations: pd.DataFrame, path: str | Path) -> Path:
    return write_json_atomic(chrome_trace(iterations), path)
