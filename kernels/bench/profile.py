"""Where a 7B block prefill's time goes, kernel by kernel (section ``profile``).

The block prefill rows of the ``block`` section give one wall time per datapath.  The simulator replays
that block from its ops; when the two disagree the wall time alone cannot say which op is missing.  Here
the same eager prefill (``KernelBlock.forward`` of 2,048 tokens at position 0) runs under torch.profiler
and every CUDA kernel it launches is listed with its calls and device time per forward, beside the wall
time of the same call (``time_us``, L2 flushed): wall minus the kernels' sum is the host's share
(launch gaps the device sits idle).

Rows are notes of the run log (``what`` = "prefill profile"), one per datapath, with the kernels sorted
by device time; :func:`kernel_table` aggregates profiler events and is what the tests check.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from kernels.bench.harness import MeasurementLog, time_us
from kernels.block import LLAMA7B, KernelBlock

PROFILE_DATAPATHS = ("fp16", "b1.58", "a4.8")
PROFILE_CALLS = 3           # forwards under the profiler; per-forward figures are their mean


def kernel_table(events: Iterable[tuple[str, float]], calls: int) -> list[dict]:
    """``[{kernel, launches, us}]`` per forward from ``(kernel name, device µs)`` events of ``calls`` forwards,
    slowest first; memcpy / memset events are kept (they occupy the device too) under their own names."""
    if calls <= 0:
        raise ValueError(f"calls must be a positive count of profiled forwards, got {calls}")
    acc: dict[str, list[float]] = {}
    for name, us in events:
        if us < 0:
            raise ValueError(f"kernel {name!r}: negative device time {us}")
        a = acc.setdefault(str(name), [0.0, 0.0])
        a[0] += 1
        a[1] += float(us)
    rows = [dict(kernel=k, launches=n / calls, us=t / calls) for k, (n, t) in acc.items()]
    return sorted(rows, key=lambda r: -r["us"])


def device_events(fn: Callable[[], object], calls: int = PROFILE_CALLS) -> list[tuple[str, float]]:
    """``(name, device µs)`` of every CUDA event of ``calls`` calls of ``fn`` (one warm call first)."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    return [(str(e.name), float(e.time_range.elapsed_us())) for e in prof.events()
            if e.device_type == torch.autograd.DeviceType.CUDA]


def prefill_profile_section(log: MeasurementLog, prefill: int = 2048, datapaths=PROFILE_DATAPATHS,
                            top: int = 40) -> None:
    """One note per datapath: the wall time of its block prefill and the kernels it runs (``top`` slowest)."""
    g = torch.Generator(device="cuda").manual_seed(11)
    xp = torch.randn(1, prefill, LLAMA7B.d_model, device="cuda", dtype=torch.float16, generator=g)
    for dp in datapaths:
        blk = KernelBlock(dp, 1, prefill + 1, tuned=log.tuned)
        blk.record = False
        fn = lambda blk=blk: blk.forward(xp, 0)   # noqa: E731 - the call profiled and timed
        table = kernel_table(device_events(fn), PROFILE_CALLS)
        wall = time_us(fn, rep_ms=150)
        busy = sum(r["us"] for r in table)
        log.note(what="prefill profile", datapath=dp, M=prefill, wall_us=round(wall.median, 2),
                 kernels_us=round(busy, 2), launches=round(sum(r["launches"] for r in table), 2),
                 host_share=round(1.0 - busy / wall.median, 4) if wall.median > 0 else None,
                 kernels=[dict(r, us=round(r["us"], 2)) for r in table[:top]])
        del blk
        torch.cuda.empty_cache()
