"""Write a run's events as Chrome trace-event JSON (opens in Perfetto / chrome://tracing)."""
from __future__ import annotations

import json
from pathlib import Path

from .scheduler import RunLog


def write_chrome_trace(log: RunLog, path: str | Path, clock_ghz: float, accel_name: str,
                       op_info: list[dict]) -> Path:
    """One complete ("X") event per tile load, tile compute, write-back and launch.

    Tracks (``tid``): ``dma``, ``launch``, each array name, ``vector``.  Times are
    microseconds, converted from cycles at the accelerator clock.
    """
    path = Path(path)
    if path.suffix != ".json":
        raise ValueError(f"timeline must end in .json, got {path.name!r}")
    us = 1e-3 / clock_ghz
    tracks = sorted({e[1] for e in log.events})
    tid = {t: k for k, t in enumerate(tracks)}
    ev: list[dict] = [{"name": "process_name", "ph": "M", "pid": 0, "args": {"name": accel_name}}]
    ev += [{"name": "thread_name", "ph": "M", "pid": 0, "tid": tid[t], "args": {"name": t}}
           for t in tracks]
    for name, track, op, t0, dur in log.events:
        ev.append({"name": name, "cat": op_info[op]["op_class"], "ph": "X", "pid": 0, "tid": tid[track],
                   "ts": t0 * us, "dur": dur * us, "args": {**op_info[op], "cycles": dur}})
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump({"traceEvents": ev, "displayTimeUnit": "ns"}, f)
    return path
