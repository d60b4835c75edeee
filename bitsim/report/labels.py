"""Short labels the report's tables and figures share, so one quantity reads the same everywhere."""
from __future__ import annotations


def context_label(context: int) -> str:
    """A context length as the report prints it: 512, 2k, 32k (whole multiples of 1024 in k)."""
    c = int(context)
    return f"{c // 1024}k" if c >= 1024 and c % 1024 == 0 else str(c)


def run_name(source: str) -> str:
    """The short name of a measuring run from its file: 'h200' for 'measured_h200_kernels.parquet',
    'h100 #2' for 'measured_h100_kernels2.parquet', 'h100 serving' for 'measured_h100_serving.csv'."""
    stem = str(source).rsplit("/", 1)[-1].removeprefix("measured_").rsplit(".", 1)[0]
    gpu, _, rest = stem.partition("_")
    rest = rest.removeprefix("kernels")
    if rest.isdigit():
        return f"{gpu} #{rest}"
    return f"{gpu} {rest.strip('_')}".strip()
