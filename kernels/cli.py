"""``bitsim bench-kernels``: check and time the Triton kernels on a CUDA GPU."""
from __future__ import annotations

import argparse

from kernels.bench.driver import build_parser, run_benchmark


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench-kernels`` subcommand (``bitsim.cli`` gathers every stage's ``register``)."""
    p = subparsers.add_parser(
        "bench-kernels", help="check (bit-exact) and time the Triton kernels on a CUDA GPU",
        description="Checks every kernel against model.quant on LLaMA-7B shapes and times it next to cuBLAS "
                    "FP16/INT8/FP8, torch SDPA, a plain read kernel of the same bytes and the fp16 torch block, "
                    "in one run; measures board energy; writes measured_trace and board_energy tables (Parquet + "
                    "CSV), a JSON log and summary.txt to --out. Needs a CUDA GPU.")
    build_parser(p)
    p.set_defaults(func=run_benchmark)
