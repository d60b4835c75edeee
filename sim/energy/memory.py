"""Off-chip memory generations (``sim/data/memories.csv``): bandwidth, energy, sustained fraction, PHY, background.

One row per (kind, quantity), each with its source or marked an assumption with a sensitivity band
(``low`` .. ``high``).  Every kind carries every quantity of :data:`QUANTITIES` (checked on load), so
``offchip.kind`` alone selects a memory (:mod:`sim.config`).  Quantities are per interface: one HBM
stack, one x32 GDDR device, one x64 LPDDR interface.
"""
from __future__ import annotations

import csv
from pathlib import Path

from contract.config import quote

from .table import COSTS, KINDS, NODES, Entry, node_cost

MEMORY_TABLE_PATH = Path(__file__).resolve().parents[1] / "data" / "memories.csv"
#: what each kind must state (unit in the table)
QUANTITIES = ("bandwidth_gbps", "pj_per_bit", "sustained_fraction", "phy_area_mm2", "phy_static_w",
              "background_w_per_gb")
#: ``offchip.kind`` of a memory the table does not describe: its bandwidth and pJ/bit must be given as numbers
CUSTOM = "custom"


def _band(r: dict, where: str) -> tuple[float | None, float | None]:
    lo, hi = (float(r[c]) if r[c].strip() else None for c in ("low", "high"))
    if r["status"] == "assumption" and (lo is None or hi is None):
        raise ValueError(f"{where}: an assumption needs its sensitivity band (low, high)")
    if lo is not None and hi is not None and not lo <= float(r["value"]) <= hi:
        raise ValueError(f"{where}: value {r['value']} is outside its band [{lo}, {hi}]")
    return lo, hi


def load_memories(path: Path = MEMORY_TABLE_PATH) -> dict[str, dict[str, Entry]]:
    """Read the memory table: kind -> quantity -> Entry; every kind must state every quantity."""
    lines = [ln for ln in Path(path).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    out: dict[str, dict[str, Entry]] = {}
    for r in csv.DictReader(lines):
        where = f"{Path(path).name}: {r['kind']}.{r['quantity']}"
        if r["quantity"] not in QUANTITIES:
            raise ValueError(f"{where}: unknown quantity; known: {list(QUANTITIES)}")
        if r["status"] not in KINDS or not r["source"].strip():
            raise ValueError(f"{where}: status must be one of {KINDS} and source non-empty")
        if r["quantity"] in out.get(r["kind"], {}):
            raise ValueError(f"{where}: given twice")
        lo, hi = _band(r, where)
        out.setdefault(r["kind"], {})[r["quantity"]] = Entry(float(r["value"]), r["unit"], r["source"],
                                                             r["status"], lo, hi)
    for kind, rows in out.items():
        missing = [q for q in QUANTITIES if q not in rows]
        if missing:
            raise ValueError(f"{Path(path).name}: memory {kind!r} lacks {missing}")
    return out


MEMORIES: dict[str, dict[str, Entry]] = load_memories()
#: the memory kinds ``offchip.kind`` may name (plus :data:`CUSTOM`)
MEMORY_KINDS = tuple(MEMORIES)


#: energy keys a config's ``pj_per_bit`` may name: every memory kind, the older ``hbm`` / ``ddr`` keys of the
#: cost table, on-chip SRAM at each node (``sram_7nm`` ...) and ``gpu_l2``
MEMORY_PJ_PER_BIT: dict[str, Entry] = {k: rows["pj_per_bit"] for k, rows in MEMORIES.items()}
MEMORY_PJ_PER_BIT.update({q.split(".")[1]: e for (q, _n), e in COSTS.items()
                          if q.startswith("memory.") and q.endswith(".pj_per_bit")})
MEMORY_PJ_PER_BIT.update({f"sram_{n}nm": node_cost("sram.read_pj_per_bit", n) for n in NODES})
MEMORY_PJ_PER_BIT["gpu_l2"] = Entry(MEMORY_PJ_PER_BIT["sram_7nm"].value, "pJ/bit",
                                    "ASSUMPTION: as sram_7nm (large on-chip SRAM)", "assumption")


_SRAM_KEYS = {f"sram_{n}nm": n for n in NODES}


def memory_pj_per_bit(spec: float | str, field: str) -> float:
    """Resolve a config's ``pj_per_bit`` (a number, or a key of :data:`MEMORY_PJ_PER_BIT`; SRAM keys read the
    cost table in force, so a design's cost overlay reaches them)."""
    if isinstance(spec, str):
        if spec not in MEMORY_PJ_PER_BIT:
            raise ValueError(f"{field}: unknown memory energy key {quote(spec)}; "
                             f"known: {sorted(MEMORY_PJ_PER_BIT)} or a number (pJ/bit)")
        if spec in _SRAM_KEYS:
            return node_cost("sram.read_pj_per_bit", _SRAM_KEYS[spec]).value
        return MEMORY_PJ_PER_BIT[spec].value
    return float(spec)


def memory_row(kind: str, what: str) -> Entry | None:
    """One quantity of memory ``kind`` (see :data:`QUANTITIES`), or None when the table has no such row."""
    return MEMORIES.get(kind, {}).get(what)


def check_memory_kind(kind: object, field: str) -> str:
    """``kind`` if it names a memory of the table or :data:`CUSTOM`; else a ``ValueError`` listing the known ones."""
    if isinstance(kind, str) and (kind in MEMORIES or kind == CUSTOM):
        return kind
    raise ValueError(f"{field}: unknown memory kind {quote(kind)}; known: {list(MEMORY_KINDS)} "
                     f"or {CUSTOM!r} (then give bandwidth_gbps and pj_per_bit as numbers)")


def phy_costs(kind: str, interfaces: int) -> tuple[float, float]:
    """(area mm^2, static W) of ``interfaces`` PHY + controller blocks of memory ``kind`` (0, 0 if none)."""
    if interfaces <= 0:
        return 0.0, 0.0
    if kind not in MEMORIES:
        raise ValueError(f"offchip.kind {kind!r} has no PHY in the memory table; offchip.interfaces needs one of "
                         f"{list(MEMORY_KINDS)}")
    rows = MEMORIES[kind]
    return interfaces * rows["phy_area_mm2"].value, interfaces * rows["phy_static_w"].value


def background_w(kind: str, capacity_gb: float) -> float:
    """DRAM refresh + standby power (W) of ``capacity_gb`` of memory ``kind`` (0 for a custom memory)."""
    row = memory_row(kind, "background_w_per_gb")
    return 0.0 if row is None else row.value * capacity_gb
