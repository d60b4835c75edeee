"""Checks of the simulator against independent references, in one direction.

replay (:mod:`.replay`: measured rows -> op-trace rows -> ``sim_vs_measured``) ->
calibrate (:mod:`.calibrate`: the fitted ``h100-triton`` parameters) ->
held-out tables (:mod:`.heldout`: ``validation_table``), with the one MAPE
aggregation (:mod:`.mape`), the roofline bound (:mod:`.roofline`) and the SCALE-Sim
reference (:mod:`.scalesim`).  ``python -m sim.validation`` prints the comparison;
``python -m sim.validation calibrate MEASURED -o OUT.yaml`` re-fits ``h100-triton``;
``python -m sim.validation h200 MEASURED_H200 [-o sim/presets/h200-like.yaml]`` writes ``h200-like`` and
prints the cross-GPU held-out error (:mod:`.crossgpu`: fitted on the H100, predicting the H200).
"""
from .calibrate import FITS, calibration_mask, fit, to_yaml
from .crossgpu import H200_MEASURED, cross_gpu_table, h200_like_raw, h200_triton
from .heldout import validation_table
from .mape import mape_by_class
from .replay import (
                     ANCHORS,
                     H100_L2_BYTES,
                     SUPPORTED_OPS,
                     compare_measured,
                     kernel_family,
                     load_anchors,
                     measured_row_to_trace,
)
from .roofline import roofline_bounds
from .scalesim import compare_systolic, scalesim_cycles

__all__ = ["ANCHORS", "FITS", "H100_L2_BYTES", "H200_MEASURED", "cross_gpu_table", "h200_like_raw", "h200_triton", "SUPPORTED_OPS", "calibration_mask", "compare_measured",
           "compare_systolic", "fit", "kernel_family", "load_anchors", "mape_by_class", "measured_row_to_trace",
           "roofline_bounds", "scalesim_cycles", "to_yaml", "validation_table"]
