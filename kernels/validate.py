"""Input checks shared by every kernel launcher.

A launcher calls these before it launches anything, so that a wrong dtype,
shape, device or memory layout becomes a clear ``TypeError``/``ValueError``
naming the argument instead of a crash (or silent garbage) inside a kernel.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def check_tensor(t: object, name: str, dtypes: tuple[torch.dtype, ...], dim: int | None = None,
                 device: torch.device | None = None, contiguous: bool = True) -> torch.Tensor:
    """Validate one tensor argument; return it unchanged."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in dtypes:
        raise TypeError(f"{name} must have dtype in {[str(d) for d in dtypes]}, got {t.dtype}")
    if dim is not None and t.dim() != dim:
        raise ValueError(f"{name} must be {dim}-D, got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)})")
    if device is not None and t.device != device:
        raise ValueError(f"{name} is on {t.device}, expected {device} (all operands on one device)")
    if contiguous and not t.is_contiguous():
        raise ValueError(f"{name} must be contiguous (call .contiguous() first)")
    return t


_FINITE_CHECKS = [True]


@contextlib.contextmanager
def finite_checks(enabled: bool) -> Iterator[None]:
    """Turn the NaN/inf scan of float inputs on or off inside a ``with`` block.

    The scan reads the whole tensor and synchronises with the GPU (so it
    cannot run inside a CUDA-graph capture); the benchmark turns it off while
    timing, like the cuBLAS baselines, which check nothing either.
    """
    old = _FINITE_CHECKS[0]
    _FINITE_CHECKS[0] = bool(enabled)
    try:
        yield
    finally:
        _FINITE_CHECKS[0] = old


def check_finite(t: torch.Tensor, name: str) -> None:
    """Raise ValueError if a float tensor holds NaN or inf (skipped inside ``finite_checks(False)``)."""
    if _FINITE_CHECKS[0] and t.is_floating_point() and not bool(torch.isfinite(t.float()).all()):
        raise ValueError(f"{name} contains NaN or inf")


def check_shape(t: torch.Tensor, name: str, shape: tuple[int, ...]) -> None:
    """Raise ValueError unless ``t.shape == shape``."""
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(t.shape)}")


def check_device_usable(t: torch.Tensor, name: str) -> None:
    """Kernels run on CUDA, or on CPU tensors under TRITON_INTERPRET=1."""
    import os

    if t.device.type == "cuda":
        return
    if t.device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1":
        return
    raise ValueError(f"{name} is on {t.device}: Triton kernels need a CUDA tensor "
                     "(or CPU tensors with TRITON_INTERPRET=1)")


def next_pow2(n: int) -> int:
    """Smallest power of two >= n (n >= 1)."""
    return 1 << max(0, (int(n) - 1).bit_length())
