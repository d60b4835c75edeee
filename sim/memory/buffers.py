"""The SRAM weight buffer as two halves (double buffering) in simpy."""
from __future__ import annotations

import simpy


class DoubleBuffer:
    """Two buffer halves: a DMA tile load must first win a free half (``acquire``);
    the compute side frees it (``release``) after the tile's last MAC, so at most
    one tile is in flight while another is being consumed."""

    HALVES = 2

    def __init__(self, env: simpy.Environment, bytes_per_half: float):
        self.bytes_per_half = bytes_per_half
        self._free = simpy.Container(env, capacity=self.HALVES, init=self.HALVES)

    def acquire(self) -> simpy.events.Event:
        return self._free.get(1)

    def release(self) -> simpy.events.Event:
        return self._free.put(1)
