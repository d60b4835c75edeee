"""Operand precisions, and how a trace op's formats map onto an accelerator's PEs.

A trace op names its storage formats (``weight_format``: fp16, ternary,
kv-fp16, kv-int4, kv-int3 ...; ``act_format``: fp16, int8, int4, fp4,
int8-topk ...).  Each maps to an *operand* precision.  A PE supports a list of
``weights x acts`` operand pairs, each with a rate (MACs per PE per cycle).

Mapping rule (``precision_policy`` of the accelerator):

* ``strict``: the op runs only on a PE pair that matches its operands exactly;
  otherwise a ``ValueError`` names the op and what is missing.
* ``promote`` (default): the op may also run on a pair whose formats can
  represent the op's values *exactly* (e.g. ternary x int4 on an int8 x int8 PE,
  at the int8 pair's rate and energy; int4 / ternary inside FP8 e4m3 as noted in
  gpu-anchors.md).  Exact matches win; among the rest the array and pair that
  finish the op's shape in the fewest cycles, then the cheaper MAC, then config
  order (``sim.compute.map_op``).  No containing pair -> ``ValueError``.  The
  energy charged is the pair that actually runs (a promoted op pays the wider MAC).
"""
from __future__ import annotations

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

# Trace storage format -> operand precision.  "int8"/"fp8" weights are not made
# by model/ but appear in GPU measurements (cuBLAS INT8 / FP8 GEMMs).
WEIGHT_FORMATS = {
    "fp16": "fp16", "bf16": "fp16", "ternary": "ternary", "int8": "int8", "int4": "int4",
    "fp8": "fp8", "fp4": "fp4",
    "kv-fp16": "fp16", "kv-int8": "int8", "kv-int4": "int4", "kv-int3": "int3",
}
ACT_FORMATS = {
    "fp16": "fp16", "bf16": "fp16", "int8": "int8", "int8-topk": "int8", "int4": "int4",
    "fp4": "fp4", "fp8": "fp8", "int3": "int3",
}
KV_FORMATS = tuple(k for k in WEIGHT_FORMATS if k.startswith("kv-"))


def weight_operand(fmt: str, where: str) -> str:
    if fmt not in WEIGHT_FORMATS:
        raise ValueError(f"{where}: unknown weight_format {fmt!r}; known: {sorted(WEIGHT_FORMATS)}")
    return WEIGHT_FORMATS[fmt]


def act_operand(fmt: str, where: str) -> str:
    if fmt not in ACT_FORMATS:
        raise ValueError(f"{where}: unknown act_format {fmt!r}; known: {sorted(ACT_FORMATS)}")
    return ACT_FORMATS[fmt]


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
