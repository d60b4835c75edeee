"""Short labels the report's tables and figures share, so one quantity reads the same everywhere."""
from __future__ import annotations


def context_label(context: int) -> str:
    """A context length as the report prints it: 512, 2k, 32k (whole multiples of 1024 in k)."""
    c = int(context)
    return f"{c // 1024}k" if c >= 1024 and c % 1024 == 0 else str(c)
