"""Checks of the simulator against independent references, in one direction.

replay (:mod:`.replay`: measured rows -> op-trace rows -> ``sim_vs_measured``) ->
calibrate (:mod:`.calibrate`: the fitted ``h100-triton`` parameters; :mod:`.floors`: fixed per-launch
costs from the measured floors; :mod:`.reductions`: the row-reduction costs from two quantizer rows and the
spilled-row rate from a third; :mod:`.streams`: our GEMV's stream ramp and efficiency from two GEMV rows
against the read floors) ->
held-out tables (:mod:`.heldout`: ``validation_table``;
:mod:`.crossgpu`: fitted on the H100, predicting the H200; :mod:`.whole_token`: whole decoder blocks
and 7B tokens; :mod:`.eager`: the kernel launches of the measured batched decode programs per trace op),
with the one MAPE aggregation (:mod:`.mape`), the roofline bound (:mod:`.roofline`),
the SCALE-Sim reference (:mod:`.scalesim`) and the published chips (:mod:`.published`).
The command line (``bitsim validate``, ``calibrate``, ``published``) is :mod:`.cli`.
"""
from .calibrate import FITS, calibration_mask, fit, to_yaml
from .crossgpu import H200_MEASURED, cross_gpu_table, h200_like_raw, h200_triton
from .eager import int4_unpack_rate, launch_counts, measured_kv_bits, with_launches
from .floors import FixedCosts, fixed_costs
from .gpus import GPU_PRESETS, gpu_presets
from .heldout import validation_table
from .mape import mape_by_class
from .replay import (
    ANCHORS,
    H100_L2_BYTES,
    H100_MEASURED,
    SUPPORTED_OPS,
    compare_measured,
    kernel_family,
    load_anchors,
    measured_row_to_trace,
)
from .roofline import roofline_bounds
from .scalesim import compare_systolic, scalesim_cycles
from .whole_token import block_ops, whole_token_table

__all__ = ["ANCHORS", "FITS", "FixedCosts", "GPU_PRESETS", "H100_L2_BYTES", "H100_MEASURED", "H200_MEASURED",
           "SUPPORTED_OPS", "block_ops", "calibration_mask", "compare_measured", "compare_systolic", "cross_gpu_table",
           "fit", "fixed_costs", "gpu_presets", "h200_like_raw", "h200_triton", "int4_unpack_rate", "kernel_family",
           "launch_counts", "load_anchors", "mape_by_class", "measured_kv_bits", "measured_row_to_trace",
           "roofline_bounds", "scalesim_cycles", "to_yaml", "validation_table", "whole_token_table", "with_launches"]
