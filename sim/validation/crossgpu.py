"""Cross-GPU held-out validation: fitted on the H100, predicting the H200.

``h200-like`` is ``h100-like`` with the H200's memory: 4800 GB/s peak HBM3e (NVIDIA H200
datasheet), 141 GB, a 60 MB L2 (docs/gpu-facts.md §2), and the sustained fraction MEASURED on
the measured H200 (its ``copy`` ceiling row: GB/s / 4800); compute as the H100 (docs/gpu-facts.md
§2.1: the 8192^3 ceilings match within ~2-9 %).  Nothing in it is fitted to H200 kernel rows.

:func:`cross_gpu_table` fits ``h100-triton``'s kernel parameters on the H100 table
(:func:`sim.validation.fit`, the same calibration subset), puts them on ``h200-like``
(``h200-triton``) and replays every H200 row: baseline rows (cuBLAS, SDPA) on ``h200-like``,
our kernels' rows on ``h200-triton``.  The exact FP8 GEMM's promotion cost and the overlap of quantizer rows sharing
an SM come from the H100 table of the kernels the H200 ran (:data:`H100_CURRENT`, :func:`promotion_of_h100`,
:func:`shared_rows_of_h100`).  From H200 kernel rows come only the row-reduction costs (two quantizer
rows), the spilled-row rate (the GLU quantizer row), the index list's passes (the GLU quantizer row that writes
one), our GEMV's stream costs (two GEMV shapes against the
read floors), the KV-code decode rate of the H200's own KV3 kernel (one row) and the in-kernel combine tail
(the KV3 step against the KV3 decode kernel, two rows); those rows are split
``calibration``, every other row ``held-out`` (table ``sim_validation``).

``bitsim calibrate --h200 reports/data/measured_h200_kernels.parquet -o sim/presets/h200-like.yaml``
writes the preset and prints the per-class table.
"""
from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass

import pandas as pd
import yaml

from contract import measured_final_rows, validate
from contract.sim import SPLITS

from ..compute import systolic_cycles
from ..config import PRESET_DIR, PRESETS, AcceleratorConfig, ArrayConfig, from_dict, load_yaml
from .calibrate import (
    DECODE_FORM_BOUNDS,
    DECODE_FORM_FITS,
    DECODE_FORM_GRID,
    FILL_BOUNDS,
    FILL_FIT,
    FILL_GRID,
    FITS,
    GEMV_RATE_BOUNDS,
    GEMV_RATE_FIT,
    GEMV_RATE_GRID,
    PROMOTION_FIT,
    fit,
    fit_promotion,
    fit_rate,
    set_param,
    set_promotion,
)
from .floors import fixed_costs, has_floors, reread_gbps
from .mape import SIM_VALIDATION_COLUMNS, mape_by_class
from .reductions import (
    SHARED_KERNEL,
    SHARED_MIN_M,
    add_list_passes,
    add_row_reductions,
    add_shared_rows,
    add_wide_rows,
    has_list_row,
    has_reduction_rows,
    has_shared_row,
    has_wide_row,
    list_row_calibration_mask,
    reduction_calibration_mask,
    shared_rows_calibration_mask,
    wide_row_calibration_mask,
)
from .replay import H100_L2_BYTES, MEASURED_DIR, SIM_VS_MEASURED_COLUMNS, compare_measured, with_swept_tiles
from .streams import (
    BASELINE_STREAMS,
    add_baseline_stream,
    add_stream_costs,
    baseline_calibration_mask,
    drop_baseline_stream,
    has_baseline_rows,
    has_stream_rows,
    stream_calibration_mask,
)

H200_MEASURED = MEASURED_DIR / "measured_h200_kernels.parquet"
# the H100 table of the kernels the H200 ran (the first H100 table's FP8 GEMM did not yet promote its sums)
H100_CURRENT = MEASURED_DIR / "measured_h100_kernels2.parquet"
H200_PEAK_GBPS = 4800.0        # NVIDIA H200 datasheet: 4.8 TB/s HBM3e
H200_CAPACITY_GB = 141.0       # NVIDIA H200 datasheet
H200_L2_BYTES = 60e6           # docs/gpu-facts.md §2: 60 MB L2
H200_COPY_GBPS_DOC = 4218.0    # docs/gpu-facts.md §2.1 (used when the table has no copy row)
NAME = "h200-like"
# parameters of the H100 fit carried to the H200 (the kernels are the same code); the fixed per-op
# costs come from the H200's own measured floors instead (sim.validation.floors)
_CARRIED = ("host_launch_ns", "sparsity")
KV_FIT = next(f for f in FITS if f.param == "arrays[cuda_cores].unpack.int3")


def measured_copy_gbps(measured: pd.DataFrame) -> float | None:
    """The device-to-device copy rate of a measured table (its ``ceiling`` / ``copy`` row), GB/s."""
    rows = measured[(measured["op"] == "ceiling") & (measured["kernel"] == "copy")]
    if rows.empty or "gbps" not in rows:
        return None
    return float(rows["gbps"].median())


#: The 8192^3 cuBLAS ceiling rows of a measured table (``op`` = ``ceiling``) and the tensor-core operand pair each times
CEILING_PAIRS = {"cublas_fp16": "fp16", "cublas_int8": "int8", "cublas_fp8": "fp8"}
CEILING_SIZE = 8192


def rate_for_ceiling(array: "ArrayConfig", clock_ghz: float, us: float, size: int = CEILING_SIZE) -> float:
    """The per-PE MAC rate at which ``array`` runs a size^3 GEMM in ``us`` on this simulator's tiling
    (:func:`sim.compute.systolic_cycles`), by bisection in log(rate): the rule h100-like.yaml's rates follow."""
    if not (us > 0 and clock_ghz > 0 and size > 0):
        raise ValueError(f"a ceiling needs a positive time, clock and size, got us={us}, clock_ghz={clock_ghz}, "
                         f"size={size}")
    target = us * 1e3 * clock_ghz
    lo, hi = 1e-4, 1e3
    if systolic_cycles(size, size, size, array, hi) > target:
        raise ValueError(f"{us} us for a {size}^3 GEMM is faster than {array.name} can run it at any rate "
                         "(its fold fill alone takes longer)")
    for _ in range(60):
        mid = (lo * hi) ** 0.5
        if systolic_cycles(size, size, size, array, mid) > target:
            lo = mid
        else:
            hi = mid
    return round(hi, 7)


def current_ceilings(raw: dict, measured: pd.DataFrame, source: str) -> None:
    """Set ``raw``'s tensor-core rates to the 8192^3 cuBLAS ceilings measured in ``measured``'s runs (median over
    its ``ceiling`` rows per kernel), in place, where it has them: the ceilings of the same runs as the rows the
    preset replays, instead of the earlier measurement h100-like.yaml was made from."""
    cube = (measured["M"] == CEILING_SIZE) & (measured["N"] == CEILING_SIZE) & (measured["K"] == CEILING_SIZE)
    rows = measured[(measured["op"] == "ceiling") & measured["kernel"].isin(list(CEILING_PAIRS)) & cube]
    tc = next((a for a in raw["arrays"] if a["name"] == "tensor_cores"), None)
    if rows.empty or tc is None:
        return
    array = next(a for a in from_dict(copy.deepcopy(raw), where=raw["name"]).arrays if a.name == "tensor_cores")
    pairs = {p["weights"] for p in tc["pe_ops"] if p["weights"] == p["acts"]}
    for kernel, us in rows.groupby("kernel")["us"].median().items():
        fmt = CEILING_PAIRS[kernel]
        if fmt not in pairs:
            continue
        param, rate = f"arrays[tensor_cores].pe_ops.{fmt}", rate_for_ceiling(array, raw["clock_ghz"], float(us))
        set_param(raw, param, rate)
        raw["calibration"][param] = (
            f"{rate:g}: the median cuBLAS {fmt} {CEILING_SIZE}^3 time of {source}, {float(us):.1f} us "
            f"({2 * CEILING_SIZE ** 3 / float(us) / 1e6:.0f} TOP/s, {int((rows['kernel'] == kernel).sum())} "
            "runs), on this tiling model; not fitted to kernel rows")


def h200_like_raw(measured: pd.DataFrame | None = None) -> dict:
    """The ``h200-like`` YAML dict: h100-like with the H200's memory and the measured sustained fraction."""
    copy_gbps = measured_copy_gbps(measured) if measured is not None else None
    src = "the copy row of the measured H200 table" if copy_gbps else "docs/gpu-facts.md §2.1"
    copy_gbps = copy_gbps or H200_COPY_GBPS_DOC
    raw = copy.deepcopy(load_yaml(PRESET_DIR / PRESETS["h100-like"]))
    raw.update(name=NAME, description="H200-like GPU: h100-like compute, H200 HBM3e memory (validation preset)")
    raw["offchip"] = {"kind": "hbm3e", "capacity_gb": H200_CAPACITY_GB, "bandwidth_gbps": H200_PEAK_GBPS,
                      "sustained_fraction": round(copy_gbps / H200_PEAK_GBPS, 4), "pj_per_bit": "hbm3e"}
    raw["sram"] = dict(raw["sram"], activation_buffer_kib=30720)      # half the 60 MB L2, as h100-like
    raw["calibration"] = {"offchip.sustained_fraction": f"{copy_gbps:.0f} GB/s measured copy ({src}) / "
                                                        f"{H200_PEAK_GBPS:g} GB/s datasheet peak; not fitted"}
    if measured is not None and has_floors(measured):
        costs = fixed_costs(measured)
        raw["op_overhead_ns"] = round(costs.op_overhead_ns, 1)
        raw["offchip"]["latency_ns"] = costs.latency_ns
        raw["calibration"].update(costs.provenance("the measured H200 table"))
    _split_context(raw)
    if measured is not None and has_reduction_rows(measured):
        add_row_reductions(raw, measured, "the measured H200 table", H200_L2_BYTES)
    for spec in BASELINE_STREAMS:       # the H200's own where its table has the rows, else the H100's carried
        if measured is not None and has_baseline_rows(measured, spec):
            drop_baseline_stream(raw, spec)
            add_baseline_stream(raw, measured, from_dict(copy.deepcopy(raw), where=NAME), spec,
                                "the measured H200 table", H200_L2_BYTES)
        else:
            for key in ("stream_ramp_ns", "stream_efficiency"):
                if any(spec.operand in (a.get(key) or {}) for a in raw["arrays"] if a["name"] == spec.array):
                    raw["calibration"][f"arrays[{spec.array}].{key}.{spec.operand}"] = (
                        f"carried from h100-like: the H200 table has no {spec.describe()} rows to derive it from")
    from_dict(copy.deepcopy(raw), where=NAME)
    return raw


#: The H100 tables of the current kernels (the second and third runs): what the H100's current-kernel presets
#: derive their costs from (:func:`h100_current_presets`)
H100_CURRENT_TABLES = (H100_CURRENT, MEASURED_DIR / "measured_h100_kernels3.parquet")


#: The H100 serving tables (batch 8-128 GEMMs): the batched CUDA-core GEMV's MAC rate is fitted on their rows of
#: one shape (:data:`sim.validation.calibrate.GEMV_RATE_FIT`, :func:`gemv_rate_of`)
H100_SERVING_TABLES = tuple(MEASURED_DIR / f"measured_h100_serving{n}.parquet" for n in (2, 3, 4, 5, 9, 10))


#: The H100 floor tables the current-kernel presets name beside their fits: the L2 re-read floor (``floor_reread``)
H100_FLOOR_TABLES = (MEASURED_DIR / "measured_h100_reread.parquet",)


def h100_current_presets(first: pd.DataFrame, current: pd.DataFrame, serving: pd.DataFrame | None = None,
                         floors: pd.DataFrame | None = None) -> tuple[dict, dict]:
    """(ceilings, our kernels) YAML dicts of the H100 as the current kernels use it, derived as the H200's are:
    ``h100-like`` with the tensor-core rates of ``current``'s cuBLAS 8192^3 ceilings (:func:`current_ceilings`), the
    split context and the row-reduction costs of ``current``'s quantizer rows, and our
    kernels' preset on it (:func:`kernels_preset`: the first table's fit, the FP8 promotion, the GEMV stream
    costs, the spilled-row rate, the KV-code rate and the combine tail from ``current``'s kernel rows; with
    ``serving``, the rows of :data:`H100_SERVING_TABLES`, the batched GEMV's MAC rate, :func:`gemv_rate_of`, the fill
    bandwidth and the decode forms; ``floors``, the rows of :data:`H100_FLOOR_TABLES`, named beside the fill).  No
    block or token row enters: those stay held out (:func:`sim.validation.whole_token.whole_token_table`)."""
    validate(first, "measured_trace")
    validate(current, "measured_trace")
    source = "the H100 tables of the current kernels"
    like = copy.deepcopy(load_yaml(PRESET_DIR / PRESETS["h100-like"]))
    like.update(name="h100-like-current", description="h100-like with the current runs' cuBLAS ceilings, the current "
                                                      "kernels' split context and row-reduction costs (validation "
                                                      "preset)")
    like.setdefault("calibration", {})
    current_ceilings(like, current, source)
    _split_context(like, source)
    if has_reduction_rows(current):
        add_row_reductions(like, current, source, H100_L2_BYTES)
    kernels = kernels_preset(first, like, OwnRows(current, source, H100_L2_BYTES), current,
                             name="h100-triton-current",
                             description="H100 as our current Triton kernels use it: h100-like-current + the "
                                         "kernel parameters fitted on the first H100 table and derived from the "
                                         "current kernels' rows")
    kernels = json.loads(json.dumps(asdict(kernels)))
    if serving is not None:
        gemv_rate_of(kernels, serving, "the H100 serving tables", H100_L2_BYTES)
        fill_bandwidth_of(kernels, serving, "the H100 serving tables", H100_L2_BYTES, floors)
        decode_forms_of(kernels, serving, "the H100 serving tables", H100_L2_BYTES)
        from_dict(copy.deepcopy(kernels), where=kernels["name"])
    return like, kernels


def fill_bandwidth_of(raw: dict, measured: pd.DataFrame, source: str, l2_bytes: float,
                      floors: pd.DataFrame | None = None) -> None:
    """The rate the L2 feeds the SMs' operand re-reads (:data:`sim.validation.calibrate.FILL_FIT`) fitted on
    ``measured``'s decode-free rows replayed on ``raw`` (our kernels' preset) on their own tiles, put on ``raw`` in
    place as ``sram.fill_bandwidth_bytes_per_cycle``, when the table has the rows.  Only our kernels' preset takes
    it: the replay knows our kernels' tiles, so their folds' reads are the kernel's; a library kernel's tile and
    multicast are unknown, and its 128 x 128 fold would overcount them.  ``floors``: a table whose L2 re-read floor
    rows (:func:`sim.validation.floors.reread_gbps`) the provenance names beside the fit, not used in it."""
    validate(measured, "measured_trace")
    rows = FILL_FIT.rows_in(measured)
    if rows.empty:
        return
    value = round(fit_rate(raw, FILL_FIT.param, rows, l2_bytes, FILL_BOUNDS, FILL_GRID), 1)
    set_param(raw, FILL_FIT.param, value)
    floor = None if floors is None else reread_gbps(floors)
    check = "" if floor is None else (f"; the L2 re-read floor (floor_reread, {floor[1]} rows: time over bytes moved, "
                                      f"the median of two buffer sizes) measures {floor[0]:.0f} GB/s, not used in the "
                                      "fit: the kernel's operand feed at few warps per SM is the slower")
    raw.setdefault("calibration", {})[FILL_FIT.param] = (
        f"{value:g} B/cycle = {value * raw['clock_ghz']:.0f} GB/s fitted by sim.validation.crossgpu on {len(rows)} "
        f"rows of {source}: {FILL_FIT.rows}; method: {FILL_FIT.method}{check}")


def decode_forms_of(raw: dict, measured: pd.DataFrame, source: str, l2_bytes: float) -> None:
    """The tiled replay's decode-form rates (:data:`sim.validation.calibrate.DECODE_FORM_FITS`) fitted on
    ``measured``'s rows of each form replayed on ``raw`` (our kernels' preset) on their own tiles, put on ``raw``
    in place, for each form the table has rows of."""
    validate(measured, "measured_trace")
    m = measured_final_rows(with_swept_tiles(measured)).reset_index(drop=True)
    for f in DECODE_FORM_FITS:
        rows = f.rows_in(m)
        if rows.empty:
            continue
        value = round(fit_rate(raw, f.param, rows, l2_bytes, DECODE_FORM_BOUNDS, DECODE_FORM_GRID), 4)
        set_param(raw, f.param, value)
        raw.setdefault("calibration", {})[f.param] = (
            f"{value:g} elements / cycle / SM fitted by sim.validation.crossgpu on {len(rows)} rows of {source}: "
            f"{f.rows}; method: {f.method}")


def gemv_rate_of(raw: dict, measured: pd.DataFrame, source: str, l2_bytes: float) -> None:
    """The batched CUDA-core GEMV's INT8 MAC rate (:data:`sim.validation.calibrate.GEMV_RATE_FIT`) fitted on
    ``measured``'s rows of that shape replayed on ``raw`` (our kernels' preset), put on ``raw`` in place, when the
    table has them.  The dispatch rule (``max_m``) is untouched: the fitted pair runs the GEMV rows the launcher
    sends to the CUDA cores and the rows timed on that path whatever their batch."""
    validate(measured, "measured_trace")
    m = measured_final_rows(measured).reset_index(drop=True)
    rows = GEMV_RATE_FIT.rows_in(m)
    if rows.empty:
        return
    value = fit_rate(raw, GEMV_RATE_FIT.param, rows, l2_bytes, GEMV_RATE_BOUNDS, GEMV_RATE_GRID)
    set_param(raw, GEMV_RATE_FIT.param, value)
    raw.setdefault("calibration", {})[GEMV_RATE_FIT.param] = (
        f"{value:g} MACs / lane / cycle fitted by sim.validation.crossgpu on {len(rows)} rows of {source}: "
        f"{GEMV_RATE_FIT.rows}; method: {GEMV_RATE_FIT.method}; the datasheet-derived dp4a peak of the ideal "
        "preset is the ceiling, this is the rate our kernel's instruction stream reaches")


#: Measured H100 tables (file names) of the current kernels: replayed on the current-kernel presets
#: (:func:`h100_current_presets`), the first table (``measured_h100_kernels.parquet``) on ``h100-triton``
H100_CURRENT_SOURCES = ("measured_h100_kernels2.parquet", "measured_h100_kernels3.parquet",
                        "measured_h100_kernels4.parquet", "measured_h100_kernels5.parquet",
                        "measured_h100_kernels6.parquet", "measured_h100_kernels7.parquet",
                        "measured_h100_kernels8.parquet", "measured_h100_serving.parquet",
                        "measured_h100_persistent.csv", "measured_h100_persistent2.csv",
                        "measured_h100_serving2.parquet", "measured_h100_persistent3.csv",
                        "measured_h100_serving3.parquet", "measured_h100_serving4.parquet",
                        "measured_h100_serving5.parquet", "measured_h100_prefill.parquet",
                        "measured_h100_serving6.parquet", "measured_h100_serving7.parquet",
                        "measured_h100_serving8.parquet", "measured_h100_serving9.parquet",
                        "measured_h100_serving10.parquet", "measured_h100_reread.parquet",
                        "measured_h100_kernels9.parquet", "measured_h100_kernels10.parquet")


def current_calibration_mask(rows: pd.DataFrame) -> pd.Series:
    """True on the rows the current-kernel presets are derived from: the H200-style derivation's rows
    (:func:`h200_calibration_mask`, the cuBLAS rows of the baseline stream costs among them) and the FP8
    promotion's, the batched GEMV rate's, the shared rows' and the decode forms' rows; every other row of the
    current tables is held out."""
    mask = h200_calibration_mask(rows) | shared_rows_calibration_mask(rows)
    for f in (PROMOTION_FIT, GEMV_RATE_FIT, *DECODE_FORM_FITS):
        mask |= f.mask(rows)
    return mask


def _split_context(raw: dict, source: str = "the measured H200") -> None:
    """The H200's decode kernels split the context over idle SMs (split_reduction on the CUDA-core array:
    the H200 table's attention configs run S = 33 or 66 context spans per head at B = 1,
    reports/data/measured_h200_tuned_configs.json; torch SDPA decodes flash-decoding style), and an SM pulls
    only its own share of the bandwidth (occupancy_limited_reads).  Not the H100 presets: the H100 table's
    KV3 kernel ran one program per head (config USE_DOT, BT 128, no spans)."""
    for a in raw["arrays"]:
        if a["name"] == "cuda_cores":
            a["split_reduction"] = True
    raw["occupancy_limited_reads"] = True
    raw["calibration"]["arrays[cuda_cores].split_reduction"] = (
        f"true: {source} decode-attention kernels split the context (S = 33 / 66 spans at B = 1, "
        "reports/data/measured_h200_tuned_configs.json); not fitted")


def to_yaml(raw: dict, source: str) -> str:
    """YAML text of ``h200-like`` with a header saying how it was made."""
    head = [f"# {NAME}: GENERATED by `bitsim calibrate --h200 {source} -o sim/presets/{NAME}.yaml`;",
            "# = h100-like.yaml (compute as the H100: docs/gpu-facts.md §2.1) with the H200's memory:",
            "# 4800 GB/s HBM3e peak and 141 GB (NVIDIA H200 datasheet), 60 MB L2 (docs/gpu-facts.md §2),",
            "# sustained fraction = the measured copy rate / peak.  Energy dynamic-only, as h100-like."]
    return "\n".join(head) + "\n" + yaml.safe_dump(raw, sort_keys=False, default_flow_style=None, width=200)


@dataclass(frozen=True)
class OwnRows:
    """A GPU's own measured table the kernel costs are derived from: the rows, how the provenance names them,
    and the L2 the timing harness flushes on that GPU."""
    rows: pd.DataFrame
    source: str
    l2_bytes: float


def h200_triton(h100_measured: pd.DataFrame, h200: "dict | AcceleratorConfig",
                h200_measured: pd.DataFrame | None = None,
                h100_current: pd.DataFrame | None = None) -> AcceleratorConfig:
    """``h200-like`` + the kernel parameters fitted on the H100 table (launch, host gap, unpack, dispatch), and,
    when ``h200_measured`` has its rows, our ternary GEMV's stream ramp and efficiency derived from two of its
    GEMV rows against the read floors (:mod:`sim.validation.streams`) and our quantizers' spilled-row rate
    derived from the GLU quantizer row (:func:`sim.validation.reductions.wide_row_lanes`).  With
    ``h100_current`` (an H100 table of the kernels the H200 ran): the exact FP8 GEMM's promotion cost fitted on
    its rows (:func:`promotion_of_h100`), still nothing from an H200 row."""
    if not isinstance(h200, dict):
        raise TypeError("h200: pass the h200-like YAML dict (h200_like_raw)")
    own = OwnRows(h200_measured, "the measured H200 table", H200_L2_BYTES) if h200_measured is not None else None
    return kernels_preset(h100_measured, h200, own, h100_current, name="h200-triton",
                          description="H200 as our Triton kernels use it: h200-like + the kernel parameters "
                                      "fitted on the H100")


def kernels_preset(h100_measured: pd.DataFrame, ideal: dict, own: OwnRows | None,
                   h100_current: pd.DataFrame | None, *, name: str, description: str) -> AcceleratorConfig:
    """Our kernels' preset on a GPU: ``ideal`` (that GPU's ceilings preset) + the kernel parameters fitted on the
    first H100 table, the FP8 promotion fitted on ``h100_current``, and the costs ``own`` (the GPU's own table)
    gives: the GEMV stream costs, the spilled-row rate, the KV-code decode rate, the in-kernel combine tail."""
    fitted = fit(h100_measured, source="the H100 table", flush_dirty_bytes=H100_L2_BYTES)
    shared = None
    if h100_current is not None:
        promotion_of_h100(fitted, h100_current)
        shared = shared_rows_of_h100(fitted, h100_current)
    raw = copy.deepcopy(ideal)
    raw["name"], raw["description"] = name, description
    for k in _CARRIED:
        if k in fitted:
            raw[k] = copy.deepcopy(fitted[k])
    raw["calibration"] = {**raw.get("calibration", {}),
                          **{k: v for k, v in fitted["calibration"].items()
                             if k != "op_overhead_ns" and not k.startswith("vector.")}}   # the GPU derives its own
    if "row_miss_ns" in fitted.get("offchip", {}):
        raw["offchip"] = dict(raw["offchip"], row_miss_ns=fitted["offchip"]["row_miss_ns"])
    by_name = {a["name"]: a for a in fitted["arrays"]}
    for a in raw["arrays"]:
        for k in ("unpack", "max_m", "promote_every_k", "promote_ns"):
            if k in by_name[a["name"]]:
                a[k] = copy.deepcopy(by_name[a["name"]][k])
    if shared is not None:
        raw["vector"] = dict(raw["vector"], shared_rows=shared)
        raw["calibration"]["vector.shared_rows"] = (
            f"{shared:g}: derived from 1 row of the H100 table of the current kernels ({SHARED_KERNEL} M >= "
            f"{SHARED_MIN_M}, the bitwise TopK's 31 serial reductions per row): measured = replay without the "
            "reductions + the serial reductions / shared_rows, solved exactly on the H100 fit with that table's "
            "row-reduction costs; carried (the same kernels on the same SM design); not fitted to blocks or tokens")
    if own is not None:
        _own_costs(raw, own)
    return from_dict(raw, where=name)


def shared_rows_of_h100(fitted: dict, h100_current: pd.DataFrame) -> float | None:
    """:func:`sim.validation.reductions.shared_rows` on the rows of ``h100_current`` (the H100 table of the current
    kernels) replayed on ``fitted`` (the H100 preset) with that table's row-reduction costs; None where the table
    lacks the rows."""
    m = measured_final_rows(h100_current).reset_index(drop=True)
    if not has_shared_row(m):
        return None
    return add_shared_rows(fitted, m, "the H100 table of the current kernels", H100_L2_BYTES)


def _own_costs(raw: dict, own: OwnRows) -> None:
    """The costs derived from a GPU's own kernel rows (each where the table has its rows), in place."""
    if has_stream_rows(own.rows):
        add_stream_costs(raw, own.rows, from_dict(copy.deepcopy(raw), where=raw["name"]), own.source)
    if has_wide_row(own.rows) and raw["vector"].get("units", 0) > 0:
        add_wide_rows(raw, own.rows, own.source, own.l2_bytes)
        if has_list_row(own.rows):
            add_list_passes(raw, own.rows, own.source, own.l2_bytes)
    kv_rate_of_own(raw, own)
    combine_tail_of_own(raw, own)


def promotion_of_h100(fitted: dict, h100_current: pd.DataFrame) -> None:
    """The exact FP8 GEMM's promotion cost (:data:`sim.validation.calibrate.PROMOTION_FIT`) fitted on the FP8 GEMM
    rows of ``h100_current`` replayed on ``fitted`` (the H100 preset), put on ``fitted`` in place, when the table has
    them.  Those rows are not the ones ``fitted`` came from: that table's FP8 GEMM accumulated in FP8 without
    promotion (as fast as its INT8 GEMM), the kernel of ``h100_current`` and of the H200 table promotes every 512 K
    for exact sums and runs 1.3-1.45x its INT8 twin."""
    validate(h100_current, "measured_trace")
    m = measured_final_rows(h100_current).reset_index(drop=True)
    rows = PROMOTION_FIT.rows_in(m)
    if rows.empty:
        return
    ns = fit_promotion(fitted, rows, H100_L2_BYTES)
    set_promotion(fitted, ns, "the H100 table of the current kernels", len(rows))


def kv_rate_of_own(raw: dict, own: OwnRows) -> None:
    """The KV-code decode rate fitted on the GPU's own KV3 kernel row (the same calibration row as on the first
    H100 table: ``ours_kv3`` B = 8, ctx 8192), in place, when the table has it.  Not carried from that table: its
    KV3 kernel was another design (one program per head, ``USE_DOT``, BT 128), the H200's splits the context
    (BT 32, S 10, FMA) and ran the same work in 193.2 us against 325.5 us."""
    m = measured_final_rows(own.rows).reset_index(drop=True)
    rows = KV_FIT.rows_in(m)
    if rows.empty:
        return
    value = fit_rate(raw, KV_FIT.param, rows, own.l2_bytes)
    set_param(raw, KV_FIT.param, value)
    raw.setdefault("calibration", {})[KV_FIT.param] = (
        f"{value:g} fitted by sim.validation.crossgpu on {len(rows)} row of {own.source}: {KV_FIT.rows}; "
        f"method: {KV_FIT.method}; not carried from the first H100 table (its KV3 kernel is another design)")


#: The pair the in-kernel combine tail is derived from: our one-launch KV3 attention step and our KV3 decode
#: kernel (spans, then a separate combine launch) on the same work, B = 1, ctx 2048.
TAIL_PAIR = ("ours_step_kv3", "ours_kv3")


def _tail_rows(measured: pd.DataFrame) -> pd.Series:
    return (measured["kernel"].isin(TAIL_PAIR) & measured["op"].isin(("attention_step", "attention_decode"))
            & (measured["M"] == 1) & (measured["K"] == 2048) & measured["cuda_graph"].astype(bool))


def combine_tail_of_own(raw: dict, own: OwnRows) -> None:
    """``arrays[cuda_cores].split_combine_ns`` from the measured pair :data:`TAIL_PAIR` (in place, when the table
    has both): the step's measured time less the decode kernel's, less the same difference replayed without the
    tail (the replay charges the decode kernel's separate combine launch, not the step's in-kernel combine)."""
    m = measured_final_rows(own.rows).reset_index(drop=True)
    rows = m[_tail_rows(m)].drop_duplicates("kernel").set_index("kernel").reindex(list(TAIL_PAIR)).dropna(subset=["us"])
    if len(rows) != len(TAIL_PAIR):
        return
    rows = rows.reset_index()
    base, _ = compare_measured(rows, from_dict(copy.deepcopy(raw), where=raw["name"]), flush_dirty_bytes=own.l2_bytes)
    step_us, dec_us = rows["us"].to_numpy(float)
    step_sim, dec_sim = base["sim_us"].to_numpy(float)
    tail_ns = round(((step_us - dec_us) - (step_sim - dec_sim)) * 1e3, 1)
    if tail_ns <= 0:
        return
    for a in raw["arrays"]:
        if a["name"] == "cuda_cores":
            a["split_combine_ns"] = tail_ns
    raw.setdefault("calibration", {})["arrays[cuda_cores].split_combine_ns"] = (
        f"{tail_ns:g}: derived from 2 rows of {own.source} ({' and '.join(TAIL_PAIR)}, B=1 ctx 2048, the "
        f"same work in one launch and in two): (step - decode) measured less (step - decode) replayed without the "
        f"tail; not fitted to blocks or tokens")


def kv_calibration_mask(measured: pd.DataFrame) -> pd.Series:
    """True on the rows the KV-code decode rate is fitted on (:func:`kv_rate_of_own`) and the combine tail
    derived from (:func:`combine_tail_of_own`)."""
    return KV_FIT.mask(measured) | _tail_rows(measured)


def triton_yaml(cfg: AcceleratorConfig, h100_source: str) -> str:
    """YAML text of ``h200-triton`` (nothing in it is fitted to an H200 row), with a header saying how it was made."""
    import dataclasses
    import json

    raw = json.loads(json.dumps(dataclasses.asdict(cfg)))   # tuples -> lists, plain YAML types
    head = ["# h200-triton: GENERATED by `bitsim calibrate --h200 reports/data/measured_h200_kernels.parquet "
            "-o sim/presets/h200-like.yaml --triton-out sim/presets/h200-triton.yaml --force`;",
            f"# = h200-like + our Triton kernels' parameters fitted on the H100 table ({h100_source}) only:",
            "# every H200 row it is compared with is held out (cross-GPU validation, sim/validation/crossgpu.py)."]
    return "\n".join(head) + "\n" + yaml.safe_dump(raw, sort_keys=False, default_flow_style=None, width=200)


def h200_calibration_mask(rows: pd.DataFrame) -> pd.Series:
    """True on the H200 rows a cost of the H200 presets is derived from: two quantizer rows (row reductions), our
    two GEMV shapes (stream costs), the KV3 attention rows, the GLU quantizer rows (spilled-row rate, the index
    list's passes) and the cuBLAS
    rows of :data:`sim.validation.streams.BASELINE_STREAMS` it has (their stream costs); every other row is held
    out."""
    return (reduction_calibration_mask(rows) | stream_calibration_mask(rows) | kv_calibration_mask(rows)
            | baseline_calibration_mask(rows)
            | ((wide_row_calibration_mask(rows) | list_row_calibration_mask(rows)) & (rows["impl"] == "ours")))


def cross_gpu_table(h100_measured: pd.DataFrame, h200_measured: pd.DataFrame,
                    h100_current: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per row (``sim_vs_measured``) and per class (``sim_validation``) error on the H200 rows,
    with every kernel parameter fitted on the H100 (see module doc).  Every row is ``held-out`` except the
    two quantizer rows the row-reduction costs are derived from (:mod:`sim.validation.reductions`), the two
    GEMV rows the stream costs are derived from and the cuBLAS rows the baseline stream costs are derived from
    (:mod:`sim.validation.streams`), split ``calibration``."""
    validate(h100_measured, "measured_trace")
    validate(h200_measured, "measured_trace")
    raw = h200_like_raw(h200_measured)
    ideal = from_dict(copy.deepcopy(raw), where=NAME)
    kernels = h200_triton(h100_measured, raw, h200_measured, h100_current)
    m = measured_final_rows(h200_measured).reset_index(drop=True)
    parts = []
    for cfg, sel in ((ideal, m["impl"] != "ours"), (kernels, m["impl"] == "ours")):
        if sel.any():
            part = m[sel].reset_index(drop=True)
            rows, _ = compare_measured(part, cfg, flush_dirty_bytes=H200_L2_BYTES)
            cal = h200_calibration_mask(part).to_numpy()
            parts.append(rows.assign(split=[SPLITS[0] if c else SPLITS[1] for c in cal]))
    if not parts:
        return pd.DataFrame(columns=SIM_VS_MEASURED_COLUMNS), pd.DataFrame(columns=SIM_VALIDATION_COLUMNS)
    rows = pd.concat(parts, ignore_index=True)
    return rows, mape_by_class(rows, by="kernel_class")
