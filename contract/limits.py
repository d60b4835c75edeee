"""Every bound the tool puts on its inputs, registered where it is defined.

A module states a limit once, ``MAX_X = limit(...)``, and uses the returned value; ``docs/limits.md``
is generated from this registry (``bitsim docs limits``), so the document and the code cannot drift.
This module imports nothing of the project.
"""
from __future__ import annotations

from dataclasses import dataclass

#: Areas in the order the generated document lists them.
AREAS = ("config files", "tables and files", "workloads", "simulator", "sweeps and reports", "serving",
         "training and checkpoints", "kernels")


@dataclass(frozen=True, kw_only=True)
class Limit:
    """One bound: its value, unit, where it applies and why it is safe."""

    name: str
    value: float
    unit: str
    area: str
    applies_to: str
    why: str


LIMITS: dict[str, Limit] = {}


def limit(name: str, value: float, *, unit: str, area: str, applies_to: str, why: str) -> float:
    """Register the bound ``name`` and return ``value`` (so ``MAX_X = limit("...", 1024, ...)`` reads as one line)."""
    if area not in AREAS:
        raise ValueError(f"limit {name!r}: unknown area {area!r}; known: {AREAS}")
    new = Limit(name=name, value=value, unit=unit, area=area, applies_to=applies_to, why=why)
    old = LIMITS.get(name)
    if old is not None and old != new:
        raise ValueError(f"limit {name!r} registered twice with different values: {old} and {new}")
    LIMITS[name] = new
    return value


def _fmt(v: float) -> str:
    if isinstance(v, float) and not v.is_integer():
        return f"{v:g}"
    v = int(v)
    if v >= 1 << 20 and v & (v - 1) == 0:
        return f"{v:,} (2^{v.bit_length() - 1})"
    return f"{v:,}"


def limits_markdown(preamble: str = "") -> str:
    """The generated limits reference: one table per area, every registered limit with its reason."""
    out = ["# Limits on inputs", "",
           "Generated from the registered limits in the code (`contract.limits`) by `bitsim docs limits`;",
           "a test fails when this file and the code disagree.", ""]
    if preamble:
        out += [preamble.strip(), ""]
    for area in AREAS:
        rows = sorted((lim for lim in LIMITS.values() if lim.area == area), key=lambda lim: lim.name)
        if not rows:
            continue
        out += [f"## {area[0].upper()}{area[1:]}", "", "| limit | value | unit | applies to | why |",
                "|---|---|---|---|---|"]
        out += [f"| {r.name} | {_fmt(r.value)} | {r.unit} | {r.applies_to} | {r.why} |" for r in rows]
        out.append("")
    return "\n".join(out)
