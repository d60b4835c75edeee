"""How correlated are activation zeros across the rows of a batch?  Measured on the trained checkpoints.

The simulator skips a weight row only when its activation is zero in every one of the op's M rows.
This script runs each committed checkpoint on its stored held-out text (32 sequences, a prefill from
BOS), takes the zero masks of every projection's quantized input (``in_qkv``, ``in_o``, ``in_ffn``,
``in_down``; Up's W_up elements from ``in_ffn`` and the gate output, gate-first rule) and, for rows
grouped two ways,

* ``sequences``: M different sequences at one position (the rows of a decode step),
* ``tokens``: M consecutive tokens of one sequence (the rows of a prefill chunk),

measures the fraction of weight rows zero in all M rows (positions >= 1: the BOS row is the same in
every sequence) and sets it beside

* the per-column rule mean_j f_j**M (f_j: zero frequency of reduction column j),
* the Beta rule of ``model.zero_batch`` (concentration kappa fitted on the fit checkpoint),
* the independent rule s**M (s: mean zero fraction).

``--write`` fits kappa per (datapath, group, grouping) on the seed-0 checkpoints and checks the
fitted rule on the held-out seed-1 checkpoints (their own sparsity s, the seed-0 kappa), writing
``reports/data/zero_correlation_fit.csv`` (the constants ``model.zero_batch`` loads) and
``reports/data/zero_correlation_check.csv`` (the error table).

    python benchmarks/zero_correlation.py [--write] [CHECKPOINT ...]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

from contract.io import write_table
from model.checkpoint import load_checkpoint
from model.model import ActivationCapture
from model.zero_batch import GROUPS, beta_row_skip, fit_kappa

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "reports" / "data"
CHECKPOINTS = sorted((DATA / "checkpoints").glob("*.pt"))
ROWS = {"sequences": (1, 2, 3, 4, 6, 8, 12, 16, 24, 32), "tokens": (1, 2, 4, 8, 16, 32, 64, 128, 256)}
CAPTURED = {"qkv": "in_qkv", "o": "in_o", "gate": "in_ffn", "down": "in_down", "gate_out": "gate_act"}
FIT_SEED, CHECK_SEED = 0, 1
COMMAND = "python benchmarks/zero_correlation.py --write"


def zero_masks(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """The checkpoint's datapath and seed, and the zero masks [layers, n, T-1, K] of the projection inputs
    (position 0 left out)."""
    ck = load_checkpoint(path)
    tokens = ck.heldout[:, :-1].long()
    n, T = tokens.shape
    cap = ActivationCapture()
    with torch.no_grad():
        ck.model(tokens, rec=cap)
    layers = range(ck.model.cfg.n_layers)
    who = dict(datapath=ck.config.datapath, seed=int(ck.meta.get("seed", -1)))
    return who, {g: torch.stack([cap[(i, name)].reshape(n, T, -1)[:, 1:] == 0 for i in layers])
                                for g, name in CAPTURED.items()}


def _grouped(z: torch.Tensor, m: int, grouping: str) -> torch.Tensor:
    """[layers, groups, K]: whether each column is zero in all m rows of each group."""
    L, n, T, K = z.shape
    if grouping == "sequences":      # m sequences at the same position
        g = n // m
        return z[:, : g * m].reshape(L, g, m, T, K).all(dim=2).reshape(L, -1, K)
    g = T // m                       # m consecutive tokens of one sequence
    return z[:, :, : g * m].reshape(L, n, g, m, K).all(dim=3).reshape(L, -1, K)


def measured_skip(masks: dict[str, torch.Tensor], group: str, m: int, grouping: str) -> float:
    """Fraction of the group's weight rows (Up: W_up elements) that a chip need not fetch at m rows."""
    if group != "up":
        return float(_grouped(masks[group], m, grouping).double().mean())
    zx = _grouped(masks["gate"], m, grouping).double().mean(-1)       # input columns zero in all m rows
    zg = _grouped(masks["gate_out"], m, grouping).double().mean(-1)   # gate outputs zero in all m rows
    return float((1.0 - (1.0 - zx) * (1.0 - zg)).mean())


def per_column_skip(masks: dict[str, torch.Tensor], group: str, m: int) -> float:
    """mean_j f_j**m per layer (Up: combined as the gate-first rule combines its two factors)."""
    def cols(z: torch.Tensor) -> torch.Tensor:
        return z.double().mean(dim=(1, 2)).pow(m).mean(-1)           # per layer
    if group != "up":
        return float(cols(masks[group]).mean())
    return float((1.0 - (1.0 - cols(masks["gate"])) * (1.0 - cols(masks["gate_out"]))).mean())


def curves(path: Path) -> pd.DataFrame:
    """Every measured row skip of one checkpoint: one row per (group, grouping, M)."""
    who, masks = zero_masks(path)
    rows = []
    for group in GROUPS:
        s = measured_skip(masks, group, 1, "sequences")
        for grouping, ms in ROWS.items():
            for m in ms:
                rows.append(dict(checkpoint=path.name, seed=who["seed"], datapath=who["datapath"], group=group,
                                 grouping=grouping, M=m, sparsity=s, measured=measured_skip(masks, group, m, grouping),
                                 per_column=per_column_skip(masks, group, m), independent=s ** m))
    return pd.DataFrame(rows)


def fit_rows(fit: pd.DataFrame) -> pd.DataFrame:
    """kappa per (datapath, group, grouping), fitted on the measured row skips of ``fit``."""
    out = []
    for (dp, group, grouping), c in fit.groupby(["datapath", "group", "grouping"], sort=False):
        s = float(c.sparsity.iloc[0])
        k = fit_kappa(s, [int(m) for m in c.M], [float(y) for y in c.measured])
        pred = [beta_row_skip(s, k, int(m)) for m in c.M]
        rmse = (sum((p - y) ** 2 for p, y in zip(pred, c.measured)) / len(pred)) ** 0.5
        out.append(dict(datapath=dp, group=group, grouping=grouping, kappa=float(f"{k:.6g}"), fit_sparsity=s,
                        fit_rmse=rmse, fit_checkpoint=c.checkpoint.iloc[0]))
    return pd.DataFrame(out)


def check_rows(check: pd.DataFrame, fit: pd.DataFrame) -> pd.DataFrame:
    """The fitted rule (held-out sparsity, fitted kappa) against the held-out measurement."""
    kappa = {(r.datapath, r.group, r.grouping): r.kappa for r in fit.itertuples()}
    df = check.copy()
    df["kappa"] = [kappa[(r.datapath, r.group, r.grouping)] for r in df.itertuples()]
    df["beta"] = [beta_row_skip(r.sparsity, r.kappa, int(r.M)) for r in df.itertuples()]
    df["beta_error"] = df.beta - df.measured
    df["independent_error"] = df.independent - df.measured
    return df


def _write_csv(df: pd.DataFrame, path: Path, meta: dict[str, str], schema: str) -> None:
    write_table(df, path, schema, meta=meta)


def write(paths: list[Path], out: Path = DATA) -> None:
    """Fit on the seed-0 checkpoints, check on the seed-1 ones, write the two tables into ``out``."""
    all_rows = pd.concat([curves(p) for p in paths], ignore_index=True)
    for seed in (FIT_SEED, CHECK_SEED):
        if not (all_rows.seed == seed).any():
            raise ValueError(f"checkpoints: none of seed {seed} among {[p.name for p in paths]}")
    fit = fit_rows(all_rows[all_rows.seed == FIT_SEED].drop(columns="seed"))
    check = check_rows(all_rows[all_rows.seed == CHECK_SEED].drop(columns="seed").reset_index(drop=True), fit)
    note = (f"fit on the seed-{FIT_SEED} checkpoints, checked on the held-out seed-{CHECK_SEED} checkpoints; "
            "each runs its 32 stored held-out sequences x 512 tokens (positions >= 1), CPU, fake-quant path")
    _write_csv(fit, out / "zero_correlation_fit.csv", dict(command=COMMAND, note=note), "zero_correlation_fit")
    _write_csv(check, out / "zero_correlation_check.csv", dict(command=COMMAND, note=note), "zero_correlation_check")
    print(check.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="fit on seed 0, check on seed 1, write reports/data")
    ap.add_argument("--out", type=Path, default=DATA, help="folder of the written tables (default reports/data)")
    ap.add_argument("checkpoints", nargs="*", type=Path, help="default: reports/data/checkpoints/*.pt")
    args = ap.parse_args(argv)
    paths = args.checkpoints or CHECKPOINTS
    if args.write:
        write(paths, args.out)
        return 0
    for p in paths:
        print(curves(p).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
