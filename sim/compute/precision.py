"""Operand precisions, and how a trace op's formats map onto an accelerator's PEs.

A trace op names its storage formats in the shared vocabulary
(``contract.WEIGHT_FORMATS``: fp16, ternary, kv-fp16, kv-int4, kv-int3 ...;
``contract.ACT_FORMATS``: fp16, int8, int4, fp4, int8-topk ...).  Each
maps to an *operand* precision (:data:`OPERANDS`, the PE's own words).  A PE
supports a list of ``weights x acts`` operand pairs, each with a rate (MACs per
PE per cycle).

Mapping rule (``precision_policy`` of the accelerator):

* ``strict``: the op runs only on a PE pair that matches its operands exactly;
  otherwise a ``ValueError`` names the op and what is missing.
* ``promote`` (default): the op may also run on a pair whose formats can
  represent the op's values *exactly* (e.g. ternary x int4 on an int8 x int8 PE,
  at the int8 pair's rate and energy; int4 / ternary inside FP8 e4m3 as noted in
  docs/gpu-facts.md §1.5).  Exact matches win; among the rest the array and pair that
  finish the op's shape in the fewest cycles, then the cheaper MAC, then config
  order (``sim.compute.map_op``).  No containing pair -> ``ValueError``.  The
  energy charged is the pair that actually runs (a promoted op pays the wider MAC).
"""
from __future__ import annotations

from contract import ACT_FORMATS, KV_FORMATS, WEIGHT_FORMATS

OPERANDS = ("ternary", "int3", "int4", "int8", "fp4", "fp8", "fp16")

# Which operand precisions can hold every value of a given one exactly.
# ternary {-1,0,1} fits everything; int3/int4 codes fit int8, fp8 e4m3 (exact
# integers up to 16) and fp16; int8 codes (-128..127) fit fp16 but not fp8;
# fp4 e2m1 fits fp8 e4m3 and fp16.
HOLDERS: dict[str, tuple[str, ...]] = {
    "ternary": ("ternary", "int3", "int4", "int8", "fp4", "fp8", "fp16"),
    "int3": ("int3", "int4", "int8", "fp8", "fp16"),
    "int4": ("int4", "int8", "fp8", "fp16"),
    "int8": ("int8", "fp16"),
    "fp4": ("fp4", "fp8", "fp16"),
    "fp8": ("fp8", "fp16"),
    "fp16": ("fp16",),
}

# Trace storage format (shared vocabulary) -> operand precision.  "int8"/"fp8" weights are not
# made by model/ but appear in GPU measurements (cuBLAS INT8 / FP8 GEMMs).  "none" has no operand.
WEIGHT_OPERAND: dict[str, str] = {
    "fp16": "fp16", "bf16": "fp16", "ternary": "ternary", "int8": "int8", "int4": "int4",
    "fp8": "fp8", "fp4": "fp4",
    "kv-fp16": "fp16", "kv-int8": "int8", "kv-int4": "int4", "kv-int3": "int3",
}
ACT_OPERAND: dict[str, str] = {
    "fp16": "fp16", "bf16": "fp16", "int8": "int8", "int8-topk": "int8", "int4": "int4",
    "fp4": "fp4", "fp8": "fp8", "int3": "int3",
}
# Bits per input activation element of a matmul op, by act_format (the trace's act_bits must agree).
ACT_FORMAT_BITS: dict[str, int] = {
    "fp16": 16, "bf16": 16, "int8": 8, "int8-topk": 8, "int4": 4, "fp4": 4, "fp8": 8, "int3": 3,
}

# One vocabulary: every format sim maps must be a word of contract.vocabulary.
_NOT_IN_VOCABULARY = sorted((set(WEIGHT_OPERAND) - set(WEIGHT_FORMATS)) | (set(ACT_OPERAND) - set(ACT_FORMATS))
                            | (set(ACT_FORMAT_BITS) - set(ACT_FORMATS)))
if _NOT_IN_VOCABULARY or set(KV_FORMATS) - set(WEIGHT_OPERAND):
    raise RuntimeError(f"sim.compute.precision maps formats that contract.vocabulary does not name "
                       f"({_NOT_IN_VOCABULARY}) or misses KV formats it names "
                       f"({sorted(set(KV_FORMATS) - set(WEIGHT_OPERAND))})")


def _operand(fmt: str, table: dict[str, str], vocabulary: tuple[str, ...], column: str, where: str) -> str:
    if fmt in table:
        return table[fmt]
    if fmt in vocabulary:
        raise ValueError(f"{where}: {column} {fmt!r} has no operand precision; a gemm/attention op needs "
                         f"one of {sorted(table)}")
    raise ValueError(f"{where}: unknown {column} {fmt!r}; the vocabulary (contract) has {list(vocabulary)}")


def weight_operand(fmt: str, where: str) -> str:
    """Operand precision of a trace ``weight_format`` (``ValueError`` naming ``where`` if none)."""
    return _operand(fmt, WEIGHT_OPERAND, WEIGHT_FORMATS, "weight_format", where)


def act_operand(fmt: str, where: str) -> str:
    """Operand precision of a trace ``act_format`` (``ValueError`` naming ``where`` if none)."""
    return _operand(fmt, ACT_OPERAND, ACT_FORMATS, "act_format", where)


def check_operand(name: str, field: str) -> str:
    """Validate one operand precision named in a config."""
    if name not in OPERANDS:
        raise ValueError(f"{field}: unknown precision {name!r}; known: {list(OPERANDS)}")
    return name


def can_run(pair: tuple[str, str], need: tuple[str, str], policy: str) -> bool:
    """Whether a PE pair ``(weights, acts)`` can run an op needing ``need``."""
    if policy == "strict":
        return pair == need
    return pair[0] in HOLDERS[need[0]] and pair[1] in HOLDERS[need[1]]
