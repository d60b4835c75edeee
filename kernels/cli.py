"""Command line of the kernels stage: ``bitsim bench-kernels``, ``bench-tp`` and ``kernels compile-report``."""
from __future__ import annotations

import argparse

from kernels.bench import compile_report, tensor_parallel
from kernels.bench.driver import build_parser, run_benchmark


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``bench-kernels`` and ``kernels compile-report`` (``bitsim.cli`` gathers every stage's ``register``)."""
    p = subparsers.add_parser(
        "bench-kernels", help="check (bit-exact) and time the Triton kernels on a CUDA GPU",
        description="Checks every kernel against model.quant on LLaMA-7B shapes and times it next to cuBLAS "
                    "FP16/INT8/FP8, torch's INT4 weight-only GEMM, torch SDPA, a plain read kernel of the same "
                    "bytes and the fp16 torch block, in one run; measures board energy; writes measured_trace and "
                    "board_energy tables (Parquet + CSV), a JSON log and summary.txt to --out. Needs a CUDA GPU.")
    build_parser(p)
    p.set_defaults(func=run_benchmark)
    t = subparsers.add_parser(
        "bench-tp", help="time collectives and a 70B-shaped tensor-parallel decode step on the GPUs of one host",
        description=tensor_parallel.__doc__.split("\n\n")[0])
    tensor_parallel.add_arguments(t)
    t.set_defaults(func=lambda a: tensor_parallel.run_from_args(a, ["bitsim", "bench-tp"]))
    k = subparsers.add_parser("kernels", help="kernel tools that need no GPU (compile-report)",
                              description="Kernel tools that need no GPU.")
    ksub = k.add_subparsers(dest="kernels_command", metavar="KERNELS_COMMAND")
    ksub.required = True
    c = ksub.add_parser("compile-report", help="compile the kernels for sm_90 and print registers, spills and "
                                               "instruction counts (no GPU needed)",
                        description=compile_report.__doc__.splitlines()[0])
    compile_report.build_parser(c)
    c.set_defaults(func=compile_report.run)
