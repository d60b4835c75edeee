"""The off-chip memory channel as a simpy resource: one transfer at a time, FIFO."""
from __future__ import annotations

import math
from typing import Callable, Generator

import simpy


class OffchipChannel:
    """Bandwidth-limited DMA channel shared by tile loads and write-backs.

    A transfer of ``nbytes`` holds the channel for ``ceil(nbytes / bytes_per_cycle)``
    cycles; requests queue in FIFO order, so reads and writes contend as on a
    real memory bus.  ``on_done(t0, cycles)`` is called when a transfer ends.
    """

    def __init__(self, env: simpy.Environment, bytes_per_cycle: float):
        self.env = env
        self.bytes_per_cycle = bytes_per_cycle
        self._bus = simpy.Resource(env, capacity=1)

    def cycles(self, nbytes: float) -> int:
        return int(math.ceil(nbytes / self.bytes_per_cycle))

    def transfer(self, nbytes: float, on_done: Callable[[int, int], None]) -> Generator:
        """simpy process body: wait for the channel, move the bytes, report."""
        with self._bus.request() as req:
            yield req
            t0 = int(self.env.now)
            dur = self.cycles(nbytes)
            yield self.env.timeout(dur)
        on_done(t0, dur)
