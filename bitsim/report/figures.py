"""The report's figures, each a function from tidy DataFrames to a matplotlib Figure.

Inputs are the tables built by :mod:`bitsim.experiments.study` (``summary``, ``ops``,
``traces``), :mod:`bitsim.report.measured` and :mod:`bitsim.validation`; the
column names each function needs are listed in its docstring.  Nothing
here runs a model or a simulator, so notebooks can redraw any figure from
saved tables.  The backend is the caller's choice (``bitsim report`` uses Agg; a
notebook shows the figures inline).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

DATAPATH_ORDER = ("fp16", "b1.58", "a4.8", "a4.8-fp4")
DATAPATH_COLORS = {"fp16": "#7f7f7f", "b1.58": "#1f77b4", "a4.8": "#d62728", "a4.8-fp4": "#ff7f0e"}
COMPONENTS = ("compute", "sram", "offchip", "vector", "static")
COMPONENT_COLORS = {"compute": "#4c72b0", "sram": "#55a868", "offchip": "#c44e52",
                    "vector": "#8172b2", "static": "#937860"}
BASELINE_KERNELS = ("cublas_fp16", "torch_sdpa")  # speedup 1 by definition (bitsim.report.measured.BASELINES)
OP_CLASS_MARKERS = {"gemm": "o", "attention": "s", "vector": "^"}


def _color(dp: str) -> str:
    return DATAPATH_COLORS.get(dp, "#17becf")


def _order(values: Iterable[str], order: Sequence[str]) -> list[str]:
    vals = list(dict.fromkeys(values))
    return [v for v in order if v in vals] + [v for v in vals if v not in order]


def _need(df: pd.DataFrame, cols: Iterable[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what}: expected a DataFrame, got {type(df).__name__}")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: table is missing columns {missing}")


def _ctx_label(c: int) -> str:
    return f"{c // 1024}k" if c >= 1024 and c % 1024 == 0 else str(c)


def _plain_log_ticks(ax, axis: str = "y") -> None:
    """Log-axis tick labels as plain numbers (300, 1000) instead of 3x10^2."""
    from matplotlib.ticker import FuncFormatter, NullFormatter
    a = ax.yaxis if axis == "y" else ax.xaxis
    lo, hi = (ax.get_ylim() if axis == "y" else ax.get_xlim())
    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    # minor ticks: only 2, 3 and 5 x 10^k are labelled, so neighbouring labels never collide
    minor = FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "235" else "")
    a.set_major_formatter(fmt)
    a.set_minor_formatter(minor if hi / max(lo, 1e-300) < 20 else NullFormatter())


def _context_axes(ax, contexts: Iterable[int], xlabel: str, ylabel: str, title: str) -> None:
    """Log-log axes against context length, one tick per context (512, 2k, ...)."""
    ctxs = sorted(set(int(c) for c in contexts))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(ctxs)
    ax.set_xticklabels([_ctx_label(c) for c in ctxs])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    _plain_log_ticks(ax)


def _legend_below(fig, axes_row, ncol: int = 4) -> None:
    """One legend for the figure, under the panels (never over the data)."""
    handles, labels = [], []
    for ax in axes_row:
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in labels:
                handles.append(h)
                labels.append(l)
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol, fontsize=8,
               frameon=False)


def save(fig, out_dir: str | Path, name: str) -> list[Path]:
    """Write ``fig`` as ``name.png`` (150 dpi) and ``name.svg``; close it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        p = out_dir / f"{name}.{ext}"
        with plt.rc_context({"svg.hashsalt": name}):  # stable SVG element ids: re-runs diff only where data moved
            fig.savefig(p, dpi=150 if ext == "png" else None, bbox_inches="tight",
                        metadata={"Date": None} if ext == "svg" else None)
        paths.append(p)
    plt.close(fig)
    return paths


def _empty(title: str, message: str):
    fig, ax = plt.subplots(figsize=(6.4, 2.2))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=10)
    return fig


# ---------------------------------------------------------------------------
def energy_by_component(summary: pd.DataFrame, decode_context: int | None = None):
    """Stacked energy per token (mJ) by hardware component, per datapath.

    Columns: preset, datapath, phase, context, accelerator, role,
    energy_<component>_j (J per token).  One panel per (preset, phase);
    decode at ``decode_context`` (default: the largest context <= 2048).
    Within a datapath: left bar its matched accelerator, right bar the
    reference one (hatched).
    """
    _need(summary, ["preset", "datapath", "phase", "context", "accelerator", "role"], "energy_by_component")
    comps = [c for c in COMPONENTS if f"energy_{c}_j" in summary.columns]
    dec = summary[summary.phase == "decode"]
    if decode_context is None and len(dec):
        ctxs = sorted(dec.context.unique())
        decode_context = max([c for c in ctxs if c <= 2048] or ctxs[:1])
    sel = pd.concat([dec[dec.context == decode_context], summary[summary.phase == "prefill"]])
    presets = list(dict.fromkeys(sel.preset))
    phases = [p for p in ("decode", "prefill") if p in set(sel.phase)]
    if sel.empty:
        return _empty("Energy per token", "no results")
    fig, axes = plt.subplots(len(presets), len(phases), figsize=(5.2 * len(phases), 3.6 * len(presets)),
                             squeeze=False)
    roles = _order(sel.role, ("matched", "reference"))
    width = 0.8 / len(roles)
    for i, preset in enumerate(presets):
        for j, phase in enumerate(phases):
            ax = axes[i][j]
            d = sel[(sel.preset == preset) & (sel.phase == phase)]
            dps = _order(d.datapath, DATAPATH_ORDER)
            for r, role in enumerate(roles):
                for x, dp in enumerate(dps):
                    row = d[(d.datapath == dp) & (d.role == role)]
                    if row.empty:
                        continue
                    row = row.iloc[0]
                    bottom = 0.0
                    for comp in comps:
                        v = row[f"energy_{comp}_j"] * 1e3
                        ax.bar(x + (r - (len(roles) - 1) / 2) * width, v, width * 0.95, bottom=bottom,
                               color=COMPONENT_COLORS[comp], hatch="//" if role != "matched" else None,
                               edgecolor="white", linewidth=0.5,
                               label=comp if (r == 0 and x == 0) else None)
                        bottom += v
            ax.set_xticks(range(len(dps)))
            ax.set_xticklabels(dps)
            where = f"decode @ {_ctx_label(decode_context)} ctx" if phase == "decode" else "prefill"
            ax.set_title(f"{preset}: {where}", fontsize=10)
            ax.set_ylabel("energy per token (mJ)")
            ax.grid(True, axis="y", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    # a component too small to see in any bar is named with its largest share, so the legend never promises a
    # colour the reader cannot find
    total = sel[[f"energy_{c}_j" for c in comps]].sum(axis=1).replace(0, np.nan)
    for h in handles:
        share = float((sel[f"energy_{h.get_label()}_j"] / total).max())
        if share < 0.01:
            h.set_label(f"{h.get_label()} (< {max(share, 1e-4) * 100:.1g} %, not visible)")
    from matplotlib.patches import Patch
    handles += [Patch(facecolor="white", edgecolor="black", label="matched accel. (plain)"),
                Patch(facecolor="white", edgecolor="black", hatch="//", label="reference accel. (hatched)")]
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8,
               bbox_to_anchor=(0.5, 1.0 + 0.02 / len(presets)))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.06 / len(presets)))
    return fig


def throughput(summary: pd.DataFrame):
    """Decode tokens/s and ms/token vs context, per datapath and accelerator role.

    Columns: preset, datapath, phase, context, role, tokens_per_s, latency_s.
    Solid lines: matched accelerator; dashed: reference (e.g. h100-like).
    """
    _need(summary, ["preset", "datapath", "phase", "context", "role", "tokens_per_s", "latency_s"], "throughput")
    dec = summary[summary.phase == "decode"]
    if dec.empty:
        return _empty("Decode throughput", "no decode results")
    presets = list(dict.fromkeys(dec.preset))
    fig, axes = plt.subplots(2, len(presets), figsize=(5.2 * len(presets), 7.0), squeeze=False)
    for j, preset in enumerate(presets):
        d = dec[dec.preset == preset]
        for dp in _order(d.datapath, DATAPATH_ORDER):
            for role in _order(d.role, ("matched", "reference")):
                s = d[(d.datapath == dp) & (d.role == role)].sort_values("context")
                if s.empty:
                    continue
                acc = s.accelerator.iloc[0]
                ls = "-" if role == "matched" else "--"
                axes[0][j].plot(s.context, s.tokens_per_s, ls, marker="o", color=_color(dp),
                                label=f"{dp} on {acc}")
                axes[1][j].plot(s.context, s.latency_s * 1e3, ls, marker="o", color=_color(dp),
                                label=f"{dp} on {acc}")
        for i, (ylab, title) in enumerate([("tokens/s (batch 1)", "decode throughput"),
                                           ("latency per token (ms)", "decode latency")]):
            _context_axes(axes[i][j], d.context, "context length (tokens)", ylab, f"{preset}: {title}")
    fig.tight_layout()
    _legend_below(fig, axes[0], ncol=4)
    return fig


def footprint(summary: pd.DataFrame):
    """Memory footprint (GB) vs context: weights (dashed) and weights + KV cache (solid).

    Columns: preset, datapath, phase, context, role, weight_bytes, kv_bytes.
    Uses decode rows on the matched accelerator (storage does not depend on it).
    """
    _need(summary, ["preset", "datapath", "phase", "context", "role", "weight_bytes", "kv_bytes"], "footprint")
    dec = summary[(summary.phase == "decode") & (summary.role == "matched")]
    if dec.empty:
        return _empty("Memory footprint", "no decode results")
    presets = list(dict.fromkeys(dec.preset))
    fig, axes = plt.subplots(1, len(presets), figsize=(5.2 * len(presets), 3.9), squeeze=False)
    for j, preset in enumerate(presets):
        ax = axes[0][j]
        d = dec[dec.preset == preset]
        for dp in _order(d.datapath, DATAPATH_ORDER):
            s = d[d.datapath == dp].sort_values("context")
            ax.plot(s.context, (s.weight_bytes + s.kv_bytes) / 1e9, "-", marker="o", color=_color(dp),
                    label=f"{dp}: weights + KV")
            ax.plot(s.context, s.weight_bytes / 1e9, ":", color=_color(dp), label=f"{dp}: weights only")
        _context_axes(ax, d.context, "context length (tokens, batch 1)", "memory footprint (GB)",
                      f"{preset}: weights + KV cache")
    fig.tight_layout()
    _legend_below(fig, axes[0], ncol=4)
    return fig


def roofline(ops: pd.DataFrame, ceilings: pd.DataFrame, title: str = "Roofline"):
    """Every op on its accelerator's roofline: achieved op/s vs arithmetic intensity.

    ``ops`` columns: accelerator, datapath, phase, op, op_class,
    intensity (ops per off-chip byte), achieved_ops_s.
    ``ceilings`` columns: accelerator, peak_ops_s, bandwidth_bytes_s (one
    row per accelerator; several rows with a ``precision`` column draw one
    flat roof each).  One panel per accelerator; markers by op class,
    colours by datapath, filled = decode, hollow = prefill.
    """
    _need(ops, ["accelerator", "datapath", "phase", "op_class", "intensity", "achieved_ops_s"], "roofline")
    _need(ceilings, ["accelerator", "peak_ops_s", "bandwidth_bytes_s"], "roofline ceilings")
    accs = list(dict.fromkeys(ops.accelerator))
    if not accs:
        return _empty(title, "no ops")
    ncol = 2 if len(accs) in (2, 4) else min(len(accs), 3)
    nrow = -(-len(accs) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.6 * ncol, 4.2 * nrow), squeeze=False)
    for k, acc in enumerate(accs):
        ax = axes[k // ncol][k % ncol]
        d = ops[(ops.accelerator == acc) & (ops.intensity > 0) & (ops.achieved_ops_s > 0)]
        c = ceilings[ceilings.accelerator == acc]
        xs = np.logspace(-2, 5, 200)
        if not c.empty:
            bw = float(c.bandwidth_bytes_s.iloc[0])
            # one roof per distinct peak; operand pairs sharing a peak share its label
            roofs: dict[float, list[str]] = {}
            for _, row in c.iterrows():
                roofs.setdefault(float(row.peak_ops_s), []).append(
                    str(row["precision"]).replace("x", "\u00d7") if "precision" in c.columns else "peak")
            for peak in roofs:
                ax.plot(xs, np.minimum(peak, bw * xs), "k-", lw=1, alpha=0.6)
            # the upper-left corner is above every roof's slope: always free of points
            lines = [f"off-chip {bw / 1e9:.0f} GB/s"] + [
                f"{', '.join(roofs[p])}: {p / 1e12:.0f} TOP/s" for p in sorted(roofs, reverse=True)]
            ax.text(0.02, 0.98, "\n".join(lines), transform=ax.transAxes, ha="left", va="top", fontsize=7,
                    bbox=dict(facecolor="white", edgecolor="0.8", alpha=0.9))
        for dp in _order(d.datapath, DATAPATH_ORDER):
            for cls, marker in OP_CLASS_MARKERS.items():
                for phase in ("decode", "prefill"):
                    s = d[(d.datapath == dp) & (d.op_class == cls) & (d.phase == phase)]
                    if s.empty:
                        continue
                    ax.scatter(s.intensity, s.achieved_ops_s, marker=marker, s=16, alpha=0.7,
                               facecolors=_color(dp) if phase == "decode" else "none",
                               edgecolors=_color(dp), linewidths=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("arithmetic intensity (ops / off-chip byte)")
        ax.set_ylabel("achieved throughput (op/s)")
        ax.set_title(acc, fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    for k in range(len(accs), nrow * ncol):
        axes[k // ncol][k % ncol].axis("off")
    from matplotlib.lines import Line2D
    # colour = datapath (a colour patch), marker shape = op class, fill = phase (shown on every shape)
    handles = [Line2D([], [], ls="", marker="s", markersize=9, color=_color(dp), label=dp)
               for dp in _order(ops.datapath, DATAPATH_ORDER)]
    handles += [Line2D([], [], ls="", marker=m, color="0.45", markerfacecolor="none", label=f"{cls} op")
                for cls, m in OP_CLASS_MARKERS.items()]
    handles += [Line2D([], [], ls="", marker="$\\bullet$", markersize=9, color="k", label="filled: decode"),
                Line2D([], [], ls="", marker="$\\circ$", markersize=9, color="k", label="hollow: prefill")]
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8,
               bbox_to_anchor=(0.5, 1.0 + 0.03 / nrow))
    fig.suptitle(title, y=1.0 + 0.08 / nrow, fontsize=11)
    fig.tight_layout()
    return fig


def sparsity_and_bits(traces: pd.DataFrame, preset: str | None = None, layer: int = 0):
    """Per-op input sparsity and operand bits, one column per datapath.

    Columns (op trace schema): preset, datapath, phase, layer, op, op_class,
    sparsity, weight_bits, act_bits.  Shows decoder layer ``layer`` of the
    decode trace (the first context found) of ``preset``.
    Left: sparsity heat map (%); right: activation bits, annotated with the
    weight bits (``w2/a4``).
    """
    _need(traces, ["preset", "datapath", "phase", "layer", "op", "op_class", "sparsity",
                   "weight_bits", "act_bits"], "sparsity_and_bits")
    t = traces[traces.phase == "decode"] if (traces.phase == "decode").any() else traces
    preset = preset or t.preset.iloc[0]
    t = t[(t.preset == preset) & (t.layer == layer)]
    if "context" in t.columns and len(t):
        t = t[t.context == t.context.min()]
    t = t[t.op_class != "vector"]
    if t.empty:
        return _empty("Per-op sparsity and bits", f"no ops for preset {preset}")
    dps = _order(t.datapath, DATAPATH_ORDER)
    ops = list(dict.fromkeys(t.op))
    sp = np.full((len(ops), len(dps)), np.nan)
    ab = np.full((len(ops), len(dps)), np.nan)
    wb = np.full((len(ops), len(dps)), np.nan)
    for jj, dp in enumerate(dps):
        d = t[t.datapath == dp].groupby("op", sort=False).first()
        for ii, op in enumerate(ops):
            if op in d.index:
                sp[ii, jj] = d.loc[op, "sparsity"] * 100
                ab[ii, jj] = d.loc[op, "act_bits"]
                wb[ii, jj] = d.loc[op, "weight_bits"]
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 0.42 * len(ops) + 1.8))
    for ax, data, title, cmap, fmt, vmax in [
            (axes[0], sp, "input-activation sparsity (%)", "Reds", "{:.0f}%", 100),
            (axes[1], ab, "activation bits (cell: weight or KV bits / act bits)", "Blues_r", None, 16)]:
        im = ax.imshow(data, cmap=cmap, vmin=0, vmax=vmax, aspect="auto")
        ax.set_xticks(range(len(dps)))
        ax.set_xticklabels(dps)
        ax.set_yticks(range(len(ops)))
        ax.set_yticklabels(ops, fontsize=8)
        ax.set_xlabel("datapath")
        ax.set_title(title, fontsize=10)
        cb = fig.colorbar(im, ax=ax, fraction=0.05)
        cb.set_label("%" if fmt else "bits")
        for ii in range(len(ops)):
            for jj in range(len(dps)):
                if np.isnan(data[ii, jj]):
                    continue
                if fmt:
                    txt = fmt.format(data[ii, jj])
                else:
                    w = wb[ii, jj]
                    txt = f"w{w:.3g}/a{ab[ii, jj]:.0f}" if w else f"a{ab[ii, jj]:.0f}"
                dark = (data[ii, jj] / vmax > 0.55) if fmt else (data[ii, jj] / vmax < 0.45)
                ax.text(jj, ii, txt, ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
    fig.suptitle(f"{preset}, decoder layer {layer}: per-op sparsity and operand bits", fontsize=11)
    fig.tight_layout()
    return fig


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
    return str(row["shape"]).replace(" ctx", "\nctx").replace("prefill ", "prefill\n")


def measured_speedups(speedups: pd.DataFrame):
    """Measured kernel speedups over the FP16 baseline of the same shape and run, one panel per regime.

    Columns: shape, family (linear / attention / block), M, N, K, kernel, impl,
    speedup (baseline time / kernel time).  Panels: decode GEMV (M = 1),
    small-batch GEMM, prefill GEMM, attention and whole block; one bar per
    (kernel, shape), a kernel keeps its colour in every panel, baselines
    other than FP16 are dotted.  Log y; the line at 1 is the FP16 baseline.
    """
    _need(speedups, ["shape", "family", "M", "N", "K", "kernel", "impl", "speedup"], "measured_speedups")
    d = speedups[~speedups.kernel.isin(BASELINE_KERNELS + ("block_fp16",))].copy()
    if d.empty:
        return _empty("Measured H100 kernel speedups", "no measured kernel data in reports/data/")
    d["panel"] = d.apply(_speedup_panel, axis=1)
    panels = [p for p in _PANEL_TITLES if p in set(d.panel)]
    kernels = list(dict.fromkeys(d.sort_values(["impl", "kernel"], ascending=[False, True]).kernel))
    cmap = plt.get_cmap("tab20")
    colour = {k: cmap(i % 20) for i, k in enumerate(kernels)}
    fig, axes = plt.subplots(len(panels), 1, figsize=(12.5, 3.1 * len(panels)), squeeze=False)
    for ax, panel in zip(axes[:, 0], panels):
        p = d[d.panel == panel].sort_values(["M", "N", "K"])
        several_m = p.M.nunique() > 1 and p.family.eq("linear").all()
        shapes = list(dict.fromkeys(p["shape"]))
        ticks = [_speedup_tick(p[p["shape"] == s].iloc[0], several_m) for s in shapes]
        ks = [k for k in kernels if k in set(p.kernel)]
        width = 0.84 / max(len(ks), 1)
        for j, kern in enumerate(ks):
            s = p[p.kernel == kern].groupby("shape").speedup.max()
            xs = np.array([i for i, sh in enumerate(shapes) if sh in s.index], dtype=float)
            ys = [float(s[sh]) for sh in shapes if sh in s.index]
            impl = p[p.kernel == kern].impl.iloc[0]
            ax.bar(xs + (j - (len(ks) - 1) / 2) * width, ys, width * 0.92, color=colour[kern],
                   hatch=None if impl == "ours" else "...", edgecolor="white", linewidth=0.4,
                   label=f"{kern} ({impl})")
        ax.axhline(1.0, color="k", lw=0.9)
        ax.set_yscale("log")
        ax.set_xticks(range(len(shapes)))
        ax.set_xticklabels(ticks, fontsize=8)
        ax.set_xlim(-0.6, len(shapes) - 0.4)
        ax.set_ylabel("speedup (x, log)")
        ms = ", ".join(str(m) for m in sorted(set(p.M.astype(int))))
        ax.set_title(_PANEL_TITLES[panel].format(ms=ms), fontsize=10, loc="left")
        ax.grid(True, axis="y", which="both", alpha=0.3)
        _plain_log_ticks(ax)
    fig.suptitle("Measured kernels: speedup over cuBLAS FP16 at the same shape and run (line at 1; higher is "
                 "better)", fontsize=11)
    fig.tight_layout()
    _legend_below(fig, list(axes[:, 0]), ncol=4)
    return fig


def sim_vs_measured(cmp: pd.DataFrame):
    """Simulated vs measured time per kernel call (log-log, y = x and 2x bands) and the error of each.

    Columns: measured_us, sim_us, kernel (the label of a point's group),
    optionally split (``calibration`` points are drawn hollow).  Left: the
    scatter; right: signed relative error (sim - measured) / measured per
    call.  The title gives the median absolute error and the geometric-mean
    ratio over all calls.
    """
    _need(cmp, ["measured_us", "sim_us", "kernel"], "sim_vs_measured")
    d = cmp[(cmp.measured_us > 0) & (cmp.sim_us > 0)]
    if d.empty:
        return _empty("Simulator vs measured GPU", "no measured kernel data to compare")
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 5.0), gridspec_kw={"width_ratios": [1.1, 1]})
    cmap = plt.get_cmap("tab20")
    err = 100 * (d.sim_us - d.measured_us) / d.measured_us
    cal = d["split"].eq("calibration") if "split" in d.columns else pd.Series(False, index=d.index)
    for k, kern in enumerate(dict.fromkeys(d.kernel)):
        colour = cmap(k % 20)
        for hollow in (False, True):
            sel = (d.kernel == kern) & (cal == hollow)
            if not sel.any():
                continue
            face = "none" if hollow else colour
            ax.scatter(d.measured_us[sel], d.sim_us[sel], s=26, facecolors=face, edgecolors=colour,
                       label=None if hollow else kern, alpha=0.85)
            ax2.scatter(d.measured_us[sel], err[sel], s=26, facecolors=face, edgecolors=colour, alpha=0.85)
    lo = min(d.measured_us.min(), d.sim_us.min()) / 1.5
    hi = max(d.measured_us.max(), d.sim_us.max()) * 1.5
    xs = np.array([lo, hi])
    ax.plot(xs, xs, "k-", lw=1, label="sim = measured")
    ax.plot(xs, 2 * xs, "k:", lw=0.8, label="2x off")
    ax.plot(xs, xs / 2, "k:", lw=0.8)
    if cal.any():
        ax.scatter([], [], s=26, facecolors="none", edgecolors="k", label="hollow: calibration call (fitted on)")
    for a in (ax, ax2):
        a.set_xscale("log")
        a.set_xlim(lo, hi)
        a.set_xlabel("measured time per call (us)")
        a.grid(True, which="both", alpha=0.3)
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    ax.set_ylabel("simulated time per call (us)")
    ax2.axhline(0, color="k", lw=1)
    ax2.set_ylabel("error (sim - measured) / measured (%)")
    ax2.set_title("error per call", fontsize=10)
    gm = float(np.exp(np.mean(np.log(d.sim_us / d.measured_us))))
    ax.set_title(f"median |error| {np.median(np.abs(err)):.0f}%, geo-mean sim/measured {gm:.2f}", fontsize=10)
    fig.suptitle("Simulator vs measured GPU kernels", fontsize=11)
    fig.tight_layout()
    _legend_below(fig, [ax], ncol=3)
    return fig


def measured_roofline(measured: pd.DataFrame):
    """Measured kernels on the GPU's own roofline, and the share of copy bandwidth at decode.

    Columns (``measured_trace``): op, kernel, impl, M, N, K, us, bytes, ops,
    gbps, tops, plus rows with op ``ceiling`` (kernel ``copy`` for GB/s,
    cuBLAS 8192^3 GEMMs for TOP/s) measured in the same run.  Left: every
    timed kernel call (fastest per kernel and shape) at x = ops / minimum
    bytes, y = achieved TOP/s, under the measured roofs.  Right: decode
    (M = 1) GEMV and attention calls, achieved GB/s as a share of the copy
    ceiling.  Kernel-name suffixes ``_cfg`` (tuning sweeps) are left out.
    """
    _need(measured, ["op", "kernel", "impl", "precision", "M", "N", "K", "sparsity", "cuda_graph", "us", "bytes",
                     "ops", "gbps", "tops"], "measured_roofline")
    ceil = measured[measured.op == "ceiling"]
    d = measured[(measured.op != "ceiling") & ~measured.kernel.astype(str).str.endswith("_cfg")
                 & (measured.us > 0) & (measured.bytes > 0) & (measured.ops > 0)]
    copy = ceil[ceil.kernel == "copy"].gbps
    if d.empty or copy.empty:
        return _empty("Measured kernels on the GPU roofline", "no measured kernel rows with ceilings")
    bw = float(copy.max())  # GB/s
    # roofs: the run's 8192^3 ceilings, raised where a baseline (cuBLAS) call of that precision went faster
    base = d[(d.impl == "baseline") & d.op.isin(["gemm", "gemv"])].groupby("precision").tops.max()
    peaks = ceil[ceil.kernel != "copy"].groupby("precision").tops.max()
    peaks = pd.concat([peaks, base[base.index.isin(peaks.index)]]).groupby(level=0).max()
    peaks = peaks.sort_values(ascending=False)
    d = d.sort_values("us").drop_duplicates(["kernel", "op", "M", "N", "K", "sparsity"])
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5.0), gridspec_kw={"width_ratios": [1.25, 1]})
    xs = np.logspace(-1, 4, 200)
    for prec, peak in peaks.items():
        ax.plot(xs, np.minimum(peak, bw * xs / 1e3), color="0.35", lw=1)
    roofs = [f"copy: {bw:.0f} GB/s"] + [f"{prec}: {peak:.0f} TOP/s" for prec, peak in peaks.items()]
    ax.text(0.02, 0.98, "roofs: best cuBLAS rate of each precision\nmeasured in this run\n" + "\n".join(roofs),
            transform=ax.transAxes, fontsize=7,
            va="top", ha="left", bbox=dict(boxstyle="round", fc="white", ec="0.7"))
    kinds = {"ours": ("o", "#d62728"), "baseline": ("s", "#7f7f7f")}
    for impl, (marker, colour) in kinds.items():
        s = d[d.impl == impl]
        ax.scatter(s.ops / s.bytes, s.tops, marker=marker, s=22, color=colour, alpha=0.75,
                   edgecolor="white", linewidth=0.4, label=f"{impl} kernels")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (ops / minimum byte)")
    ax.set_ylabel("achieved TOP/s")
    ax.set_title("Every timed kernel call under the roofs measured in the same run", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="lower right")
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
    ax2.set_yticklabels(dec.label, fontsize=6.5)
    ax2.invert_yaxis()
    ax2.axvline(80, color="k", ls=":", lw=0.8)
    ax2.set_xlim(0, max(100.0, 1.05 * float(frac.max())))
    ax2.set_xlabel(f"achieved bandwidth, % of copy ({bw:.0f} GB/s; dotted: 80 %)")
    ax2.set_title("Decode (M = 1) GEMV and attention: bytes moved per second\n(fastest timing of each; "
                  "[graph]: CUDA-graph replays)", fontsize=10)
    ax2.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
