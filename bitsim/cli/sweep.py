"""``bitsim sweep``: run a design-space sweep spec into a resumable results set, and plot its Pareto front."""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from bitsim.experiments.pareto import pareto_mask, plot_pareto
from bitsim.experiments.sweep import load_spec, run_sweep
from contract import check_output
from contract.io import atomic_path


def register(subparsers: argparse._SubParsersAction) -> None:
    s = subparsers.add_parser(
        "sweep", help="run a design-space sweep spec (YAML) into a resumable Parquet results set",
        description="Every (workload x accelerator-parameter) point of SPEC is simulated, in parallel, and "
                    "written as soon as it finishes to RESULTS (a folder of one Parquet file per point). "
                    "Rerunning skips finished points, so an interrupted sweep resumes.")
    s.add_argument("spec", help="sweep spec YAML (see bitsim.experiments.sweep / docs/report.md)")
    s.add_argument("-o", "--output", required=True, help="results set (folder), e.g. results.parquet")
    s.add_argument("--workers", type=int, help="local processes / LocalCluster workers (default: CPU count)")
    s.add_argument("--backend", choices=("process", "dask", "serial"), default="process")
    s.add_argument("--scheduler", help="Dask scheduler address (tcp://host:8786); implies --backend dask")
    s.add_argument("--pareto", metavar="FIGURE",
                   help="also plot tokens/s vs J/token coloured by chip area, with the Pareto front of the points "
                        "that fit the chip's memory (the others marked x), to FIGURE (.png, .pdf or .svg), and "
                        "write its points beside it as FIGURE's name with .csv (feasible, infeasible_reason, "
                        "pareto columns)")
    s.add_argument("--force", action="store_true", help="replace an existing --pareto figure and its table")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=run_sweep_cmd)


#: Columns of the table written beside a ``--pareto`` figure (those the results have), then every hw.<knob>.
PARETO_COLUMNS = ("point_id", "preset", "datapath", "phase", "context", "batch", "profile", "tokens_per_s",
                  "energy_j_per_token", "area_mm2", "weight_bytes", "kv_bytes", "capacity_bytes", "feasible",
                  "infeasible_reason", "pareto")


def pareto_objectives(df) -> tuple[dict[str, str], str | None]:
    """The front's objectives and the colour column: tokens/s up, J/token down, and the chip's whole area
    (``area_mm2``, the area the report uses) down when the sweep changes it."""
    objectives = {"tokens_per_s": "max", "energy_j_per_token": "min"}
    if "area_mm2" in df.columns and df["area_mm2"].nunique() > 1:
        objectives["area_mm2"] = "min"
        return objectives, "area_mm2"
    return objectives, None


def pareto_table(df):
    """The points of a sweep with their feasibility and whether each is on the Pareto front (feasible only)."""
    objectives, _ = pareto_objectives(df)
    ok = df["feasible"].astype(bool)
    out = df.assign(pareto=False)
    out.loc[ok[ok].index, "pareto"] = pareto_mask(df[ok], objectives)
    cols = [c for c in PARETO_COLUMNS if c in out.columns] + sorted(c for c in out.columns if c.startswith("hw."))
    return out[cols].sort_values(["feasible", "pareto", "tokens_per_s"], ascending=False, ignore_index=True)


def plot_sweep(df, spec_name: str, path: str) -> None:
    """tokens/s vs J/token of every point, coloured by chip area, with the Pareto front of the points that fit
    the chip's memory; the others are crosses. Written atomically to ``path`` (format from its suffix)."""
    import matplotlib
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    objectives, color = pareto_objectives(df)
    objectives = {("energy_mj_per_token" if k == "energy_j_per_token" else k): v for k, v in objectives.items()}
    ax = plot_pareto(df.assign(energy_mj_per_token=df["energy_j_per_token"] * 1e3), "tokens_per_s",
                     "energy_mj_per_token", objectives, color=color,
                     xlabel="decode tokens/s (all sequences of the batch)" if set(df["phase"]) == {"decode"}
                     else "tokens/s", ylabel="energy per token (mJ)", color_label="chip area (mm², whole chip)",
                     logx=True, logy=True, feasible="feasible",
                     infeasible_label="weights + KV cache exceed the chip's memory")
    n_out = int((~df["feasible"].astype(bool)).sum())
    ax.set_title(f"sweep {spec_name}: {len(df)} points" + (f", {n_out} infeasible" if n_out else ""))
    try:
        with atomic_path(path) as tmp:
            ax.figure.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", dpi=150, bbox_inches="tight")
    finally:
        plt.close(ax.figure)


def write_pareto_table(df, path: Path) -> None:
    """:func:`pareto_table` as CSV, written atomically."""
    with atomic_path(path) as tmp:
        pareto_table(df).to_csv(tmp, index=False)


def run_sweep_cmd(args: argparse.Namespace) -> int:
    with warnings.catch_warnings(record=True) as caught:  # each distinct warning once, at the end
        warnings.simplefilter("always")
        try:
            return _sweep(args)
        finally:
            for message in dict.fromkeys(str(c.message) for c in caught):
                print(f"bitsim sweep: warning: {message}", file=sys.stderr)


def _sweep(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    if Path(args.output).resolve() == Path(args.spec).resolve():
        raise ValueError(f"output {args.output} is also the spec; write to another folder")
    table = Path(args.pareto).with_suffix(".csv") if args.pareto else None
    if args.pareto:  # before any work: an existing figure (or a link to one) is replaced only with --force
        if Path(args.pareto).suffix.lower() == ".csv":
            raise ValueError(f"--pareto {args.pareto}: give a figure (.png, .pdf, .svg); its table is written "
                             f"beside it as .csv")
        for out in (args.pareto, table):
            check_output(out, inputs=[args.spec], force=args.force)
    backend = "dask" if args.scheduler else args.backend
    t0 = time.perf_counter()
    df = run_sweep(spec, args.output, workers=args.workers, backend=backend, scheduler=args.scheduler,
                   progress=not args.quiet)
    if args.pareto and len(df):
        plot_sweep(df, spec.name, args.pareto)
        write_pareto_table(df, table)
    print(f"{args.output}: {len(df)} points ({time.perf_counter() - t0:.1f} s)")
    bad = df[~df["feasible"].astype(bool)] if len(df) else df
    if len(bad):
        print(f"{len(bad)} of {len(df)} points do not fit the chip's memory (feasible = False; kept off the Pareto "
              f"front), e.g. {bad['infeasible_reason'].iloc[0]}")
    if table is not None and len(df):
        n = int(pareto_table(df).pareto.sum())
        print(f"{args.pareto}, {table}: {n} point{'s' if n != 1 else ''} on the Pareto front")
    return 0
