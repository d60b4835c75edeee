"""The table contract: the leaf package every stage imports at module top.

``vocabulary``: the shared words (phases, op classes, formats, the tuning suffix).
``schemas``: every table that crosses a module boundary, column by column, in one registry.
``io``: read / write (atomic) / validate.  It imports nothing else of the project.
"""
from bitsim.tables import experiments, kernels, report, sim, training  # each registers its layer's tables
from bitsim.tables.io import (check_output, check_output_folder, describe, publish_folder, read_table,
                              reference_markdown, temporary_sibling, validate, write_table)
from bitsim.tables.schemas import (MEASURED_TRACE, OP_TRACE, OP_TRACE_META, SCHEMA_VERSION, SCHEMAS,
                                   SIM_RESULT, Column, measured_final_rows, register)
from bitsim.tables.vocabulary import (ACT_FORMATS, KV_FORMATS, OP_CLASSES, PHASES, STATS_SOURCES,
                                      MAX_BATCH, MAX_CONTEXT, MAX_PREFILL_TOKENS, TUNING_SUFFIX, WEIGHT_FORMATS, is_study_kernel)

__all__ = [
    "ACT_FORMATS", "KV_FORMATS", "MAX_BATCH", "MAX_CONTEXT", "MAX_PREFILL_TOKENS", "MEASURED_TRACE", "OP_CLASSES", "OP_TRACE", "OP_TRACE_META", "PHASES",
    "SCHEMAS", "SCHEMA_VERSION", "SIM_RESULT", "STATS_SOURCES", "TUNING_SUFFIX", "WEIGHT_FORMATS",
    "Column", "is_study_kernel", "check_output", "check_output_folder", "describe", "publish_folder", "reference_markdown",
    "temporary_sibling", "measured_final_rows", "read_table", "register", "validate", "write_table",
]
