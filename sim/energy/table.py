"""The simulator's one energy, area and leakage table: every number names its source.

The numbers live in ONE file, ``sim/data/hardware_costs.csv`` (columns quantity, node_nm,
value, unit, kind, source; ``kind`` is sourced, derived or assumption).  This module loads it
and exposes it by topic; :mod:`sim.energy.pe` (width-aware PE) and :mod:`sim.energy.chip`
(area and leakage of a whole design) read only what is here.

Sources (tags as in docs/paper-facts.md §0 and docs/simulator.md "Hardware cost table"):

* [B1]  Wang et al., *BitNet: Scaling 1-bit Transformers*, arXiv 2310.11453, Table 2 (per-op
  energies at 45 nm and 7 nm, after Horowitz ISSCC 2014) and eq. 16-18 (matmul counting rule).
* [B158] Ma et al., arXiv 2402.17764 §3: "71.4 times" = FP16 (add + mul) / INT8 add at 7 nm.
* [H14] M. Horowitz, ISSCC 2014: adder / multiplier areas and SRAM / DRAM read energies, 45 nm.
* [SB17] A. Stillmaker, B. Baas, "Scaling equations for the accurate prediction of CMOS device
  performance from 180 nm to 7 nm", Integration 58 (2017): the area scaling factor 45 -> 7 nm.
* [NANGATE45] Nangate 45nm Open Cell Library (FreePDK45): flip-flop area.
* [N7SRAM] J. Chang et al., "A 7nm 256Mb SRAM in high-k metal-gate FinFET technology with
  write-assist circuitry for low-VMIN applications", ISSCC 2017: the 0.027 um^2 bitcell.
* [FGDRAM] M. O'Connor et al., "Fine-Grained DRAM", MICRO 2017: HBM2 ~3.9 pJ/bit.
* [SNPS-HBM3] Synopsys, "What is HBM3": core 1.2 -> 1.1 V, I/O 1.2 V -> 0.4 V from HBM2E to HBM3.
* [GPU-FACTS] our own H100 / H200 measurements, docs/gpu-facts.md.

Scaling rule between nodes (stated once, used everywhere; nodes :data:`NODES`):

* logic area: 45 -> 7 nm by [SB17]'s factor ``scale.area_45_to_7`` (0.059); 7 nm -> 16, 5, 3 nm by
  ``scale.area_vs_7`` (TSMC's logic-density steps: 16FF+ -> 10FF 2x, 10FF -> N7 1.6x, N7 -> N5 1.8x,
  N5 -> N3E 1.6x);
* energy: the [B1] rows at 45 and 7 nm; 16, 5, 3 nm = the 7 nm row x ``scale.energy_vs_7`` (TSMC's
  power at the same speed); an energy with no 7 nm figure of its own moves 45 -> 7 nm by [B1]'s FP16-add
  ratio ``scale.energy_45_to_7`` (0.4);
* SRAM area: the published bitcell of each node (``sram.bitcell``: 0.07, 0.027, 0.021, 0.021 um^2),
  so SRAM stops shrinking below 5 nm while logic does not; 45 nm by the inverse logic scale;
* wires: ``wire.pj_per_bit_mm`` is the same at every node (wire capacitance per mm barely scales).
"""
from __future__ import annotations

import csv
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from contract.config import quote

NODES = (45, 16, 7, 5, 3)  # process nodes of the cost table (45 and 7: [B1] Table 2; others scaled, see above)
_SCALED_NODES = (16, 5, 3)  # nodes whose energies are the 7 nm row x scale.energy_vs_7
TABLE_PATH = Path(__file__).resolve().parents[1] / "data" / "hardware_costs.csv"
KINDS = ("sourced", "derived", "assumption")


@dataclass(frozen=True)
class Entry:
    value: float
    unit: str
    source: str
    kind: str = "sourced"
    low: float | None = None     # sensitivity band of an assumption (None: not stated)
    high: float | None = None


_COLUMNS = ("quantity", "node_nm", "value", "unit", "kind", "source")


def _load(path: Path = TABLE_PATH) -> dict[tuple[str, int | None], Entry]:
    """Read the cost table: (quantity, node or None) -> Entry; every row must name a source."""
    path = Path(path)
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    rows = {}
    reader = csv.DictReader(lines)
    if tuple(reader.fieldnames or ()) != _COLUMNS:
        raise ValueError(f"{path.name}: columns must be {list(_COLUMNS)}, got {reader.fieldnames}")
    for r in reader:
        try:
            node = int(r["node_nm"]) if r["node_nm"].strip() else None
            value = float(r["value"])
        except ValueError:
            raise ValueError(f"{path.name}: row {r['quantity']!r}: node_nm must be an integer or empty and value "
                             f"a number, got {r['node_nm']!r}, {r['value']!r}") from None
        if r["kind"] not in KINDS or not r["source"].strip():
            raise ValueError(f"{path.name}: row {r['quantity']!r}: kind must be one of {KINDS} and source non-empty")
        key = (r["quantity"], node)
        if key in rows:
            raise ValueError(f"{path.name}: row {r['quantity']!r} (node {node}) given twice")
        rows[key] = Entry(value, r["unit"], r["source"], r["kind"])
    return rows


COSTS: dict[tuple[str, int | None], Entry] = _load()
# The table the functions below read: the built-in one, or a design's overlay while ``using_costs`` holds.
_ACTIVE: ContextVar[dict | None] = ContextVar("sim_energy_costs", default=None)


def active_costs() -> dict[tuple[str, int | None], Entry]:
    """The cost table in force: a design's overlay inside :func:`using_costs`, else the built-in :data:`COSTS`."""
    t = _ACTIVE.get()
    return COSTS if t is None else t


@contextmanager
def using_costs(table: dict | None) -> Iterator[None]:
    """Read ``table`` (a merged overlay, :func:`overlay_costs`) instead of the built-in table inside the block."""
    token = _ACTIVE.set(table)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def overlay_costs(path: str | Path) -> dict[tuple[str, int | None], Entry]:
    """The built-in table with the rows of the user table ``path`` put over it (same columns, same checks).

    A row must name a quantity of the built-in table in its unit (a typo or a unit slip is refused); its
    node may be new (e.g. a 7 nm row of a quantity the table scales).
    """
    rows = _load(Path(path))
    units = {q: e.unit for (q, _n), e in COSTS.items()}
    for (q, node), e in rows.items():
        if q not in units:
            raise ValueError(f"{Path(path).name}: unknown quantity {q!r}; known: {sorted(units)}")
        if e.unit != units[q]:
            raise ValueError(f"{Path(path).name}: {q!r} (node {node}) is in {e.unit!r}; the built-in table uses "
                             f"{units[q]!r}")
        if node is not None:
            check_node(node, f"{Path(path).name}: {q!r} node_nm")
    return {**COSTS, **rows}


@lru_cache(maxsize=32)
def _overlay_cached(path: str, mtime_ns: int, size: int) -> dict[tuple[str, int | None], Entry]:
    return overlay_costs(path)


def cost_overlay(path: str | Path) -> dict[tuple[str, int | None], Entry]:
    """:func:`overlay_costs` of ``path``, read once per file version; a missing file is a ``ValueError``."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"costs: no such cost table {str(path)!r} (a CSV with the columns of hardware_costs.csv)")
    st = p.stat()
    return _overlay_cached(str(p.resolve()), st.st_mtime_ns, st.st_size)


def cost(quantity: str, node: int | None = None) -> Entry:
    """One row of the cost table in force (``node`` None for node-independent rows)."""
    try:
        return active_costs()[(quantity, node)]
    except KeyError:
        raise KeyError(f"hardware_costs.csv has no row {quantity!r} at node {node}") from None


def check_node(node: object, field: str = "process_nm") -> int:
    """``node`` if it is a process node of the cost table; else a ``ValueError`` listing them."""
    if isinstance(node, bool) or node not in NODES:
        raise ValueError(f"{field} must be one of {NODES} (nodes of the cost table), got {quote(node)}")
    return int(node)


def energy_scale(node: int) -> float:
    """Factor that moves a 7 nm energy to ``node`` (1 at 7 nm; 45 nm by ``scale.energy_45_to_7``)."""
    check_node(node)
    if node == 7:
        return 1.0
    if node == 45:
        return 1.0 / cost("scale.energy_45_to_7").value
    return cost("scale.energy_vs_7", node).value


def node_cost(quantity: str, node: int) -> Entry:
    """A per-node energy: the node's own row, else the 7 nm row scaled by :func:`energy_scale` (derived)."""
    table = active_costs()
    if (quantity, node) in table:
        return table[(quantity, node)]
    base = cost(quantity, 7)
    return Entry(base.value * energy_scale(node), base.unit,
                 f"{base.source}; the 7 nm row x energy scale {energy_scale(node):.3g} at {node} nm", "derived")


_ASSUME_WIDTH = ("ASSUMPTION (no source gives it): adder energy/area scales linearly with operand "
                 "width, multiplier energy/area with width squared, from the INT8 / FP16 rows of [B1]")

# --------------------------------------------------------------------------
# Arithmetic: pJ per operation, per process node.
# --------------------------------------------------------------------------
# Narrower units derived from a measured one: (unit, measured unit, divisor). _ASSUME_WIDTH says why.
_NARROWER = (("int4_add", "int8_add", 2), ("int4_mul", "int8_mul", 4), ("fp8_add", "fp16_add", 2),
             ("fp8_mul", "fp16_mul", 4), ("fp4_add", "fp16_add", 4), ("fp4_mul", "fp16_mul", 16))


def _add_narrower(table: dict[str, Entry], unit: str) -> None:
    for name, base, divisor in _NARROWER:
        if name not in table:
            table[name] = Entry(table[base].value / divisor, unit, _ASSUME_WIDTH, "assumption")


def _arith_of(table: dict) -> dict[int, dict[str, Entry]]:
    """Per-node arithmetic energies of ``table``: its 45 / 7 nm rows, other nodes scaled, narrower units derived."""
    out = {node: {q.split(".", 1)[1]: e for (q, n), e in table.items() if n == node and q.startswith("energy.")}
           for node in (45, 7)}
    with using_costs(table):
        for node in _SCALED_NODES:
            out[node] = {k: node_cost(f"energy.{k}", node) for k in out[7]}
    for t in out.values():
        _add_narrower(t, "pJ")
    return out


def _area_of(table: dict) -> dict[str, Entry]:
    out = {q.split(".", 1)[1]: e for (q, n), e in table.items()
           if n == 45 and q.startswith("area.") and q != "area.dff_bit"}
    _add_narrower(out, "um^2")
    return out


ARITH_PJ: dict[int, dict[str, Entry]] = _arith_of(COSTS)
_DERIVED: dict[int, tuple[dict, dict, dict]] = {}     # id(table) -> (table, arith, area); the table is kept alive


def _derived(table: dict) -> tuple[dict, dict, dict]:
    if id(table) not in _DERIVED:
        if len(_DERIVED) > 64:
            _DERIVED.clear()
        _DERIVED[id(table)] = (table, _arith_of(table), _area_of(table))
    return _DERIVED[id(table)]


def arith_pj(node: int) -> dict[str, Entry]:
    """Arithmetic energies (pJ) at ``node`` of the cost table in force."""
    check_node(node)
    table = active_costs()
    return ARITH_PJ[node] if table is COSTS else _derived(table)[1][node]


def area_um2_45nm() -> dict[str, Entry]:
    """Arithmetic areas (um^2 at 45 nm) of the cost table in force."""
    table = active_costs()
    return AREA_UM2_45NM if table is COSTS else _derived(table)[2]


# Vector unit: one element-pass (load, one fused add+mul, store) costs one FP16
# add + one FP16 mul.  ASSUMPTION: norms / softmax / quantizers run in FP16.
VECTOR_PJ_RULE = "ASSUMPTION: one vector element-pass = one FP16 add + one FP16 mul of [B1] Table 2"

# --------------------------------------------------------------------------
# Area (um^2 per unit at 45 nm, [H14]); other nodes by scale.area_45_to_7 (see module doc).
# --------------------------------------------------------------------------
AREA_UM2_45NM: dict[str, Entry] = _area_of(COSTS)


def area_scale(node: int) -> float:
    """Factor that moves a 45 nm logic area to ``node`` ([SB17] to 7 nm, then TSMC's density steps; 1 at 45 nm)."""
    check_node(node)
    if node == 45:
        return 1.0
    to7 = cost("scale.area_45_to_7").value
    return to7 if node == 7 else to7 * cost("scale.area_vs_7", node).value


# Which primitive an operand format's arithmetic uses (int3 runs on int4 units;
# ternary never multiplies).
_PRIM = {"fp16": "fp16", "fp8": "fp8", "fp4": "fp4", "int8": "int8", "int4": "int4", "int3": "int4"}
_WIDTH_ORDER = ("ternary", "int3", "int4", "fp4", "int8", "fp8", "fp16")
# The adder a ternary-weight MAC uses when it is not the activation's own primitive.
# * ternary x ternary: a 2-bit add on the INT4 unit.
# * ternary x fp4: model/quant.py stores FP4 E2M1 activations as integer codes
#   2 x value in {0,+-1,+-2,+-3,+-4,+-6,+-8,+-12} with the per-token scale applied
#   after the sum, so the add is a signed 5-bit INTEGER add, not a floating-point
#   one; a 5-bit code does not fit an INT4 adder, so it runs on the INT8 adder
#   (int8_add, [B1] Table 2).  ASSUMPTION: the codes are summed as integers (as the
#   a4.8 INT4 / INT8 paths are), which the BitNet a4.8 paper (arXiv 2411.04965) does
#   not specify for FP4.
_TERNARY_ADD = {"ternary": "int4_add", "fp4": "int8_add"}


def _wider(a: str, b: str) -> str:
    return a if _WIDTH_ORDER.index(a) >= _WIDTH_ORDER.index(b) else b


def mac_parts(weights: str, acts: str) -> tuple[str, ...]:
    """Primitive ops of one multiply-accumulate under the PAPERS' counting rule ([B1] eq. 16-18).

    A full-precision MAC is one multiply plus one add at the operands' (wider) format; a
    ternary weight needs no multiply, only one add at the activation's format.  The accumulator
    width is ignored, as the papers ignore it; the simulator charges the width-aware model of
    :mod:`sim.energy.pe` instead, and this rule stays for the paper's 71.4x reproduction.
    """
    if weights == "ternary":
        if acts in _TERNARY_ADD:
            return (_TERNARY_ADD[acts],)
        return (f"{_PRIM[acts]}_add",)
    wide = _PRIM[_wider(weights, acts)]
    return (f"{wide}_mul", f"{wide}_add")


def mac_pj(weights: str, acts: str, node: int) -> float:
    """Energy (pJ) of one MAC at ``node`` nm under the papers' rule (:func:`mac_parts`)."""
    t = arith_pj(node)
    return sum(t[p].value for p in mac_parts(weights, acts))


def mac_area_um2(weights: str, acts: str) -> float:
    """Area (um^2, 45 nm) of the arithmetic of one MAC unit under the papers' rule (no accumulator width)."""
    a = area_um2_45nm()
    return sum(a[p].value for p in mac_parts(weights, acts))


def vector_pj_per_element_pass(node: int) -> float:
    """Energy (pJ) of one vector element-pass; see :data:`VECTOR_PJ_RULE`."""
    t = arith_pj(node)
    return t["fp16_add"].value + t["fp16_mul"].value


def table_markdown() -> str:
    """The whole cost table as Markdown (for docs/simulator.md and reports), plus the derived width rows."""
    rows = ["| quantity | node | value | unit | kind | source |", "|---|---|---|---|---|---|"]
    for (q, node), e in COSTS.items():
        rows.append(f"| {q} | {'-' if node is None else f'{node} nm'} | {e.value:.4g} | {e.unit} | {e.kind} | "
                    f"{e.source.replace('|', '/')} |")
    for node, t in ARITH_PJ.items():
        for k, e in t.items():
            if e.kind == "assumption":
                rows.append(f"| energy.{k} | {node} nm | {e.value:.4g} | {e.unit} | derived | width rule: {e.source} |")
    for k, e in AREA_UM2_45NM.items():
        if e.kind == "assumption":
            rows.append(f"| area.{k} | 45 nm | {e.value:.4g} | {e.unit} | derived | width rule: {e.source} |")
    rows.append(f"| vector element-pass | any | fp16_add + fp16_mul | pJ | assumption | {VECTOR_PJ_RULE} |")
    return "\n".join(rows)
