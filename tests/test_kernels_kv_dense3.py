"""The dense 3-bit KV cache (48-byte rows, BOS row at 4 bits): codes and scales equal model.quant's, and
decode attention over it equals a float64 softmax over the dequantized cache."""
import pytest
import torch

from kernels.kv_attention import reference_attention
from kernels.kv_dense3 import Dense3KVCache, dense3_attention, dense3_read_codes, dense3_write
from model import quant as Q

DEV = "cuda" if torch.cuda.is_available() else "cpu"


def _kv(B, H, T, D, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, H, T, D, generator=g), torch.randn(B, H, T, D, generator=g)


def test_dense_write_gives_model_quant_codes_and_scales_with_a_4bit_bos_row():
    B, H, T, D = 2, 2, 9, 64
    k, v = _kv(B, H, T, D, seed=1)
    cache = Dense3KVCache.allocate(B, H, T, D, DEV)
    dense3_write(cache, k[:, :, :4].contiguous().to(DEV), v[:, :, :4].contiguous().to(DEV), 0)   # prefill, then 1 by 1
    for t in range(4, T):
        dense3_write(cache, k[:, :, t:t + 1].contiguous().to(DEV), v[:, :, t:t + 1].contiguous().to(DEV), t)
    for x, side in ((k, "k"), (v, "v")):
        ref = Q.quantize_kv(x, bits=3, bos_bits=4)
        codes = dense3_read_codes(*(getattr(cache, f"{side}_{p}").cpu() for p in ("codes", "bos")))
        assert torch.equal(codes, ref.codes)
        assert torch.equal(getattr(cache, f"{side}_scale").cpu(), ref.scale[..., 0])
    assert int(ref.codes[:, :, 0].max()) > 7                                  # the BOS row uses its 4th bit
    assert cache.k_codes.numel() * 4 == B * H * T * 3 * D // 8                          # 3 bits a value


@pytest.mark.parametrize("T,D,cfg", [(13, 64, dict(BT=4, S=3)), (32, 64, dict(BT=8, S=1)),
                                     (21, 128, dict(BT=8, S=2, num_stages=2, num_warps=1))])
def test_dense3_attention_equals_float64_softmax(T, D, cfg):
    B, H = 2, 2
    k, v = _kv(B, H, T, D, seed=T)
    cache = Dense3KVCache.allocate(B, H, T + 3, D, DEV)
    dense3_write(cache, k.to(DEV), v.to(DEV), 0)
    q = torch.randn(B, H, D, generator=torch.Generator().manual_seed(9))
    y = dense3_attention(q.to(DEV), cache, T, config=cfg).cpu()
    ref = reference_attention(q, Q.quantize_kv(k).dequant(), Q.quantize_kv(v).dequant())
    assert float((y.double() - ref).norm() / ref.norm()) < 1e-5


def test_dense3_refuses_unwritten_rows_and_bad_layouts():
    cache = Dense3KVCache.allocate(1, 2, 8, 32, DEV)
    k, v = _kv(1, 2, 3, 32, seed=2)
    dense3_write(cache, k.to(DEV), v.to(DEV), 0)
    q = torch.randn(1, 2, 32, device=DEV)
    with pytest.raises(ValueError, match="rows written"):
        dense3_attention(q, cache, 4)
    with pytest.raises(ValueError, match="unwritten"):
        dense3_write(cache, k.to(DEV), v.to(DEV), 5)
    with pytest.raises(ValueError, match="multiple of 32"):
        Dense3KVCache.allocate(1, 1, 4, 48, DEV)
    with pytest.raises(ValueError, match="unknown config keys"):
        dense3_attention(q, cache, 3, config=dict(FMA=True))
    with pytest.raises(ValueError, match="BT must be a positive int"):
        dense3_attention(q, cache, 3, config=dict(BT=0))
    with pytest.raises(TypeError, match="k_codes must have dtype"):
        Dense3KVCache(**{**vars(cache), "k_codes": cache.k_codes.float()})
