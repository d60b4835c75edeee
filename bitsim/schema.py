"""The tables where the stages meet, defined in one place.

Data flows one way:  ``model/`` writes **op traces**, ``kernels/`` writes
**measured op traces**, ``sim/`` reads traces and writes **sim results**,
notebooks and ``reports/`` read results.  No stage imports another stage's
internals; they exchange these tables (Parquet or CSV), validated here.

Each schema is a list of :class:`Column` (name, dtype kind, unit, meaning).
Table-wide metadata (preset, datapath, versions ...) travels in the Parquet
schema metadata under the key ``bitsim`` (JSON), and in CSV files as leading
``# key: value`` comment lines.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

SCHEMA_VERSION = "1"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "int", "float", "str", "bool"
    unit: str
    doc: str


def _cols(*rows: tuple[str, str, str, str]) -> tuple[Column, ...]:
    return tuple(Column(*r) for r in rows)


# --------------------------------------------------------------------------
# Op trace: one row per operator call of one forward (model/ writes it).
# --------------------------------------------------------------------------
OP_CLASSES = ("gemm", "attention", "vector")
PHASES = ("prefill", "decode")

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

OP_TRACE_META = ("preset", "datapath", "phase", "batch", "context", "seed", "stats_source", "version")

# --------------------------------------------------------------------------
# Measured op trace: one row per (kernel, shape) timed on a GPU (kernels/).
# --------------------------------------------------------------------------
MEASURED_TRACE = _cols(
    ("op", "str", "", "what was timed: gemm, gemv, sparse_gemv, quant, attention_decode, kv_write, block_decode, block_prefill, ceiling"),
    ("kernel", "str", "", "implementation name (e.g. ours_w158a8, cublas_fp16, cublas_int8, cublas_fp8, gemlite_a8w158, torch_sdpa)"),
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
    ("bound", "str", "", "compute, memory or vector: the resource that dominated"),
    ("utilization", "float", "fraction", "MACs (or elements) / (peak rate x cycles)"),
    ("bytes_offchip", "float", "byte", "bytes moved to/from off-chip memory"),
    ("bytes_sram", "float", "byte", "bytes moved to/from on-chip SRAM"),
    ("energy_compute_pj", "float", "pJ", "arithmetic energy"),
    ("energy_sram_pj", "float", "pJ", "on-chip buffer energy"),
    ("energy_offchip_pj", "float", "pJ", "off-chip memory energy"),
    ("energy_vector_pj", "float", "pJ", "vector-unit energy"),
    ("energy_static_pj", "float", "pJ", "leakage / static energy over the op's duration"),
)

SCHEMAS: dict[str, tuple[Column, ...]] = {
    "op_trace": OP_TRACE,
    "measured_trace": MEASURED_TRACE,
    "sim_result": SIM_RESULT,
}

_KIND_CHECK = {
    "int": pd.api.types.is_integer_dtype,
    "float": pd.api.types.is_numeric_dtype,
    "bool": pd.api.types.is_bool_dtype,
    "str": lambda s: pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s),
}


def validate(df: pd.DataFrame, schema: str) -> pd.DataFrame:
    """Check that ``df`` has every column of ``schema`` with the right kind.

    Extra columns are allowed (stages may add detail); missing or mistyped
    columns raise ``ValueError`` naming them.  Returns ``df`` for chaining.
    """
    if schema not in SCHEMAS:
        raise ValueError(f"unknown schema {schema!r}; known: {sorted(SCHEMAS)}")
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c.name for c in SCHEMAS[schema] if c.name not in df.columns]
    if missing:
        raise ValueError(f"{schema} table is missing columns: {missing}")
    bad = [f"{c.name} (want {c.kind}, got {df[c.name].dtype})"
           for c in SCHEMAS[schema] if len(df) and not _KIND_CHECK[c.kind](df[c.name])]
    if bad:
        raise ValueError(f"{schema} table has columns of the wrong type: {bad}")
    return df


def write_table(df: pd.DataFrame, path: str | Path, schema: str,
                meta: Mapping[str, Any] | None = None) -> Path:
    """Validate and write a table as Parquet (``.parquet``) or CSV (``.csv``).

    ``meta`` (defaults to ``df.attrs``) is stored with the table: in the
    Parquet footer, or as ``# key: value`` lines at the top of a CSV.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    validate(df, schema)
    path = Path(path)
    meta = dict(df.attrs if meta is None else meta)
    meta.setdefault("schema", schema)
    meta.setdefault("schema_version", SCHEMA_VERSION)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = df.copy()
    clean.attrs = {}
    if path.suffix == ".parquet":
        table = pa.Table.from_pandas(clean, preserve_index=False)
        md = dict(table.schema.metadata or {})
        md[b"bitsim"] = json.dumps(meta, default=str).encode()
        pq.write_table(table.replace_schema_metadata(md), path)
    elif path.suffix == ".csv":
        with open(path, "w", newline="") as f:
            for k, v in meta.items():
                f.write(f"# {k}: {json.dumps(v, default=str)}\n")
            clean.to_csv(f, index=False)
    else:
        raise ValueError(f"output must end in .parquet or .csv, got {path.name!r}")
    return path


def read_table(path: str | Path, schema: str | None = None) -> pd.DataFrame:
    """Read a table written by :func:`write_table`; metadata lands in ``df.attrs``."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such table: {path}")
    meta: dict[str, Any] = {}
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        raw = (table.schema.metadata or {}).get(b"bitsim")
        meta = json.loads(raw) if raw else {}
        df = table.to_pandas()
    elif path.suffix == ".csv":
        with open(path) as f:
            for line in f:
                if not line.startswith("# "):
                    break
                key, _, val = line[2:].partition(": ")
                meta[key] = json.loads(val)
        # Read string columns as strings (a version "13.0" must not become a float).
        known = SCHEMAS.get(schema or meta.get("schema", ""), ())
        dtypes = {c.name: str for c in known if c.kind == "str"}
        df = pd.read_csv(path, comment="#", dtype=dtypes, keep_default_na=False,
                         na_values={c.name: [""] for c in known if c.kind != "str"})
    else:
        raise ValueError(f"table must end in .parquet or .csv, got {path.name!r}")
    df.attrs = meta
    if schema is not None:
        validate(df, schema)
    return df


# measured_trace convention: kernel names ending in this suffix are rows of a tile-configuration
# tuning sweep (kernels/benchmark.py --configs), not results of a kernel as shipped.
TUNING_SUFFIX = "_cfg"


def measured_final_rows(measured: pd.DataFrame) -> pd.DataFrame:
    """The rows of a ``measured_trace`` table that are kernel results (tuning-sweep rows dropped)."""
    return measured[~measured["kernel"].astype(str).str.endswith(TUNING_SUFFIX)]


def describe(schema: str) -> str:
    """Markdown table documenting a schema (used by docs and --help)."""
    rows = ["| column | type | unit | meaning |", "|---|---|---|---|"]
    rows += [f"| {c.name} | {c.kind} | {c.unit} | {c.doc} |" for c in SCHEMAS[schema]]
    return "\n".join(rows)
