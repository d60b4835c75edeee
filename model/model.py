"""The reference decoder: one LLaMA-style transformer for every datapath.

Layout [docs/decisions.md 9-10]: token embedding (FP16 datapath-independent) ->
``n_layers`` x Block -> final RMSNorm -> LM head (plain float; INT8 / INT4 weights with
``ModelConfig.lm_head_bits``, see :meth:`Transformer.head`).  A Block is::

    h = x + Wo( Q_o( subnorm( Attention( RoPE(Wq Q(n(x))), RoPE(Wk Q(n(x))), Wv Q(n(x)) ) ) ) )
    y = h + Wdown( Q_down( subnorm( GLU( Wgate Q(n(h)), Wup Q(n(h)) ) ) ) )

with RMSNorm pre-norms ``n`` and 2B4T "subln" norms, so an RMSNorm sits right
before every activation quantizer ``Q``.  No biases.  RoPE on interleaved
pairs (x[2i], x[2i+1]) at angle ``pos * theta**(-2i/head_dim)``.  GQA: query
head ``h`` reads KV head ``h // (n_heads / n_kv_heads)``.  The K/V cache holds
post-RoPE values, quantized in the a4.8 datapaths (``model.quant.quantize_kv``);
attention always reads the K/V *after* that quantization, also for the tokens
of the current call, so a prefill-then-decode run and one full forward see the
same values.

Two forwards, selected by ``exact``:

* ``exact=True``: the golden integer path: ``model.quant`` codes, int32 GEMM
  (``int_gemm``), then ``(acc * act_scale) * weight_scale`` in float32.
* ``exact=False``: the fake-quant path (``model.fakequant``): the same codes as
  float32 tensors with a straight-through estimator; the GEMM of codes runs in
  float32 (exact below 2**24, checked) or float64 otherwise, then the same
  scaling.  Trainable.

Both can record what they compute into a :class:`ActivationCapture` (codes, int
accumulators, gate outputs, attention probabilities), which the tests and
``model.trace`` read.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from model import baselines as bl
from model import fakequant as fq
from model import quant as q
from model.config import ModelConfig

DTYPES = {"float32": torch.float32, "float64": torch.float64,
          "float16": torch.float16, "bfloat16": torch.bfloat16}


class ActivationCapture(dict):
    """``(layer, name) -> tensor`` (detached) of what a forward computed.

    Names: ``in_qkv``, ``in_o``, ``in_ffn``, ``in_down`` (quantized codes, or the
    float input on the fp16 datapath), ``acc_<proj>`` (int accumulators),
    ``out_<proj>``, ``gate_act`` (activation of the gate branch), ``q_attn``
    (query as fed to QK^T), ``probs`` (softmax output), ``k_new`` / ``v_new``
    (the new tokens' post-RoPE K/V as stored in the cache, dequantized); at layer -1,
    ``in_head`` (the LM head's input: INT8 codes, or the float final-norm output).
    """

    def put(self, layer: int, name: str, t: torch.Tensor) -> None:
        self[(layer, name)] = t.detach()


@dataclass
class Act:
    """A quantized activation in either path: codes (int QTensor or float STE codes) + scale."""

    fmt: str                       # fp16, int8, int4, fp4, int8-topk
    value: torch.Tensor | None = None   # fp16 datapath: the float input itself
    qt: "q.QTensor | bl.GroupQ | None" = None   # exact path (and the baselines' FP8 / MXFP4 in both)
    codes: torch.Tensor | None = None   # fake path: integer-valued float32 (STE)
    scale: torch.Tensor | None = None   # fake path

    def recorded(self) -> torch.Tensor:
        """Codes as a comparable tensor (float32), or the float input."""
        if self.value is not None:
            return self.value
        if self.qt is not None:
            return self.qt.signed_codes().to(torch.float32)
        return self.codes


def quantize_act(x: torch.Tensor, fmt: str, exact: bool, topk_ratio: float = 0.5) -> Act:
    """Apply the activation quantizer ``fmt`` on the last dim of ``x``."""
    if fmt == "fp16":
        return Act(fmt, value=x)
    if fmt in bl.ACT_QUANTIZERS:          # the baselines' FP8 / MXFP4: one arithmetic for both paths
        return Act(fmt, qt=bl.ACT_QUANTIZERS[fmt](x))
    if exact:
        if fmt == "int8-topk":
            return Act(fmt, qt=q.quantize_topk_int8(x, topk_ratio))
        return Act(fmt, qt=q.ACT_QUANTIZERS[fmt](x))
    if fmt == "int8-topk":
        codes, scale = fq.fake_topk_int8(x, topk_ratio)
    else:
        codes, scale = fq.FAKE_ACT[fmt](x)
    return Act(fmt, codes=codes, scale=scale)


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * g  (learnable gain g, no bias)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class BitLinear(nn.Module):
    """A bias-free projection whose weight is FP16-style float, ternary, or a quantized baseline's.

    ``forward`` takes an :class:`Act` (already quantized input) and returns the
    float output and the accumulator (``None`` on the float datapath and where the
    baseline's scales sit inside the reduction).  Baseline weights (``int4`` groups of
    ``group``, ``int8`` / ``fp8`` rows, ``fp4`` MX blocks; ``model.baselines``) are
    inference-only: their arithmetic has no straight-through estimator.
    """

    def __init__(self, in_features: int, out_features: int, weight_format: str, group: int = 128):
        super().__init__()
        if weight_format not in ("fp16", "ternary", *bl.WEIGHT_QUANTIZERS):
            raise ValueError(f"weight_format must be fp16, ternary or one of {tuple(bl.WEIGHT_QUANTIZERS)}, "
                             f"got {weight_format!r}")
        self.weight_format = weight_format
        self.group = group
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self._cache: tuple | None = None
        self._frozen: tuple[torch.Tensor, torch.Tensor] | None = None

    @torch.no_grad()
    def freeze_(self) -> None:
        """Inference only: ternarise the weight once, **in place** (no second copy).

        Afterwards ``weight`` holds the codes (float32) and the layer keeps alpha;
        both paths use them (the integer path as int8 codes).  The latent weight
        is gone, so the layer can no longer be trained.  Used by ``model.trace``
        to run 7B-wide blocks without doubling their memory.
        """
        if self.weight_format != "ternary" or self._frozen is not None:
            return
        self.weight.requires_grad_(False)
        codes, alpha = fq.fake_ternary(self.weight.data.float(), inplace=self.weight.dtype == torch.float32)
        self.weight.data = codes
        self._frozen = (codes, alpha)
        self._cache = None

    @property
    def frozen(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(codes, alpha) of a frozen ternary layer, else None."""
        return self._frozen

    @torch.no_grad()
    def load_frozen_(self, codes: torch.Tensor, alpha: torch.Tensor) -> None:
        """Inference only: take ternary ``codes`` ({-1, 0, 1}, the weight's shape) and the scale
        ``alpha`` as they were exported from a trained layer (see ``model.checkpoint``)."""
        if self.weight_format != "ternary":
            raise ValueError("load_frozen_: only a ternary layer holds codes")
        codes = codes.to(torch.float32)
        if tuple(codes.shape) != tuple(self.weight.shape):
            raise ValueError(f"load_frozen_: codes of shape {tuple(codes.shape)}, layer weight "
                             f"{tuple(self.weight.shape)}")
        if bool(((codes != -1) & (codes != 0) & (codes != 1)).any()):
            raise ValueError("load_frozen_: codes must be -1, 0 or 1")
        self.weight.requires_grad_(False)
        self.weight.data = codes
        self._frozen = (codes, alpha.to(torch.float32).reshape(()))
        self._cache = None

    def _quantized_weight(self, exact: bool):
        """Ternary weight; cached while gradients are off and the weight is unchanged."""
        if self._frozen is not None:
            codes, alpha = self._frozen
            return q.QTensor(codes.to(torch.int8), alpha, "ternary", 2) if exact else self._frozen
        key = (exact, self.weight._version, self.weight.data_ptr())
        if torch.is_grad_enabled():
            self._cache = None
        elif self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        if exact:
            w = q.quantize_ternary(self.weight.detach())
        else:
            w = fq.fake_ternary(self.weight)
        if not torch.is_grad_enabled():
            self._cache = (key, w)
        return w

    def _baseline_weight(self) -> bl.GroupQ:
        """The baseline's quantized weight; cached while the weight is unchanged."""
        key = ("baseline", self.weight._version, self.weight.data_ptr())
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        w = bl.WEIGHT_QUANTIZERS[self.weight_format](self.weight.detach().float(), group=self.group)
        self._cache = (key, w)
        return w

    def _baseline_forward(self, x: Act, exact: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        if torch.is_grad_enabled() and self.weight.requires_grad:
            raise ValueError(f"a {self.weight_format} baseline projection is inference-only (no gradient)")
        w = self._baseline_weight()
        if x.value is not None:
            xin: torch.Tensor | bl.GroupQ = x.value
        elif x.qt is not None:
            xin = x.qt if isinstance(x.qt, bl.GroupQ) else bl.from_qtensor(x.qt)
        else:
            xin = bl.GroupQ(x.codes, x.scale, x.codes.shape[-1], x.fmt)
        if exact:
            return bl.baseline_linear(xin, w)
        xd = xin.dequant() if isinstance(xin, bl.GroupQ) else xin.float()   # statistics: float32 is enough
        return xd @ w.dequant().transpose(0, 1), None

    def forward(self, x: Act, exact: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.weight_format in bl.WEIGHT_QUANTIZERS:
            return self._baseline_forward(x, exact)
        if self.weight_format == "fp16":
            if x.fmt != "fp16":
                raise ValueError("an fp16-weight projection takes fp16 activations")
            return F.linear(x.value, self.weight.to(x.value.dtype)), None
        if x.fmt == "fp16":
            raise ValueError("a ternary projection takes quantized activations")
        if exact:
            w = self._quantized_weight(True)
            acc = q.int_gemm(x.qt, w)
            return q.scale_acc(acc, x.qt.scale, w.scale, torch.float32), acc
        wc, ws = self._quantized_weight(False)
        if fq.exact_f32_gemm_ok(x.fmt, wc.shape[-1]):
            acc = x.codes @ wc.transpose(0, 1)
        else:
            acc = (x.codes.double() @ wc.double().transpose(0, 1)).to(torch.float32)
        return (acc * x.scale) * ws, acc


def rope_angles(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape [T, head_dim/2] (float64 angles, returned as float64)."""
    inv = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64, device=positions.device) / head_dim)
    ang = positions.to(torch.float64)[:, None] * inv[None, :]
    return ang.cos(), ang.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs of the last dim of x [..., T, head_dim]."""
    xe, xo = x[..., 0::2], x[..., 1::2]
    c, s = cos.to(x.dtype), sin.to(x.dtype)
    return torch.stack((xe * c - xo * s, xe * s + xo * c), dim=-1).flatten(-2)


class LayerKV:
    """K/V cache of one layer: a list of chunks [B, n_kv, T_i, head_dim] in position order.

    Chunks are float tensors (FP16 cache, or the fake path's dequantized values)
    or ``QTensor`` codes (exact path, quantized cache); ``read`` dequantizes.
    """

    def __init__(self) -> None:
        self.k: list = []
        self.v: list = []

    @property
    def length(self) -> int:
        return sum((c.codes if isinstance(c, q.QTensor) else c).shape[-2] for c in self.k)

    def append(self, k, v) -> None:
        self.k.append(k)
        self.v.append(v)

    @staticmethod
    def _cat(chunks: list, dtype: torch.dtype) -> torch.Tensor:
        return torch.cat([(c.dequant() if isinstance(c, q.QTensor) else c).to(dtype) for c in chunks], dim=-2)

    def read(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        return self._cat(self.k, dtype), self._cat(self.v, dtype)


class KVCache:
    """One :class:`LayerKV` per decoder layer."""

    def __init__(self, n_layers: int) -> None:
        self.layers = [LayerKV() for _ in range(n_layers)]

    @property
    def length(self) -> int:
        return self.layers[0].length

    @property
    def batch(self) -> int | None:
        """Batch size of the cached sequences (None while empty)."""
        k = self.layers[0].k
        return None if not k else (k[0].codes if isinstance(k[0], q.QTensor) else k[0]).shape[0]


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        wf, g = cfg.weight_format, cfg.weight_group
        self.wq = BitLinear(cfg.dim, cfg.n_heads * cfg.hd, wf, g)
        self.wk = BitLinear(cfg.dim, cfg.kv_heads * cfg.hd, wf, g)
        self.wv = BitLinear(cfg.dim, cfg.kv_heads * cfg.hd, wf, g)
        self.wo = BitLinear(cfg.n_heads * cfg.hd, cfg.dim, wf, g)
        self.sub_norm = RMSNorm(cfg.n_heads * cfg.hd, cfg.norm_eps)  # 2B4T attn_sub_norm
        self.fused = False   # True: fused causal attention when nothing is recorded (training speed)

    def _kv_quant(self, x: torch.Tensor, positions: torch.Tensor, exact: bool, bits: int, bos: int | None):
        if exact:
            return q.quantize_kv(x, bits=bits, bos_bits=bos, positions=positions)
        return fq.fake_kv(x, bits, bos, positions)

    def forward(self, xn: torch.Tensor, positions: torch.Tensor, kv: LayerKV | None,
                exact: bool, rec: ActivationCapture | None, layer: int) -> torch.Tensor:
        cfg = self.cfg
        B, T, _ = xn.shape
        dt = xn.dtype
        a = quantize_act(xn, cfg.act_formats["qkv"], exact)
        outs = {}
        for name, lin in (("q", self.wq), ("k", self.wk), ("v", self.wv)):
            y, acc = lin(a, exact)
            outs[name] = y.to(dt)
            if rec is not None and acc is not None:
                rec.put(layer, f"acc_{name}", acc)
        if rec is not None:
            rec.put(layer, "in_qkv", a.recorded())
        xq = outs["q"].view(B, T, cfg.n_heads, cfg.hd).transpose(1, 2)
        xk = outs["k"].view(B, T, cfg.kv_heads, cfg.hd).transpose(1, 2)
        xv = outs["v"].view(B, T, cfg.kv_heads, cfg.hd).transpose(1, 2)
        cos, sin = rope_angles(positions, cfg.hd, cfg.rope_theta)
        xq, xk = apply_rope(xq, cos, sin), apply_rope(xk, cos, sin)

        if cfg.kv_quantized:  # post-RoPE low-bit KV [A48 §3.1, docs/decisions.md 8]
            k_new = self._kv_quant(xk, positions, exact, cfg.kv_cache_bits, cfg.bos_bits)
            v_new = self._kv_quant(xv, positions, exact, cfg.kv_cache_bits, cfg.bos_bits)
        else:
            k_new, v_new = xk, xv
        if cfg.q_bits is not None:
            xq = self._kv_quant(xq, positions, exact, cfg.q_bits, None)
            xq = (xq.dequant() if exact else xq).to(dt)
        if kv is None:
            kv = LayerKV()
        # (on a GPU an empty cache is not checked: reading positions[0] would stall the queue every step)
        if (kv.length or positions.device.type == "cpu") and kv.length != int(positions[0]):
            raise ValueError(f"KV cache holds {kv.length} tokens but the new tokens start at "
                             f"position {int(positions[0])}")
        kv.append(k_new, v_new)
        keys, values = kv.read(dt)
        S = keys.shape[-2]

        g = cfg.n_heads // cfg.kv_heads
        if self.fused and rec is None and S == T:
            # training: fused causal attention (same function, float rounding may differ)
            if g > 1:
                keys, values = keys.repeat_interleave(g, dim=1), values.repeat_interleave(g, dim=1)
            ctx = F.scaled_dot_product_attention(xq, keys.to(xq.dtype), values.to(xq.dtype), is_causal=True)
            return self._out(ctx.transpose(1, 2).reshape(B, T, cfg.n_heads * cfg.hd), exact, rec, layer, dt)
        qg = xq.reshape(B, cfg.kv_heads, g, T, cfg.hd)
        scores = (qg @ keys.unsqueeze(2).transpose(-1, -2)) / math.sqrt(cfg.hd)
        causal = torch.arange(S, device=positions.device)[None, :] <= positions[:, None]  # [T, S]
        scores = scores.masked_fill(~causal, float("-inf"))
        probs = torch.softmax(scores.to(torch.promote_types(dt, torch.float32)), dim=-1).to(dt)
        ctx = (probs @ values.unsqueeze(2)).reshape(B, cfg.n_heads, T, cfg.hd)
        if rec is not None:
            for name, t in (("k_new", k_new), ("v_new", v_new)):
                rec.put(layer, name, t.dequant() if isinstance(t, q.QTensor) else t)
            rec.put(layer, "q_attn", xq)
            rec.put(layer, "probs", probs.reshape(B, cfg.n_heads, T, S))
        return self._out(ctx.transpose(1, 2).reshape(B, T, cfg.n_heads * cfg.hd), exact, rec, layer, dt)

    def _out(self, ctx: torch.Tensor, exact: bool, rec: ActivationCapture | None, layer: int,
             dt: torch.dtype) -> torch.Tensor:
        """subln norm, the Wo-input quantizer and Wo; the output in the block's dtype ``dt``."""
        cfg = self.cfg
        o_in = quantize_act(self.sub_norm(ctx), cfg.act_formats["o"], exact, cfg.topk_ratio)
        y, acc = self.wo(o_in, exact)
        if rec is not None:
            rec.put(layer, "in_o", o_in.recorded())
            if acc is not None:
                rec.put(layer, "acc_o", acc)
        return y.to(dt)


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        wf, g = cfg.weight_format, cfg.weight_group
        self.w_gate = BitLinear(cfg.dim, cfg.ffn_dim, wf, g)
        self.w_up = BitLinear(cfg.dim, cfg.ffn_dim, wf, g)
        self.w_down = BitLinear(cfg.ffn_dim, cfg.dim, wf, g)
        self.sub_norm = RMSNorm(cfg.ffn_dim, cfg.norm_eps)  # 2B4T ffn_sub_norm

    def forward(self, xn: torch.Tensor, exact: bool, rec: ActivationCapture | None, layer: int) -> torch.Tensor:
        cfg = self.cfg
        dt = xn.dtype
        a = quantize_act(xn, cfg.act_formats["ffn"], exact)
        gate, acc_g = self.w_gate(a, exact)   # gate first (a4.8 gate-first rule, docs/decisions.md 7)
        up, acc_u = self.w_up(a, exact)
        gate, up = gate.to(dt), up.to(dt)
        if cfg.ffn_kind == "relu2glu":        # up * ReLU(gate)^2 [A48 eq.5]
            g = F.relu(gate)
            gate_act = g * g
        else:                                 # SwiGLU: up * SiLU(gate)
            gate_act = F.silu(gate)
        h = up * gate_act
        d_in = quantize_act(self.sub_norm(h), cfg.act_formats["down"], exact)
        y, acc_d = self.w_down(d_in, exact)
        if rec is not None:
            rec.put(layer, "in_ffn", a.recorded())
            rec.put(layer, "gate_act", gate_act)
            rec.put(layer, "in_down", d_in.recorded())
            for n, acc in (("gate", acc_g), ("up", acc_u), ("down", acc_d)):
                if acc is not None:
                    rec.put(layer, f"acc_{n}", acc)
        return y.to(dt)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int = 0):
        super().__init__()
        self.layer = layer
        self.attn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.ffn = FeedForward(cfg)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, kv: LayerKV | None = None,
                exact: bool = False, rec: ActivationCapture | None = None) -> torch.Tensor:
        h = x + self.attn(self.attn_norm(x), positions, kv, exact, rec, self.layer)
        return h + self.ffn(self.ffn_norm(h), exact, rec, self.layer)


class Transformer(nn.Module):
    """The whole decoder. ``forward(tokens, cache=None, exact=False)`` -> logits [B, T, vocab]."""

    def __init__(self, cfg: ModelConfig, seed: int | None = 0):
        super().__init__()
        self.cfg = cfg
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.output = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if seed is not None:
            init_weights(self, seed)
        self.to(DTYPES[cfg.dtype])

    def new_cache(self) -> KVCache:
        return KVCache(self.cfg.n_layers)

    def reconfigure(self, cfg: ModelConfig) -> None:
        """Switch the numerics (datapath, activation formats, KV bits, ...) of a built model in place.

        The parameters stay (a4.8's second training stage continues from the first one's
        weights and optimizer state); ``cfg`` must have the same shapes and weight format.
        """
        old = self.cfg
        same = ("dim", "n_layers", "n_heads", "ffn_dim", "vocab_size", "kv_heads", "hd", "weight_group")
        changed = [f for f in same if getattr(cfg, f) != getattr(old, f)]
        if changed or cfg.weight_format != old.weight_format:
            raise ValueError(f"reconfigure: shapes/weight format must not change; differ: "
                             f"{changed or ['weight_format']}")
        self.cfg = cfg
        for blk in self.layers:
            blk.attn.cfg = cfg
            blk.ffn.cfg = cfg

    def fuse_attention(self, on: bool = True) -> None:
        """Use fused causal attention (``F.scaled_dot_product_attention``) in forwards that record
        nothing and have no KV-cache history: the training speed path."""
        for blk in self.layers:
            blk.attn.fused = on

    def forward(self, tokens: torch.Tensor, cache: KVCache | None = None, exact: bool = False,
                rec: ActivationCapture | None = None, check_ids: bool = True) -> torch.Tensor:
        """Logits for ``tokens`` [B, T] (int64); with ``cache``, the tokens continue it.

        ``check_ids=False`` skips the token-id range check (a device sync), for callers whose
        ids are valid by construction (the training loop).
        """
        if not isinstance(tokens, torch.Tensor) or tokens.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"tokens must be an int64/int32 tensor, got {getattr(tokens, 'dtype', type(tokens))}")
        if tokens.dim() != 2 or tokens.numel() == 0:
            raise ValueError(f"tokens must have shape [batch, T] with T >= 1, got {tuple(tokens.shape)}")
        if check_ids and (int(tokens.min()) < 0 or int(tokens.max()) >= self.cfg.vocab_size):
            raise ValueError(f"token ids must be in [0, {self.cfg.vocab_size}), got range "
                             f"[{int(tokens.min())}, {int(tokens.max())}]")
        if cache is not None and cache.batch not in (None, tokens.shape[0]):
            raise ValueError(f"the KV cache holds {cache.batch} sequences but tokens has batch "
                             f"{tokens.shape[0]}")
        if cache is not None and len(cache.layers) != len(self.layers):
            raise ValueError(f"the KV cache has {len(cache.layers)} layers, the model {len(self.layers)}")
        start = 0 if cache is None else cache.length
        positions = torch.arange(start, start + tokens.shape[1], device=tokens.device)
        x = self.tok_embeddings(tokens.long())
        for i, blk in enumerate(self.layers):
            x = blk(x, positions, None if cache is None else cache.layers[i], exact, rec)
        return self.head(self.norm(x), exact, rec)

    def head(self, xn: torch.Tensor, exact: bool = False, rec: ActivationCapture | None = None) -> torch.Tensor:
        """The LM head on the final-norm output ``xn``: FP16-style float, or (``cfg.lm_head_bits`` 8 / 4)
        INT8 absmax activations x per-row INT8 / INT4 weight codes, scaled after the integer GEMM
        (docs/decisions.md 5), logits in ``xn``'s dtype.  Records ``in_head`` (layer -1)."""
        cfg = self.cfg
        if cfg.lm_head_bits == 16:
            if rec is not None:
                rec.put(-1, "in_head", xn)
            return self.output(xn)
        a = quantize_act(xn, "int8", exact)
        w = self.output.weight
        if exact:
            wq = q.quantize_weight_rows(w.detach(), cfg.lm_head_bits)
            acc = q.int_gemm(a.qt, wq)
            y = q.scale_acc(acc, a.qt.scale, wq.scale.reshape(-1), torch.float32)
        else:
            wc, ws = fq.fake_weight_rows(w, cfg.lm_head_bits)
            qmax = (1 << (cfg.lm_head_bits - 1)) - 1
            if fq.exact_f32_gemm_ok("int8", cfg.dim, qmax):
                acc = a.codes @ wc.transpose(0, 1)
            else:
                acc = (a.codes.double() @ wc.double().transpose(0, 1)).to(torch.float32)
            y = (acc * a.scale) * ws.reshape(-1)
        if rec is not None:
            rec.put(-1, "in_head", a.recorded())
        return y.to(xn.dtype)


def init_weights(module: nn.Module, seed: int) -> None:
    """Seeded random init: N(0, 1/fan_in) for projections and the LM head, N(0, 1) embedding.

    Unit-variance outputs keep the residual stream O(1) for random-weight statistics.
    """
    g = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        with torch.no_grad():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            elif p.dim() == 2 and "tok_embeddings" not in name:
                p.normal_(0.0, 1.0 / math.sqrt(p.shape[1]), generator=g)
            else:
                p.normal_(0.0, 1.0, generator=g)
