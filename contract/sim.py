"""The simulator's tables: the per-step summary and the simulator-vs-measured comparison.

``sim_summary``: one row per simulated step (``sim.SimSummary.row()``); ``sim_vs_measured``: one
row per measured kernel call replayed on a preset (``sim.validation.compare_measured``);
``sim_validation``: MAPE per kernel class of those rows (``sim.validation.mape_by_class``);
``sim_whole_token``: measured whole tokens and decoder blocks replayed (``sim.validation.whole_token_table``).
One name per quantity from ``sim/`` to the report: no column is renamed at a boundary.
This module imports nothing of the project but the contract.
"""
from __future__ import annotations

from contract.schemas import Column, register

#: Energy components of a simulated step (``energy_<component>_j`` columns, J per token).
ENERGY_COMPONENTS = ("compute", "sram", "offchip", "vector", "static")
#: Resources an op can be bound by (``bound`` of ``sim_result``; ``cycles_<bound>_bound`` here):
#: compute (MACs streaming through the PEs, or a software unpack), weight_load (folds waiting on
#: their stationary-operand load), sram (on-chip SRAM bandwidth), memory (off-chip DMA), vector.
BOUNDS = ("compute", "weight_load", "sram", "memory", "vector")
#: Parts of a design's area (``area_<part>_mm2`` columns; sim.energy.chip).
AREA_PARTS = ("pe", "vector", "sram", "phy")
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
    Column(name="fits_offchip", kind="bool", unit="", doc="what must live off chip fits its capacity: "
           "footprint_bytes, less the weights when they are resident in on-chip SRAM; a point that "
           "does not fit is still simulated (as with unlimited capacity) and must not be reported as a result"),
    Column(name="compute_area_mm2_45nm", kind="float", unit="mm2", doc="arithmetic area of all PEs at 45 nm (the "
           "papers' counting rule, for comparison with them; area_mm2 is the chip's area)"),
    *(Column(name=f"cycles_{b}_bound", kind="int", unit="cycle", doc=f"sum of the cycles of ops bound by {b}")
      for b in BOUNDS),
    Column(name="fallback_ops", kind="str", unit="", doc="JSON list of the ops that ran on a wider PE pair "
           "than their operands: {op, needs, pair, array, count}; [] when none"),
    Column(name="infeasible_reason", kind="str", unit="", doc="why the point is infeasible, with the numbers; "
           "empty when feasible"),
    Column(name="capacity_bytes", kind="float", unit="byte", doc="off-chip capacity of the accelerator"),
    Column(name="area_mm2", kind="float", unit="mm2", doc="die area of the design at its process node: PE "
           "arrays + vector unit + SRAM + memory PHYs (sim.energy.chip, sim/data/hardware_costs.csv)"),
    *(Column(name=f"area_{a}_mm2", kind="float", unit="mm2", doc=f"{a} part of area_mm2")
      for a in AREA_PARTS),
    Column(name="power_w", kind="float", unit="W", doc="energy_j / latency_s: average power at this workload"),
    Column(name="power_static_w", kind="float", unit="W", doc="static power: the design's leakage (static_model "
           "leakage) + static_power_w; 0 for dynamic-only presets"),
    Column(name="power_dynamic_w", kind="float", unit="W", doc="dynamic energy / latency_s at this workload"),
    Column(name="peak_tops", kind="float", unit="TOP/s", doc="peak arithmetic throughput, 2 ops per MAC, every "
           "array at its fastest PE pair"),
    Column(name="tops", kind="float", unit="TOP/s", doc="2 x dense MACs of the step / latency_s (skipped zeros "
           "count as done: dense-equivalent throughput)"),
    Column(name="tops_per_mm2", kind="float", unit="TOP/s/mm2", doc="peak_tops / area_mm2"),
    Column(name="tops_per_w", kind="float", unit="TOP/s/W", doc="tops / power_w at this workload"),
    Column(name="tokens_per_s_per_w", kind="float", unit="token/s/W", doc="tokens_per_s / power_w (= tokens per J)"),
    Column(name="tokens_per_s_per_mm2", kind="float", unit="token/s/mm2", doc="tokens_per_s / area_mm2"),
    Column(name="offchip_sustained_gbps", kind="float", unit="GB/s", doc="off-chip bandwidth the DMA moves: "
           "peak x offchip.sustained_fraction"),
    Column(name="causal_ops", kind="int", unit="op", doc="attention ops whose fully masked (causal) folds were "
           "skipped"),
), "one row per simulated step: latency, throughput, energy, bytes, footprint, area, power, efficiency "
   "(sim.SimSummary)")

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

SIM_WHOLE_TOKEN = register("sim_whole_token", (
    Column(name="row", kind="str", unit="", doc="what was measured: '<op> <datapath> <variant>', or "
           "'ratio a/b tokens/s'"),
    Column(name="op", kind="str", unit="", doc="block_decode, block_prefill, token_decode, or ratio"),
    Column(name="kernel", kind="str", unit="", doc="measured kernel name (measured_trace kernel); empty for ratios"),
    Column(name="datapath", kind="str", unit="", doc="fp16, b1.58, a4.8, or 'a4.8/fp16' for a ratio"),
    Column(name="variant", kind="str", unit="", doc="measured decode plan (prologue, Wo / Wdown dense or sparse, pdl)"),
    Column(name="M", kind="int", unit="token", doc="tokens of the step (1 for decode, the prompt for prefill)"),
    Column(name="K", kind="int", unit="token", doc="context (decode) or prompt length (prefill)"),
    Column(name="launches", kind="int", unit="", doc="kernel launches of the replayed step"),
    Column(name="unit", kind="str", unit="", doc="us for time rows, ratio for the token-throughput ratios"),
    Column(name="measured", kind="float", unit="", doc="measured time (us) or measured ratio"),
    Column(name="simulated", kind="float", unit="", doc="simulated time (us) or simulated ratio, nothing fitted "
           "to these rows"),
    Column(name="rel_error", kind="float", unit="fraction", doc="(simulated - measured) / measured"),
    Column(name="preset", kind="str", unit="", doc="the baselines' preset (h200-like, h100-like-current) or our "
           "kernels' (h200-triton, h100-triton-current); empty for ratios"),
    Column(name="mechanism", kind="str", unit="", doc="what the replay leaves out for this kind of row; "
           "empty when nothing known"),
    Column(name="gpu", kind="str", unit="", doc="the GPU the rows were measured on (measured_trace gpu; one per "
           "table), ratios included"),
), "every measured whole-token and decoder-block row of one GPU replayed on that GPU's presets, with the a4.8 / "
   "fp16 and a4.8 / b1.58 token ratios (sim.validation.whole_token_table)")
