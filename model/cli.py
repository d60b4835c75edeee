"""``bitsim trace`` (op trace of one model step) and ``bitsim train`` (training runs, corpus, tables).

Also runnable without the rest of the tool, e.g. on a GPU machine that lacks the
simulator's dependencies: ``python -m model.cli train run ...``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from contract import PHASES, check_output, write_table
from contract.config import check_number, parse_yaml
from model.checkpoint import MAX_HELDOUT_SEQUENCES, load_checkpoint
from model.config import DATAPATHS, LM_HEAD_BITS, PRESETS, get_config
from model.corpus import STDLIB, build_corpus, eval_starts, read_stream, windows
from model.trace import PROFILES, activated_params, build_trace, check_workload
from model.train import Exporter, TrainConfig, check_train_paths, load_plan, plan_configs, run_plan
from model.training_report import write_training_tables
from model.zero_batch import BATCH_RULES


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_trace(subparsers)
    _register_train(subparsers)


# ------------------------------------------------------------------ trace
def _register_trace(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "trace", help="write the op trace of one decode step / prefill chunk",
        description="Op trace (schema op_trace) of a whole model: one row per operator call, "
                    "with measured activation sparsity. Output format by suffix: .parquet or .csv. "
                    "With --checkpoint the statistics come from a trained model run on held-out text.")
    p.add_argument("--model", default=None,
                   help=f"preset ({', '.join(PRESETS)}) or a model-config .yaml file; with --checkpoint "
                        "and no --model: the checkpoint's own shape")
    p.add_argument("--datapath", default=None, choices=DATAPATHS,
                   help="required unless --checkpoint gives it")
    p.add_argument("--phase", default="decode", choices=PHASES)
    p.add_argument("--context", type=int, default=2048,
                   help="KV length after the step (keys attended by the last new token)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--prefill-tokens", type=int, default=None,
                   help="new tokens of a prefill chunk (default: context)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", default="measured", choices=PROFILES,
                   help="measured statistics, or the a4.8 paper's Table 2 projection sparsity")
    p.add_argument("--batch-rule", default=None, choices=BATCH_RULES,
                   help="with --profile paper-table2 / trained: how the sparsity becomes row_skip at M rows: "
                        "beta (default; fitted cross-row correlation of zeros, reports/data/zero_correlation_fit.csv)"
                        " or independent (sparsity**M, a lower bound)")
    p.add_argument("--layers-measured", type=int, default=1,
                   help="full-width random blocks run to measure statistics")
    p.add_argument("--checkpoint", default=None,
                   help="trained inference checkpoint (bitsim train; e.g. reports/data/checkpoints/a4.8-s0.pt)")
    p.add_argument("--heldout", default=None,
                   help="with --checkpoint: a text file or folder to measure on instead of the "
                        "checkpoint's stored validation sequences")
    p.add_argument("--heldout-pattern", default="*.py", help="with --heldout on a folder: the files read")
    p.add_argument("--heldout-sequences", type=int, default=32,
                   help="with --heldout: number of evenly spaced windows taken from the text")
    p.add_argument("--q-bits", type=int, default=None, choices=(3, 4),
                   help="quantize the query fed to Q.K^T (4 with a4.8's 3-bit KV = the paper's configuration); "
                        "default FP16 Q")
    p.add_argument("--lm-head-bits", type=int, default=None, choices=LM_HEAD_BITS,
                   help="LM-head weights: 16 = FP16 (default), 8 = INT8, 4 = INT4 (INT8 activations)")
    p.add_argument("-o", "--output", required=True, help="output table (.parquet or .csv)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.set_defaults(func=run_trace)


def _heldout_windows(path: str, pattern: str, seq_len: int, n_seq: int) -> torch.Tensor:
    """Evenly spaced BOS-first windows over all the text under ``path``."""
    stream = read_stream(path, pattern)
    if stream.numel() < seq_len + 1:
        raise ValueError(f"--heldout: {path} holds {stream.numel()} bytes, fewer than one sequence "
                         f"({seq_len + 1})")
    return windows(stream, eval_starts(stream.numel(), n_seq, seq_len), seq_len)


def run_trace(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    if args.checkpoint is None and (args.model is None or args.datapath is None):
        raise ValueError("--model and --datapath are required (or give --checkpoint)")
    if args.heldout is not None and args.checkpoint is None:
        raise ValueError("--heldout needs --checkpoint")
    check_number(args.heldout_sequences, "--heldout-sequences", integer=True, lo=1, hi=MAX_HELDOUT_SEQUENCES)
    # everything is checked before any work, and the output before anything is written (docs/limits.md)
    if Path(args.output).suffix not in (".parquet", ".csv"):
        raise ValueError(f"-o: the output must end in .parquet or .csv, got {Path(args.output).name!r}")
    model_file = args.model if args.model and str(args.model).endswith((".yaml", ".yml")) else None
    for what, p in (("checkpoint", args.checkpoint), ("model config", model_file), ("--heldout text", args.heldout)):
        if p is not None and not Path(p).exists():     # a dangling or looping symlink too
            loop = " (a symlink that does not resolve)" if Path(p).is_symlink() else ""
            raise FileNotFoundError(f"no such {what}: {p}{loop}")
    check_output(args.output, inputs=[args.checkpoint, model_file, args.heldout], force=args.force)
    check_workload(args.phase, args.context, args.batch, args.prefill_tokens)
    knobs = {k: v for k, v in (("q_bits", args.q_bits), ("lm_head_bits", args.lm_head_bits)) if v is not None}
    if knobs and args.model is None:
        raise ValueError("--q-bits / --lm-head-bits need --model (a checkpoint's own shape keeps its numerics)")
    model = get_config(args.model, args.datapath, **knobs) if knobs else args.model
    ck = load_checkpoint(args.checkpoint) if args.checkpoint else None
    heldout, label = None, "held-out validation"
    if args.heldout is not None:
        heldout = _heldout_windows(args.heldout, args.heldout_pattern, ck.heldout.shape[1] - 1,
                                   args.heldout_sequences)
        label = f"user text ({Path(args.heldout).name})"
    df = build_trace(model, args.datapath, phase=args.phase, context=args.context,
                     batch=args.batch, seed=args.seed, profile=args.profile,
                     prefill_tokens=args.prefill_tokens, layers_measured=args.layers_measured,
                     checkpoint=ck, heldout=heldout, heldout_label=label, batch_rule=args.batch_rule)
    path = write_table(df, args.output, "op_trace")
    a = activated_params(df)
    print(f"{path}: {len(df)} ops, {df.attrs['preset']} {df.attrs['datapath']} {args.phase}, "
          f"{df.attrs['stats_source']} statistics, "
          f"overall projection sparsity {a['overall_sparsity']:.1%}, activated "
          f"{a['activated_params'] / 1e9:.3g}B of {a['total_params'] / 1e9:.3g}B params "
          f"({time.perf_counter() - t0:.1f} s)")
    return 0


# ------------------------------------------------------------------ train
def _register_train(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train fp16 / b1.58 / a4.8 / a4.8-fp4 models; corpus; training tables",
        description="Training of the reference decoder on text that needs no download "
                    "(docs/training.md).")
    sub = p.add_subparsers(dest="train_command", metavar="ACTION")
    sub.required = True

    r = sub.add_parser("run", help="train one or several runs in turn (resumable)",
                       description="Runs are TrainConfig field sets (model/train.py): from --plan "
                                   "(YAML: base + runs), or from --datapaths x --seeds. A run whose "
                                   "result exists is skipped; one with a saved state resumes.")
    r.add_argument("--plan", default=None, help="plan YAML: 'base:' TrainConfig fields, 'runs:' a list")
    r.add_argument("--config", default=None, help="TrainConfig YAML used as the base of every run")
    r.add_argument("--datapaths", default=None, help="comma list, e.g. fp16,b1.58,a4.8,a4.8-fp4")
    r.add_argument("--seeds", default="0", help="comma list of seeds (with --datapaths)")
    r.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a base field (YAML value), e.g. --set steps=20 --set model=tiny")
    r.add_argument("--out", required=True, help="folder of the runs (<out>/<run>/...)")
    r.add_argument("--fit-seconds", type=float, default=None,
                   help="choose the step count of all runs so the plan fits this many seconds")
    r.add_argument("--time-budget", type=float, default=None,
                   help="stop (saving state) when this call has run this many seconds")
    r.add_argument("--export", default=None,
                   help="also gather results.json and checkpoint tars into this folder after each run")
    r.set_defaults(func=run_train)

    c = sub.add_parser("corpus", help="build the corpus and print its manifest (size, sha256)")
    c.add_argument("--corpus", default=STDLIB, help="'stdlib' (default) or a text file / folder")
    c.add_argument("--val-percent", type=float, default=5.0)
    c.set_defaults(func=run_corpus)

    t = sub.add_parser("tables", help="training tables, trained profiles and figures from finished runs",
                       description="Reads results.json files (or run folders) and inference "
                                   "checkpoints; measures the trained sparsity profiles on the "
                                   "checkpoints' held-out text on the CPU; writes training_*.csv, "
                                   "trained_*.csv and the figures.")
    t.add_argument("--results", nargs="+", required=True,
                   help="results.json files (from --export) or run folders with result.json")
    t.add_argument("--checkpoints", required=True, help="folder of <run>.pt inference checkpoints")
    t.add_argument("-o", "--output", required=True, help="output folder (e.g. reports/data)")
    t.add_argument("--note", default=None, help="how the runs were made (the training command), "
                                                      "recorded in the tables' metadata")
    t.add_argument("--force", action="store_true", help="replace tables and figures that exist in the output folder")
    t.set_defaults(func=run_tables)


def _base_fields(args: argparse.Namespace) -> dict:
    base: dict = {}
    if args.config:
        base.update(TrainConfig.from_yaml(args.config).to_dict())
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set: expected FIELD=VALUE, got {item!r}")
        base[key.strip()] = parse_yaml(value, where=f"--set {key}")
    return base


def run_train(args: argparse.Namespace) -> int:
    if args.plan and args.datapaths:
        raise ValueError("give --plan or --datapaths, not both")
    if args.plan:
        cfgs = load_plan(args.plan)
        base = _base_fields(args)
        if base:
            cfgs = [c.replace(**base) for c in cfgs]
    elif args.datapaths:
        dps = [d.strip() for d in args.datapaths.split(",") if d.strip()]
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            raise ValueError(f"--seeds: comma list of integers, got {args.seeds!r}") from None
        cfgs = plan_configs(_base_fields(args), [dict(datapath=d, seed=s) for s in seeds for d in dps],
                            where="--datapaths/--seeds")
    else:
        raise ValueError("give --plan or --datapaths")

    def log(msg: str) -> None:
        print(msg, flush=True)

    check_train_paths(cfgs, args.out, args.export, inputs=[args.plan, args.config])   # before any work
    exporter = Exporter(args.export) if args.export else None
    results = run_plan(cfgs, args.out, time_budget_s=args.time_budget, fit_seconds=args.fit_seconds,
                       log=log, on_done=exporter)
    print("\nrun                   status  steps   tokens      val loss  bits/byte  tok/s")
    for res in results:
        if res.get("status") == "done":
            print(f"{res['name']:<21} done   {res['steps']:>6} {res['tokens']:>10.3g}  "
                  f"{res['final']['val_loss']:.4f}    {res['final']['val_bpb']:.4f}   {res['tokens_per_s']:.3g}")
        else:
            print(f"{res['name']:<21} {res.get('status')} at step {res.get('step')}")
    return 0 if all(r.get("status") == "done" for r in results) and len(results) == len(cfgs) else 3


def run_corpus(args: argparse.Namespace) -> int:
    c = build_corpus(args.corpus, args.val_percent)
    print(json.dumps(c.manifest, indent=1))
    return 0


def run_tables(args: argparse.Namespace) -> int:
    written = write_training_tables(args.results, args.checkpoints, args.output, command=args.note,
                                    force=args.force)
    for p in written:
        print(p)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m model.cli``: the model's subcommands alone."""
    parser = argparse.ArgumentParser(prog="python -m model.cli")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    register(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, KeyError, OSError, OverflowError) as e:   # expected failures: one line
        print(f"{args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
