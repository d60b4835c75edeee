"""The validation jobs as functions, and their ``bitsim`` subcommands (``register(subparsers)``).

* ``validate``: replay measured kernel calls on a preset (:func:`compare_tables`), or with
  ``--whole-token`` replay the measured whole-token and block rows (:func:`sim.validation.whole_token_table`).
* ``calibrate``: re-fit ``h100-triton`` (:func:`calibrate_preset`); with ``--h200`` write ``h200-like`` /
  ``h200-triton`` and the cross-GPU held-out table (:func:`cross_gpu`).
* ``published``: the published-chip comparison (:func:`sim.validation.published.validate_published`).

Default inputs are the committed tables, found from this package's location (not the working folder).
"""
from __future__ import annotations

import argparse
import copy
from pathlib import Path

import pandas as pd

from contract import check_output, read_table, write_table
from contract.io import write_text_atomic

from ..config import from_dict
from . import crossgpu
from .calibrate import NAME, fit, to_yaml
from .gpus import GPU_PRESETS, gpu_presets
from .heldout import validation_table
from .published import bar_counts, table_markdown, validate_published
from .replay import H100_L2_BYTES, H100_MEASURED, MEASURED_DIR, compare_measured, load_anchors
from .whole_token import WHOLE_OPS, whole_token_table


def compare_tables(paths: "list[str | Path]", accel: str = "h100-like",
                   flush_dirty_bytes: float = H100_L2_BYTES) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Replay measured tables (default: the committed H100 anchor rows) on one preset: (per row, per class)."""
    tables = [read_table(p, schema="measured_trace") for p in paths] or [load_anchors()]
    return compare_measured(pd.concat(tables, ignore_index=True), accel, flush_dirty_bytes=flush_dirty_bytes)


def _shown(path: "str | Path") -> str:
    """A path as written into generated files: relative to the repository when inside it, else its name."""
    p = Path(path).resolve()
    root = MEASURED_DIR.parents[1]
    return str(p.relative_to(root)) if p.is_relative_to(root) else p.name


def _check_yaml_out(path: "str | Path | None", flag: str, inputs: "list[str | Path]", force: bool) -> None:
    if path is None:
        return
    if Path(path).suffix != ".yaml":
        raise ValueError(f"{flag} must end in .yaml, got {Path(path).name!r}")
    check_output(path, inputs=inputs, force=force)


def calibrate_preset(measured: "str | Path", out: "str | Path | None" = None,
                     force: bool = False) -> tuple[dict, pd.DataFrame]:
    """Fit ``h100-triton`` to a measured table; write the preset to ``out`` (if given).

    Returns (the preset as a YAML dict, the per-class table of its calibration and held-out rows).
    """
    _check_yaml_out(out, "-o", [measured], force)
    table = read_table(measured, schema="measured_trace")
    raw = fit(table, source=_shown(measured))
    if out is not None:
        write_text_atomic(to_yaml(raw, _shown(measured)), out)
    _, per_class = validation_table(table, fitted=from_dict(copy.deepcopy(raw), where=NAME))
    return raw, per_class


def cross_gpu(measured_h200: "str | Path", h100: "str | Path" = H100_MEASURED, out: "str | Path | None" = None,
              triton_out: "str | Path | None" = None, table: "str | Path | None" = None,
              force: bool = False, h100_current: "str | Path | None" = crossgpu.H100_CURRENT) -> pd.DataFrame:
    """Write ``h200-like`` (``out``) and ``h200-triton`` (``triton_out``) from the measured H200 table with
    the kernel parameters fitted on the H100 table (and the FP8 promotion cost on ``h100_current``, the H100 table
    of the kernels the H200 ran, when that file exists); return (and write to ``table``) the cross-GPU
    per-class held-out table (``sim_validation``)."""
    current = Path(h100_current) if h100_current is not None and Path(h100_current).is_file() else None
    inputs = [measured_h200, h100] + ([current] if current else [])
    _check_yaml_out(out, "-o", inputs, force)
    _check_yaml_out(triton_out, "--triton-out", inputs + ([out] if out else []), force)
    if table is not None:
        check_output(table, inputs=inputs, force=force)
    h200_rows = read_table(measured_h200, schema="measured_trace")
    h100_rows = read_table(h100, schema="measured_trace")
    current_rows = read_table(current, schema="measured_trace") if current else None
    raw = crossgpu.h200_like_raw(h200_rows)
    if out is not None:
        write_text_atomic(crossgpu.to_yaml(raw, _shown(measured_h200)), out)
    if triton_out is not None:
        triton = crossgpu.h200_triton(h100_rows, raw, h200_rows, current_rows)
        fitted_on = _shown(h100) + (f" and {_shown(current)} (FP8 promotion)" if current else "")
        write_text_atomic(crossgpu.triton_yaml(triton, fitted_on), triton_out)
    _, per_class = crossgpu.cross_gpu_table(h100_rows, h200_rows, current_rows)
    if table is not None:
        per_class.attrs = {"command": f"bitsim calibrate --h200 {_shown(measured_h200)}",
                           "fitted_on": _shown(h100) + (f", {_shown(current)}" if current else ""),
                           "predicted": _shown(measured_h200)}
        write_table(per_class, table, "sim_validation")
    return per_class


def _show(df: pd.DataFrame) -> None:
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(df.round(4).to_string(index=False))


def _current_presets(measured: pd.DataFrame) -> tuple[dict | None, dict | None]:
    """The presets of the current kernels for H100 rows (derived from the committed H100 tables,
    :func:`crossgpu.h100_current_presets`); (None, None) otherwise: the committed presets of the rows' GPU."""
    gpus = set(measured.loc[measured["op"].isin(WHOLE_OPS), "gpu"].astype(str))
    if not gpus or any(gpu_presets(g) != GPU_PRESETS["H100"] for g in gpus):
        return None, None
    current = pd.concat([read_table(p, schema="measured_trace") for p in crossgpu.H100_CURRENT_TABLES],
                        ignore_index=True)
    print(f"H100 rows: presets of the current kernels, derived from {_shown(H100_MEASURED)} and "
          f"{', '.join(_shown(p) for p in crossgpu.H100_CURRENT_TABLES)}, the GEMV rate from "
          f"{', '.join(_shown(p) for p in crossgpu.H100_SERVING_TABLES)} (no block or token row)")
    serving = pd.concat([read_table(p, schema="measured_trace") for p in crossgpu.H100_SERVING_TABLES],
                        ignore_index=True)
    floors = pd.concat([read_table(p, schema="measured_trace") for p in crossgpu.H100_FLOOR_TABLES], ignore_index=True)
    return crossgpu.h100_current_presets(read_table(H100_MEASURED, schema="measured_trace"), current, serving, floors)


def _run_validate(args: argparse.Namespace) -> int:
    if args.whole_token:
        paths = args.measured or [crossgpu.H200_MEASURED]
        measured = pd.concat([read_table(p, schema="measured_trace") for p in paths], ignore_index=True)
        rows = whole_token_table(measured, *_current_presets(measured))
        if args.table:
            check_output(args.table, inputs=paths, force=args.force)
            rows.attrs = {"command": "bitsim validate --whole-token " + " ".join(_shown(p) for p in paths)}
            write_table(rows, args.table, "sim_whole_token")
            print(f"wrote {args.table}")
        _show(rows.drop(columns=["mechanism"]))
        return 0
    rows, per_class = compare_tables(args.measured, args.accel, args.flush_dirty_bytes)
    _show(rows[["class", "kernel", "M", "N", "K", "measured_us", "sim_us", "rel_error", "bound", "skipped"]])
    print()
    _show(per_class)
    return 0


def _run_calibrate(args: argparse.Namespace) -> int:
    if args.h200:
        per_class = cross_gpu(args.h200, h100=args.measured or H100_MEASURED, out=args.out,
                              triton_out=args.triton_out, table=args.table, force=args.force,
                              h100_current=args.h100_current)
        for p in (args.out, args.triton_out, args.table):
            if p:
                print(f"wrote {p}")
        _show(per_class)
        return 0
    raw, per_class = calibrate_preset(args.measured or H100_MEASURED, out=args.out, force=args.force)
    print(f"wrote {args.out}" if args.out else to_yaml(raw, _shown(args.measured or H100_MEASURED)))
    for k, v in raw["calibration"].items():
        print(f"{k}: {v}")
    _show(per_class)
    return 0


def _run_published(args: argparse.Namespace) -> int:
    if args.out is not None:
        if Path(args.out).suffix != ".csv":
            raise ValueError(f"-o/--out must end in .csv, got {Path(args.out).name!r}")
        check_output(args.out, force=args.force)
    table, fitted = validate_published()
    print(table_markdown(table))
    _show(bar_counts(table))
    if fitted is not None:
        print()
        for k, v in fitted.provenance.items():
            print(f"{k}: {v}")
    if args.out is not None:
        write_text_atomic(table.to_csv(index=False), args.out)
        print(f"wrote {args.out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``validate``, ``calibrate`` and ``published`` to the ``bitsim`` command line."""
    v = subparsers.add_parser(
        "validate", help="replay measured GPU kernels (or whole tokens) on the simulator's GPU presets",
        description="Per measured kernel call: simulated vs measured time and the MAPE per class "
                    "(default: the committed H100 anchor rows on h100-like).  --whole-token: every measured "
                    "whole-token and block row on the H200 presets, nothing fitted to them.")
    v.add_argument("measured", nargs="*", help="measured_trace tables (parquet or csv)")
    v.add_argument("--accel", default="h100-like", help="preset or YAML the kernel calls are replayed on")
    v.add_argument("--flush-dirty-bytes", type=float, default=H100_L2_BYTES,
                   help="dirty bytes the timing harness's L2 flush leaves behind (0: no write flush)")
    v.add_argument("--whole-token", action="store_true",
                   help="replay the whole-token and block rows (default table: the committed H200 one)")
    v.add_argument("--table", help="with --whole-token: also write the rows (sim_whole_token) here")
    v.add_argument("--force", action="store_true", help="replace an existing --table")
    v.set_defaults(func=_run_validate)

    c = subparsers.add_parser(
        "calibrate", help="re-fit the GPU-kernel parameters of h100-triton (or write the H200 presets)",
        description="Fit h100-triton's launch, host-gap and unpack parameters on the calibration rows of a "
                    "measured H100 table and print the held-out MAPE per class.  --h200 TABLE: write "
                    "h200-like / h200-triton and print the cross-GPU held-out error (fitted on the H100).")
    c.add_argument("measured", nargs="?", help="measured H100 table (default: the committed one)")
    c.add_argument("--h200", help="measured H200 table: cross-GPU mode")
    c.add_argument("-o", "--out", help="write the preset (h100-triton, or h200-like with --h200) here, .yaml")
    c.add_argument("--triton-out", help="with --h200: also write h200-triton here, .yaml")
    c.add_argument("--table", help="with --h200: also write the per-class held-out table here")
    c.add_argument("--h100-current", default=crossgpu.H100_CURRENT,
                   help="with --h200: H100 table of the kernels the H200 ran, for the FP8 promotion cost "
                        "(default: the committed one; skipped when the file is absent)")
    c.add_argument("--force", action="store_true", help="replace existing outputs")
    c.set_defaults(func=_run_calibrate)

    p = subparsers.add_parser(
        "published", help="compare the simulator with published accelerators (theirs vs ours)",
        description="Every figure of sim/data/published_chips.csv reproduced on its preset: theirs, ours, "
                    "error, within the 25 %% bar, with the source.")
    p.add_argument("-o", "--out", help="write the table as CSV (atomic)")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.set_defaults(func=_run_published)
