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
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.config import check_number, dataclass_fields, load_yaml, quote

from .. import energy
from ..compute.precision import KV_FORMATS, check_operand

PRESET_DIR = Path(__file__).resolve().parents[1] / "presets"
PRESETS = {"fp16": "fp16.yaml", "b1.58": "b1.58.yaml", "a4.8": "a4.8.yaml",
           "edge": "edge.yaml", "h100-like": "h100-like.yaml", "h100-triton": "h100-triton.yaml",
           "h200-like": "h200-like.yaml", "h200-triton": "h200-triton.yaml",
           "w4a16": "w4a16.yaml", "w8a8-int8": "w8a8-int8.yaml", "w8a8-fp8": "w8a8-fp8.yaml",
           "w4a4-mxfp4": "w4a4-mxfp4.yaml", "b1.58-sram": "b1.58-sram.yaml"}
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
WEIGHT_RESIDENCIES = ("dram", "sram")


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
    pe_kind: str = field(default="mac", metadata={"help": (
        "How the PEs compute (sim.energy.PE_KINDS): 'mac' (a multiplier / adder per pair), 'lut' (a "
        "lookup-table PE: each lookup sums lut_group weights of one plane from a table of the "
        "activations' partial sums, T-MAC / LUT Tensor Core style), 'bit-serial' (one activation bit per "
        "cycle, no multiplier).  A PE's pairs must be ones its datapath computes (integer activations).")})
    split_reduction: bool = field(default=False, metadata={"help": (
        "Split-reduction kernels (flash-decoding attention, split-K): when an op has fewer output folds than "
        "array copies, its reduction dimension (K) is cut into copies // folds parts run on idle copies and "
        "summed after, so the op fills the array instead of leaving copies idle (each part streams K / parts "
        "and unpacks its share).  False: one fold per output tile, the other copies idle.")})
    split_balanced: bool = field(default=False, metadata={"help": (
        "With split_reduction: cut K into the part count that finishes soonest (fewest waves x part length) "
        "instead of copies // folds, which spreads the folds' work within a rounding of evenly over every "
        "copy, as a GPU GEMM's small-M tile configs (many narrow tiles) or a stream-K GEMM do: 86 output "
        "tiles on 132 SMs take 65 % of one tile's time, not all of it.  False: copies // folds parts in one "
        "wave.")})
    lut_group: int = field(default=4, metadata={"help": (
        "Weights per table lookup of a 'lut' PE (g): a ternary table has 3^g entries, a binary plane's "
        "2^g (half stored, by mirror symmetry); ignored by the other kinds.")})
    split_combine_ns: float = field(default=0.0, metadata={"help": (
        "With split_reduction: serial ns an attention op split over idle copies pays when it runs inside the "
        "launch before it (a one-launch decode-attention kernel whose last program per head, elected by an "
        "atomic ticket, combines the spans' partials).  An op in a launch of its own (a separate combine "
        "kernel) pays the launch cost instead.  0: no tail (every ASIC preset).")})
    stream_ramp_ns: dict = field(default_factory=dict, metadata={"help": (
        "Weight operand -> fixed ns a GEMM-class op on this array whose weights are of that operand spends "
        "before its weight stream flows, beyond the launch and the memory latency (a GPU kernel's own ramp: "
        "program setup, the first tile's decode).  Dense streams only: a gathering op pays its gather costs "
        "instead.  Absent operand = no ramp (every ASIC preset).")})
    stream_efficiency: dict = field(default_factory=dict, metadata={"help": (
        "Weight operand -> fraction (0, 1] of the sustained off-chip rate the dense weight stream of a "
        "GEMM-class op on this array reaches (a GPU kernel that streams below a plain read of the same "
        "bytes).  Absent operand = 1 (every ASIC preset).")})

    promote_every_k: dict = field(default_factory=dict, metadata={"help": (
        "MMA input format -> K elements after which a kernel exact on this array adds its partial sums into an "
        "fp32 accumulator (promotion), because the array accumulates that format narrower than fp32 (a Hopper "
        "tensor core's FP8 sums keep about 14 mantissa bits: an exact FP8 kernel promotes every few hundred K). "
        "Absent format = the array's own accumulation is exact (every ASIC preset, every integer pair).")})
    promote_ns: dict = field(default_factory=dict, metadata={"help": (
        "MMA input format -> ns one promotion (promote_every_k) of one output fold costs: the MMA pipeline "
        "drains before the partial sums are read, and the warps that decode the next weight tile wait with "
        "it, so the cost is serial with both the MACs and the unpack.  Charged to ops whose weights this array "
        "unpacks in software (the kernel that promotes); a library GEMM on native operands has its own "
        "accumulation inside its measured rate.  A format here needs promote_every_k.")})
    unpack_m_tile: dict = field(default_factory=dict, metadata={"help": (
        "Packed operand -> activation rows (M) that share one software unpack of a weight tile: the kernel "
        "decodes its weights again for every this many rows (a weight-only-quantized GEMM that dequantizes in "
        "its inner loop per row block).  Absent operand = one unpack per fold of the array's rows (once per "
        "output tile, as a GPU GEMM decoding its weight tile per CTA).")})
    unpack_forms: dict = field(default_factory=dict, metadata={"help": (
        "Named software decode forms -> elements unpacked per cycle per copy: the rate of a kernel whose "
        "recorded tile config names its decode form (sim.validation.replay.decode_form: 'swar-int8', "
        "'swar-fp8', four packed bytes per register decoded into that MMA format), in place of ``unpack`` when "
        "such a measured row is replayed on its own tile.  Empty: every kernel decodes at ``unpack``.")})

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
    units: int = field(default=0, metadata={"help": (
        "Independent units the lanes are split into (a GPU's SMs: one program per unit).  A row reduction "
        "(the kinds of ``reductions``) runs one program per row, so an op with fewer rows than units is "
        "latency-bound: each row takes its element-passes at ``row_lanes`` plus ``reductions`` dependent "
        "reduction steps of ``reduction_ns``, however many lanes idle.  0: the lanes are one pool "
        "(an ASIC's SIMD vector unit; the mechanism off).")})
    pow2_rows: bool = field(default=False, metadata={"help": (
        "A row program covers its row with one power-of-two tile (Triton's ``tl.arange(0, BLOCK)``, "
        "BLOCK = next power of two of the row), its masked lanes computing too: a row of 11008 costs "
        "16384 elements' passes.  Only with units > 0.")})
    row_lanes: float = field(default=0.0, metadata={"help": (
        "Element-passes per cycle one unit sustains on a row it reduces alone (with units > 0).  0: "
        "lanes / units.")})
    reduction_ns: float = field(default=0.0, metadata={"help": (
        "Latency of one dependent reduction step of a row program (a cross-warp reduction: shuffles, a "
        "shared-memory round trip, a barrier), with units > 0; 0: reductions cost only their passes.")})
    row_tile: int = field(default=0, metadata={"help": (
        "Widest row the row_lanes rate describes (with units > 0 and wide_row_lanes > 0): the part of a "
        "(power-of-two) row beyond it runs its element-passes at wide_row_lanes instead (a wider tile per "
        "program, measured slower per element; not register spills, which the compiled kernels show none "
        "of).  0: no limit.")})
    wide_row_lanes: float = field(default=0.0, metadata={"help": (
        "Element-passes per cycle one unit sustains on the part of a row beyond row_tile (measured on a wide "
        "row).  0: the mechanism off, every element at row_lanes.")})
    shared_rows: float = field(default=0.0, metadata={"help": (
        "Rows one unit holds at once when a row reduction has more rows than units (with units > 0): their "
        "dependent reduction steps overlap, so each wave's steps cost reductions x reduction_ns / min(shared_rows, "
        "waves) while their element-passes do not (the unit's issue slots are shared).  0 or 1: rows reduce "
        "one after another.")})
    reductions: dict = field(default_factory=lambda: dict(_DEFAULT_REDUCTIONS), metadata={"help": (
        "Dependent reduction steps per row, by op kind (a kind missing or 0 is elementwise, never a row "
        "reduction).  RMSNorm: the mean square; a quantizer: its absmax; TopK: the exact threshold by a "
        "bitwise search (31 steps, kernels/rmsnorm_quant.py) + the count above it + the rank of ties; "
        "nzlist (set where a GPU preset derives the list's cost): the prefix count that places a row's non-zero "
        "indices (a GPU sparse GEMV's list). "
        "Softmax is 0: inside a split-context attention kernel its max and sum are spread over the splits.")})


_DEFAULT_PASSES = {"rmsnorm": 2, "softmax": 3, "quant": 2, "topk": 4, "glu": 1,
                   "rope": 1, "kv_quant": 2, "embedding": 1, "residual": 1, "nzlist": 1}
_DEFAULT_REDUCTIONS = {"rmsnorm": 1, "quant": 1, "topk": 33, "kv_quant": 1}


@dataclass(frozen=True)
class OffchipConfig:
    # Memory generation: a kind of sim/data/memories.csv (hbm3, lpddr5, gddr7, ...) or "custom".  The kind
    # alone selects bandwidth per interface, pJ/bit, sustained fraction, PHY and DRAM background power; a
    # number given here is a stated override of its kind's row (a bandwidth sweep, a measured rate); an
    # energy key of another kind (pj_per_bit: hbm3 under kind: lpddr5) is a warning.  "custom": a memory
    # the table lacks; give bandwidth_gbps and pj_per_bit.
    kind: str
    capacity_gb: float
    bandwidth_gbps: float | None = field(default=None, metadata={"help": (
        "GB/s (1e9 bytes/s), PEAK; read + write share it.  None: interfaces x the kind's per-interface "
        "bandwidth.")})
    pj_per_bit: float | None = field(default=None, metadata={"help": (
        "Access energy (pJ/bit): a number or an energy key (hbm3, sram_7nm, ...).  None: the kind's row.")})
    sustained_fraction: float | None = field(default=None, metadata={"help": (
        "Fraction of the peak a streaming DMA sustains (refresh, bank conflicts, turnarounds); the "
        "simulator moves bytes at bandwidth_gbps x sustained_fraction.  1.0 = the peak as given (a preset "
        "whose bandwidth_gbps is already a measured sustained rate).  None: the kind's row (e.g. 0.9 for "
        "HBM3, from our H100 copy: 3020 of 3350 GB/s); 1.0 for 'custom'.")})
    # Memory interfaces (HBM stacks, x32 GDDR devices, LPDDR x64 interfaces): each adds the PHY + controller
    # area and static power of ``kind`` from the memory table; 0 = not costed.
    interfaces: int = 0
    # Load-to-use latency of an off-chip read (ns): a tile arrives this long after its transfer; hidden
    # when loads run ahead of compute, exposed when an op must wait for its first tile.
    latency_ns: float = 0.0
    # Access rules of a gather (zero-skipping ops fetch only the surviving weight rows, one access per
    # listed row): a row is rounded up to whole bursts and exposes ``row_miss_ns`` of bus time (page
    # activate/precharge, request issue not hidden by bank parallelism) per page it spans.
    burst_bytes: float = 64.0
    page_bytes: float = 1024.0
    row_miss_ns: float = 0.0

    # Set by the loader: the fields it took from the kind's row (field -> value), so that a copy whose kind
    # changed (a sweep override) takes the new kind's values for them instead of keeping the old ones.
    from_kind: dict = field(default_factory=dict)

    @property
    def sustained_gbps(self) -> float:
        return self.bandwidth_gbps * self.sustained_fraction


@dataclass(frozen=True)
class SramConfig:
    weight_buffer_kib: float         # double-buffered: each half holds one streamed tile
    activation_buffer_kib: float     # activations that fit stay on chip between ops
    bandwidth_bytes_per_cycle: float
    pj_per_bit: float
    weight_store_mib: float = field(default=0.0, metadata={"help": (
        "On-chip SRAM that holds the model's weights (MiB) when ``weight_residency`` is 'sram': its area "
        "and leakage are charged (sim.energy.chip) and the model's weights must fit it.  0 with residency "
        "'dram'.")})
    fill_bandwidth_bytes_per_cycle: float = field(default=0.0, metadata={"help": (
        "Bytes per cycle at which the arrays' operand buffers are filled (on a GPU, from its L2 into its SMs, as "
        "a kernel's loads achieve it: a few warps per SM keep few loads in flight): every fold reads its tile of "
        "both operands through it (sim.memory.traffic.fold_reads), so a GEMM whose narrow output tiles each re-read "
        "the activations is bound by it.  0: not modelled (the buffer is the arrays' own SRAM, read at "
        "bandwidth_bytes_per_cycle).")})


@dataclass(frozen=True)
class SparsityConfig:
    skip_weight_fetch: bool = False  # do not fetch weight rows whose activations are all zero
    skip_compute: bool = False       # do not spend cycles / energy on zero activations
    # Causal prefill attention: skip the folds whose keys every query of the fold must not see
    # (sim.compute.systolic.causal_systolic_cycles).  False: the full square is computed.
    skip_masked_attention: bool = True
    # Building the surviving-row list of a skipping op: fixed latency (ns) after its producer has finished,
    # plus one compaction pass over the K activations on the vector unit.
    index_latency_ns: float = 0.0
    stream_when_cheaper: bool = field(default=True, metadata={"help": (
        "A skipping op whose gather of surviving rows, with its fixed costs (the row list's build, the latency "
        "of the broken stream), would take longer than streaming every row streams them all instead (the "
        "loader's choice per op, sim.engine.plan.fetches_survivors).  "
        "False: always gather, as a replayed GPU kernel that was measured gathering does.")})


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
    occupancy_limited_reads: bool = field(default=False, metadata={"help": (
        "Each array copy (a GPU's SM) pulls its own share of the off-chip bandwidth: an op split into fewer "
        "work units than copies (its folds after split_reduction; a row reduction's rows, over vector.units) "
        "reads at units / copies of the sustained rate, the other copies' share unused.  False: any op "
        "reaches the whole sustained rate (an ASIC's DMA engine feeds any array).")})
    # Extra latency of a kernel launched from the host without a CUDA graph.
    # Only replays of measured kernels (sim.validation, rows with cuda_graph
    # false) add it, once per measured kernel call; op traces never do.
    host_launch_ns: float = 0.0
    static_power_w: float = 0.0       # fixed static draw (W); with static_model leakage, added to the leakage
    static_model: str = "fixed"       # one of STATIC_MODELS
    energy_basis: str = "model"       # one of ENERGY_BASES; copied to the summary
    notes: str = ""
    weight_residency: str = field(default="dram", metadata={"help": (
        "Where the weights live: 'dram' (streamed from off-chip memory every step) or 'sram' (resident in "
        "sram.weight_store_mib of on-chip SRAM, e.g. a wafer-scale or multi-die SRAM design: off-chip "
        "traffic is then only KV cache and activations).  One of WEIGHT_RESIDENCIES.")})
    host_interface: str = field(default="none", metadata={"help": (
        "Host link whose PHY + controller draw always-on power with static_model leakage; one of "
        "sim.energy.HOST_INTERFACES ('none' = not costed).")})
    costs: str = field(default="", metadata={"help": (
        "A user cost table: a CSV with the columns of sim/data/hardware_costs.csv whose rows replace the "
        "built-in rows of the same quantity and node (checked as the built-in table is: a source per row, "
        "known quantities, the built-in unit).  '' = the built-in table.  In a YAML file a relative path "
        "is relative to that file; load_accelerator(..., costs=FILE) sets it from the caller's side.")})
    # Provenance of fitted numbers: parameter path -> where it came from
    # (file, date, rows, method); written by sim.calibrate.
    calibration: dict = field(default_factory=dict)

    # ---- derived quantities --------------------------------------------
    @property
    def offchip_bytes_per_cycle(self) -> float:
        """Sustained off-chip bytes per cycle (peak x ``offchip.sustained_fraction``)."""
        return self.offchip.sustained_gbps / self.clock_ghz

    @property
    def cost_table(self) -> dict | None:
        """The merged cost table of ``costs`` (None: the built-in one), for :func:`sim.energy.using_costs`."""
        return energy.cost_overlay(self.costs) if self.costs else None

    def chip_costs(self) -> "energy.ChipCosts":
        """Area (mm^2) and leakage (W) by part, peak TOP/s (:func:`sim.energy.chip_costs`)."""
        return energy.chip_costs(self)

    @property
    def area_mm2(self) -> float:
        """The chip's area: the whole design (PE arrays, vector unit, SRAM, memory PHYs), mm^2 at ``process_nm``."""
        return self.chip_costs().area_mm2

    @property
    def static_w(self) -> float:
        """Static power (W): ``static_power_w`` + the design's always-on power when ``static_model`` is leakage
        (leakage, clock tree, DRAM background, host interface: :func:`sim.energy.chip_costs`)."""
        leak = self.chip_costs().static_w if self.static_model == "leakage" else 0.0
        return self.static_power_w + leak

    @property
    def op_overhead_cycles(self) -> int:
        return int(math.ceil(self.op_overhead_ns * self.clock_ghz))

    def peak_macs_per_cycle(self, weights: str, acts: str) -> float:
        """Best MAC rate over arrays with an exact ``weights x acts`` pair (0 if none)."""
        return max((a.pes * energy.effective_rate(a, p) for a in self.arrays for p in a.pe_ops
                    if (p.weights, p.acts) == (weights, acts)), default=0.0)

    def compute_area_mm2_45nm(self) -> float:
        """The papers' counting rule for PE arithmetic at 45 nm ([H14] areas): no accumulator width,
        registers, SRAM or PHY, so never a chip's area (that is :attr:`area_mm2`).  Kept to reproduce
        the papers' own comparison.

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


def field_help(cls: type) -> dict[str, str]:
    """Field -> help text of an accelerator record (the fields that carry one in their metadata)."""
    return {f.name: f.metadata["help"] for f in dataclasses.fields(cls) if "help" in f.metadata}


def check_resident_weights(cfg: AcceleratorConfig, weight_bytes: float, where: str = "model") -> None:
    """With ``weight_residency`` sram, the model's ``weight_bytes`` must fit ``sram.weight_store_mib``; else a
    ``ValueError`` with both numbers.  Nothing to check when the weights stream from DRAM."""
    check_number(weight_bytes, f"{where}: weight bytes", lo=0.0)
    if cfg.weight_residency != "sram":
        return
    store = cfg.sram.weight_store_mib * 2**20
    if weight_bytes > store:
        raise ValueError(f"{where}: {weight_bytes / 2**20:,.1f} MiB of weights do not fit {cfg.name}'s resident weight "
                         f"store (sram.weight_store_mib = {cfg.sram.weight_store_mib:g} MiB)")


# --------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------
#: Sane range of every number of an accelerator description: field -> (lowest, highest, unit).
#: A value outside is a typo or a unit slip (``rows: 1000000000000``, ``clock_ghz: 1e-12``) and
#: is refused naming the field; the ranges are wide enough for any chip from an MCU to a GPU.
#: LIMITS keys whose values are integers
_INTEGER_LIMITS = ("arrays.rows", "arrays.cols", "arrays.count", "arrays.weight_load_cycles", "arrays.max_m",
                   "arrays.unpack_m_tile", "arrays.promote_every_k",
                   "arrays.max_k", "arrays.lut_group", "offchip.interfaces", "vector.lanes")
LIMITS: dict[str, tuple[float, float, str]] = {
    "clock_ghz": (1e-3, 100.0, "GHz"),
    "arrays.rows": (1, 1 << 16, "PEs"),
    "arrays.cols": (1, 1 << 16, "PEs"),
    "arrays.count": (1, 1 << 20, "array copies"),
    "arrays.weight_load_cycles": (1, 1 << 20, "cycles"),
    "arrays.max_m": (1, 1 << 40, "rows"),
    "arrays.unpack_m_tile": (1, 1 << 20, "rows"),
    "arrays.max_k": (1, 1 << 40, "reduction length"),
    "arrays.lut_group": (1, 6, "weights per lookup (a ternary table of 3^6 = 729 entries at most)"),
    "arrays.pe_ops.rate": (1e-6, 1024.0, "MACs per PE per cycle"),
    "arrays.unpack": (1e-6, 1e9, "elements per cycle per copy"),
    "arrays.split_combine_ns": (0.0, 1e7, "ns per op"),
    "arrays.stream_ramp_ns": (0.0, 1e7, "ns per op"),
    "arrays.stream_efficiency": (1e-3, 1.0, "fraction of the sustained off-chip rate"),
    "arrays.promote_every_k": (1, 1 << 20, "K elements"),
    "arrays.promote_ns": (0.0, 1e6, "ns per promotion of one fold"),
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
    "sram.weight_store_mib": (0.0, float(1 << 24), "MiB"),
    "sram.fill_bandwidth_bytes_per_cycle": (0.0, float(1 << 24), "bytes per cycle"),
    "op_overhead_ns": (0.0, 1e9, "ns"),
    "host_launch_ns": (0.0, 1e9, "ns"),
    "static_power_w": (0.0, 1e6, "W"),
}


def load_accelerator(name_or_path: "str | Path | AcceleratorConfig",
                     costs: "str | Path | None" = None) -> AcceleratorConfig:
    """Load a preset by name (:data:`PRESETS`) or a YAML path (strict, bounded loader); an
    :class:`AcceleratorConfig` is re-validated.  ``costs``: a user cost table overlaid on the built-in
    one (the ``costs`` field; a relative path is relative to the working directory)."""
    if costs is not None and not isinstance(costs, (str, Path)):
        raise TypeError(f"costs must be a path to a cost table, got {type(costs).__name__}")
    if isinstance(name_or_path, AcceleratorConfig):
        cfg = name_or_path if costs is None else dataclasses.replace(name_or_path, costs=str(Path(costs).resolve()))
        return _check_config(cfg)
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
    raw = load_yaml(path)
    if costs is not None:
        raw = {**raw, "costs": str(Path(costs).resolve())} if isinstance(raw, dict) else raw
    elif isinstance(raw, dict) and isinstance(raw.get("costs"), str) and raw["costs"]:
        raw = {**raw, "costs": str((Path(path).parent / raw["costs"]).resolve())}
    return from_dict(raw, where=path.name)


def from_dict(raw: Any, where: str = "accelerator") -> AcceleratorConfig:
    """Build a validated config from a plain dict (the parsed YAML, or ``dataclasses.asdict`` of a config)."""
    d = dataclass_fields(raw, AcceleratorConfig, where)
    d["arrays"] = tuple(_array(a, f"{where}: arrays[{i}]") for i, a in enumerate(
        _list(d.get("arrays"), f"{where}: arrays")))
    d["vector"] = _vector(d.get("vector"), f"{where}: vector")
    with energy.using_costs(_cost_table(d.get("costs", ""), f"{where}: costs")):   # SRAM keys read it
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


def _cost_table(costs: Any, field_: str) -> dict | None:
    """The merged table of a ``costs`` value ("" = None: the built-in table); a bad file names ``field_``."""
    if not isinstance(costs, str):
        raise ValueError(f"{field_}: expected a path to a cost table (CSV), got {quote(costs)}")
    if not costs:
        return None
    try:
        return energy.cost_overlay(costs)
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{field_}: {e}") from None


def _check_config(c: AcceleratorConfig, where: str | None = None) -> AcceleratorConfig:
    """``c`` checked field by field (``ValueError`` naming the field), with its memory fields resolved."""
    w = where or c.name
    if not isinstance(c.name, str) or not c.name.strip():
        raise ValueError(f"{w}: name must be a non-empty string, got {quote(c.name)}")
    with energy.using_costs(_cost_table(c.costs, f"{w}: costs")):   # node rows (clock.max_ghz) may be overlaid
        _check_top(c, w)
    c = dataclasses.replace(c, offchip=_resolve_offchip(c.offchip, f"{w}: offchip"))
    _check_offchip(c, w)
    _check_sram(c, w)
    _limit(c.vector.lanes, f"{w}: vector.lanes", "vector.lanes")
    for k, v in c.vector.passes.items():
        _limit(v, f"{w}: vector.passes.{k}", "vector.passes")
    _check_row_reductions(c.vector, f"{w}: vector")
    for i, a in enumerate(c.arrays):
        _check_array(a, f"{w}: arrays[{i}]")
    return c


def _check_row_reductions(v: VectorConfig, where: str) -> None:
    check_number(v.units, f"{where}.units", integer=True, lo=0, hi=1 << 20, unit="units")
    check_number(v.row_lanes, f"{where}.row_lanes", lo=0.0, hi=float(1 << 24), unit="element-passes per cycle")
    check_number(v.reduction_ns, f"{where}.reduction_ns", lo=0.0, hi=1e6, unit="ns")
    check_number(v.row_tile, f"{where}.row_tile", integer=True, lo=0, hi=1 << 24, unit="elements")
    check_number(v.wide_row_lanes, f"{where}.wide_row_lanes", lo=0.0, hi=float(1 << 24),
                 unit="element-passes per cycle")
    check_number(v.shared_rows, f"{where}.shared_rows", lo=0.0, hi=64.0, unit="rows per unit")
    for k, n in v.reductions.items():
        check_number(n, f"{where}.reductions.{k}", lo=0.0, hi=1e4, unit="reduction steps per row")


def _choice(value: Any, choices: tuple, field_: str) -> None:
    if value not in choices:
        raise ValueError(f"{field_} must be one of {choices}, got {quote(value)}")


def _check_top(c: AcceleratorConfig, w: str) -> None:
    _limit(c.clock_ghz, f"{w}: clock_ghz", "clock_ghz")
    energy.check_node(c.process_nm, f"{w}: process_nm")
    top = energy.cost("clock.max_ghz", c.process_nm)
    check_number(c.clock_ghz, f"{w}: clock_ghz", lo=LIMITS["clock_ghz"][0], hi=top.value,
                 unit=f"GHz at {c.process_nm} nm (clock.max_ghz of the cost table: {top.source})")
    _choice(c.comparison, COMPARISONS, f"{w}: comparison")
    _choice(c.precision_policy, POLICIES, f"{w}: precision_policy")
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
    _choice(c.energy_basis, ENERGY_BASES, f"{w}: energy_basis")
    if c.energy_basis == "dynamic-only" and c.static_power_w != 0:
        raise ValueError(f"{w}: energy_basis 'dynamic-only' contradicts static_power_w = {c.static_power_w} "
                         f"(set static_power_w to 0 or energy_basis to 'model')")
    _choice(c.static_model, STATIC_MODELS, f"{w}: static_model")
    if c.energy_basis == "dynamic-only" and c.static_model != "fixed":
        raise ValueError(f"{w}: energy_basis 'dynamic-only' contradicts static_model 'leakage' "
                         f"(set static_model to 'fixed' or energy_basis to 'model')")
    _choice(c.weight_residency, WEIGHT_RESIDENCIES, f"{w}: weight_residency")
    _choice(c.host_interface, energy.HOST_INTERFACES, f"{w}: host_interface")


def _check_offchip(c: AcceleratorConfig, w: str) -> None:
    for f_ in ("capacity_gb", "bandwidth_gbps", "pj_per_bit", "sustained_fraction", "interfaces"):
        _limit(getattr(c.offchip, f_), f"{w}: offchip.{f_}", f"offchip.{f_}")
    if c.offchip.interfaces:
        try:
            energy.phy_costs(c.offchip.kind, c.offchip.interfaces)
        except ValueError as e:
            raise ValueError(f"{w}: {e}") from None
    for f_, lo, hi, unit in (("latency_ns", 0.0, 1e6, "ns"), ("burst_bytes", 1.0, 1 << 20, "bytes"),
                             ("page_bytes", 1.0, 1 << 30, "bytes"), ("row_miss_ns", 0.0, 1e6, "ns")):
        check_number(getattr(c.offchip, f_), f"{w}: offchip.{f_}", lo=lo, hi=hi, unit=unit)
    check_number(c.sparsity.index_latency_ns, f"{w}: sparsity.index_latency_ns", lo=0.0, hi=1e9, unit="ns")


def _check_sram(c: AcceleratorConfig, w: str) -> None:
    for f_ in ("weight_buffer_kib", "activation_buffer_kib", "bandwidth_bytes_per_cycle", "pj_per_bit",
               "weight_store_mib", "fill_bandwidth_bytes_per_cycle"):
        _limit(getattr(c.sram, f_), f"{w}: sram.{f_}", f"sram.{f_}")
    if (c.weight_residency == "sram") != (c.sram.weight_store_mib > 0):
        raise ValueError(f"{w}: weight_residency {c.weight_residency!r} contradicts sram.weight_store_mib = "
                         f"{c.sram.weight_store_mib:g} (resident weights need a store > 0 MiB; streamed ones none)")


def _check_array(a: ArrayConfig, aw: str) -> None:
    for f_ in ("rows", "cols", "count", "max_k", "lut_group"):
        _limit(getattr(a, f_), f"{aw}.{f_}", f"arrays.{f_}")
    if a.weight_load_cycles is not None:
        _limit(a.weight_load_cycles, f"{aw}.weight_load_cycles", "arrays.weight_load_cycles")
    if a.max_m is not None:
        _limit(a.max_m, f"{aw}.max_m", "arrays.max_m")
    _choice(a.float_accumulator, energy.FLOAT_ACCUMULATORS, f"{aw}.float_accumulator")
    _choice(a.dataflow, DATAFLOWS, f"{aw}.dataflow")
    if not a.pe_ops:
        raise ValueError(f"{aw}.pe_ops: at least one operand pair is required")
    for j, p in enumerate(a.pe_ops):
        check_operand(p.weights, f"{aw}.pe_ops[{j}].weights")
        check_operand(p.acts, f"{aw}.pe_ops[{j}].acts")
        _limit(p.rate, f"{aw}.pe_ops[{j}].rate", "arrays.pe_ops.rate")
    energy.check_pe_kind(a, aw)
    for op_, r in a.unpack.items():
        if op_ not in PACKED_OPERANDS:
            raise ValueError(f"{aw}.unpack: unknown packed operand {quote(op_)}; known: {list(PACKED_OPERANDS)}")
        _limit(r, f"{aw}.unpack.{op_}", "arrays.unpack")
    for form, r in a.unpack_forms.items():
        _limit(r, f"{aw}.unpack_forms.{form}", "arrays.unpack")
    for op_, t in a.unpack_m_tile.items():
        if op_ not in a.unpack:
            raise ValueError(f"{aw}.unpack_m_tile: operand {quote(op_)} has no unpack rate on this array; "
                             f"unpacked here: {sorted(a.unpack)}")
        _limit(t, f"{aw}.unpack_m_tile.{op_}", "arrays.unpack_m_tile")
    _limit(a.split_combine_ns, f"{aw}.split_combine_ns", "arrays.split_combine_ns")
    if a.split_balanced and not a.split_reduction:
        raise ValueError(f"{aw}.split_balanced: true needs split_reduction: true (it chooses how a split "
                         f"reduction is cut)")
    for key in ("stream_ramp_ns", "stream_efficiency"):
        for op_, v in getattr(a, key).items():
            check_operand(op_, f"{aw}.{key} key")
            _limit(v, f"{aw}.{key}.{op_}", f"arrays.{key}")
    for key in ("promote_every_k", "promote_ns"):
        for op_, v in getattr(a, key).items():
            check_operand(op_, f"{aw}.{key} key")
            _limit(v, f"{aw}.{key}.{op_}", f"arrays.{key}")
    for op_ in a.promote_ns:
        if op_ not in a.promote_every_k:
            raise ValueError(f"{aw}.promote_ns: format {quote(op_)} has no promote_every_k on this array; "
                             f"promoted here: {sorted(a.promote_every_k)}")


_FROM_KIND = ("bandwidth_gbps", "pj_per_bit", "sustained_fraction")


def _resolve_offchip(o: OffchipConfig, where: str) -> OffchipConfig:
    """``o`` with the fields it leaves out taken from its kind's row of the memory table (see OffchipConfig)."""
    kind = energy.check_memory_kind(o.kind, f"{where}.kind")
    if not isinstance(o.from_kind, dict):
        raise ValueError(f"{where}.from_kind: expected a mapping field -> value, got {quote(o.from_kind)}")
    given = {f: getattr(o, f) for f in _FROM_KIND}
    for f, v in o.from_kind.items():     # a value the loader took from a kind counts as not given
        if f in given and given[f] == v:
            given[f] = None
    _limit(o.interfaces, f"{where}.interfaces", "offchip.interfaces")
    for f in ("bandwidth_gbps", "sustained_fraction"):
        if given[f] is not None:
            _limit(given[f], f"{where}.{f}", f"offchip.{f}")
    if kind == energy.CUSTOM:
        for f in ("bandwidth_gbps", "pj_per_bit"):
            if given[f] is None:
                raise ValueError(f"{where}.{f}: required for kind 'custom' (a memory the table does not describe)")
        return dataclasses.replace(o, sustained_fraction=1.0 if given["sustained_fraction"] is None
                                   else given["sustained_fraction"], from_kind={})
    row = {f: energy.memory_row(kind, f).value for f in _FROM_KIND}
    if given["bandwidth_gbps"] is None:
        if not o.interfaces:
            raise ValueError(f"{where}.bandwidth_gbps: give it, or offchip.interfaces (each a {kind} interface "
                             f"of {row['bandwidth_gbps']:g} GB/s)")
        row["bandwidth_gbps"] *= o.interfaces
    taken = {f: row[f] for f in _FROM_KIND if given[f] is None}
    return dataclasses.replace(o, **{**given, **taken}, from_kind=taken)


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
    if d.get("pj_per_bit") is not None:
        v = d["pj_per_bit"]
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise ValueError(f"{where}.pj_per_bit: expected a number or an energy-table key, got {quote(v)}")
        kind = d.get("kind")
        if cls is OffchipConfig and isinstance(v, str) and v in energy.MEMORIES and kind in energy.MEMORIES \
                and v != kind:
            warnings.warn(f"{where}.pj_per_bit names {v}'s energy but kind is {kind!r}: drop pj_per_bit to take "
                          f"{kind}'s own from the memory table", stacklevel=4)
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
    if "unpack_forms" in d:
        d["unpack_forms"] = {k: float(v) for k, v in
                             _numbers(d["unpack_forms"], f"{where}.unpack_forms", "form -> elements per cycle").items()}
    if "unpack_m_tile" in d:
        tiles = _numbers(d["unpack_m_tile"], f"{where}.unpack_m_tile", "operand -> rows")
        for k, v in tiles.items():
            if float(v) != int(v):
                raise ValueError(f"{where}.unpack_m_tile.{k}: expected a whole number of rows, got {quote(v)}")
        d["unpack_m_tile"] = {k: int(v) for k, v in tiles.items()}
    for key, what in (("stream_ramp_ns", "weight operand -> ns"), ("stream_efficiency", "weight operand -> fraction"),
                      ("promote_ns", "MMA input format -> ns")):
        if key in d:
            d[key] = {k: float(v) for k, v in _numbers(d[key], f"{where}.{key}", what).items()}
    if "promote_every_k" in d:
        ks = _numbers(d["promote_every_k"], f"{where}.promote_every_k", "MMA input format -> K elements")
        for k, v in ks.items():
            if float(v) != int(v):
                raise ValueError(f"{where}.promote_every_k.{k}: expected a whole number of K elements, got {quote(v)}")
        d["promote_every_k"] = {k: int(v) for k, v in ks.items()}
    _typed(d, ArrayConfig, where, skip=("pe_ops", "unpack", "unpack_m_tile", "stream_ramp_ns", "stream_efficiency",
                                        "promote_every_k", "promote_ns"))
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
    red = _numbers(d.get("reductions", _DEFAULT_REDUCTIONS), f"{where}.reductions", "op-kind -> reduction steps")
    unknown = sorted(set(red) - set(_DEFAULT_PASSES))
    if unknown:
        raise ValueError(f"{where}.reductions: unknown op kind(s) {quote(unknown)}; known: {sorted(_DEFAULT_PASSES)}")
    d["reductions"] = dict(red)
    _typed(d, VectorConfig, where, skip=("passes", "reductions"))
    return VectorConfig(**d)


def _limit(v: Any, where: str, key: str) -> None:
    """``v`` is a finite number inside ``LIMITS[key]`` (:func:`contract.config.check_number`), naming ``where``."""
    lo, hi, unit = LIMITS[key]
    check_number(v, where, integer=key in _INTEGER_LIMITS, lo=lo, hi=hi, unit=f"{unit} (the sane range)")
