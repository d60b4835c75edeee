"""Write a run's events as Chrome trace-event JSON (opens in Perfetto / chrome://tracing)."""
from __future__ import annotations

from pathlib import Path

from contract.io import write_json_atomic

from .scheduler import RunLog


def check_timeline_path(path: str | Path) -> Path:
    """A timeline path must end in ``.json`` and not be a folder (checked before simulating)."""
    path = Path(path)
    if path.suffix != ".json":
        raise ValueError(f"timeline must end in .json, got {path.name!r}")
    if path.is_dir():
        raise ValueError(f"timeline {path} is a folder, expected a .json file path")
    return path


def write_chrome_trace(log: RunLog, path: str | Path, clock_ghz: float, accel_name: str,
                       op_info: list[dict]) -> Path:
    """One complete ("X") event per tile load, tile compute, write-back and launch.

    Tracks (``tid``): ``dma``, ``launch``, each array name, ``vector``.  Times are
    microseconds, converted from cycles at the accelerator clock.  Written atomically
    (a temporary sibling renamed into place).
    """
    path = check_timeline_path(path)
    us = 1e-3 / clock_ghz
    tracks = sorted({e[1] for e in log.events})
    tid = {t: k for k, t in enumerate(tracks)}
    ev: list[dict] = [{"name": "process_name", "ph": "M", "pid": 0, "args": {"name": accel_name}}]
    ev += [{"name": "thread_name", "ph": "M", "pid": 0, "tid": tid[t], "args": {"name": t}}
           for t in tracks]
    for name, track, op, t0, dur in log.events:
        ev.append({"name": name, "cat": op_info[op]["op_class"], "ph": "X", "pid": 0, "tid": tid[track],
                   "ts": t0 * us, "dur": dur * us, "args": {**op_info[op], "cycles": dur}})
    write_json_atomic({"traceEvents": ev, "displayTimeUnit": "ns"}, path)
    return path
