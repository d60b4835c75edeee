"""``bitsim sweep``: run a design-space sweep spec into a resumable results set, and plot its Pareto front."""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from bitsim.experiments.pareto import plot_pareto
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
    s.add_argument("--pareto", metavar="PNG", help="also plot tokens/s vs J/token with the Pareto front")
    s.add_argument("--force", action="store_true", help="replace an existing --pareto figure")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=run_sweep_cmd)


def plot_sweep(df, spec_name: str, path: str) -> None:
    """tokens/s vs J/token of every point with the Pareto front, written atomically to ``path``."""
    import matplotlib
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    objectives = {"tokens_per_s": "max", "energy_j_per_token": "min"}
    color = None
    if "compute_area_mm2_45nm" in df.columns and df["compute_area_mm2_45nm"].nunique() > 1:
        objectives["compute_area_mm2_45nm"] = "min"
        color = "compute_area_mm2_45nm"
    ax = plot_pareto(df, "tokens_per_s", "energy_j_per_token", objectives, color=color,
                     xlabel="tokens/s", ylabel="energy per token (J)",
                     color_label="PE-array area (mm², 45 nm)", logx=True, logy=True)
    ax.set_title(f"sweep {spec_name}: {len(df)} points")
    try:
        with atomic_path(path) as tmp:
            ax.figure.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", dpi=150, bbox_inches="tight")
    finally:
        plt.close(ax.figure)


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
    if args.pareto:  # before any work: an existing figure (or a link to one) is replaced only with --force
        check_output(args.pareto, inputs=[args.spec], force=args.force)
    backend = "dask" if args.scheduler else args.backend
    t0 = time.perf_counter()
    df = run_sweep(spec, args.output, workers=args.workers, backend=backend, scheduler=args.scheduler,
                   progress=not args.quiet)
    if args.pareto and len(df):
        plot_sweep(df, spec.name, args.pareto)
    print(f"{args.output}: {len(df)} points ({time.perf_counter() - t0:.1f} s)")
    return 0
