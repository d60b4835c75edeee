"""``bitsim bench-kernels``: check and time the Triton kernels on a CUDA GPU."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from kernels.benchmark import build_parser

    p = subparsers.add_parser(
        "bench-kernels", help="check (bit-exact) and time the Triton kernels on a CUDA GPU",
        description="Checks every kernel against model.quant on LLaMA-7B shapes and times it next to "
                    "cuBLAS FP16/INT8/FP8, gemlite and torch SDPA in one run; writes a measured_trace "
                    "table (Parquet + CSV) and a JSON log to --out. Needs a CUDA GPU.")
    build_parser(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kernels.benchmark import run as bench_run

    return bench_run(args)
