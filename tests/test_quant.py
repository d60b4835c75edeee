"""model.quant against float64 re-statements of the papers' formulas (written here, numpy).

References: BitNet a4.8 (arXiv 2411.04965) eq. 1-9, b1.58 (arXiv 2402.17764)
eq. 1-3, docs/decisions.md 1-8.  The implementation computes its multiplier in
float32, the references in float64, so a code may differ only where the
float64 pre-rounding value lies within a hair of a .5 tie; the helper checks
exactly that.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from model import quant as q
from model.fakequant import _l1_float64, _mean_abs_float32

CL = 1e-5


# ------------------------------------------------------------ references
def ref_int8(x: np.ndarray):
    g = np.maximum(np.abs(x).max(-1, keepdims=True), CL)
    pre = 127.0 * x / g
    return np.clip(np.round(pre), -128, 127), pre, g / 127.0


def ref_int4(x: np.ndarray):
    b = np.maximum(np.abs(x).mean(-1, keepdims=True), CL)
    pre = math.sqrt(7.0) * x / b
    return np.clip(np.round(pre), -8, 7), pre, b / math.sqrt(7.0)


def ref_ternary(w: np.ndarray):
    a = max(np.abs(w).mean(), CL)
    pre = w / a
    return np.clip(np.round(pre), -1, 1), pre, a


def ref_fp4_value(x: np.ndarray, E: int = 2, M: int = 1) -> np.ndarray:
    """A48 eq.8-9 (MinMax FP4), exponent floor(log2|x| + b), clamped below at 1."""
    xmax = np.maximum(np.abs(x).max(-1, keepdims=True), CL)
    b = np.log2((2 - 2.0 ** -M) / xmax) + 2 ** E - 1
    with np.errstate(divide="ignore"):
        e = np.maximum(np.floor(np.log2(np.abs(x)) + b), 1)
    e = np.where(x == 0, 1, e)
    return 2.0 ** (e - M - b) * np.round(2.0 ** (M + b - e) * x)


def ref_fp4_pre(x: np.ndarray) -> np.ndarray:
    """Pre-rounding value in units of the local grid step (for tie detection)."""
    xmax = np.maximum(np.abs(x).max(-1, keepdims=True), CL)
    y = np.abs(x) * 6.0 / xmax
    step = np.where(y < 2, 0.5, np.where(y < 4, 1.0, 2.0))
    return y / step


def ref_topk(x: np.ndarray, ratio: float) -> np.ndarray:
    """Keep k = ceil(ratio*d) largest |x| per row; equal |x|: lower index first."""
    d = x.shape[-1]
    k = math.ceil(ratio * d)
    mask = np.zeros(x.shape, dtype=bool)
    for r in range(x.shape[0]):
        order = sorted(range(d), key=lambda j: (-abs(x[r, j]), j))
        mask[r, order[:k]] = True
    return mask


def ref_kv(x: np.ndarray, bits_per_row: np.ndarray):
    """docs/decisions.md 8: c = round((x/s + 1)(2^b-1)/2), x^ = (2c/(2^b-1) - 1) s, s = max|x| per row."""
    s = np.maximum(np.abs(x).max(-1, keepdims=True), CL)
    L = 2.0 ** bits_per_row[..., None] - 1
    pre = (x / s + 1) * L / 2
    c = np.clip(np.round(pre), 0, L)
    return c, pre, (2 * c / L - 1) * s


def assert_codes(codes: torch.Tensor, ref: np.ndarray, pre: np.ndarray, near: float = 1e-4) -> None:
    """Codes equal the reference except within ``near`` of a .5 tie, where they differ by <= 1."""
    got = codes.to(torch.float64).numpy()
    frac = np.abs(np.abs(pre) - np.floor(np.abs(pre)) - 0.5)
    clear = frac > near
    assert np.array_equal(got[clear], ref[clear])
    assert np.all(np.abs(got - ref) <= 1)
    assert clear.mean() > 0.99


def _rand(shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def adversarial_rows(d: int = 64) -> torch.Tensor:
    rows = [torch.zeros(d),                                # all-zero row
            _rand((d,), 1) * 1e-3,                         # tiny row
            torch.cat([torch.tensor([1e4]), _rand((d - 1,), 2)]),  # one huge outlier
            torch.full((d,), -2.5),                        # constant row
            _rand((d,), 3) * 1e-7]                         # below the clamp
    return torch.stack(rows)


# ------------------------------------------------------------ INT8 / INT4
@pytest.mark.parametrize("make", [lambda: _rand((16, 512), 0) * 3, adversarial_rows])
def test_int8_matches_float64_absmax_formula(make):
    x = make()
    qt = q.quantize_int8(x)
    ref, pre, scale = ref_int8(x.double().numpy())
    assert_codes(qt.codes, ref, pre)
    np.testing.assert_allclose(qt.scale.double().numpy(), scale, rtol=1e-6)
    assert qt.codes.dtype == torch.int8 and qt.scale.shape == (x.shape[0], 1)


@pytest.mark.parametrize("make", [lambda: _rand((16, 512), 0) * 3, adversarial_rows])
def test_int4_matches_float64_absmean_formula(make):
    x = make()
    qt = q.quantize_int4(x)
    ref, pre, scale = ref_int4(x.double().numpy())
    assert_codes(qt.codes, ref, pre)
    np.testing.assert_allclose(qt.scale.double().numpy(), scale, rtol=1e-6)


def test_all_zero_row_gives_zero_codes_and_clamped_scale():
    x = torch.zeros(3, 32)
    for fn, scale in ((q.quantize_int8, CL / 127), (q.quantize_int4, CL / math.sqrt(7)),
                      (q.quantize_fp4, CL / 12)):
        qt = fn(x)
        assert int(qt.codes.abs().sum()) == 0
        np.testing.assert_allclose(qt.scale.numpy(), scale, rtol=1e-6)


def test_outlier_row_int8_keeps_outlier_at_127_and_zeros_the_rest():
    x = torch.cat([torch.tensor([[1e4]]), torch.ones(1, 31)], dim=1)
    qt = q.quantize_int8(x)
    assert int(qt.codes[0, 0]) == 127
    assert int(qt.codes[0, 1:].abs().sum()) == 0  # 127/1e4 * 1 = 0.0127 rounds to 0


def test_int4_clips_asymmetrically_to_minus8_and_7():
    x = torch.tensor([[10.0, -10.0] + [0.1] * 30])
    qt = q.quantize_int4(x)
    assert int(qt.codes[0, 0]) == 7 and int(qt.codes[0, 1]) == -8


def test_int8_exact_half_ties_round_to_even():
    # gamma = 127 makes the multiplier exactly 1.0, so x*inv is exactly x
    x = torch.tensor([[127.0, 0.5, 1.5, 2.5, -2.5, -3.5, 4.5, -0.5]])
    qt = q.quantize_int8(x)
    assert qt.codes[0].tolist() == [127, 0, 2, 2, -2, -4, 4, 0]


def test_int4_exact_half_tie_rounds_to_even():
    # choose the last element so that x*inv is exactly 2.5 in float32 (fixed point of beta)
    base = torch.tensor([3.0, -2.0, 1.0, 0.25, -1.75, 2.0, 0.5], dtype=torch.float32)
    t = torch.tensor([0.5])
    for _ in range(50):
        x = torch.cat([base, t])
        inv = torch.tensor(q.SQRT7) / q.absmean(x[None])[0, 0]
        t = (torch.tensor(2.5) / inv).reshape(1)
    x = torch.cat([base, t])[None]
    inv = torch.tensor(q.SQRT7, dtype=torch.float32) / q.absmean(x)[0, 0]
    assert float(x[0, -1] * inv) == 2.5           # the tie really is exact
    assert int(q.quantize_int4(x).codes[0, -1]) == 2


def test_gaussian_int4_zero_fraction_is_12_percent():
    qt = q.quantize_int4(_rand((256, 4096), 5))
    assert abs(qt.zero_fraction - 0.1199) < 0.005


def test_gaussian_int8_zero_fraction_is_1_2_percent():
    qt = q.quantize_int8(_rand((256, 4096), 6))
    assert abs(qt.zero_fraction - 0.012) < 0.002


# ------------------------------------------------------------ ternary
def test_ternary_matches_float64_absmean_formula():
    w = _rand((64, 96), 7) * 0.02
    qt = q.quantize_ternary(w)
    ref, pre, a = ref_ternary(w.double().numpy())
    assert_codes(qt.codes, ref, pre)
    assert qt.scale.shape == () and abs(float(qt.scale) - a) < 1e-6 * a
    assert set(qt.codes.unique().tolist()) <= {-1, 0, 1}


def test_ternary_zero_weight_uses_the_clamp():
    qt = q.quantize_ternary(torch.zeros(4, 4))
    assert float(qt.scale) == pytest.approx(CL) and int(qt.codes.abs().sum()) == 0


# ------------------------------------------------------------ FP4
@pytest.mark.parametrize("make", [lambda: _rand((16, 256), 8) * 5, adversarial_rows])
def test_fp4_matches_paper_minmax_formula(make):
    x = make()
    qt = q.quantize_fp4(x)
    xd = x.double().numpy()
    ref = ref_fp4_value(xd)
    got = qt.dequant().double().numpy()
    pre = ref_fp4_pre(xd)
    clear = np.abs(pre - np.floor(pre) - 0.5) > 1e-4
    np.testing.assert_allclose(got[clear], ref[clear], rtol=1e-6, atol=1e-30)
    grid = np.array([0, 1, 2, 3, 4, 6, 8, 12])
    assert np.isin(np.abs(qt.codes.numpy()), grid).all()


def test_fp4_ties_go_to_even_mantissa():
    # max|x| = 6 makes y = x exactly; ties 0.25 -> 0, 0.75 -> 1, 1.25 -> 1, 1.75 -> 2, 2.5 -> 2, 3.5 -> 4, 5 -> 4
    x = torch.tensor([[6.0, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -5.0]])
    assert (q.quantize_fp4(x).dequant()[0]).tolist() == [6.0, 0, 1, 1, 2, 2, 4, 4, -4]


# ------------------------------------------------------------ TopK
def test_topk_keeps_exactly_half_with_lower_index_winning_ties():
    x = torch.tensor([[1.0, -1.0, 1.0, 1.0, 1.0, 1.0, 1.0],      # all tied: first 4
                      [0.0, 3.0, -2.0, 2.0, 2.0, -2.0, 1.0],     # k=4: 3, then first three 2s
                      [0.0] * 7])
    m = q.topk_mask(x, 0.5)
    assert m.sum(-1).tolist() == [4, 4, 4]
    assert m[0].tolist() == [True] * 4 + [False] * 3
    assert m[1].tolist() == [False, True, True, True, True, False, False]
    assert np.array_equal(m.numpy(), ref_topk(x.numpy(), 0.5))


def test_topk_matches_reference_on_random_rows_with_many_ties():
    x = torch.randint(-3, 4, (32, 33), generator=torch.Generator().manual_seed(9)).float()
    m = q.topk_mask(x, 0.5)
    assert (m.sum(-1) == 17).all()
    assert np.array_equal(m.numpy(), ref_topk(x.numpy(), 0.5))


def test_topk_int8_masks_codes_and_keeps_unmasked_gamma():
    x = _rand((8, 128), 10)
    qt = q.quantize_topk_int8(x, 0.5)
    ref, pre, scale = ref_int8(x.double().numpy())
    mask = ref_topk(x.numpy(), 0.5)
    assert_codes(qt.codes, np.where(mask, ref, 0), np.where(mask, pre, 0.0))
    np.testing.assert_allclose(qt.scale.double().numpy(), scale, rtol=1e-6)
    assert qt.zero_fraction >= 0.5


def test_topk_bad_ratio_is_rejected():
    with pytest.raises(ValueError, match="ratio"):
        q.topk_mask(torch.ones(2, 4), 0.0)


# ------------------------------------------------------------ KV
def test_kv_quantizer_matches_unsigned_absmax_mapping_with_4bit_bos():
    x = _rand((2, 3, 6, 16), 11)  # [B, heads, T, head_dim]
    qt = q.quantize_kv(x, bits=3, bos_bits=4)
    bits = np.broadcast_to(np.array([4, 3, 3, 3, 3, 3], dtype=float), (2, 3, 6))
    c, pre, val = ref_kv(x.double().numpy(), bits)
    assert_codes(qt.codes, c, pre)
    assert qt.levels[0, 0, :, 0].tolist() == [15, 7, 7, 7, 7, 7]
    np.testing.assert_allclose(qt.dequant().double().numpy(), val, rtol=1e-5, atol=1e-6)
    assert int(qt.codes.max()) <= 15 and int(qt.codes.min()) >= 0


def test_kv_positions_mark_the_bos_row():
    x = _rand((4, 8), 12)
    qt = q.quantize_kv(x, bits=3, bos_bits=4, positions=torch.tensor([5, 6, 7, 8]))
    assert qt.levels[:, 0].tolist() == [7, 7, 7, 7]  # no BOS in this chunk


@pytest.mark.parametrize("bits", [1, 8, 3.0])
def test_kv_bits_out_of_range_are_rejected(bits):
    with pytest.raises(ValueError, match="bits"):
        q.quantize_kv(torch.ones(2, 4), bits=bits)


# ------------------------------------------------------------ GEMM
def test_int_gemm_equals_int64_matmul_and_scales_after_the_gemm():
    x = q.quantize_int8(_rand((5, 300), 13))
    w = q.quantize_ternary(_rand((7, 300), 14))
    acc = q.int_gemm(x, w)
    ref = x.codes.numpy().astype(np.int64) @ w.codes.numpy().astype(np.int64).T
    assert acc.dtype == torch.int32 and np.array_equal(acc.numpy(), ref)
    y = q.qlinear(x, w, torch.float32)
    expect = (ref.astype(np.float32) * x.scale.numpy()).astype(np.float32) * np.float32(w.scale)
    assert np.array_equal(y.numpy(), expect.astype(np.float32))


def test_int_gemm_rejects_mismatched_k():
    with pytest.raises(ValueError, match="K mismatch"):
        q.int_gemm(q.quantize_int8(torch.ones(2, 4)), q.quantize_ternary(torch.ones(3, 5)))


# ------------------------------------------------------------ bad input
@pytest.mark.parametrize("fn", [q.quantize_int8, q.quantize_int4, q.quantize_fp4,
                                q.quantize_ternary, q.quantize_kv, q.topk_mask])
def test_nan_and_inf_are_rejected(fn):
    for bad in (float("nan"), float("inf")):
        x = torch.ones(4, 8)
        x[1, 2] = bad
        with pytest.raises(ValueError, match="NaN or inf"):
            fn(x)


@pytest.mark.parametrize("fn", [q.quantize_int8, q.quantize_int4, q.quantize_fp4, q.quantize_ternary])
def test_wrong_dtype_and_type_are_rejected(fn):
    with pytest.raises(TypeError, match="floating-point"):
        fn(torch.ones(4, 8, dtype=torch.int32))
    with pytest.raises(TypeError, match="torch.Tensor"):
        fn(np.ones((4, 8)))


def test_empty_and_rank_errors_name_the_problem():
    with pytest.raises(ValueError, match="empty"):
        q.quantize_int8(torch.ones(0, 8))
    with pytest.raises(ValueError, match="dimension"):
        q.quantize_ternary(torch.ones(8))


def test_half_precision_inputs_give_the_same_codes_as_their_float32_upcast():
    x = _rand((4, 64), 15).half()
    assert torch.equal(q.quantize_int4(x).codes, q.quantize_int4(x.float()).codes)


def test_the_fast_ternary_scale_equals_the_float64_reference_sum_even_at_a_rounding_tie():
    g = torch.Generator().manual_seed(7)
    cases = [torch.randn(37 + i, 129 + 3 * i, generator=g) * 10 ** (i % 5 - 2) for i in range(40)]
    tie = torch.full((64, 64), 1.0)
    tie[::2] = 1.0 + 2.0 ** -23        # mean|w| = 1 + 2**-24: exactly between two float32 values
    for w in cases + [tie]:
        assert _mean_abs_float32(w).item() == (_l1_float64(w) / w.numel()).to(torch.float32).item()
