"""Fused RMSNorm + activation quantizers give model.quant's codes and scales bit for bit."""
import math

import pytest
import torch

from kernels.rmsnorm_quant import TOPK_SEARCHES, reference_quant, rmsnorm_quant, rmsnorm_reference
from model import quant as Q

DEV = "cuda" if torch.cuda.is_available() else "cpu"
SEARCHES = sorted(TOPK_SEARCHES)


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


@pytest.mark.parametrize("search", SEARCHES)
def test_topk_threshold_searches_agree_on_ties_and_wide_rows(search):
    # every search finds the exact k-th largest |x| (ties broken by index) on a 3000-wide row
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


@pytest.mark.parametrize("search", ["pairs", "interp"])
@pytest.mark.parametrize("D", [101, 3000])
def test_the_faster_topk_searches_find_the_bitwise_threshold(search, D):
    # integer-valued rows (many ties at the threshold) and a row of one repeated value
    g = torch.Generator().manual_seed(D)
    x = torch.randint(-6, 7, (3, D), generator=g).float() * 0.25
    x[2] = 1.5
    fast = rmsnorm_quant(x.to(DEV), "topk8", norm=False, topk_search=search)
    bitwise = rmsnorm_quant(x.to(DEV), "topk8", norm=False, topk_search="bitwise")
    ref = Q.quantize_topk_int8(x)
    assert torch.equal(fast[0].cpu(), ref.codes) and torch.equal(fast[1].cpu(), ref.scale)
    assert torch.equal(fast[0].cpu(), bitwise[0].cpu())
    with pytest.raises(ValueError, match="topk_search must be one of"):
        rmsnorm_quant(x.to(DEV), "topk8", topk_search="linear")


def _topk_matches_model(x, search, w=None, norm=True, ratio=0.5, visible=True):
    """The kernel's TopK codes and scales equal model.quant's.  ``visible``: every row also drops a value
    whose INT8 code is non-zero, so that a threshold one value too low would change the codes."""
    codes, scale = rmsnorm_quant(x.to(DEV), "topk8", None if w is None else w.to(DEV), norm=norm,
                                 topk_ratio=ratio, topk_search=search)
    y = rmsnorm_reference(x, w) if norm else x.float()
    ref = Q.quantize_topk_int8(y, ratio)
    assert torch.equal(codes.cpu(), ref.codes) and torch.equal(scale.cpu(), ref.scale)
    if visible:
        assert bool(((ref.codes == 0) & (Q.quantize_int8(y).codes != 0)).any(dim=1).all())


def _signed_shuffle(mags, g):
    """``mags`` with random signs, in a random order."""
    sign = torch.randint(0, 2, mags.shape, generator=g).float() * 2 - 1
    return (mags * sign)[torch.randperm(mags.numel(), generator=g)]


@pytest.mark.parametrize("search", SEARCHES)
def test_topk_ties_at_the_threshold_go_to_the_lowest_indices(search):
    # |x| in {8, 1, 0.5}, k = 500 of 1000; (#8s, #1s) puts the k-th value inside a tie group (400, 300),
    # alone above a tie group (499, 1), exactly k above the rest (500, 0), in one tie group over k (501, 0),
    # k - 1 above a tie group (400, 99), k + 1 down to a tie group (400, 101), k - 2 above one (100, 398).
    # 1 = 8 / 2^3 is where the interpolation search probes first: a probe lands exactly on a value.
    g = torch.Generator().manual_seed(31)
    rows = []
    for n8, n1 in ((400, 300), (499, 1), (500, 0), (501, 0), (400, 99), (400, 101), (100, 398)):
        mags = torch.cat([torch.full((n8,), 8.0), torch.ones(n1), torch.full((1000 - n8 - n1,), 0.5)])
        rows.append(_signed_shuffle(mags, g))
    _topk_matches_model(torch.stack(rows).half(), search, norm=False)


@pytest.mark.parametrize("search", SEARCHES)
def test_topk_a_tie_group_below_an_empty_stretch(search):
    # 100 values in 4..8, none in 0.1..4, then 450 equal values 0.1 (the threshold: 400 of them kept) over
    # 450 values in 0.04..0.06: searches that skip an empty stretch must land on the tie group exactly
    g = torch.Generator().manual_seed(37)
    mags = torch.cat([torch.rand(100, generator=g) * 4 + 4, torch.full((450,), 0.1),
                      torch.rand(450, generator=g) * 0.02 + 0.04])
    _topk_matches_model(torch.stack([_signed_shuffle(mags, g), _signed_shuffle(mags, g)]).half(), search,
                        norm=False)


@pytest.mark.parametrize("search", SEARCHES)
def test_topk_rows_of_one_value_keep_the_first_k(search):
    g = torch.Generator().manual_seed(32)
    x = torch.stack([torch.full((300,), 0.7), torch.full((300,), -3.0), _signed_shuffle(torch.full((300,), 1.25), g)])
    w = (torch.rand(300, generator=g) + 0.5).half()
    _topk_matches_model(x.half(), search, norm=False)
    _topk_matches_model(x.half(), search)                         # normalised: still one value a row
    _topk_matches_model(x.half(), search, w)


@pytest.mark.parametrize("search", SEARCHES)
def test_topk_rows_with_many_exact_zeros(search):
    # 700 zeros (some -0.0) of 1000: the threshold is 0 and every non-zero is kept; 501 zeros: likewise,
    # one zero short of k; all zeros; 500 zeros: exactly k non-zeros; 400 zeros: the threshold is a non-zero
    g = torch.Generator().manual_seed(33)

    def row(zeros):
        mags = torch.cat([torch.zeros(zeros), torch.rand(1000 - zeros, generator=g) + 1.0])
        return _signed_shuffle(mags, g)

    _topk_matches_model(torch.stack([row(700), row(501), row(1000), row(500)]).half(), search, norm=False,
                        visible=False)
    _topk_matches_model(torch.stack([row(700), row(1000)]).half(), search, visible=False)
    _topk_matches_model(torch.stack([row(400), row(300)]).half(), search, norm=False)


@pytest.mark.parametrize("search", SEARCHES)
def test_topk_rows_spanning_a_huge_dynamic_range(search):
    g = torch.Generator().manual_seed(34)
    # fp32, no norm: 400 values in 1e-30..1e-3 under 600 in 1e28..1e30 (log-uniform); the threshold in the band
    logs = torch.cat([torch.rand(2, 400, generator=g) * 62 - 69, torch.rand(2, 600, generator=g) * 4.6 + 64.5],
                     dim=1)
    x = torch.stack([_signed_shuffle(r.exp(), g) for r in logs])
    _topk_matches_model(x, search, norm=False)
    # fp16 through the norm: 600 columns of |x| in 1000..4000 (weight 0.5..2) over 400 columns of |x| from the
    # fp16 subnormals up to 16 (weight 2^-12..2^12)
    band = torch.randperm(1000, generator=g)[:600]
    x = 2.0 ** (torch.rand(2, 1000, generator=g) * 28 - 24)
    x[:, band] = torch.rand(2, 600, generator=g) * 3000 + 1000
    w = 2.0 ** (torch.rand(1000, generator=g) * 24 - 12)
    w[band] = 2.0 ** (torch.rand(600, generator=g) * 2 - 1)
    sign = torch.randint(0, 2, (2, 1000), generator=g) * 2 - 1
    _topk_matches_model((x * sign).half(), search, w.half())


@pytest.mark.parametrize("search", SEARCHES)
@pytest.mark.parametrize("D", [4000, 11008])
def test_topk_rows_not_a_power_of_two_wide(search, D):
    # three different rows in one launch: Gaussian, integer-valued (ties), 40 % zeros
    g = torch.Generator().manual_seed(D)
    x = torch.randn(3, D, generator=g) * 2
    x[1] = torch.randint(-6, 7, (D,), generator=g) * 0.25
    x[2] = _signed_shuffle(torch.cat([torch.zeros(D * 2 // 5), torch.rand(D - D * 2 // 5, generator=g) + 1]), g)
    w = (torch.rand(D, generator=g) + 0.5).half()
    _topk_matches_model(x.half(), search)
    _topk_matches_model(x.half(), search, w)


@pytest.mark.parametrize("search", SEARCHES)
@pytest.mark.parametrize("ratio,visible", [(0.001, True), (0.3, True), (0.995, False), (1.0, False)])
def test_topk_ratios_from_one_value_to_the_whole_row(search, ratio, visible):
    # k = 1, 90, 299 (all but one) and 300 (all) of 300
    x = _x(3, 300, seed=35)
    w = (torch.rand(300, generator=torch.Generator().manual_seed(36)) + 0.5).half()
    _topk_matches_model(x, search, w, ratio=ratio, visible=visible)


def test_the_warp_count_of_the_row_program_changes_no_code_and_a_bad_one_is_refused():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 300, generator=g).half().to(DEV)
    w = (torch.rand(300, generator=g) + 0.5).half().to(DEV)
    ref = reference_quant(x, "topk8", w)
    for warps in (1, 4, 32):
        codes, scale = rmsnorm_quant(x, "topk8", w, num_warps=warps)
        assert torch.equal(codes.cpu(), ref.codes) and torch.equal(scale.cpu(), ref.scale)
    for bad in (0, 3, 64, True, 8.0):
        with pytest.raises(ValueError, match="num_warps"):
            rmsnorm_quant(x, "int8", w, num_warps=bad)
