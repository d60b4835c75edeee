"""Figures of the measured GPU kernels: speedups, simulator vs measured, and the measured roofline."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from bitsim.report.figures.common import (
    PALETTE8,
    bar_values,
    empty,
    legend_below,
    need,
    plain_log_ticks,
    sized_panels,
    titled,
)
from bitsim.report.labels import run_name
from bitsim.report.measured import BASELINES
from contract import measured_final_rows


def _speedup_panel(row) -> str:
    """Which panel of :func:`measured_speedups` a speedup row belongs to."""
    fam, M = row["family"], int(row["M"])
    if fam == "linear":
        return "gemv" if M == 1 else ("small" if M <= 512 else "prefill")
    return "other"


_PANEL_TITLES = {"gemv": "decode GEMV, M = 1 (weights N x K)", "small": "small-batch GEMM, M = {ms}",
                 "prefill": "prefill GEMM, M = {ms}",
                 "other": "decode attention (vs torch SDPA) and one 7B block (vs the FP16 block)"}


def _speedup_tick(row, several_m: bool) -> str:
    if row["family"] == "linear":
        nk = f"{int(row['N'])}x{int(row['K'])}"
        return f"M={int(row['M'])}\n{nk}" if several_m else nk
    shape = str(row["shape"]).split(" [")[0]   # the run is in the panel title
    return shape.replace(" ctx", "\nctx").replace("prefill ", "prefill\n")


def measured_speedups(speedups: pd.DataFrame, run: str | None = None, note: str = ""):
    """Measured kernel speedups over the FP16 baseline of the same shape, run and timing mode: one run.

    ``speedups``: a ``measured_speedups`` table; ``run``: the ``source`` (measuring run) to draw, by
    default the only one or, with several, the last by name -- kernels of different runs (GPUs, kernel
    versions) are never drawn together.  One panel per regime (decode GEMV M = 1, small-batch GEMM,
    prefill GEMM, attention and whole block), each in one timing mode (CUDA-graph replays where the
    run has them, else launched one at a time; the panel says which).  One bar per (kernel, shape),
    its value written on it, an error bar where the run stored a spread; each kernel keeps its colour
    in every panel (one legend under the panels).  Log y; the line at 1 is the FP16 baseline.
    """
    need(speedups, "measured_speedups", "measured_speedups")
    d = speedups[~speedups.kernel.isin(tuple(BASELINES.values()))].copy()
    if d.empty:
        return empty("Measured kernel speedups", "no measured kernel data in reports/data/")
    if "source" not in d.columns:
        d["source"] = ""
    run = run if run is not None else sorted(d.source.unique())[-1]
    d = d[d.source == run]
    if d.empty:
        return empty("Measured kernel speedups", f"no measured kernel rows from the run {run}")
    d["panel"] = d.apply(_speedup_panel, axis=1)
    d["mode"] = np.where(d.cuda_graph.astype(bool), "CUDA graph", "one launch at a time")
    panels = []
    for p in _PANEL_TITLES:
        modes = set(d[d.panel == p]["mode"])
        if modes:
            panels.append((p, "CUDA graph" if "CUDA graph" in modes else "one launch at a time"))
    kernels = list(dict.fromkeys(d.sort_values(["impl", "kernel"], ascending=[False, True]).kernel))
    colours = class_colours(kernels)   # one colour per kernel, the same in every panel
    ncol = min(len(panels), 2)
    nrow = -(-len(panels) // ncol)
    fig, axes = sized_panels(nrow, ncol, "page" if ncol > 1 else "column", height=2.9 * nrow + 1.2)
    for ax, (panel, mode) in zip(axes.flat, panels):
        _speedup_bars(ax, d[(d.panel == panel) & (d["mode"] == mode)], colours)
        ms = ", ".join(str(m) for m in sorted(set(d[(d.panel == panel)].M.astype(int))))
        ax.set_title(_PANEL_TITLES[panel].format(ms=ms) + f" ({mode})", fontsize=8, loc="left")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    spread = "error bars: " + ("quartiles or min/max of the repeats" if d.spread.ne("none").any() else
                               "none (one run, no spread stored)")
    gpu = f"{run_name(run)} run"
    titled(fig, f"Measured kernels ({gpu}): speedup over the FP16 baseline at the same shape and timing mode "
                f"(line at 1; higher is better; {spread})", note)
    fig.tight_layout()
    legend_below(fig, list(axes.flat), ncol=4)
    return fig


def _speedup_bars(ax, p: pd.DataFrame, colours: dict) -> None:
    """One regime of one run: a bar per (kernel, shape) in the kernel's colour, log y, the baseline at 1."""
    p = p.sort_values(["M", "N", "K"])
    several_m = p.M.nunique() > 1 and p.family.eq("linear").all()
    shapes = list(dict.fromkeys(p["shape"]))
    ks = [k for k in colours if k in set(p.kernel)]
    width = 0.84 / max(len(ks), 1)
    for j, kern in enumerate(ks):
        s = p[p.kernel == kern].sort_values("speedup").groupby("shape").last()
        idx = [i for i, sh in enumerate(shapes) if sh in s.index]
        rows = s.loc[[shapes[i] for i in idx]]
        xs = np.array(idx, dtype=float) + (j - (len(ks) - 1) / 2) * width
        err = None
        if rows.speedup_lo.notna().any():
            err = np.vstack([(rows.speedup - rows.speedup_lo).clip(lower=0).fillna(0),
                             (rows.speedup_hi - rows.speedup).clip(lower=0).fillna(0)])
        bars = ax.bar(xs, rows.speedup, width * 0.92, color=colours[kern], yerr=err, capsize=2,
                      error_kw={"lw": 0.8}, hatch=None if rows.impl.iloc[0] == "ours" else "...", edgecolor="white",
                      linewidth=0.4, label=f"{kern} ({rows.impl.iloc[0]})")
        if len(ks) * len(shapes) <= 30:   # more bars than that: the values are in the CSV, the axis reads them
            bar_values(ax, bars, "{:.2f}", fontsize=7, rotation=90 if len(ks) * len(shapes) > 10 else 0)
    ax.axhline(1.0, color="k", lw=0.9)
    ax.set_yscale("log")
    ax.set_xticks(range(len(shapes)))
    many = len(shapes) > 8   # many shapes: one-line ticks, slanted
    ticks = [_speedup_tick(p[p["shape"] == s].iloc[0], several_m) for s in shapes]
    ax.set_xticklabels([t.replace("\n", " ") for t in ticks] if many else ticks,
                       fontsize=7 if len(shapes) > 5 else 7, rotation=30 if many else 0,
                       ha="right" if many else "center")
    ax.set_xlim(-0.6, len(shapes) - 0.4)
    ax.set_ylabel("speedup (x, log)", fontsize=8)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi * 1.8)
    plain_log_ticks(ax)
    ax.tick_params(axis="y", labelsize=7)


#: Colours after the 8 of PALETTE8, each far from those and from each other (hue or lightness).
MORE_COLOURS = ("#8C564B", "#9467BD", "#7F7F7F", "#BCBD22", "#17BECF", "#1B2A6B", "#E7298A", "#66A61E",
                "#A6761D", "#FF9DA7", "#6B0F1A", "#B3DE69", "#2F4F4F", "#00A087", "#3C5488", "#7E6148",
                "#F39B7F", "#8491B4", "#4DBBD5", "#B09C85")
#: Marker of each GPU preset family in :func:`sim_vs_measured` (colours are the kernel classes').
GPU_MARKERS = ("o", "s", "^", "D", "v", "P")


def sim_vs_measured(cmp: pd.DataFrame, note: str = ""):
    """Simulated vs measured time per kernel call (log-log, y = x and 2x bands) and the error of each.

    ``cmp``: a ``report_sim_vs_measured`` table (measured_us, sim_us, split, kernel_class and preset
    are drawn; ``calibration`` points are hollow).  Each kernel class has its own colour (one legend
    entry each, no colour reused) and each GPU its own marker (the ideal and fitted presets of one GPU
    share it).  Left: the scatter; right: signed relative error (sim - measured) / measured per call.
    The title gives the median absolute error of the held-out calls and, apart, of the calibration
    calls the fitted preset was fitted on.
    """
    need(cmp, "report_sim_vs_measured", "sim_vs_measured")
    d = cmp[(cmp.measured_us > 0) & (cmp.sim_us > 0)]
    if d.empty:
        return empty("Simulator vs measured GPU", "no measured kernel data to compare")
    fig, grid = sized_panels(1, 2, "page", height=4.0, gridspec_kw={"width_ratios": [1.1, 1]})
    ax, ax2 = grid[0]
    err = 100 * (d.sim_us - d.measured_us) / d.measured_us
    cal = d["split"].eq("calibration")
    classes = list(dict.fromkeys(d.kernel_class))
    colours = class_colours(classes)
    gpus = list(dict.fromkeys(d.preset.astype(str).str.split("-").str[0]))
    gpu = d.preset.astype(str).str.split("-").str[0]
    for kern in classes:
        for g in gpus:
            for hollow in (False, True):
                sel = (d.kernel_class == kern) & (gpu == g) & (cal == hollow)
                if not sel.any():
                    continue
                style = dict(s=22, marker=GPU_MARKERS[gpus.index(g) % len(GPU_MARKERS)], edgecolors=colours[kern],
                             facecolors="none" if hollow else colours[kern], alpha=0.85)
                ax.scatter(d.measured_us[sel], d.sim_us[sel], **style)
                ax2.scatter(d.measured_us[sel], err[sel], **style)
    lo = min(d.measured_us.min(), d.sim_us.min()) / 1.5
    hi = max(d.measured_us.max(), d.sim_us.max()) * 1.5
    xs = np.array([lo, hi])
    ax.plot(xs, xs, "k-", lw=1)
    ax.plot(xs, 2 * xs, "k:", lw=0.8)
    ax.plot(xs, xs / 2, "k:", lw=0.8)
    for a in (ax, ax2):
        a.set_xscale("log")
        a.set_xlim(lo, hi)
        a.set_xlabel("measured time per call (us)", fontsize=8)
        a.grid(True, which="both", alpha=0.3)
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    ax.set_ylabel("simulated time per call (us)", fontsize=8)
    ax2.axhline(0, color="k", lw=1)
    ax2.set_ylabel("error (sim - measured) / measured (%)", fontsize=8)
    ax2.set_title("error per call", fontsize=8)
    ax.set_title(_error_summary(err, cal), fontsize=8)
    titled(fig, "Simulator vs measured GPU kernels (solid line: sim = measured; dotted: 2x off)", note)
    fig.tight_layout()
    fig.legend(handles=_sim_legend(classes, colours, gpus, cal.any()), loc="upper center",
               bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=7, frameon=False)
    return fig


def class_colours(classes: list[str]) -> dict[str, tuple]:
    """One distinct colour per kernel class: the 8 Okabe-Ito colours, then :data:`MORE_COLOURS`, never one twice."""
    pool = list(PALETTE8) + list(MORE_COLOURS)
    if len(classes) > len(pool):
        raise ValueError(f"sim_vs_measured: {len(classes)} kernel classes, at most {len(pool)} distinct colours")
    return dict(zip(classes, pool))


def _error_summary(err: pd.Series, cal: pd.Series) -> str:
    parts = []
    if (~cal).any():
        parts.append(f"held-out: median |error| {np.median(np.abs(err[~cal])):.0f}% ({int((~cal).sum())} calls)")
    if cal.any():
        parts.append(f"calibration (fitted on): {np.median(np.abs(err[cal])):.0f}% ({int(cal.sum())} calls)")
    return ";\n".join(parts)   # one line each: a page-wide panel is too narrow for both


def _sim_legend(classes: list[str], colours: dict, gpus: list[str], has_calibration: bool) -> list:
    """Legend handles: one per kernel class (its colour), one per GPU (its marker), and the hollow = calibration key."""
    dot = dict(linestyle="none", markersize=5)
    out = [Line2D([], [], marker="o", color=colours[c], label=c, **dot) for c in classes]
    out += [Line2D([], [], marker=GPU_MARKERS[i % len(GPU_MARKERS)], color="0.3", label=f"{g} (ideal and fitted "
                   "presets)", **dot) for i, g in enumerate(gpus)]
    if has_calibration:
        out.append(Line2D([], [], marker="o", markerfacecolor="none", color="0.3", label="hollow: calibration call "
                          "(fitted on)", **dot))
    return out


def measured_roofline(measured: pd.DataFrame, preset_roofs: dict | None = None, note: str = ""):
    """Measured kernels on each GPU's own roofline, and the share of copy bandwidth at decode.

    ``measured``: a ``measured_trace`` table (op, kernel, impl, precision, M,
    N, K, sparsity, cuda_graph, us, bytes, ops, gbps, tops are drawn), with
    rows of op ``ceiling`` (kernel ``copy`` for GB/s, cuBLAS 8192^3 GEMMs for
    TOP/s) measured in the same run.  One row of two panels per measuring run (``source``; roofs
    never cross runs).  Left: every timed kernel call (fastest per kernel and shape) at x = ops /
    minimum bytes, y = achieved TOP/s, under the measured roofs.  Right: decode (M = 1) GEMV and
    attention calls, achieved GB/s as a share of the copy ceiling.  Tuning-sweep rows (kernel names
    ending in the tuning suffix) are left out.  ``preset_roofs`` (optional: source -> {name,
    bandwidth_gbps, peaks {precision: TOP/s}}) draws the simulator preset of that GPU dashed over
    the measured roofs, so the two ceilings can be compared (the box says where they differ by > 5 %).
    """
    need(measured, "measured_trace", "measured_roofline")
    runs = (list(measured.groupby("source", sort=True)) if "source" in measured.columns
            else [("", measured)])
    runs = [(src, m) for src, m in runs if (m.op == "ceiling").any() and (m.op != "ceiling").any()]
    if not runs:
        return empty("Measured kernels on the GPU roofline", "no measured kernel rows with ceilings")
    shown = fullest_run_per_gpu(runs)
    left = sorted(run_name(src) for src, _ in runs if src not in {s for s, _ in shown})
    fig, axes = sized_panels(len(shown), 2, "page", height=4.4 * len(shown),
                             gridspec_kw={"width_ratios": [1.0, 1.0]})
    for (src, m), (ax, ax2) in zip(shown, axes):
        _roofline_row(ax, ax2, m, (preset_roofs or {}).get(src), src)
    if left:
        note = (note + " " if note else "") + f"Runs not drawn (fewer decode rows on the same GPU): {', '.join(left)}."
    titled(fig, "Measured kernels on each GPU's roofline (the fullest run of each GPU, one per row)", note)
    fig.tight_layout()
    return fig


def run_gpus(measured: pd.DataFrame) -> str:
    """The GPU names a measuring run's rows record, joined ("" when the rows record none)."""
    return ", ".join(sorted({str(g) for g in measured.gpu.dropna()})) if "gpu" in measured.columns else ""


def fullest_run_per_gpu(runs: list[tuple[str, pd.DataFrame]]) -> list[tuple[str, pd.DataFrame]]:
    """Of several measuring runs ``(source, rows)``, the one per GPU with the most timed decode (M = 1) rows, then
    the most timed rows, then the newest ``date``, in GPU order: a page holds one roofline row per GPU, not one per
    run, and the right-hand panel draws decode calls."""
    best: dict[str, tuple[tuple[int, int, str], str, pd.DataFrame]] = {}
    for src, m in runs:
        gpu = run_gpus(m) or str(src)
        date = str(m["date"].astype(str).max()) if "date" in m.columns else ""
        timed = m[m.op != "ceiling"]
        decode = int((timed.M == 1).sum()) if "M" in timed.columns else 0
        key = (decode, len(timed), date)
        if gpu not in best or key > best[gpu][0]:
            best[gpu] = (key, src, m)
    return [(src, m) for _, (_, src, m) in sorted(best.items())]


def _roofline_row(ax, ax2, measured: pd.DataFrame, preset_roofs: dict | None, source: str) -> None:
    """One measuring run's roofline (left) and decode bandwidth shares (right)."""
    ceil = measured[measured.op == "ceiling"]
    final = measured_final_rows(measured)
    d = final[(final.op != "ceiling") & (final.us > 0) & (final.bytes > 0) & (final.ops > 0)]
    copy = ceil[ceil.kernel == "copy"].gbps
    if d.empty or copy.empty:
        ax.axis("off")
        ax2.axis("off")
        ax.set_title(f"{source}: no kernel rows with ceilings", fontsize=8.5)
        return
    bw = float(copy.max())  # GB/s
    # roofs: the run's 8192^3 ceilings, raised where a baseline (cuBLAS) call of that precision went faster
    base = d[(d.impl == "baseline") & d.op.isin(["gemm", "gemv"])].groupby("precision").tops.max()
    peaks = ceil[(ceil.kernel != "copy") & (ceil.tops > 0)].groupby("precision").tops.max()
    peaks = pd.concat([peaks, base[base.index.isin(peaks.index)]]).groupby(level=0).max()
    peaks = peaks.sort_values(ascending=False)
    d = d.sort_values("us").drop_duplicates(["kernel", "op", "M", "N", "K", "sparsity"])
    xs = np.logspace(-1, 4, 200)
    for prec, peak in peaks.items():
        ax.plot(xs, np.minimum(peak, bw * xs / 1e3), color="0.35", lw=1)
    roofs = [f"copy: {bw:.0f} GB/s"] + [f"{prec}: {peak:.0f} TOP/s" for prec, peak in peaks.items()]
    if preset_roofs:
        pbw = float(preset_roofs["bandwidth_gbps"])
        roofs.append(f"sim preset {preset_roofs['name']} (dashed): {pbw:.0f} GB/s"
                     + (" (differs > 5 %)" if abs(pbw / bw - 1) > 0.05 else ""))
        for prec, peak in preset_roofs.get("peaks", {}).items():
            ax.plot(xs, np.minimum(peak, pbw * xs / 1e3), color="#E69F00", lw=1, ls="--")
            off = prec in peaks and abs(peak / peaks[prec] - 1) > 0.05
            roofs.append(f"  {prec}: {peak:.0f} TOP/s" + (f" (measured {peaks[prec]:.0f}: differs > 5 %)"
                                                          if off else ""))
    # the roof list goes under the panel: inside it would hide the calls at low intensity
    ax.text(0.0, -0.2, "roofs: best cuBLAS rate of each precision measured in this run\n" + "\n".join(roofs),
            transform=ax.transAxes, fontsize=7, va="top", ha="left")
    kinds = {"ours": ("o", "#d62728"), "baseline": ("s", "#7f7f7f")}
    for impl, (marker, colour) in kinds.items():
        s = d[d.impl == impl]
        ax.scatter(s.ops / s.bytes, s.tops, marker=marker, s=22, color=colour, alpha=0.75,
                   edgecolor="white", linewidth=0.4, label=f"{impl} kernels")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (ops / minimum byte)")
    ax.set_ylabel("achieved TOP/s")
    gpu = run_gpus(measured)
    ax.set_title(f"{gpu} ({run_name(source)} run):\nevery timed call under the roofs of its run", fontsize=8,
                 loc="left")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="lower right")
    dec = d[((d.op.isin(["gemv", "sparse_gemv"])) & (d.M == 1)) | (d.op == "attention_decode")].copy()
    dec["label"] = [f"{k}  {'attn B%d ctx%d' % (m, k_) if op == 'attention_decode' else '%dx%d' % (n, k_)}"
                    + (f" s={100 * sp:.0f}%" if sp > 0 else "") + (" [graph]" if g else "")
                    for k, op, m, n, k_, sp, g in zip(dec.kernel, dec.op, dec.M, dec.N, dec.K, dec.sparsity,
                                                      dec.cuda_graph.astype(bool))]
    dec = dec.sort_values(["op", "N", "K", "impl", "kernel"])
    frac = 100 * dec.gbps / bw
    ax2.barh(range(len(dec)), frac, color=[kinds[i][1] if i in kinds else "#1f77b4" for i in dec.impl],
             alpha=0.8)
    ax2.set_yticks(range(len(dec)))
    ax2.set_yticklabels(dec.label, fontsize=7)
    ax2.invert_yaxis()
    ax2.axvline(80, color="k", ls=":", lw=0.8)
    ax2.set_xlim(0, max(100.0, 1.05 * float(frac.max())))
    ax2.set_xlabel(f"bandwidth, % of copy ({bw:.0f} GB/s;\ndotted: 80 %)")
    ax2.set_title("Decode (M = 1) GEMV and attention:\nbytes moved per second (fastest of each;\n"
                  "[graph]: CUDA-graph replays)", fontsize=8, loc="right")
    ax2.grid(True, axis="x", alpha=0.3)
