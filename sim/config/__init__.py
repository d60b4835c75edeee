"""Accelerator description: YAML -> typed, validated, frozen dataclasses."""
from .accelerator import (COMPARISONS, DATAFLOWS, POLICIES, PRESET_DIR, PRESETS, AcceleratorConfig,
                          ArrayConfig, OffchipConfig, PEOp, SparsityConfig, SramConfig, VectorConfig,
                          from_dict, load_accelerator)

__all__ = ["COMPARISONS", "DATAFLOWS", "POLICIES", "PRESET_DIR", "PRESETS", "AcceleratorConfig",
           "ArrayConfig", "OffchipConfig", "PEOp", "SparsityConfig", "SramConfig", "VectorConfig",
           "from_dict", "load_accelerator"]
