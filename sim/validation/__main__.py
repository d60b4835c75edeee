"""``python -m sim.validation [MEASURED ...]``: per-row errors and MAPE per kernel class;
``python -m sim.validation calibrate MEASURED [-o OUT.yaml --force]``: re-fit ``h100-triton``;
``python -m sim.validation h200 MEASURED_H200 [-o OUT.yaml --force]``: write ``h200-like``, print the
cross-GPU held-out error (fitted on the H100, predicting the H200)."""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import pandas as pd

from contract import check_output, read_table, write_table

from ..config import from_dict
from ..files import write_text_atomic
from . import crossgpu
from .calibrate import NAME, fit, to_yaml
from .heldout import validation_table
from .replay import H100_L2_BYTES, compare_measured, load_anchors


def compare_main(argv: list[str]) -> int:
    """Replay measured tables (default: the anchor rows) on one preset; print rows and MAPE per class."""
    ap = argparse.ArgumentParser(prog="python -m sim.validation", description=compare_main.__doc__)
    ap.add_argument("measured", nargs="*", help="measured_trace tables (default: sim/data/h100_anchors.csv)")
    ap.add_argument("--accel", default="h100-like")
    ap.add_argument("--flush-dirty-bytes", type=float, default=H100_L2_BYTES)
    args = ap.parse_args(argv)
    tables = [read_table(p, schema="measured_trace") for p in args.measured] or [load_anchors()]
    rows, per_class = compare_measured(pd.concat(tables, ignore_index=True), args.accel,
                                       flush_dirty_bytes=args.flush_dirty_bytes)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(rows[["class", "kernel", "M", "N", "K", "measured_us", "sim_us", "rel_error", "bound", "skipped"]]
              .round(3).to_string(index=False))
        print()
        print(per_class.round(4).to_string(index=False))
    return 0


def calibrate_main(argv: list[str]) -> int:
    """Fit h100-triton to a measured table, write the preset, print the held-out MAPE per class."""
    ap = argparse.ArgumentParser(prog="python -m sim.validation calibrate", description=calibrate_main.__doc__)
    ap.add_argument("measured", help="measured_trace table (parquet or csv)")
    ap.add_argument("-o", "--out", default=None, help=f"write the preset here (e.g. sim/presets/{NAME}.yaml)")
    ap.add_argument("--force", action="store_true", help="replace OUT if it exists (e.g. the committed preset)")
    args = ap.parse_args(argv)
    if args.out and Path(args.out).resolve() == Path(args.measured).resolve():
        raise ValueError(f"-o {args.out} is the measured input; refusing to overwrite an input")
    if args.out and Path(args.out).suffix != ".yaml":
        raise ValueError(f"-o must end in .yaml, got {Path(args.out).name!r}")
    if args.out and Path(args.out).exists() and not args.force:
        raise ValueError(f"-o {args.out} exists; pass --force to replace it")
    table = read_table(args.measured, schema="measured_trace")
    raw = fit(table, source=str(args.measured))
    text = to_yaml(raw, str(args.measured))
    if args.out:
        write_text_atomic(text, args.out)
        print(f"wrote {args.out}")
    else:
        print(text)
    for k, v in raw["calibration"].items():
        print(f"{k}: {v}")
    _, per_class = validation_table(table, fitted=from_dict(copy.deepcopy(raw), where=NAME))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(per_class.round(4).to_string(index=False))
    return 0


def h200_main(argv: list[str]) -> int:
    """Write h200-like from a measured H200 table and print the cross-GPU held-out MAPE per class."""
    ap = argparse.ArgumentParser(prog="python -m sim.validation h200", description=h200_main.__doc__)
    ap.add_argument("measured", help="measured_trace table of the H200 (parquet or csv)")
    ap.add_argument("--h100", default="reports/data/measured_h100_kernels.parquet",
                    help="measured_trace table of the H100 the kernel parameters are fitted on")
    ap.add_argument("-o", "--out", default=None, help="write h200-like here (e.g. sim/presets/h200-like.yaml)")
    ap.add_argument("--force", action="store_true", help="replace OUT if it exists")
    ap.add_argument("--triton-out", default=None,
                    help="also write h200-triton (h200-like + the kernel parameters fitted on the H100) here")
    ap.add_argument("--table", default=None,
                    help="also write the per-class held-out table (sim_validation) here, .csv or .parquet")
    args = ap.parse_args(argv)
    if args.table:
        check_output(args.table, inputs=[args.measured, args.h100], force=args.force)
    if args.out and Path(args.out).suffix != ".yaml":
        raise ValueError(f"-o must end in .yaml, got {Path(args.out).name!r}")
    if args.out and Path(args.out).exists() and not args.force:
        raise ValueError(f"-o {args.out} exists; pass --force to replace it")
    h200 = read_table(args.measured, schema="measured_trace")
    h100 = read_table(args.h100, schema="measured_trace")
    raw = crossgpu.h200_like_raw(h200)
    if args.out:
        write_text_atomic(crossgpu.to_yaml(raw, str(args.measured)), args.out)
        print(f"wrote {args.out}")
    if args.triton_out:
        if Path(args.triton_out).suffix != ".yaml":
            raise ValueError(f"--triton-out must end in .yaml, got {Path(args.triton_out).name!r}")
        check_output(args.triton_out, inputs=[args.measured, args.h100, args.out], force=args.force)
        write_text_atomic(crossgpu.triton_yaml(crossgpu.h200_triton(h100, raw), str(args.h100)), args.triton_out)
        print(f"wrote {args.triton_out}")
    _, per_class = crossgpu.cross_gpu_table(h100, h200)
    if args.table:
        per_class.attrs = {"command": "python -m sim.validation h200 " + " ".join(argv),
                           "fitted_on": str(args.h100), "predicted": str(args.measured)}
        write_table(per_class, args.table, "sim_validation")
        print(f"wrote {args.table}")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(per_class.round(4).to_string(index=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["calibrate"]:
            return calibrate_main(argv[1:])
        if argv[:1] == ["h200"]:
            return h200_main(argv[1:])
        return compare_main(argv)
    except (ValueError, FileNotFoundError) as e:
        print(f"python -m sim.validation: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
