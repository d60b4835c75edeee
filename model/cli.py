"""``bitsim trace``: write the op trace of one model step (see ``model.trace``)."""
from __future__ import annotations

import argparse
import time

from bitsim.tables import PHASES, write_table
from model.config import DATAPATHS, PRESETS
from model.trace import PROFILES, activated_params, build_trace


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "trace", help="write the op trace of one decode step / prefill chunk",
        description="Op trace (schema op_trace) of a whole model: one row per operator call, "
                    "with measured activation sparsity. Output format by suffix: .parquet or .csv.")
    p.add_argument("--model", required=True,
                   help=f"preset ({', '.join(PRESETS)}) or a model-config .yaml file")
    p.add_argument("--datapath", required=True, choices=DATAPATHS)
    p.add_argument("--phase", default="decode", choices=PHASES)
    p.add_argument("--context", type=int, default=2048,
                   help="KV length after the step (keys attended by the last new token)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--prefill-tokens", type=int, default=None,
                   help="new tokens of a prefill chunk (default: context)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", default="measured", choices=PROFILES,
                   help="measured statistics, or the a4.8 paper's Table 2 projection sparsity")
    p.add_argument("--layers-measured", type=int, default=1,
                   help="full-width random blocks run to measure statistics")
    p.add_argument("-o", "--output", required=True, help="output table (.parquet or .csv)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    df = build_trace(args.model, args.datapath, phase=args.phase, context=args.context,
                     batch=args.batch, seed=args.seed, profile=args.profile,
                     prefill_tokens=args.prefill_tokens, layers_measured=args.layers_measured)
    path = write_table(df, args.output, "op_trace")
    a = activated_params(df)
    print(f"{path}: {len(df)} ops, {df.attrs['preset']} {args.datapath} {args.phase}, "
          f"overall projection sparsity {a['overall_sparsity']:.1%}, activated "
          f"{a['activated_params'] / 1e9:.3g}B of {a['total_params'] / 1e9:.3g}B params "
          f"({time.perf_counter() - t0:.1f} s)")
    return 0
