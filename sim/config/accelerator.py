"""Accelerator description: YAML -> typed, validated, frozen dataclasses.

One YAML file describes one accelerator (see ``sim/presets/*.yaml`` and
docs/simulator.md).  It is read by the project's one strict, bounded YAML
loader (``contract.config.load_yaml``: duplicate keys, alias bombs and
oversized files refused, YAML 1.2 floats).  Every field is checked on load: an
unknown field, a wrong type, a size out of its range (:data:`LIMITS`) or an
unknown precision raises ``ValueError`` naming the field (e.g. ``arrays[0].rows``).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.config import dataclass_fields, load_yaml, quote

from .. import energy
from ..compute.precision import KV_FORMATS, check_operand

PRESET_DIR = Path(__file__).resolve().parents[1] / "presets"
PRESETS = {"fp16": "fp16.yaml", "b1.58": "b1.58.yaml", "a4.8": "a4.8.yaml",
           "edge": "edge.yaml", "h100-like": "h100-like.yaml", "h100-triton": "h100-triton.yaml",
           "h200-like": "h200-like.yaml", "h200-triton": "h200-triton.yaml"}
# Packed sub-byte weight / KV operands an array may have to unpack in software
# (shift, mask, convert) before its PEs can use them (``ArrayConfig.unpack``).
PACKED_OPERANDS = ("ternary", "int3", "int4", "fp4")
DATAFLOWS = ("weight-stationary", "output-stationary", "input-stationary")
POLICIES = ("promote", "strict")
COMPARISONS = ("equal-peak-throughput", "equal-area", "measured-ceilings", "standalone")
# What a preset's joules mean: "model" = dynamic energy of the per-op table
# (sim.energy) + static_power_w x time; "dynamic-only" = the per-op table alone,
# no static / board power (e.g. h100-like: an H100 board draws ~700 W, which the
# 7 nm per-op table does not describe), so reports can label such numbers.
ENERGY_BASES = ("model", "dynamic-only")
# Where static power comes from: "fixed" = static_power_w alone (a stated number, e.g. 0 for a
# dynamic-only GPU preset); "leakage" = the leakage of the design's logic, SRAM and memory PHYs
# from the cost table (sim.energy.chip) + static_power_w (any other fixed draw, default 0).
STATIC_MODELS = ("fixed", "leakage")


@dataclass(frozen=True)
class PEOp:
    """One operand pair a PE supports, with its rate (MACs per PE per cycle)."""
    weights: str
    acts: str
    rate: float = 1.0


@dataclass(frozen=True, kw_only=True)
class ArrayConfig:
    """A systolic array (``count`` identical copies share each op's tiles)."""
    name: str
    rows: int
    cols: int
    dataflow: str
    pe_ops: tuple[PEOp, ...]
    count: int = 1
    # Cycles to load one fold of stationary operands into the PEs.  None = rows
    # (shifted in one row per cycle, as SCALE-Sim models it); a wide load bus
    # (e.g. 1) is a design choice a preset must state.
    weight_load_cycles: int | None = None
    # True: PEs double-buffer the stationary operand, so the next fold's load
    # and the previous fold's drain overlap the current fold (TPU-style).
    # False: folds run back to back as in SCALE-Sim.
    pipelined_folds: bool = False
    # Software unpack stage of packed operands this array has no native PE pair for
    # (a GPU decoding 2-bit ternary weights or 3/4-bit KV codes in registers):
    # operand -> elements unpacked per cycle per array copy.  It overlaps the
    # MACs, so a promoted op takes max(systolic, SRAM, unpack) cycles.  Absent
    # operand = unpacking is free (ideal hardware / a native pair).
    unpack: dict = field(default_factory=dict)
    # Kernel-dispatch rule: the largest M (token rows per GEMM instance) this
    # array takes; None = any M.  A GPU library picks its kernel by M (our
    # ternary launcher runs the CUDA-core GEMV only for M <= 4 and the
    # tensor-core GEMM otherwise); an ASIC leaves it unset.
    max_m: int | None = None
    # Longest reduction (K) the integer accumulators are built for: their width is the product
    # width + ceil(log2(max_k)) (sim.energy.pe).  16384 covers LLaMA-7B's K = 11008 (14 bits).
    max_k: int = 16384
    # Adder width of float pairs' accumulation: fp32 (tensor-core practice) or fp16.
    float_accumulator: str = "fp32"
    # GEMV-native decode mode: when an op streams fewer rows than it takes to load a fold's
    # stationary operand (M / rate < load cycles: decode GEMVs), the array does not hold the
    # weights stationary but streams them from the weight buffer through the PEs at one weight
    # per PE per cycle (the fold load costs 1 cycle, hidden under the stream), reading
    # rows x cols x weight bits per cycle from SRAM (charged by the SRAM bandwidth bound).
    # False: every fold pays weight_load_cycles (the weight-load cap of a stationary array).
    stream_weights: bool = False

    def takes_m(self, M: int) -> bool:
        """True if the dispatch rule lets this array run an op with ``M`` rows."""
        return self.max_m is None or M <= self.max_m

    @property
    def load_cycles(self) -> int:
        return self.rows if self.weight_load_cycles is None else self.weight_load_cycles

    def load_cycles_for(self, stream: int) -> int:
        """Cycles to load one fold's stationary operand when a fold streams ``stream`` cycles
        (1 in the GEMV-native mode when the load would exceed the stream; see ``stream_weights``)."""
        if self.stream_weights and self.dataflow != "output-stationary" and stream < self.load_cycles:
            return 1
        return self.load_cycles

    @property
    def pes(self) -> int:
        return self.rows * self.cols * self.count


@dataclass(frozen=True)
class VectorConfig:
    """Vector unit for norms, softmax, quantizers, TopK, GLU, RoPE."""
    lanes: int                       # element-passes per cycle
    # passes over each element per op kind (a two-pass norm reads to reduce, then scales)
    passes: dict = field(default_factory=lambda: dict(_DEFAULT_PASSES))


_DEFAULT_PASSES = {"rmsnorm": 2, "softmax": 3, "quant": 2, "topk": 4, "glu": 1,
                   "rope": 1, "kv_quant": 2, "embedding": 1, "residual": 1}


@dataclass(frozen=True)
class OffchipConfig:
    kind: str                        # memory generation: a key of the cost table (hbm3, lpddr5, ...) or a label
    capacity_gb: float
    bandwidth_gbps: float            # GB/s (1e9 bytes/s), PEAK; read + write share it
    pj_per_bit: float
    # Fraction of the peak a streaming DMA sustains (refresh, bank conflicts, turnarounds);
    # the simulator moves bytes at bandwidth_gbps x sustained_fraction.  1.0 = the peak as
    # given (a preset whose bandwidth_gbps is already a measured sustained rate).  The cost
    # table has a default per generation (memory.<kind>.sustained_fraction, e.g. 0.9 for HBM,
    # from our H100 copy: 3020 of 3350 GB/s).
    sustained_fraction: float = 1.0
    # Memory interfaces (HBM stacks, LPDDR x64 channels, ...): each adds the PHY + controller
    # area and static power of ``kind`` from the cost table; 0 = not costed.
    interfaces: int = 0

    @property
    def sustained_gbps(self) -> float:
        return self.bandwidth_gbps * self.sustained_fraction


@dataclass(frozen=True)
class SramConfig:
    weight_buffer_kib: float         # double-buffered: each half holds one streamed tile
    activation_buffer_kib: float     # activations that fit stay on chip between ops
    bandwidth_bytes_per_cycle: float
    pj_per_bit: float


@dataclass(frozen=True)
class SparsityConfig:
    skip_weight_fetch: bool = False  # do not fetch weight rows whose activations are all zero
    skip_compute: bool = False       # do not spend cycles / energy on zero activations
    # Causal prefill attention: skip the folds whose keys every query of the fold must not see
    # (sim.compute.systolic.causal_systolic_cycles).  False: the full square is computed.
    skip_masked_attention: bool = True


@dataclass(frozen=True, kw_only=True)
class AcceleratorConfig:
    name: str
    description: str
    clock_ghz: float
    process_nm: int
    comparison: str                  # basis of comparison with the other presets
    area_assumption: str
    arrays: tuple[ArrayConfig, ...]
    vector: VectorConfig
    offchip: OffchipConfig
    sram: SramConfig
    sparsity: SparsityConfig = SparsityConfig()
    kv_formats: tuple[str, ...] = ("kv-fp16",)
    precision_policy: str = "promote"
    prefetch_across_ops: bool = True  # DMA may fetch the next op's weights during this op
    op_overhead_ns: float = 0.0       # fixed per-op latency (kernel launch + pipeline fill on a GPU)
    # Extra latency of a kernel launched from the host without a CUDA graph.
    # Only replays of measured kernels (sim.validation, rows with cuda_graph
    # false) add it, once per measured kernel call; op traces never do.
    host_launch_ns: float = 0.0
    static_power_w: float = 0.0       # fixed static draw (W); with static_model leakage, added to the leakage
    static_model: str = "fixed"       # one of STATIC_MODELS
    energy_basis: str = "model"       # one of ENERGY_BASES; copied to the summary
    notes: str = ""
    # Provenance of fitted numbers: parameter path -> where it came from
    # (file, date, rows, method); written by sim.calibrate.
    calibration: dict = field(default_factory=dict)

    # ---- derived quantities --------------------------------------------
    @property
    def offchip_bytes_per_cycle(self) -> float:
        """Sustained off-chip bytes per cycle (peak x ``offchip.sustained_fraction``)."""
        return self.offchip.sustained_gbps / self.clock_ghz

    def chip_costs(self) -> "energy.ChipCosts":
        """Area (mm^2) and leakage (W) by part, peak TOP/s (:func:`sim.energy.chip_costs`)."""
        return energy.chip_costs(self)

    @property
    def area_mm2(self) -> float:
        """Die area of the design (PE arrays, vector unit, SRAM, memory PHYs), mm^2 at ``process_nm``."""
        return self.chip_costs().area_mm2

    @property
    def static_w(self) -> float:
        """Static power (W): ``static_power_w`` + the design's leakage when ``static_model`` is leakage."""
        leak = self.chip_costs().leakage_w if self.static_model == "leakage" else 0.0
        return self.static_power_w + leak

    @property
    def op_overhead_cycles(self) -> int:
        return int(math.ceil(self.op_overhead_ns * self.clock_ghz))

    def peak_macs_per_cycle(self, weights: str, acts: str) -> float:
        """Best MAC rate over arrays with an exact ``weights x acts`` pair (0 if none)."""
        return max((a.pes * p.rate for a in self.arrays for p in a.pe_ops
                    if (p.weights, p.acts) == (weights, acts)), default=0.0)

    def compute_area_mm2_45nm(self) -> float:
        """Arithmetic area of all PEs at 45 nm ([H14] areas).

        One unit per distinct arithmetic primitive of an array's pairs: pairs
        that use the same primitive share it (a4.8's ternary x INT8 and
        ternary x FP4-code pairs both use the PE's INT8 adder).
        """
        um2 = sum(a.pes * sum(energy.AREA_UM2_45NM[prim].value for prim in
                              dict.fromkeys(x for p in a.pe_ops for x in energy.mac_parts(p.weights, p.acts)))
                  for a in self.arrays)
        return um2 / 1e6

    def replace(self, **changes: Any) -> "AcceleratorConfig":
        """A copy with top-level fields changed (re-validated); an unknown field is a ``ValueError``."""
        known = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(k for k in changes if k not in known)
        if unknown:
            raise ValueError(f"{self.name}: unknown field(s) {quote(unknown)} to replace; known: {known}")
        return _check_config(dataclasses.replace(self, **changes))


# --------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------
#: Sane range of every number of an accelerator description: field -> (lowest, highest, unit).
#: A value outside is a typo or a unit slip (``rows: 1000000000000``, ``clock_ghz: 1e-12``) and
#: is refused naming the field; the ranges are wide enough for any chip from an MCU to a GPU.
LIMITS: dict[str, tuple[float, float, str]] = {
    "clock_ghz": (1e-3, 100.0, "GHz"),
    "arrays.rows": (1, 1 << 16, "PEs"),
    "arrays.cols": (1, 1 << 16, "PEs"),
    "arrays.count": (1, 1 << 20, "array copies"),
    "arrays.weight_load_cycles": (1, 1 << 20, "cycles"),
    "arrays.max_m": (1, 1 << 40, "rows"),
    "arrays.max_k": (1, 1 << 40, "reduction length"),
    "arrays.pe_ops.rate": (1e-6, 1024.0, "MACs per PE per cycle"),
    "arrays.unpack": (1e-6, 1e9, "elements per cycle per copy"),
    "vector.lanes": (1, 1 << 24, "element-passes per cycle"),
    "vector.passes": (1e-3, 1000.0, "passes per element"),
    "offchip.capacity_gb": (1e-6, 1e6, "GB"),
    "offchip.bandwidth_gbps": (1e-3, 1e6, "GB/s"),
    "offchip.pj_per_bit": (0.0, 1e4, "pJ/bit"),
    "offchip.sustained_fraction": (1e-3, 1.0, "fraction of peak"),
    "offchip.interfaces": (0, 1024, "interfaces"),
    "sram.weight_buffer_kib": (1.0, float(1 << 24), "KiB"),
    "sram.activation_buffer_kib": (0.0, float(1 << 24), "KiB"),
    "sram.bandwidth_bytes_per_cycle": (1e-3, float(1 << 24), "bytes per cycle"),
    "sram.pj_per_bit": (0.0, 1e4, "pJ/bit"),
    "op_overhead_ns": (0.0, 1e9, "ns"),
    "host_launch_ns": (0.0, 1e9, "ns"),
    "static_power_w": (0.0, 1e6, "W"),
}


def load_accelerator(name_or_path: "str | Path | AcceleratorConfig") -> AcceleratorConfig:
    """Load a preset by name (``fp16``, ``b1.58``, ``a4.8``, ``edge``, ``h100-like``, ``h100-triton``)
    or a YAML path (strict, bounded loader); an :class:`AcceleratorConfig` is re-validated."""
    if isinstance(name_or_path, AcceleratorConfig):
        return _check_config(name_or_path)
    if not isinstance(name_or_path, (str, Path)):
        raise TypeError(f"accelerator must be a preset name, a YAML path or an AcceleratorConfig, "
                        f"got {type(name_or_path).__name__}")
    key = str(name_or_path)
    if key in PRESETS:
        path = PRESET_DIR / PRESETS[key]
    else:
        path = Path(key)
        if not path.exists():
            raise ValueError(f"unknown accelerator {quote(key)}: not a preset ({sorted(PRESETS)}) "
                             f"and no such file")
    return from_dict(load_yaml(path), where=path.name)


def from_dict(raw: Any, where: str = "accelerator") -> AcceleratorConfig:
    """Build a validated config from a plain dict (the parsed YAML, or ``dataclasses.asdict`` of a config)."""
    d = dataclass_fields(raw, AcceleratorConfig, where)
    d["arrays"] = tuple(_array(a, f"{where}: arrays[{i}]") for i, a in enumerate(
        _list(d.get("arrays"), f"{where}: arrays")))
    d["vector"] = _vector(d.get("vector"), f"{where}: vector")
    d["offchip"] = _build(d.get("offchip"), OffchipConfig, f"{where}: offchip")
    d["sram"] = _build(d.get("sram"), SramConfig, f"{where}: sram")
    d["sparsity"] = _build(d.get("sparsity", {}), SparsityConfig, f"{where}: sparsity")
    if "kv_formats" in d:
        d["kv_formats"] = tuple(_list(d["kv_formats"], f"{where}: kv_formats"))
    if "calibration" in d:
        cal = d["calibration"]
        if not isinstance(cal, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in cal.items()):
            raise ValueError(f"{where}: calibration: expected a mapping parameter -> source text")
        d["calibration"] = dict(cal)
    _typed(d, AcceleratorConfig, where, skip=("arrays", "vector", "offchip", "sram", "sparsity",
                                              "kv_formats", "calibration"))
    return _check_config(AcceleratorConfig(**d), where)


def _check_config(c: AcceleratorConfig, where: str | None = None) -> AcceleratorConfig:
    w = where or c.name
    if not isinstance(c.name, str) or not c.name.strip():
        raise ValueError(f"{w}: name must be a non-empty string, got {quote(c.name)}")
    _limit(c.clock_ghz, f"{w}: clock_ghz", "clock_ghz")
    if c.process_nm not in energy.NODES:
        raise ValueError(f"{w}: process_nm must be one of {energy.NODES} "
                         f"(nodes of the [B1] energy table), got {quote(c.process_nm)}")
    if c.comparison not in COMPARISONS:
        raise ValueError(f"{w}: comparison must be one of {COMPARISONS}, got {quote(c.comparison)}")
    if c.precision_policy not in POLICIES:
        raise ValueError(f"{w}: precision_policy must be one of {POLICIES}, got {quote(c.precision_policy)}")
    if not c.arrays:
        raise ValueError(f"{w}: arrays: at least one compute array is required")
    names = [a.name for a in c.arrays]
    if len(set(names)) != len(names) or "vector" in names:
        raise ValueError(f"{w}: arrays: names must be unique and not 'vector', got {quote(names)}")
    for k in c.kv_formats:
        if k not in KV_FORMATS:
            raise ValueError(f"{w}: kv_formats: unknown KV format {quote(k)}; known: {list(KV_FORMATS)}")
    for f_ in ("op_overhead_ns", "host_launch_ns", "static_power_w"):
        _limit(getattr(c, f_), f"{w}: {f_}", f_)
    if c.energy_basis not in ENERGY_BASES:
        raise ValueError(f"{w}: energy_basis must be one of {ENERGY_BASES}, got {quote(c.energy_basis)}")
    if c.energy_basis == "dynamic-only" and c.static_power_w != 0:
        raise ValueError(f"{w}: energy_basis 'dynamic-only' contradicts static_power_w = {c.static_power_w} "
                         f"(set static_power_w to 0 or energy_basis to 'model')")
    if c.static_model not in STATIC_MODELS:
        raise ValueError(f"{w}: static_model must be one of {STATIC_MODELS}, got {quote(c.static_model)}")
    if c.energy_basis == "dynamic-only" and c.static_model != "fixed":
        raise ValueError(f"{w}: energy_basis 'dynamic-only' contradicts static_model 'leakage' "
                         f"(set static_model to 'fixed' or energy_basis to 'model')")
    for f_ in ("capacity_gb", "bandwidth_gbps", "pj_per_bit", "sustained_fraction"):
        _limit(getattr(c.offchip, f_), f"{w}: offchip.{f_}", f"offchip.{f_}")
    if isinstance(c.offchip.interfaces, bool) or not isinstance(c.offchip.interfaces, int):
        raise ValueError(f"{w}: offchip.interfaces: expected an integer, got {quote(c.offchip.interfaces)}")
    _limit(c.offchip.interfaces, f"{w}: offchip.interfaces", "offchip.interfaces")
    if c.offchip.interfaces:
        try:
            energy.phy_costs(c.offchip.kind, c.offchip.interfaces)
        except ValueError as e:
            raise ValueError(f"{w}: {e}") from None
    for f_ in ("weight_buffer_kib", "activation_buffer_kib", "bandwidth_bytes_per_cycle", "pj_per_bit"):
        _limit(getattr(c.sram, f_), f"{w}: sram.{f_}", f"sram.{f_}")
    _limit(c.vector.lanes, f"{w}: vector.lanes", "vector.lanes")
    for k, v in c.vector.passes.items():
        _limit(v, f"{w}: vector.passes.{k}", "vector.passes")
    for i, a in enumerate(c.arrays):
        aw = f"{w}: arrays[{i}]"
        for f_ in ("rows", "cols", "count"):
            _limit(getattr(a, f_), f"{aw}.{f_}", f"arrays.{f_}")
        if a.weight_load_cycles is not None:
            _limit(a.weight_load_cycles, f"{aw}.weight_load_cycles", "arrays.weight_load_cycles")
        if a.max_m is not None:
            if isinstance(a.max_m, bool) or not isinstance(a.max_m, int):
                raise ValueError(f"{aw}.max_m: expected an integer or null, got {quote(a.max_m)}")
            _limit(a.max_m, f"{aw}.max_m", "arrays.max_m")
        _limit(a.max_k, f"{aw}.max_k", "arrays.max_k")
        if a.float_accumulator not in energy.FLOAT_ACCUMULATORS:
            raise ValueError(f"{aw}.float_accumulator must be one of {energy.FLOAT_ACCUMULATORS}, "
                             f"got {quote(a.float_accumulator)}")
        if a.dataflow not in DATAFLOWS:
            raise ValueError(f"{aw}.dataflow must be one of {DATAFLOWS}, got {quote(a.dataflow)}")
        if not a.pe_ops:
            raise ValueError(f"{aw}.pe_ops: at least one operand pair is required")
        for j, p in enumerate(a.pe_ops):
            check_operand(p.weights, f"{aw}.pe_ops[{j}].weights")
            check_operand(p.acts, f"{aw}.pe_ops[{j}].acts")
            _limit(p.rate, f"{aw}.pe_ops[{j}].rate", "arrays.pe_ops.rate")
        for op_, r in a.unpack.items():
            if op_ not in PACKED_OPERANDS:
                raise ValueError(f"{aw}.unpack: unknown packed operand {quote(op_)}; known: {list(PACKED_OPERANDS)}")
            _limit(r, f"{aw}.unpack.{op_}", "arrays.unpack")
    return c


# ---- small helpers -----------------------------------------------------------
_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _typed(d: dict, cls: type, where: str, skip: tuple[str, ...] = ()) -> None:
    for f in dataclasses.fields(cls):
        if f.name not in d or f.name in skip:
            continue
        v = d[f.name]
        t = str(f.type)
        if v is None and "None" in t:
            continue
        for name, types in _TYPES.items():
            if t.startswith(name):
                ok = isinstance(v, types) and not (name in ("int", "float") and isinstance(v, bool))
                if not ok:
                    raise ValueError(f"{where}.{f.name}: expected {name}, got {quote(v)}")
                if name == "float":
                    d[f.name] = float(v)
                break


def _build(raw: Any, cls: type, where: str) -> Any:
    d = dataclass_fields(raw, cls, where)
    if "pj_per_bit" in d:
        v = d["pj_per_bit"]
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise ValueError(f"{where}.pj_per_bit: expected a number or an energy-table key, got {quote(v)}")
        d["pj_per_bit"] = energy.memory_pj_per_bit(v, f"{where}.pj_per_bit")
    _typed(d, cls, where)
    return cls(**d)


def _list(v: Any, where: str) -> list:
    if not isinstance(v, (list, tuple)):
        raise ValueError(f"{where}: expected a list, got {type(v).__name__}")
    return list(v)


def _numbers(raw: Any, where: str, what: str) -> dict:
    """A mapping name -> number (``unpack``, ``passes``), names as strings."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping {what}")
    for k, v in raw.items():
        if not isinstance(k, str):
            raise ValueError(f"{where}: keys must be names, got {quote(k)}")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"{where}.{k}: expected a number, got {quote(v)}")
    return raw


def _array(raw: Any, where: str) -> ArrayConfig:
    d = dataclass_fields(raw, ArrayConfig, where)
    d["pe_ops"] = tuple(_build(p, PEOp, f"{where}.pe_ops[{j}]")
                        for j, p in enumerate(_list(d["pe_ops"], f"{where}.pe_ops")))
    if "unpack" in d:
        d["unpack"] = {k: float(v) for k, v in
                       _numbers(d["unpack"], f"{where}.unpack", "operand -> elements per cycle").items()}
    _typed(d, ArrayConfig, where, skip=("pe_ops", "unpack"))
    return ArrayConfig(**d)


def _vector(raw: Any, where: str) -> VectorConfig:
    d = dataclass_fields(raw, VectorConfig, where)
    passes = dict(_DEFAULT_PASSES)
    extra = _numbers(d.get("passes", {}), f"{where}.passes", "op-kind -> passes")
    unknown = sorted(set(extra) - set(_DEFAULT_PASSES))
    if unknown:
        raise ValueError(f"{where}.passes: unknown op kind(s) {quote(unknown)}; known: {sorted(_DEFAULT_PASSES)}")
    passes.update(extra)
    d["passes"] = passes
    _typed(d, VectorConfig, where, skip=("passes",))
    return VectorConfig(**d)


def _limit(v: Any, where: str, key: str) -> None:
    """``v`` is a finite number inside ``LIMITS[key]``; else a ``ValueError`` naming ``where``."""
    lo, hi, unit = LIMITS[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{where} must be a finite number, got {quote(v)}")
    if lo > 0 and v <= 0:
        raise ValueError(f"{where} must be a positive number, got {quote(v)}")
    if lo == 0 and v < 0:
        raise ValueError(f"{where} must be a non-negative number, got {quote(v)}")
    if v < lo or v > hi:
        raise ValueError(f"{where} = {v:g} is outside the sane range [{lo:g}, {hi:g}] {unit}; "
                         f"check the value and its unit")
