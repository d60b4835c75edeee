"""Self-resetting ticket counters for kernels whose last program of a group finishes the group.

A program adds 1 to its group's counter when its part is stored; the one that reads ``count - 1``
back combines the parts and sets the counter to 0 again.  The counters are therefore zero between
launches, so each buffer is zeroed once, when it is made, and kept for the life of the process (a
CUDA graph captured with it keeps its address).  Launches that share a buffer must not overlap:
issue them on one stream.  Each user names itself (``owner``), so two ticket sets used in one launch
(the persistent step's sparse GEMV and attention) never share a buffer of the same size.
"""
from __future__ import annotations

import torch

_TICKETS: dict[tuple[str, str, int], torch.Tensor] = {}


def ticket_counters(device: torch.device | str, n: int, owner: str) -> torch.Tensor:
    """``n`` int32 counters of ``owner`` on ``device``, zero at every launch boundary (module docstring)."""
    if n <= 0:
        raise ValueError(f"ticket_counters needs a positive count, got {n}")
    key = (owner, str(device), n)
    if key not in _TICKETS:
        _TICKETS[key] = torch.zeros(n, dtype=torch.int32, device=device)
    return _TICKETS[key]
