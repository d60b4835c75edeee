"""``bitsim``: one command line for the whole tool.

Each stage owns its subcommands in its own ``cli`` module, which exposes
``register(subparsers)``; this file only gathers them.
"""
from __future__ import annotations

import argparse
import importlib
import sys

import pyarrow as pa

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


#: Failures a user can cause and fix (bad input, a missing or unwritable file, a corrupt table). They end
#: in a one-line message and exit 2; anything else is a bug in bitsim and keeps its traceback.
EXPECTED_ERRORS = (ValueError, TypeError, KeyError, OSError, OverflowError, pa.ArrowException)


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
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EXPECTED_ERRORS as e:
        print(error_line(args.command, e), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bitsim {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
