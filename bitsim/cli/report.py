"""``bitsim report`` and ``bitsim sweep``: the command lines of the report and the design-space sweep."""
from __future__ import annotations

import argparse
import datetime as _dt
import shutil
import sys
import time
from pathlib import Path

import sim
from bitsim.experiments.pareto import plot_pareto
from bitsim.experiments.study import DEFAULT_DATAPATHS, DEFAULT_MATCHED, PROFILES, StudyConfig
from bitsim.experiments.sweep import load_spec, run_sweep
from bitsim.report.build import make_report
from contract import check_output, check_output_folder, publish_folder, temporary_sibling
from contract.config import load_yaml, quote

DEFAULT_REPORTS = Path("reports")


def _csv(kind):
    def parse(s: str):
        items = [x.strip() for x in s.split(",") if x.strip()]
        try:
            return tuple(kind(x) for x in items)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind.__name__}, got {s!r}")
    return parse


def _context(s: str) -> int:
    s = s.strip().lower()
    mult = 1024 if s.endswith("k") else 1
    return int(s[:-1] if mult > 1 else s) * mult


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report", help="run the FP16 / b1.58 / a4.8 comparison study and write the report",
        description="Build op traces (model/), simulate them on matched and reference accelerators (sim/), "
                    "read measured GPU kernels (reports/data/), and write figures, tables, report.md and a "
                    "self-contained report.html. With no flags: the default study into "
                    "reports/runs/<UTC time>-default/, copied to reports/latest/.")
    p.add_argument("--config", help="study YAML (fields of bitsim.experiments.study.StudyConfig); flags override it")
    p.add_argument("--name", help="study name (default: 'default')")
    p.add_argument("--presets", type=_csv(str), help="model presets, e.g. 7b,2b4t (or model YAML paths)")
    p.add_argument("--datapaths", type=_csv(str), help="e.g. fp16,b1.58,a4.8,a4.8-fp4")
    p.add_argument("--contexts", type=_csv(_context), help="decode contexts, e.g. 512,2k,8k,32k")
    p.add_argument("--prefill-tokens", type=int, help="prefill length (0: no prefill)")
    p.add_argument("--batch", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--profile", choices=PROFILES,
                   help="activation statistics of every comparison (default auto: trained where committed, "
                        "else the paper's Table 2, else random-weight statistics)")
    p.add_argument("--accelerator", action="append", metavar="DATAPATH=ACCEL",
                   help="matched accelerator (preset name or YAML) for a datapath; repeatable")
    p.add_argument("--reference", type=_csv(str),
                   help="reference accelerators every datapath also runs on (default h100-like; '' for none)")
    p.add_argument("--measured-dir", help="folder of measured_*.parquet|csv (default reports/data)")
    p.add_argument("--workers", type=int, help="parallel processes (default 2)")
    p.add_argument("-o", "--out", help="output folder (default reports/runs/<UTC time>-<name>/)")
    p.add_argument("--no-latest", action="store_true", help="do not refresh reports/latest/")
    p.add_argument("--force", action="store_true", help="replace an earlier report in the -o folder")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run_report)

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
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=run_sweep_cmd)


def study_config_from_args(args: argparse.Namespace):
    """StudyConfig from --config YAML, then flags on top."""

    raw: dict = {}
    if args.config:
        path = Path(args.config)
        if not path.exists():
            raise FileNotFoundError(f"no such study config: {path}")
        raw = load_yaml(path) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected a mapping of study fields")
    for field, attr in (("name", "name"), ("presets", "presets"), ("datapaths", "datapaths"),
                        ("contexts", "contexts"), ("prefill_tokens", "prefill_tokens"), ("batch", "batch"),
                        ("seed", "seed"), ("profile", "profile"), ("reference", "reference"),
                        ("measured_dir", "measured_dir"), ("workers", "workers")):
        v = getattr(args, attr)
        if v is not None:
            raw[field] = v
    if "matched" not in raw:  # the default pairing; --accelerator overrides single entries of it
        raw["matched"] = {d: DEFAULT_MATCHED[d] for d in raw.get("datapaths", DEFAULT_DATAPATHS)
                          if d in DEFAULT_MATCHED}
    datapaths = raw.get("datapaths", DEFAULT_DATAPATHS)
    for item in args.accelerator or []:
        dp, sep, acc = item.partition("=")
        if not sep or not dp or not acc:
            raise ValueError(f"--accelerator expects DATAPATH=ACCELERATOR, got {quote(item)}")
        if dp not in datapaths:
            raise ValueError(f"--accelerator {quote(item)}: {dp!r} is not a datapath of the study {list(datapaths)}")
        raw["matched"] = {**raw["matched"], dp: acc}
    return StudyConfig.from_dict(raw, where=args.config or "report flags")


def is_report_folder(path: Path) -> bool:
    """Whether ``path`` is a report folder that ``bitsim report`` wrote (so it may replace it)."""
    cfg = path / "config.yaml"
    return (path / "report.md").is_file() and cfg.is_file() and "bitsim" in cfg.read_text(errors="replace")[:4000]


def check_study_inputs(cfg: StudyConfig) -> None:
    """Load every accelerator and check the measured folder before any output is touched."""
    for name in dict.fromkeys(list(cfg.matched.values()) + list(cfg.reference)):
        sim.load_accelerator(name)
    if not Path(cfg.measured_dir).is_dir():
        raise FileNotFoundError(f"--measured-dir {cfg.measured_dir}: no such folder")


def run_report(args: argparse.Namespace) -> int:
    import matplotlib
    matplotlib.use("Agg")  # files only, no display needed

    cfg = study_config_from_args(args)
    check_study_inputs(cfg)
    t0 = time.perf_counter()
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out) if args.out else DEFAULT_REPORTS / "runs" / f"{stamp}-{cfg.name}"
    check_output_folder(out, is_report_folder, force=args.force)
    latest = DEFAULT_REPORTS / "latest"
    publish_latest = not args.out and not args.no_latest
    if publish_latest:
        check_output_folder(latest, is_report_folder, force=True)
    tmp = temporary_sibling(out)
    try:  # written beside the output and renamed into place: a failed run changes nothing
        make_report(cfg, tmp, progress=not args.quiet, command="bitsim " + " ".join(sys.argv[1:]))
        publish_folder(tmp, out, is_report_folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    if publish_latest:
        copy = temporary_sibling(latest)
        shutil.copytree(out, copy, dirs_exist_ok=True)
        publish_folder(copy, latest, is_report_folder)
        print(f"report: copied to {latest}/", file=sys.stderr)
    print(f"{out}/report.html  ({time.perf_counter() - t0:.0f} s)")
    return 0


def run_sweep_cmd(args: argparse.Namespace) -> int:

    spec = load_spec(args.spec)
    if args.pareto:
        check_output(args.pareto, inputs=[args.spec], force=True)
    if Path(args.output).resolve() == Path(args.spec).resolve():
        raise ValueError(f"output {args.output} is also the spec; write to another folder")
    backend = "dask" if args.scheduler else args.backend
    t0 = time.perf_counter()
    df = run_sweep(spec, args.output, workers=args.workers, backend=backend, scheduler=args.scheduler,
                   progress=not args.quiet)
    if args.pareto and len(df):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        objectives = {"tokens_per_s": "max", "energy_j_per_token": "min"}
        color = None
        if "compute_area_mm2_45nm" in df.columns and df["compute_area_mm2_45nm"].nunique() > 1:
            objectives["compute_area_mm2_45nm"] = "min"
            color = "compute_area_mm2_45nm"
        ax = plot_pareto(df, "tokens_per_s", "energy_j_per_token", objectives, color=color,
                         xlabel="tokens/s", ylabel="energy per token (J)",
                         color_label="PE-array area (mm², 45 nm)", logx=True, logy=True)
        ax.set_title(f"sweep {spec.name}: {len(df)} points")
        ax.figure.savefig(args.pareto, dpi=150, bbox_inches="tight")
        plt.close(ax.figure)
    print(f"{args.output}: {len(df)} points ({time.perf_counter() - t0:.1f} s)")
    return 0
