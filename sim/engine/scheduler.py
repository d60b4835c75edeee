"""simpy processes: DMA channel, double-buffered SRAM tiles, compute arrays, vector unit.

Hardware model (all times in integer clock cycles):

* One off-chip channel (:class:`sim.memory.OffchipChannel`) at the configured
  bandwidth; tile loads and write-backs queue on it in FIFO order, so reads
  and writes contend as on a real memory bus.
* The SRAM weight buffer has two halves (:class:`sim.memory.DoubleBuffer`):
  the DMA process must win a free half before loading a tile, and the compute
  side frees it after the tile's last MAC -- double buffering.  With
  ``prefetch_across_ops`` the DMA runs ahead into the next op's tiles while the
  current op computes; otherwise (GPU kernels) an op's loads start at its launch.
* Each compute array and the vector unit is a ``simpy.Resource``.  Ops execute
  in trace order (each consumes the previous op's output), tile by tile: wait
  for the tile's DMA, then hold the unit for the tile's share of the op's cycles.
* Output / KV write-backs are issued tile by tile, after each tile's compute, and
  overlap the following tiles and ops.

A tile is one half of the weight buffer (MBs); the folds inside a tile are
counted analytically (sim.compute), which keeps a 7B step to a few thousand events.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import simpy

from ..config import AcceleratorConfig
from ..memory import DoubleBuffer, OffchipChannel, tile_bytes
from .plan import OpPlan


@dataclass
class OpTiming:
    start: int = -1
    end: int = 0
    compute: int = 0
    memory: int = 0


@dataclass
class RunLog:
    timings: list[OpTiming]
    events: list[tuple[str, str, int, int, int]] = field(default_factory=list)  # (name, track, op, t0, dur)
    end: int = 0


def _split(total: int, parts: int) -> list[int]:
    """Split an integer into ``parts`` integers that sum to it (exactly, deterministically)."""
    return [total * (k + 1) // parts - total * k // parts for k in range(parts)]


def dma_tiles(plans: list[OpPlan], accel: AcceleratorConfig) -> list[int]:
    """DMA tile loads of each op (one weight-buffer half each): the simulation's unit of work."""
    half = tile_bytes(accel)
    return [max(1, math.ceil(p.traffic.offchip_read / half)) if p.traffic.offchip_read > 0 else 0
            for p in plans]


def schedule_ops(plans: list[OpPlan], accel: AcceleratorConfig, names: list[str],
                 on_op_done: Callable[[int], None] | None = None) -> RunLog:
    """Schedule the planned ops on the accelerator's resources; return their timings and events.

    ``on_op_done(i)`` (optional) is called when op ``i`` has issued its last tile (progress).
    """
    env = simpy.Environment()
    channel = OffchipChannel(env, accel.offchip_bytes_per_cycle)
    weights = DoubleBuffer(env, tile_bytes(accel))
    units = {a.name: simpy.Resource(env, capacity=1) for a in accel.arrays}
    units["vector"] = simpy.Resource(env, capacity=1)
    overhead = accel.op_overhead_cycles
    log = RunLog([OpTiming() for _ in plans])
    n_tiles = dma_tiles(plans, accel)
    arrived = [simpy.Store(env) for _ in plans]
    launched = [env.event() for _ in plans]

    def mark(i: int, t0: int, t1: int) -> None:
        tm = log.timings[i]
        tm.start = t0 if tm.start < 0 else min(tm.start, t0)
        tm.end = max(tm.end, t1)

    def dma_done(i: int, label: str):
        def done(t0: int, dur: int) -> None:
            log.timings[i].memory += dur
            mark(i, t0, t0 + dur)
            log.events.append((f"{names[i]} {label}", "dma", i, t0, dur))
        return done

    def loader():
        for i, p in enumerate(plans):
            if n_tiles[i] == 0:
                continue
            if not accel.prefetch_across_ops:
                yield launched[i]
            nbytes = p.traffic.offchip_read / n_tiles[i]
            for k in range(n_tiles[i]):
                yield weights.acquire()
                yield from channel.transfer(nbytes, dma_done(i, f"load {k}"))
                yield arrived[i].put(k)

    def executor():
        for i, p in enumerate(plans):
            t_launch = int(env.now)
            mark(i, t_launch, t_launch)
            if overhead:
                yield env.timeout(overhead)
                mark(i, t_launch, t_launch + overhead)
                log.events.append((f"{names[i]} launch", "launch", i, t_launch, overhead))
            launched[i].succeed()
            unit = units[p.unit]
            parts = max(n_tiles[i], 1)
            write_per_tile = p.traffic.offchip_write / parts
            for cyc in _split(p.unit_cycles, parts):
                if n_tiles[i]:
                    yield arrived[i].get()
                with unit.request() as req:
                    yield req
                    t0 = int(env.now)
                    yield env.timeout(cyc)
                log.timings[i].compute += cyc
                mark(i, t0, t0 + cyc)
                if cyc:
                    log.events.append((names[i], p.unit, i, t0, cyc))
                if n_tiles[i]:
                    yield weights.release()
                if write_per_tile > 0:  # this tile's outputs drain while the next tile computes
                    env.process(channel.transfer(write_per_tile, dma_done(i, "write")))
            if on_op_done is not None:
                on_op_done(i)

    env.process(loader())
    env.process(executor())
    env.run()
    log.end = int(env.now)
    return log
