"""Accelerator description: YAML -> typed, validated, frozen dataclasses."""
from .accelerator import (COMPARISONS, DATAFLOWS, ENERGY_BASES, POLICIES, PRESET_DIR, PRESETS, AcceleratorConfig,
                          ArrayConfig, OffchipConfig, PEOp, SparsityConfig, SramConfig, VectorConfig,
                          from_dict, load_accelerator, load_yaml)

__all__ = ["COMPARISONS", "DATAFLOWS", "ENERGY_BASES", "POLICIES", "PRESET_DIR", "PRESETS", "AcceleratorConfig",
           "ArrayConfig", "OffchipConfig", "PEOp", "SparsityConfig", "SramConfig", "VectorConfig",
           "from_dict", "load_accelerator", "load_yaml"]
