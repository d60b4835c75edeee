"""What the report says: one function per section, each reading the collected :class:`ReportData`.

A section function returns a :class:`bitsim.report.document.Section` (or None when the study has
nothing for it); :data:`SECTIONS` is their order and :func:`build_document` puts them together.
Tables come from ``data.tables`` (the files written under ``tables/``), figures are named here and
drawn by :mod:`bitsim.report.build`.
"""
from __future__ import annotations

from typing import Callable

from bitsim.report.claims import CLAIMS, findings
from bitsim.report.collect import ReportData
from bitsim.report.document import Document, Figure, Section, Table
from bitsim.report.measured import VALIDATION_BOUND


def _table(data: ReportData, stem: str, caption: str, floatfmt: str = "{:.3g}") -> Table:
    """The document block of the file ``tables/<stem>.csv``."""
    return Table(name=stem, df=data.tables[stem].df, caption=caption, floatfmt=floatfmt)


def what_was_run(data: ReportData) -> Section:
    cfg, res = data.config, data.study
    s = Section("What was run")
    s.text(f"Model presets {', '.join(cfg.presets)}; datapaths {', '.join(cfg.datapaths)}; decode (batch "
           f"{cfg.batch}, one new token) at contexts {', '.join(str(c) for c in cfg.contexts)}"
           + (f" and a {cfg.prefill_tokens}-token prefill" if cfg.prefill_tokens else "")
           + f". Activation statistics: **{cfg.profile}** (see docs/decisions.md §12: measured on seeded random "
             "weights unless the paper-table2 profile is named).")
    s.text("Each datapath runs on its matched accelerator ("
           + ", ".join(f"{d} -> `{a}`" for d, a in cfg.matched.items()) + ")"
           + (" and on the reference " + ", ".join(f"`{r}`" for r in cfg.reference) if cfg.reference else "")
           + f". {len(cfg.workloads())} traces, each built once; study time {res.seconds:.0f} s.")
    s.table(_table(data, "accelerators", "Accelerators (sim presets / YAML)"))
    return s


def paper_claims(data: ReportData) -> Section:
    s = Section("Paper claims")
    s.text("The a4.8 paper's claims (55% active parameters, 3-bit KV cache) and the press numbers (2x vs "
           "b1.58, 4x and 10x vs FP16) next to ours. Verdict rule: holds if ours >= 0.9 x claimed, partly if "
           "a real gain (>= 1.1x) below that, does not hold otherwise. " + f"Preset: {data.claims_preset}.")
    claims = data.tables["claims"].df
    if len(claims):
        s.text(findings(claims))
    s.table(_table(data, "claims", "Claims vs this study, with the reason for each verdict"))
    s.text("Sources: " + "; ".join(f"{c.text}: {c.source}" for c in CLAIMS.values()) + ".")
    if "ratios" in data.tables:
        s.table(_table(data, "ratios", "a4.8 over b1.58 and FP16 (x, higher = a4.8 better)", "{:.2f}"))
    return s


def energy_and_speed(data: ReportData) -> Section:
    s = Section("Energy and speed")
    s.figure(Figure("energy_by_component", "Energy per token by component (compute, SRAM, off-chip, vector, "
                                           "static); plain bars: matched accelerator, hatched: reference "
                                           "(h100-like counts dynamic energy only: no static or board power)"))
    s.figure(Figure("throughput", "Decode tokens/s and latency per token vs context (solid: matched "
                                  "accelerator, dashed: reference)"))
    s.table(_table(data, "summary", "Headline numbers (decode at the context nearest 2k, and prefill); every "
                                    "context: tables/summary_all.csv"))
    return s


def gain_origin(data: ReportData) -> Section | None:
    if "gain_ladder" not in data.tables:
        return None
    s = Section("Where a4.8's decode gain comes from")
    s.text("From b1.58 on its chip to a4.8 on its chip, one change per step (simulated decode, batch 1, "
           "matched chips; `bitsim.experiments.ladder`). Step ratio = tokens/s over the step before. Decode is bound "
           "by memory, so a change pays only through the bytes it removes: the KV-cache format and "
           "skipping the weight rows of zero activations; 4-bit activations barely move it. The zero-skipping "
           f"step uses the traces' `{data.config.profile}` activation statistics (`measured` = seeded random "
           "weights, whose ReLU² and TopK sparsity is lower than a trained model's; `--profile paper-table2` "
           "uses the paper's Table 2).")
    s.table(_table(data, "gain_ladder", "a4.8 over b1.58, one change at a time"))
    return s


def memory_footprint(data: ReportData) -> Section:
    return Section("Memory footprint").figure(
        Figure("footprint", "Weights + KV cache vs context (dotted: weights alone)"))


def roofline_section(data: ReportData) -> Section:
    return Section("Roofline").text(
        "Every op of every decode step and prefill on its accelerator's roofline: x = useful ops per "
        "off-chip byte, y = achieved ops/s. Ops with no off-chip traffic are not drawn (infinite "
        "intensity). Roofs: one per supported operand pair.").figure(
        Figure("roofline", "Roofline of every op (colours: datapath; markers: op class)"))


def sparsity_section(data: ReportData) -> Section:
    return Section("Per-op sparsity and bits").figure(
        Figure("sparsity_bits", "Per-op input sparsity and operand bits (decode, layer 0)"))


def measured_kernels(data: ReportData) -> Section:
    s = Section("Measured H100 kernels")
    if "measured_speedups" not in data.tables:
        s.text(f"No measured kernel data found in `{data.config.measured_dir}` (`measured_*.parquet|csv`).")
    else:
        s.text(f"Measured on {', '.join(data.gpus or ['an unnamed GPU'])}; speedup = cuBLAS FP16 time / kernel "
               "time at the same shape, measured in the same run and the same timing mode (`cuda_graph`: "
               "CUDA-graph replays, or one launch at a time; attention: torch SDPA, whole block: the FP16 "
               "block). Sources: " + ", ".join(f"`{x}`" for x in sorted(set(data.shown_speedups.source))) + ".")
        s.table(_table(data, "measured_speedups", "Measured kernel times (us) and speedups"))
    s.figure(Figure("measured_speedups", "Measured H100 kernel speedups over cuBLAS FP16"))
    s.figure(Figure("measured_roofline", "Measured kernels on the H100's roofline (roofs measured in the same "
                                         "run) and the share of copy bandwidth reached at decode"))
    return s


def simulator_vs_measured(data: ReportData) -> Section:
    s = Section("Simulator vs measured")
    if "sim_validation" not in data.tables:
        s.text("Nothing to compare (no measured kernel data or no reference accelerator).")
    else:
        held = data.sim_classes[data.sim_classes.split == "held-out"]
        s.text("Every measured kernel call is replayed on the preset that describes it. Baselines (cuBLAS, "
               "torch SDPA, gemlite) run on `h100-like`, whose peak rates and bandwidth are the measured "
               "ceilings (8192^3 cuBLAS GEMMs, device copy): no per-shape timing was used to build it. Our "
               "Triton kernels run on `h100-triton` = `h100-like` plus a launch latency and the rates at which "
               "the CUDA cores decode packed ternary weights and 3-bit KV codes, fitted on a named calibration "
               "subset (`sim/validation/calibrate.py`, sources in the YAML); MAPE is reported on the held-out calls. "
               f"Bound: MAPE <= {100 * VALIDATION_BOUND:.0f}% per kernel class; "
               f"{int(held.within_bound.sum())} of {len(held)} held-out classes meet it.")
        s.table(_table(data, "sim_validation", "Simulated vs measured, per kernel class (err = (sim - measured) "
                                               "/ measured)"))
        s.text("Per call: `tables/sim_vs_measured.csv`.")
    s.figure(Figure("sim_vs_measured", "Simulated vs measured time per kernel call (held-out and calibration "
                                       "calls; each on the preset that describes it)"))
    return s


def files(data: ReportData) -> Section:
    return Section("Files").text(
        "- `config.yaml`: the study configuration, the command line and versions\n"
        "- `tables/*.csv`: every table above; `summary_all.csv` (headline numbers at every context), "
        "`summary_full.csv` (every summary column), `ceilings.csv` (roofline roofs), "
        "`tables/ops.parquet` (per-op sim results with roofline "
        "coordinates), `tables/traces.parquet` (the op traces)\n"
        "- `figures/*.png|svg`: every figure")


#: The report's sections, in order.
SECTIONS: tuple[Callable[[ReportData], Section | None], ...] = (
    what_was_run, paper_claims, energy_and_speed, gain_origin, memory_footprint, roofline_section, sparsity_section,
    measured_kernels, simulator_vs_measured, files)


def build_document(data: ReportData) -> Document:
    """The report document: every section of :data:`SECTIONS` the study has something for."""
    doc = Document(f"1-bit LLM co-design report: {data.config.name}")
    doc.sections += [s for s in (make(data) for make in SECTIONS) if s is not None]
    return doc
