"""The decoder block assembled from the kernels: prefill then decode for every datapath, and the
fused decode step computes what the per-operator step computes."""

import pytest
import torch

from kernels.block import AUTO_TWO_PASS_MIN_M, BlockDims, DecodePlan, KernelBlock
from kernels.configs import ConfigTable, shape_key

DEV = "cuda" if torch.cuda.is_available() else "cpu"
TINY = BlockDims(d_model=64, n_heads=2, head_dim=32, d_ffn=96)
# wide row blocks for the tiny shapes: few programs, so the interpreter runs fast
_NK = ((192, 64), (64, 64), (64, 96))
TINY_TUNED = ConfigTable({"gemv": {shape_key(N=n, K=k): dict(BN=64, KB=8, num_warps=4) for n, k in _NK}})


def test_a48_block_prefill_then_decode_is_finite_and_uses_topk_sparsity():
    torch.manual_seed(0)
    blk = KernelBlock("a4.8", 1, 8, dims=TINY, device=DEV, tuned=TINY_TUNED)
    x = torch.randn(1, 5, 64).half().to(DEV)
    y = blk.forward(x, 0)
    yd = blk.forward(torch.randn(1, 1, 64).half().to(DEV), 5)       # sparse GEMVs + 3-bit KV decode
    assert y.shape == (1, 5, 64) and yd.shape == (1, 1, 64)
    assert bool(torch.isfinite(y).all()) and bool(torch.isfinite(yd).all())
    assert blk.sparsity["o_in"] >= 0.5                                  # TopK-50 % into Wo
    assert 0.0 < blk.sparsity["down_in"] < 1.0                          # ReLU² zeros into Wdown


def _fused_equals_per_operator(a, b, plan, seed):
    """Both blocks' caches filled alike; the fused step of ``b`` against the per-operator step of ``a`` on one
    token at position 7 (within 1e-2 of the block's change on a GPU, bit for bit on the CPU); the fused output."""
    for blk in (a, b):
        blk.fill_cache(7)
    x = torch.randn(1, 1, 64, generator=torch.Generator().manual_seed(seed)).half().to(DEV)
    ref = a.forward(x, 7)
    y = b.decode_fused(x, 7, plan)
    assert float((y.double() - ref.double()).norm() / (ref.double() - x.double()).norm()) < 1e-2
    if DEV == "cpu":
        assert torch.equal(y, ref)
    return x, y


@pytest.mark.parametrize("datapath,plan,launches", [
    ("b1.58", DecodePlan(), 5), ("b1.58", DecodePlan(prologue="separate"), 9),
    ("a4.8", DecodePlan(wo="dense", wdown="dense"), 6), ("a4.8", DecodePlan(prologue="separate"), 9),
    ("a4.8", DecodePlan(wo="masked", wdown="masked"), 7),
    ("a4.8", DecodePlan(prologue="separate", wo="masked", wdown="masked", pdl=True), 9),
    ("a4.8", DecodePlan(prologue="separate", wo="dense", wdown="masked", pdl=True), 9),
    ("a4.8", DecodePlan(prologue="separate", wo="dense", wdown="dense", topk_search="bitwise"), 9),
    ("a4.8", DecodePlan(prologue="separate", wo="sparse", wdown="dense", topk_search="pairs"), 9)])
def test_fused_decode_step_equals_the_per_operator_step(datapath, plan, launches):
    # same weights, same cache: the fused step (norm+quant in the GEMV prologue, one attention launch,
    # residuals in the epilogues) gives the per-operator step's output; on the CPU bit for bit
    a, b = (KernelBlock(datapath, 1, 12, dims=TINY, device=DEV, tuned=TINY_TUNED) for _ in range(2))
    _fused_equals_per_operator(a, b, plan, seed=3)
    assert b.launches_fused(plan) == launches


def test_b158_with_a_4bit_kv_cache_fused_step_equals_its_per_operator_step():
    a, b = (KernelBlock("b1.58", 1, 12, dims=TINY, device=DEV, tuned=TINY_TUNED, kv_bits=4) for _ in range(2))
    for blk in (a, b):
        blk.fill_cache(7)
    assert a.cache.bits == 4 and a.cache.written() == 7
    x = torch.randn(1, 1, 64, generator=torch.Generator().manual_seed(5)).half().to(DEV)
    ref = a.forward(x, 7)
    y = b.decode_fused(x, 7, DecodePlan())
    assert float((y.double() - ref.double()).norm() / (ref.double() - x.double()).norm()) < 1e-2
    if DEV == "cpu":
        assert torch.equal(y, ref)


@pytest.mark.parametrize("datapath,plan", [("a4.8", DecodePlan(prologue="separate", wo="dense", wdown="dense")),
                                           ("b1.58", DecodePlan())])
def test_dense_3bit_cache_fused_step_equals_its_per_operator_step(datapath, plan):
    a, b = (KernelBlock(datapath, 1, 12, dims=TINY, device=DEV, tuned=TINY_TUNED, kv_bits=3, kv_layout="dense3")
            for _ in range(2))
    x, y = _fused_equals_per_operator(a, b, plan, seed=6)
    assert a.cache.written() == 8 and a.cache.k_codes.shape[-1] == 3 * TINY.head_dim // 32   # 3 bits a value
    for side in ("k", "v"):         # both steps wrote the new row alike
        assert torch.equal(getattr(a.cache, f"{side}_codes")[:, :, 7], getattr(b.cache, f"{side}_codes")[:, :, 7])
    nib = KernelBlock(datapath, 1, 12, dims=TINY, device=DEV, tuned=TINY_TUNED, kv_bits=3)
    nib.fill_cache(7)                # the nibble cache holds the same codes: the same output, up to the sum order
    y_nib = nib.decode_fused(x, 7, plan)
    assert float((y.double() - y_nib.double()).norm() / (y_nib.double() - x.double()).norm()) < 1e-2


def test_block_rejects_unknown_datapath_and_bad_dims():
    with pytest.raises(ValueError, match="kv_layout"):
        KernelBlock("a4.8", 1, 8, dims=TINY, device=DEV, kv_layout="planes")
    with pytest.raises(ValueError, match="kv_bits=3"):
        KernelBlock("b1.58", 1, 8, dims=TINY, device=DEV, kv_bits=4, kv_layout="dense3")
    with pytest.raises(ValueError, match="kv_bits"):
        KernelBlock("fp16", 1, 8, dims=TINY, device=DEV, kv_bits=4)
    with pytest.raises(ValueError, match="kv_bits"):
        KernelBlock("b1.58", 1, 8, dims=TINY, device=DEV, kv_bits=9)
    with pytest.raises(ValueError, match="datapath"):
        KernelBlock("int2", 1, 8, dims=TINY, device=DEV)
    with pytest.raises(ValueError, match="n_heads\\*head_dim"):
        BlockDims(d_model=64, n_heads=3, head_dim=32, d_ffn=96)
    with pytest.raises(ValueError, match="d_ffn"):
        BlockDims(d_ffn=0)
    with pytest.raises(ValueError, match="wo must be one of"):
        DecodePlan(wo="none")
    with pytest.raises(ValueError, match="wdown must be one of .*'masked'"):
        DecodePlan(wdown="listed")
    with pytest.raises(ValueError, match="persistent has no masked sparse stage"):
        DecodePlan(wdown="masked", persistent=True)
    with pytest.raises(ValueError, match="prologue must be"):
        DecodePlan(prologue="half")
    with pytest.raises(ValueError, match="topk_search must be one of .*'interp'"):
        DecodePlan(topk_search="sorted")
    blk = KernelBlock("fp16", 1, 8, dims=TINY, device=DEV)
    with pytest.raises(ValueError, match="ternary datapaths"):
        blk.decode_fused(torch.zeros(1, 1, 64, dtype=torch.float16, device=DEV), 3)


def test_b158_prefill_by_the_two_pass_route_equals_the_fused_route_bit_for_bit():
    # 24 tokens: above the library GEMM's M > 16, so the two-pass route takes every linear layer
    fused, two = (KernelBlock("b1.58", 1, 32, dims=TINY, device=DEV, tuned=TINY_TUNED, prefill_route=r)
                  for r in ("fused", "two_pass"))
    x = torch.randn(1, 24, 64, generator=torch.Generator().manual_seed(7)).half().to(DEV)
    y = two.forward(x, 0)
    assert torch.equal(y, fused.forward(x, 0))
    shapes = {(tuple(w.shape), False) for w in two.wp.values()}
    assert set(two._scratch) == shapes and not fused._scratch      # one decoded scratch per packed weight shape
    assert torch.equal(two.forward(x, 0), y)                       # the scratch is reused, same result


def test_the_prefill_route_is_chosen_by_shape_and_device():
    blk = KernelBlock("b1.58", 1, 8, dims=TINY, device=DEV, prefill_route="auto")
    big = AUTO_TWO_PASS_MIN_M
    assert blk._two_pass(big, 64, 64) == (DEV == "cuda")           # auto: the two-pass route on a GPU, for a prefill
    assert not blk._two_pass(big - 1, 64, 64) and not blk._two_pass(32, 64, 64)    # a decode batch: fused
    blk.prefill_route = "two_pass"
    assert blk._two_pass(24, 64, 64) and not blk._two_pass(16, 64, 64) and not blk._two_pass(24, 64, 40)
    with pytest.raises(ValueError, match="prefill_route must be one of"):
        KernelBlock("b1.58", 1, 8, dims=TINY, device=DEV, prefill_route="split")
