"""``bitsim report``: run the comparison study and write the report folder.

One run writes, under its output folder::

    report.md, report.html     the report (HTML is self-contained: figures embedded)
    config.yaml                the study it ran, the command line and every version
    figures/<name>.png|svg     every figure
    tables/<name>.csv          every table of the report (+ ops.parquet, traces.parquet)

What is compared: :mod:`bitsim.experiments.study`; the paper's claims: :mod:`bitsim.report.claims`;
measured GPU data: :mod:`bitsim.report.measured`, :mod:`bitsim.validation`; drawing:
:mod:`bitsim.report.figures`; Markdown/HTML: :mod:`bitsim.report.document`.
"""
from __future__ import annotations

import datetime as _dt
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from bitsim import __version__
from bitsim.report import figures
from bitsim.report.claims import CLAIMS, claims_table, findings, ratio_table
from bitsim.report.document import Document, Figure, Table, render_html, render_markdown
from bitsim.report.measured import ANCHORS_SOURCE, VALIDATION_BOUND, load_measured, speedups, validate_simulator
from bitsim.tables import write_table
from bitsim.experiments.study import StudyConfig, StudyResult, run_study
import sim
from bitsim.report.claims import active_param_fraction
from model.trace import build_trace
from bitsim.experiments.ladder import gain_ladder
from bitsim.experiments.study import DEFAULT_MATCHED


def versions() -> dict[str, str]:
    """Versions of Python, the libraries that shape the numbers, and the git commit."""
    import importlib.metadata as md

    out = {"bitsim": __version__, "python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("numpy", "pandas", "torch", "simpy", "matplotlib", "pyarrow"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    try:
        root = Path(__file__).resolve().parent.parent
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True,
                               timeout=5).stdout.strip()
        out["git_commit"] = (sha or "unknown") + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        out["git_commit"] = "unknown"
    return out


def _fmt_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """The headline numbers, one row per (preset, workload, datapath, accelerator)."""
    s = summary.copy()
    s["workload"] = [f"decode @ {c}" if p == "decode" else f"prefill {c} tok"
                     for p, c in zip(s.phase, s.context)]
    out = pd.DataFrame({
        "preset": s.preset, "workload": s.workload, "datapath": s.datapath, "accelerator": s.accelerator,
        "tokens/s": s.tokens_per_s, "ms/token": 1e3 * s.latency_s / s.tokens,
        "mJ/token": 1e3 * s.energy_j_per_token,
        "weights GB": s.weight_bytes / 1e9, "KV GB": s.kv_bytes / 1e9,
        "memory-bound %": 100 * s.memory_bound_frac,
    })
    return out


def _accelerator_table(names: list[str]) -> pd.DataFrame:

    rows = []
    for n in names:
        a = sim.load_accelerator(n)
        pairs = sorted({f"{p.weights}x{p.acts}" for arr in a.arrays for p in arr.pe_ops})
        rows.append({"accelerator": a.name, "clock GHz": a.clock_ghz, "node nm": a.process_nm,
                     "PEs": sum(arr.pes for arr in a.arrays), "operand pairs": ", ".join(pairs),
                     "off-chip GB/s": a.offchip.bandwidth_gbps, "KV formats": ", ".join(a.kv_formats),
                     "sparsity": ("skip fetch " if a.sparsity.skip_weight_fetch else "")
                     + ("skip compute" if a.sparsity.skip_compute else "") or "none",
                     "PE area mm2 (45nm)": a.compute_area_mm2_45nm(), "basis": a.comparison,
                     "energy": "dynamic only (no static/board power)" if a.energy_basis == "dynamic-only"
                     else "dynamic + static"})
    return pd.DataFrame(rows)


def _extra_active(cfg: StudyConfig, preset: str, progress: bool = True) -> dict[str, float]:
    """Active-parameter fraction of a4.8 under the paper's Table 2 statistics (one extra trace)."""

    if "a4.8" not in cfg.datapaths or cfg.profile == "paper-table2":
        return {}
    try:
        tr = build_trace(preset, "a4.8", phase="decode", context=min(cfg.contexts or (2048,)), batch=cfg.batch,
                         seed=cfg.seed, profile="paper-table2")
    except ValueError as e:  # no Table 2 row for this preset (e.g. tiny, 2b4t)
        if progress:
            print(f"report: no paper-table2 profile for {preset}: {e}", file=sys.stderr)
        return {}
    return {"a4.8, paper Table 2 statistics": active_param_fraction(tr)}


def build_document(res: StudyResult, spd: pd.DataFrame, cmp: pd.DataFrame, cmp_classes: pd.DataFrame,
                   claims: pd.DataFrame, ratios: pd.DataFrame, claims_preset: str,
                   gpus: list[str] | None = None, ladder: pd.DataFrame | None = None) -> Document:
    cfg = res.config
    doc = Document(f"1-bit LLM co-design report: {cfg.name}")
    s = doc.section("What was run")
    s.text(f"Model presets {', '.join(cfg.presets)}; datapaths {', '.join(cfg.datapaths)}; decode (batch "
           f"{cfg.batch}, one new token) at contexts {', '.join(str(c) for c in cfg.contexts)}"
           + (f" and a {cfg.prefill_tokens}-token prefill" if cfg.prefill_tokens else "")
           + f". Activation statistics: **{cfg.profile}** (see decisions.md §12: measured on seeded random "
             "weights unless the paper-table2 profile is named).")
    s.text("Each datapath runs on its matched accelerator ("
           + ", ".join(f"{d} -> `{a}`" for d, a in cfg.matched.items()) + ")"
           + (" and on the reference " + ", ".join(f"`{r}`" for r in cfg.reference) if cfg.reference else "")
           + f". {len(cfg.workloads())} traces, each built once; study time {res.seconds:.0f} s.")
    acc_names = list(dict.fromkeys(list(cfg.matched.values()) + list(cfg.reference)))
    s.table(Table("accelerators", _accelerator_table(acc_names), "Accelerators (sim presets / YAML)"))

    s = doc.section("Paper claims")
    s.text("The a4.8 paper's claims (55% active parameters, 3-bit KV cache) and the press numbers (2x vs "
           "b1.58, 4x and 10x vs FP16) next to ours. Verdict rule: holds if ours >= 0.9 x claimed, partly if "
           "a real gain (>= 1.1x) below that, does not hold otherwise. " + f"Preset: {claims_preset}.")
    if len(claims):
        s.text(findings(claims))
    s.table(Table("claims", claims, "Claims vs this study, with the reason for each verdict"))
    s.text("Sources: " + "; ".join(f"{c.text}: {c.source}" for c in CLAIMS.values()) + ".")
    if len(ratios):
        s.table(Table("ratios", ratios, "a4.8 over b1.58 and FP16 (x, higher = a4.8 better)", "{:.2f}"))

    s = doc.section("Energy and speed")
    s.figure(Figure("energy_by_component", "Energy per token by component (compute, SRAM, off-chip, vector, "
                                           "static); plain bars: matched accelerator, hatched: reference "
                                           "(h100-like counts dynamic energy only: no static or board power)"))
    s.figure(Figure("throughput", "Decode tokens/s and latency per token vs context (solid: matched "
                                  "accelerator, dashed: reference)"))
    head = res.summary
    if (head.phase == "decode").any():
        ctxs = sorted(head[head.phase == "decode"].context.unique())
        ref_ctx = min(ctxs, key=lambda c: abs(c - 2048))
        head = head[(head.phase == "prefill") | (head.context == ref_ctx)]
    s.table(Table("summary", _fmt_summary(head),
                  "Headline numbers (decode at the context nearest 2k, and prefill); every context: "
                  "tables/summary_all.csv"))
    if ladder is not None and len(ladder):
        s = doc.section("Where a4.8's decode gain comes from")
        s.text("From b1.58 on its chip to a4.8 on its chip, one change per step (simulated decode, batch 1, "
               "matched chips; `bitsim.experiments.ladder`). Step ratio = tokens/s over the step before. Decode is bound "
               "by memory, so a change pays only through the bytes it removes: the KV-cache format and "
               "skipping the weight rows of zero activations; 4-bit activations barely move it. The zero-skipping "
               f"step uses the traces' `{cfg.profile}` activation statistics (`measured` = seeded random "
               "weights, whose ReLU² and TopK sparsity is lower than a trained model's; `--profile paper-table2` "
               "uses the paper's Table 2).")
        t = ladder.assign(**{"tok/s": ladder.tokens_per_s.round(0), "mJ/token": (1e3 * ladder.energy_j_per_token)
                             .round(1), "KV GB": (ladder.kv_bytes / 1e9).round(3),
                             "off-chip MB/token": (ladder.bytes_offchip / 1e6).round(0),
                             "step x": ladder.speedup_step.round(2), "total x": ladder.speedup_total.round(2)})
        s.table(Table("gain_ladder", t[["preset", "context", "step", "change", "kv_bits", "accelerator", "tok/s",
                                        "mJ/token", "KV GB", "off-chip MB/token", "step x", "total x"]],
                      "a4.8 over b1.58, one change at a time"))

    s = doc.section("Memory footprint")
    s.figure(Figure("footprint", "Weights + KV cache vs context (dotted: weights alone)"))

    s = doc.section("Roofline")
    s.text("Every op of every decode step and prefill on its accelerator's roofline: x = useful ops per "
           "off-chip byte, y = achieved ops/s. Ops with no off-chip traffic are not drawn (infinite "
           "intensity). Roofs: one per supported operand pair.")
    s.figure(Figure("roofline", "Roofline of every op (colours: datapath; markers: op class)"))

    s = doc.section("Per-op sparsity and bits")
    s.figure(Figure("sparsity_bits", "Per-op input sparsity and operand bits (decode, layer 0)"))

    s = doc.section("Measured H100 kernels")
    if spd.empty:
        s.text(f"No measured kernel data found in `{cfg.measured_dir}` (`measured_*.parquet|csv`).")
    else:
        s.text(f"Measured on {', '.join(gpus or ['an unnamed GPU'])}; speedup = cuBLAS FP16 time / kernel "
               "time at the same shape, measured in the same run and the same timing mode (`cuda_graph`: "
               "CUDA-graph replays, or one launch at a time; attention: torch SDPA, whole block: the FP16 "
               "block). Sources: " + ", ".join(f"`{x}`" for x in sorted(set(shown_measurements(spd).source))) + ".")
        shown = shown_measurements(spd)
        s.table(Table("measured_speedups", shown[["source", "shape", "kernel", "impl", "precision", "cuda_graph",
                                                  "us", "baseline_us", "speedup"]],
                      "Measured kernel times (us) and speedups"))
    s.figure(Figure("measured_speedups", "Measured H100 kernel speedups over cuBLAS FP16"))
    s.figure(Figure("measured_roofline", "Measured kernels on the H100's roofline (roofs measured in the same "
                                         "run) and the share of copy bandwidth reached at decode"))

    s = doc.section("Simulator vs measured")
    if cmp.empty:
        s.text("Nothing to compare (no measured kernel data or no reference accelerator).")
    else:
        held = cmp_classes[cmp_classes.split == "held-out"]
        s.text("Every measured kernel call is replayed on the preset that describes it. Baselines (cuBLAS, "
               "torch SDPA, gemlite) run on `h100-like`, whose peak rates and bandwidth are the measured "
               "ceilings (8192^3 cuBLAS GEMMs, device copy): no per-shape timing was used to build it. Our "
               "Triton kernels run on `h100-triton` = `h100-like` plus a launch latency and the rates at which "
               "the CUDA cores decode packed ternary weights and 3-bit KV codes, fitted on a named calibration "
               "subset (`sim/calibrate.py`, sources in the YAML); MAPE is reported on the held-out calls. "
               f"Bound: MAPE <= {100 * VALIDATION_BOUND:.0f}% per kernel class; "
               f"{int(held.within_bound.sum())} of {len(held)} held-out classes meet it.")
        shown = cmp_classes.assign(mape=(100 * cmp_classes.mape).round(1),
                                   max_abs_err=(100 * cmp_classes.max_abs_err).round(1),
                                   mean_err=(100 * cmp_classes.mean_err).round(1))
        s.table(Table("sim_validation", shown.rename(columns={"mape": "MAPE %", "max_abs_err": "max |err| %",
                                                              "mean_err": "mean err %"}),
                      "Simulated vs measured, per kernel class (err = (sim - measured) / measured)"))
        s.text("Per call: `tables/sim_vs_measured.csv`.")
    s.figure(Figure("sim_vs_measured", "Simulated vs measured time per kernel call (held-out and calibration "
                                       "calls; each on the preset that describes it)"))

    s = doc.section("Files")
    s.text("- `config.yaml`: the study configuration, the command line and versions\n"
           "- `tables/*.csv`: every table above; `summary_all.csv` (headline numbers at every context), "
           "`summary_full.csv` (every summary column), `ceilings.csv` (roofline roofs), "
           "`tables/ops.parquet` (per-op sim results with roofline "
           "coordinates), `tables/traces.parquet` (the op traces)\n"
           "- `figures/*.png|svg`: every figure")
    return doc


def make_report(cfg: StudyConfig, out_dir: str | Path, progress: bool = True,
                command: str | None = None) -> Path:
    """Run the study of ``cfg`` and write the report folder ``out_dir``; returns it."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    (out / "figures").mkdir(parents=True)
    (out / "tables").mkdir()

    def say(msg: str) -> None:
        if progress:
            print(f"report: {msg} ({time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)

    res = run_study(cfg, progress=progress)
    say("study done")
    measured = load_measured(cfg.measured_dir)
    spd = speedups(measured)
    cmp, cmp_classes = validate_simulator(measured)
    say(f"{len(measured)} measured kernel rows, {len(cmp)} replayed on h100-like / h100-triton")
    claims_preset = "7b" if "7b" in cfg.presets else cfg.presets[0]
    claims = claims_table(res.summary, res.traces, spd, claims_preset,
                          extra_active=_extra_active(cfg, claims_preset, progress), profile=cfg.profile,
                          ops=res.ops)
    ratios = ratio_table(res.summary)
    ladder = _gain_ladder(cfg, res.summary, claims_preset)
    if len(ladder):
        say("a4.8 gain ladder done")

    fdir = out / "figures"
    figures.save(figures.energy_by_component(res.summary), fdir, "energy_by_component")
    figures.save(figures.throughput(res.summary), fdir, "throughput")
    figures.save(figures.footprint(res.summary), fdir, "footprint")
    figures.save(figures.roofline(roofline_ops(res), res.ceilings,
                                  title=f"Roofline: {claims_preset}, every op"), fdir, "roofline")
    figures.save(figures.sparsity_and_bits(res.traces, claims_preset), fdir, "sparsity_bits")
    figures.save(figures.measured_speedups(shown_measurements(spd)), fdir, "measured_speedups")
    own = measured[measured.source != ANCHORS_SOURCE] if len(measured) else measured
    figures.save(figures.measured_roofline(own), fdir, "measured_roofline")
    figures.save(figures.sim_vs_measured(cmp.assign(kernel=cmp["kernel_class"] + " on " + cmp["preset"])),
                 fdir, "sim_vs_measured")
    say("figures done")

    gpus = sorted({str(g) for g in measured["gpu"].dropna()}) if len(measured) else []
    doc = build_document(res, spd, cmp, cmp_classes, claims, ratios, claims_preset, gpus, ladder)
    tdir = out / "tables"
    for sec in doc.sections:
        for b in sec.blocks:
            if isinstance(b, Table):
                b.df.to_csv(tdir / f"{b.name}.csv", index=False)
    cmp.to_csv(tdir / "sim_vs_measured.csv", index=False)
    _fmt_summary(res.summary).to_csv(tdir / "summary_all.csv", index=False)
    res.summary.to_csv(tdir / "summary_full.csv", index=False)
    res.ceilings.to_csv(tdir / "ceilings.csv", index=False)
    res.ops.to_parquet(tdir / "ops.parquet", index=False)
    write_table(res.traces, tdir / "traces.parquet", "op_trace",
                meta={"note": "concatenated op traces of the study", "traces": res.trace_meta})

    meta: dict[str, Any] = {"study": cfg.as_dict(), "command": command or " ".join(sys.argv),
                            "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                            "versions": versions(), "study_seconds": round(res.seconds, 1),
                            "traces": res.trace_meta}
    (out / "config.yaml").write_text(yaml.safe_dump(meta, sort_keys=False, width=120))
    v = meta["versions"]
    header = (f"Generated {meta['created_utc']} by `{meta['command']}` - bitsim {v['bitsim']}, git "
              f"{v['git_commit']}, torch {v['torch']}, numpy {v['numpy']}, pandas {v['pandas']}. "
              f"Full configuration: `config.yaml`.")
    (out / "report.md").write_text(render_markdown(doc, header))
    (out / "report.html").write_text(render_html(doc, fdir, header))
    say(f"wrote {out}")
    return out


def _gain_ladder(cfg: StudyConfig, summary: pd.DataFrame, preset: str) -> pd.DataFrame:
    """The a4.8-over-b1.58 ladder (bitsim.experiments.ladder) at the decode context nearest 2k and the longest one.

    Run only when the study compares b1.58 and a4.8 on their default chips (the ladder's rungs are
    those presets).
    """

    if not {"b1.58", "a4.8"} <= set(cfg.datapaths) or not cfg.contexts or any(
            cfg.matched[d] != DEFAULT_MATCHED[d] for d in ("b1.58", "a4.8")):
        return pd.DataFrame()
    ctxs = sorted({min(cfg.contexts, key=lambda c: abs(c - 2048)), max(cfg.contexts)})
    own = summary[(summary.preset == preset) & (summary.phase == "decode") & (summary.role == "matched")]
    known = {(r["datapath"], int(r["context"])): r for r in own.to_dict("records")}
    return gain_ladder(preset, ctxs, seed=cfg.seed, batch=cfg.batch, profile=cfg.profile, known=known)


def shown_measurements(spd: pd.DataFrame) -> pd.DataFrame:
    """The speedup rows the report shows: the kernels' own measuring runs.

    The anchor timings of gpu-anchors.md (cuBLAS and SDPA only) are shown only
    when no kernel measurement exists; they stay in the simulator comparison.
    Shape labels carry a short source tag when several runs are shown.
    """
    if spd.empty:
        return spd
    own = spd[spd.source != ANCHORS_SOURCE]
    spd = own if len(own) else spd
    if spd.source.nunique() < 2:
        return spd
    short = spd.source.map(lambda x: Path(x).stem.removeprefix("measured_"))
    return spd.assign(shape=spd["shape"] + " [" + short + "]")


def roofline_ops(res: StudyResult) -> pd.DataFrame:
    """Ops drawn on the roofline: every op of the claims preset (all contexts, both phases)."""
    preset = "7b" if "7b" in res.config.presets else res.config.presets[0]
    return res.ops[res.ops.preset == preset]
