"""Op traces: one table row per operator call of one inference step.

``build_trace`` returns a DataFrame of schema ``op_trace`` (bitsim/tables/)
with ``df.attrs`` holding ``OP_TRACE_META``.  Shapes, MACs and bytes are closed
form; sparsity statistics are **measured** on real tensors (or, with
``profile="paper-table2"``, taken from the paper's Table 2, labelled).

Step model
----------
``context`` C is the number of keys attended by the last new token, i.e. the
KV-cache length after the step.  ``phase="decode"``: P = 1 new token per
sequence at position C-1.  ``phase="prefill"``: P = ``prefill_tokens``
(default C) new tokens at positions C-P .. C-1 (C-P earlier tokens already
cached; P = C is a prefill from empty).  ``batch`` B sequences; M = B*P rows.

Counting rules
--------------
* GEMM (x[M,K] . W[N,K]^T): ``macs_dense = M*N*K``; ``macs_effective =
  round(macs_dense * (1 - sparsity))``.  ``weight_bytes = N*K*weight_bits/8``
  (ternary 2.0 bits, 2-bit packing; the per-matrix scale is not counted);
  ``act_bytes_in = M*K*act_bits/8`` plus 4 bytes (fp32 scale) per row for a
  quantized input; outputs FP16 (``M*N*2``).  q/k/v (and gate/up) each count
  their full input read.
* Up projection with ReLU²GLU (gate-first rule, decisions 7, [A48 §3.1]): up
  is computed only for the non-zero gate outputs, so ``macs_effective`` =
  sum over rows of nnz(input row) * nnz(gate-output row), and its
  ``sparsity`` = 1 - macs_effective / macs_dense (the paper's Up column);
  its ``row_skip`` = 1 - (1 - input rows skippable)(1 - gate columns zero in
  every row): the fraction of W_up elements a skipping engine need not fetch.
* Attention (causal): the new token at position p attends to p+1 keys, so a
  step covers ``pairs = P*(C-P) + P*(P+1)/2`` (query, key) pairs per head;
  ``attn_qk`` and ``attn_pv`` have ``macs_dense = B*n_heads*pairs*head_dim``
  (rows: M = P query rows, count = B*n_heads; attn_qk N = C keys, K =
  head_dim; attn_pv N = head_dim, K = C).  Softmax: ``B*n_heads*pairs``
  elements.  Their ``sparsity`` is the measured zero fraction of the query
  (attn_qk) / of the unmasked probabilities (attn_pv); ``row_skip`` 0.
* KV cache (post-RoPE): FP16 cache (fp16, b1.58): ``head_dim*2`` bytes per
  (token, KV head); a4.8: ``head_dim*bits/8 + 2`` (codes + fp16 scale per
  (token, head)), the BOS token (position 0) at ``kv_bos_bits``.
  ``attn_qk`` reads the whole K cache once per KV head (``kv_bytes_read``, also
  its ``weight_bytes``; ``weight_bits`` = the average stored bits per element
  incl. scales) and writes the new tokens' K (``kv_bytes_write``); ``attn_pv``
  the same for V.  ``kv_quant`` is the vector op that makes the codes.
* Vector ops (rmsnorm_*, quant_*, topk_o, rope, kv_quant, softmax, glu,
  embedding): ``macs_dense = macs_effective`` = elements processed; input and
  output FP16 unless quantized; their ``sparsity`` and ``row_skip`` are 0 (not
  measured: a vector unit processes every element).
* Embedding reads M rows of the FP16 table (int32 token ids in); the final
  RMSNorm and the LM head run on the last token of each sequence (M = B).

Measured statistics
-------------------
``layers_measured`` full-width blocks with seeded random weights (N(0,
1/fan_in), ternarised as the datapath says) run the fake-quant path (same
codes as the integer path) on seeded N(0,1) hidden states; the K/V cache of
the earlier tokens is seeded N(0,1) post-RoPE keys/values (quantized as the
datapath says).  The per-op statistics are averaged over the measured blocks
and replicated to every layer.  Prefill measures only the last
``STATS_ROWS // B`` tokens (at most) of the chunk; the KV cache used for
measuring is capped at ``KV_STATS_ELEMS`` elements; ``row_skip`` of an
M-row op measured on fewer rows is extrapolated from the per-column zero
frequencies f_j as mean_j f_j**M.  ``df.attrs['stats_source']`` says exactly
what was done.  Random weights reproduce the INT4 zero bin (~12 %) and TopK
(50 %), not a trained model's FFN sparsity (decisions 12).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import torch

from bitsim.tables import PHASES, SCHEMA_VERSION, validate
from model.config import DATAPATHS, ModelConfig, get_config
from model.paper_sparsity import PAPER_TABLE2_SOURCE, PROJ_GROUP, paper_sparsity
from model.model import BitLinear, Block, LayerKV, Recorder, init_weights
from model import fakequant as fq

TRACE_VERSION = "1"
PROFILES = ("measured", "paper-table2")
PROJ_OPS = tuple(PROJ_GROUP)            # q k v o gate up down projections
STATS_ROWS = 256                        # most activation rows measured per op
KV_STATS_ELEMS = 2 ** 25                # most K (and V) cache elements built for measuring
ACT_BITS = {"fp16": 16, "int8": 8, "int8-topk": 8, "int4": 4, "fp4": 4}
SCALE_BYTES = 4                         # fp32 per-token activation scale [decisions 4-5]
KV_SCALE_BYTES = 2                      # fp16 per-(token, head) KV scale
FP16 = 2


@dataclass
class OpStats:
    sparsity: float = 0.0
    row_skip: float = 0.0


# ----------------------------------------------------------------- helpers
def _zero_stats(x: torch.Tensor, m_rows: int) -> OpStats:
    """Zero fraction of x [..., K] and the fraction of K columns zero in all of m_rows rows."""
    z = (x.reshape(-1, x.shape[-1]) == 0)
    col_freq = z.double().mean(dim=0)
    if z.shape[0] >= m_rows:
        skip = float(z.all(dim=0).double().mean())
    else:  # extrapolate to m_rows rows from the per-column zero frequency
        skip = float(col_freq.pow(m_rows).mean())
    return OpStats(float(z.double().mean()), skip)


def kv_row_bytes(cfg: ModelConfig, position: int) -> float:
    """Stored bytes of one (token, KV head) row of K (or V) at ``position``."""
    if not cfg.kv_quantized:
        return cfg.hd * FP16
    bits = cfg.bos_bits if position == 0 else cfg.kv_cache_bits
    return cfg.hd * bits / 8 + KV_SCALE_BYTES


def kv_bytes(cfg: ModelConfig, batch: int, start: int, stop: int) -> float:
    """Bytes of K (or V) for positions [start, stop) over all KV heads and sequences."""
    n = stop - start
    if n <= 0:
        return 0.0
    total = n * kv_row_bytes(cfg, 1)
    if start == 0:
        total += kv_row_bytes(cfg, 0) - kv_row_bytes(cfg, 1)
    return float(batch * cfg.kv_heads * total)


def _act_bytes(rows: int, width: int, fmt: str) -> float:
    b = rows * width * ACT_BITS[fmt] / 8
    return float(b + (rows * SCALE_BYTES if fmt != "fp16" else 0))


# -------------------------------------------------------------- measuring
def measure_stats(cfg: ModelConfig, batch: int, new_tokens: int, context: int, seed: int,
                  layers_measured: int) -> tuple[dict[str, OpStats], str]:
    """Run ``layers_measured`` random full-width blocks; return per-op stats and a description."""
    t_m = min(new_tokens, max(1, STATS_ROWS // batch))
    b_m = min(batch, max(1, STATS_ROWS // t_m))
    past = context - t_m
    past_m = min(past, max(1, KV_STATS_ELEMS // (b_m * cfg.kv_heads * cfg.hd))) if past else 0
    m_rows = batch * new_tokens
    g = torch.Generator().manual_seed(seed)
    positions = torch.arange(past_m, past_m + t_m)
    x = torch.randn(b_m, t_m, cfg.dim, generator=g)
    acc: dict[str, list[OpStats]] = {}
    with torch.no_grad():
        for layer in range(layers_measured):
            blk = Block(cfg, layer)
            init_weights(blk, seed * 1000 + layer + 1)
            for mod in blk.modules():   # ternarise in place: no second copy of the weights
                if isinstance(mod, BitLinear):
                    mod.freeze_()
            kv = LayerKV()
            if past_m:
                k = torch.randn(b_m, cfg.kv_heads, past_m, cfg.hd, generator=g)
                v = torch.randn(b_m, cfg.kv_heads, past_m, cfg.hd, generator=g)
                if cfg.kv_quantized:
                    pos = torch.arange(past_m)
                    k = fq.fake_kv(k, cfg.kv_cache_bits, cfg.bos_bits, pos)
                    v = fq.fake_kv(v, cfg.kv_cache_bits, cfg.bos_bits, pos)
                kv.append(k, v)
            rec = Recorder()
            x = blk(x, positions, kv, exact=False, rec=rec)
            for op, st in _block_stats(cfg, rec, layer, m_rows, positions).items():
                acc.setdefault(op, []).append(st)
            del blk, kv, rec
        final = _unit_rmsnorm(x[:, -1, :], cfg.norm_eps)
    stats = {op: OpStats(sum(s.sparsity for s in v) / len(v), sum(s.row_skip for s in v) / len(v))
             for op, v in acc.items()}
    stats["lm_head"] = _zero_stats(final, batch)
    what = (f"measured: {layers_measured} full-width block(s) of {cfg.name} ({cfg.datapath}), seeded "
            f"random weights N(0,1/fan_in) (seed {seed}), fake-quant path (codes identical to the "
            f"integer path), on seeded N(0,1) hidden states; {t_m} new token(s) x {b_m} sequence(s) "
            f"measured (trace M = {m_rows} rows")
    if t_m < new_tokens:
        what += f"; the last {t_m} of {new_tokens} prefill tokens"
    what += (f"); KV cache of {past_m} seeded N(0,1) post-RoPE keys/values before them"
             + (" (quantized as the datapath)" if cfg.kv_quantized else "")
             + (f" (capped from {past})" if past_m < past else "")
             + "; stats averaged over measured blocks and replicated to all "
             f"{cfg.n_layers} layers")
    if t_m * b_m < m_rows:
        what += "; row_skip extrapolated as mean_j f_j**M from per-column zero frequencies"
    return stats, what


def _unit_rmsnorm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Unit-gain RMSNorm (the final norm of a random-init model)."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def _block_stats(cfg: ModelConfig, rec: Recorder, layer: int, m_rows: int,
                 positions: torch.Tensor) -> dict[str, OpStats]:
    r = lambda name: rec[(layer, name)]  # noqa: E731
    out: dict[str, OpStats] = {}
    qkv = _zero_stats(r("in_qkv"), m_rows)
    for op in ("q_proj", "k_proj", "v_proj"):
        out[op] = qkv
    out["o_proj"] = _zero_stats(r("in_o"), m_rows)
    ffn = _zero_stats(r("in_ffn"), m_rows)
    out["gate_proj"] = ffn
    if cfg.ffn_kind == "relu2glu":  # gate-first rule (decisions 7)
        x_in = r("in_ffn").reshape(-1, cfg.dim)
        gate = r("gate_act").reshape(-1, cfg.ffn_dim)
        nnz_x = (x_in != 0).double().sum(-1)
        nnz_g = (gate != 0).double().sum(-1)
        eff = float((nnz_x * nnz_g).sum() / (x_in.shape[0] * cfg.dim * cfg.ffn_dim))
        gskip = _zero_stats(gate, m_rows).row_skip
        out["up_proj"] = OpStats(1.0 - eff, 1.0 - (1.0 - ffn.row_skip) * (1.0 - gskip))
    else:
        out["up_proj"] = ffn
    out["down_proj"] = _zero_stats(r("in_down"), m_rows)
    out["attn_qk"] = OpStats(float((r("q_attn") == 0).double().mean()), 0.0)
    probs = r("probs")
    S = probs.shape[-1]
    unmasked = int((torch.arange(S)[None, :] <= positions[:, None]).sum()) * probs.shape[0] * probs.shape[1]
    zeros = int((probs == 0).sum()) - (probs.numel() - unmasked)
    out["attn_pv"] = OpStats(zeros / unmasked, 0.0)
    return out


# ------------------------------------------------------------------ rows
def _row(layer: int, op: str, op_class: str, phase: str, M: int, N: int, K: int, count: int,
         weight_format: str, weight_bits: float, act_format: str, act_bits: int, out_bits: int,
         macs_dense: int, weight_bytes: float, act_bytes_in: float, act_bytes_out: float,
         st: OpStats | None = None, kv_bytes_read: float = 0.0, kv_bytes_write: float = 0.0,
         macs_effective: int | None = None) -> dict:
    st = st or OpStats()
    if macs_effective is None:
        macs_effective = round(macs_dense * (1.0 - st.sparsity)) if op_class != "vector" else macs_dense
    return dict(layer=layer, op=op, op_class=op_class, phase=phase, M=M, N=N, K=K, count=count,
                weight_format=weight_format, weight_bits=float(weight_bits), act_format=act_format,
                act_bits=act_bits, out_bits=out_bits, sparsity=float(st.sparsity),
                row_skip=float(st.row_skip), macs_dense=int(macs_dense),
                macs_effective=int(macs_effective), weight_bytes=float(weight_bytes),
                act_bytes_in=float(act_bytes_in), act_bytes_out=float(act_bytes_out),
                kv_bytes_read=float(kv_bytes_read), kv_bytes_write=float(kv_bytes_write))


def _vector(layer: int, op: str, phase: str, rows: int, width: int, in_fmt: str = "fp16",
            out_bits: int = 16, out_bytes: float | None = None, weight_bytes: float = 0.0,
            count: int = 1) -> dict:
    n = rows * width * count
    return _row(layer, op, "vector", phase, rows, width, 0, count,
                "fp16" if weight_bytes else "none", 16.0 if weight_bytes else 0.0,
                in_fmt, ACT_BITS.get(in_fmt, 16), out_bits, n, weight_bytes, n * ACT_BITS.get(in_fmt, 16) / 8,
                n * out_bits / 8 if out_bytes is None else out_bytes)


def _gemm(cfg: ModelConfig, layer: int, op: str, phase: str, M: int, N: int, K: int, fmt: str,
          st: OpStats) -> dict:
    wbits = 2.0 if cfg.weight_format == "ternary" else 16.0
    return _row(layer, op, "gemm", phase, M, N, K, 1, cfg.weight_format, wbits, fmt, ACT_BITS[fmt], 16,
                M * N * K, N * K * wbits / 8, _act_bytes(M, K, fmt), M * N * FP16, st)


def _layer_rows(cfg: ModelConfig, layer: int, phase: str, B: int, P: int, C: int,
                stats: dict[str, OpStats]) -> list[dict]:
    D, F, hd, Hq, Hkv = cfg.dim, cfg.ffn_dim, cfg.hd, cfg.n_heads, cfg.kv_heads
    A, KVW = Hq * hd, Hkv * hd
    M = B * P
    fm = cfg.act_formats
    rows: list[dict] = []
    add = rows.append

    def quant(op: str, width: int, fmt: str) -> None:
        if fmt == "int8-topk":
            add(_vector(layer, "topk_o", phase, M, width, out_bits=1))
        if fmt != "fp16":
            add(_vector(layer, op, phase, M, width, out_bits=ACT_BITS[fmt],
                        out_bytes=_act_bytes(M, width, fmt)))

    # attention
    add(_vector(layer, "rmsnorm_attn", phase, M, D, weight_bytes=D * FP16))
    quant("quant_qkv", D, fm["qkv"])
    add(_gemm(cfg, layer, "q_proj", phase, M, A, D, fm["qkv"], stats["q_proj"]))
    add(_gemm(cfg, layer, "k_proj", phase, M, KVW, D, fm["qkv"], stats["k_proj"]))
    add(_gemm(cfg, layer, "v_proj", phase, M, KVW, D, fm["qkv"], stats["v_proj"]))
    add(_vector(layer, "rope", phase, M, A + KVW))
    new_kv = kv_bytes(cfg, B, C - P, C)
    if cfg.kv_quantized:
        add(_vector(layer, "kv_quant", phase, M, 2 * KVW, out_bits=cfg.kv_cache_bits,
                    out_bytes=2 * new_kv))
    q_fmt, q_bits, q_bytes = "fp16", 16, float(B * Hq * P * hd * FP16)
    if cfg.q_bits is not None:
        q_fmt, q_bits = f"int{cfg.q_bits}", cfg.q_bits
        q_bytes = float(B * Hq * P * (hd * cfg.q_bits / 8 + KV_SCALE_BYTES))
        add(_vector(layer, "quant_q", phase, M, A, out_bits=q_bits, out_bytes=q_bytes))
    pairs = P * (C - P) + P * (P + 1) // 2
    cache = kv_bytes(cfg, B, 0, C)
    kv_fmt = "kv-fp16" if not cfg.kv_quantized else f"kv-int{cfg.kv_cache_bits}"
    kv_bits = 8 * cache / (B * Hkv * C * hd)
    n_pairs = B * Hq * pairs
    add(_row(layer, "attn_qk", "attention", phase, P, C, hd, B * Hq, kv_fmt, kv_bits, q_fmt, q_bits, 16,
             n_pairs * hd, cache, q_bytes, n_pairs * FP16, stats.get("attn_qk"),
             kv_bytes_read=cache, kv_bytes_write=new_kv))
    add(_vector(layer, "softmax", phase, P, C, count=B * Hq, out_bytes=n_pairs * FP16))
    rows[-1].update(macs_dense=n_pairs, macs_effective=n_pairs, act_bytes_in=float(n_pairs * FP16))
    add(_row(layer, "attn_pv", "attention", phase, P, hd, C, B * Hq, kv_fmt, kv_bits, "fp16", 16, 16,
             n_pairs * hd, cache, n_pairs * FP16, float(B * Hq * P * hd * FP16), stats.get("attn_pv"),
             kv_bytes_read=cache, kv_bytes_write=new_kv))
    add(_vector(layer, "rmsnorm_attn_sub", phase, M, A, weight_bytes=A * FP16))
    quant("quant_o", A, fm["o"])
    add(_gemm(cfg, layer, "o_proj", phase, M, D, A, fm["o"], stats["o_proj"]))
    # feed-forward
    add(_vector(layer, "rmsnorm_ffn", phase, M, D, weight_bytes=D * FP16))
    quant("quant_ffn", D, fm["ffn"])
    add(_gemm(cfg, layer, "gate_proj", phase, M, F, D, fm["ffn"], stats["gate_proj"]))
    add(_gemm(cfg, layer, "up_proj", phase, M, F, D, fm["ffn"], stats["up_proj"]))
    add(_vector(layer, "glu", phase, M, F))
    rows[-1].update(act_bytes_in=float(2 * M * F * FP16))  # reads gate and up outputs
    add(_vector(layer, "rmsnorm_ffn_sub", phase, M, F, weight_bytes=F * FP16))
    quant("quant_down", F, fm["down"])
    add(_gemm(cfg, layer, "down_proj", phase, M, D, F, fm["down"], stats["down_proj"]))
    return rows


# ------------------------------------------------------------------- API
def build_trace(preset: "str | ModelConfig", datapath: str, phase: str = "decode", context: int = 2048,
                batch: int = 1, seed: int = 0, profile: str = "measured",
                prefill_tokens: int | None = None, layers_measured: int = 1) -> pd.DataFrame:
    """Op trace of one decode step or one prefill chunk of a whole model (see module doc).

    ``preset``: a preset name (``model.config.PRESETS``), a YAML path or a ModelConfig.
    ``profile``: ``measured`` (statistics of this run) or ``paper-table2``
    (projection sparsity from the paper's Table 2, labelled in ``stats_source``).
    """
    if datapath not in DATAPATHS:
        raise ValueError(f"datapath: unknown datapath {datapath!r}; known: {DATAPATHS}")
    if phase not in PHASES:
        raise ValueError(f"phase: unknown phase {phase!r}; known: {PHASES}")
    if profile not in PROFILES:
        raise ValueError(f"profile: unknown profile {profile!r}; known: {PROFILES}")
    for name, v in (("context", context), ("batch", batch), ("layers_measured", layers_measured)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: must be a positive integer, got {v!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")
    if phase == "decode":
        if prefill_tokens is not None:
            raise ValueError("prefill_tokens: only meaningful with phase='prefill'")
        P = 1
    else:
        P = context if prefill_tokens is None else prefill_tokens
        if isinstance(P, bool) or not isinstance(P, int) or P < 1:
            raise ValueError(f"prefill_tokens: must be a positive integer, got {P!r}")
        if P > context:
            raise ValueError(f"prefill_tokens ({P}) exceeds context ({context}): context is the "
                             "KV length after the chunk")
    cfg = get_config(preset, datapath)
    if layers_measured > cfg.n_layers:
        raise ValueError(f"layers_measured ({layers_measured}) exceeds n_layers ({cfg.n_layers})")

    table = paper_sparsity(datapath, cfg.name) if profile == "paper-table2" else None
    stats, source = measure_stats(cfg, batch, P, context, seed, layers_measured)
    if table is not None:
        M = batch * P
        for op, grp in PROJ_GROUP.items():
            s = table[grp]
            stats[op] = OpStats(s, s ** M)
        source = (f"paper-table2: q/k/v/o/gate/up/down sparsity from {PAPER_TABLE2_SOURCE} "
                  f"({cfg.name}, {datapath}); row_skip = sparsity**M (independent rows, an assumption); "
                  f"all other statistics {source}")

    B = batch
    rows = [_vector(-1, "embedding", phase, B * P, cfg.dim, weight_bytes=B * P * cfg.dim * FP16)]
    rows[0].update(act_format="none", act_bits=32, act_bytes_in=float(B * P * 4))
    for layer in range(cfg.n_layers):
        rows += _layer_rows(cfg, layer, phase, B, P, context, stats)
    rows.append(_vector(-1, "rmsnorm_final", phase, B, cfg.dim, weight_bytes=cfg.dim * FP16))
    rows.append(_row(-1, "lm_head", "gemm", phase, B, cfg.vocab_size, cfg.dim, 1, "fp16", 16.0, "fp16", 16,
                     16, B * cfg.vocab_size * cfg.dim, cfg.vocab_size * cfg.dim * FP16,
                     float(B * cfg.dim * FP16), float(B * cfg.vocab_size * FP16), stats["lm_head"]))
    df = pd.DataFrame(rows)
    for c in ("layer", "M", "N", "K", "count", "act_bits", "out_bits", "macs_dense", "macs_effective"):
        df[c] = df[c].astype("int64")
    df.attrs = dict(preset=cfg.name, datapath=datapath, phase=phase, batch=batch, context=context,
                    seed=seed, stats_source=source, profile=profile, prefill_tokens=P,
                    layers_measured=layers_measured,
                    version=f"model.trace {TRACE_VERSION}, op_trace schema {SCHEMA_VERSION}")
    return validate(df, "op_trace")


def activated_params(df: pd.DataFrame) -> dict[str, float]:
    """Parameter-weighted sparsity of the decoder projections of a trace, as in [A48 Table 2].

    overall = sum(N*K*sparsity) / sum(N*K) over the q/k/v/o/gate/up/down rows
    (embedding and LM head excluded); activated = (1 - overall) * total params.
    """
    validate(df, "op_trace")
    g = df[df["op"].isin(PROJ_OPS)]
    if g.empty:
        raise ValueError("trace has no projection rows (q/k/v/o/gate/up/down_proj)")
    w = g["N"].astype(float) * g["K"].astype(float)
    total = float(w.sum())
    overall = float((w * g["sparsity"]).sum() / total)
    return dict(overall_sparsity=overall, activated_fraction=1.0 - overall,
                total_params=total, activated_params=total * (1.0 - overall))
