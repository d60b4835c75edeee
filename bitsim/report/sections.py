"""The report's sections, one function each, from the collected :class:`~bitsim.report.collect.ReportData`.

The report concludes first (executive summary, the chip it recommends, the claims in a few rows),
then shows how the comparison is set up and the evidence, axis by axis.  Every figure caption names
its profile and energy basis; raw tables are attached CSVs (``{csv:<name>}`` links), the body keeps
the short ones.
"""
from __future__ import annotations

from typing import Callable

import pandas as pd

from bitsim.experiments.baselines import TABLE_DATAPATHS as BASELINE_TABLE
from bitsim.experiments.fair import KV_TOLERANCE, profile_label
from bitsim.experiments.sizing import BASES
from bitsim.report.claims import CLAIMS
from bitsim.report.collect import ReportData, latest_run
from bitsim.report.conclusions import batch_ratios, chip_advice, findings, quoted_batches
from bitsim.report.document import Document, Figure, Section, Table
from bitsim.report.labels import context_label
from bitsim.report.measured import VALIDATION_BOUND, unreplayed_gpus
from bitsim.report.serving import serving_headline, serving_section
from bitsim.report.validation import published_section, whole_token_section


def _table(data: ReportData, stem: str, caption: str, floatfmt: str = "{:.3g}",
           df: pd.DataFrame | None = None) -> Table:
    """The document block of the file ``tables/<stem>.csv`` (``df``: a shorter view of it for the body)."""
    return Table(name=stem, df=data.tables[stem].df if df is None else df, caption=caption, floatfmt=floatfmt)


def _attached(data: ReportData, *stems: str) -> str:
    have = [s for s in stems if s in data.tables]
    return ", ".join(f"{{csv:{s}}}" for s in have)


def executive_summary(data: ReportData) -> Section:
    s = Section("Executive summary")
    plan = data.study.plan
    comp = plan.comparisons[data.claims_preset]
    s.text(f"Each comparison uses one activation profile ({data.profile_note()[len('profile: '):]}) and one "
           f"energy basis ({data.energy_note[len('energy: '):]}). a4.8 is compared with the **strongest** "
           "b1.58 -- its best KV cache, the same zero-skipping logic, the same arrays -- and with FP16 at its "
           f"best KV option ({comp.variants['fp16'].changes if 'fp16' in comp.variants else 'not in the study'}).")
    found = [f for f in [serving_headline(data)] if f] + findings(data)
    if found:
        s.text("\n".join(f"- {f}" for f in found))
    else:
        s.text("- The study is too small for the summary's findings (it needs the ladder and the sweeps).")
    return s


def chip_section(data: ReportData) -> Section | None:
    advice = chip_advice(data)
    if not advice:
        return None
    s = Section("What a 1-bit / a4.8 chip should look like")
    s.text(f"Derived from the sweeps of this study ({data.claims_preset}, "
           f"{profile_label(data.profile)}; chip model energy):")
    s.text("\n".join(f"- {a}" for a in advice))
    return s


def claims_section(data: ReportData) -> Section:
    s = Section("Claims")
    s.text("Verdict rule: **holds** if ours >= 0.9 x claimed, **partly** if a real gain (>= 1.1x) below that, "
           "**does not hold** otherwise. Speed verdicts are against the strongest baselines; *survives* says "
           "whether the verdict is the same at both ends of the ratio's sensitivity band (pJ/bit, static power, "
           f"sustained bandwidth, sparsity profile). Preset: {data.claims_preset} ({profile_label(data.profile)}), "
           f"decode at batch {data.config.batch} on the iso-peak chips (other batches: the Batch section). "
           "A measured-GPU verdict judges our kernels on that GPU, not the number format. "
           f"Every row, with the full reason: {_attached(data, 'claims')}." + _claims_across_batch(data))
    s.table(_table(data, "claims_summary", "The claims in short (one headline row per claim and evidence)"))
    s.text("Sources: " + "; ".join(f"{c.text}: {c.source}" for c in CLAIMS.values()) + ".")
    return s


def _claims_across_batch(data: ReportData) -> str:
    """' The speed claims across batch (2k context, iso-peak): a4.8 / b1.58 1.25x at batch 1, ...' or ''."""
    parts = []
    for den, claimed in (("b1.58", 2.0), ("fp16", 4.0)):
        r = batch_ratios(data, "a4.8", den)
        shown = quoted_batches(r)
        if len(shown) > 1:
            parts.append(f"a4.8 / {den} (claimed {claimed:g}x) " + ", ".join(f"{r[b]:.2f}x at batch {b}"
                                                                            for b in shown))
    if not parts:
        return ""
    ctx = context_label(int(data.axes["batch"].context.iloc[0]))
    return (f" The speed claims across batch ({ctx} context, iso-peak chips, zero skipping on; "
            f"{_attached(data, 'batch')}): " + "; ".join(parts) + ".")


def setup_section(data: ReportData) -> Section:
    cfg, res = data.config, data.study
    s = Section("How the comparison is set up")
    lines = []
    for preset, comp in res.plan.comparisons.items():
        lines.append(f"- **{preset}**: {profile_label(comp.profile)} -- {comp.profile_reason}"
                     + ("; left out: " + "; ".join(f"{d} ({w})" for d, w in comp.dropped.items())
                        if comp.dropped else ""))
    s.text("One activation profile per comparison (never mixed inside one): trained where the model can apply "
           "a trained profile, else the paper's Table 2, else seeded random weights.\n" + "\n".join(lines))
    s.text("Strongest baselines: every datapath stores its KV cache in the fewest bits it is documented to "
           "tolerate among the formats any chip of the comparison offers ("
           + "; ".join(f"{d} {b}-bit: {src}" for d, (b, src) in KV_TOLERANCE.items() if d in cfg.datapaths)
           + "), and every chip gets the zero-skipping logic any of them has. Arrays are the presets' "
             "(iso-peak); the iso-area and iso-power chips are in their own section.")
    s.table(_table(data, "variants", "How each datapath runs in each comparison"))
    s.text(f"Workloads: decode (batch {cfg.batch}) at contexts {', '.join(context_label(c) for c in cfg.contexts)}"
           + (f" and a {cfg.prefill_tokens}-token prefill" if cfg.prefill_tokens else "")
           + "; each datapath on its matched chip and on the reference "
           + (", ".join(f"`{r}`" for r in cfg.reference) or "(none)")
           + f". Sweeps on {data.claims_preset}: batch {', '.join(str(b) for b in cfg.batches)}; peak bandwidth "
           f"x{', x'.join(f'{f:g}' for f in cfg.bandwidth_factors)}; memory generations; iso-peak / iso-area / "
           f"iso-power. {len(res.trace_meta)} study traces (every trace built once, shared by every experiment); "
           f"study time {res.seconds:.0f} s.")
    s.table(_table(data, "accelerators", "Accelerators (sim presets / YAML, as the presets have them)"))
    return s


def _baselines_view(t: pd.DataFrame) -> pd.DataFrame:
    """One row per (basis, context, batch): a4.8's speedup over each baseline, its tokens/s and the strongest."""
    keys = ["basis", "context", "batch"]
    wide = t[t.datapath != "a4.8"].pivot_table(index=keys, columns="datapath", values="a48_speedup",
                                               dropna=False, sort=False)
    wide = wide[[d for d in BASELINE_TABLE if d in wide.columns and d != "a4.8"]]
    wide.columns = [f"a4.8 / {d}" for d in wide.columns]
    first = t.groupby(keys, sort=False).first()
    a48 = t[t.datapath == "a4.8"].set_index(keys)
    out = wide.join(a48.tokens_per_s.rename("a4.8 tok/s")).join(
        first[["strongest_baseline", "strongest_conventional"]].rename(
            columns={"strongest_baseline": "strongest", "strongest_conventional": "strongest conventional"}))
    out = out.reset_index()
    out["context"] = [context_label(int(c)) for c in out.context]
    return out


#: What each basis holds equal in the table of a4.8 against each baseline.
BASIS_MEANING = {
    "iso-peak": "the presets as shipped: the same clock, off-chip memory and SRAM, arrays sized for the same peak "
                "MAC throughput",
    "iso-area": "every chip's arrays, vector lanes and SRAM bandwidth scaled by one factor so its whole chip has "
                "the a4.8 chip's area{area}, within 1 %; clock, off-chip memory and SRAM sizes unchanged",
    "iso-power": "every chip's arrays, vector lanes and SRAM bandwidth scaled by one factor so it draws the a4.8 "
                 "chip's power on the {prefill}-token prefill (the compute-bound phase sets a power budget; within "
                 "1 %); clock, off-chip memory and SRAM sizes unchanged"}


def _basis_words(t: pd.DataFrame, basis: str, prefill: int) -> str:
    a = t[(t.basis == basis) & (t.datapath == "a4.8")].area_mm2
    area = f" ({a.iloc[0]:.1f} mm2)" if len(a) else ""
    return f"**{basis}**: " + BASIS_MEANING.get(basis, "").format(area=area, prefill=prefill)


def baselines_section(data: ReportData) -> Section | None:
    """a4.8 against FP16, every quantized baseline and the strongest b1.58, across batch, context and basis."""
    t = data.axes.get("baselines")
    if t is None or not len(t):
        return None
    s = Section("a4.8 against each baseline")
    bases = list(dict.fromkeys(t.basis))
    left = [b for b in BASES if b not in bases]
    considered = "; ".join(f"{d} ({v or 'as its preset'})" for d, v in
                           t[t.datapath != "a4.8"].groupby("datapath", sort=False).variant.first().items())
    s.text(f"The strongest-baseline rule extends to weight precision: every baseline an architect would deploy, "
           f"each on its own chip preset with the fewest KV bits it tolerates and the same zero skipping, decoding "
           f"{t.preset.iloc[0]} ({profile_label(t.profile.iloc[0])}). Considered: {considered}. The quantized "
           f"datapaths' KV cache: {KV_TOLERANCE['w4a16'][1]}. Bases (what each holds equal): "
           + "; ".join(_basis_words(t, b, data.config.prefill_tokens) for b in bases)
           + (f"; {', '.join(left)} left out of this run (`baseline_bases` in the study config; iso-power needs a "
              "prefill to size the chips on)" if left else "")
           + ". A cell is a4.8's decode tokens/s over the baseline's; empty where either does not fit the chip's "
             f"memory (weights + KV cache, closed form). The strongest baseline of a row is the fitting one with "
             f"the highest tokens/s (b1.58 included); the strongest conventional one leaves b1.58 out. Every "
             f"column, energy too: {_attached(data, 'baselines')}.")
    missed = t[~t.basis_within.astype(bool)].drop_duplicates(["datapath", "basis"])
    if len(missed):
        s.text("Sized chips that miss their target by more than 1 % (the arrays alone cannot reach it): "
               + ", ".join(f"{r.datapath} {r.basis}" for r in missed.itertuples()) + ".")
    s.table(Table(name="baselines", df=_baselines_view(t), caption="a4.8's decode speedup over each baseline",
                  floatfmt="{:.3g}"))
    return s


def energy_and_speed(data: ReportData) -> Section:
    s = Section("Energy and speed")
    s.figure(Figure("energy_by_component", f"Energy per token by component on every chip of the chip-model energy "
                    f"basis, each bar named by its datapath and chip. {data.note()}. The GPU reference preset "
                    "(dynamic energy only) is not drawn."))
    if len(data.board):
        s.text(_board_text(data))
    s.figure(Figure("throughput", f"Decode tokens/s against context (solid: matched chip; dashed: reference). "
                    f"{data.note(energy=False)}."))
    t = data.tables["summary"].df
    s.table(_table(data, "summary", "Headline numbers on the matched chips (decode at the context nearest 2k, and "
                   "prefill); every chip and context: summary_all.csv, every column: summary_full.csv",
                   df=t[~t.accelerator.isin(data.config.reference)] if len(t) else t))
    s.text(f"Ratios a4.8 / the strongest baselines at every context and chip: {_attached(data, 'ratios')}.")
    return s


def _board_text(data: ReportData) -> str:
    """The measured board energy in words: another energy basis, so it is never drawn beside the chip model."""
    b = data.board[(data.board.scope == "7b_token") & (data.board.phase == "decode")]
    if b.empty:
        return f"Measured GPU board energy (blocks only, no whole token): {_attached(data, 'board_energy')}."
    per_gpu = []
    for gpu, g in b.groupby(b.gpu.astype(str), sort=True):
        per = ", ".join(f"{r.datapath} {1e3 * r.j_per_token:,.0f} mJ"
                        + (f" ({1e3 * r.j_per_token_above_idle:,.0f} above idle)" if "j_per_token_above_idle" in g
                           else "") for r in g.itertuples())
        per_gpu.append(f"{gpu}: {per} ({g.note.iloc[0]})")
    return ("For scale, not comparison: the measured board energy of a whole 7B decode token -- "
            + "; ".join(per_gpu) + " -- is on another basis (the whole board, idle power included, our GPU kernels "
            f"with the KV cache each run used), so it is listed here, not drawn beside the chip model "
            f"({_attached(data, 'board_energy')}).")


def gain_origin(data: ReportData) -> Section | None:
    if "gain_ladder" not in data.tables:
        return None
    s = Section("Where a4.8's decode gain comes from")
    s.text("From the strongest b1.58 on its chip to a4.8 on its chip, one change per step (step 0 is b1.58 as "
           "its preset has it, for reference). Each step is also run with zero skipping off on both rungs, which "
           "separates what the activation format buys from what its zeros buy.")
    s.figure(Figure("gain_ladder", f"Decode tokens/s per rung, zero skipping on (solid) and off (hatched). "
                    f"{data.note([data.claims_preset], energy=False)}."))
    s.table(_table(data, "gain_ladder", "a4.8 over the strongest b1.58, one change at a time"))
    return s


def quantity(value: float, unit: str) -> str:
    """'9 sequences', '1 sequence', '11,335 tokens', '6,554 GB/s': a count's unit is singular for one."""
    text = f"{value:,.0f}"
    plural = unit.isalpha() and unit.endswith("s") and not unit.endswith("ss")   # 'sequences', not 'GB/s'
    return f"{text} {unit[:-1] if text == '1' and plural else unit}"


def _crossover_lines(data: ReportData, figure: str) -> str:
    c = data.axes.get("crossovers")
    if c is None or c.empty:
        return ""
    c = c[c.figure == figure]
    out = []
    for r in c.itertuples():
        v = ("not reached in the swept range" if r.value != r.value else
             f"{quantity(r.value, r.unit)}" + ("" if r.where == "within the range" else f" ({r.where})"))
        out.append(f"- {r.crossover} ({r.datapath}): {v} -- {r.definition}")
    return "\n".join(out)


def batch_section(data: ReportData) -> Section | None:
    if "batch" not in data.tables:
        return None
    s = Section("Batch")
    s.figure(Figure("batch_sweep", f"Decode against the batch at {context_label(data.study.plan.headline_context)} "
                    f"context, capacity-aware (a point whose weights + KV cache exceed the chip's memory is not "
                    f"drawn; each datapath's capacity batch is marked). "
                    f"{data.note([data.claims_preset], energy=False)}."))
    s.text(_crossover_lines(data, "batch") + f"\n\nEvery point: {_attached(data, 'batch')}.")
    return s


def memory_footprint(data: ReportData) -> Section:
    s = Section("Context and memory footprint")
    s.figure(Figure("footprint", f"Storage: weights + KV cache against context, with each chip's off-chip capacity "
                    f"(dash-dot). {data.note(energy=False)}."))
    s.figure(Figure("step_bytes", f"Traffic: off-chip bytes one decode step moves for the weights and for the KV "
                    f"cache (batch {data.config.batch}), and the context where they cross (the crossovers below). "
                    f"{data.note([data.claims_preset], energy=False)}."))
    lines = _crossover_lines(data, "context")
    if lines:
        s.text(lines)
    return s


def bandwidth_section(data: ReportData) -> Section | None:
    if "bandwidth" not in data.tables:
        return None
    s = Section("Memory bandwidth and technology")
    s.figure(Figure("bandwidth_sweep", "Decode tokens/s against peak bandwidth (dotted: the bandwidth-bound "
                    "line), and decode energy with each memory generation of sim's cost table at the same peak "
                    f"bandwidth. {data.note([data.claims_preset])}."))
    s.text(_crossover_lines(data, "bandwidth") + "\n\nEvery point: "
           + _attached(data, "bandwidth", "technology") + ".")
    return s


def bases_section(data: ReportData) -> Section | None:
    if "bases" not in data.tables:
        return None
    b = data.tables["bases"].df
    s = Section("Iso-peak, iso-area and iso-power")
    metric = b[b.basis == "iso-area"].basis_metric.iloc[0] if (b.basis == "iso-area").any() else ""
    s.text("The presets compare at iso-peak (same PE count, clock, memory, SRAM). Here every array of the 1-bit "
           f"chips is scaled to the FP16 chip's area (iso-area; area: {metric}; matched within 1 %) or to its "
           f"power on the {data.config.prefill_tokens}-token prefill (iso-power: the compute-bound phase sets a "
           "chip's power budget); the "
           "same chips then run decode. Each point names the basis that sized it.")
    s.figure(Figure("comparison_bases", f"Decode and prefill tokens/s and decode energy per basis. "
                    f"{data.note([data.claims_preset])}."))
    short = b[["datapath", "phase", "basis", "array_factor", "area_mm2", "power_w", "tokens_per_s",
               "energy_j_per_token", "basis_within"]].assign(energy_j_per_token=1e3 * b.energy_j_per_token)
    short = short.rename(columns={"array_factor": "PEs x", "area_mm2": "mm2", "power_w": "W",
                                  "tokens_per_s": "tok/s", "energy_j_per_token": "mJ/token",
                                  "basis_within": "within 1 %"})
    s.table(_table(data, "bases", "Each design point and the basis that sized it", df=short))
    return s


def sensitivity_section(data: ReportData) -> Section | None:
    if "sensitivity" not in data.tables:
        return None
    sens = data.tables["sensitivity"].df
    s = Section("Sensitivity")
    s.text("Each headline ratio with one uncertain input moved at a time: the off-chip pJ/bit over sim's HBM "
           "generations, static power 0.5x-2x, sustained bandwidth 70-100 % of peak, and the other activation "
           "profiles the model can apply. The claims table says whether each verdict survives its band.")
    s.figure(Figure("sensitivity_bands", f"Headline ratios: nominal (dot), band (grey) and each knob (markers); "
                    f"orange ticks: the claimed 2x and 4x (speed rows only; no energy ratio is claimed). "
                    f"{data.note([data.claims_preset])}."))
    s.text(f"Every knob setting: {_attached(data, 'sensitivity')}." if len(sens) else "")
    return s


def roofline_section(data: ReportData) -> Section:
    return Section("Roofline").text(
        "Every op of every decode step and prefill on its accelerator's roofline: x = useful ops per "
        "off-chip byte, y = achieved ops/s. Ops with no off-chip traffic are not drawn (infinite "
        "intensity). Roofs: one per supported operand pair, the off-chip slope at the sustained bandwidth, "
        "and the vector unit's (dashed, element-passes per second: vector ops count one op per element).").figure(
        Figure("roofline", f"Roofline of every op of {data.claims_preset} (colours: datapath; markers: op class). "
               f"{data.note([data.claims_preset], energy=False)}."))


def sparsity_section(data: ReportData) -> Section:
    s = Section("Per-op sparsity and bits")
    s.figure(Figure("sparsity_bits", f"Per-op input sparsity (up_proj: its input's, and apart the MACs the "
                    f"gate-first rule skips) and operand bits of {data.claims_preset} (decode, layer "
                    f"0). {data.note([data.claims_preset], energy=False)}."))
    t2 = data.tables.get("trained_table2")
    if t2 is not None:
        s.text("The trained profiles of the training study (a 10 M-parameter model on the Python standard "
               "library, reports/data/trained_table2.csv) beside the paper's Table 2 and random weights (overall "
               "sparsity, %):")
        t = t2.df
        short = t[["model", "source", "qkv_pct", "out_pct", "up_pct", "gate_pct", "down_pct", "overall_pct"]]
        s.table(_table(data, "trained_table2", "Projection input sparsity (%): paper, random weights and trained",
                       floatfmt="{:.1f}", df=short))
    return s


def measured_kernels(data: ReportData) -> Section:
    s = Section("Measured GPU kernels")
    if "measured_speedups" not in data.tables:
        s.text(f"No measured kernel data found in `{data.config.measured_dir}` (`measured_*.parquet|csv`).")
    else:
        spread = data.shown_speedups.spread.ne("none").any() if "spread" in data.shown_speedups else False
        s.text(f"Measured on {', '.join(data.gpus or ['an unnamed GPU'])}; speedup = FP16 baseline time / kernel "
               "time at the same shape, in the same run and the same timing mode (one panel per mode). "
               + ("Error bars span the repeats' quartiles (or min/max) where the run stored them. " if spread else
                  "These runs stored no spread: no error bars. ")
               + "Sources: " + ", ".join(f"`{x}`" for x in sorted(set(data.shown_speedups.source)))
               + f"; the figure draws the newest run (`{latest_run(data.measured)}`), never two runs' kernels "
               + f"together. Every timing of every run: {_attached(data, 'measured_speedups')}.")
    note = "profile: none (measured kernels on synthetic inputs) · energy: none shown"
    s.figure(Figure("measured_speedups", f"Measured kernel speedups over the FP16 baseline. {note}."))
    s.figure(Figure("measured_roofline", "Measured kernels on each GPU's roofline: the run of each GPU with the most "
                    "decode calls (roofs measured in the same run; every run's rows are in the attached table; "
                    f"dashed: the simulator preset of that GPU where it has one). {note}."))
    return s


def simulator_vs_measured(data: ReportData) -> Section:
    s = Section("Simulator vs measured")
    missing = unreplayed_gpus(data.measured)
    if "sim_validation" not in data.tables:
        s.text("Nothing to compare (no measured kernel data, or no simulator preset for its GPU).")
    else:
        c = data.sim_classes
        held, cal = c[c.split == "held-out"], c[c.split == "calibration"]
        ok = held[held.within_bound]
        bad = held[~held.within_bound]
        s.text("Every measured kernel call is replayed on the presets of its own GPU. Baselines (cuBLAS, torch "
               "SDPA, gemlite) run on the ideal preset, whose peak rates and bandwidth are that GPU's measured "
               "ceilings: no per-shape timing was used to build it. Our Triton kernels run on the fitted preset "
               "(ideal + launch latency and the CUDA cores' decode rates), fitted on a named calibration subset; "
               "**calibration calls are listed apart and never counted as validation**.")
        def named(rows) -> str:  # one class per GPU preset: the preset says which GPU it was measured on
            return ", ".join(f"{r['class']} on {r['preset']} {100 * r.mape:.0f}%" for _, r in rows.iterrows())

        s.text(f"Held-out: {len(ok)} of {len(held)} kernel classes within MAPE <= {100 * VALIDATION_BOUND:.0f}% ("
               + named(ok) + "); outside: " + (named(bad) or "none")
               + f". Calibration ({len(cal)} classes, the rows a preset parameter is fitted or derived on): "
               + named(cal) + "."
               + (" The H200 presets (h200-like, h200-triton) carry the parameters fitted on the H100 rows plus "
                  "costs derived from a few named H200 rows (read floors, two quantizer rows, two GEMV shapes of "
                  "ours and one of cuBLAS, the KV3 attention rows), which are the H200's calibration rows; every "
                  "other H200 row is held out (cross-GPU validation)."
                  if c.preset.astype(str).str.startswith("h200").any() else "")
               + (f" Not replayed: {', '.join(missing)} (sim has no preset for it yet)." if missing else ""))
        s.table(_table(data, "sim_validation", "Simulated vs measured, every kernel class (err = (sim - measured) / "
                                               "measured)"))
        s.text(f"Per call: {_attached(data, 'sim_vs_measured')}.")
    s.figure(Figure("sim_vs_measured", "Simulated vs measured time per kernel call (filled: held-out, hollow: "
                    "calibration; each on the preset of its GPU). profile: none (measured kernels) · energy: none "
                    "shown."))
    return s


def whole_token(data: ReportData) -> Section | None:
    return whole_token_section(data.table_df("whole_token_validation"))


def published_chips(data: ReportData) -> Section | None:
    return published_section(data.table_df("published_chips"))


def files(data: ReportData) -> Section:
    names = sorted(t.name for t in data.tables.values())
    return Section("Files").text(
        "- `config.yaml`: the study configuration, the command line and versions\n"
        "- `tables/`: " + ", ".join(f"`{n}`" for n in names) + "\n"
        "- `figures/*.png|svg|pdf`: every figure (PNG for the page, SVG and PDF for papers and slides)")


#: The report's sections, in order.
SECTIONS: tuple[Callable[[ReportData], Section | None], ...] = (
    executive_summary, serving_section, chip_section, claims_section, setup_section, baselines_section,
    energy_and_speed, gain_origin,
    batch_section, memory_footprint, bandwidth_section, bases_section, sensitivity_section, roofline_section,
    sparsity_section, measured_kernels, whole_token, simulator_vs_measured, published_chips, files)


def build_document(data: ReportData) -> Document:
    """The report document: every section of :data:`SECTIONS` the study has something for."""
    doc = Document(f"1-bit LLM co-design report: {data.config.name}")
    doc.sections += [s for s in (make(data) for make in SECTIONS) if s is not None]
    return doc
