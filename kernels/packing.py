"""Bit layouts of packed operands (host-side pack/unpack; kernels decode them).

Ternary weights, 2 bits each, ``int32`` words -- "byte-lane" layout
------------------------------------------------------------------
The packed axis (K for a GEMM's ``W[N, K]``; N for the sparse GEMV's
``W^T[K, N]``) is zero-padded to a multiple of ``PACK_GROUP = 128`` (so every
packed row is a whole number of 16-byte vectors) and cut into words of 16
consecutive values.  Value ``k`` of a row sits in word ``k // 16`` at::

    bits [8*b + 2*i, 8*b + 2*i + 1],   k % 16 = 4*i + b   (byte b = 0..3, field i = 0..3)

holding ``code + 1`` (0, 1, 2 for -1, 0, +1).  Why this order: one shift and
one AND, ``(word >> 2*i) & 0x03030303``, give four unsigned bytes that line
up with four consecutive int8 activations ``x[16w + 4i : 16w + 4i + 4]``,
i.e. with one aligned 32-bit word of the activation row.  The GEMV then does
a single ``dp4a`` (4 MACs) per 3 instructions and subtracts ``sum(x)`` once
(``sum x*(f-1) = sum x*f - sum x``).  The tensor-core GEMM decodes a
``[BN, BK/16]`` word tile with shifts ``2*i + 8*b`` to a ``[BN, BK/16, 4, 4]``
tile whose row-major flattening is the K order.  A 4096-wide row is 1 KiB.
Padding codes are 0 (field value 1).

The KV-cache layouts live beside their kernels: 4-bit nibbles in ``kernels/kv_attention.py``, the
dense 3-bit layout in ``kernels/kv_dense3.py``.
"""
from __future__ import annotations

import torch

PACK_GROUP = 128        # values per packing group (8 int32 words)


def _check_int8_codes(codes: torch.Tensor, name: str, lo: int, hi: int) -> None:
    if not isinstance(codes, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(codes).__name__}")
    if codes.dtype not in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8):
        raise TypeError(f"{name} must be an integer tensor, got {codes.dtype}")
    if codes.numel() == 0:
        raise ValueError(f"{name} is empty")
    if int(codes.min()) < lo or int(codes.max()) > hi:
        raise ValueError(f"{name} values must lie in [{lo}, {hi}], got [{int(codes.min())}, {int(codes.max())}]")


def _to_int32_words(w: torch.Tensor) -> torch.Tensor:
    """int64 holding unsigned 32-bit patterns -> int32 with the same bits."""
    return torch.where(w >= 2 ** 31, w - 2 ** 32, w).to(torch.int32)


def padded_len(n: int) -> int:
    """Length of a packed axis after zero-padding to whole groups."""
    return -(-int(n) // PACK_GROUP) * PACK_GROUP


def _field_shifts(device) -> torch.Tensor:
    """Bit offset of value ``k % 16 = 4*i + b`` inside its word: 8*b + 2*i."""
    i = torch.arange(4, device=device, dtype=torch.int64).view(4, 1)
    b = torch.arange(4, device=device, dtype=torch.int64).view(1, 4)
    return (8 * b + 2 * i).reshape(16)


def pack_ternary(codes: torch.Tensor) -> torch.Tensor:
    """Pack ternary codes ``[R, C]`` (values -1/0/1) along C -> int32 ``[R, ceil(C/128)*8]``."""
    _check_int8_codes(codes, "codes", -1, 1)
    if codes.dim() != 2:
        raise ValueError(f"codes must be 2-D [rows, packed axis], got shape {tuple(codes.shape)}")
    R, C = codes.shape
    Cp = padded_len(C)
    f = torch.ones(R, Cp, dtype=torch.int64, device=codes.device)
    f[:, :C] = codes.to(torch.int64) + 1
    words = (f.view(R, Cp // 16, 16) << _field_shifts(codes.device)).sum(dim=2)   # disjoint fields
    return _to_int32_words(words).contiguous()


def unpack_ternary(packed: torch.Tensor, cols: int) -> torch.Tensor:
    """Inverse of :func:`pack_ternary`: int32 ``[R, W]`` -> int8 codes ``[R, cols]``."""
    if not isinstance(packed, torch.Tensor) or packed.dtype != torch.int32 or packed.dim() != 2:
        raise TypeError("packed must be a 2-D int32 tensor")
    R, W = packed.shape
    if not 0 < cols <= W * 16 or padded_len(cols) != W * 16:
        raise ValueError(f"packed width {W} words does not match cols={cols}")
    w = (packed.to(torch.int64) & 0xFFFFFFFF).unsqueeze(-1)
    f = (w >> _field_shifts(packed.device)) & 3                                   # [R, W, 16]
    if bool((f == 3).any()):
        raise ValueError("packed ternary data holds the invalid field value 3")
    return (f - 1).reshape(R, W * 16)[:, :cols].to(torch.int8).contiguous()
