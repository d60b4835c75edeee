"""The simulator's tables: the per-step summary and the simulator-vs-measured comparison.

``sim_summary``: one row per simulated step (``sim.SimSummary.row()``); ``sim_vs_measured``: one
row per measured kernel call replayed on a preset (``sim.validation.compare_measured``);
``sim_validation``: MAPE per kernel class of those rows (``sim.validation.mape_by_class``).
One name per quantity from ``sim/`` to the report: no column is renamed at a boundary.
This module imports nothing of the project but the contract.
"""
from __future__ import annotations

from bitsim.tables.schemas import Column, register

#: Energy components of a simulated step (``energy_<component>_j`` columns, J per token).
ENERGY_COMPONENTS = ("compute", "sram", "offchip", "vector", "static")
#: Resources an op can be bound by (``bound`` of ``sim_result``; ``cycles_<bound>_bound`` here).
BOUNDS = ("compute", "memory", "vector")
#: Splits of the measured rows in the held-out validation.
SPLITS = ("calibration", "held-out")

SIM_SUMMARY = register("sim_summary", (
    Column(name="accelerator", kind="str", unit="", doc="accelerator name (its YAML's name field)"),
    Column(name="comparison", kind="str", unit="", doc="basis of comparison of the preset "
           "(equal-peak-throughput, equal-area, measured-ceilings, standalone)"),
    Column(name="energy_basis", kind="str", unit="", doc="what the joules mean: model (dynamic + static) "
           "or dynamic-only (no static / board power)"),
    Column(name="phase", kind="str", unit="", doc="prefill or decode (one phase per trace)"),
    Column(name="ops", kind="int", unit="op", doc="trace rows simulated"),
    Column(name="tokens", kind="int", unit="token", doc="tokens the step produces: the largest GEMM M "
           "(batch for decode, batch x new tokens for prefill)"),
    Column(name="cycles", kind="int", unit="cycle", doc="cycles from the first event to the last"),
    Column(name="clock_ghz", kind="float", unit="GHz", doc="accelerator clock"),
    Column(name="latency_s", kind="float", unit="s", doc="cycles / clock"),
    Column(name="tokens_per_s", kind="float", unit="token/s", doc="tokens / latency_s"),
    Column(name="energy_j", kind="float", unit="J", doc="energy of the whole step, all components"),
    Column(name="energy_j_per_token", kind="float", unit="J/token", doc="energy_j / tokens"),
    *(Column(name=f"energy_{c}_j", kind="float", unit="J/token", doc=f"{c} energy per token")
      for c in ENERGY_COMPONENTS),
    Column(name="bytes_offchip", kind="float", unit="byte", doc="bytes moved to/from off-chip memory"),
    Column(name="weight_bytes", kind="float", unit="byte", doc="GEMM weights + an FP16 embedding table "
           "the size of the LM head (unless tied)"),
    Column(name="kv_bytes", kind="float", unit="byte", doc="KV cache held after the step"),
    Column(name="footprint_bytes", kind="float", unit="byte", doc="weight_bytes + kv_bytes"),
    Column(name="fits_offchip", kind="bool", unit="", doc="footprint_bytes <= off-chip capacity"),
    Column(name="compute_area_mm2_45nm", kind="float", unit="mm2", doc="arithmetic area of all PEs at 45 nm"),
    *(Column(name=f"cycles_{b}_bound", kind="int", unit="cycle", doc=f"sum of the cycles of ops bound by {b}")
      for b in BOUNDS),
    Column(name="fallback_ops", kind="str", unit="", doc="JSON list of the ops that ran on a wider PE pair "
           "than their operands: {op, needs, pair, array, count}; [] when none"),
), "one row per simulated step: latency, throughput, energy, bytes, footprint (sim.SimSummary)")

SIM_VS_MEASURED = register("sim_vs_measured", (
    Column(name="kernel", kind="str", unit="", doc="measured implementation name (measured_trace kernel)"),
    Column(name="class", kind="str", unit="", doc="'<op> <precision>', e.g. 'gemm fp16'"),
    Column(name="kernel_class", kind="str", unit="", doc="class + kernel family (first word of the kernel "
           "name: ours, cublas, torch, gemlite)"),
    Column(name="M", kind="int", unit="", doc="as in the measured_trace row"),
    Column(name="N", kind="int", unit="", doc="as in the measured_trace row"),
    Column(name="K", kind="int", unit="", doc="as in the measured_trace row"),
    Column(name="cuda_graph", kind="bool", unit="", doc="timed as CUDA-graph replays"),
    Column(name="measured_us", kind="float", unit="us", doc="measured time (measured_trace us)"),
    Column(name="sim_us", kind="float", unit="us", doc="simulated time (+ host_launch_ns without a graph); "
           "NaN when skipped"),
    Column(name="ratio", kind="float", unit="", doc="sim_us / measured_us"),
    Column(name="rel_error", kind="float", unit="fraction", doc="(sim_us - measured_us) / measured_us"),
    Column(name="bound", kind="str", unit="", doc="bounds of the replayed ops, comma-separated"),
    Column(name="preset", kind="str", unit="", doc="accelerator the row was replayed on"),
    Column(name="split", kind="str", unit="", doc="calibration or held-out (sim.validation.validation_table); "
           "empty from compare_measured alone"),
    Column(name="skipped", kind="str", unit="", doc="why the row has no op-trace equivalent; empty when simulated"),
), "one row per measured kernel call replayed on a preset (sim.validation)")

SIM_VALIDATION = register("sim_validation", (
    Column(name="class", kind="str", unit="", doc="kernel class (class or kernel_class of sim_vs_measured)"),
    Column(name="n", kind="int", unit="row", doc="simulated rows in the class"),
    Column(name="mape", kind="float", unit="fraction", doc="mean |rel_error|"),
    Column(name="max_abs_err", kind="float", unit="fraction", doc="max |rel_error|"),
    Column(name="mean_err", kind="float", unit="fraction", doc="mean rel_error (bias)"),
    Column(name="preset", kind="str", unit="", doc="accelerator the rows were replayed on"),
    Column(name="split", kind="str", unit="", doc="calibration or held-out; empty when not split"),
), "MAPE per kernel class of sim_vs_measured rows (sim.validation.mape_by_class)")
