"""The tables where the stages meet: every column with its type, unit and meaning.

Data flows one way: ``model/`` writes **op traces**, ``kernels/`` writes **measured op traces**,
``sim/`` reads traces and writes **sim results**, the experiments and the report read results.
Stages exchange these tables (Parquet or CSV), never each other's internals.

A schema is a tuple of :class:`Column`; :func:`register` adds one to :data:`SCHEMAS`, the one
registry that :func:`contract.validate`, ``write_table`` and ``docs/tables.md`` read.
This module imports nothing of the project.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from contract.vocabulary import TUNING_SUFFIX, is_study_kernel

SCHEMA_VERSION = "1"


@dataclass(frozen=True)
class Column:
    """One column of a table: name, kind (int, float, str, bool), unit and meaning."""

    name: str
    kind: str
    unit: str
    doc: str

    def __post_init__(self) -> None:
        if self.kind not in ("int", "float", "str", "bool"):
            raise ValueError(f"column {self.name!r}: unknown kind {self.kind!r}")


def _cols(*rows: tuple[str, str, str, str]) -> tuple[Column, ...]:
    return tuple(Column(name=r[0], kind=r[1], unit=r[2], doc=r[3]) for r in rows)

# --------------------------------------------------------------------------
# Op trace: one row per operator call of one forward (model/ writes it).
# --------------------------------------------------------------------------

OP_TRACE = _cols(
    ("layer", "int", "", "decoder layer index; -1 for embedding / final norm / LM head"),
    ("op", "str", "", "operator name: q_proj k_proj v_proj o_proj gate_proj up_proj down_proj "
                      "attn_qk attn_pv softmax rmsnorm_* quant_* topk_o glu rope kv_quant embedding lm_head"),
    ("op_class", "str", "", "gemm (weights x activations), attention (activations x KV cache), "
                            "vector (element-wise / reductions on the vector unit)"),
    ("phase", "str", "", "prefill or decode"),
    ("M", "int", "", "gemm: rows of the activation (batch x new tokens); attention: query rows per head; "
                     "vector: rows"),
    ("N", "int", "", "gemm: output features; attention: keys (context) for QK^T, head_dim for PV; "
                     "vector: elements per row"),
    ("K", "int", "", "gemm: input features (reduction); attention: head_dim for QK^T, keys for PV; vector: 0"),
    ("count", "int", "", "identical independent instances (e.g. batch x heads for attention); "
                         "MACs and bytes columns already include it"),
    ("weight_format", "str", "", "fp16, ternary, kv-fp16, kv-int3, kv-int4, or none"),
    ("weight_bits", "float", "bit", "storage bits per weight element as read from memory "
                                    "(ternary: 2.0 for 2-bit packing); 0 when no weights"),
    ("act_format", "str", "", "input activation format: fp16, int8, int4, fp4, int8-topk, none"),
    ("act_bits", "int", "bit", "bits per input activation element"),
    ("out_bits", "int", "bit", "bits per output element written"),
    ("sparsity", "float", "fraction", "measured zero fraction of the (quantized) input activation"),
    ("row_skip", "float", "fraction", "fraction of the K reduction rows whose activation is zero in every "
                                      "one of the M rows: weight rows a skipping engine need not fetch"),
    ("macs_dense", "int", "MAC", "multiply-accumulates of the dense op (vector ops: elements)"),
    ("macs_effective", "int", "MAC", "MACs left after skipping zero activations"),
    ("weight_bytes", "float", "byte", "bytes of weights (or KV cache for attention) the dense op reads"),
    ("act_bytes_in", "float", "byte", "bytes of input activations"),
    ("act_bytes_out", "float", "byte", "bytes of output activations"),
    ("kv_bytes_read", "float", "byte", "KV-cache bytes read (attention ops)"),
    ("kv_bytes_write", "float", "byte", "KV-cache bytes written (new K/V of this step)"),
)

OP_TRACE_META = ("preset", "datapath", "phase", "batch", "context", "seed", "stats_source", "stats_detail", "version")

# --------------------------------------------------------------------------
# Measured op trace: one row per (kernel, shape) timed on a GPU (kernels/).
# --------------------------------------------------------------------------
MEASURED_TRACE = _cols(
    ("op", "str", "", "what was timed: gemm, gemv, sparse_gemv, quant, attention_decode, kv_write, "
                      "block_decode, block_prefill, ceiling, shard_linear (one GPU's share of a "
                      "tensor-parallel layer's linear part), token_decode, floor"),
    ("kernel", "str", "", "implementation name (e.g. ours_w158a8, cublas_fp16, cublas_int8, cublas_fp8, "
                          "gemlite_a8w158, torch_sdpa)"),
    ("impl", "str", "", "ours or baseline"),
    ("precision", "str", "", "operand precisions, e.g. w1.58a8, w1.58a4-fp8, fp16, int8, fp8, kv3"),
    ("M", "int", "", "rows (tokens x batch); for attention: batch"),
    ("N", "int", "", "output features; for attention: heads"),
    ("K", "int", "", "reduction size; for attention: context length"),
    ("sparsity", "float", "fraction", "activation zero fraction the kernel exploited (0 when dense)"),
    ("cuda_graph", "bool", "", "timed as CUDA-graph replays"),
    ("us", "float", "us", "median time (triton.testing.do_bench, L2 flushed)"),
    ("bytes", "float", "byte", "minimum bytes moved (inputs read once, outputs written once)"),
    ("ops", "float", "op", "arithmetic ops (2 x MACs)"),
    ("gbps", "float", "GB/s", "bytes / time"),
    ("tops", "float", "TOP/s", "ops / time"),
    ("exact", "bool", "", "output checked bit-exact against model/'s integer path in this run"),
    ("gpu", "str", "", "GPU name"),
    ("torch", "str", "", "torch version"),
    ("triton", "str", "", "triton version"),
    ("cuda", "str", "", "CUDA version"),
    ("date", "str", "", "ISO date of the run"),
)

# --------------------------------------------------------------------------
# Sim result: one row per simulated op (sim/ writes it).
# --------------------------------------------------------------------------
SIM_RESULT = _cols(
    ("layer", "int", "", "as in the op trace"),
    ("op", "str", "", "as in the op trace"),
    ("op_class", "str", "", "as in the op trace"),
    ("phase", "str", "", "as in the op trace"),
    ("unit", "str", "", "hardware unit that ran it (compute array name or 'vector')"),
    ("start_cycle", "int", "cycle", "first cycle of the op"),
    ("end_cycle", "int", "cycle", "cycle after the op's last event"),
    ("cycles", "int", "cycle", "end - start"),
    ("compute_cycles", "int", "cycle", "cycles the compute unit was busy on the op"),
    ("memory_cycles", "int", "cycle", "cycles the off-chip channel was busy on the op"),
    ("bound", "str", "", "the resource that set the op's time: compute, weight_load, sram, memory or vector"),
    ("utilization", "float", "fraction", "MACs (or elements) / (peak rate x cycles)"),
    ("bytes_offchip", "float", "byte", "bytes moved to/from off-chip memory"),
    ("bytes_sram", "float", "byte", "bytes moved to/from on-chip SRAM"),
    ("energy_compute_pj", "float", "pJ", "arithmetic energy"),
    ("energy_sram_pj", "float", "pJ", "on-chip buffer energy"),
    ("energy_offchip_pj", "float", "pJ", "off-chip memory energy"),
    ("energy_vector_pj", "float", "pJ", "vector-unit energy"),
    ("energy_static_pj", "float", "pJ", "leakage / static energy over the op's duration"),
)


#: name -> columns, and name -> one-line description; filled by :func:`register`.
SCHEMAS: dict[str, tuple[Column, ...]] = {}
DESCRIPTIONS: dict[str, str] = {}


def register(name: str, columns: tuple[Column, ...], doc: str) -> tuple[Column, ...]:
    """Add a table to the contract (once per name); returns its columns."""
    if name in SCHEMAS:
        raise ValueError(f"table {name!r} is registered twice")
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise ValueError(f"table {name!r} repeats a column: {names}")
    SCHEMAS[name] = tuple(columns)
    DESCRIPTIONS[name] = doc
    return SCHEMAS[name]


register("op_trace", OP_TRACE, "one row per operator call of one forward pass (model/ writes it)")
register("measured_trace", MEASURED_TRACE, "one row per (kernel, shape) timed on a GPU (kernels/ writes it)")
register("sim_result", SIM_RESULT, "one row per simulated op (sim/ writes it)")


def measured_final_rows(measured: pd.DataFrame) -> pd.DataFrame:
    """The rows of a ``measured_trace`` table that are kernels as shipped: tuning-sweep rows and study
    variants (``vocabulary.is_study_kernel``: floors, stage-left-out variants) dropped."""
    names = measured["kernel"].astype(str)
    study = names.map(is_study_kernel).astype(bool)
    return measured[~names.str.endswith(TUNING_SUFFIX) & ~study]
