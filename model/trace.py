"""Op traces: one table row per operator call of one inference step.

``build_trace`` returns a DataFrame of schema ``op_trace`` (contract/)
with ``df.attrs`` holding ``OP_TRACE_META``.  Shapes, MACs and bytes are closed
form; sparsity statistics are **measured** on real tensors (or, with
``profile="paper-table2"``, taken from the paper's Table 2, or with
``profile="trained"`` from the committed trained profile, labelled).

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
  round(macs_dense * (1 - sparsity))``.  ``weight_bytes`` = codes plus scales as
  ``model.config.WEIGHT_STORAGE`` says (ternary 2 bits, 2-bit packing, the per-matrix
  scale not counted; the baselines' group / row scales counted) and ``weight_bits`` =
  ``8 * weight_bytes / (N*K)``; ``act_bytes_in = M*K*act_bits/8`` plus 4 bytes (fp32
  scale) per row for a quantized input (MXFP4: one E8M0 byte per 32 values); outputs
  FP16 (``M*N*2``).  q/k/v (and gate/up) each count their full input read.
* Up projection with ReLU²GLU (gate-first rule, docs/decisions.md 7, [A48 §3.1]): up
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
(measured in ``model.trace_stats``)
``layers_measured`` full-width blocks with seeded random weights (N(0,
1/fan_in), ternarised as the datapath says) run the fake-quant path (same
codes as the integer path) on seeded N(0,1) hidden states; the K/V cache of
the earlier tokens is seeded N(0,1) post-RoPE keys/values (quantized as the
datapath says).  The per-op statistics are averaged over the measured blocks
and replicated to every layer.  Prefill measures only the last
``STATS_ROWS // B`` tokens (at most) of the chunk; the KV cache used for
measuring is capped at ``KV_STATS_ELEMS`` elements; ``row_skip`` of an
M-row op measured on fewer rows is extrapolated from the per-column zero
frequencies f_j as mean_j f_j**M.  ``df.attrs['stats_detail']`` says exactly
what was done.  Random weights reproduce the INT4 zero bin (~12 %) and TopK
(50 %), not a trained model's FFN sparsity (docs/decisions.md 12).  The measurement
is made once per input (config, workload, seed, measuring code, torch version) and
kept in ``model.stats_cache``: a ``paper-table2`` or ``trained``-profile trace reuses
the random trace's measurement for the statistics its profile does not replace.

Trained statistics
------------------
``checkpoint=`` (``model.checkpoint``, written by ``bitsim train``): the trained
model runs on held-out token sequences (by default the validation sequences
stored in the checkpoint) as prefills from BOS (``measure_trained_stats``); each
layer gets its own measured statistics.  ``row_skip`` of a prefill is taken over groups of M
consecutive held-out tokens; of a decode step (M different sequences) as mean_j f_j**M from the
per-column zero frequencies, which predicts the fraction zero in all M sequences on the trained
models (``benchmarks/zero_correlation.py``; consecutive tokens are zero together more often).
Without a preset the trace has the checkpoint's
shape; with one (e.g. ``7b``) the projection statistics (mean over the trained
layers) are transferred to that shape and the rest measured as above.
``stats_source`` is then ``trained`` and the attrs ``train_checkpoint``,
``train_run``, ``train_step``, ``train_tokens``, ``train_seed``, ``train_corpus``
(the corpus manifest), ``heldout`` and ``heldout_tokens`` name model, data and step.

Metadata
--------
``df.attrs``: ``preset``, ``datapath``, ``phase``, ``batch``, ``context``, ``seed``,
``prefill_tokens``, ``layers_measured``, ``profile`` (the ``build_trace`` argument, or
``trained``), ``version``, and where the statistics come from as one word of
``contract.STATS_SOURCES`` in ``stats_source`` (``random``: seeded random weights;
``paper-table2``: the paper's Table 2 projection sparsity, the rest random; ``trained``: a
checkpoint, or ``profile="trained"``) with the full description in ``stats_detail``.

``profile="trained"``: like ``paper-table2`` (same cost, same batch rule), but the
q/k/v/o/gate/up/down sparsity is the seed mean of the committed trained
profile ``reports/data/trained_profile.csv`` (``model.trained_profile``: runs
``<datapath>-s<seed>``, ``layer -1`` rows); ``ValueError`` for a datapath without one (fp16).
Traces of version 1 carried the description in ``stats_source`` ("measured: ...", "paper-table2: ...", "trained: ...");
:func:`stats_source_of` reads both.  The fidelity knobs ``q_bits`` and ``lm_head_bits``
(``model.config.ModelConfig``) are in the attrs when set (absent at their defaults).

Batch rule (``paper-table2`` and ``trained``)
---------------------------------------------
These profiles give a projection's mean zero fraction s only; its ``row_skip`` at M rows follows
``batch_rule`` (``model.zero_batch``).  ``beta`` (default): the per-column zero frequency f is
Beta(mean s, concentration kappa) with kappa fitted on trained activations (committed in
``reports/data/zero_correlation_fit.csv``; decode rows = M sequences, prefill rows = M consecutive
tokens) and ``row_skip = E[f**M]``; ``independent``: ``row_skip = s**M``, the rule's lower bound.
``stats_detail`` names the rule and its constants.  The ``measured`` profile and checkpoint traces
measure ``row_skip`` directly and take no ``batch_rule``.

Limits
------
``context`` <= ``contract.MAX_CONTEXT``, prefill tokens <= ``MAX_PREFILL_TOKENS``,
``batch`` <= ``MAX_BATCH``, checked before any work (:func:`check_workload`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from contract import (
    ACT_FORMATS,
    MAX_BATCH,
    MAX_CONTEXT,
    MAX_PREFILL_TOKENS,
    PHASES,
    SCHEMA_VERSION,
    STATS_SOURCES,
    WEIGHT_FORMATS,
    validate,
)
from contract.config import check_number
from model.baselines import MX_BLOCK
from model.checkpoint import LoadedCheckpoint, check_heldout_shape, load_checkpoint
from model.config import DATAPATHS, ModelConfig, get_config
from model.paper_sparsity import PAPER_TABLE2_SOURCE, PROJ_GROUP, paper_sparsity
from model.trace_stats import (
    OpStats,
    measure_trained_stats,
    random_stats,
)
from model.trained_profile import trained_sparsity
from model.zero_batch import BATCH_RULES, make_rule

DEFAULT_BATCH_RULE = "beta"             # model.zero_batch.BATCH_RULES; "independent" is the lower bound
TRACE_VERSION = "3"                     # changes whenever the same inputs give other numbers or attrs
PROFILES = ("measured", "paper-table2", "trained")
PROJ_OPS = tuple(PROJ_GROUP)            # q k v o gate up down projections
ACT_BITS = {"fp16": 16, "int8": 8, "int8-topk": 8, "int4": 4, "fp4": 4, "fp8": 8, "mxfp4": 4}
#: model act_formats words that the op-trace vocabulary names otherwise (MXFP4 is an FP4 format)
ACT_WORD = {"mxfp4": "fp4"}
MX_SCALE_BYTES = 1                      # E8M0 scale per MX block of activations
SCALE_BYTES = 4                         # fp32 per-token activation scale [docs/decisions.md 4-5]
KV_SCALE_BYTES = 2                      # fp16 per-(token, head) KV scale
FP16 = 2


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
    """Bytes of ``rows`` quantized activation rows: codes plus an fp32 scale per row (MXFP4: an E8M0
    scale per block of 32)."""
    b = rows * width * ACT_BITS[fmt] / 8
    if fmt == "mxfp4":
        return float(b + rows * -(-width // MX_BLOCK) * MX_SCALE_BYTES)
    return float(b + (rows * SCALE_BYTES if fmt != "fp16" else 0))


def _trained_description(ck: LoadedCheckpoint, n_seq: int, T: int, m_rows: int, heldout: str, rows: str) -> str:
    m = ck.meta
    corpus = m.get("corpus", {})
    return (f"checkpoint {ck.path.name} (run {m.get('run')}, {ck.config.datapath}, seed "
            f"{m.get('seed')}, step {m.get('step')}, {m.get('tokens')} training tokens of corpus "
            f"{corpus.get('source')} (Python {corpus.get('python')}, train sha256 "
            f"{str(corpus.get('sha256_train'))[:16]})); statistics measured on {n_seq} {heldout} "
            f"sequences x {T} tokens with the fake-quant path (codes identical to the integer path), "
            f"each a prefill from BOS at position 0; row_skip "
            + (f"over groups of {m_rows} consecutive held-out tokens" if rows == "tokens" else
               f"of {m_rows} sequences as mean_j f_j**M from the per-column zero frequencies"))


# ------------------------------------------------------------------ rows
@dataclass(frozen=True, kw_only=True)
class OpRow:
    """One ``op_trace`` row: the columns of ``contract.OP_TRACE``, in that order.

    Build rows with :func:`op_row` (which derives ``macs_effective`` from the
    measured sparsity); ``as_dict`` gives the DataFrame record.
    """

    layer: int
    op: str
    op_class: str
    phase: str
    M: int
    N: int
    K: int
    count: int
    weight_format: str
    weight_bits: float
    act_format: str
    act_bits: int
    out_bits: int
    sparsity: float
    row_skip: float
    macs_dense: int
    macs_effective: int
    weight_bytes: float
    act_bytes_in: float
    act_bytes_out: float
    kv_bytes_read: float = 0.0
    kv_bytes_write: float = 0.0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def op_row(*, layer: int, op: str, op_class: str, phase: str, M: int, N: int, K: int, count: int,
           weight_format: str, weight_bits: float, act_format: str, act_bits: int, out_bits: int,
           macs_dense: int, weight_bytes: float, act_bytes_in: float, act_bytes_out: float,
           stats: OpStats | None = None, kv_bytes_read: float = 0.0, kv_bytes_write: float = 0.0,
           macs_effective: int | None = None) -> OpRow:
    """An :class:`OpRow`; ``macs_effective`` defaults to ``round(macs_dense * (1 - sparsity))``
    (vector ops: ``macs_dense``, a vector unit processes every element)."""
    st = stats or OpStats()
    if macs_effective is None:
        macs_effective = round(macs_dense * (1.0 - st.sparsity)) if op_class != "vector" else macs_dense
    return OpRow(layer=layer, op=op, op_class=op_class, phase=phase, M=M, N=N, K=K, count=count,
                 weight_format=weight_format, weight_bits=float(weight_bits), act_format=act_format,
                 act_bits=act_bits, out_bits=out_bits, sparsity=float(st.sparsity),
                 row_skip=float(st.row_skip), macs_dense=int(macs_dense),
                 macs_effective=int(macs_effective), weight_bytes=float(weight_bytes),
                 act_bytes_in=float(act_bytes_in), act_bytes_out=float(act_bytes_out),
                 kv_bytes_read=float(kv_bytes_read), kv_bytes_write=float(kv_bytes_write))


def _vector(*, layer: int, op: str, phase: str, rows: int, width: int, in_fmt: str = "fp16",
            out_bits: int = 16, out_bytes: float | None = None, weight_bytes: float = 0.0,
            count: int = 1, elements: int | None = None, in_bytes: float | None = None) -> OpRow:
    """A vector op over ``rows x width x count`` elements (``elements`` / ``in_bytes`` override
    the element count and the input bytes, e.g. softmax over causal pairs, GLU reading two inputs)."""
    n = rows * width * count if elements is None else elements
    in_bits = ACT_BITS.get(in_fmt, 16)
    return op_row(layer=layer, op=op, op_class="vector", phase=phase, M=rows, N=width, K=0, count=count,
                  weight_format="fp16" if weight_bytes else "none",
                  weight_bits=16.0 if weight_bytes else 0.0, act_format=in_fmt, act_bits=in_bits,
                  out_bits=out_bits, macs_dense=n, weight_bytes=weight_bytes,
                  act_bytes_in=n * in_bits / 8 if in_bytes is None else in_bytes,
                  act_bytes_out=n * out_bits / 8 if out_bytes is None else out_bytes)


def _gemm(cfg: ModelConfig, *, layer: int, op: str, phase: str, M: int, N: int, K: int, fmt: str,
          stats: OpStats) -> OpRow:
    wbytes = cfg.weight_storage.matrix_bytes(N, K)
    return op_row(layer=layer, op=op, op_class="gemm", phase=phase, M=M, N=N, K=K, count=1,
                  weight_format=cfg.weight_format, weight_bits=8 * wbytes / (N * K),
                  act_format=ACT_WORD.get(fmt, fmt),
                  act_bits=ACT_BITS[fmt], out_bits=16, macs_dense=M * N * K,
                  weight_bytes=wbytes, act_bytes_in=_act_bytes(M, K, fmt),
                  act_bytes_out=M * N * FP16, stats=stats)


def _layer_rows(cfg: ModelConfig, layer: int, phase: str, B: int, P: int, C: int,
                stats: dict[str, OpStats]) -> list[OpRow]:
    D, F, hd, Hq, Hkv = cfg.dim, cfg.ffn_dim, cfg.hd, cfg.n_heads, cfg.kv_heads
    A, KVW = Hq * hd, Hkv * hd
    M = B * P
    fm = cfg.act_formats
    rows: list[OpRow] = []
    add = rows.append

    def vector(op: str, width: int, **kw) -> None:
        add(_vector(layer=layer, op=op, phase=phase, rows=kw.pop("rows", M), width=width, **kw))

    def gemm(op: str, N: int, K: int, fmt: str) -> None:
        add(_gemm(cfg, layer=layer, op=op, phase=phase, M=M, N=N, K=K, fmt=fmt, stats=stats[op]))

    def quant(op: str, width: int, fmt: str) -> None:
        if fmt == "int8-topk":
            vector("topk_o", width, out_bits=1)
        if fmt != "fp16":
            vector(op, width, out_bits=ACT_BITS[fmt], out_bytes=_act_bytes(M, width, fmt))

    # attention
    vector("rmsnorm_attn", D, weight_bytes=D * FP16)
    quant("quant_qkv", D, fm["qkv"])
    gemm("q_proj", A, D, fm["qkv"])
    gemm("k_proj", KVW, D, fm["qkv"])
    gemm("v_proj", KVW, D, fm["qkv"])
    vector("rope", A + KVW)
    new_kv = kv_bytes(cfg, B, C - P, C)
    if cfg.kv_quantized:
        vector("kv_quant", 2 * KVW, out_bits=cfg.kv_cache_bits, out_bytes=2 * new_kv)
    q_fmt, q_bits, q_bytes = "fp16", 16, float(B * Hq * P * hd * FP16)
    if cfg.q_bits is not None:
        q_fmt, q_bits = f"int{cfg.q_bits}", cfg.q_bits
        q_bytes = float(B * Hq * P * (hd * cfg.q_bits / 8 + KV_SCALE_BYTES))
        vector("quant_q", A, out_bits=q_bits, out_bytes=q_bytes)
    pairs = P * (C - P) + P * (P + 1) // 2
    cache = kv_bytes(cfg, B, 0, C)
    kv_fmt = "kv-fp16" if not cfg.kv_quantized else f"kv-int{cfg.kv_cache_bits}"
    kv_bits = 8 * cache / (B * Hkv * C * hd)
    n_pairs = B * Hq * pairs
    attn = dict(layer=layer, op_class="attention", phase=phase, M=P, count=B * Hq,
                weight_format=kv_fmt, weight_bits=kv_bits, out_bits=16, macs_dense=n_pairs * hd,
                weight_bytes=cache, kv_bytes_read=cache, kv_bytes_write=new_kv)
    add(op_row(op="attn_qk", N=C, K=hd, act_format=q_fmt, act_bits=q_bits, act_bytes_in=q_bytes,
               act_bytes_out=n_pairs * FP16, stats=stats.get("attn_qk"), **attn))
    vector("softmax", C, rows=P, count=B * Hq, elements=n_pairs, in_bytes=float(n_pairs * FP16),
           out_bytes=n_pairs * FP16)
    add(op_row(op="attn_pv", N=hd, K=C, act_format="fp16", act_bits=16, act_bytes_in=n_pairs * FP16,
               act_bytes_out=float(B * Hq * P * hd * FP16), stats=stats.get("attn_pv"), **attn))
    vector("rmsnorm_attn_sub", A, weight_bytes=A * FP16)
    quant("quant_o", A, fm["o"])
    gemm("o_proj", D, A, fm["o"])
    # feed-forward
    vector("rmsnorm_ffn", D, weight_bytes=D * FP16)
    quant("quant_ffn", D, fm["ffn"])
    gemm("gate_proj", F, D, fm["ffn"])
    gemm("up_proj", F, D, fm["ffn"])
    vector("glu", F, in_bytes=float(2 * M * F * FP16))  # reads gate and up outputs
    vector("rmsnorm_ffn_sub", F, weight_bytes=F * FP16)
    quant("quant_down", F, fm["down"])
    gemm("down_proj", D, F, fm["down"])
    return rows


def _head_rows(cfg: ModelConfig, phase: str, B: int, st: OpStats) -> list[OpRow]:
    """The LM head on the last token of each of ``B`` sequences: FP16, or INT8 / INT4 weight codes with
    an fp32 scale per output row x INT8 activations (``lm_head_bits``), after a ``quant_lm_head`` op."""
    V, D = cfg.vocab_size, cfg.dim
    if cfg.lm_head_bits == 16:
        return [op_row(layer=-1, op="lm_head", op_class="gemm", phase=phase, M=B, N=V, K=D, count=1,
                       weight_format="fp16", weight_bits=16.0, act_format="fp16", act_bits=16, out_bits=16,
                       macs_dense=B * V * D, weight_bytes=cfg.lm_head_bytes, act_bytes_in=float(B * D * FP16),
                       act_bytes_out=float(B * V * FP16), stats=st)]
    wbytes = cfg.lm_head_bytes        # codes + one fp32 scale per row
    quant = _vector(layer=-1, op="quant_lm_head", phase=phase, rows=B, width=D, out_bits=8,
                    out_bytes=_act_bytes(B, D, "int8"))
    return [quant, op_row(layer=-1, op="lm_head", op_class="gemm", phase=phase, M=B, N=V, K=D, count=1,
                          weight_format=cfg.lm_head_format, weight_bits=8 * wbytes / (V * D),
                          act_format="int8", act_bits=8, out_bits=16, macs_dense=B * V * D,
                          weight_bytes=wbytes, act_bytes_in=_act_bytes(B, D, "int8"),
                          act_bytes_out=float(B * V * FP16), stats=st)]


def check_workload(phase: str, context: int, batch: int, prefill_tokens: int | None = None) -> int:
    """Check the step's size against the shared limits (``contract``); return the new tokens P.

    ``context`` in [1, MAX_CONTEXT], ``batch`` in [1, MAX_BATCH], prefill tokens (default: ``context``)
    in [1, min(context, MAX_PREFILL_TOKENS)]; a ``ValueError`` naming the field, before any work.
    """
    if phase not in PHASES:
        raise ValueError(f"phase: unknown phase {phase!r}; known: {PHASES}")
    check_number(context, "context", integer=True, lo=1, hi=MAX_CONTEXT, unit="tokens (contract.MAX_CONTEXT)")
    check_number(batch, "batch", integer=True, lo=1, hi=MAX_BATCH, unit="sequences (contract.MAX_BATCH)")
    if phase == "decode":
        if prefill_tokens is not None:
            raise ValueError("prefill_tokens: only meaningful with phase='prefill'")
        return 1
    P = context if prefill_tokens is None else prefill_tokens
    check_number(P, "prefill_tokens", integer=True, lo=1)
    if P > context:
        raise ValueError(f"prefill_tokens ({P}) exceeds context ({context}): context is the "
                         "KV length after the chunk")
    if P > MAX_PREFILL_TOKENS:
        raise ValueError(f"prefill_tokens: {P} new tokens" + (" (the default: context)" if prefill_tokens is None
                                                              else "")
                         + f" is above the limit of {MAX_PREFILL_TOKENS} (contract.MAX_PREFILL_TOKENS; "
                         "docs/limits.md); prefill a long prompt in chunks (--prefill-tokens)")
    return P


def check_trace_formats(cfg: ModelConfig) -> None:
    """The formats a trace of ``cfg`` would name must be words of the trace vocabulary (``contract``)."""
    if cfg.q_bits is not None and f"int{cfg.q_bits}" not in ACT_FORMATS:
        raise ValueError(f"q_bits: {cfg.q_bits}-bit queries have no op-trace activation format (int{cfg.q_bits} "
                         f"is not in contract.ACT_FORMATS {list(ACT_FORMATS)}); use 3 or 4")
    if cfg.kv_quantized and f"kv-int{cfg.kv_cache_bits}" not in WEIGHT_FORMATS:
        raise ValueError(f"kv_bits: a {cfg.kv_cache_bits}-bit KV cache has no op-trace format (kv-int"
                         f"{cfg.kv_cache_bits} is not in contract.WEIGHT_FORMATS); use 3, 4 or 16")
    if cfg.lm_head_format not in WEIGHT_FORMATS:   # int8 / int4 / fp16 are; a guard against drift
        raise ValueError(f"lm_head_bits: format {cfg.lm_head_format!r} is not in contract.WEIGHT_FORMATS")


_LEGACY_PREFIXES = (("measured:", "random"), ("paper-table2:", "paper-table2"), ("trained:", "trained"))


def stats_source_of(attrs: dict) -> str:
    """The ``contract.STATS_SOURCES`` word of a trace's metadata (``df.attrs``).

    Version-2 traces carry the word itself; version-1 traces carried the description
    ("measured: ..." for seeded random weights, "paper-table2: ...", "trained: ..."),
    which is mapped to its word.  Anything else is a ``ValueError``.
    """
    v = attrs.get("stats_source") if isinstance(attrs, dict) else None
    if isinstance(v, str):
        if v in STATS_SOURCES:
            return v
        for prefix, word in _LEGACY_PREFIXES:
            if v.startswith(prefix):
                return word
    text = repr(v) if not isinstance(v, str) or len(v) <= 80 else repr(v[:80] + "...")
    raise ValueError(f"op trace metadata stats_source: {text} is none of {list(STATS_SOURCES)} "
                     "(nor a version-1 description starting 'measured:', 'paper-table2:' or 'trained:')")


# ------------------------------------------------------------------- statistics
@dataclass
class TraceStats:
    """The statistics a trace is built from and where they came from."""

    stats: dict[str, OpStats]                   # per op, every layer (unless in ``per_layer``)
    word: str                                   # a contract.STATS_SOURCES word
    detail: str                                 # the full description (``stats_detail``)
    per_layer: dict[int, dict[str, OpStats]] = dataclasses.field(default_factory=dict)
    attrs: dict = dataclasses.field(default_factory=dict)   # train_* metadata of a checkpoint


def _profile_stats(cfg: ModelConfig, profile: str, batch: int, P: int, context: int, seed: int,
                   layers_measured: int, rule_name: str) -> TraceStats:
    """Statistics of a trace without a checkpoint: seeded random weights, with the projection sparsity
    of the paper's Table 2 or of the committed trained profile when ``profile`` says so, its
    ``row_skip`` at M = batch * P rows from the batch rule ``rule_name`` (``model.zero_batch``)."""
    table = paper_sparsity(cfg.datapath, cfg.name) if profile == "paper-table2" else None
    tprof = trained_sparsity(cfg.datapath) if profile == "trained" else None   # both before any measuring
    br = make_rule(cfg.datapath, "tokens" if P > 1 else "sequences", rule_name) \
        if table is not None or tprof is not None else None
    stats, source = random_stats(cfg, batch, P, context, seed, layers_measured)
    rule = br.detail if br is not None else ""
    if table is not None:
        stats.update({op: OpStats(*v) for op, v in br.rows(table, batch * P).items()})
        return TraceStats(stats, "paper-table2",
                          f"q/k/v/o/gate/up/down sparsity from {PAPER_TABLE2_SOURCE} ({cfg.name}, {cfg.datapath}); "
                          f"{rule}; all other statistics {source}")
    if tprof is not None:
        stats.update({op: OpStats(*v) for op, v in br.rows(tprof.sparsity, batch * P).items()})
        return TraceStats(stats, "trained",
                          f"q/k/v/o/gate/up/down sparsity from the {tprof.describe()}, transferred to {cfg.name} "
                          f"({cfg.datapath}); {rule}; all other statistics {source}")
    return TraceStats(stats, "random", source)


def _check_heldout(tok: torch.Tensor, vocab_size: int) -> None:
    check_heldout_shape(tuple(tok.shape), "heldout")
    if int(tok.min()) < 0 or int(tok.max()) >= vocab_size:
        raise ValueError(f"heldout: token ids outside [0, {vocab_size})")


def _checkpoint_stats(cfg: ModelConfig, ck: LoadedCheckpoint, heldout: torch.Tensor | None, label: str,
                      batch: int, P: int, context: int, seed: int, layers_measured: int) -> TraceStats:
    """Statistics of a trained model run on held-out text: per layer in its own shape, else its
    projection sparsity (mean over layers) transferred to ``cfg`` with the rest measured at random."""
    tok = ck.heldout if heldout is None else heldout
    _check_heldout(tok, ck.config.vocab_size)
    inputs = tok[:, :-1]
    rows = "tokens" if P > 1 else "sequences"        # a decode step's rows are different sequences
    layer_stats, lm = measure_trained_stats(ck.model, inputs, batch * P, batch, rows=rows)
    trained = _trained_description(ck, inputs.shape[0], inputs.shape[1], batch * P, label, rows)
    m = ck.meta
    attrs = dict(train_checkpoint=ck.path.name, train_run=m.get("run"), train_step=m.get("step"),
                 train_tokens=m.get("tokens"), train_seed=m.get("seed"), train_corpus=m.get("corpus", {}),
                 heldout_tokens=int(inputs.numel()), heldout=label)
    if cfg == ck.config:
        return TraceStats(dict(layer_stats[0], lm_head=lm), "trained",
                          trained + f"; attention statistics at the held-out length {inputs.shape[1]} "
                          f"(trace context {context})", per_layer=layer_stats, attrs=attrs)
    stats, source = random_stats(cfg, batch, P, context, seed, layers_measured)
    for op in PROJ_OPS:
        v = [layer_stats[i][op] for i in sorted(layer_stats)]
        stats[op] = OpStats(sum(x.sparsity for x in v) / len(v), sum(x.row_skip for x in v) / len(v))
    return TraceStats(stats, "trained",
                      f"{trained}; q/k/v/o/gate/up/down statistics (mean over the {len(layer_stats)} trained "
                      f"layers) transferred to {cfg.name}; all other statistics {source}", attrs=attrs)


# ------------------------------------------------------------------- API
def _resolve_model(preset: "str | ModelConfig | None", datapath: str | None, profile: str,
                   checkpoint: "str | Path | LoadedCheckpoint | None",
                   heldout: torch.Tensor | None) -> tuple[ModelConfig, LoadedCheckpoint | None]:
    """The trace's model config (and the loaded checkpoint, if any), checked against each other."""
    ck = None
    if checkpoint is not None:
        if profile != "measured":
            raise ValueError("profile: a checkpoint trace measures the trained model; leave profile "
                             f"at 'measured' (got {profile!r})")
        ck = checkpoint if isinstance(checkpoint, LoadedCheckpoint) else load_checkpoint(checkpoint)
        if datapath not in (None, ck.config.datapath):
            raise ValueError(f"datapath: {ck.path.name} was trained as {ck.config.datapath!r}, "
                             f"not {datapath!r}")
        datapath = ck.config.datapath
        if preset is None:
            preset = ck.config
    elif heldout is not None:
        raise ValueError("heldout: held-out text is only used with a checkpoint")
    if preset is None:
        raise ValueError("preset: a model preset (or a checkpoint) is required")
    if datapath not in DATAPATHS:
        raise ValueError(f"datapath: unknown datapath {datapath!r}; known: {DATAPATHS}")
    cfg = get_config(preset, datapath)
    check_trace_formats(cfg)
    return cfg, ck


def trace_rows(cfg: ModelConfig, phase: str, batch: int, P: int, context: int,
               stats: dict[str, OpStats], per_layer: dict[int, dict[str, OpStats]] | None = None) -> list[OpRow]:
    """Every op of one step in order: embedding, the layers, the final norm and the LM head."""
    per_layer = per_layer or {}
    emb = _vector(layer=-1, op="embedding", phase=phase, rows=batch * P, width=cfg.dim,
                  weight_bytes=batch * P * cfg.dim * FP16)
    rows = [dataclasses.replace(emb, act_format="none", act_bits=32, act_bytes_in=float(batch * P * 4))]
    for layer in range(cfg.n_layers):
        rows += _layer_rows(cfg, layer, phase, batch, P, context, per_layer.get(layer, stats))
    rows.append(_vector(layer=-1, op="rmsnorm_final", phase=phase, rows=batch, width=cfg.dim,
                        weight_bytes=cfg.dim * FP16))
    return rows + _head_rows(cfg, phase, batch, stats["lm_head"])


_INT_COLUMNS = ("layer", "M", "N", "K", "count", "act_bits", "out_bits", "macs_dense", "macs_effective")


def _frame(rows: list[OpRow]) -> pd.DataFrame:
    df = pd.DataFrame([r.as_dict() for r in rows])
    for c in _INT_COLUMNS:
        df[c] = df[c].astype("int64")
    return df


def _check_batch_rule(rule: str | None, profile: str, checkpoint: object) -> str:
    """The batch rule's name (default ``beta``); a ``ValueError`` for an unknown one or one given to a
    trace that measures ``row_skip`` itself (``measured`` profile, checkpoint)."""
    if rule is None:
        return DEFAULT_BATCH_RULE
    if rule not in BATCH_RULES:
        raise ValueError(f"batch_rule: unknown rule {rule!r}; known: {list(BATCH_RULES)}")
    if profile == "measured" or checkpoint is not None:
        raise ValueError("batch_rule: only the profiles 'paper-table2' and 'trained' take a batch rule; a "
                         "measured or checkpoint trace measures row_skip over its own rows")
    return rule


def build_trace(preset: "str | ModelConfig | None", datapath: str | None, phase: str = "decode",
                context: int = 2048, batch: int = 1, seed: int = 0, profile: str = "measured",
                prefill_tokens: int | None = None, layers_measured: int = 1,
                checkpoint: "str | Path | LoadedCheckpoint | None" = None,
                heldout: torch.Tensor | None = None, heldout_label: str = "held-out validation",
                batch_rule: str | None = None) -> pd.DataFrame:
    """Op trace of one decode step or one prefill chunk of a whole model (see module doc).

    ``preset``: a preset name (``model.config.PRESETS``), a YAML path or a ModelConfig
    (its ``q_bits``, ``kv_bits`` and ``lm_head_bits`` choose the attention and LM-head formats).
    ``profile``: ``measured`` (statistics of this run, seeded random weights: ``stats_source``
    ``random``), ``paper-table2`` (projection sparsity from the paper's Table 2:
    ``stats_source`` ``paper-table2``) or ``trained`` (projection sparsity from the committed
    trained profile ``reports/data/trained_profile.csv``, seed mean: ``stats_source``
    ``trained``); ``stats_detail`` describes what was done.  Random-weight statistics are
    measured once per input and cached (``model.stats_cache``).

    ``checkpoint`` (a trained model, ``model.checkpoint``): statistics measured by
    running it on held-out text (``heldout`` token sequences [n, T+1], BOS first;
    default: the validation sequences stored in the checkpoint); ``stats_source`` is
    ``trained`` and the ``train_*`` attrs name model, data and step.
    With ``preset=None`` the trace has the checkpoint's own shape and per-layer
    statistics; with a preset (e.g. ``7b``) the trained projection sparsity (mean
    over layers) is transferred to that shape, like ``paper-table2``.

    ``batch_rule`` (``paper-table2`` / ``trained`` only; ``model.zero_batch.BATCH_RULES``): how the
    profile's sparsity becomes ``row_skip`` at M rows: ``beta`` (default, measured correlation of
    zeros) or ``independent`` (``sparsity**M``, the lower bound); named in ``stats_detail``.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile: unknown profile {profile!r}; known: {PROFILES}")
    rule_name = _check_batch_rule(batch_rule, profile, checkpoint)
    P = check_workload(phase, context, batch, prefill_tokens)     # before any work (docs/limits.md)
    check_number(layers_measured, "layers_measured", integer=True, lo=1)
    check_number(seed, "seed", integer=True, lo=0)
    cfg, ck = _resolve_model(preset, datapath, profile, checkpoint, heldout)
    if layers_measured > cfg.n_layers:
        raise ValueError(f"layers_measured ({layers_measured}) exceeds n_layers ({cfg.n_layers})")
    if ck is not None:
        ts = _checkpoint_stats(cfg, ck, heldout, heldout_label, batch, P, context, seed, layers_measured)
    else:
        ts = _profile_stats(cfg, profile, batch, P, context, seed, layers_measured, rule_name)
    df = _frame(trace_rows(cfg, phase, batch, P, context, ts.stats, ts.per_layer))
    # the fidelity knobs, named only when set (a default trace keeps the attrs it always had)
    knobs = {k: getattr(cfg, k) for k in ("q_bits", "lm_head_bits") if getattr(cfg, k) not in (None, 16)}
    df.attrs = dict(preset=cfg.name, datapath=cfg.datapath, phase=phase, batch=batch, context=context,
                    seed=seed, stats_source=ts.word, stats_detail=ts.detail,
                    profile="trained" if ck is not None else profile, **knobs,
                    prefill_tokens=P, layers_measured=cfg.n_layers if ts.per_layer else layers_measured,
                    version=f"model.trace {TRACE_VERSION}, op_trace schema {SCHEMA_VERSION}", **ts.attrs)
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
