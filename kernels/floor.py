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


@triton.jit
def _floor_reread_kernel(src_ptr, out_ptr, n, BLOCK: tl.constexpr):
    # every program reads all of src, starting at a chunk of its own so that the programs' first loads do not
    # all hit the same L2 lines at once; only the first program to touch a line reads it from DRAM
    pid = tl.program_id(0)
    chunks = tl.cdiv(n, BLOCK)
    acc = tl.zeros((BLOCK,), dtype=tl.int32)
    for i in range(0, chunks):
        c = (pid + i) % chunks
        offs = c.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        acc += tl.load(src_ptr + offs, mask=offs < n, other=0)
    tl.store(out_ptr + pid, tl.sum(acc, axis=0))


def floor_reread(src: torch.Tensor, programs: int, out: torch.Tensor | None = None, *,
                 block: int = 2048) -> torch.Tensor:
    """Read all of ``src`` from each of ``programs`` programs; returns each program's wrapping int32 sum
    (``[programs]``, all equal).

    This is the operand traffic of a tiled GEMM whose every output tile re-reads the same activation rows: the
    DRAM bytes are ``src``'s once, the bytes moved from the L2 to the SMs ``programs`` times ``src``'s, so the
    time over several program counts gives the rate at which the L2 feeds re-reads to the SMs."""
    check_tensor(src, "src", (torch.int32,))
    check_device_usable(src, "src")
    if isinstance(block, bool) or not isinstance(block, int) or block < 16 or block & (block - 1):
        raise ValueError(f"block must be a power of two >= 16, got {block!r}")
    if isinstance(programs, bool) or not isinstance(programs, int) or programs < 1:
        raise ValueError(f"programs must be a positive int, got {programs!r}")
    if out is None:
        out = torch.empty(programs, device=src.device, dtype=torch.int32)
    elif out.dtype != torch.int32 or out.numel() < programs or out.device != src.device:
        raise ValueError(f"out must be an int32 tensor of at least {programs} elements on {src.device}")
    _floor_reread_kernel[(programs,)](src, out, src.numel(), BLOCK=block, num_warps=8)
    return out


def floor_reread_reference(src: torch.Tensor, programs: int) -> torch.Tensor:
    """The sums :func:`floor_reread` returns: the wrapping int32 sum of all of ``src``, once per program."""
    total = int(src.reshape(-1).cpu().to(torch.int64).sum())
    wrapped = ((total + 2 ** 31) % 2 ** 32) - 2 ** 31
    return torch.full((programs,), wrapped, dtype=torch.int32)
