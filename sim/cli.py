"""``bitsim simulate``: run an op trace through an accelerator preset or YAML."""
from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "simulate", help="simulate an op trace on an accelerator (writes a sim_result table)",
        description="Simulate an op trace (op_trace table, .parquet or .csv) on an accelerator "
                    "preset (fp16, b1.58, a4.8, edge, h100-like, h100-triton) or a YAML file.  "
                    "Ops that run on a wider PE pair than their operands (no native pair) are "
                    "named in one warning line on stderr and in the summary's fallback_ops.")
    p.add_argument("--trace", required=True, help="op trace table (.parquet or .csv)")
    p.add_argument("--accel", required=True, help="preset name or accelerator YAML path")
    p.add_argument("-o", "--out", required=True, help="per-op results (.parquet or .csv)")
    p.add_argument("--timeline", default=None, help="optional Chrome trace-event JSON (Perfetto)")
    p.add_argument("--summary", default=None, help="optional JSON file for the per-token summary")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from bitsim.tables import read_table, write_table

    from .simulate import fallback_warning, simulate

    trace = read_table(args.trace, schema="op_trace")
    res = simulate(trace, args.accel, timeline=args.timeline)
    meta = {**res.ops.attrs, "summary": res.summary}
    write_table(res.ops, args.out, "sim_result", meta=meta)
    if args.summary:
        with open(args.summary, "w") as f:
            json.dump(res.summary, f, indent=2)
    s = res.summary
    warning = fallback_warning(s)
    if warning:
        print(warning, file=sys.stderr)
    print(f"{s['accelerator']}: {s['phase']} {s['tokens']} token(s), {s['latency_s'] * 1e3:.3f} ms, "
          f"{s['tokens_per_s']:.1f} tok/s, {s['energy_j_per_token'] * 1e3:.3f} mJ/token -> {args.out}")
    return 0
