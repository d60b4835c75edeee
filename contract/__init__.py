"""The table contract: the leaf package every stage imports at module top.

``vocabulary``: the shared words (phases, op classes, formats, workload limits, the tuning suffix).
``schemas``: the registry of tables, column by column; the tables that cross stages are registered
here (``kernels``, ``sim``, ``training``), the application registers its own.
``io``: read / write (atomic) / validate; ``config``: the strict YAML loader and the field checks.
It imports nothing else of the project.
"""
from contract import kernels, serving, sim, training  # noqa: F401  each registers the tables that cross stages
from contract.io import (
    check_output,
    check_output_folder,
    describe,
    publish_folder,
    read_table,
    reference_markdown,
    temporary_sibling,
    validate,
    write_table,
)
from contract.schemas import (
    MEASURED_TRACE,
    OP_TRACE,
    OP_TRACE_META,
    SCHEMA_VERSION,
    SCHEMAS,
    SIM_RESULT,
    Column,
    measured_final_rows,
    register,
)
from contract.vocabulary import (
    ACT_FORMATS,
    KV_FORMATS,
    MAX_BATCH,
    MAX_CONTEXT,
    MAX_PREFILL_TOKENS,
    OP_CLASSES,
    PHASES,
    STATS_SOURCES,
    TUNING_SUFFIX,
    WEIGHT_FORMATS,
    is_study_kernel,
)

__all__ = [
    "ACT_FORMATS", "KV_FORMATS", "MAX_BATCH", "MAX_CONTEXT", "MAX_PREFILL_TOKENS", "MEASURED_TRACE",
    "OP_CLASSES", "OP_TRACE", "OP_TRACE_META", "PHASES", "SCHEMAS", "SCHEMA_VERSION", "SIM_RESULT",
    "STATS_SOURCES", "TUNING_SUFFIX", "WEIGHT_FORMATS", "Column", "is_study_kernel", "check_output",
    "check_output_folder", "describe", "publish_folder", "reference_markdown", "temporary_sibling",
    "measured_final_rows", "read_table", "register", "validate", "write_table",
]
