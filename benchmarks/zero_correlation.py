"""How correlated are activation zeros across the tokens of a decode batch?  Measured on the trained checkpoints.

The simulator skips a weight row only when its activation is zero in every one of the batch's M rows.
The trace builder's rule ``row_skip = sparsity**M`` assumes zeros independent across tokens and columns.
This script runs each committed checkpoint on its stored held-out text, takes the quantized inputs of
the projections whose rows a4.8 skips (``in_o``: Wo, ``in_down``: Wdown), and for batches of M
sequences at the same position compares

* measured: fraction of columns zero in all M sequences (the skip a chip would see),
* per-column independence: mean_j f_j**M (f_j = zero frequency of column j),
* the trace rule: s**M (s = mean zero fraction).

The ratio measured / s**M is the cross-token correlation factor of zeros.

    python benchmarks/zero_correlation.py [reports/data/checkpoints/*.pt]
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from model.checkpoint import load_checkpoint
from model.model import ActivationCapture

BATCHES = (1, 2, 4, 8, 16, 32)
CHECKPOINTS = sorted((Path(__file__).resolve().parents[1] / "reports" / "data" / "checkpoints").glob("*.pt"))


def zero_masks(path: Path, sequences: int = 32) -> dict[str, torch.Tensor]:
    """Zero masks [n, T, K] of the skipped projections' inputs, all layers stacked along n."""
    ck = load_checkpoint(path)
    tokens = ck.heldout[:sequences, :-1].long()
    cap = ActivationCapture()
    with torch.no_grad():
        ck.model(tokens, rec=cap)
    out: dict[str, list[torch.Tensor]] = {}
    for (layer, name), t in cap.items():
        if name in ("in_o", "in_down") and layer >= 0:
            out.setdefault(name, []).append((t.reshape(tokens.shape[0], tokens.shape[1], -1) == 0))
    return {k: torch.cat(v, dim=0) for k, v in out.items()}


def skip_rates(z: torch.Tensor, M: int, layers: int) -> tuple[float, float, float]:
    """(measured, per-column independence, s**M) for batches of M sequences at one position."""
    n = z.shape[0] // layers
    z = z.reshape(layers, n, *z.shape[1:]).double()
    g = n // M
    groups = z[:, : g * M].reshape(layers, g, M, z.shape[2], z.shape[3])
    measured = float(groups.prod(dim=2).mean())
    f = z.mean(dim=(1, 2))                                   # zero frequency per (layer, column)
    return measured, float(f.pow(M).mean()), float(z.mean()) ** M


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or CHECKPOINTS
    print("checkpoint  input    M   measured  indep_cols  s^M      measured/s^M")
    for p in paths:
        ck = load_checkpoint(p)
        masks = zero_masks(p)
        for name, z in masks.items():
            for M in BATCHES:
                m, ind, sm = skip_rates(z, M, ck.model.cfg.n_layers)
                ratio = m / sm if sm > 0 else float("nan")
                print(f"{p.stem:10s}  {name:7s} {M:3d}   {m:.4f}    {ind:.4f}      {sm:.4f}   {ratio:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
