"""One hardware point of a sweep: an accelerator with dotted-path overrides, simulated on a given op trace.

This module imports the simulator but not the model, so a sweep's worker processes start without
loading torch: the runner builds each op trace once and hands it to :func:`simulate_point`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

import sim
from sim.config import from_dict


def file_digest(path: str) -> str | None:
    p = Path(path)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return hashlib.sha1(p.read_bytes()).hexdigest()
    return None



def _set_path(obj: Any, path: list[str], value: Any, full: str) -> Any:
    """Copy of ``obj`` (nested dicts / lists, as parsed from YAML) with ``path`` set to ``value``."""
    head, rest = path[0], path[1:]
    if isinstance(obj, (tuple, list)):
        # element by index ("arrays.0.rows") or by its name ("arrays.main.rows")
        names = [e.get("name") if isinstance(e, Mapping) else None for e in obj]
        if head.isdigit() and int(head) < len(obj):
            idx = int(head)
        elif head in names:
            idx = names.index(head)
        else:
            raise ValueError(f"unknown accelerator parameter {full!r}: {head!r} is neither an index "
                             f"below {len(obj)} nor one of the names {names}")
        new = value if not rest else _set_path(obj[idx], rest, value, full)
        return [new if k == idx else e for k, e in enumerate(obj)]
    if isinstance(obj, Mapping):
        if head not in obj:
            raise ValueError(f"unknown accelerator parameter {full!r}: {head!r} is not one of {sorted(obj)}")
        new = value if not rest else _set_path(obj[head], rest, value, full)
        return {**obj, head: new}
    raise ValueError(f"unknown accelerator parameter {full!r}: {head!r} is below a plain value")


@lru_cache(maxsize=32)
def _cached_accelerator(base: str, contents: str | None):
    return sim.load_accelerator(base)


def _base_accelerator(base: str):
    """The base accelerator, cached by name and file contents (an edited YAML is loaded again)."""
    return _cached_accelerator(base, file_digest(base))


def make_accelerator(base: str, overrides: Mapping[str, Any]):
    """Load accelerator ``base`` and apply dotted-path ``overrides``.

    Paths name fields of the accelerator YAML (``clock_ghz``,
    ``offchip.bandwidth_gbps``, ``arrays.0.rows`` or ``arrays.<name>.rows``,
    ``arrays.0.pe_ops`` for the supported precisions, ``sparsity.skip_compute``
    ...).  The changed description is re-validated by sim's own loader, so a
    wrong type or a negative size fails with sim's message naming the field.
    """

    acc = _base_accelerator(base)
    if not overrides:
        return acc
    raw: Any = dataclasses.asdict(acc)
    for key, value in overrides.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"accelerator parameter names must be dotted strings, got {key!r}")
        raw = _set_path(raw, key.split("."), value, key)
    return from_dict(raw, where=f"{acc.name} + sweep overrides")



#: Summary fields that are labels or nested records, not numbers of the run (left out of summary_row).
SUMMARY_LABELS = ("accelerator", "comparison", "energy_basis", "phase", "fallback_ops", "ops", "clock_ghz")


def summary_row(summary: Mapping[str, Any]) -> dict:
    """Every number of sim's summary as flat scalar columns, read by name: tokens, cycles, latency,
    throughput, energy, bytes, footprint, component energies as J per token, cycles per bound, and any
    other number sim reports (area, power, feasibility ...), so a new summary field reaches every results
    table unrenamed."""
    tokens = float(summary.get("tokens") or 1)
    row: dict[str, Any] = {}
    for k in summary:
        v = summary[k]
        if k in SUMMARY_LABELS or v is None:
            continue
        if isinstance(v, (bool, np.bool_)):
            row[k] = bool(v)
        elif isinstance(v, (int, float, np.integer, np.floating)):
            row[k] = float(v)
        elif isinstance(v, Mapping) and all(isinstance(x, (int, float, np.integer, np.floating)) for x in v.values()):
            if k == "energy_j_by_component":
                row.update({f"energy_{c}_j": float(j) / tokens for c, j in v.items()})
            elif k == "cycles_by_bound":
                row.update({f"cycles_{b}_bound": float(c) for b, c in v.items()})
            else:
                row.update({f"{k}_{n}": float(x) for n, x in v.items()})
    return row


def hardware_columns(overrides: Mapping[str, Any]) -> dict:
    """``hw.<path>`` columns of a point: numbers as float, structures as JSON (one type per column)."""
    row = {}
    for k, v in overrides.items():
        if isinstance(v, (list, tuple, dict)):
            v = json.dumps(v, sort_keys=True)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            v = float(v)
        row[f"hw.{k}"] = v
    return row


def simulate_point(point: Mapping[str, Any], trace: pd.DataFrame,
                   workload_columns: tuple[str, ...]) -> tuple[dict, list[str]]:
    """Simulate ``trace`` on the point's accelerator: (one flat results row, the distinct warnings raised)."""
    w = point["workload"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        acc = make_accelerator(point["accelerator"], point["overrides"])
        result = sim.simulate(trace, acc)
    row = {"point_id": point["point_id"], **{k: w[k] for k in workload_columns},
           "accelerator": point["accelerator"]}
    row["prefill_tokens"] = -1 if w["prefill_tokens"] is None else int(w["prefill_tokens"])
    row.update(hardware_columns(point["overrides"]))
    row.update(summary_row(result.summary.to_dict()))
    return row, list(dict.fromkeys(str(c.message) for c in caught))
