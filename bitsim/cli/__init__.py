"""``bitsim``: one command line for the whole tool.

Each stage owns its subcommands in its own ``cli`` module, which exposes
``register(subparsers)``; this file only gathers them.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# (module, what it adds) -- each module defines register(subparsers).
SUBCOMMAND_MODULES = (
    "model.cli",      # trace
    "sim.cli",        # simulate
    "bitsim.cli.report",  # report, sweep
    "kernels.cli",    # bench-kernels
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bitsim",
        description="1-bit LLM hardware co-design: traces, kernels, simulator, reports.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, KeyError) as e:
        print(f"bitsim {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
