"""Replay measured kernel calls on the simulator: measured_trace rows -> op-trace rows -> sim_vs_measured.

* :func:`load_anchors` -- the H100 anchor rows of docs/gpu-facts.md §1.1-1.3 as a measured_trace
  table (``sim/data/h100_anchors.csv``, source named in its header).
* :func:`measured_row_to_trace` -- the op-trace rows one measured kernel call stands for.
* :func:`compare_measured` -- simulate each supported row of any ``measured_trace`` table on a
  preset (default ``h100-like``): the per-row ``sim_vs_measured`` table and its MAPE per class.

This is the first step of the one direction of ``sim.validation``: replay -> calibrate
(:mod:`sim.validation.calibrate`) -> held-out tables (:mod:`sim.validation.heldout`).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from contract import TUNING_SUFFIX, read_table, validate
from contract.sim import SIM_VS_MEASURED

from ..config import AcceleratorConfig, load_accelerator
from ..engine.plan import REDUCTION_STEPS, SPLIT_K_PARTS
from ..simulate import simulate
from .mape import mape_by_class

ANCHORS = Path(__file__).resolve().parents[1] / "data" / "h100_anchors.csv"
#: The committed measured tables (reports/data of this checkout, found from the package, not the working folder).
MEASURED_DIR = Path(__file__).resolve().parents[2] / "reports" / "data"
H100_MEASURED = MEASURED_DIR / "measured_h100_kernels.parquet"

# measured_trace precision -> (weight_format, weight_bits, act_format, act_bits, out_bits)
_PRECISIONS = {
    "fp16": ("fp16", 16.0, "fp16", 16, 16),
    "bf16": ("fp16", 16.0, "fp16", 16, 16),
    "int8": ("int8", 8.0, "int8", 8, 32),
    "fp8": ("fp8", 8.0, "fp8", 8, 16),
    "w1.58a8": ("ternary", 2.0, "int8", 8, 16),
    "w1.58a4": ("ternary", 2.0, "int4", 4, 16),
    "w1.58a4-fp8": ("ternary", 2.0, "int4", 4, 16),
    "w1.58a4-int8": ("ternary", 2.0, "int8", 8, 16),  # INT4 codes held in int8 (kernels/ternary_gemm.py)
    "w8a8-fp8": ("fp8", 8.0, "fp8", 8, 16),           # torch._scaled_mm on quantized activations
    "w4a16": ("int4", 4.25, "fp16", 16, 16),          # int4 codes + a bf16 scale and zero per 128 (Int4Linear)
}
_KV = {"fp16": ("kv-fp16", 16), "kv3": ("kv-int3", 3), "kv4": ("kv-int4", 4), "int8": ("kv-int8", 8)}
SUPPORTED_OPS = ("gemm", "gemv", "sparse_gemv", "attention_decode", "attention_step", "quant")
#: The quantizer kernels (kernels/rmsnorm_quant.py, op ``quant``) as vector ops, in the order one program runs
#: them on a row: the GLU product (``_glu``, ``_silu``: of the gate and up halves), the RMSNorm, TopK, the
#: quantizer.  Variants that also write the nonzero index (``_nz``) or search TopK by radix histograms
#: (``_radix``: another count of dependent reductions) have no equivalent here.
QUANT_KERNELS = {
    "ours_norm_int8": ("rmsnorm", "quant"), "ours_norm_int4": ("rmsnorm", "quant"),
    "ours_norm_int4_fp8": ("rmsnorm", "quant"), "ours_norm_topk8": ("rmsnorm", "topk", "quant"),
    "ours_norm_topk8_interp": ("rmsnorm", "topk", "quant"),
    "ours_norm_topk8_nz": ("rmsnorm", "topk", "quant", "nzlist"),
    "ours_norm_int8_glu_nz": ("glu", "rmsnorm", "quant", "nzlist"),
    "ours_norm_int8_glu": ("glu", "rmsnorm", "quant"), "ours_norm_int8_silu": ("glu", "rmsnorm", "quant"),
}
#: Dependent reductions of a row's TopK under an exact threshold search of kernels/rmsnorm_quant.py that stops
#: early, the count above the threshold and the rank of ties included ("bitwise", 31 + 2, is the topk kind's own
#: ``vector.reductions``).  interp: 5.4 + 2, the search's mean count of block-wide reductions over 400 Gaussian
#: 4096-wide rows at k = 2048 (median 5, p90 7), counted on a step-by-step port of the kernel's search; not fitted
TOPK_SEARCH_STEPS = {"interp": 7.4}
#: The search of each quantizer kernel row that names one (the others run bitwise)
QUANT_TOPK_SEARCH = {"ours_norm_topk8_interp": "interp"}
SIM_VS_MEASURED_COLUMNS = [c.name for c in SIM_VS_MEASURED]
#: Kernel-name prefix of the two-pass route's rows (kernels/bench/gemm.py), replayed as that route's launches
TWO_PASS_PREFIX = "ours_twopass_w158"
#: Kernel-name suffix of the GEMM rows timed on the CUDA-core GEMV whatever their batch (the launcher's
#: ``path="gemv"``, kernels/bench/gemm.py serving section), and the GPU presets' array that runs that GEMV:
#: such a row replays on that array alone, past the preset's dispatch rule (``max_m``), which is the rule
#: of the launcher's "auto" path
GEMV_KERNEL_SUFFIX, GEMV_ARRAY = "_gemv", "cuda_cores"

#: Weight formats whose GEMM kernels record their tile (``config``) and are replayed on it: our ternary kernels
TILED_WEIGHTS = ("ternary",)
#: Our A8 and A4-FP8 GEMMs with the weight decode left out (kernels/bench/gemm.py): they read one byte per weight
#: code and feed it to the MMA as it is, so they replay as INT8 / FP8 weights on their tile, with no decode
DECODE_FREE = {"ours_int8_nodecode": "int8", "ours_fp8_nodecode": "fp8"}


@dataclass(frozen=True)
class KernelTile:
    """The tile a measured GEMM row ran (its ``config``, kernels/configs.py): ``BM`` x ``BN`` outputs per program,
    K cut into ``split_k`` parts, the weights decoded four packed bytes per register (``swar``) or not."""
    BM: int
    BN: int
    split_k: int = 1
    swar: bool = False


def recorded_tile(m: pd.Series) -> KernelTile | None:
    """The :class:`KernelTile` a measured row records, or None when it records none (no ``config``, or a config
    without an output tile: the GEMV path's, the library kernels'); ``ValueError`` for a malformed one."""
    raw = m.get("config", None)
    if not isinstance(raw, str) or not raw.strip().startswith("{"):
        return None
    try:
        cfg = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"measured row {m.name}: config is not JSON ({e})") from None
    if not isinstance(cfg, dict) or "BM" not in cfg or "BN" not in cfg:
        return None
    vals = {k: cfg.get(k, 1) for k in ("BM", "BN", "SPLIT_K")}
    for k, v in vals.items():
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1 << 16:
            raise ValueError(f"measured row {m.name}: config {k} must be a whole number in [1, 65536], got {v!r}")
    return KernelTile(BM=vals["BM"], BN=vals["BN"], split_k=vals["SPLIT_K"], swar=bool(cfg.get("SWAR", False)))


def decode_form(m: pd.Series, tile: KernelTile | None) -> str | None:
    """The decode form a tiled row names (``ArrayConfig.unpack_forms``): ``swar-fp8`` for a ``SWAR`` tile of an
    FP8-MMA precision, ``swar-int8`` for the others; None for the broadcast decode (``unpack``)."""
    if tile is None or not tile.swar:
        return None
    return "swar-fp8" if "fp8" in str(m["precision"]) else "swar-int8"


def runs_on_tile(m: pd.Series) -> KernelTile | None:
    """The tile a row is replayed on: a GEMM of :data:`TILED_WEIGHTS` or a :data:`DECODE_FREE` variant that records
    one, not the two-pass route's or the CUDA-core GEMV's (whose configs tile other loops); None otherwise."""
    if str(m["op"]) != "gemm" or str(m["kernel"]).startswith(TWO_PASS_PREFIX) or _runs_gemv_path(m):
        return None
    if str(m["kernel"]) not in DECODE_FREE and _PRECISIONS.get(str(m["precision"]), ("",))[0] not in TILED_WEIGHTS:
        return None
    return recorded_tile(m)


def with_swept_tiles(measured: pd.DataFrame) -> pd.DataFrame:
    """``measured`` with the ``config`` of each row that records none filled from its run's sweep: of the tuning
    rows (kernel name + :data:`contract.TUNING_SUFFIX`) of the same run (``date``), precision and shape, the
    fastest exact one's.  That is the rule the benchmark picks the config of the rest of its run by (the fastest
    correct config per shape; every run that records the final row's config agrees with it).  Rows that record a
    config, and rows whose run swept nothing, are unchanged."""
    if "config" not in measured.columns:
        measured = measured.assign(config="")
    config = measured["config"].astype("string").fillna("")
    names = measured["kernel"].astype(str)
    exact = measured["exact"].map(lambda v: isinstance(v, (bool, np.bool_)) and bool(v)).astype(bool)   # unchecked: no
    swept = names.str.endswith(TUNING_SUFFIX) & exact & config.str.startswith("{")
    if not swept.any():
        return measured
    keys = ["date", "kernel", "precision", "M", "N", "K"]
    tun = measured[swept].assign(kernel=names[swept].str[:-len(TUNING_SUFFIX)], config=config[swept])
    best = tun.sort_values("us", kind="stable").drop_duplicates(keys)[keys + ["config"]]
    lacks = ~names.str.endswith(TUNING_SUFFIX) & ~config.str.startswith("{")
    filled = measured[lacks][keys].merge(best, on=keys, how="left")["config"].to_numpy()
    out = measured.copy()
    out["config"] = config.astype(object)
    out.loc[lacks, "config"] = [c if isinstance(c, str) else "" for c in filled]
    return out


def tile_accelerator(cfg: AcceleratorConfig, tile: KernelTile, form: str | None, M: int) -> AcceleratorConfig:
    """``cfg`` with the array that runs an ``M``-row GEMM cut to the kernel's output tile: ``BM`` x ``BN`` PEs at
    the rate that keeps the copy's peak (a smaller tile is not a slower SM) and a promotion cost in proportion to its
    accumulators (a promotion adds each of them once), its split-K parts combined by the last part as the preset's
    measured in-kernel combine runs (the largest ``split_combine_ns`` of its arrays: the decode-attention kernels'
    ticketed combine, the same mechanism, kernels/tickets.py), K split only as the kernel splits it
    (:func:`tiled_trace`), the weights decoded at the ``form``'s rate where the array names it.  The first
    array other than the GEMV array that takes ``M`` (the dispatch rule's choice) is the one cut."""
    arrays = list(cfg.arrays)
    for i, a in enumerate(arrays):
        if a.name == GEMV_ARRAY or not a.takes_m(M):
            continue
        scale = a.rows * a.cols / (tile.BM * tile.BN)
        unpack = dict(a.unpack)
        if form is not None and form in a.unpack_forms:
            unpack.update({op: a.unpack_forms[form] for op in TILED_WEIGHTS})
        arrays[i] = replace(a, rows=tile.BM, cols=tile.BN, split_reduction=False, split_balanced=False,
                            pe_ops=tuple(replace(p, rate=p.rate * scale) for p in a.pe_ops), unpack=unpack,
                            promote_ns={f: ns / scale for f, ns in a.promote_ns.items()},
                            split_combine_ns=max(b.split_combine_ns for b in cfg.arrays))
        return replace(cfg, arrays=tuple(arrays))
    return cfg


def without_fill(cfg: AcceleratorConfig) -> AcceleratorConfig:
    """``cfg`` without its fill bandwidth (``sram.fill_bandwidth_bytes_per_cycle``): what a row whose kernel tile the
    replay does not know runs on.  The folds of the preset's own array would stand for that kernel's tile, and a
    library GEMM's tiles are larger and share their loads across a cluster: the 128 x 128 fold overcounts its L2
    reads (the two-pass route's FP8 GEMM at M = 8192 replays 37 % long with them)."""
    if cfg.sram.fill_bandwidth_bytes_per_cycle <= 0:
        return cfg
    return replace(cfg, sram=replace(cfg.sram, fill_bandwidth_bytes_per_cycle=0.0))


def tiled_trace(tr: pd.DataFrame, tile: KernelTile) -> pd.DataFrame:
    """The GEMM row of ``tr`` as ``split_k`` instances of a K / ``split_k`` reduction (each part writes its partial
    tile: the kernel's split-K buffer), so each part is a fold of its own on the tiled array, and the last part's
    in-kernel combine of the partials (:data:`sim.engine.plan.SPLIT_K_PARTS`, the tiled array's
    ``split_combine_ns``, :func:`tile_accelerator`)."""
    if tile.split_k == 1:
        return tr
    r = tr.iloc[0]
    part = math.ceil(int(r["K"]) / tile.split_k)
    row = _op_row(op=str(r["op"]), op_class="gemm", M=int(r["M"]), N=int(r["N"]), K=part, count=tile.split_k,
                  weight_format=str(r["weight_format"]), weight_bits=float(r["weight_bits"]),
                  act_format=str(r["act_format"]), act_bits=int(r["act_bits"]), out_bits=32,
                  sparsity=float(r["sparsity"]))
    row[SPLIT_K_PARTS] = tile.split_k
    return pd.DataFrame([row])


# Measurement protocol of docs/gpu-facts.md §1: triton.testing.do_bench flushes the L2
# before each timed call by writing a large buffer, so the timed kernel starts
# with the L2 (50 MB on H100) full of dirty lines.  Every line its reads evict
# must first be written back to DRAM: up to 50 MB of extra write traffic, which
# shows in memory-bound kernels (GEMV, decode attention) and hides under
# compute in GEMMs.
H100_L2_BYTES = 50e6  # docs/gpu-facts.md §0, §1: the measured H100 80GB HBM3 has a 50 MB L2


def load_anchors() -> pd.DataFrame:
    """The measured H100 anchor rows (measured_trace schema)."""
    return read_table(ANCHORS, schema="measured_trace")


def kernel_family(kernel: str) -> str:
    """Implementation family of a measured kernel name: its first word (ours, cublas, torch, gemlite), with
    ``-gemv`` for a GEMM timed on the CUDA-core GEMV (:data:`GEMV_KERNEL_SUFFIX`): another kernel on other
    units than the tensor-core GEMM of the same op and precision, so a class of its own."""
    family = str(kernel).split("_")[0]
    return family + "-gemv" if str(kernel).endswith(GEMV_KERNEL_SUFFIX) else family


def _op_row(*, op: str, op_class: str, M: int, N: int, K: int, count: int, weight_format: str,
            weight_bits: float, act_format: str, act_bits: int, out_bits: int, sparsity: float,
            kv_read: float = 0.0) -> dict:
    """One op-trace row of a replayed kernel call (MACs and bytes from the shape and bit widths)."""
    macs = M * N * K * count
    wbytes = kv_read if op_class == "attention" else N * K * weight_bits / 8 * count
    return dict(layer=0, op=op, op_class=op_class, phase="decode", M=M, N=N, K=K, count=count,
                weight_format=weight_format, weight_bits=float(weight_bits), act_format=act_format,
                act_bits=act_bits, out_bits=out_bits, sparsity=float(sparsity),
                row_skip=float(sparsity if M == 1 else 0.0),
                macs_dense=macs, macs_effective=int(round(macs * (1 - sparsity))),
                weight_bytes=float(wbytes), act_bytes_in=float(M * K * act_bits / 8 * count),
                act_bytes_out=float(M * N * out_bits / 8 * count), kv_bytes_read=float(kv_read),
                kv_bytes_write=0.0)


def measured_row_to_trace(m: pd.Series, head_dim: int = 128) -> pd.DataFrame:
    """The op-trace rows one measured kernel stands for (``ValueError`` if it has none).

    gemm / gemv / sparse_gemv -> one gemm op.  attention_decode (M = batch,
    N = heads, K = context) -> attn_qk, softmax, attn_pv with ``head_dim`` (two launches: the
    context spans, then the combine of their partials); attention_step: RoPE + the same in one launch.
    quant (M rows of N) ->
    the vector ops of :data:`QUANT_KERNELS`, one launch.
    """
    op, prec = str(m["op"]), DECODE_FREE.get(str(m["kernel"]), str(m["precision"]))
    M, N, K = int(m["M"]), int(m["N"]), int(m["K"])
    if op == "gemm" and str(m["kernel"]).startswith(TWO_PASS_PREFIX) and prec in _PRECISIONS:
        rows = [dict(r, fused=False) for r in two_pass_rows("gemm", M, N, K, _PRECISIONS[prec][2],
                                                             _two_pass_epilogue(m))]
    elif op in ("gemm", "gemv", "sparse_gemv"):
        if prec not in _PRECISIONS:
            raise ValueError(f"measured row {m.name}: unknown precision {prec!r}; known {sorted(_PRECISIONS)}")
        w, wb, a, ab, ob = _PRECISIONS[prec]
        rows = [_op_row(op="gemm", op_class="gemm", M=M, N=N, K=K, count=1, weight_format=w, weight_bits=wb,
                        act_format=a, act_bits=ab, out_bits=ob, sparsity=float(m["sparsity"]))]
    elif op in ("attention_decode", "attention_step"):
        if prec not in _KV:
            raise ValueError(f"measured row {m.name}: unknown KV precision {prec!r}; known {sorted(_KV)}")
        kvf, kvb = _KV[prec]
        kv_half = M * K * N * head_dim * kvb / 8  # K (or V) cache of all heads
        att = dict(op_class="attention", count=M * N, weight_format=kvf, weight_bits=kvb, act_format="fp16",
                   act_bits=16, out_bits=16, sparsity=0.0, kv_read=kv_half)
        rows = [_op_row(op="attn_qk", M=1, N=K, K=head_dim, **att),
                _op_row(op="softmax", op_class="vector", M=M * N, N=K, K=0, count=1, weight_format="none",
                        weight_bits=0.0, act_format="fp16", act_bits=16, out_bits=16, sparsity=0.0),
                _op_row(op="attn_pv", M=1, N=head_dim, K=K, **att)]
        rows[1].update(macs_dense=M * N * K, macs_effective=M * N * K, weight_bytes=0.0)
        # two launches, as a split-context decode kernel runs: the spans (q.K^T, softmax, P.V of each span)
        # and the combine of the spans' partial outputs
        for r, fused in zip(rows, (False, True, False)):
            r["fused"] = fused
        if op == "attention_step":   # one launch: RoPE of q and k, the spans, the combine (kernels/attention_step.py)
            rope = _vector_row("rope", M, 2 * N * head_dim)
            rows = [dict(rope, fused=False)] + [dict(r, fused=True) for r in rows]
    elif op == "quant" and str(m["kernel"]) in QUANT_KERNELS:
        search = QUANT_TOPK_SEARCH.get(str(m["kernel"]), "bitwise")
        rows = [dict(topk_row(M, N, search) if kind == "topk" else list_row(M, N) if kind == "nzlist" else
                     _vector_row(kind, M, N, gains=kind == "rmsnorm", glu=kind == "glu"), fused=j > 0)
                for j, kind in enumerate(QUANT_KERNELS[str(m["kernel"])])]   # one launch
    else:
        raise ValueError(f"measured row {m.name}: op {op!r} (kernel {m['kernel']!r}) has no op-trace equivalent "
                         f"here (supported: {SUPPORTED_OPS}; quantizers: {sorted(QUANT_KERNELS)})")
    return pd.DataFrame(rows)


def _vector_row(op: str, M: int, width: int, gains: bool = False, glu: bool = False) -> dict:
    """One vector-unit op over ``M`` rows of ``width`` fp16 elements (a GLU reads the gate and up halves;
    an RMSNorm reads its gains from off chip)."""
    r = _op_row(op=op, op_class="vector", M=M, N=width, K=0, count=1, weight_format="none", weight_bits=0.0,
                act_format="fp16", act_bits=16, out_bits=16, sparsity=0.0)
    r.update(macs_dense=M * width, macs_effective=M * width, weight_bytes=2.0 * width if gains else 0.0,
             act_bytes_in=float(M * width * 2 * (2 if glu else 1)))
    return r


def list_row(M: int, width: int, op: str = "nzlist") -> dict:
    """The writing of each row's non-zero indices inside a quantizer (the sparse GEMV's list): a prefix count over the
    row and an int32 index per element at most (the list's room; only non-zeros are written), nothing read again."""
    r = _vector_row(op, M, width)
    r.update(act_bytes_in=0.0, act_bytes_out=float(M * width * 4))
    return r


def topk_row(M: int, width: int, search: str = "bitwise", op: str = "topk") -> dict:
    """The TopK vector op of a quantizer over ``M`` rows of ``width``, with the reductions its threshold
    ``search`` takes (:data:`TOPK_SEARCH_STEPS`; "bitwise": the kind's own count)."""
    if search != "bitwise" and search not in TOPK_SEARCH_STEPS:
        raise ValueError(f"topk search {search!r} has no reduction count here; known: "
                         f"{['bitwise', *TOPK_SEARCH_STEPS]}")
    r = _vector_row(op, M, width)
    if search in TOPK_SEARCH_STEPS:
        r[REDUCTION_STEPS] = TOPK_SEARCH_STEPS[search]
    return r


def elementwise_row(name: str, M: int, width: int, read: float, write: float) -> dict:
    """One elementwise kernel (a cast, a product, a copy, a decode pass) over ``M`` rows of ``width`` elements,
    reading ``read`` and writing ``write`` bytes per element as its dtypes give them (fp32 4, fp16 2)."""
    r = _vector_row(f"add_{name}", M, width)
    r.update(act_bytes_in=float(M * width * read), act_bytes_out=float(M * width * write))
    return r


#: Bytes (read, written) per output of each launch of the two-pass route's epilogue: the one Triton launch
#: (``kernels.ternary_gemm.scale_epilogue``), or the torch expression it replaced, one launch per operation
#: (an int32 cast first for INT8 sums, two fp32 products, the fp16 cast)
TWO_PASS_EPILOGUES = {"one_launch": ((4.0, 2.0),), "torch": ((4.0, 4.0), (4.0, 4.0), (4.0, 2.0)),
                      "torch_int": ((4.0, 4.0), (4.0, 4.0), (4.0, 4.0), (4.0, 2.0))}


def two_pass_rows(name: str, M: int, N: int, K: int, act: str, epilogue: str = "one_launch") -> list[dict]:
    """The two-pass route of one ternary GEMM, one launch each: the weights decoded to one byte per code (2 bits
    read, 1 byte written per weight), the library GEMM on those bytes (FP8 for INT4 codes, else INT8) writing
    32-bit sums, and the epilogue's launches (:data:`TWO_PASS_EPILOGUES`)."""
    fmt = "fp8" if act == "int4" else "int8"
    gemm = _op_row(op=name, op_class="gemm", M=M, N=N, K=K, count=1, weight_format=fmt, weight_bits=8.0,
                   act_format=fmt, act_bits=8, out_bits=32, sparsity=0.0)
    gemm["row_skip"] = 0.0
    passes = [elementwise_row(f"epilogue{i}_{name}", M, N, r, w)
              for i, (r, w) in enumerate(TWO_PASS_EPILOGUES[epilogue])]
    return [elementwise_row(f"decode_{name}", N, K, 0.25, 1.0), gemm, *passes]


def _two_pass_epilogue(m: pd.Series) -> str:
    """Which epilogue a measured two-pass row ran: its note names the torch one (the rows before the one-launch
    kernel); INT8 sums then took an extra cast."""
    if "epilogue in torch" not in str(m.get("note", "") or ""):
        return "one_launch"
    return "torch_int" if str(m["precision"]) == "w1.58a8" else "torch"


def gemv_path_accelerator(cfg: AcceleratorConfig) -> AcceleratorConfig | None:
    """``cfg`` with only its :data:`GEMV_ARRAY`, whatever the batch (its ``max_m`` lifted), or None without one.

    The array keeps only its INT8 x INT8 operand pair where it has one: the GEMV path multiplies the int8
    activation codes with ``dp4a`` (kernels/ternary_gemm.py), so its replay must not promote the operands
    to a faster pair the kernel never uses."""
    arrays = tuple(replace(a, max_m=None, pe_ops=_int8_pairs(a.pe_ops)) for a in cfg.arrays if a.name == GEMV_ARRAY)
    return replace(cfg, arrays=arrays) if arrays else None


def _int8_pairs(pe_ops: tuple) -> tuple:
    """The INT8 x INT8 pairs of ``pe_ops``, or all of them when there is none."""
    int8 = tuple(p for p in pe_ops if p.weights == "int8" and p.acts == "int8")
    return int8 or pe_ops


def _runs_gemv_path(m: pd.Series) -> bool:
    """Whether a measured row names the CUDA-core GEMV path (:data:`GEMV_KERNEL_SUFFIX`) for a GEMM op."""
    return str(m["op"]) == "gemm" and str(m["kernel"]).endswith(GEMV_KERNEL_SUFFIX)


def _copies(m: pd.Series) -> int:
    """Calls one timed replay rotates over (``copies`` of a CUDA-graph row; 1 when not recorded)."""
    c = m.get("copies", 0)
    return int(c) if bool(m["cuda_graph"]) and pd.notna(c) and c >= 1 else 1


def _dirty_writes(tr: pd.DataFrame, flush_dirty_bytes: float, copies: int) -> list[float]:
    """Write-back bytes each op of one call causes: the flush's dirty lines, evicted by the reads of the
    ``copies`` calls of one timed replay in order, shared evenly by those calls."""
    left = float(flush_dirty_bytes) / copies
    extra = []
    for _, r in tr.iterrows():  # reads evict dirty lines in op order
        reads = float(r["weight_bytes"] if r["op_class"] == "gemm" else r["kv_bytes_read"])
        reads += float(r["act_bytes_in"])
        extra.append(min(left, reads))
        left -= extra[-1]
    return extra


def compare_measured(measured: pd.DataFrame, accel: "str | Path | AcceleratorConfig" = "h100-like",
                     head_dim: int = 128, flush_dirty_bytes: float = H100_L2_BYTES
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate every supported row of a ``measured_trace`` table; return (per row, per class).

    ``flush_dirty_bytes``: dirty bytes the timing harness's L2 flush leaves
    behind (see :data:`H100_L2_BYTES`); the simulated kernel writes back
    min(that, bytes it reads), shared by the ``copies`` calls a CUDA-graph row
    rotates over in one timed replay (kernels/bench/harness.py ``time_rotating``:
    one flush per replay).  Pass 0 for a harness without a write flush.

    Per row (table ``sim_vs_measured``): ``measured_us``, simulated ``sim_us``,
    ``ratio`` = sim / measured, signed ``rel_error`` = (sim - measured) / measured.
    Rows timed without a CUDA graph (``cuda_graph`` false) add the config's
    ``host_launch_ns`` once (one host launch per measured kernel call).
    A GEMM row of our kernels that records its tile replays on it (:func:`runs_on_tile`,
    :func:`tile_accelerator`), with the preset's fill bandwidth; every other row without it
    (:func:`without_fill`).
    ``kernel_class`` adds the implementation family (first word of the kernel
    name: ours, cublas, torch, gemlite) to ``class`` (``op precision``, e.g.
    ``gemm fp16``).  ``split`` is empty (:func:`sim.validation.validation_table`
    fills it).  Unsupported rows are listed with ``sim_us`` NaN and a ``skipped``
    reason, and left out of the MAPE.  Per class (table ``sim_validation``, by
    ``class``): :func:`sim.validation.mape_by_class`.
    """
    validate(measured, "measured_trace")
    cfg = load_accelerator(accel)
    untiled = without_fill(cfg)
    gemv_cfg = gemv_path_accelerator(untiled)
    out = []
    seen: dict[tuple, tuple[float, str]] = {}     # repeated measurements of one call simulate once
    for _, m in measured.iterrows():
        cls = f"{m['op']} {m['precision']}"
        graph = bool(m["cuda_graph"])
        rec = {"kernel": m["kernel"], "class": cls, "kernel_class": f"{cls} {kernel_family(m['kernel'])}",
               "M": int(m["M"]), "N": int(m["N"]), "K": int(m["K"]), "cuda_graph": graph,
               "measured_us": float(m["us"]), "sim_us": np.nan, "ratio": np.nan, "rel_error": np.nan,
               "bound": "", "preset": cfg.name, "split": "", "skipped": ""}
        try:
            tr = measured_row_to_trace(m, head_dim)
            tile = runs_on_tile(m)
        except ValueError as e:
            rec["skipped"] = str(e)
            out.append(rec)
            continue
        if tile is not None:
            tr = tiled_trace(tr, tile)
        tr["extra_offchip_write"] = _dirty_writes(tr, flush_dirty_bytes, _copies(m))
        on_gemv = _runs_gemv_path(m) and gemv_cfg is not None
        form = decode_form(m, tile)
        key = (on_gemv, tile, form, tuple(tr.columns), tuple(map(tuple, tr.itertuples(index=False))))
        if key not in seen:
            run_cfg = gemv_cfg if on_gemv else untiled if tile is None else tile_accelerator(cfg, tile, form,
                                                                                             int(m["M"]))
            res = simulate(tr, run_cfg)
            seen[key] = (res.summary.latency_s, ",".join(sorted(set(res.ops["bound"]))))
        latency_s, rec["bound"] = seen[key]
        rec["sim_us"] = latency_s * 1e6 + (0.0 if graph else cfg.host_launch_ns / 1e3)
        rec["ratio"] = rec["sim_us"] / rec["measured_us"]
        rec["rel_error"] = (rec["sim_us"] - rec["measured_us"]) / rec["measured_us"]
        out.append(rec)
    rows = pd.DataFrame(out, columns=SIM_VS_MEASURED_COLUMNS)
    return rows, mape_by_class(rows, by="class")
