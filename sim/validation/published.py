"""Validation against published accelerators: theirs vs ours, error, source.

Data, not code, says what is compared (docs/published-chips.md):

* ``sim/data/published_chips.csv``: one row per published figure with its source, the
  preset and workload it is reproduced on, and a note on what the model leaves out.  Rows
  with ``target`` false are recorded (a figure whose configuration or workload could not be
  read) but not validated.
* ``sim/presets/published/*.yaml``: each design from its stated configuration; every number
  that is not stated is marked ASSUMPTION in the YAML.
* ``sim/data/published_trace_<name>.csv``: op traces of the workloads (``workload`` =
  ``trace:<name>``).  sim does not import model/, so they are committed tables, built by the
  application layer from model/ (``bitsim.experiments.published``); their metadata names
  the preset, datapath, phase, context and seed they were built with.
* ``workload`` = ``gemv``: a single measured kernel call, replayed by
  :func:`sim.validation.compare_measured` (timing harness without an L2 flush).

:func:`validate_published` returns one row per (figure, variant): ``stated`` (the preset as
written, nothing fitted) for every target; for the A100 kernel table also ``calibrated``:
three parameters fitted on the named rows of :data:`A100_FIT` (split ``calibration``) and
the other rows reported apart (split ``held-out``).  Whatever the simulator summary holds is
read by name (:func:`figure_value`): latency, tokens/s, energy per component, and a die area
when a summary field of that kind exists.  ``bitsim published`` prints the table
(:mod:`sim.validation.cli`).

Three published-chip mechanisms the accelerator YAML has no field for live here, each with its
numbers and their sources in one table: the supply voltage of an operating point
(:data:`SUPPLY_POINTS`: dynamic energy scales as V^2 from the voltage the cost table's energies are
stated at, plus leakage at that voltage), the parts of a die outside its datapath
(:data:`DIE_RULES`: standard-cell placement utilisation and the pad ring of a core-limited die),
and the A100 table's timing harness, which overlaps the host's issue of a call with the device's
run of the previous one (:func:`overlapped_call_us`, host floors from
``sim/data/a100_harness_floors.csv`` when that measured table exists).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from contract import validate

from ..config import PRESET_DIR, AcceleratorConfig, load_accelerator
from ..simulate import simulate
from ..trace_io import load_trace
from .replay import compare_measured

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
FIGURES_CSV = DATA_DIR / "published_chips.csv"
PUBLISHED_PRESET_DIR = PRESET_DIR / "published"
#: trace name (``workload`` = ``trace:<name>``) -> committed op-trace table
TRACE_FILES: dict[str, Path] = {
    "3b-b1.58-decode-c128": DATA_DIR / "published_trace_3b-b1.58-decode-c128.csv",
    "3b-b1.58-int8head-decode-c128": DATA_DIR / "published_trace_3b-b1.58-int8head-decode-c128.csv",
}
#: The bar a reproduced figure must meet: |ours - theirs| / theirs <= 25 %.
BAR = 0.25
#: metric -> unit it must be given in (published_chips.csv ``unit``)
METRIC_UNITS = {"kernel_us": "us", "latency_s": "s", "tokens_per_s": "token/s", "power_w": "W",
                "chip_power_w": "W", "tokens_per_s_per_w": "token/s/W", "area_mm2": "mm2",
                "peak_tops": "TOP/s", "tops_per_w": "TOP/s/W", "tops_per_mm2": "TOP/s/mm2"}
#: Metrics a figure may be recorded in but never reproduced: a peak over a power or an area at an operating
#: point the paper picks, which no simulation summary of a workload step gives (:func:`figure_value`).
RECORD_ONLY_METRICS = frozenset({"tops_per_w", "tops_per_mm2"})
FIGURE_COLUMNS = ("design", "figure", "metric", "value", "unit", "target", "preset", "workload", "kernel",
                  "precision", "M", "N", "K", "source", "note")
RESULT_COLUMNS = ["design", "figure", "metric", "unit", "theirs", "ours", "error_pct", "within_bar", "variant",
                  "split", "preset", "source", "explanation"]
#: Summary fields read as the whole-die area, first found wins: ``die_area_mm2`` (:func:`chip_summary`: the
#: counted blocks with the die rule of :data:`DIE_RULES`), then sim_summary's ``area_mm2`` (the counted blocks);
#: compute_area_mm2_45nm (PE arithmetic only) is never one of them.
AREA_FIELDS = ("die_area_mm2", "area_mm2")
#: Energy components left out of the chip power (the external memory's own energy).
OFFCHIP_COMPONENTS = ("offchip",)

# ---- the A100 calibration (held-out honesty) --------------------------------------------------
#: Named calibration rows of the A100 kernel table, fixed before the held-out rows were looked at:
#: (kernel, N, K).  The BF16 smallest and largest shapes give two equations for two unknowns (the
#: sustained fraction of HBM peak and torch's per-call host cost); the W2A8 smallest shape gives
#: the BitNet kernel's per-call host cost (ctypes launch) with that fraction fixed.
A100_FIT: dict[str, tuple[tuple[str, int, int], ...]] = {
    "bandwidth_fraction+torch_bf16": (("torch_bf16", 2560, 2560), ("torch_bf16", 20480, 3200)),
    "bitnet_w2a8": (("bitnet_w2a8", 2560, 2560),),
}
A100_PRESET = "a100-40gb"
_FRACTION_RANGE = (0.05, 1.0)
_BISECT_STEPS = 40
#: Explanation prefix of a stated-configuration miss on a preset that also has a calibrated variant.
_STATED_PREFIX = ("stated configuration, nothing fitted (no per-call host cost, HBM at 100 % of its peak); ")
#: The "measured launch" variant: the stated A100 plus the launch costs and sustained-HBM fraction measured on
#: this project's own GPUs (nothing fitted to the A100 table): host launch gap of h100-triton (H100 kernel rows),
#: dispatch, memory latency and sustained fraction of h200-like (H200 floors and copy).
LAUNCH_SOURCES = ("h100-triton", "h200-like")
_LAUNCH_PREFIX = ("datasheet + the launch costs measured on our H100 / H200 (host gap, dispatch, latency, sustained "
                  "fraction), nothing fitted to this table; the kernel's own work beyond its bytes is not modelled; ")


def with_measured_launch(cfg: AcceleratorConfig) -> AcceleratorConfig:
    """``cfg`` with the per-call costs and sustained HBM fraction measured on our GPUs (:data:`LAUNCH_SOURCES`)."""
    host, dev = (load_accelerator(n) for n in LAUNCH_SOURCES)
    oc = replace(cfg.offchip, sustained_fraction=dev.offchip.sustained_fraction, latency_ns=dev.offchip.latency_ns)
    return cfg.replace(offchip=oc, op_overhead_ns=dev.op_overhead_ns, host_launch_ns=host.host_launch_ns)


# ---- the A100 harness: host issue overlaps device time ---------------------------------------------------------
#: Host floors of the A100 table's two harness paths, measured with the harness's own timing on one of our GPUs by
#: ``python -m bitsim.experiments.harness_floors OUT`` (columns path, N, K, repeat, us; comment lines name the device).
FLOORS_CSV = DATA_DIR / "a100_harness_floors.csv"
#: kernel of the A100 table -> ``path`` of the floors table whose smallest shape is that kernel's host floor.
HARNESS_PATHS = {"bitnet_w2a8": "w2a8_noop", "torch_bf16": "torch_bf16"}
_OVERLAP_PREFIX = ("datasheet + our GPUs' device costs (dispatch, latency, sustained fraction), each call "
                   "max(measured host floor of its harness path, device time), nothing fitted to this table; ")


def overlapped_call_us(host_floor_us: "float | np.ndarray", device_us: "float | np.ndarray") -> np.ndarray:
    """Per-call time of a harness that synchronises once per batch of calls: the host issues call i+1 while the
    device runs call i, so a call costs max(host issue, device time), not their sum."""
    return np.maximum(np.asarray(host_floor_us, dtype=float), np.asarray(device_us, dtype=float))


def load_harness_floors(path: "str | Path" = FLOORS_CSV) -> dict[str, float] | None:
    """kernel -> host floor per call (µs): the median over repeats of its path's smallest shape; None without
    the table.  A path of :data:`HARNESS_PATHS` missing from the table is a ``ValueError``."""
    path = Path(path)
    if not path.exists():
        return None
    df = pd.read_csv(path, comment="#")
    missing = [c for c in ("path", "N", "K", "us") if c not in df.columns]
    if missing:
        raise ValueError(f"{path.name}: missing columns {missing}")
    out = {}
    for kernel, hp in HARNESS_PATHS.items():
        rows = df[df["path"] == hp]
        if rows.empty:
            raise ValueError(f"{path.name}: no rows of harness path {hp!r} (the host floor of {kernel})")
        small = rows[rows["N"] * rows["K"] == (rows["N"] * rows["K"]).min()]
        floor = float(small["us"].median())
        if not (math.isfinite(floor) and floor > 0):
            raise ValueError(f"{path.name}: host floor of {hp!r} must be a positive number, got {floor}")
        out[kernel] = floor
    return out


def overlap_kernel_us(table: pd.DataFrame, cfg: AcceleratorConfig, floors: Mapping[str, float]) -> np.ndarray:
    """Per-call µs of each row of a ``measured_trace`` table under the overlap rule: max(host floor of the row's
    kernel, simulated device time on ``cfg`` with our GPUs' measured device costs and no host cost)."""
    unknown = sorted(set(table["kernel"]) - set(floors))
    if unknown:
        raise ValueError(f"no host floor for kernels {unknown}; floors given for {sorted(floors)}")
    device = _kernel_us(table, with_measured_launch(cfg).replace(host_launch_ns=0.0))
    return overlapped_call_us([floors[k] for k in table["kernel"]], device)


# measured_trace precision -> bits per weight element (for the bytes / ops columns of a replayed call)
_WEIGHT_BITS = {"w1.58a8": 2.0, "bf16": 16.0, "fp16": 16.0, "int8": 8.0}


# ---- operating points: supply voltage and leakage (no AcceleratorConfig field holds them) --------------
#: Supply (V) the cost table's 45 nm energies are stated at: [H14] (Horowitz, ISSCC 2014, fig. 1.1.9, "45nm 0.9V"),
#: which [B1] Table 2 reproduces and sim/data/hardware_costs.csv carries.
TABLE_VDD_V = 0.9
#: Slim-Llama's supply range and clock range, 0.58-1.0 V at 25-200 MHz: the comparison table of P. Dong et al.,
#: ISSCC 2026 paper 31.1 (arXiv:2605.09375), Fig. 31.1.6, column "ISSCC'25 [5]" (= Slim-Llama: 28 nm, 500 KB SRAM,
#: 1.6 GB/s, 20.25 mm^2), as transcribed in a public translation of that paper.  The pairing of the range ends
#: (lowest supply at the lowest clock) is the DVFS reading of the two ranges, an ASSUMPTION.
SLIM_LLAMA_VDD_RANGE_V = (0.58, 1.0)


@dataclass(frozen=True, kw_only=True)
class SupplyPoint:
    """The supply of one published operating point and the always-on power at it, with where each came from."""
    vdd_v: float                 # supply at this operating point
    ref_vdd_v: float             # supply the preset's per-op energies are stated at
    leakage_w: float             # always-on power at vdd_v (leakage, clock tree when not in the per-op energies)
    source: str

    @property
    def dynamic_scale(self) -> float:
        """Factor on the per-op energies: C V^2 at this supply over C V^2 at the table's."""
        return (self.vdd_v / self.ref_vdd_v) ** 2


_SLIM_SOURCE = ("supply range 0.58-1.0 V at 25-200 MHz from the comparison table of ISSCC 2026 paper 31.1 "
                "(arXiv:2605.09375, Fig. 31.1.6), ends paired (ASSUMPTION)")
_SLIM_LEAKAGE = ("leakage 0 W: ASSUMPTION bounded by the chip's whole 4.69 mW at 25 MHz; the cost table's leakage rows "
                 "(45 nm logic 0.02 W/mm^2, SRAM 10 uW/KiB at 85 C) would alone charge 0.10 W, 22x that bound")
#: preset -> its operating point.  A preset absent here is read at the table's supply with no leakage term.
SUPPLY_POINTS: dict[str, SupplyPoint] = {
    "slim-llama": SupplyPoint(vdd_v=SLIM_LLAMA_VDD_RANGE_V[1], ref_vdd_v=TABLE_VDD_V, leakage_w=0.0,
                              source=f"200 MHz at 1.0 V: {_SLIM_SOURCE}; {_SLIM_LEAKAGE}"),
    "slim-llama-25mhz": SupplyPoint(vdd_v=SLIM_LLAMA_VDD_RANGE_V[0], ref_vdd_v=TABLE_VDD_V, leakage_w=0.0,
                                    source=f"25 MHz at 0.58 V: {_SLIM_SOURCE}; {_SLIM_LEAKAGE}"),
}


def at_supply(summary: Mapping[str, Any], point: SupplyPoint) -> dict:
    """``summary`` with its on-chip per-op energies moved to ``point``'s supply (x V^2 / V_table^2), leakage added.

    The ``static`` component (a preset's own always-on power) and :data:`OFFCHIP_COMPONENTS` (the external memory,
    on its own supply) are kept as they are; the leakage of ``point`` is charged over the step's latency as
    component ``leakage``; ``energy_j`` and ``power_w`` follow.
    """
    lat = float(summary["latency_s"])
    kept = ("static",) + OFFCHIP_COMPONENTS
    comp = {k: float(v) * (1.0 if k in kept else point.dynamic_scale)
            for k, v in dict(summary["energy_j_by_component"]).items()}
    comp["leakage"] = point.leakage_w * lat
    energy = sum(comp.values())
    return {**dict(summary), "energy_j_by_component": comp, "energy_j": energy, "power_w": energy / lat}


# ---- die area: what lies outside the datapath (no summary field counts it) --------------------------------------
@dataclass(frozen=True, kw_only=True)
class DieRule:
    """The die around a preset's counted blocks: placement utilisation of its logic and its pad ring."""
    utilization: float                 # standard-cell placement density of the logic blocks (PEs, vector lanes)
    utilization_range: tuple
    io_cell_depth_mm: float            # height of the I/O pad cells: the ring's depth
    io_cell_depth_range_mm: tuple
    pad_pitch_mm: float                # pad pitch along the edge
    signal_pads: int                   # signal pads the interface needs
    signals_per_power_pair: int        # signal pads per pair of power pads
    source: str

    @property
    def pads(self) -> int:
        return self.signal_pads + 2 * math.ceil(self.signal_pads / self.signals_per_power_pair)


#: preset -> its die rule.  Slim-Llama's interface moves 1.6 GB/s at 200 MHz = 8 B per cycle [P]: 64 data pads,
#: plus 16 address / control / clock pads (ASSUMPTION).
DIE_RULES: dict[str, DieRule] = {
    "slim-llama": DieRule(
        utilization=0.7, utilization_range=(0.6, 0.85), io_cell_depth_mm=0.075, io_cell_depth_range_mm=(0.075, 0.18),
        pad_pitch_mm=0.055, signal_pads=80, signals_per_power_pair=5,
        source=("28 nm wire-bond I/O cells 55 um x 75 um at 55 um inline pitch (range: 25 x 130 and 18 x 180 um "
                "staggered cells; Certus Semiconductor TSMC 28 nm I/O library page, certus-semi.com/tsmc-28nm); one "
                "pair of power pads per 5 signal pads (ASSUMPTION, an IO-design rule of thumb of 4-6; the pads do not "
                "bind: the die is core-limited); placement utilisation 0.7 of the logic (ASSUMPTION, range "
                "0.6-0.85); SRAM macros counted at their own area; square die (ASSUMPTION)")),
}


def die_area_mm2(area_by_part: Mapping[str, float], rule: DieRule, *, utilization: float | None = None,
                 io_cell_depth_mm: float | None = None) -> float:
    """Die area (mm^2): the logic parts over ``rule.utilization`` plus the other parts (SRAM macros, PHYs), on a
    square core, ringed by I/O cells ``io_cell_depth_mm`` deep; the edge is the larger of the core-limited edge
    and the pad-limited one (``pads`` x pitch over four sides)."""
    util = rule.utilization if utilization is None else utilization
    depth = rule.io_cell_depth_mm if io_cell_depth_mm is None else io_cell_depth_mm
    logic = sum(float(v) for k, v in area_by_part.items() if k in ("pe", "vector"))
    other = sum(float(v) for k, v in area_by_part.items() if k not in ("pe", "vector"))
    core = logic / util + other
    edge = max(math.sqrt(core), rule.pads * rule.pad_pitch_mm / 4.0) + 2.0 * depth
    return edge * edge


def die_area_range_mm2(area_by_part: Mapping[str, float], rule: DieRule) -> tuple[float, float]:
    """(smallest, largest) die area over the rule's sensitivity ranges: the densest placement with the thinnest
    ring, the sparsest with the thickest."""
    lo = die_area_mm2(area_by_part, rule, utilization=max(rule.utilization_range),
                      io_cell_depth_mm=min(rule.io_cell_depth_range_mm))
    hi = die_area_mm2(area_by_part, rule, utilization=min(rule.utilization_range),
                      io_cell_depth_mm=max(rule.io_cell_depth_range_mm))
    return lo, hi


@dataclass(frozen=True, kw_only=True)
class A100Fit:
    """Fitted A100 parameters and where they came from (rows, method)."""
    bandwidth_fraction: float            # sustained fraction of the preset's HBM bandwidth
    host_launch_ns: dict                 # kernel -> per-call host cost, ns
    provenance: dict                     # parameter -> text (rows, method)


# ---- loading ------------------------------------------------------------------------------------
def load_published(name: str) -> AcceleratorConfig:
    """A published-design preset by name (``sim/presets/published/<name>.yaml``)."""
    path = PUBLISHED_PRESET_DIR / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in PUBLISHED_PRESET_DIR.glob("*.yaml"))
        raise ValueError(f"unknown published preset {name!r}; known: {known}")
    return load_accelerator(path)


def load_published_trace(name: str) -> pd.DataFrame:
    """A committed published-workload op trace by name (checked by :func:`sim.load_trace`)."""
    if name not in TRACE_FILES:
        raise ValueError(f"unknown published trace {name!r}; known: {sorted(TRACE_FILES)}")
    return load_trace(TRACE_FILES[name])


def load_figures(path: "str | Path" = FIGURES_CSV) -> pd.DataFrame:
    """The published figures, typed and checked; a bad row is a ``ValueError`` naming row and field."""
    path = Path(path)
    df = pd.read_csv(path, dtype=str, keep_default_na=False, comment=None, skiprows=_comment_lines(path))
    missing = [c for c in FIGURE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path.name}: missing columns {missing}")
    if df.empty:
        raise ValueError(f"{path.name}: no figures")
    out = []
    for i, r in df.iterrows():
        where = f"{path.name} row {i} ({r['design']!r}, {r['figure']!r})"
        for c in ("design", "figure", "source"):
            if not r[c].strip():
                raise ValueError(f"{where}: {c} is empty")
        if r["metric"] not in METRIC_UNITS:
            raise ValueError(f"{where}: metric {r['metric']!r} is not one of {sorted(METRIC_UNITS)}")
        if r["unit"] != METRIC_UNITS[r["metric"]]:
            raise ValueError(f"{where}: unit {r['unit']!r}; metric {r['metric']} is given in "
                             f"{METRIC_UNITS[r['metric']]!r}")
        value = _number(r["value"], f"{where}: value")
        if not value > 0:
            raise ValueError(f"{where}: value must be positive, got {value}")
        if r["target"] not in ("true", "false"):
            raise ValueError(f"{where}: target must be 'true' or 'false', got {r['target']!r}")
        target = r["target"] == "true"
        rec = {**{c: r[c] for c in FIGURE_COLUMNS}, "value": value, "target": target,
               "M": 0, "N": 0, "K": 0}
        if not target:
            if not r["note"].strip():
                raise ValueError(f"{where}: a figure that is not a target needs a note saying why")
            out.append(rec)
            continue
        if r["metric"] in RECORD_ONLY_METRICS:
            raise ValueError(f"{where}: metric {r['metric']!r} is recorded only, never a target "
                             f"(no simulation summary gives it)")
        if not r["preset"]:
            raise ValueError(f"{where}: a target needs a preset")
        if not (PUBLISHED_PRESET_DIR / f"{r['preset']}.yaml").exists():
            raise ValueError(f"{where}: preset {r['preset']!r} is not in {PUBLISHED_PRESET_DIR}")
        wl = r["workload"]
        if wl == "gemv":
            if r["metric"] != "kernel_us":
                raise ValueError(f"{where}: a gemv workload gives metric kernel_us, not {r['metric']!r}")
            if r["precision"] not in _WEIGHT_BITS or not r["kernel"]:
                raise ValueError(f"{where}: a gemv needs a kernel name and a precision in {sorted(_WEIGHT_BITS)}")
            for c in ("M", "N", "K"):
                rec[c] = _count(r[c], f"{where}: {c}")
        elif wl.startswith("trace:"):
            if wl[len("trace:"):] not in TRACE_FILES:
                raise ValueError(f"{where}: workload {wl!r}: unknown trace; known: "
                                 f"{['trace:' + k for k in TRACE_FILES]}")
        else:
            raise ValueError(f"{where}: workload must be 'gemv' or 'trace:<name>', got {wl!r}")
        out.append(rec)
    return pd.DataFrame(out, columns=list(FIGURE_COLUMNS))


def _comment_lines(path: Path) -> int:
    n = 0
    with open(path) as f:
        for line in f:
            if not line.startswith("#"):
                break
            n += 1
    return n


def _number(s: str, where: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise ValueError(f"{where}: expected a number, got {s!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{where}: must be finite, got {s!r}")
    return v


def _count(s: str, where: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise ValueError(f"{where}: expected a positive integer, got {s!r}") from None
    if v < 1:
        raise ValueError(f"{where}: expected a positive integer, got {s!r}")
    return v


# ---- kernel replays (workload gemv) ---------------------------------------------------------------
def kernel_table(figures: pd.DataFrame) -> pd.DataFrame:
    """The ``gemv`` target figures as a ``measured_trace`` table (one measured call each, in order)."""
    g = figures[figures["target"] & (figures["workload"] == "gemv")]
    rows = []
    for _, r in g.iterrows():
        M, N, K, us = int(r["M"]), int(r["N"]), int(r["K"]), float(r["value"])
        act_bits = 8 if r["precision"] == "w1.58a8" else 16
        nbytes = N * K * _WEIGHT_BITS[r["precision"]] / 8 + M * K * act_bits / 8 + M * N * 2
        ops = 2.0 * M * N * K
        rows.append(dict(op="gemv", kernel=r["kernel"], impl="baseline", precision=r["precision"], M=M, N=N, K=K,
                         sparsity=0.0, cuda_graph=False, us=us, bytes=float(nbytes), ops=ops,
                         gbps=nbytes / us / 1e3, tops=ops / us / 1e6, exact=False, gpu=r["design"], torch="",
                         triton="", cuda="", date=""))
    return validate(pd.DataFrame(rows), "measured_trace")


def _kernel_us(table: pd.DataFrame, cfg: AcceleratorConfig) -> np.ndarray:
    """Simulated µs of each measured call (no L2 flush: torch.utils.benchmark reruns the call as is)."""
    rows, _ = compare_measured(table, cfg, flush_dirty_bytes=0.0)
    if (rows["skipped"] != "").any():
        raise ValueError(f"{cfg.name}: kernel rows not replayed: {sorted(set(rows['skipped']) - {''})}")
    return rows["sim_us"].to_numpy(dtype=float)


def with_bandwidth_fraction(cfg: AcceleratorConfig, fraction: float) -> AcceleratorConfig:
    """``cfg`` with its off-chip bandwidth scaled by ``fraction`` (re-validated)."""
    return cfg.replace(offchip=replace(cfg.offchip, bandwidth_gbps=cfg.offchip.bandwidth_gbps * fraction))


def _pick(table: pd.DataFrame, key: tuple[str, int, int]) -> pd.DataFrame:
    kernel, N, K = key
    sel = table[(table["kernel"] == kernel) & (table["N"] == N) & (table["K"] == K)]
    if len(sel) != 1:
        raise ValueError(f"A100 calibration row {key} is not exactly one row of the kernel table ({len(sel)})")
    return sel


def fit_a100(table: pd.DataFrame, cfg: AcceleratorConfig) -> A100Fit:
    """Fit the A100's sustained HBM fraction and per-kernel host cost on the rows of :data:`A100_FIT` only.

    BF16: with fraction f, torch's host cost o(f) = measured(small) - sim(small; f) makes the small row
    exact; f solves o(f) + sim(large; f) = measured(large) by bisection in [0.05, 1] (the gap
    sim(large) - sim(small) falls as f grows).  If the solution needs o < 0, o = 0 and f fits the large
    row alone.  W2A8: o = measured - sim(f), clamped at 0.
    """
    small, large = (_pick(table, k) for k in A100_FIT["bandwidth_fraction+torch_bf16"])
    pair = pd.concat([small, large], ignore_index=True)
    m_small, m_large = float(small["us"].iloc[0]), float(large["us"].iloc[0])

    def host_and_residual(f: float) -> tuple[float, float]:
        ts, tl = _kernel_us(pair, with_bandwidth_fraction(cfg, f))
        o = m_small - ts
        return o, o + tl - m_large

    lo, hi = _FRACTION_RANGE
    method = "joint: two rows, two unknowns, bisection on the fraction"
    if host_and_residual(hi)[1] >= 0:
        f = hi
    elif host_and_residual(lo)[1] <= 0:
        f = lo
    else:
        for _ in range(_BISECT_STEPS):
            mid = 0.5 * (lo + hi)
            if host_and_residual(mid)[1] > 0:
                lo = mid
            else:
                hi = mid
        f = 0.5 * (lo + hi)
    o_bf16 = host_and_residual(f)[0]
    if o_bf16 < 0:  # no host cost can explain it: fit the fraction on the large (HBM-bound) row alone
        lo, hi = _FRACTION_RANGE
        for _ in range(_BISECT_STEPS):
            mid = 0.5 * (lo + hi)
            if _kernel_us(large, with_bandwidth_fraction(cfg, mid))[0] > m_large:
                lo = mid
            else:
                hi = mid
        f, o_bf16 = 0.5 * (lo + hi), 0.0
        method = "host cost clamped at 0; fraction from the large row alone, bisection"
    (w_key,) = A100_FIT["bitnet_w2a8"]
    w_row = _pick(table, w_key)
    o_w2a8 = max(0.0, float(w_row["us"].iloc[0]) - _kernel_us(w_row, with_bandwidth_fraction(cfg, f))[0])
    bf_rows = ", ".join(f"{k} {n}x{kk}" for k, n, kk in A100_FIT["bandwidth_fraction+torch_bf16"])
    prov = {
        "offchip.bandwidth_gbps": (f"{f:.4f} x {cfg.offchip.bandwidth_gbps:g} GB/s = "
                                   f"{f * cfg.offchip.bandwidth_gbps:.1f} GB/s sustained; fitted on {bf_rows} "
                                   f"({method})"),
        "host_launch_ns[torch_bf16]": f"{o_bf16 * 1e3:.1f} ns per call; fitted with the fraction on {bf_rows}",
        "host_launch_ns[bitnet_w2a8]": (f"{o_w2a8 * 1e3:.1f} ns per call; fitted on {w_key[0]} {w_key[1]}x{w_key[2]} "
                                        f"(measured - simulated, fraction fixed)"),
    }
    return A100Fit(bandwidth_fraction=f, host_launch_ns={"torch_bf16": o_bf16 * 1e3, "bitnet_w2a8": o_w2a8 * 1e3},
                   provenance=prov)


def _a100_split(kernel: str, N: int, K: int) -> str:
    keys = {k for rows in A100_FIT.values() for k in rows}
    return "calibration" if (kernel, N, K) in keys else "held-out"


# ---- reading a simulation summary -----------------------------------------------------------------
def figure_value(summary: Mapping[str, Any], metric: str) -> tuple[float, str]:
    """Our value of ``metric`` from a simulation summary, and a note when it cannot be had.

    Reads fields by name, so fields a later simulator adds are used when present: a die area from the
    first of :data:`AREA_FIELDS` (else any ``*area*mm2`` field but ``compute_area_mm2_45nm``); power
    = energy per step / latency; chip power leaves out :data:`OFFCHIP_COMPONENTS`.
    """
    lat = float(summary["latency_s"])
    energy = float(summary["energy_j"])
    if metric == "latency_s":
        return lat, ""
    if metric == "tokens_per_s":
        return float(summary["tokens_per_s"]), ""
    if metric == "power_w":
        return energy / lat, ""
    if metric == "chip_power_w":
        comp = dict(summary["energy_j_by_component"])
        return sum(float(v) for k, v in comp.items() if k not in OFFCHIP_COMPONENTS) / lat, ""
    if metric == "peak_tops":
        return float(summary["peak_tops"]), ""
    if metric == "tokens_per_s_per_w":
        return float(summary["tokens_per_s"]) / (energy / lat), ""
    if metric == "area_mm2":
        keys = list(summary)
        found = [k for k in AREA_FIELDS if k in keys] or [
            k for k in keys if "area" in k and k.endswith("mm2") and k != "compute_area_mm2_45nm"]
        if found:
            return float(summary[found[0]]), f"summary field {found[0]}"
        pe = summary.get("compute_area_mm2_45nm", float("nan"))
        return float("nan"), (f"the simulator summary has no die-area field (only compute_area_mm2_45nm = "
                              f"{float(pe):.3g} mm2, PE arithmetic at 45 nm, not comparable with a die)")
    raise ValueError(f"metric {metric!r} cannot be read from a simulation summary")


def chip_summary(summary: Mapping[str, Any], preset: str) -> dict:
    """A simulation summary read as the published chip: at the supply of :data:`SUPPLY_POINTS` and with the die
    area of :data:`DIE_RULES` (field ``die_area_mm2``) where the preset has one."""
    out = dict(summary)
    if preset in SUPPLY_POINTS:
        out = at_supply(out, SUPPLY_POINTS[preset])
    if preset in DIE_RULES and "area_mm2_by_part" in out:
        out["die_area_mm2"] = die_area_mm2(out["area_mm2_by_part"], DIE_RULES[preset])
    return out


# ---- the comparison table -------------------------------------------------------------------------
def _row(fig: pd.Series, *, ours: float, variant: str, split: str, preset: str, explanation: str) -> dict:
    theirs = float(fig["value"])
    err = (ours - theirs) / theirs * 100.0 if math.isfinite(ours) else float("nan")
    within = None if not math.isfinite(err) else bool(abs(err) <= BAR * 100.0)
    return dict(design=fig["design"], figure=fig["figure"], metric=fig["metric"], unit=fig["unit"],
                theirs=theirs, ours=ours, error_pct=err, within_bar=within, variant=variant, split=split,
                preset=preset, source=fig["source"], explanation="" if within else explanation)


def _a100_times(figs: pd.DataFrame, floors: "Mapping[str, float] | None"
                ) -> tuple[dict[str, dict], A100Fit | None]:
    """Per variant, (kernel, N, K) -> simulated µs of every A100 kernel figure, and the A100 fit (None: no rows).

    Variants: ``stated``, ``measured launch``, ``measured floors`` (only with ``floors``), ``calibrated``."""
    kt = kernel_table(figs)
    if not len(kt):
        return {}, None
    presets = sorted(set(figs.loc[figs["target"] & (figs["workload"] == "gemv"), "preset"]))
    if presets != [A100_PRESET]:
        raise ValueError(f"gemv figures are replayed on {A100_PRESET} only, got presets {presets}")
    cfg = load_published(A100_PRESET)
    keys = list(zip(kt["kernel"], kt["N"], kt["K"]))
    times = {"stated": dict(zip(keys, _kernel_us(kt, cfg))),
             "measured launch": dict(zip(keys, _kernel_us(kt, with_measured_launch(cfg))))}
    if floors:
        times["measured floors"] = dict(zip(keys, overlap_kernel_us(kt, cfg, floors)))
    fit = fit_a100(kt, cfg)
    base = with_bandwidth_fraction(cfg, fit.bandwidth_fraction)
    times["calibrated"] = {}
    for kernel, sub in kt.groupby("kernel", sort=False):
        cal_cfg = base.replace(host_launch_ns=fit.host_launch_ns.get(kernel, 0.0), calibration=dict(fit.provenance))
        for key, us in zip(zip(sub["kernel"], sub["N"], sub["K"]), _kernel_us(sub, cal_cfg)):
            times["calibrated"][key] = us
    return times, fit


#: A100 variant -> (preset suffix, explanation prefix of a miss); the order is the rows' order.
_A100_VARIANTS = {"stated": ("", _STATED_PREFIX),
                  "measured launch": (" (measured launch)", _LAUNCH_PREFIX),
                  "measured floors": (" (measured floors, overlap)", _OVERLAP_PREFIX),
                  "calibrated": (" (calibrated)", "")}


def _kernel_rows(fig: pd.Series, times: Mapping[str, dict]) -> list[dict]:
    """The rows of one A100 kernel figure, one per variant in ``times``."""
    key = (fig["kernel"], int(fig["N"]), int(fig["K"]))
    rows = []
    for variant, (suffix, prefix) in _A100_VARIANTS.items():
        if variant not in times:
            continue
        split = _a100_split(*key) if variant == "calibrated" else "all"
        rows.append(_row(fig, ours=float(times[variant][key]), variant=variant, split=split,
                         preset=fig["preset"] + suffix, explanation=prefix + fig["note"]))
    return rows


def validate_published(figures: "pd.DataFrame | None" = None,
                       traces: "Mapping[str, pd.DataFrame] | None" = None,
                       floors: "Mapping[str, float] | None" = None) -> tuple[pd.DataFrame, A100Fit | None]:
    """The published-accelerator table (columns :data:`RESULT_COLUMNS`) and the A100 fit.

    ``figures``: :func:`load_figures` output (default: the committed table); ``traces``: trace name ->
    op trace (default: the committed tables of :data:`TRACE_FILES`); ``floors``: kernel -> host floor µs of
    its harness path (default: :func:`load_harness_floors`, None when no measured table is committed).
    Rows come in the figures' order: per target its ``stated`` row and, for the A100 kernel rows, its
    ``measured launch``, ``measured floors`` (with floors) and ``calibrated`` rows; one row per figure that
    is not a target (``ours`` NaN, the note as explanation).
    """
    figs = load_figures() if figures is None else figures
    traces = dict(traces or {})
    floors = load_harness_floors() if floors is None else dict(floors)
    times, fit = _a100_times(figs, floors)
    summaries: dict[tuple[str, str], Mapping[str, Any]] = {}
    out = []
    for _, fig in figs.iterrows():
        if not fig["target"]:
            out.append(_row(fig, ours=float("nan"), variant="", split="not a target", preset=fig["preset"],
                            explanation=fig["note"]))
            continue
        if fig["workload"] == "gemv":
            out.extend(_kernel_rows(fig, times))
            continue
        name = fig["workload"][len("trace:"):]
        skey = (fig["preset"], name)
        if skey not in summaries:
            trace = traces[name] if name in traces else load_published_trace(name)
            summaries[skey] = chip_summary(simulate(trace, load_published(fig["preset"])).summary.to_dict(),
                                           fig["preset"])
        ours, why = figure_value(summaries[skey], fig["metric"])
        expl = fig["note"] if not why else f"{why}; {fig['note']}"
        out.append(_row(fig, ours=ours, variant="stated", split="all", preset=fig["preset"], explanation=expl))
    return pd.DataFrame(out, columns=RESULT_COLUMNS), fit


def bar_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Per design, variant and split: figures compared, within the bar, median |error| (targets only)."""
    t = table[table["split"] != "not a target"].copy()
    t["abs_err"] = t["error_pct"].abs()
    t["within"] = t["within_bar"].fillna(False).astype(bool)
    t["compared"] = t["ours"].notna()
    return (t.groupby(["design", "variant", "split"], sort=False)
            .agg(figures=("figure", "size"), compared=("compared", "sum"), within_bar=("within", "sum"),
                 median_abs_error_pct=("abs_err", "median")).reset_index())


def table_markdown(table: pd.DataFrame) -> str:
    """The comparison as a markdown table (sources abbreviated to their first clause)."""
    head = ("| design | figure | variant / split | theirs | ours | error | within 25 %? | explanation of a miss |\n"
            "|---|---|---|---|---|---|---|---|\n")
    lines = []
    for _, r in table.iterrows():
        unit = r["unit"]
        ours = "—" if not math.isfinite(r["ours"]) else f"{r['ours']:.4g} {unit}"
        err = "—" if not math.isfinite(r["error_pct"]) else f"{r['error_pct']:+.1f} %"
        within = {True: "yes", False: "**no**", None: "—"}[r["within_bar"]]
        vs = f"{r['variant']} / {r['split']}" if r["variant"] else r["split"]
        lines.append(f"| {r['design']} | {r['figure']} | {vs} | {r['theirs']:.4g} {unit} | {ours} | {err} | "
                     f"{within} | {r['explanation']} |")
    return head + "\n".join(lines) + "\n"
