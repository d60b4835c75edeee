"""Tables the experiments (``bitsim.experiments``: study, sweep, gain ladder) hand to the report.

Each is registered in the one contract (``contract.schemas.SCHEMAS``); ``docs/tables.md`` is
generated from it. Extra columns are allowed (``validate`` checks that the registered ones are there
with the right kind), which is how sweep results carry one ``hw.<parameter>`` column per knob.
"""
from __future__ import annotations

from contract.schemas import OP_TRACE, SIM_RESULT, Column, _cols, register

#: One simulated run flattened to scalars: energies per token, bytes per run (``summary_row``).
RUN_TOTALS = _cols(
    ("tokens", "float", "token", "tokens the run produces (batch x new tokens)"),
    ("cycles", "float", "cycle", "cycles of the whole run"),
    ("latency_s", "float", "s", "cycles / clock"),
    ("tokens_per_s", "float", "token/s", "tokens / latency"),
    ("energy_j", "float", "J", "energy of the run on the accelerator's energy basis"),
    ("energy_j_per_token", "float", "J/token", "energy_j / tokens"),
    ("bytes_offchip", "float", "byte", "off-chip bytes moved by the run"),
    ("weight_bytes", "float", "byte", "bytes of all weights of the model (storage format)"),
    ("kv_bytes", "float", "byte", "bytes of the KV cache at the run's context"),
    ("footprint_bytes", "float", "byte", "weights + KV cache"),
    ("fits_offchip", "bool", "", "footprint_bytes fits in the accelerator's off-chip capacity"),
    ("compute_area_mm2_45nm", "float", "mm2", "PE-array area at 45 nm (arithmetic only)"),
    ("energy_compute_j", "float", "J/token", "arithmetic energy per token"),
    ("energy_sram_j", "float", "J/token", "on-chip buffer energy per token"),
    ("energy_offchip_j", "float", "J/token", "off-chip memory energy per token"),
    ("energy_vector_j", "float", "J/token", "vector-unit energy per token"),
    ("energy_static_j", "float", "J/token", "static (leakage) energy per token"),
)

STUDY_KEYS = _cols(
    ("preset", "str", "", "model preset (model/config.py) or model YAML"),
    ("datapath", "str", "", "fp16, b1.58, a4.8, a4.8-fp4, w4a16, w8a8-int8, w8a8-fp8 or w4a4-mxfp4"),
    ("phase", "str", "", "prefill or decode"),
    ("context", "int", "token", "decode: tokens already in the KV cache; prefill: prompt length"),
)

#: What every study row says about how it was set up and the chip it ran on.
RUN_SETUP = _cols(
    ("batch", "int", "", "sequences per decode step (prefill: sequences of the prompt)"),
    ("profile", "str", "", "activation statistics of the trace: measured (seeded random weights), "
                           "paper-table2 or trained -- one per comparison (bitsim.experiments.fair)"),
    ("kv_bits", "int", "bit", "KV-cache bits per element (16 = FP16)"),
    ("basis", "str", "", "what sized the chip: iso-peak (the presets), iso-area or iso-power"),
    ("variant", "str", "", "what the strongest-baseline rule changed on the datapath or its chip; '' = nothing"),
)
CHIP_METRICS = _cols(
    ("area_mm2", "float", "mm2", "chip area (area_source says what it covers)"),
    ("area_source", "str", "", "sim's whole-chip area, or the PE-array area at 45 nm as a named stand-in"),
    ("capacity_gb", "float", "GB", "off-chip memory capacity of the chip"),
    ("power_w", "float", "W", "power at the workload (power_source says how it is obtained)"),
    ("power_source", "str", "", "a sim power field, or energy per step / latency"),
    ("feasible", "bool", "", "weights + KV cache fit the chip (feasible_source names the field); an infeasible "
                             "point is never drawn as a throughput"),
    ("feasible_source", "str", "", "sim field the feasibility comes from"),
)

STUDY_SUMMARY = register("study_summary", STUDY_KEYS + RUN_TOTALS[:1] + _cols(
    ("accelerator", "str", "", "accelerator name (from its YAML)"),
    ("accelerator_key", "str", "", "preset name or YAML path the study was given"),
    ("role", "str", "", "matched (the datapath's own chip) or reference"),
) + RUN_SETUP + RUN_TOTALS[1:] + CHIP_METRICS + _cols(
    ("memory_bound_frac", "float", "fraction", "share of cycles in ops whose bound is memory"),
    ("compute_bound_frac", "float", "fraction", "share of cycles in ops whose bound is compute"),
    ("gemm_cycles_frac", "float", "fraction", "share of cycles in gemm ops"),
    ("gemm_bytes_offchip", "float", "byte", "off-chip bytes of gemm ops"),
    ("attention_cycles_frac", "float", "fraction", "share of cycles in attention ops"),
    ("attention_bytes_offchip", "float", "byte", "off-chip bytes of attention ops"),
    ("vector_cycles_frac", "float", "fraction", "share of cycles in vector ops"),
    ("vector_bytes_offchip", "float", "byte", "off-chip bytes of vector ops"),
    ("lm_head_bytes_offchip", "float", "byte", "off-chip bytes of the LM head"),
), "one row per (workload, accelerator) of the comparison study (bitsim.experiments.study)")

_S = {c.name: c for c in STUDY_SUMMARY}


def _s(*names: str) -> tuple[Column, ...]:
    return tuple(_S[n] for n in names)


_TRACE = {c.name: c for c in OP_TRACE}
STUDY_OPS = register("study_ops", SIM_RESULT + _cols(
    ("pair", "str", "", "PE operand pair that ran the op (weights x acts), '' for vector ops"),
    ("needs", "str", "", "operand pair the op asks for"),
    ("fallback", "bool", "", "the op ran on a wider pair than it needs (no native pair)"),
    ("ideal_compute_cycles", "float", "cycle", "MACs / peak rate of the pair: the compute floor"),
) + tuple(_TRACE[n] for n in ("M", "N", "K", "count", "sparsity", "row_skip", "weight_bits", "act_bits",
                                "weight_format", "act_format", "macs_dense", "macs_effective")) + _cols(
    ("ops", "float", "op", "2 x effective MACs (vector ops: elements)"),
    ("time_s", "float", "s", "cycles / clock"),
    ("intensity", "float", "op/byte", "ops / off-chip bytes (NaN when no off-chip bytes)"),
    ("achieved_ops_s", "float", "op/s", "ops / time"),
) + STUDY_KEYS[:2] + STUDY_KEYS[3:] + _cols(
    ("accelerator", "str", "", "accelerator name"),
    ("role", "str", "", "matched or reference"),
), "every simulated op of the study, joined with its trace op and placed on the roofline")

STUDY_TRACES = register("study_traces", OP_TRACE + STUDY_KEYS[:2] + STUDY_KEYS[3:],
                        "every op trace of the study, tagged with its workload")

ACCELERATOR_CEILINGS = register("accelerator_ceilings", _cols(
    ("accelerator", "str", "", "accelerator name"),
    ("precision", "str", "", "operand pair, weights x acts"),
    ("peak_ops_s", "float", "op/s", "2 x peak MACs per cycle of the pair x clock"),
    ("bandwidth_bytes_s", "float", "byte/s", "off-chip bandwidth"),
), "roofline ceilings: one row per (accelerator, supported operand pair)")

GAIN_LADDER = register("gain_ladder", _cols(
    ("preset", "str", "", "model preset"),
    ("context", "int", "token", "decode context"),
    ("step", "int", "", "rung of the ladder: 1 = the strongest b1.58; 0 = b1.58 as its preset (a reference row)"),
    ("change", "str", "", "the one thing this rung changes over the one before"),
    ("datapath", "str", "", "datapath of the rung's trace"),
    ("kv_bits", "int", "bit", "KV-cache bits per element"),
    ("accelerator", "str", "", "accelerator of the rung"),
) + tuple(c for c in RUN_TOTALS if c.name in ("tokens_per_s", "energy_j_per_token", "kv_bytes",
                                                "weight_bytes", "bytes_offchip")) + _cols(
    ("profile", "str", "", "activation statistics of the traces (one for the whole ladder)"),
    ("tokens_per_s_no_skip", "float", "token/s", "the rung with zero skipping off"),
    ("speedup_step", "float", "x", "tokens_per_s over the rung before (NaN on rungs 0 and 1)"),
    ("speedup_step_no_skip", "float", "x", "the same step with zero skipping off on both rungs"),
    ("speedup_total", "float", "x", "tokens_per_s over rung 1 (the strongest b1.58)"),
    ("energy_step", "float", "x", "energy per token of the rung before / this rung"),
), "where a4.8's decode gain over the strongest b1.58 comes from, one change per rung (bitsim.experiments.ladder)")

_AXIS_KEYS = _s("preset", "datapath", "phase", "context", "batch", "profile", "kv_bits", "accelerator")
_AXIS_RESULTS = _s("tokens_per_s", "energy_j_per_token", "feasible", "memory_bound_frac")

STUDY_BATCH = register("study_batch", _AXIS_KEYS + _cols(
    ("skip", "str", "", "zero skipping on or off (the 1-bit chips are run both ways)"),
) + _AXIS_RESULTS + _s("footprint_bytes", "kv_bytes", "weight_bytes", "capacity_gb") + _cols(
    ("skip_gain", "float", "x", "tokens/s with zero skipping / without, same batch (NaN when not run both ways)"),
), "decode at the headline context against the batch, capacity-aware (bitsim.experiments.axes)")

STUDY_BANDWIDTH = register("study_bandwidth", _AXIS_KEYS + _cols(
    ("bandwidth_factor", "float", "x", "peak off-chip bandwidth / the chip's own"),
    ("bandwidth_gbps", "float", "GB/s", "peak off-chip bandwidth of the point"),
) + _AXIS_RESULTS + _cols(
    ("tokens_per_s_per_gbps", "float", "token/s per GB/s", "decode tokens/s per GB/s of peak bandwidth"),
), "decode at the headline context against the peak off-chip bandwidth (bitsim.experiments.axes)")

STUDY_TECHNOLOGY = register("study_technology", _AXIS_KEYS + _cols(
    ("memory", "str", "", "memory generation (a kind of sim's cost table)"),
    ("memory_pj_per_bit", "float", "pJ/bit", "its access energy"),
    ("memory_sustained", "float", "fraction", "its sustained fraction of peak (NaN when sim has no such field)"),
    ("memory_source", "str", "", "source of the pJ/bit figure (sim's cost table)"),
) + _AXIS_RESULTS + _s("energy_offchip_j"), "decode energy per memory generation at the chip's peak bandwidth")

STUDY_BASES = register("study_bases", _s("preset", "datapath", "phase", "context", "batch", "profile", "basis") + _cols(
    ("array_factor", "float", "x", "PEs of the sized chip / the preset's"),
    ("basis_target", "float", "", "iso-area: mm2; iso-power: W (the fp16 chip's); NaN at iso-peak"),
    ("basis_reached", "float", "", "what the sized chip reaches, same unit"),
    ("basis_metric", "str", "", "what was matched and where its number comes from"),
    ("basis_within", "bool", "", "reached within 1 % of the target (always true at iso-peak)"),
    ("pes", "int", "PE", "PEs over all arrays of the sized chip"),
    ("overrides", "str", "", "the array changes that sized it"),
) + _s("area_mm2", "area_source", "power_w", "power_source", "tokens_per_s", "energy_j_per_token", "accelerator",
       "memory_bound_frac"),
    "each datapath on chips sized iso-peak, iso-area (the fp16 chip's area) and iso-power (its prefill power)")

STUDY_SENSITIVITY = register("study_sensitivity", _cols(
    ("ratio", "str", "", "'speed a4.8/b1.58' (tokens/s ratio) or 'energy a4.8/b1.58' (other's J/token / a4.8's)"),
    ("metric", "str", "", "speed or energy"),
    ("numerator", "str", "", "datapath whose gain it is (a4.8)"),
    ("denominator", "str", "", "the strongest baseline it is compared with"),
    ("phase", "str", "", "decode or prefill"),
    ("context", "int", "token", "decode context or prefill length"),
    ("profile", "str", "", "the comparison's own profile (the nominal value's)"),
    ("nominal", "float", "x", "the ratio with every input nominal"),
    ("knob", "str", "", "the one input moved: off-chip pJ/bit, static power, sustained bandwidth, sparsity profile"),
    ("setting", "str", "", "its value for this row"),
    ("value", "float", "x", "the ratio at that setting"),
    ("band_low", "float", "x", "lowest value of the ratio over every knob setting (and the nominal)"),
    ("band_high", "float", "x", "highest value"),
), "sensitivity of the headline ratios to one uncertain input at a time (bitsim.experiments.sensitivity)")

STUDY_CROSSOVERS = register("study_crossovers", _cols(
    ("crossover", "str", "", "what crosses over"),
    ("datapath", "str", "", "datapath it is about"),
    ("value", "float", "", "where (NaN when beyond the swept range)"),
    ("unit", "str", "", "unit of value"),
    ("where", "str", "", "within the range, at or below the range, or beyond the range"),
    ("range_lo", "float", "", "lowest swept value"),
    ("range_hi", "float", "", "highest swept value"),
    ("definition", "str", "", "how it is found"),
    ("figure", "str", "", "the figure that shows it"),
), "the named crossovers of the study's axes (bitsim.experiments.axes.crossovers)")

STUDY_BASELINES = register("study_baselines", _s("preset", "datapath", "basis", "batch", "context", "profile",
                                                  "kv_bits", "variant", "accelerator") + _cols(
    ("array_factor", "float", "x", "PEs of the sized chip / the preset's"),
    ("basis_within", "bool", "", "the sized chip reaches the a4.8 chip's area or prefill power within 1 % "
                                 "(always true at iso-peak)"),
) + _s("area_mm2", "capacity_gb", "footprint_bytes") + _cols(
    ("fits", "bool", "", "weights + KV cache fit the chip's off-chip capacity (closed form; a point that does not "
                         "fit is not simulated)"),
) + _s("tokens_per_s", "energy_j_per_token") + _cols(
    ("a48_speedup", "float", "x", "a4.8's tokens/s / this row's at the same (basis, batch, context); NaN when "
                                  "either does not fit"),
    ("a48_energy_gain", "float", "x", "this row's J/token / a4.8's at the same point"),
    ("strongest_baseline", "str", "", "the fitting baseline (every datapath but a4.8) with the highest tokens/s at "
                                      "this (basis, batch, context); '' when none fits"),
    ("strongest_conventional", "str", "", "the same among FP16 and the quantized datapaths (b1.58 left out)"),
    ("is_strongest", "bool", "", "this row is its point's strongest baseline"),
), "a4.8 against FP16, W4A16, W8A8 INT8/FP8, W4A4 MXFP4 and the strongest b1.58 across batch, context and basis "
   "(bitsim.experiments.baselines)")

SWEEP_RESULTS = register("sweep_results", _cols(
    ("point_id", "str", "", "content hash of the point (workload, accelerator, overrides)"),
    ("preset", "str", "", "model preset"),
    ("datapath", "str", "", "datapath"),
    ("phase", "str", "", "prefill or decode"),
    ("context", "int", "token", "context"),
    ("batch", "int", "", "sequences per step"),
    ("prefill_tokens", "int", "token", "prefill length; -1 when not a prefill"),
    ("profile", "str", "", "activation statistics of the trace"),
    ("seed", "int", "", "seed of the trace's random weights"),
    ("accelerator", "str", "", "base accelerator (preset or YAML) the overrides apply to"),
) + RUN_TOTALS[1:11], "one row per sweep point; plus one hw.<parameter> column per swept knob")

__all__ = ["ACCELERATOR_CEILINGS", "CHIP_METRICS", "GAIN_LADDER", "RUN_SETUP", "RUN_TOTALS", "STUDY_BANDWIDTH",
           "STUDY_BASELINES", "STUDY_BASES", "STUDY_BATCH", "STUDY_CROSSOVERS", "STUDY_KEYS", "STUDY_OPS",
           "STUDY_SENSITIVITY", "STUDY_SUMMARY", "STUDY_TECHNOLOGY", "STUDY_TRACES", "SWEEP_RESULTS", "Column"]
