"""The reference decoder: configs, the two forwards, KV-cache decode, a float64 reference."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from model import fakequant as fq
from model import quant as q
from model.config import DATAPATHS as DATAPATHS_ALL
from model.config import PRESETS, ModelConfig, get_config, memory_table, weight_bytes
from model.model import ActivationCapture, BitLinear, Transformer, quantize_act

DATAPATHS = ("fp16", "b1.58", "a4.8", "a4.8-fp4")


def _tokens(cfg, B=2, T=9, seed=1):
    return torch.randint(0, cfg.vocab_size, (B, T), generator=torch.Generator().manual_seed(seed))


def _rand(shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------ configs
def test_paper_presets_have_the_papers_parameter_counts():
    # non-embedding linear params, docs/paper-facts.md §2.2 (4h^2 + 3hf per layer, MHA)
    expect = {"700m": 679.5e6, "1.3b": 1.208e9, "3b": 3.222e9, "7b": 6.476e9}
    for name, n in expect.items():
        assert get_config(name).linear_params == pytest.approx(n, rel=1e-3)


def test_2b4t_preset_shape():
    c = get_config("2b4t", "b1.58")
    assert (c.dim, c.ffn_dim, c.n_layers, c.n_heads, c.kv_heads, c.hd, c.vocab_size) == \
        (2560, 6912, 30, 20, 5, 128, 128256)
    assert c.ffn_kind == "relu2glu" and c.rope_theta == 500000.0


@pytest.mark.parametrize("name, shape", [
    # (dim, ffn_dim, n_layers, n_heads, kv_heads, vocab): the released Llama configs
    ("13b", (5120, 13824, 40, 40, 40, 32000)),
    ("llama3-8b", (4096, 14336, 32, 32, 8, 128256)),
    ("llama2-70b", (8192, 28672, 80, 64, 8, 32000)),
    ("llama3-70b", (8192, 28672, 80, 64, 8, 128256)),
])
def test_llama_presets_have_the_released_shapes_on_every_datapath(name, shape):
    for d in DATAPATHS:
        c = get_config(name, d)
        assert (c.dim, c.ffn_dim, c.n_layers, c.n_heads, c.kv_heads, c.vocab_size) == shape
        assert c.name == name and c.hd == 128 and c.datapath == d


def test_weight_bytes_match_the_closed_form():
    # llama3-70b: 80 layers of q,o 8192x8192, k,v 1024x8192, gate/up/down 28672x8192
    proj = 80 * (2 * 8192 * 8192 + 2 * 1024 * 8192 + 3 * 28672 * 8192)
    assert proj + 2 * 128256 * 8192 == pytest.approx(70.55e9, rel=1e-3)     # the "70B"
    norms = (80 * (8192 * 3 + 28672) + 8192) * 2
    emb = head = 128256 * 8192 * 2
    fp16 = weight_bytes(get_config("llama3-70b"))
    assert fp16.projections == proj * 2 and fp16.total == proj * 2 + norms + emb + head
    ternary = weight_bytes(get_config("llama3-70b"), "b1.58")
    assert ternary.projections == proj / 4 and ternary.total == proj / 4 + norms + emb + head
    int4_head = weight_bytes(get_config("llama3-70b", "b1.58", lm_head_bits=4))
    assert int4_head.lm_head == 128256 * 8192 / 2 + 128256 * 4
    assert weight_bytes(get_config("7b", "a4.8")).projections == get_config("7b").linear_params / 4


def test_a_model_yaml_without_name_is_labelled_by_its_file_stem(tmp_path):
    p = tmp_path / "deep" / "my-model.yaml"
    p.parent.mkdir()
    p.write_text("dim: 64\nffn_dim: 128\nn_heads: 4\nn_layers: 2\nvocab_size: 50\n")
    assert get_config(str(p)).name == "my-model"
    p.write_text("name: mine\ndim: 64\nffn_dim: 128\nn_heads: 4\nn_layers: 2\nvocab_size: 50\n")
    assert get_config(str(p), "b1.58").name == "mine"


@pytest.mark.parametrize("change, message", [
    (dict(norm_eps=float("inf")), "norm_eps"),
    (dict(norm_eps=float("nan")), "norm_eps"),
    (dict(rope_theta=float("inf")), "rope_theta"),
    (dict(dim=1 << 20), "dim"),
    (dict(vocab_size=2.5), "vocab_size"),
    (dict(dim=65536, n_heads=512, ffn_dim=262144, n_layers=1000), "TB of FP16"),
])
def test_non_finite_or_terabyte_model_configs_are_refused(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig.from_dict({**get_config("tiny").to_dict(), **change})
    p = tmp_path / "m.yaml"
    p.write_text("".join(f"{k}: {v}\n" for k, v in {**PRESETS["tiny"], **change}.items())
                 .replace("inf", ".inf").replace("nan", ".nan"))
    with pytest.raises(ValueError, match=message):
        get_config(str(p))


def test_datapath_defaults():
    assert get_config("7b", "b1.58").ffn_kind == "swiglu"
    assert get_config("7b", "a4.8").ffn_kind == "relu2glu"
    assert get_config("7b", "b1.58", ffn_act="relu2glu").ffn_kind == "relu2glu"
    a = get_config("7b", "a4.8")
    assert a.kv_cache_bits == 3 and a.bos_bits == 4 and a.kv_quantized
    assert not get_config("7b", "b1.58").kv_quantized
    assert a.act_formats == dict(qkv="int4", o="int8-topk", ffn="int4", down="int8")
    assert get_config("7b", "a4.8-fp4").act_formats == dict(qkv="fp4", o="fp4", ffn="fp4", down="int8")


def test_config_yaml_round_trip(tmp_path):
    for name in PRESETS:
        c = get_config(name, "a4.8")
        path = tmp_path / f"{name}.yaml"
        c.to_yaml(path)
        assert ModelConfig.from_yaml(path) == c
        assert get_config(str(path)) == c
    assert ModelConfig.from_yaml(get_config("tiny").to_yaml()) == get_config("tiny")


@pytest.mark.parametrize("change, field", [
    (dict(hidden=5), "hidden"),
    (dict(dim=-64), "dim"),
    (dict(n_layers=0), "n_layers"),
    (dict(datapath="int2"), "datapath"),
    (dict(ffn_act="gelu"), "ffn_act"),
    (dict(kv_bits=8), "kv_bits"),
    (dict(topk_ratio=1.5), "topk_ratio"),
    (dict(n_kv_heads=3), "n_kv_heads"),
    (dict(dim=65), "head_dim"),
    (dict(datapath="a4.8", ffn_act="swiglu"), "ffn_act"),
    (dict(dtype="int8"), "dtype"),
])
def test_bad_config_fields_raise_value_error_naming_them(change, field):
    with pytest.raises(ValueError, match=field):
        ModelConfig.from_dict({**get_config("tiny").to_dict(), **change})


def test_unknown_preset_and_bad_yaml_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="preset"):
        get_config("13c")
    p = tmp_path / "bad.yaml"
    p.write_text("dim: [1, 2\n")
    with pytest.raises(ValueError, match="YAML"):
        ModelConfig.from_yaml(p)
    with pytest.raises(ValueError, match="missing"):
        ModelConfig.from_dict({"dim": 8})


# ------------------------------------------------------------ fake quantizers
@pytest.mark.parametrize("fmt", ["int8", "int4", "fp4", "int8-topk"])
def test_fake_quantizers_give_the_integer_paths_codes(fmt):
    x = torch.cat([_rand((64, 257), 3) * 2, torch.zeros(1, 257),
                   torch.randint(-3, 4, (8, 257), generator=torch.Generator().manual_seed(4)).float()])
    exact = quantize_act(x, fmt, exact=True)
    fake = quantize_act(x, fmt, exact=False)
    assert torch.equal(exact.recorded(), fake.codes)
    assert torch.equal(exact.qt.scale, fake.scale)


def test_fake_ternary_and_kv_match_the_integer_path():
    w = _rand((96, 80), 5) * 0.05
    c, s = fq.fake_ternary(w)
    qt = q.quantize_ternary(w)
    assert torch.equal(c, qt.codes.float()) and torch.equal(s, qt.scale)
    x = _rand((2, 3, 7, 16), 6)
    pos = torch.arange(7)
    assert torch.equal(fq.fake_kv(x, 3, 4, pos), q.quantize_kv(x, 3, 4, pos).dequant())


def test_ste_passes_gradients_through_quantizers_and_the_topk_mask():
    x = _rand((4, 64), 7).requires_grad_()
    codes, scale = fq.fake_topk_int8(x, 0.5)
    (codes * scale).sum().backward()
    # identity STE (up to the float32 product inv*scale): all entries, masked ones too [QS eq.13]
    np.testing.assert_allclose(x.grad.numpy(), 1.0, rtol=1e-6)
    lin = BitLinear(64, 32, "ternary")
    torch.nn.init.normal_(lin.weight, std=0.1, generator=torch.Generator().manual_seed(8))
    x = _rand((3, 64), 9).requires_grad_()
    y, _ = lin(quantize_act(x, "int4", exact=False), exact=False)
    y.sum().backward()
    wq = q.quantize_ternary(lin.weight.detach()).dequant()
    np.testing.assert_allclose(x.grad.numpy(), wq.sum(0).expand(3, -1).numpy(), rtol=1e-5, atol=1e-7)


def test_fake_path_trains():
    cfg = get_config("tiny", "a4.8")
    torch.manual_seed(0)
    m = Transformer(cfg, seed=0)
    tok = _tokens(cfg, B=4, T=16, seed=2)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        logits = m(tok[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg.vocab_size), tok[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


# ------------------------------------------------------------ the two forwards
@pytest.mark.parametrize("datapath, ffn", [("b1.58", None), ("b1.58", "relu2glu"), ("a4.8", None),
                                           ("a4.8-fp4", None)])
def test_integer_and_fake_paths_have_identical_codes_accumulators_and_outputs(datapath, ffn):
    cfg = get_config("tiny", datapath, ffn_act=ffn) if ffn else get_config("tiny", datapath)
    m = Transformer(cfg, seed=3)
    tok = _tokens(cfg)
    r_int, r_fake = ActivationCapture(), ActivationCapture()
    with torch.no_grad():
        y_int = m(tok, exact=True, rec=r_int)
        y_fake = m(tok, exact=False, rec=r_fake)
    acc_keys = [k for k in r_int if k[1].startswith("acc_")]
    assert len(acc_keys) == 7 * cfg.n_layers
    for k in acc_keys:
        assert r_int[k].dtype == torch.int32
        assert torch.equal(r_int[k].double(), r_fake[k].double()), k
    for k in [k for k in r_int if k[1].startswith("in_")]:
        assert torch.equal(r_int[k], r_fake[k]), k
    torch.testing.assert_close(y_fake, y_int, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("datapath", DATAPATHS)
@pytest.mark.parametrize("exact", [False, True])
def test_prefill_then_decode_matches_one_full_forward(datapath, exact):
    cfg = get_config("tiny", datapath, dtype="float64")
    m = Transformer(cfg, seed=4)
    tok = _tokens(cfg, B=2, T=10, seed=5)
    with torch.no_grad():
        full = m(tok, exact=exact)
        cache = m.new_cache()
        parts = [m(tok[:, :4], cache=cache, exact=exact), m(tok[:, 4:6], cache=cache, exact=exact)]
        parts += [m(tok[:, i:i + 1], cache=cache, exact=exact) for i in range(6, 10)]
    assert cache.length == 10
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-9, atol=1e-9)


def test_decode_in_float32_matches_full_forward_within_float_tolerance():
    cfg = get_config("tiny", "a4.8")
    m = Transformer(cfg, seed=6)
    tok = _tokens(cfg, B=1, T=8, seed=7)
    with torch.no_grad():
        full = m(tok)
        cache = m.new_cache()
        steps = torch.cat([m(tok[:, i:i + 1], cache=cache) for i in range(8)], dim=1)
    torch.testing.assert_close(steps, full, rtol=1e-4, atol=1e-4)


def test_a48_kv_cache_holds_3bit_codes_with_a_4bit_bos():
    cfg = get_config("tiny", "a4.8")
    m = Transformer(cfg, seed=8)
    cache = m.new_cache()
    with torch.no_grad():
        m(_tokens(cfg, B=1, T=3), cache=cache, exact=True)
        m(_tokens(cfg, B=1, T=1, seed=9), cache=cache, exact=True)
    first, second = cache.layers[0].k
    assert isinstance(first, q.QTensor) and first.levels[0, 0, :, 0].tolist() == [15, 7, 7]
    assert second.levels[0, 0, :, 0].tolist() == [7]
    assert int(second.codes.max()) <= 7


def test_quantized_a48_activations_have_the_expected_sparsity():
    cfg = get_config("tiny", "a4.8", dim=256, n_heads=4, n_kv_heads=4, ffn_dim=512)
    m = Transformer(cfg, seed=10)
    rec = ActivationCapture()
    with torch.no_grad():
        m(_tokens(cfg, B=4, T=32, seed=11), rec=rec)
    zero = lambda name: float((rec[(0, name)] == 0).double().mean())  # noqa: E731
    assert zero("in_o") >= 0.5 and ((rec[(0, "in_o")] != 0).sum(-1) <= 128).all()
    assert 0.09 < zero("in_qkv") < 0.16           # INT4 zero bin on near-Gaussian inputs
    assert zero("gate_act") > 0.3                  # ReLU² zeros


# ------------------------------------------------------------ float64 reference (fp16 datapath)
def _np(t):
    return t.detach().double().numpy()


def reference_forward(m: Transformer, tokens: np.ndarray) -> np.ndarray:
    """Plain float64 numpy LLaMA forward with subln norms (RoPE as complex rotation)."""
    cfg = m.cfg
    H, KVH, hd = cfg.n_heads, cfg.kv_heads, cfg.hd

    def rms(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + cfg.norm_eps) * _np(g)

    def rope(x):  # x [T, heads, hd]; pair (2i, 2i+1) as a complex number times e^{i pos theta_i}
        T = x.shape[0]
        z = x[..., 0::2] + 1j * x[..., 1::2]
        theta = cfg.rope_theta ** (-np.arange(0, hd, 2) / hd)
        z = z * np.exp(1j * np.arange(T)[:, None, None] * theta[None, None, :])
        out = np.empty_like(x)
        out[..., 0::2], out[..., 1::2] = z.real, z.imag
        return out

    outs = []
    for seq in tokens:
        x = _np(m.tok_embeddings.weight)[seq]
        T = len(seq)
        for blk in m.layers:
            a, f = blk.attn, blk.ffn
            h = rms(x, blk.attn_norm.weight)
            qh = rope((h @ _np(a.wq.weight).T).reshape(T, H, hd))
            kh = rope((h @ _np(a.wk.weight).T).reshape(T, KVH, hd))
            vh = (h @ _np(a.wv.weight).T).reshape(T, KVH, hd)
            ctx = np.zeros((T, H, hd))
            for head in range(H):
                kv = head // (H // KVH)
                s = qh[:, head] @ kh[:, kv].T / math.sqrt(hd)
                s = np.where(np.tril(np.ones((T, T))) > 0, s, -np.inf)
                p = np.exp(s - s.max(-1, keepdims=True))
                ctx[:, head] = (p / p.sum(-1, keepdims=True)) @ vh[:, kv]
            x = x + rms(ctx.reshape(T, H * hd), a.sub_norm.weight) @ _np(a.wo.weight).T
            h = rms(x, blk.ffn_norm.weight)
            gate, up = h @ _np(f.w_gate.weight).T, h @ _np(f.w_up.weight).T
            act = gate / (1 + np.exp(-gate)) if cfg.ffn_kind == "swiglu" else np.maximum(gate, 0) ** 2
            x = x + rms(act * up, f.sub_norm.weight) @ _np(f.w_down.weight).T
        outs.append(rms(x, m.norm.weight) @ _np(m.output.weight).T)
    return np.stack(outs)


@pytest.mark.parametrize("ffn", ["swiglu", "relu2glu"])
def test_fp16_datapath_matches_a_float64_reference(ffn):
    cfg = get_config("tiny", "fp16", ffn_act=ffn, dtype="float64")
    m = Transformer(cfg, seed=12)
    with torch.no_grad():  # non-trivial norm gains so a missing gain would show
        for blk in m.layers:
            blk.attn.sub_norm.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(13))
            blk.ffn_norm.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(14))
    tok = _tokens(cfg, B=2, T=7, seed=15)
    with torch.no_grad():
        got = m(tok).numpy()
    np.testing.assert_allclose(got, reference_forward(m, tok.numpy()), rtol=1e-10, atol=1e-10)
    m32 = Transformer(cfg.replace(dtype="float32"), seed=12)
    m32.load_state_dict({k: v.float() for k, v in m.state_dict().items()})
    with torch.no_grad():
        np.testing.assert_allclose(m32(tok).double().numpy(), got, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------ bad input
def test_bad_tokens_and_cache_misuse_raise_clear_errors():
    cfg = get_config("tiny", "b1.58")
    m = Transformer(cfg, seed=0)
    with pytest.raises(TypeError, match="tokens"):
        m(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="token ids"):
        m(torch.tensor([[0, cfg.vocab_size]]))
    with pytest.raises(ValueError, match="shape"):
        m(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="fp16"):
        BitLinear(4, 4, "int3")
    cache = m.new_cache()
    with torch.no_grad():
        m(torch.tensor([[1, 2]]), cache=cache)
    with pytest.raises(ValueError, match="batch"):
        m(torch.tensor([[1], [2]]), cache=cache)


def test_frozen_layers_compute_exactly_what_unfrozen_ones_do():
    cfg = get_config("tiny", "a4.8")
    m, frozen = Transformer(cfg, seed=16), Transformer(cfg, seed=16)
    for mod in frozen.modules():
        if isinstance(mod, BitLinear):
            mod.freeze_()
    assert set(frozen.layers[0].attn.wq.weight.unique().tolist()) <= {-1.0, 0.0, 1.0}
    tok = _tokens(cfg)
    with torch.no_grad():
        for exact in (False, True):
            assert torch.equal(frozen(tok, exact=exact), m(tok, exact=exact))


def test_memory_table_counts_the_published_parameter_totals():
    rows = {(r["preset"], r["datapath"]): r for r in memory_table()}
    assert len(rows) == (len(PRESETS) - 1) * len(DATAPATHS_ALL)
    # released totals (embedding and head included): Llama 2 7B/13B/70B, Llama 3 8B/70B
    for preset, billions in (("7b", 6.74), ("13b", 13.02), ("llama2-70b", 68.98), ("llama3-8b", 8.03),
                             ("llama3-70b", 70.55)):
        assert rows[(preset, "fp16")]["params"] / 1e9 == pytest.approx(billions, rel=2e-3)
    assert rows[("7b", "w4a16")]["total_bytes"] == weight_bytes(get_config("7b", "w4a16")).total
