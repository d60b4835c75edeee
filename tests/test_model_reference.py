"""The integer-exact quantized datapaths against a float64 numpy re-statement of the papers.

The reference re-derives every quantizer from the paper formulas (the float64
functions of test_quant.py), checks that the model's recorded codes equal
them wherever the float64 value is not within a hair of a rounding tie, and
then continues with the recorded codes so that a legitimate tie flip cannot
cascade.  Everything else (ternary weights, GEMMs, scales, RMSNorms, RoPE,
GQA attention over the 3-bit/4-bit-BOS KV cache, GLU) is recomputed in float64.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_quant import ref_fp4_pre, ref_fp4_value, ref_int4, ref_int8, ref_kv, ref_ternary, ref_topk

from model.config import get_config
from model.model import ActivationCapture, Transformer

NEAR = 1e-4  # distance to a .5 tie (in code units) below which float32 and float64 may disagree


def _np(t):
    return t.detach().double().numpy()


def _check_codes(got: np.ndarray, ref: np.ndarray, pre: np.ndarray) -> None:
    clear = np.abs(np.abs(pre) - np.floor(np.abs(pre)) - 0.5) > NEAR
    assert clear.mean() > 0.95  # the check is not vacuous
    np.testing.assert_array_equal(got[clear], ref[clear])


def ref_quant(x: np.ndarray, fmt: str, recorded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, float64 scale) of an activation; asserts the recorded codes against the formula."""
    if fmt in ("int8", "int8-topk"):
        ref, pre, scale = ref_int8(x)
        if fmt == "int8-topk":
            keep = ref_topk(x.reshape(-1, x.shape[-1]), 0.5).reshape(x.shape)
            assert (keep.sum(-1) == math.ceil(x.shape[-1] / 2)).all()
            ref, pre = np.where(keep, ref, 0.0), np.where(keep, pre, 0.0)
            # |x| within float noise of the k-th largest |x| may legitimately swap places
            kth = -np.sort(-np.abs(x), axis=-1)[..., math.ceil(x.shape[-1] / 2) - 1:][..., :1]
            pre = np.where(np.abs(np.abs(x) - kth) <= 1e-6 * kth, 0.5, pre)
    elif fmt == "int4":
        ref, pre, scale = ref_int4(x)
    elif fmt == "fp4":
        scale = np.maximum(np.abs(x).max(-1, keepdims=True), 1e-5) / 12.0
        ref, pre = np.round(ref_fp4_value(x) / scale), np.sign(x) * ref_fp4_pre(x)
    else:
        raise AssertionError(fmt)
    _check_codes(recorded, ref, pre)
    return recorded, scale


def ternary_weight(lin) -> tuple[np.ndarray, float]:
    codes, _, alpha = ref_ternary(_np(lin.weight))
    return codes, alpha


def linear(act: tuple, lin) -> np.ndarray:
    """Integer GEMM of the codes (exact in float64), then activation and weight scales [D5]."""
    w, alpha = ternary_weight(lin)
    return (act[0] @ w.T) * act[1] * alpha


def reference_quantized_forward(m: Transformer, tokens: np.ndarray, rec: ActivationCapture) -> np.ndarray:
    cfg = m.cfg
    H, KVH, hd, fm = cfg.n_heads, cfg.kv_heads, cfg.hd, cfg.act_formats
    B, T = tokens.shape

    def rms(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + cfg.norm_eps) * _np(g)

    def rope(x):  # [B, T, heads, hd]
        z = x[..., 0::2] + 1j * x[..., 1::2]
        theta = cfg.rope_theta ** (-np.arange(0, hd, 2) / hd)
        z = z * np.exp(1j * np.arange(T)[None, :, None, None] * theta)
        out = np.empty_like(x)
        out[..., 0::2], out[..., 1::2] = z.real, z.imag
        return out

    def kv_quant(x, recorded):  # x [B, T, heads, hd]; BOS (position 0) at 4 bits
        got = recorded.transpose(0, 2, 1, 3)
        if not cfg.kv_quantized:
            np.testing.assert_allclose(got, x, rtol=1e-5, atol=1e-5)
            return got
        bits = np.where(np.arange(T) == 0, cfg.bos_bits, cfg.kv_cache_bits).astype(float)
        c, pre, val = ref_kv(x, np.broadcast_to(bits[None, :, None], x.shape[:-1]))
        clear = (np.abs(pre - np.floor(pre) - 0.5) > NEAR) | (x == 0)  # x = 0 is an exact tie in both
        assert clear.mean() > 0.95  # the check is not vacuous
        np.testing.assert_allclose(got[clear], val[clear], rtol=1e-5, atol=1e-6)
        return got  # continue with the model's values: a tie flip must not cascade

    x = _np(m.tok_embeddings.weight)[tokens]
    for i, blk in enumerate(m.layers):
        a, f = blk.attn, blk.ffn
        h = ref_quant(rms(x, blk.attn_norm.weight), fm["qkv"], _np(rec[(i, "in_qkv")]))
        qh = rope((linear(h, a.wq)).reshape(B, T, H, hd))
        kh = kv_quant(rope((linear(h, a.wk)).reshape(B, T, KVH, hd)), _np(rec[(i, "k_new")]))
        vh = kv_quant((linear(h, a.wv)).reshape(B, T, KVH, hd), _np(rec[(i, "v_new")]))
        ctx = np.zeros((B, T, H, hd))
        for head in range(H):
            kv = head // (H // KVH)
            s = np.einsum("btd,bsd->bts", qh[:, :, head], kh[:, :, kv]) / math.sqrt(hd)
            s = np.where(np.tril(np.ones((T, T))) > 0, s, -np.inf)
            p = np.exp(s - s.max(-1, keepdims=True))
            ctx[:, :, head] = np.einsum("bts,bsd->btd", p / p.sum(-1, keepdims=True), vh[:, :, kv])
        o_in = ref_quant(rms(ctx.reshape(B, T, H * hd), a.sub_norm.weight), fm["o"], _np(rec[(i, "in_o")]))
        x = x + linear(o_in, a.wo)
        h = ref_quant(rms(x, blk.ffn_norm.weight), fm["ffn"], _np(rec[(i, "in_ffn")]))
        gate, up = linear(h, f.w_gate), linear(h, f.w_up)
        act = np.maximum(gate, 0) ** 2 if cfg.ffn_kind == "relu2glu" else gate / (1 + np.exp(-gate))
        d_in = ref_quant(rms(up * act, f.sub_norm.weight), fm["down"], _np(rec[(i, "in_down")]))
        x = x + linear(d_in, f.w_down)
    return rms(x, m.norm.weight) @ _np(m.output.weight).T


@pytest.mark.parametrize("datapath, extra", [("b1.58", {}), ("b1.58", dict(ffn_act="relu2glu", kv_bits=3)),
                                             ("a4.8", {}), ("a4.8", dict(kv_bits=16)),
                                             ("a4.8", dict(kv_bos_bits=None)), ("a4.8-fp4", {})])
def test_integer_path_matches_float64_paper_reference(datapath, extra):
    cfg = get_config("tiny", datapath, **extra)
    m = Transformer(cfg, seed=21)
    tok = torch.randint(0, cfg.vocab_size, (2, 11), generator=torch.Generator().manual_seed(22))
    rec = ActivationCapture()
    with torch.no_grad():
        got = m(tok, exact=True, rec=rec).double().numpy()
    ref = reference_quantized_forward(m, tok.numpy(), rec)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
