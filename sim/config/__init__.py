"""Accelerator description: YAML -> typed, validated, frozen dataclasses.

``load_yaml`` is the project's one strict, bounded YAML loader (``contract.config``),
re-exported here for the callers that read accelerator files.
"""
from .accelerator import (
                          COMPARISONS,
                          DATAFLOWS,
                          ENERGY_BASES,
                          LIMITS,
                          POLICIES,
                          PRESET_DIR,
                          PRESETS,
                          STATIC_MODELS,
                          WEIGHT_RESIDENCIES,
                          AcceleratorConfig,
                          ArrayConfig,
                          OffchipConfig,
                          PEOp,
                          SparsityConfig,
                          SramConfig,
                          VectorConfig,
                          check_resident_weights,
                          field_help,
                          from_dict,
                          load_accelerator,
                          load_yaml,
)

__all__ = ["COMPARISONS", "DATAFLOWS", "ENERGY_BASES", "LIMITS", "POLICIES", "PRESET_DIR", "PRESETS", "STATIC_MODELS",
           "WEIGHT_RESIDENCIES", "AcceleratorConfig", "ArrayConfig", "OffchipConfig", "PEOp", "SparsityConfig",
           "SramConfig", "VectorConfig", "check_resident_weights", "field_help", "from_dict", "load_accelerator",
           "load_yaml"]
