"""``floor_read``: a kernel that only streams bytes from memory -- the floor a memory-bound kernel meets.

Every decode kernel here reads a buffer (packed weights, KV codes) once.  How fast a *single
kernel launch* can read B bytes on this GPU, launch and ramp-up included, is measured by this
kernel: each program loads ``BLOCK`` int32 words (16-byte vector loads, all issued at once) and
writes one word (their wrapping sum, so the loads cannot be dropped).  Timed in the same run and
the same way (a CUDA graph over rotating copies) as the GEMV of the same bytes, it says how much
of a GEMV's time is the kernel's own work and how much any single launch costs.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.checks import check_device_usable, check_tensor


@triton.jit
def _floor_read_kernel(src_ptr, out_ptr, n, BLOCK: tl.constexpr, PDL: tl.constexpr):
    pid = tl.program_id(0)
    if PDL:
        tl.extra.cuda.gdc_wait()
        tl.extra.cuda.gdc_launch_dependents()
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(src_ptr + offs, mask=offs < n, other=0)
    tl.store(out_ptr + pid, tl.sum(x, axis=0))


def floor_read(src: torch.Tensor, out: torch.Tensor | None = None, *, block: int = 8192,
               pdl: bool = False) -> torch.Tensor:
    """Read every 32-bit word of ``src`` once; returns one int32 sum per program (``[cdiv(n, block)]``)."""
    check_tensor(src, "src", (torch.int32,))
    check_device_usable(src, "src")
    if isinstance(block, bool) or not isinstance(block, int) or block < 16 or block & (block - 1):
        raise ValueError(f"block must be a power of two >= 16, got {block!r}")
    n = src.numel()
    grid = triton.cdiv(n, block)
    if out is None:
        out = torch.empty(grid, device=src.device, dtype=torch.int32)
    elif out.dtype != torch.int32 or out.numel() < grid or out.device != src.device:
        raise ValueError(f"out must be an int32 tensor of at least {grid} elements on {src.device}")
    pdl = bool(pdl) and src.device.type == "cuda"
    opts = dict(launch_pdl=True) if pdl else {}
    _floor_read_kernel[(grid,)](src, out, n, BLOCK=block, PDL=pdl, num_warps=8, **opts)
    return out


def floor_read_reference(src: torch.Tensor, block: int = 8192) -> torch.Tensor:
    """The per-program wrapping int32 sums :func:`floor_read` returns (CPU, int64 then wrapped)."""
    flat = src.reshape(-1).cpu().to(torch.int64)
    pad = (-flat.numel()) % block
    sums = torch.nn.functional.pad(flat, (0, pad)).view(-1, block).sum(dim=1)
    sums = ((sums + 2 ** 31) % 2 ** 32) - 2 ** 31
    return sums.to(torch.int32)
