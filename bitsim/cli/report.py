"""``bitsim report``: the command line of the comparison study and its report."""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import shutil
import sys
import time
from pathlib import Path

import sim
from bitsim.experiments.paths import REPORTS_DIR
from bitsim.experiments.study import DEFAULT_DATAPATHS, DEFAULT_MATCHED, PROFILES, RIDES_ON, StudyConfig
from bitsim.report.build import make_report
from contract import check_output_folder, publish_folder, temporary_sibling
from contract.config import load_yaml, quote

#: Written into every report folder ``bitsim report`` makes; only a folder holding it is ever replaced.
MARKER = ".bitsim-report"
MARKER_TEXT = "written by `bitsim report`; `bitsim report --force` may replace this folder\n"


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
    p.add_argument("--measured-dir", help="folder of measured_*.parquet|csv (default: the project's reports/data)")
    p.add_argument("--workers", type=int, help="parallel processes (default 2)")
    p.add_argument("-o", "--out", help="output folder (default: the project's reports/runs/<UTC time>-<name>/)")
    p.add_argument("--no-latest", action="store_true", help="do not refresh the project's reports/latest/")
    p.add_argument("--force", action="store_true",
                   help="replace an earlier report in the -o folder (only a folder bitsim report wrote)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run_report)


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
    for field in ("name", "presets", "datapaths", "contexts", "prefill_tokens", "batch", "seed", "profile",
                  "reference", "workers"):
        v = getattr(args, field)
        if v is not None:
            raw[field] = v
    if args.measured_dir is not None:  # a path typed on the command line is relative to the working folder
        raw["measured_dir"] = os.path.abspath(args.measured_dir)
    if "matched" not in raw:  # the default pairing; --accelerator overrides single entries of it
        raw["matched"] = {d: DEFAULT_MATCHED[d] for d in raw.get("datapaths", DEFAULT_DATAPATHS)
                          if d in DEFAULT_MATCHED}
    raw["matched"] = _overridden(raw["matched"], args.accelerator or [], raw.get("datapaths", DEFAULT_DATAPATHS))
    return StudyConfig.from_dict(raw, where=args.config or "report flags")


def _overridden(matched: dict, items: list[str], datapaths) -> dict:
    """``matched`` with each ``DATAPATH=ACCELERATOR`` applied; a variant riding on a replaced chip (a4.8-fp4 on
    a4.8's) follows it unless it is given a chip of its own."""
    given: dict[str, str] = {}
    for item in items:
        dp, sep, acc = item.partition("=")
        if not sep or not dp or not acc:
            raise ValueError(f"--accelerator expects DATAPATH=ACCELERATOR, got {quote(item)}")
        if dp not in datapaths:
            raise ValueError(f"--accelerator {quote(item)}: {dp!r} is not a datapath of the study {list(datapaths)}")
        given[dp] = acc
    out = {**matched, **given}
    for rider, host in RIDES_ON.items():
        if host in given and rider not in given and out.get(rider) == matched.get(host):
            out[rider] = given[host]
    return out


def is_report_folder(path: Path) -> bool:
    """Whether ``path`` is a report folder that ``bitsim report`` wrote (it holds the tool's own marker file)."""
    marker = Path(path) / MARKER
    if marker.is_symlink() or not marker.is_file():
        return False
    with open(marker, encoding="utf-8", errors="replace") as f:
        return f.read(len(MARKER_TEXT) + 1) == MARKER_TEXT


def mark_report_folder(path: Path) -> None:
    """Write the marker that lets a later ``bitsim report --force`` replace ``path``."""
    (Path(path) / MARKER).write_text(MARKER_TEXT, encoding="utf-8")


def check_report_output(out: Path, force: bool) -> None:
    """Refuse an output folder that is a symbolic link, or one holding files bitsim report did not write."""
    if out.is_symlink():
        raise ValueError(f"output folder {out} is a symbolic link; give the folder itself (nothing was changed)")
    check_output_folder(out, is_report_folder, force=force)


def check_study_inputs(cfg: StudyConfig) -> None:
    """Load every accelerator and check the measured folder before any output is touched."""
    for name in dict.fromkeys(list(cfg.matched.values()) + list(cfg.reference)):
        sim.load_accelerator(name)
    if not cfg.measured_path.is_dir():
        raise FileNotFoundError(f"--measured-dir {cfg.measured_dir}: no such folder")


def run_report(args: argparse.Namespace) -> int:
    import matplotlib
    matplotlib.use("Agg")  # files only, no display needed

    cfg = study_config_from_args(args)
    check_study_inputs(cfg)
    t0 = time.perf_counter()
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out) if args.out else REPORTS_DIR / "runs" / f"{stamp}-{cfg.name}"
    check_report_output(out, force=args.force)
    latest = REPORTS_DIR / "latest"
    publish_latest = not args.out and not args.no_latest
    if publish_latest:
        check_report_output(latest, force=True)
    tmp = temporary_sibling(out)
    try:  # written beside the output and renamed into place: a failed run changes nothing
        make_report(cfg, tmp, progress=not args.quiet, command="bitsim " + " ".join(sys.argv[1:]))
        mark_report_folder(tmp)
        publish_folder(tmp, out, is_report_folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    if publish_latest:
        copy = temporary_sibling(latest)
        try:
            shutil.copytree(out, copy, dirs_exist_ok=True)
            publish_folder(copy, latest, is_report_folder)
        finally:
            if copy.exists():
                shutil.rmtree(copy)
        print(f"report: copied to {latest}/", file=sys.stderr)
    print(f"{out}/report.html  ({time.perf_counter() - t0:.0f} s)")
    return 0
