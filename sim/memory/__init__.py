"""Memory hierarchy: bytes each op moves (traffic), the off-chip DMA channel and the
double-buffered SRAM weight buffer (simpy pieces the engine composes)."""
from .buffers import DoubleBuffer
from .channel import OffchipChannel
from .traffic import Traffic, fold_reads, matmul_traffic, tile_bytes, vector_traffic

__all__ = ["DoubleBuffer", "OffchipChannel", "Traffic", "fold_reads", "matmul_traffic", "tile_bytes", "vector_traffic"]
