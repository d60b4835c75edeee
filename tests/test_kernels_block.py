"""The decoder block assembled from the kernels runs prefill then decode for every datapath."""
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from kernels.block import Block, BlockDims  # noqa: E402

DEV = "cuda" if torch.cuda.is_available() else "cpu"
TINY = BlockDims(d_model=64, n_heads=2, head_dim=32, d_ffn=96)


def test_a48_block_prefill_then_decode_is_finite_and_uses_topk_sparsity():
    torch.manual_seed(0)
    blk = Block("a4.8", 1, 8, dims=TINY, device=DEV)
    x = torch.randn(1, 5, 64).half().to(DEV)
    y = blk.forward(x, 0)
    yd = blk.forward(torch.randn(1, 1, 64).half().to(DEV), 5)       # sparse GEMVs + 3-bit KV decode
    assert y.shape == (1, 5, 64) and yd.shape == (1, 1, 64)
    assert bool(torch.isfinite(y).all()) and bool(torch.isfinite(yd).all())
    assert blk.sparsity["o_in"] >= 0.5                                  # TopK-50 % into Wo
    assert 0.0 < blk.sparsity["down_in"] < 1.0                          # ReLU² zeros into Wdown


def test_block_rejects_unknown_datapath_and_bad_dims():
    with pytest.raises(ValueError, match="datapath"):
        Block("int2", 1, 8, dims=TINY, device=DEV)
    with pytest.raises(ValueError, match="n_heads\\*head_dim"):
        BlockDims(d_model=64, n_heads=3, head_dim=32, d_ffn=96)
    with pytest.raises(ValueError, match="d_ffn"):
        BlockDims(d_ffn=0)
