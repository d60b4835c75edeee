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
* Zero skipping is causal: a skipping op's surviving-row list exists only after
  its producer (the op computing its activations) has finished, and building it
  takes ``index_cycles``; its loads cannot start earlier, whatever the
  fetch-ahead.  Its scattered rows hold the channel ``1 / read_efficiency`` times
  as long as a stream of the same bytes.  ``read_efficiency`` also carries an op's
  occupancy share (``occupancy_limited_reads``: an op on few of a GPU's SMs reads at
  their share of the bandwidth, the rest of the bus idle meanwhile).
* Memory latency (``offchip.latency_ns``) is hidden while the DMA streams: requests
  for the next tiles are issued while earlier ones are in flight.  Whenever the
  stream breaks -- the run starts, an op's loads wait for its launch or for its
  producer -- the first transfer after the break waits the latency once.
* A dense weight stream on an array with a kernel ramp for its operand (``arrays[].stream_ramp_ns``)
  waits that ramp after the latency, before its first byte moves.
* Every op pays ``op_overhead_ns`` (dispatch and synchronisation) before it starts; each glue launch
  of an op (``OpPlan.glue_launches``: the casts and elementwise kernels eager software adds) pays
  ``op_overhead_ns`` + ``offchip.latency_ns`` more, in series.
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
    run = _Run(plans, accel, names, on_op_done)
    run.env.process(run.loader())
    run.env.process(run.executor())
    run.env.run()
    run.log.end = int(run.env.now)
    return run.log


class _Run:
    """One simulation's resources and its two processes: the DMA loader and the in-order executor."""

    def __init__(self, plans: list[OpPlan], accel: AcceleratorConfig, names: list[str],
                 on_op_done: Callable[[int], None] | None):
        self.plans, self.accel, self.names, self.on_op_done = plans, accel, names, on_op_done
        self.env = env = simpy.Environment()
        self.channel = OffchipChannel(env, accel.offchip_bytes_per_cycle)
        self.weights = DoubleBuffer(env, tile_bytes(accel))
        self.units = {a.name: simpy.Resource(env, capacity=1) for a in accel.arrays}
        self.units["vector"] = simpy.Resource(env, capacity=1)
        self.log = RunLog([OpTiming() for _ in plans])
        self.n_tiles = dma_tiles(plans, accel)
        self.arrived = [simpy.Store(env) for _ in plans]
        self.launched = [env.event() for _ in plans]
        self.finished = [env.event() for _ in plans]
        self.latency = int(math.ceil(accel.offchip.latency_ns * accel.clock_ghz))

    def mark(self, i: int, t0: int, t1: int) -> None:
        tm = self.log.timings[i]
        tm.start = t0 if tm.start < 0 else min(tm.start, t0)
        tm.end = max(tm.end, t1)

    def dma_done(self, i: int, label: str) -> Callable[[int, int], None]:
        def done(t0: int, dur: int) -> None:
            self.log.timings[i].memory += dur
            self.mark(i, t0, t0 + dur)
            self.log.events.append((f"{self.names[i]} {label}", "dma", i, t0, dur))
        return done

    def _wait_for_rows(self, i: int, p: OpPlan):
        """A skipping op's loads wait for its producer, then for the surviving-row list to be built."""
        yield self.finished[p.producer]
        t0 = int(self.env.now)
        if p.index_cycles:
            yield self.env.timeout(p.index_cycles)
            self.log.events.append((f"{self.names[i]} index", "index", i, t0, p.index_cycles))

    def loader(self):
        env, last_end = self.env, -1           # last_end: when the DMA stream last moved bytes
        for i, p in enumerate(self.plans):
            if self.n_tiles[i] == 0:
                continue
            if not self.accel.prefetch_across_ops:
                yield self.launched[i]
            if p.producer >= 0:
                yield from self._wait_for_rows(i, p)
            if self.latency and env.now > last_end:     # the stream broke: the first request waits the latency
                self.log.events.append((f"{self.names[i]} latency", "dma", i, int(env.now), self.latency))
                yield env.timeout(self.latency)
            if p.ramp_cycles:                           # the kernel's own ramp before its stream flows
                self.log.events.append((f"{self.names[i]} ramp", "dma", i, int(env.now), p.ramp_cycles))
                yield env.timeout(p.ramp_cycles)
            bus_bytes = p.traffic.offchip_read / self.n_tiles[i] / p.read_efficiency
            for k in range(self.n_tiles[i]):
                yield self.weights.acquire()
                yield from self.channel.transfer(bus_bytes, self.dma_done(i, f"load {k}"))
                last_end = int(env.now)
                yield self.arrived[i].put(k)

    def _launch(self, i: int, p: OpPlan):
        t_launch = int(self.env.now)
        self.mark(i, t_launch, t_launch)
        overhead = (0 if p.fused else self.accel.op_overhead_cycles)
        overhead += p.glue_launches * (self.accel.op_overhead_cycles + self.latency)
        if overhead:
            yield self.env.timeout(overhead)
            self.mark(i, t_launch, t_launch + overhead)
            self.log.events.append((f"{self.names[i]} launch", "launch", i, t_launch, overhead))
        self.launched[i].succeed()

    def executor(self):
        env = self.env
        for i, p in enumerate(self.plans):
            yield from self._launch(i, p)
            tiles = self.n_tiles[i]
            write_per_tile = p.traffic.offchip_write / max(tiles, 1)
            for cyc in _split(p.unit_cycles, max(tiles, 1)):
                if tiles:
                    yield self.arrived[i].get()
                with self.units[p.unit].request() as req:
                    yield req
                    t0 = int(env.now)
                    yield env.timeout(cyc)
                self.log.timings[i].compute += cyc
                self.mark(i, t0, t0 + cyc)
                if cyc:
                    self.log.events.append((self.names[i], p.unit, i, t0, cyc))
                if tiles:
                    yield self.weights.release()
                if write_per_tile > 0:  # this tile's outputs drain while the next tile computes
                    env.process(self.channel.transfer(write_per_tile, self.dma_done(i, "write")))
            self.finished[i].succeed()
            if self.on_op_done is not None:
                self.on_op_done(i)
