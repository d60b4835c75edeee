"""Compute arrays: systolic tiling and cycles per dataflow, operand precisions, op -> array mapping."""
from .mapping import Mapping, map_op
from .precision import HOLDERS, OPERANDS, can_run
from .systolic import folds, ideal_cycles, promotion_cycles, spatial_temporal, systolic_cycles, unpack_cycles

__all__ = ["HOLDERS", "OPERANDS", "Mapping", "can_run", "folds", "ideal_cycles", "map_op",
           "promotion_cycles", "spatial_temporal", "systolic_cycles", "unpack_cycles"]
