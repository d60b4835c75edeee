"""Input checks shared by every kernel launcher.

A launcher calls these before it launches anything, so that a wrong dtype, shape, device,
memory layout or index becomes a clear ``TypeError``/``ValueError`` naming the argument instead
of a crash, an out-of-bounds read or silent garbage inside a kernel.

Two kinds of check:

* **shape checks** (dtype, shape, device, contiguity, config values) look at metadata only and
  always run;
* **content checks** (NaN/inf in a float input, packed field values, index lists, counts) read
  the tensor and synchronise with the GPU.  They run by default; ``with content_checks(False):``
  turns them off for a scope (the benchmark times kernels that way, like the cuBLAS baselines,
  which check nothing either, and a CUDA-graph capture cannot synchronise).  The switch is a
  ``contextvars.ContextVar``: scoped to the ``with`` block and the current thread.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)

_CONTENT_CHECKS: contextvars.ContextVar[bool] = contextvars.ContextVar("kernels_content_checks", default=True)


@contextlib.contextmanager
def content_checks(enabled: bool) -> Iterator[None]:
    """Turn the content checks (NaN/inf scans, index and field-value checks) on or off in a scope."""
    token = _CONTENT_CHECKS.set(bool(enabled))
    try:
        yield
    finally:
        _CONTENT_CHECKS.reset(token)


def content_checks_enabled() -> bool:
    """True unless inside ``content_checks(False)``."""
    return _CONTENT_CHECKS.get()


def check_tensor(t: object, name: str, dtypes: tuple[torch.dtype, ...], dim: int | None = None,
                 device: torch.device | None = None, contiguous: bool = True) -> torch.Tensor:
    """Check one tensor argument's type, dtype, rank, size, device and layout; return it unchanged."""
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


def check_finite(t: torch.Tensor, name: str) -> None:
    """Raise ValueError if a float tensor holds NaN or inf (a content check)."""
    if content_checks_enabled() and t.is_floating_point() and not bool(torch.isfinite(t.float()).all()):
        raise ValueError(f"{name} contains NaN or inf")


def check_shape(t: torch.Tensor, name: str, shape: tuple[int, ...]) -> None:
    """Raise ValueError unless ``t.shape == shape``."""
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(t.shape)}")


def check_device_usable(t: torch.Tensor, name: str) -> None:
    """Kernels run on CUDA, or on CPU tensors under TRITON_INTERPRET=1."""
    if t.device.type == "cuda":
        return
    if t.device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1":
        return
    raise ValueError(f"{name} is on {t.device}: Triton kernels need a CUDA tensor "
                     "(or CPU tensors with TRITON_INTERPRET=1)")


def check_index_list(index: torch.Tensor, count: torch.Tensor, bound: int, name: str,
                     count_name: str) -> int:
    """Check that the first ``count`` entries of ``index`` are distinct integers in ``[0, bound)``.

    ``count`` is a one-element int tensor (on the device); it must lie in ``[0, bound]`` and fit
    ``index``.  A content check: returns the count (or -1 when content checks are off).
    """
    if not content_checks_enabled():
        return -1
    n = int(count.reshape(-1)[0])
    flat = index.reshape(-1)
    if not 0 <= n <= min(bound, flat.numel()):
        raise ValueError(f"{count_name}={n} must lie in [0, {min(bound, flat.numel())}]")
    live = flat[:n].long()
    if n:
        lo, hi = int(live.min()), int(live.max())
        if lo < 0 or hi >= bound:
            raise ValueError(f"{name} holds indices outside [0, {bound}): min {lo}, max {hi}")
        if int(torch.unique(live).numel()) != n:
            raise ValueError(f"{name} repeats an index among its first {count_name}={n} entries")
    return n


def next_pow2(n: int) -> int:
    """Smallest power of two >= n (n >= 1)."""
    return 1 << max(0, (int(n) - 1).bit_length())
