"""``bitsim simulate``: run an op trace through an accelerator preset or YAML.

Inputs are checked before anything runs (the trace by :func:`sim.load_trace`, the accelerator
by its loader); outputs are checked before the simulation too: an output that is one of the
inputs, or two outputs on one path, is refused; an existing output needs ``--force``; every
output is written atomically (a temporary sibling renamed into place).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from contract import write_table
from contract.io import resolved_path, write_json_atomic

from .config import PRESETS
from .simulate import fallback_warning, simulate, summary_table
from .trace_io import load_trace

TABLE_SUFFIXES = (".parquet", ".csv")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``simulate`` to the ``bitsim`` command line."""
    p = subparsers.add_parser(
        "simulate", help="simulate an op trace on an accelerator (writes a sim_result table)",
        description="Simulate an op trace (op_trace table, .parquet or .csv) on an accelerator "
                    "preset (fp16, b1.58, a4.8, edge, h100-like, h100-triton) or a YAML file.  "
                    "Ops that run on a wider PE pair than their operands (no native pair) are "
                    "named in one warning line on stderr and in the summary's fallback_ops.  "
                    "Outputs never overwrite an input; an existing output needs --force.")
    p.add_argument("--trace", required=True, help="op trace table (.parquet or .csv)")
    p.add_argument("--accel", required=True, help="preset name or accelerator YAML path")
    p.add_argument("-o", "--out", required=True, help="per-op results (.parquet or .csv)")
    p.add_argument("--timeline", default=None, help="optional Chrome trace-event JSON (Perfetto)")
    p.add_argument("--summary", default=None,
                   help="optional per-step summary: .json (nested) or .parquet / .csv (sim_summary table)")
    p.add_argument("--force", action="store_true", help="replace outputs that already exist")
    p.set_defaults(func=_run)


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return resolved_path(a) == resolved_path(b)


def check_outputs(inputs: dict[str, Path], outputs: dict[str, Path], force: bool) -> None:
    """Refuse outputs that are inputs, that collide, that are folders, or that exist (unless ``force``)."""
    for oname, o in outputs.items():
        for iname, i in inputs.items():
            if _same_file(o, i):
                raise ValueError(f"{oname} {o} is the {iname} input; refusing to overwrite an input")
    names = list(outputs)
    for k, a in enumerate(names):
        for b in names[k + 1:]:
            if _same_file(outputs[a], outputs[b]):
                raise ValueError(f"{a} and {b} are the same file ({outputs[a]}); give each output its own path")
    for oname, o in outputs.items():
        if o.is_dir():
            raise ValueError(f"{oname} {o} is a folder; give a file path")
        if o.exists() and not force:
            raise ValueError(f"{oname} {o} exists; pass --force to replace it")


def _run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix not in TABLE_SUFFIXES:
        raise ValueError(f"-o/--out must end in .parquet or .csv, got {out.name!r}")
    outputs = {"-o/--out": out}
    if args.timeline:
        outputs["--timeline"] = Path(args.timeline)
        if outputs["--timeline"].suffix != ".json":
            raise ValueError(f"--timeline must end in .json, got {outputs['--timeline'].name!r}")
    if args.summary:
        outputs["--summary"] = Path(args.summary)
        if outputs["--summary"].suffix not in (".json",) + TABLE_SUFFIXES:
            raise ValueError(f"--summary must end in .json, .parquet or .csv, got {outputs['--summary'].name!r}")
    inputs = {"--trace": Path(args.trace)}
    if args.accel not in PRESETS:
        inputs["--accel"] = Path(args.accel)
    check_outputs(inputs, outputs, args.force)

    trace = load_trace(args.trace)
    res = simulate(trace, args.accel, timeline=args.timeline, progress=lambda line: print(line, file=sys.stderr))
    s = res.summary
    meta = {**res.ops.attrs, "summary": s.to_dict()}
    write_table(res.ops, out, "sim_result", meta=meta)
    if args.summary:
        path = outputs["--summary"]
        if path.suffix == ".json":
            write_json_atomic(s.to_dict(), path, indent=2)
        else:
            write_table(summary_table([s]), path, "sim_summary")
    warning = fallback_warning(s)
    if warning:
        print(warning, file=sys.stderr)
    if not s.fits_offchip:
        print(f"warning: INFEASIBLE: {s.infeasible_reason}", file=sys.stderr)
    print(f"{s.accelerator}: {s.phase} {s.tokens} token(s), {s.latency_s * 1e3:.3f} ms, "
          f"{s.tokens_per_s:.1f} tok/s, {s.energy_j_per_token * 1e3:.3f} mJ/token, {s.area_mm2:.1f} mm2, "
          f"{s.power_w:.1f} W{'' if s.fits_offchip else ' (INFEASIBLE)'} -> {args.out}")
    return 0
