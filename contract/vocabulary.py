"""The words every table uses: phases, op classes, storage formats, naming conventions.

One place, so a word means one thing in ``model/``, ``kernels/``, ``sim/`` and the report.
This module imports nothing of the project.
"""
from __future__ import annotations

from contract.limits import limit

#: The two phases of autoregressive inference an op trace can describe.
PHASES = ("prefill", "decode")

#: gemm: weights x activations; attention: activations x KV cache; vector: element-wise / reductions.
OP_CLASSES = ("gemm", "attention", "vector")

#: Storage format of the "weight" operand of an op as it is read from memory. The ``kv-*`` formats
#: are the KV cache read by attention ops; int8 / fp8 weights come from GPU baselines (cuBLAS).
WEIGHT_FORMATS = ("fp16", "bf16", "ternary", "int8", "int4", "fp8", "fp4",
                  "kv-fp16", "kv-int8", "kv-int4", "kv-int3", "none")

#: KV-cache storage formats (a subset of WEIGHT_FORMATS).
KV_FORMATS = tuple(f for f in WEIGHT_FORMATS if f.startswith("kv-"))

#: Format of an op's input activations.
ACT_FORMATS = ("fp16", "bf16", "int8", "int8-topk", "int4", "fp4", "fp8", "int3", "none")

#: measured_trace convention: kernel names ending in this suffix are rows of a tile-configuration
#: tuning sweep (``bitsim bench-kernels --configs``), not results of a kernel as shipped.
TUNING_SUFFIX = "_cfg"

#: Where the activation statistics of an op trace come from (``stats_source`` metadata).
STATS_SOURCES = ("random", "paper-table2", "trained")

#: Workload bounds every entry point enforces (model traces, the simulator, studies, sweeps): beyond
#: them a run would take minutes to hours or exhaust memory, and no question of the tool needs them.
MAX_CONTEXT = limit("decode context", 1 << 20, unit="tokens", area="workloads",
                    applies_to="traces, the simulator, studies, sweeps, serving",
                    why="the papers go to 32 k; past 1 M one decode step takes minutes to simulate")
MAX_PREFILL_TOKENS = limit("prefill prompt", 1 << 15, unit="tokens", area="workloads",
                           applies_to="prefill traces, studies, sweeps",
                           why="the trace builder measures statistics over the whole prompt")
MAX_BATCH = limit("batch", 1024, unit="sequences", area="workloads",
                  applies_to="traces, the simulator, studies, sweeps, serving iterations",
                  why="the capacity batch of a 32 GB chip at 2 k context is ~150; the sweeps go to 256")

#: measured_trace convention: kernels that measure a stage of another kernel (a variant with the weight
#: decode left out, a read-only floor, a rejected fused prologue, programmatic-launch trials) or a variant
#: measured slower and not shipped (the radix and two-bit TopK searches, the chunked quantizer, the dense
#: 3-bit KV layout, the sparse GEMV that lists its own rows) are evidence for docs/kernels.md, not kernels as
#: shipped; they are left out of speedups, fits and the per-class validation.
STUDY_KERNEL_PREFIXES = ("floor_", "ours_fused_norm_", "ours_sparse_masked_")
STUDY_KERNEL_SUFFIXES = ("_nodecode", "_pdl", "_radix", "_pairs", "_chunks", "_dense")


def is_study_kernel(name: str) -> bool:
    """Whether a measured kernel name is a study variant (see :data:`STUDY_KERNEL_PREFIXES`)."""
    return name.startswith(STUDY_KERNEL_PREFIXES) or name.endswith(STUDY_KERNEL_SUFFIXES)
