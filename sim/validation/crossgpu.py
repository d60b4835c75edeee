"""Cross-GPU held-out validation: fitted on the H100, predicting the H200.

``h200-like`` is ``h100-like`` with the H200's memory: 4800 GB/s peak HBM3e (NVIDIA H200
datasheet), 141 GB, a 60 MB L2 (docs/gpu-facts.md §2), and the sustained fraction MEASURED on
the measured H200 (its ``copy`` ceiling row: GB/s / 4800); compute as the H100 (docs/gpu-facts.md
§2.1: the 8192^3 ceilings match within ~2-9 %).  Nothing in it is fitted to H200 kernel rows.

:func:`cross_gpu_table` fits ``h100-triton``'s kernel parameters on the H100 table
(:func:`sim.validation.fit`, the same calibration subset), puts them on ``h200-like``
(``h200-triton``) and replays every H200 row: baseline rows (cuBLAS, SDPA) on ``h200-like``,
our kernels' rows on ``h200-triton`` -- all held out, no H200 row was used.  Per class:
``sim_validation`` (split ``held-out``).

``bitsim calibrate --h200 reports/data/measured_h200_kernels.parquet -o sim/presets/h200-like.yaml``
writes the preset and prints the per-class table.
"""
from __future__ import annotations

import copy

import pandas as pd
import yaml

from contract import measured_final_rows, validate
from contract.sim import SPLITS

from ..config import PRESET_DIR, PRESETS, AcceleratorConfig, from_dict, load_yaml
from .calibrate import fit
from .floors import fixed_costs, has_floors
from .mape import SIM_VALIDATION_COLUMNS, mape_by_class
from .reductions import add_row_reductions, has_reduction_rows, reduction_calibration_mask
from .replay import H100_L2_BYTES, MEASURED_DIR, SIM_VS_MEASURED_COLUMNS, compare_measured

H200_MEASURED = MEASURED_DIR / "measured_h200_kernels.parquet"
H200_PEAK_GBPS = 4800.0        # NVIDIA H200 datasheet: 4.8 TB/s HBM3e
H200_CAPACITY_GB = 141.0       # NVIDIA H200 datasheet
H200_L2_BYTES = 60e6           # docs/gpu-facts.md §2: 60 MB L2
H200_COPY_GBPS_DOC = 4218.0    # docs/gpu-facts.md §2.1 (used when the table has no copy row)
NAME = "h200-like"
# parameters of the H100 fit carried to the H200 (the kernels are the same code); the fixed per-op
# costs come from the H200's own measured floors instead (sim.validation.floors)
_CARRIED = ("host_launch_ns", "sparsity")


def measured_copy_gbps(measured: pd.DataFrame) -> float | None:
    """The device-to-device copy rate of a measured table (its ``ceiling`` / ``copy`` row), GB/s."""
    rows = measured[(measured["op"] == "ceiling") & (measured["kernel"] == "copy")]
    if rows.empty or "gbps" not in rows:
        return None
    return float(rows["gbps"].median())


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
    from_dict(copy.deepcopy(raw), where=NAME)
    return raw


def _split_context(raw: dict) -> None:
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
        "true: the measured H200 decode-attention kernels split the context (S = 33 / 66 spans at B = 1, "
        "reports/data/measured_h200_tuned_configs.json); not fitted")


def to_yaml(raw: dict, source: str) -> str:
    """YAML text of ``h200-like`` with a header saying how it was made."""
    head = [f"# {NAME}: GENERATED by `bitsim calibrate --h200 {source} -o sim/presets/{NAME}.yaml`;",
            "# = h100-like.yaml (compute as the H100: docs/gpu-facts.md §2.1) with the H200's memory:",
            "# 4800 GB/s HBM3e peak and 141 GB (NVIDIA H200 datasheet), 60 MB L2 (docs/gpu-facts.md §2),",
            "# sustained fraction = the measured copy rate / peak.  Energy dynamic-only, as h100-like."]
    return "\n".join(head) + "\n" + yaml.safe_dump(raw, sort_keys=False, default_flow_style=None, width=200)


def h200_triton(h100_measured: pd.DataFrame, h200: "dict | AcceleratorConfig") -> AcceleratorConfig:
    """``h200-like`` + the kernel parameters fitted on the H100 table (launch, host gap, unpack, dispatch)."""
    fitted = fit(h100_measured, source="the H100 table", flush_dirty_bytes=H100_L2_BYTES)
    raw = copy.deepcopy(h200) if isinstance(h200, dict) else None
    if raw is None:
        raise TypeError("h200: pass the h200-like YAML dict (h200_like_raw)")
    raw["name"] = "h200-triton"
    raw["description"] = "H200 as our Triton kernels use it: h200-like + the kernel parameters fitted on the H100"
    for k in _CARRIED:
        if k in fitted:
            raw[k] = copy.deepcopy(fitted[k])
    raw["calibration"] = {**raw.get("calibration", {}),
                          **{k: v for k, v in fitted["calibration"].items()
                             if k != "op_overhead_ns" and not k.startswith("vector.")}}   # the H200 derives its own
    if "row_miss_ns" in fitted.get("offchip", {}):
        raw["offchip"] = dict(raw["offchip"], row_miss_ns=fitted["offchip"]["row_miss_ns"])
    by_name = {a["name"]: a for a in fitted["arrays"]}
    for a in raw["arrays"]:
        for k in ("unpack", "max_m"):
            if k in by_name[a["name"]]:
                a[k] = copy.deepcopy(by_name[a["name"]][k])
    return from_dict(raw, where="h200-triton")


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


def cross_gpu_table(h100_measured: pd.DataFrame, h200_measured: pd.DataFrame
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per row (``sim_vs_measured``) and per class (``sim_validation``) error on the H200 rows,
    with every kernel parameter fitted on the H100 (see module doc).  Every row is ``held-out`` except the
    two quantizer rows the row-reduction costs are derived from (:mod:`sim.validation.reductions`),
    split ``calibration``."""
    validate(h100_measured, "measured_trace")
    validate(h200_measured, "measured_trace")
    raw = h200_like_raw(h200_measured)
    ideal = from_dict(copy.deepcopy(raw), where=NAME)
    kernels = h200_triton(h100_measured, raw)
    m = measured_final_rows(h200_measured).reset_index(drop=True)
    parts = []
    for cfg, sel in ((ideal, m["impl"] != "ours"), (kernels, m["impl"] == "ours")):
        if sel.any():
            part = m[sel].reset_index(drop=True)
            rows, _ = compare_measured(part, cfg, flush_dirty_bytes=H200_L2_BYTES)
            cal = reduction_calibration_mask(part).to_numpy()
            parts.append(rows.assign(split=[SPLITS[0] if c else SPLITS[1] for c in cal]))
    if not parts:
        return pd.DataFrame(columns=SIM_VS_MEASURED_COLUMNS), pd.DataFrame(columns=SIM_VALIDATION_COLUMNS)
    rows = pd.concat(parts, ignore_index=True)
    return rows, mape_by_class(rows, by="kernel_class")
