"""``bitsim``: one command line for the whole tool.

Each stage owns its subcommands in its own ``cli`` module, which exposes ``register(subparsers)``.
This file names them in one static table (:data:`SUBCOMMANDS`) and imports only the module of the
subcommand a user chose, so ``bitsim --help`` and ``bitsim --version`` load nothing heavy (torch,
Triton, pandas).  That ``importlib`` call is the one import the layering test cannot see, and the
one it names as an exception: it checks every module of the table instead.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import NamedTuple

from bitsim import __version__


class Subcommand(NamedTuple):
    module: str     # its register(subparsers) adds the subcommand
    help: str       # the one line of ``bitsim --help``


#: Every subcommand, in the order ``bitsim --help`` lists them.
SUBCOMMANDS: dict[str, Subcommand] = {
    "trace": Subcommand("model.cli", "write the op trace of one decode step / prefill chunk"),
    "train": Subcommand("model.cli", "train fp16 / b1.58 / a4.8 / a4.8-fp4 models; corpus; training tables"),
    "simulate": Subcommand("sim.cli", "simulate an op trace on an accelerator (writes a sim_result table)"),
    "validate": Subcommand("sim.validation.cli", "replay measured GPU kernels (or whole tokens) on the "
                                                 "simulator's GPU presets"),
    "calibrate": Subcommand("sim.validation.cli", "re-fit the GPU-kernel parameters of h100-triton "
                                                  "(or write the H200 presets)"),
    "published": Subcommand("sim.validation.cli", "compare the simulator with published accelerators"),
    "serve": Subcommand("bitsim.cli.serve", "simulate serving a request stream (batching, SLOs)"),
    "report": Subcommand("bitsim.cli.report", "run the FP16 / b1.58 / a4.8 comparison study and write the report"),
    "sweep": Subcommand("bitsim.cli.sweep", "run a design-space sweep spec (YAML) into a resumable results set"),
    "bench-kernels": Subcommand("kernels.cli", "check (bit-exact) and time the Triton kernels on a CUDA GPU"),
    "bench-tp": Subcommand("kernels.cli", "time collectives and a tensor-parallel 70B layer on the GPUs of one host"),
    "kernels": Subcommand("kernels.cli", "kernel tools that need no GPU (compile-report)"),
    "docs": Subcommand("bitsim.cli.docs", "regenerate the generated documents (tables, limits, import graph)"),
}


def _top_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = argparse.ArgumentParser(
        prog="bitsim",
        description="1-bit LLM hardware co-design: traces, kernels, simulator, reports.",
        epilog="`bitsim COMMAND --help` describes a command.")
    parser.add_argument("--version", action="version", version=f"bitsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    return parser, sub


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for ``command`` (its module imported and registered), or the listing of every command.

    The listing adds a bare entry per command (name and help line) and imports nothing.
    """
    parser, sub = _top_parser()
    if command in SUBCOMMANDS:
        module = SUBCOMMANDS[command].module
        try:
            registrar = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name and module.startswith(e.name):
                parser.error(f"{command}: this installation lacks {module}")
            raise
        registrar.register(sub)
    else:
        for name, entry in SUBCOMMANDS.items():
            sub.add_parser(name, help=entry.help)
    return parser


def chosen_command(argv: list[str]) -> str | None:
    """The subcommand ``argv`` names (its first word that is not an option), or None.

    None too when a top-level ``-h`` / ``--help`` / ``--version`` comes first: that lists every command.
    """
    for word in argv:
        if not word.startswith("-"):
            return word
        if word in ("--", "-h", "--help", "--version"):
            return None
    return None


#: Failures a user can cause and fix (bad input, a missing or unwritable file, a corrupt table). They end
#: in a one-line message and exit 2; anything else is a bug in bitsim and keeps its traceback.
EXPECTED_ERRORS = (ValueError, TypeError, KeyError, OSError, OverflowError)


def expected_errors() -> tuple[type[BaseException], ...]:
    """:data:`EXPECTED_ERRORS`, plus Arrow's errors when pyarrow is loaded (no Arrow error can occur before)."""
    pa = sys.modules.get("pyarrow")
    return EXPECTED_ERRORS + ((pa.ArrowException,) if pa is not None else ())


def error_line(command: str, e: BaseException, limit: int = 400) -> str:
    """The one line a user sees for an expected failure (the message cut to ``limit`` characters)."""
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        msg = f"{e.strerror}: {e.filename}"
    else:
        msg = str(e) or type(e).__name__
    msg = " ".join(msg.split())
    if len(msg) > limit:
        msg = msg[: limit - 3] + "..."
    return f"bitsim {command}: error: {msg}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(chosen_command(argv)).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except expected_errors() as e:
        print(error_line(args.command, e), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bitsim {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
