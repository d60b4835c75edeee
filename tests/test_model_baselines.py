"""Quantized baseline datapaths (W4A16, W8A8 INT8 and FP8, MXFP4): codes and products against independent
float64 / Python restatements of each format, and their bytes in the op trace against closed forms."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from model import baselines as bl
from model import quant as q
from model.config import BASELINE_DATAPATHS, get_config, weight_bytes
from model.model import Transformer, quantize_act
from model.trace import build_trace


def _rand(shape, seed, scale=1.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def _nearest_even(y: float, grid: list[float]) -> float:
    """The grid value nearest to y >= 0; a tie goes to the even grid index (the even mantissa)."""
    best = min(range(len(grid)), key=lambda i: (abs(grid[i] - y), i % 2))
    return grid[best]


E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
# every finite non-negative E4M3 (e4m3fn) value, from its exponent and mantissa fields (bias 7)
E4M3 = sorted({(m / 8) * 2.0 ** -6 if e == 0 else (1 + m / 8) * 2.0 ** (e - 7)
               for e in range(16) for m in range(8) if not (e == 15 and m == 7)})


def _signed(fn, y: float) -> float:
    return math.copysign(fn(abs(y)), y) if y else 0.0


def _ref_int4_groups(w: np.ndarray, group: int) -> tuple[np.ndarray, np.ndarray]:
    n, k = w.shape
    codes, deq = np.zeros_like(w), np.zeros_like(w)
    for j in range(0, k, group):
        blk = w[:, j:j + group]
        s = (np.maximum(np.abs(blk).max(axis=1), 1e-5).astype(np.float32) / np.float32(7))
        s = s.astype(np.float16).astype(np.float64)[:, None]
        c = np.clip(np.rint(blk.astype(np.float32) / s.astype(np.float32)), -7, 7)
        codes[:, j:j + group], deq[:, j:j + group] = c, c * s
    return codes, deq


def _ref_mxfp4(x: np.ndarray) -> np.ndarray:
    """Dequantized MXFP4 of x [M, K]: E8M0 scale 2**(floor(log2 amax) - 2) per 32, E2M1 elements."""
    out = np.zeros_like(x, dtype=np.float64)
    for i in range(x.shape[0]):
        for j in range(0, x.shape[1], 32):
            blk = x[i, j:j + 32].astype(np.float64)
            amax = float(np.abs(blk).max())
            e = (math.frexp(amax)[1] - 1 - 2) if amax > 0 else -127
            s = 2.0 ** e
            out[i, j:j + 32] = [s * _signed(lambda a: min(_nearest_even(a, E2M1), 6.0), v / s) for v in blk]
    return out


def _ref_fp8_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = (np.maximum(np.abs(x).max(axis=1), 1e-5).astype(np.float32) / np.float32(448)).astype(np.float64)
    vals = np.array([[_signed(lambda a: _nearest_even(min(a, 448.0), E4M3), float(np.float32(v) / np.float32(si)))
                      for v in row] for row, si in zip(x, s)])
    return vals, s[:, None]


# ------------------------------------------------------------------ codes
def test_e2m1_rounding_is_nearest_even_with_saturation():
    y = torch.tensor([0.0, 0.24, 0.25, 0.26, 0.75, 1.25, 1.75, 2.5, 3.5, 4.9, 5.0, 5.1, 6.0, 7.0, 100.0])
    expect = [2 * _nearest_even(min(float(v), 6.0), E2M1) for v in y]
    assert q.e2m1_twice(y).tolist() == expect


def test_e4m3_rounding_matches_the_format_grid_including_ties_and_subnormals():
    mids = [(a + b) / 2 for a, b in zip(E4M3, E4M3[1:])]
    y = torch.tensor(E4M3 + mids + [0.0013, 0.7, 3.3, 250.0, 447.9, 448.0], dtype=torch.float32)
    expect = [_nearest_even(float(v), E4M3) for v in y]
    assert bl.e4m3(y).tolist() == expect and bl.e4m3(-y).tolist() == [-e for e in expect]


@pytest.mark.parametrize("group", [128, 64, 48])
def test_int4_group_codes_and_fp16_scales_match_a_numpy_restatement(group):
    w = _rand((24, 200), 1, 0.05)                       # 200 = a partial last group for every size
    g = bl.quantize_int4_groups(w, group)
    codes, deq = _ref_int4_groups(w.numpy().astype(np.float64), group)
    assert np.array_equal(g.values.numpy(), codes) and g.scale.shape == (24, math.ceil(200 / group))
    assert np.array_equal(g.dequant().double().numpy(), deq)
    assert g.values.abs().max() <= 7


def test_mxfp4_scales_are_powers_of_two_of_the_block_maximum():
    x = torch.zeros(2, 64)
    x[0, :32] = torch.linspace(-3.0, 6.0, 32)           # amax 6: scale 2**(2 - 2) = 1
    x[0, 32:] = 0.01 * torch.arange(32)                 # amax 0.31: floor(log2) = -2, scale 2**-4
    x[1, 5] = 1e-30                                     # one tiny value; the second block is all zero
    g = bl.quantize_mxfp4(x)
    assert g.scale[0].tolist() == [1.0, 2.0 ** -4]
    assert g.scale[1, 0].item() == 2.0 ** (math.frexp(1e-30)[1] - 3) and g.scale[1, 1].item() == 2.0 ** -127
    assert g.values[0, :32].tolist() == [_signed(lambda a: _nearest_even(min(a, 6.0), E2M1), float(v))
                                         for v in x[0, :32]]
    assert np.array_equal(g.dequant().double().numpy(), _ref_mxfp4(x.numpy()))


def test_mxfp4_and_fp8_codes_match_their_restatements_on_random_data():
    x = _rand((6, 96), 2) * torch.logspace(-3, 2, 96)
    assert np.array_equal(bl.quantize_mxfp4(x).dequant().double().numpy(), _ref_mxfp4(x.numpy()))
    vals, s = _ref_fp8_rows(x.numpy())
    f = bl.quantize_fp8_rows(x)
    assert np.array_equal(f.values.double().numpy(), vals) and np.array_equal(f.scale.double().numpy(), s)


# ------------------------------------------------------------------ products
def _datapath_product(datapath: str, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    cfg = get_config("tiny", datapath, weight_group=32)
    lin = Transformer(cfg, seed=0).layers[0].ffn.w_up
    with torch.no_grad():
        lin.weight.copy_(w)
        y, _ = lin(quantize_act(x, cfg.act_formats["ffn"], exact=True), exact=True)
    return y


def _reference(datapath: str, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """float64 dequantise-then-matmul, with every quantizer restated here."""
    if datapath == "w4a16":
        return x @ _ref_int4_groups(w, 32)[1].T
    if datapath == "w8a8-int8":
        def rows(a, lo):
            s = np.maximum(np.abs(a).max(axis=1), 1e-5).astype(np.float32)
            c = np.clip(np.rint(a.astype(np.float32) * (np.float32(127) / s)[:, None]), lo, 127)
            return c * (s / np.float32(127)).astype(np.float64)[:, None]
        return rows(x, -128) @ rows(w, -127).T
    if datapath == "w8a8-fp8":
        (xv, xs), (wv, ws) = _ref_fp8_rows(x), _ref_fp8_rows(w)
        return (xv * xs) @ (wv * ws).T
    return _ref_mxfp4(x) @ _ref_mxfp4(w).T


@pytest.mark.parametrize("datapath", BASELINE_DATAPATHS)
def test_each_baseline_product_matches_a_float64_dequantise_then_matmul(datapath):
    cfg = get_config("tiny")
    x = _rand((5, cfg.dim), 3) * 2
    w = _rand((cfg.ffn_dim, cfg.dim), 4, 0.1)
    y = _datapath_product(datapath, x, w)
    ref = _reference(datapath, x.double().numpy(), w.double().numpy())
    assert y.dtype == torch.float32
    np.testing.assert_allclose(y.double().numpy(), ref, rtol=2e-6, atol=1e-6 * np.abs(ref).max())


def test_baseline_models_run_both_paths_alike_and_are_inference_only():
    tokens = torch.randint(0, 97, (2, 7), generator=torch.Generator().manual_seed(5))
    for d in BASELINE_DATAPATHS:
        m = Transformer(get_config("tiny", d), seed=1)
        with torch.no_grad():
            exact, fake = m(tokens, exact=True), m(tokens, exact=False)
        torch.testing.assert_close(fake, exact, rtol=1e-4, atol=1e-4)
        with pytest.raises(ValueError, match="inference-only"):
            m(tokens)


# ------------------------------------------------------------------ bytes
@pytest.mark.parametrize("datapath, per_weight_bits, row_bytes", [
    # bits per weight of codes (+ group scales), bytes of per-row scales
    ("w4a16", 4 + 16 / 128, 0), ("w8a8-int8", 8, 4), ("w8a8-fp8", 8, 4), ("w4a4-mxfp4", 4 + 8 / 32, 0),
])
def test_trace_weight_bytes_include_the_scales(datapath, per_weight_bits, row_bytes):
    cfg = get_config("7b", datapath)
    proj = {"q_proj": (4096, 4096), "k_proj": (4096, 4096), "v_proj": (4096, 4096), "o_proj": (4096, 4096),
            "gate_proj": (11008, 4096), "up_proj": (11008, 4096), "down_proj": (4096, 11008)}
    closed = {op: n * k * per_weight_bits / 8 + n * row_bytes for op, (n, k) in proj.items()}
    st = cfg.weight_storage
    assert {op: st.matrix_bytes(n, k) for op, (n, k) in proj.items()} == closed
    assert weight_bytes(cfg).projections == 32 * sum(closed.values())


def test_trace_rows_carry_weight_and_activation_bytes_of_each_format():
    # tiny: D 64, F 160, 4 heads x 16, 2 KV heads; B 3 sequences, one new token each
    for datapath, wfmt, afmt, w_qproj, a_down in [
        ("w4a16", "int4", "fp16", 64 * 64 / 2 + 64 * 1 * 2, 3 * 160 * 2),
        ("w8a8-int8", "int8", "int8", 64 * 64 + 64 * 4, 3 * 160 + 3 * 4),
        ("w8a8-fp8", "fp8", "fp8", 64 * 64 + 64 * 4, 3 * 160 + 3 * 4),
        ("w4a4-mxfp4", "fp4", "fp4", 64 * 64 / 2 + 64 * 2, 3 * 160 / 2 + 3 * 5),
    ]:
        df = build_trace("tiny", datapath, context=10, batch=3)
        r = {x.op: x for x in df[df.layer == 0].itertuples()}
        assert (r["q_proj"].weight_format, r["q_proj"].act_format) == (wfmt, afmt)
        assert r["q_proj"].weight_bytes == w_qproj and r["down_proj"].act_bytes_in == a_down
        assert r["q_proj"].weight_bits == 8 * w_qproj / (64 * 64)
    w64 = build_trace(get_config("tiny", "w4a16", weight_group=64), "w4a16", context=10)
    down = w64[(w64.layer == 0) & (w64.op == "down_proj")].iloc[0]       # K = 160: groups 64, 64, 32
    assert down.weight_bytes == 64 * 160 / 2 + 64 * 3 * 2
