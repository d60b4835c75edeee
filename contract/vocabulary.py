"""The words every table uses: phases, op classes, storage formats, naming conventions.

One place, so a word means one thing in ``model/``, ``kernels/``, ``sim/`` and the report.
This module imports nothing of the project.
"""
from __future__ import annotations

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
MAX_CONTEXT = 1 << 20          # decode context, tokens (1 M; the papers go to 32 k)
MAX_PREFILL_TOKENS = 1 << 15   # prompt length of a prefill trace (32 k)
MAX_BATCH = 1024               # sequences per step (issue 12's sweeps go to 256)

#: measured_trace convention: kernels that measure a stage of another kernel (a variant with the weight
#: decode left out, a read-only floor, a rejected fused prologue, programmatic-launch trials) are
#: evidence for docs/kernels.md, not kernels as shipped; they are left out of speedups and of fits.
STUDY_KERNEL_PREFIXES = ("floor_", "ours_fused_norm_")
STUDY_KERNEL_SUFFIXES = ("_nodecode", "_pdl", "_radix")


def is_study_kernel(name: str) -> bool:
    """Whether a measured kernel name is a study variant (see :data:`STUDY_KERNEL_PREFIXES`)."""
    return name.startswith(STUDY_KERNEL_PREFIXES) or name.endswith(STUDY_KERNEL_SUFFIXES)
