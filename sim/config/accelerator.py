"""Accelerator description: YAML -> typed, validated, frozen dataclasses.

One YAML file describes one accelerator (see ``sim/presets/*.yaml`` and
docs/simulator.md).  Every field is checked on load: an unknown field, a wrong
type, a negative size or an unknown precision raises ``ValueError`` naming the
field (e.g. ``arrays[0].rows``).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import energy
from ..compute.precision import KV_FORMATS, check_operand

PRESET_DIR = Path(__file__).resolve().parents[1] / "presets"
PRESETS = {"fp16": "fp16.yaml", "b1.58": "b1.58.yaml", "a4.8": "a4.8.yaml",
           "edge": "edge.yaml", "h100-like": "h100-like.yaml", "h100-triton": "h100-triton.yaml"}
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


@dataclass(frozen=True)
class PEOp:
    """One operand pair a PE supports, with its rate (MACs per PE per cycle)."""
    weights: str
    acts: str
    rate: float = 1.0


@dataclass(frozen=True)
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

    def takes_m(self, M: int) -> bool:
        """True if the dispatch rule lets this array run an op with ``M`` rows."""
        return self.max_m is None or M <= self.max_m

    @property
    def load_cycles(self) -> int:
        return self.rows if self.weight_load_cycles is None else self.weight_load_cycles

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
    kind: str                        # hbm3, lpddr5, ... (label)
    capacity_gb: float
    bandwidth_gbps: float            # GB/s (1e9 bytes/s), read + write share it
    pj_per_bit: float


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


@dataclass(frozen=True)
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
    static_power_w: float = 0.0
    energy_basis: str = "model"       # one of ENERGY_BASES; copied to the summary
    notes: str = ""
    # Provenance of fitted numbers: parameter path -> where it came from
    # (file, date, rows, method); written by sim.calibrate.
    calibration: dict = field(default_factory=dict)

    # ---- derived quantities --------------------------------------------
    @property
    def offchip_bytes_per_cycle(self) -> float:
        return self.offchip.bandwidth_gbps / self.clock_ghz

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
        """A copy with top-level fields changed (re-validated)."""
        return _validate(dataclasses.replace(self, **changes))


# --------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------
def load_accelerator(name_or_path: "str | Path | AcceleratorConfig") -> AcceleratorConfig:
    """Load a preset by name (``fp16``, ``b1.58``, ``a4.8``, ``edge``, ``h100-like``, ``h100-triton``)
    or a YAML path."""
    if isinstance(name_or_path, AcceleratorConfig):
        return _validate(name_or_path)
    if not isinstance(name_or_path, (str, Path)):
        raise TypeError(f"accelerator must be a preset name, a YAML path or an AcceleratorConfig, "
                        f"got {type(name_or_path).__name__}")
    key = str(name_or_path)
    if key in PRESETS:
        path = PRESET_DIR / PRESETS[key]
    else:
        path = Path(key)
        if not path.exists():
            raise ValueError(f"unknown accelerator {key!r}: not a preset ({sorted(PRESETS)}) "
                             f"and no such file")
    return from_dict(load_yaml(path), where=path.name)


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that rejects a mapping key given twice (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:          # unhashable key: let SafeLoader report it
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first given on line {first.line + 1})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: "str | Path") -> Any:
    """Parse one YAML file; a syntax error or a duplicate mapping key -> ``ValueError`` naming file and line."""
    path = Path(path)
    try:
        with open(path) as f:
            return yaml.load(f, Loader=_StrictLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(path)
        what = getattr(e, "problem", None) or str(e)
        ctx = getattr(e, "context", None)
        raise ValueError(f"{where}: invalid YAML: {what}" + (f" ({ctx})" if ctx else "")) from None


def from_dict(raw: Any, where: str = "accelerator") -> AcceleratorConfig:
    """Build a validated config from a plain dict (the parsed YAML)."""
    d = _fields(raw, AcceleratorConfig, where)
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
    return _validate(AcceleratorConfig(**d), where)


def _validate(c: AcceleratorConfig, where: str | None = None) -> AcceleratorConfig:
    w = where or c.name
    _pos(c.clock_ghz, f"{w}: clock_ghz")
    if c.process_nm not in energy.NODES:
        raise ValueError(f"{w}: process_nm must be one of {energy.NODES} "
                         f"(nodes of the [B1] energy table), got {c.process_nm}")
    if c.comparison not in COMPARISONS:
        raise ValueError(f"{w}: comparison must be one of {COMPARISONS}, got {c.comparison!r}")
    if c.precision_policy not in POLICIES:
        raise ValueError(f"{w}: precision_policy must be one of {POLICIES}, got {c.precision_policy!r}")
    if not c.arrays:
        raise ValueError(f"{w}: arrays: at least one compute array is required")
    names = [a.name for a in c.arrays]
    if len(set(names)) != len(names) or "vector" in names:
        raise ValueError(f"{w}: arrays: names must be unique and not 'vector', got {names}")
    for k in c.kv_formats:
        if k not in KV_FORMATS:
            raise ValueError(f"{w}: kv_formats: unknown KV format {k!r}; known: {list(KV_FORMATS)}")
    _nonneg(c.op_overhead_ns, f"{w}: op_overhead_ns")
    _nonneg(c.host_launch_ns, f"{w}: host_launch_ns")
    _nonneg(c.static_power_w, f"{w}: static_power_w")
    if c.energy_basis not in ENERGY_BASES:
        raise ValueError(f"{w}: energy_basis must be one of {ENERGY_BASES}, got {c.energy_basis!r}")
    if c.energy_basis == "dynamic-only" and c.static_power_w != 0:
        raise ValueError(f"{w}: energy_basis 'dynamic-only' contradicts static_power_w = {c.static_power_w} "
                         f"(set static_power_w to 0 or energy_basis to 'model')")
    _pos(c.offchip.capacity_gb, f"{w}: offchip.capacity_gb")
    _pos(c.offchip.bandwidth_gbps, f"{w}: offchip.bandwidth_gbps")
    _nonneg(c.offchip.pj_per_bit, f"{w}: offchip.pj_per_bit")
    _pos(c.sram.weight_buffer_kib, f"{w}: sram.weight_buffer_kib")
    _nonneg(c.sram.activation_buffer_kib, f"{w}: sram.activation_buffer_kib")
    _pos(c.sram.bandwidth_bytes_per_cycle, f"{w}: sram.bandwidth_bytes_per_cycle")
    _nonneg(c.sram.pj_per_bit, f"{w}: sram.pj_per_bit")
    _pos(c.vector.lanes, f"{w}: vector.lanes")
    for k, v in c.vector.passes.items():
        _pos(v, f"{w}: vector.passes.{k}")
    for i, a in enumerate(c.arrays):
        aw = f"{w}: arrays[{i}]"
        for f_ in ("rows", "cols", "count"):
            _pos(getattr(a, f_), f"{aw}.{f_}")
        if a.weight_load_cycles is not None:
            _pos(a.weight_load_cycles, f"{aw}.weight_load_cycles")
        if a.max_m is not None:
            if isinstance(a.max_m, bool) or not isinstance(a.max_m, int):
                raise ValueError(f"{aw}.max_m: expected an integer or null, got {a.max_m!r}")
            _pos(a.max_m, f"{aw}.max_m")
        if a.dataflow not in DATAFLOWS:
            raise ValueError(f"{aw}.dataflow must be one of {DATAFLOWS}, got {a.dataflow!r}")
        if not a.pe_ops:
            raise ValueError(f"{aw}.pe_ops: at least one operand pair is required")
        for j, p in enumerate(a.pe_ops):
            check_operand(p.weights, f"{aw}.pe_ops[{j}].weights")
            check_operand(p.acts, f"{aw}.pe_ops[{j}].acts")
            _pos(p.rate, f"{aw}.pe_ops[{j}].rate")
        for op_, r in a.unpack.items():
            if op_ not in PACKED_OPERANDS:
                raise ValueError(f"{aw}.unpack: unknown packed operand {op_!r}; known: {list(PACKED_OPERANDS)}")
            _pos(r, f"{aw}.unpack.{op_}")
    return c


# ---- small helpers -----------------------------------------------------------
def _fields(raw: Any, cls: type, where: str) -> dict:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping of fields, got {type(raw).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")
    required = {f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    missing = sorted(required - set(raw))
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing}")
    return dict(raw)


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
                    raise ValueError(f"{where}.{f.name}: expected {name}, got {v!r}")
                if name == "float":
                    d[f.name] = float(v)
                break


def _build(raw: Any, cls: type, where: str) -> Any:
    d = _fields(raw, cls, where)
    if "pj_per_bit" in d:
        v = d["pj_per_bit"]
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise ValueError(f"{where}.pj_per_bit: expected a number or an energy-table key, got {v!r}")
        d["pj_per_bit"] = energy.memory_pj_per_bit(v, f"{where}.pj_per_bit")
    _typed(d, cls, where)
    return cls(**d)


def _list(v: Any, where: str) -> list:
    if not isinstance(v, (list, tuple)):
        raise ValueError(f"{where}: expected a list, got {type(v).__name__}")
    return list(v)


def _array(raw: Any, where: str) -> ArrayConfig:
    d = _fields(raw, ArrayConfig, where)
    d["pe_ops"] = tuple(_build(p, PEOp, f"{where}.pe_ops[{j}]")
                        for j, p in enumerate(_list(d["pe_ops"], f"{where}.pe_ops")))
    if "unpack" in d:
        u = d["unpack"]
        if not isinstance(u, dict):
            raise ValueError(f"{where}.unpack: expected a mapping operand -> elements per cycle")
        for k, v in u.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{where}.unpack.{k}: expected a number, got {v!r}")
        d["unpack"] = {k: float(v) for k, v in u.items()}
    _typed(d, ArrayConfig, where, skip=("pe_ops", "unpack"))
    return ArrayConfig(**d)


def _vector(raw: Any, where: str) -> VectorConfig:
    d = _fields(raw, VectorConfig, where)
    passes = dict(_DEFAULT_PASSES)
    extra = d.get("passes", {})
    if not isinstance(extra, dict):
        raise ValueError(f"{where}.passes: expected a mapping op-kind -> passes")
    unknown = sorted(set(extra) - set(_DEFAULT_PASSES))
    if unknown:
        raise ValueError(f"{where}.passes: unknown op kind(s) {unknown}; known: {sorted(_DEFAULT_PASSES)}")
    for k, v in extra.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"{where}.passes.{k}: expected a number, got {v!r}")
    passes.update(extra)
    d["passes"] = passes
    _typed(d, VectorConfig, where, skip=("passes",))
    return VectorConfig(**d)


def _pos(v: float, where: str) -> None:
    if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
        raise ValueError(f"{where} must be a positive number, got {v!r}")


def _nonneg(v: float, where: str) -> None:
    if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
        raise ValueError(f"{where} must be a non-negative number, got {v!r}")
