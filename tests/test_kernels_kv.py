"""Quantized KV cache: the write kernel equals model.quant.quantize_kv bit for bit (BOS rule
included) and decode attention over it equals a float64 softmax over the dequantized cache."""

import pytest
import torch

from kernels.attention_step import Fp16KVCache, attention_step, rope_reference, rope_tables
from kernels.kv_attention import QuantKVCache, decode_attention, kv_read_codes, kv_write, reference_attention
from kernels.kv_dense3 import Dense3KVCache, dense3_write
from model import quant as Q

DEV = "cuda" if torch.cuda.is_available() else "cpu"


def _kv(B, H, T, D, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, H, T, D, generator=g), torch.randn(B, H, T, D, generator=g) * 0.5


@pytest.mark.parametrize("bits", [3, 4])
def test_cache_write_in_chunks_equals_quantize_kv(bits):
    B, H, T, D = 2, 2, 11, 32
    k, v = _kv(B, H, T, D, seed=bits)
    cache = QuantKVCache.allocate(B, H, T + 3, D, DEV, bits=bits, bos_bits=4)
    kv_write(cache, k[:, :, :4].contiguous().to(DEV), v[:, :, :4].contiguous().to(DEV), 0)   # prefill
    for t in range(4, T):                                                                     # decode
        kv_write(cache, k[:, :, t:t + 1].contiguous().to(DEV), v[:, :, t:t + 1].contiguous().to(DEV), t)
    for x, codes, scale in ((k, cache.k_codes, cache.k_scale), (v, cache.v_codes, cache.v_scale)):
        ref = Q.quantize_kv(x, bits=bits, bos_bits=4)
        assert torch.equal(kv_read_codes(codes[:, :, :T].cpu()), ref.codes)
        assert torch.equal(scale[:, :, :T].cpu(), ref.scale[..., 0])
    assert int(kv_read_codes(cache.k_codes[:, :, :1].cpu()).max()) > 2 ** bits - 1 or bits == 4  # BOS 4-bit


@pytest.mark.parametrize("fma", [False, True])
@pytest.mark.parametrize("B,Hkv,G,T,D", [(1, 1, 1, 1, 32), (2, 2, 3, 21, 32), (1, 2, 4, 40, 64), (1, 1, 1, 70, 128)])
def test_decode_attention_equals_float64_reference(B, Hkv, G, T, D, fma):
    k, v = _kv(B, Hkv, T, D, seed=T)
    cache = QuantKVCache.allocate(B, Hkv, T + 5, D, DEV)
    kv_write(cache, k.to(DEV), v.to(DEV), 0)
    q = torch.randn(B, Hkv * G, D, generator=torch.Generator().manual_seed(9))
    y = decode_attention(q.to(DEV), cache, T, config=dict(BT=8, S=2, FMA=fma)).cpu()
    ref = reference_attention(q, Q.quantize_kv(k).dequant(), Q.quantize_kv(v).dequant())
    assert float((y.double() - ref).norm() / ref.norm()) < 1e-5


def test_decode_attention_reads_only_the_first_T_tokens():
    B, H, T, D = 1, 2, 12, 32
    k, v = _kv(B, H, T, D, seed=1)
    cache = QuantKVCache.allocate(B, H, T, D, DEV)
    kv_write(cache, k.to(DEV), v.to(DEV), 0)
    q = torch.randn(B, H, D, generator=torch.Generator().manual_seed(2))
    y = decode_attention(q.to(DEV), cache, 7, config=dict(BT=4, S=3)).cpu()
    ref = reference_attention(q, Q.quantize_kv(k[:, :, :7]).dequant(), Q.quantize_kv(v[:, :, :7]).dequant())
    assert float((y.double() - ref).norm() / ref.norm()) < 1e-5


def test_bad_inputs_raise_clear_errors():
    cache = QuantKVCache.allocate(1, 2, 8, 32, DEV)
    k = torch.randn(1, 2, 3, 32, device=DEV)
    with pytest.raises(ValueError, match="do not fit"):
        kv_write(cache, k, k, 6)
    with pytest.raises(ValueError, match=r"k must be \[B=1, Hkv=2"):
        kv_write(cache, torch.randn(1, 3, 3, 32, device=DEV), torch.randn(1, 3, 3, 32, device=DEV), 0)
    with pytest.raises(ValueError, match="NaN"):
        kv_write(cache, torch.full_like(k, float("nan")), k, 0)
    with pytest.raises(TypeError, match="k must have dtype"):
        kv_write(cache, k.to(torch.int32), k, 0)
    with pytest.raises(ValueError, match="T must be"):
        decode_attention(torch.randn(1, 2, 32, device=DEV), cache, 9)
    with pytest.raises(ValueError, match="q must be"):
        decode_attention(torch.randn(1, 3, 32, device=DEV), cache, 4)
    with pytest.raises(ValueError, match="head_dim must be a multiple of 8"):
        QuantKVCache.allocate(1, 1, 4, 12, DEV)
    with pytest.raises(ValueError, match="bits"):
        QuantKVCache.allocate(1, 1, 4, 32, DEV, bits=5)
    kv_write(cache, k, k, 0)
    with pytest.raises(ValueError, match="unknown config keys"):
        decode_attention(torch.randn(1, 2, 32, device=DEV), cache, 3, config=dict(BLOCK=8))
    with pytest.raises(ValueError, match="BT must be a power of two"):
        decode_attention(torch.randn(1, 2, 32, device=DEV), cache, 3, config=dict(BT=12))


def test_attention_refuses_rows_that_were_never_written():
    cache = QuantKVCache.allocate(1, 2, 8, 32, DEV)
    k = torch.randn(1, 2, 3, 32, device=DEV)
    q = torch.randn(1, 2, 32, device=DEV)
    with pytest.raises(ValueError, match="exceeds the 0 rows written"):
        decode_attention(q, cache, 1)
    kv_write(cache, k, k, 0)
    assert cache.written() == 3
    with pytest.raises(ValueError, match="T=4 exceeds the 3 rows written"):
        decode_attention(q, cache, 4)
    with pytest.raises(ValueError, match="T must be an int"):
        decode_attention(q, cache, True)
    with pytest.raises(ValueError, match="unwritten"):
        kv_write(cache, k, k, 4)                       # would leave row 3 holding nothing
    assert decode_attention(q, cache, 3).shape == (1, 2, 32)


def test_user_built_caches_with_wrong_codes_or_bits_are_refused():
    c = QuantKVCache.allocate(1, 2, 8, 32, DEV)
    parts = dict(k_codes=c.k_codes, k_scale=c.k_scale, v_codes=c.v_codes, v_scale=c.v_scale)
    assert QuantKVCache(**parts).written() == 8              # built from given tensors: every row counts
    with pytest.raises(ValueError, match="bits must be an int in"):
        QuantKVCache(**parts, bits=9)
    with pytest.raises(ValueError, match="bos_bits must be an int in"):
        QuantKVCache(**parts, bos_bits=True)
    with pytest.raises(TypeError, match="k_codes must have dtype"):
        QuantKVCache(**dict(parts, k_codes=c.k_codes.float()))
    with pytest.raises(TypeError, match="v_codes must have dtype"):
        QuantKVCache(**dict(parts, v_codes=c.v_codes.long()))
    with pytest.raises(ValueError, match="k_scale must have shape"):
        QuantKVCache(**dict(parts, k_scale=c.k_scale[:, :, :4].contiguous()))


@pytest.mark.parametrize("fma", [False, True])
def test_decode_attention_when_scores_grow_along_the_context(fma):
    # keys turn towards q as t grows: every tile's max beats the running max by >> 8, so the
    # FMA kernel's lazy rescale (and the dot kernel's per-tile rescale) runs on every tile
    B, H, T, D = 1, 1, 48, 32
    g = torch.Generator().manual_seed(4)
    q = torch.randn(B, H, D, generator=g)
    ramp = torch.linspace(-1, 1, T).view(1, 1, T, 1)
    k = ramp * 40 * q[:, :, None, :] / q.norm() + 0.1 * torch.randn(B, H, T, D, generator=g)
    v = torch.randn(B, H, T, D, generator=g)
    cache = QuantKVCache.allocate(B, H, T, D, DEV)
    kv_write(cache, k.to(DEV), v.to(DEV), 0)
    kd, vd = Q.quantize_kv(k).dequant(), Q.quantize_kv(v).dequant()
    scores = torch.einsum("bhd,bhtd->bht", q.double(), kd.double()) / D ** 0.5
    assert float(scores[..., -8:].max() - scores[..., :8].max()) > 24       # the max really moves
    y = decode_attention(q.to(DEV), cache, T, config=dict(BT=8, S=1, FMA=fma)).cpu()
    ref = reference_attention(q, kd, vd)
    assert float((y.double() - ref).norm() / ref.norm()) < 1e-5


def _layout_cache(layout, B, H, T_max, D):
    if layout == "nibble":
        return QuantKVCache.allocate(B, H, T_max, D, DEV), kv_write
    return Dense3KVCache.allocate(B, H, T_max, D, DEV), dense3_write


def _cache_state(cache):
    if isinstance(cache, QuantKVCache):
        return (cache.k_codes, cache.v_codes, cache.k_scale, cache.v_scale)
    return (cache.k_codes, cache.k_bos, cache.v_codes, cache.v_bos, cache.k_scale, cache.v_scale)


@pytest.mark.parametrize("layout,S", [("nibble", 3), ("dense3", 3), ("dense3", 1), ("fp16", 1)])
def test_attention_step_writes_the_cache_row_and_attends_like_the_reference(layout, S):
    # one launch: RoPE on q and k, the new row written (bit-exact), split attention, ticket combine
    B, H, D, T_max, pos = 2, 2, 32, 20, 13
    g = torch.Generator().manual_seed(S + 10 * len(layout))
    past_k = torch.randn(B, H, pos, D, generator=g).half()
    past_v = torch.randn(B, H, pos, D, generator=g).half()
    qkv = torch.randn(B, 3 * H * D, generator=g).half()
    cos, sin = rope_tables(T_max, D, "cpu")
    q, k, v = qkv.view(B, 3, H, D).unbind(1)
    qr, kr = rope_reference(q, cos[pos], sin[pos]), rope_reference(k, cos[pos], sin[pos])
    if layout != "fp16":        # the same writes through the layout's own write kernel give the expected state
        cache, write = _layout_cache(layout, B, H, T_max, D)
        write(cache, past_k.to(DEV), past_v.to(DEV), 0)
        expect, _ = _layout_cache(layout, B, H, T_max, D)
        write(expect, past_k.to(DEV), past_v.to(DEV), 0)
        write(expect, kr[:, :, None].contiguous().to(DEV), v[:, :, None].contiguous().to(DEV), pos)
    else:
        cache = Fp16KVCache.allocate(B, H, T_max, D, DEV)
        cache.k[:, :, :pos], cache.v[:, :, :pos] = past_k.to(DEV), past_v.to(DEV)
    y = attention_step(qkv.to(DEV), cache, pos, cos.to(DEV), sin.to(DEV), config=dict(BT=4, S=S, num_warps=4))
    if layout != "fp16":
        for a, b in zip(_cache_state(cache), _cache_state(expect)):
            assert torch.equal(a.cpu(), b.cpu())
        assert cache.written() == pos + 1
        kd = Q.quantize_kv(torch.cat((past_k, kr[:, :, None]), 2).float()).dequant()
        vd = Q.quantize_kv(torch.cat((past_v, v[:, :, None]), 2).float()).dequant()
    else:
        assert torch.equal(cache.k[:, :, pos].cpu(), kr) and torch.equal(cache.v[:, :, pos].cpu(), v)
        kd, vd = cache.k[:, :, :pos + 1].cpu().double(), cache.v[:, :, :pos + 1].cpu().double()
    ref = reference_attention(qr.float(), kd, vd).reshape(B, H * D)
    assert float((y.cpu().double() - ref).norm() / ref.norm()) < 1e-3                    # fp16 output
    assert torch.equal(attention_step(qkv.to(DEV), cache, pos, cos.to(DEV), sin.to(DEV),
                                      config=dict(BT=4, S=S, num_warps=4)), y)          # tickets reset: replayable


def test_attention_step_refuses_bad_inputs():
    cache = Fp16KVCache.allocate(1, 2, 8, 32, DEV)
    cos, sin = rope_tables(8, 32, DEV)
    qkv = torch.randn(1, 3 * 64, device=DEV).half()
    with pytest.raises(ValueError, match="pos must be"):
        attention_step(qkv, cache, 8, cos, sin)
    with pytest.raises(ValueError, match="qkv must be"):
        attention_step(qkv[:, :100].contiguous(), cache, 3, cos, sin)
    with pytest.raises(ValueError, match="cos must be"):
        attention_step(qkv, cache, 3, cos[:4].contiguous(), sin)
    with pytest.raises(TypeError, match="cache must be"):
        attention_step(qkv, object(), 3, cos, sin)
    with pytest.raises(ValueError, match="attention_step config S must be a positive int"):
        attention_step(qkv, cache, 3, cos, sin, config=dict(S=0))
