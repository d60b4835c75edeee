"""Tables the experiments (``bitsim.experiments``: study, sweep, gain ladder) hand to the report.

Each is registered in the one contract (``bitsim.tables.schemas.SCHEMAS``); ``docs/tables.md`` is
generated from it. Extra columns are allowed (``validate`` checks that the registered ones are there
with the right kind), which is how sweep results carry one ``hw.<parameter>`` column per knob.
"""
from __future__ import annotations

from bitsim.tables.schemas import OP_TRACE, SIM_RESULT, Column, _cols, register

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
    ("datapath", "str", "", "fp16, b1.58, a4.8 or a4.8-fp4"),
    ("phase", "str", "", "prefill or decode"),
    ("context", "int", "token", "decode: tokens already in the KV cache; prefill: prompt length"),
)

STUDY_SUMMARY = register("study_summary", STUDY_KEYS + RUN_TOTALS[:1] + _cols(
    ("accelerator", "str", "", "accelerator name (from its YAML)"),
    ("accelerator_key", "str", "", "preset name or YAML path the study was given"),
    ("role", "str", "", "matched (the datapath's own chip) or reference"),
) + RUN_TOTALS[1:] + _cols(
    ("memory_bound_frac", "float", "fraction", "share of cycles in ops whose bound is memory"),
    ("compute_bound_frac", "float", "fraction", "share of cycles in ops whose bound is compute"),
    ("gemm_cycles_frac", "float", "fraction", "share of cycles in gemm ops"),
    ("gemm_bytes_offchip", "float", "byte", "off-chip bytes of gemm ops"),
    ("attention_cycles_frac", "float", "fraction", "share of cycles in attention ops"),
    ("attention_bytes_offchip", "float", "byte", "off-chip bytes of attention ops"),
    ("vector_cycles_frac", "float", "fraction", "share of cycles in vector ops"),
    ("vector_bytes_offchip", "float", "byte", "off-chip bytes of vector ops"),
), "one row per (workload, accelerator) of the comparison study (bitsim.experiments.study)")

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
    ("step", "int", "", "rung of the ladder, 1 = the baseline"),
    ("change", "str", "", "the one thing this rung changes over the one before"),
    ("datapath", "str", "", "datapath of the rung's trace"),
    ("kv_bits", "int", "bit", "KV-cache bits per element"),
    ("accelerator", "str", "", "accelerator of the rung (and whether zero skipping is off)"),
) + tuple(c for c in RUN_TOTALS if c.name in ("tokens_per_s", "energy_j_per_token", "kv_bytes",
                                                "weight_bytes", "bytes_offchip")) + _cols(
    ("speedup_step", "float", "x", "tokens_per_s over the rung before (NaN on rung 1)"),
    ("speedup_total", "float", "x", "tokens_per_s over rung 1"),
    ("energy_step", "float", "x", "energy per token of the rung before / this rung"),
), "where a4.8's decode gain over b1.58 comes from, one change per rung (bitsim.experiments.ladder)")

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

__all__ = ["ACCELERATOR_CEILINGS", "GAIN_LADDER", "RUN_TOTALS", "STUDY_KEYS", "STUDY_OPS", "STUDY_SUMMARY",
           "STUDY_TRACES", "SWEEP_RESULTS", "Column"]
