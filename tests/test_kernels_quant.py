"""Fused RMSNorm + activation quantizers give model.quant's codes and scales bit for bit."""
import math

import pytest
import torch

from kernels.rmsnorm_quant import reference_quant, rmsnorm_quant, rmsnorm_reference
from model import quant as Q

DEV = "cuda" if torch.cuda.is_available() else "cpu"


def _x(M, D, seed, dtype=torch.float16):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(M, D, generator=g) * 2).to(dtype)


@pytest.mark.parametrize("mode,quant", [("int8", Q.quantize_int8), ("int4", Q.quantize_int4),
                                        ("topk8", Q.quantize_topk_int8)])
@pytest.mark.parametrize("M,D", [(1, 100), (5, 257)])
def test_quantizer_alone_equals_model_quant(mode, quant, M, D):
    x = _x(M, D, seed=D + M, dtype=torch.float32)
    codes, scale = rmsnorm_quant(x.to(DEV), mode, norm=False)
    ref = quant(x)
    assert torch.equal(codes.cpu(), ref.codes) and torch.equal(scale.cpu(), ref.scale)


@pytest.mark.parametrize("mode", ["int8", "int4", "topk8"])
@pytest.mark.parametrize("M,D", [(1, 64), (3, 1000)])
def test_fused_norm_then_quantizer_equals_reference_norm_then_model_quant(mode, M, D):
    x = _x(M, D, seed=M * D)
    w = (torch.rand(D, generator=torch.Generator().manual_seed(D)) + 0.5).to(torch.float16)
    codes, scale = rmsnorm_quant(x.to(DEV), mode, w.to(DEV))
    ref = reference_quant(x, mode, w)
    assert torch.equal(codes.cpu(), ref.codes) and torch.equal(scale.cpu(), ref.scale)


def test_int4_codes_as_fp8_are_the_same_integers():
    x = _x(4, 300, seed=11)
    codes, scale = rmsnorm_quant(x.to(DEV), "int4", out_fp8=True)
    ref = reference_quant(x, "int4", None)
    assert codes.dtype == torch.float8_e4m3fn
    assert torch.equal(codes.cpu().float(), ref.codes.float()) and torch.equal(scale.cpu(), ref.scale)


def test_topk_ties_keep_the_lowest_indices():
    # integer-valued rows: many equal |x| at the k-th largest value
    g = torch.Generator().manual_seed(5)
    x = torch.randint(-3, 4, (4, 101), generator=g).float()
    codes, _ = rmsnorm_quant(x.to(DEV), "topk8", norm=False)
    ref = Q.quantize_topk_int8(x)
    assert torch.equal(codes.cpu(), ref.codes)
    assert int((codes.cpu() != 0).sum(dim=1).max()) <= math.ceil(0.5 * 101)


def test_relu2glu_product_and_nonzero_list_match_model():
    x, gate = _x(3, 200, seed=1), _x(3, 200, seed=2)
    w = torch.ones(200, dtype=torch.float16)
    codes, scale, nzi, nnz = rmsnorm_quant(x.to(DEV), "int8", w.to(DEV), gate=gate.to(DEV), nonzero=True)
    ref = reference_quant(x, "int8", w, gate)
    assert torch.equal(codes.cpu(), ref.codes) and torch.equal(scale.cpu(), ref.scale)
    for r in range(3):
        expect = torch.nonzero(ref.codes[r]).flatten()
        assert int(nnz[r]) == expect.numel() < 200                 # relu(gate)^2 zeroes about half
        assert torch.equal(nzi[r, :int(nnz[r])].cpu().long(), expect)


def test_zero_row_gives_zero_codes_and_clamped_scale():
    x = torch.zeros(2, 64)
    x[1] = 1.0
    codes, scale = rmsnorm_quant(x.to(DEV), "int8", norm=False)
    ref = Q.quantize_int8(x)
    assert torch.equal(codes.cpu(), ref.codes) and torch.equal(scale.cpu(), ref.scale)
    assert float(scale[0]) == pytest.approx(1e-5 / 127)


def test_reference_rmsnorm_is_the_correctly_rounded_float64_formula():
    x = _x(6, 333, seed=3).float()
    w = torch.rand(333, generator=torch.Generator().manual_seed(4)) + 0.5
    y = rmsnorm_reference(x, w)
    x64 = x.double()
    r = torch.sqrt((x64 * x64).mean(-1, keepdim=True) + 1e-5)
    assert torch.allclose(y.double(), x64 / r * w.double(), rtol=4 * 2.0 ** -24, atol=0)


def test_bad_inputs_raise_clear_errors():
    x = _x(2, 64, seed=0).to(DEV)
    with pytest.raises(ValueError, match="mode must be"):
        rmsnorm_quant(x, "int3")
    with pytest.raises(TypeError, match="x must have dtype"):
        rmsnorm_quant(x.to(torch.int32), "int8")
    with pytest.raises(ValueError, match="2-D"):
        rmsnorm_quant(x[0], "int8")
    with pytest.raises(ValueError, match="NaN"):
        rmsnorm_quant(torch.full_like(x, float("nan")), "int8")
    with pytest.raises(ValueError, match="out_fp8"):
        rmsnorm_quant(x, "int8", out_fp8=True)
    with pytest.raises(ValueError, match="gate must have shape"):
        rmsnorm_quant(x, "int8", gate=x[:1])
    with pytest.raises(ValueError, match="norm_weight must have shape"):
        rmsnorm_quant(x, "int8", torch.ones(63, device=DEV))
    with pytest.raises(ValueError, match="eps"):
        rmsnorm_quant(x, "int8", eps=-1.0)


@pytest.mark.parametrize("search", ["radix", "bitwise"])
def test_topk_threshold_searches_agree_on_ties_and_wide_rows(search):
    # both searches find the exact k-th largest |x| (ties broken by index) on a 3000-wide row
    g = torch.Generator().manual_seed(8)
    x = torch.randint(-6, 7, (2, 3000), generator=g).float() * 0.25
    codes, scale = rmsnorm_quant(x.to(DEV), "topk8", norm=False, topk_search=search)
    ref = Q.quantize_topk_int8(x)
    assert torch.equal(codes.cpu(), ref.codes) and torch.equal(scale.cpu(), ref.scale)


def test_silu_glu_product_matches_the_fp16_glue():
    x, gate = _x(2, 300, seed=21), _x(2, 300, seed=22)
    w = (torch.rand(300, generator=torch.Generator().manual_seed(3)) + 0.5).half()
    codes, scale = rmsnorm_quant(x.to(DEV), "int8", w.to(DEV), gate=gate.to(DEV), glu="silu")
    ref = reference_quant(x, "int8", w, gate, glu="silu")
    assert torch.equal(codes.cpu(), ref.codes) and torch.equal(scale.cpu(), ref.scale)
    with pytest.raises(ValueError, match="glu must be"):
        rmsnorm_quant(x.to(DEV), "int8", gate=gate.to(DEV), glu="gelu")


def test_a_gate_of_another_dtype_is_refused():
    x = _x(2, 64, seed=3)
    with pytest.raises(TypeError, match="gate must have dtype"):
        rmsnorm_quant(x.to(DEV), "int8", gate=x.float().to(DEV))


@pytest.mark.parametrize("mode,glu,fp8,nonzero", [("int8", "relu2", False, True), ("int8", "silu", False, False),
                                                  ("int4", None, True, False), ("int4", "relu2", False, True)])
def test_a_row_quantized_in_chunks_gives_the_whole_row_codes(mode, glu, fp8, nonzero):
    # 1000 wide in chunks of 64: 16 chunks, the last one partly masked
    M, D = 3, 1000
    x, gate = _x(M, D, seed=41), _x(M, D, seed=42) if glu else None
    w = (torch.rand(D, generator=torch.Generator().manual_seed(4)) + 0.5).half()
    kw = dict(gate=None if gate is None else gate.to(DEV), glu=glu or "relu2", out_fp8=fp8, nonzero=nonzero)
    chunked = rmsnorm_quant(x.to(DEV), mode, w.to(DEV), row_chunk=64, **kw)
    whole = rmsnorm_quant(x.to(DEV), mode, w.to(DEV), row_chunk=0, **kw)
    ref = reference_quant(x, mode, w, gate, glu=glu or "relu2")
    assert torch.equal(chunked[0].cpu().float(), ref.codes.float()) and torch.equal(chunked[1].cpu(), ref.scale)
    assert torch.equal(chunked[0].cpu().float(), whole[0].cpu().float())
    if nonzero:
        for r in range(M):
            expect = torch.nonzero(ref.codes[r]).flatten()
            assert int(chunked[3][r]) == expect.numel()
            assert torch.equal(chunked[2][r, :expect.numel()].cpu().long(), expect)


def test_the_quantizer_alone_in_chunks_equals_model_quant():
    x = _x(2, 300, seed=43, dtype=torch.float32)
    codes, scale = rmsnorm_quant(x.to(DEV), "int8", norm=False, row_chunk=128)
    ref = Q.quantize_int8(x)
    assert torch.equal(codes.cpu(), ref.codes) and torch.equal(scale.cpu(), ref.scale)


def test_rows_default_to_whole_and_bad_chunks_are_refused():
    from kernels.rmsnorm_quant import _row_chunk
    assert _row_chunk(None, 0) == 0 and _row_chunk(0, 0) == 0        # the whole row, measured faster
    assert _row_chunk(2048, 0) == 2048
    x = _x(1, 64, seed=44)
    for bad in (3, 8, -16, 2.0, True):
        with pytest.raises(ValueError, match="row_chunk"):
            rmsnorm_quant(x.to(DEV), "int8", row_chunk=bad)
    with pytest.raises(ValueError, match="TopK needs the whole row"):
        rmsnorm_quant(x.to(DEV), "topk8", row_chunk=64)


@pytest.mark.parametrize("D", [101, 3000])
def test_the_two_bit_topk_search_finds_the_bitwise_threshold(D):
    # integer-valued rows (many ties at the threshold) and a row of one repeated value
    g = torch.Generator().manual_seed(D)
    x = torch.randint(-6, 7, (3, D), generator=g).float() * 0.25
    x[2] = 1.5
    pairs = rmsnorm_quant(x.to(DEV), "topk8", norm=False, topk_search="pairs")
    bitwise = rmsnorm_quant(x.to(DEV), "topk8", norm=False, topk_search="bitwise")
    ref = Q.quantize_topk_int8(x)
    assert torch.equal(pairs[0].cpu(), ref.codes) and torch.equal(pairs[1].cpu(), ref.scale)
    assert torch.equal(pairs[0].cpu(), bitwise[0].cpu())
    with pytest.raises(ValueError, match="topk_search must be one of"):
        rmsnorm_quant(x.to(DEV), "topk8", topk_search="linear")
