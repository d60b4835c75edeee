"""Tables and figures of finished training runs (``bitsim train tables``).

Inputs: run results (``results.json`` of ``bitsim train run --export``, or run
folders) and the runs' inference checkpoints.  The trained sparsity profiles are
measured here, on the CPU, by running each checkpoint on the held-out validation
sequences stored in it (so anyone can rebuild them from the committed checkpoints).

Outputs (schemas in ``contract/training.py``): ``training_curves.csv``,
``training_summary.csv``, ``training_ablations.csv``, ``trained_profile.csv``,
``trained_table2.csv`` and the figures ``training_curves.png`` and
``trained_sparsity.png``.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

import contract.training  # noqa: F401  (registers the training tables)
from contract import SCHEMAS, check_output, write_table
from contract.io import atomic_path, temporary_sibling
from model.checkpoint import LoadedCheckpoint, load_checkpoint
from model.config import ModelConfig
from model.paper_sparsity import PAPER_TABLE2, PAPER_TABLE2_OVERALL, PAPER_TABLE2_SOURCE
from model.trace import activated_params, build_trace, measure_trained_stats
from model.train import read_json

GROUPS = ("qkv", "out", "up", "gate", "down")
GROUP_OPS = {"qkv": ("q_proj", "k_proj", "v_proj"), "out": ("o_proj",), "up": ("up_proj",),
             "gate": ("gate_proj",), "down": ("down_proj",)}
MAIN_DATAPATHS = ("fp16", "b1.58", "a4.8", "a4.8-fp4")
ABLATION_TEXT = {
    "a4.8-int4-all": "full INT4: INT4 absmean on the Wo and Wdown inputs too",
    "a4.8-no-topk": "no TopK on Wo: plain INT8 Wo input",
    "kv3_no_bos_rule": "3-bit KV without the BOS rule (BOS heads at 3 bits)",
    "kv4": "4-bit KV cache instead of 3-bit",
    "kv_fp16": "FP16 KV cache instead of 3-bit",
}


def _variant(name: str, seed: int) -> str:
    base = re.sub(rf"-s{seed}$", "", name)
    return "main" if base in MAIN_DATAPATHS else base


def load_results(sources: Iterable[str | Path]) -> dict[str, dict[str, Any]]:
    """Run name -> finished result, from results.json files or run folders."""
    out: dict[str, dict[str, Any]] = {}
    for src in sources:
        p = Path(src)
        files = [p] if p.is_file() else sorted(p.glob("results.json")) + sorted(p.glob("*/result.json")) \
            + sorted(p.glob("result.json"))
        if not files:
            raise FileNotFoundError(f"no results.json / result.json under {p}")
        for f in files:
            data = read_json(f, "results file")
            runs = [data] if isinstance(data, dict) and "status" in data else \
                list(data.values()) if isinstance(data, dict) else None
            if runs is None or not all(isinstance(r, dict) for r in runs):
                raise ValueError(f"{f}: not a result.json / results.json of bitsim train")
            for r in runs:
                if r.get("status") == "done":
                    out[r["name"]] = r
    if not out:
        raise ValueError("no finished runs in the given results")
    return out


def _keys(r: dict[str, Any]) -> dict[str, Any]:
    seed = int(r["config"]["seed"])
    return dict(run=r["name"], datapath=r["config"]["datapath"], seed=seed, variant=_variant(r["name"], seed))


def curves_table(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    rows = [dict(_keys(r), **{k: c[k] for k in ("step", "tokens", "stage", "lr", "wd", "train_loss",
                                                 "val_loss", "train_s")})
            for r in results.values() for c in r["curve"]]
    df = pd.DataFrame(rows)
    df["train_loss"] = df["train_loss"].astype(float)
    return df


def summary_table(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    b158 = {int(r["config"]["seed"]): r["final"]["val_loss"] for r in results.values()
            if _keys(r)["variant"] == "main" and r["config"]["datapath"] == "b1.58"}
    rows = []
    for r in results.values():
        k = _keys(r)
        base = b158.get(k["seed"])
        rows.append(dict(k, preset=r["model_config"]["name"], params_linear=r["params_linear"],
                         params_total=r["params_total"], steps=r["steps"], tokens=r["tokens"],
                         val_loss=r["final"]["val_loss"], val_bpb=r["final"]["val_bpb"],
                         val_ppl=r["final"]["val_ppl"], eval_tokens=r["final"]["eval_tokens"],
                         rel_to_b158=(r["final"]["val_loss"] / base - 1) if base else float("nan"),
                         train_s=r["train_s"], tokens_per_s=r["tokens_per_s"], gpu=r.get("gpu", ""),
                         torch=r.get("torch", ""), date=r.get("date", ""),
                         corpus_python=r["corpus"]["python"], corpus_sha256_train=r["corpus"]["sha256_train"],
                         corpus_sha256_val=r["corpus"]["sha256_val"]))
    order = {d: i for i, d in enumerate(MAIN_DATAPATHS)}
    df = pd.DataFrame(rows)
    df["_o"] = [(v != "main", order.get(d, 9), v, s) for v, d, s in zip(df.variant, df.datapath, df.seed)]
    return df.sort_values("_o").drop(columns="_o").reset_index(drop=True)


def ablation_table(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    rows = []
    mains = {int(r["config"]["seed"]): r for r in results.values()
             if _keys(r)["variant"] == "main" and r["config"]["datapath"] == "a4.8"}

    def add(ablation: str, kind: str, run: str, seed: int, loss: float) -> None:
        base = mains[seed]["final"]["val_loss"]
        rows.append(dict(ablation=ABLATION_TEXT.get(ablation, ablation), kind=kind, run=run,
                         base_run=mains[seed]["name"], seed=seed, val_loss=loss, base_val_loss=base,
                         delta=loss - base, delta_pct=100 * (loss - base) / base))

    for r in results.values():
        k = _keys(r)
        if k["variant"] != "main" and k["datapath"] == "a4.8" and k["seed"] in mains:
            add(k["variant"], "trained", r["name"], k["seed"], r["final"]["val_loss"])
    for seed, r in sorted(mains.items()):
        for name, loss in r.get("variants", {}).items():
            add(name, "eval-only", r["name"], seed, loss)
    return pd.DataFrame(rows)


def _group_params(cfg: ModelConfig) -> dict[str, int]:
    hd = cfg.hd
    return dict(qkv=cfg.dim * hd * (cfg.n_heads + 2 * cfg.kv_heads), out=cfg.n_heads * hd * cfg.dim,
                up=cfg.dim * cfg.ffn_dim, gate=cfg.dim * cfg.ffn_dim, down=cfg.ffn_dim * cfg.dim)


def profile_rows(ck: LoadedCheckpoint) -> list[dict[str, Any]]:
    """Per-layer and all-layer sparsity per projection group of one checkpoint (M = 1 row)."""
    inputs = ck.heldout[:, :-1]
    per_layer, _ = measure_trained_stats(ck.model, inputs, 1, 1)
    cfg, m = ck.config, ck.meta
    params = _group_params(cfg)
    base = dict(run=m.get("run"), datapath=cfg.datapath, seed=int(m.get("seed", -1)), checkpoint=ck.path.name,
                preset=cfg.name, heldout_tokens=int(inputs.numel()), train_step=int(m.get("step", 0)),
                train_tokens=int(m.get("tokens", 0)))
    rows = []
    for layer in sorted(per_layer):
        st = per_layer[layer]
        for g in GROUPS:
            rows.append(dict(base, layer=layer, proj=g, sparsity=st[GROUP_OPS[g][0]].sparsity, params=params[g]))
        rows.append(dict(base, layer=layer, proj="gate_out", sparsity=st["gate_out"].sparsity, params=0))
    L = len(per_layer)
    df = pd.DataFrame(rows)
    for g in GROUPS + ("gate_out",):
        rows.append(dict(base, layer=-1, proj=g, sparsity=float(df[df.proj == g].sparsity.mean()),
                         params=params.get(g, 0) * L))
    tot = sum(params.values())
    overall = sum(params[g] * float(df[df.proj == g].sparsity.mean()) for g in GROUPS) / tot
    rows.append(dict(base, layer=-1, proj="overall", sparsity=overall, params=tot * L))
    return rows


def _table2_row(model: str, source: str, datapath: str, preset: str, seed: int, total: float,
                sp: dict[str, float]) -> dict[str, Any]:
    """One Table-2-layout row; ``sp``: fractions per group; overall recomputed parameter-weighted."""
    row = dict(model=model, source=source, datapath=datapath, preset=preset, seed=seed, total_params=total)
    row.update({f"{g}_pct": 100 * sp[g] for g in GROUPS})
    row["overall_pct"] = 100 * sp["overall"]
    row["activated_params"] = total * (1 - sp["overall"])
    return row


def _trace_groups(df: pd.DataFrame) -> dict[str, float]:
    lay = df[df.layer == 0].set_index("op")["sparsity"]
    sp = {g: float(lay[GROUP_OPS[g][0]]) for g in GROUPS}
    sp["overall"] = activated_params(df)["overall_sparsity"]
    return sp


def table2(profile: pd.DataFrame, cfg_of: dict[str, ModelConfig]) -> pd.DataFrame:
    """Paper 7B rows, our random-weight rows (7B and the trained shape), the trained rows."""
    rows = []
    for dp in ("b1.58", "a4.8"):
        p = PAPER_TABLE2[dp]["7b"]
        sp = {g: p[{"out": "o"}.get(g, g)] / 100 for g in GROUPS}
        sp["overall"] = PAPER_TABLE2_OVERALL[dp]["7b"] / 100     # as printed
        t7 = build_trace("7b", dp)
        tot = activated_params(t7)["total_params"]
        rows.append(_table2_row(f"{dp} 7B (paper, {PAPER_TABLE2_SOURCE})", "paper", dp, "7b", -1, tot, sp))
        rows.append(_table2_row(f"{dp} 7B (random weights)", "random", dp, "7b", -1, tot, _trace_groups(t7)))
    for dp in ("b1.58", "a4.8", "a4.8-fp4"):
        main = [_variant(r, s) == "main" for r, s in zip(profile.run, profile.seed)]
        sub = profile[(profile.datapath == dp) & (profile.layer == -1) & pd.Series(main, index=profile.index)]
        if sub.empty:
            continue
        cfg = cfg_of[sub.run.iloc[0]]
        tr = build_trace(cfg, dp, context=512)
        tot = float(cfg.linear_params)
        rows.append(_table2_row(f"{dp} {cfg.name} (random weights)", "random", dp, cfg.name, -1, tot,
                                _trace_groups(tr)))
        for seed in sorted(sub.seed.unique()):
            s = sub[sub.seed == seed].set_index("proj")["sparsity"]
            sp = {g: float(s[g]) for g in GROUPS + ("overall",)}
            rows.append(_table2_row(f"{dp} {cfg.name} (trained, seed {seed})", "trained", dp, cfg.name,
                                    int(seed), tot, sp))
    return pd.DataFrame(rows)


def plot_curves(curves: pd.DataFrame, path: Path, switch_tokens: float | None = None) -> Path:
    """Validation loss vs training tokens: main runs (all seeds) and the ablations.

    ``switch_tokens``: where a4.8's second activation stage starts (a dotted line).
    """
    # matplotlib: optional for the model package, needed only to draw; imported where it is used
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    colors = {"fp16": "#444444", "b1.58": "#1f77b4", "a4.8": "#d62728", "a4.8-fp4": "#ff7f0e",
              "a4.8-int4-all": "#9467bd", "a4.8-no-topk": "#2ca02c"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, zoom in zip(axes, (False, True)):
        for (run, variant, dp, seed), g in curves.groupby(["run", "variant", "datapath", "seed"]):
            key = dp if variant == "main" else variant
            if not zoom and variant != "main":
                continue
            g = g[g.step > 0] if zoom else g
            if zoom:
                g = g[g.tokens >= 0.4 * curves.tokens.max()]
            ax.plot(g.tokens / 1e6, g.val_loss, color=colors.get(key, "k"),
                    ls="-" if seed == 0 else "--", lw=1.4,
                    label=f"{key} s{seed}")
        ax.set_xlabel("training tokens (M bytes)")
        ax.set_ylabel("validation loss (nats/byte)")
        ax.grid(alpha=0.3)
    late = curves[curves.tokens >= 0.4 * curves.tokens.max()]
    main_late = late[late.variant == "main"]
    lo, hi = float(main_late.val_loss.min()), float(main_late.val_loss.max())
    axes[1].set_ylim(lo - 0.02, hi + 0.5 * (hi - lo) + 0.02)
    last = curves[curves.step == curves.step.max()]
    for r in last.itertuples():   # name the runs that end off the zoomed scale
        if r.val_loss > hi + 0.5 * (hi - lo) + 0.02:
            axes[1].annotate(f"{r.run}: {r.val_loss:.2f} (off scale)", xy=(r.tokens / 1e6, hi + 0.5 * (hi - lo)),
                             ha="right", va="top", fontsize=7, color=colors.get(r.variant, "k"))
    if switch_tokens is not None:
        x = switch_tokens / 1e6
        axes[1].axvline(x, color="0.5", lw=0.8, ls=":")
        axes[1].text(x, lo - 0.015, "a4.8 stage 2 ", fontsize=7, color="0.3", ha="right")
    axes[0].set_yscale("log")
    axes[0].yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes[0].yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[0].set_yticks([1.0, 1.5, 2, 3, 4, 6])
    axes[0].set_title("fp16 / b1.58 / a4.8 / a4.8-fp4, two seeds")
    axes[1].set_title("last 60 % of training, with the ablations")
    axes[0].legend(fontsize=7, ncol=2)
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)
    return path


def plot_sparsity(t2: pd.DataFrame, path: Path) -> Path:
    """Per-projection input sparsity: paper 7B, random weights, trained (mean of seeds)."""
    # matplotlib: see plot_curves
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [f"{g}_pct" for g in GROUPS] + ["overall_pct"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, dp in zip(axes, ("b1.58", "a4.8")):
        sub = t2[t2.datapath == dp]
        bars = [("paper 7B", sub[sub.source == "paper"]),
                ("random 7B", sub[(sub.source == "random") & (sub.preset == "7b")]),
                ("random, trained shape", sub[(sub.source == "random") & (sub.preset != "7b")]),
                ("trained (mean of seeds)", sub[sub.source == "trained"])]
        bars = [(n, b) for n, b in bars if not b.empty]
        w = 0.8 / max(1, len(bars))
        for i, (label, b) in enumerate(bars):
            vals = b[cols].mean().to_numpy()
            ax.bar([j + i * w for j in range(len(cols))], vals, width=w, label=label)
        ax.set_xticks([j + 0.4 - w / 2 for j in range(len(cols))])
        ax.set_xticklabels(["QKV", "Out", "Up", "Gate", "Down", "Overall"])
        ax.set_title(f"{dp}: zero entries of each projection's input")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("%")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)
    return path


def _save_figure(fig: Any, path: Path) -> None:
    """Write a figure atomically, so a failed write leaves the old one."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, format=path.suffix.lstrip("."))


def _ordered(df: pd.DataFrame, schema: str) -> pd.DataFrame:
    """Columns in the registered order (extra columns after)."""
    cols = [c.name for c in SCHEMAS[schema]]
    return df[cols + [c for c in df.columns if c not in cols]]


#: The files ``write_training_tables`` writes into its output folder.
OUTPUT_FILES = ("training_curves.csv", "training_summary.csv", "training_ablations.csv", "trained_profile.csv",
                "trained_table2.csv", "training_curves.png", "trained_sparsity.png")


def write_training_tables(results_sources: Iterable[str | Path], checkpoints: str | Path,
                          out_dir: str | Path, command: str | None = None, force: bool = False) -> list[Path]:
    """Write every training table and figure (see the module doc); returns the paths.

    Before any work: an output that is one of the inputs (a results file, a checkpoint) is
    refused, and so is an existing output file unless ``force`` (then it is replaced atomically).
    """
    out = Path(out_dir)
    sources = [Path(x) for x in results_sources]
    ck_dir = Path(checkpoints)
    if not ck_dir.is_dir():
        raise FileNotFoundError(f"no such checkpoint folder: {ck_dir}")
    ck_files = sorted(ck_dir.glob("*.pt"))
    if not ck_files:
        raise FileNotFoundError(f"no *.pt checkpoints in {ck_dir}")
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} is a file; give a folder")
    if out.is_dir():
        inputs = sources + ck_files + [f for s in sources if s.is_dir() for f in s.glob("*.json")]
        for name in OUTPUT_FILES:
            check_output(out / name, inputs=inputs, force=force)
    results = load_results(sources)
    profile, cfg_of = _trained_profile(ck_files)
    staging = temporary_sibling(out)          # every file is made here first: a failure leaves none behind
    try:
        names = _write_all(results, profile, cfg_of, ck_files, staging, command)
        out.mkdir(parents=True, exist_ok=True)
        for name in names:
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out / name for name in names]


def _trained_profile(ck_files: list[Path]) -> tuple[pd.DataFrame, dict[str, ModelConfig]]:
    """The trained-profile rows of every ternary checkpoint, and each run's model config."""
    prof_rows, cfg_of = [], {}
    for f in ck_files:
        ck = load_checkpoint(f)
        if ck.config.datapath == "fp16":
            continue
        prof_rows += profile_rows(ck)
        cfg_of[ck.meta.get("run")] = ck.config
    return pd.DataFrame(prof_rows), cfg_of


def _write_all(results: dict[str, dict], profile: pd.DataFrame, cfg_of: dict[str, ModelConfig],
               ck_files: list[Path], folder: Path, command: str | None) -> list[str]:
    """Every table and figure into ``folder``; returns the file names written."""
    meta = dict(command=command or "", runs=sorted(results))
    curves = curves_table(results)
    tables = [(curves, "training_curve", "training_curves.csv", meta),
              (summary_table(results), "training_summary", "training_summary.csv", meta)]
    abl = ablation_table(results)
    if not abl.empty:
        tables.append((abl, "training_ablation", "training_ablations.csv", meta))
    pmeta = dict(meta, checkpoints=[f.name for f in ck_files],
                 note="measured on the CPU, fake-quant path, on the validation sequences stored in each checkpoint")
    t2 = table2(profile, cfg_of)
    tables += [(profile, "trained_profile", "trained_profile.csv", pmeta),
               (t2, "trained_table2", "trained_table2.csv", pmeta)]
    for df, schema, name, m in tables:
        write_table(_ordered(df, schema), folder / name, schema, m)
    switch = [r["switch_step"] * r["config"]["batch_size"] * r["config"]["seq_len"] for r in results.values()
              if r["config"]["datapath"] == "a4.8" and r["switch_step"] < r["steps"]]
    plot_curves(curves, folder / "training_curves.png", switch[0] if switch else None)
    plot_sparsity(t2, folder / "trained_sparsity.png")
    return [name for _, _, name, _ in tables] + ["training_curves.png", "trained_sparsity.png"]
