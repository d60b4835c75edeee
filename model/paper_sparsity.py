"""The a4.8 paper's measured input sparsity per projection (the only copy of these numbers).

Source: Wang, Ma, Wei, "BitNet a4.8: 4-bit Activations for 1-bit LLMs",
arXiv 2411.04965 v1, Table 2 (% zero entries of each projection's input,
C4 validation set; Up uses the gate-first rule).  LLaMA rows are the FP16
baseline (all 0).  Used only by ``model.trace`` with ``profile="paper-table2"``.

The quantized baselines (W4A16, W8A8 INT8 / FP8, W4A4 MXFP4) take the LLaMA rows: they quantize the
FP16 model after training, so their projection inputs are the FP16 model's activations, with none of
the zeros that a4.8's ReLU² and TopK sparsification create.  Rounding a small activation to
an 8- or 4-bit code can make it zero, which this profile does not count: a stated lower bound on their
sparsity.
Restated in docs/paper-facts.md §3.2.
"""
from __future__ import annotations

from model.config import BASELINE_DATAPATHS

PAPER_TABLE2_SOURCE = "BitNet a4.8 (arXiv 2411.04965v1) Table 2"

# datapath -> preset -> projection group -> sparsity in percent
PAPER_TABLE2: dict[str, dict[str, dict[str, float]]] = {
    "fp16": {  # "LLaMA" rows
        p: dict(qkv=0.0, o=0.0, up=0.0, gate=0.0, down=0.0) for p in ("700m", "1.3b", "3b", "7b")
    },
    "b1.58": {
        "700m": dict(qkv=1.2, o=5.9, up=1.2, gate=1.2, down=21.8),
        "1.3b": dict(qkv=1.3, o=5.8, up=1.2, gate=1.2, down=22.8),
        "3b": dict(qkv=1.4, o=7.1, up=1.3, gate=1.3, down=30.0),
        "7b": dict(qkv=1.7, o=11.2, up=1.4, gate=1.4, down=24.2),
    },
    "a4.8": {
        "700m": dict(qkv=12.1, o=50.0, up=66.2, gate=12.1, down=80.9),
        "1.3b": dict(qkv=12.0, o=50.0, up=65.9, gate=12.1, down=81.8),
        "3b": dict(qkv=12.1, o=50.0, up=70.7, gate=12.1, down=85.6),
        "7b": dict(qkv=12.1, o=50.0, up=71.4, gate=12.0, down=84.2),
    },
}
# Post-training-quantized baselines: the FP16 model's activations (module docstring).
PAPER_TABLE2.update({d: PAPER_TABLE2["fp16"] for d in BASELINE_DATAPATHS})

# Table 2 "Overall" column (%), for checking the parameter-weighted recomputation.
PAPER_TABLE2_OVERALL: dict[str, dict[str, float]] = {
    "b1.58": {"700m": 6.2, "1.3b": 6.4, "3b": 8.2, "7b": 7.3},
    "a4.8": {"700m": 42.5, "1.3b": 42.7, "3b": 44.7, "7b": 44.5},
}

# which projection group each trace op belongs to
PROJ_GROUP = {"q_proj": "qkv", "k_proj": "qkv", "v_proj": "qkv", "o_proj": "o",
              "gate_proj": "gate", "up_proj": "up", "down_proj": "down"}


def paper_sparsity(datapath: str, preset: str) -> dict[str, float]:
    """Table 2 sparsity (fraction, not percent) per projection group; ValueError if absent."""
    if datapath not in PAPER_TABLE2:
        raise ValueError(f"profile 'paper-table2': {PAPER_TABLE2_SOURCE} has no {datapath!r} rows; "
                         f"available datapaths: {sorted(PAPER_TABLE2)}")
    rows = PAPER_TABLE2[datapath]
    if preset not in rows:
        raise ValueError(f"profile 'paper-table2': {PAPER_TABLE2_SOURCE} has no row for preset "
                         f"{preset!r} ({datapath}); available: {sorted(rows)}")
    return {k: v / 100.0 for k, v in rows[preset].items()}
