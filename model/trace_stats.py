"""Activation statistics of an op trace: measured on seeded random weights or on a trained model.

``measure_stats`` runs ``layers_measured`` full-width blocks with seeded random weights on the
fake-quant path; ``random_stats`` is the same, computed once per input and kept in
``model.stats_cache``; ``measure_trained_stats`` runs a trained model on held-out text.
``model.trace`` (see its module doc for the rules) builds the rows from these statistics.
"""
from __future__ import annotations

import functools
import sys
from dataclasses import dataclass

import torch

from contract.io import files_digest
from contract.limits import limit
from model import baselines as baselines_module
from model import config as config_module
from model import fakequant as fq
from model import model as model_module
from model import quant as quant_module
from model import stats_cache
from model import zero_batch as zero_batch_module
from model.config import ModelConfig
from model.model import ActivationCapture, BitLinear, Block, LayerKV, Transformer, init_weights, quantize_act

STATS_ROWS = 256                        # most activation rows measured per op
MAX_MEASURED_BLOCK_PARAMS = limit("measured block", 1 << 31, unit="parameters", area="workloads",
                                  applies_to="the random-weight block a trace's statistics are measured on",
                                  why="8 GiB of float32; a Llama-70B block has 0.86 G parameters")
KV_STATS_ELEMS = 2 ** 25                # most K (and V) cache elements built for measuring


@dataclass
class OpStats:
    sparsity: float = 0.0
    row_skip: float = 0.0


# ----------------------------------------------------------------- helpers
def _zero_stats(x: torch.Tensor, m_rows: int, per_column: bool = False) -> OpStats:
    """Zero fraction of x [..., K] and the fraction of K columns zero in all of m_rows rows.

    ``per_column``: from the per-column zero frequencies f_j as mean_j f_j**m_rows (rows of different
    sequences, whose zeros are independent given their column), not from groups of consecutive rows.
    """
    z = (x.reshape(-1, x.shape[-1]) == 0)
    col_freq = z.double().mean(dim=0)
    if per_column:
        skip = float(col_freq.pow(m_rows).mean())
    elif z.shape[0] == m_rows:
        skip = float(z.all(dim=0).double().mean())
    elif z.shape[0] > m_rows:  # more rows measured than the op has: groups of m_rows consecutive rows
        g = z.shape[0] // m_rows
        skip = float(z[: g * m_rows].reshape(g, m_rows, -1).all(dim=1).double().mean())
    else:  # extrapolate to m_rows rows from the per-column zero frequency
        skip = float(col_freq.pow(m_rows).mean())
    return OpStats(float(z.double().mean()), skip)


# -------------------------------------------------------------- measuring
def measure_stats(cfg: ModelConfig, batch: int, new_tokens: int, context: int, seed: int,
                  layers_measured: int) -> tuple[dict[str, OpStats], str]:
    """Run ``layers_measured`` random full-width blocks; return per-op stats and a description."""
    block = cfg.linear_params // cfg.n_layers
    if block > MAX_MEASURED_BLOCK_PARAMS:
        raise ValueError(f"model shape: one block of {cfg.name} has {block:.3g} parameters; measuring random-weight "
                         f"statistics builds it in float32 ({4 * block / 2**30:.1f} GiB), above the limit of "
                         f"{MAX_MEASURED_BLOCK_PARAMS:.3g} parameters")
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
            blk = random_block(cfg, seed, layer)
            kv = LayerKV()
            if past_m:
                k = torch.randn(b_m, cfg.kv_heads, past_m, cfg.hd, generator=g)
                v = torch.randn(b_m, cfg.kv_heads, past_m, cfg.hd, generator=g)
                if cfg.kv_quantized:
                    pos = torch.arange(past_m)
                    k = fq.fake_kv(k, cfg.kv_cache_bits, cfg.bos_bits, pos)
                    v = fq.fake_kv(v, cfg.kv_cache_bits, cfg.bos_bits, pos)
                kv.append(k, v)
            rec = ActivationCapture()
            x = blk(x, positions, kv, exact=False, rec=rec)
            for op, st in _block_stats(cfg, rec, layer, m_rows, positions).items():
                acc.setdefault(op, []).append(st)
            del kv, rec
        final = _unit_rmsnorm(x[:, -1, :], cfg.norm_eps)
    stats = {op: OpStats(sum(s.sparsity for s in v) / len(v), sum(s.row_skip for s in v) / len(v))
             for op, v in acc.items()}
    stats["lm_head"] = _zero_stats(head_input(cfg, final), batch)
    what = (f"measured on {layers_measured} full-width block(s) of {cfg.name} ({cfg.datapath}), seeded "
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


@functools.lru_cache(maxsize=1)
def random_block(cfg: ModelConfig, seed: int, layer: int) -> Block:
    """Block ``layer`` of ``cfg`` with seeded random weights, ternarised in place (inference only).

    The last one built is kept: the traces of one model at other contexts and batches measure on
    the same weights, whose drawing and ternarising is most of a measurement's time.
    """
    blk = Block(cfg, layer)
    init_weights(blk, seed * 1000 + layer + 1)
    for mod in blk.modules():   # ternarise in place: no second copy of the weights
        if isinstance(mod, BitLinear):
            mod.freeze_()
    return blk


def measure_trained_stats(model: Transformer, tokens: torch.Tensor, m_rows: int, lm_rows: int,
                          chunk: int = 8, rows: str = "tokens") -> tuple[dict[int, dict[str, OpStats]], OpStats]:
    """Per-layer op statistics of a (trained) model on held-out token sequences ``tokens`` [n, T].

    Each chunk of ``chunk`` sequences runs as a prefill from position 0 (BOS) on the
    fake-quant path (codes identical to the integer path) with an
    :class:`ActivationCapture`; statistics are averaged over equal-sized chunks (a
    remainder of fewer than ``chunk`` sequences is left out).  ``row_skip`` is taken
    over groups of ``m_rows`` consecutive held-out tokens (``rows="tokens"``: a prefill's rows), or
    for ``m_rows`` different sequences (``rows="sequences"``: a decode step's rows) as mean_j f_j**M
    from the per-column zero frequencies, which the trained models show to predict the fraction zero
    in all M sequences (``benchmarks/zero_correlation.py``).  Returns ``{layer: {op:
    stats}}`` (ops as in the trace, plus ``gate_out``: the zero fraction of the gate
    branch's activation) and the LM head's input statistics (final-norm output, or its
    INT8 codes with a quantized head; ``lm_rows`` rows).
    """
    if rows not in ("tokens", "sequences"):
        raise ValueError(f"rows: unknown row grouping {rows!r}; known: ['tokens', 'sequences']")
    if tokens.dim() != 2 or tokens.shape[0] < 1:
        raise ValueError(f"held-out tokens: need sequences [n, T], got shape {tuple(tokens.shape)}")
    cfg = model.cfg
    n, T = tokens.shape
    chunk = min(chunk, n)
    positions = torch.arange(T)
    acc: dict[int, dict[str, list[OpStats]]] = {}
    finals: list[torch.Tensor] = []
    with torch.no_grad():
        for i in range(0, n - n % chunk, chunk):
            cap = ActivationCapture()
            model(tokens[i:i + chunk].long(), rec=cap)
            for layer in range(cfg.n_layers):
                st = _block_stats(cfg, cap, layer, m_rows, positions, per_column=rows == "sequences")
                st["gate_out"] = OpStats(float((cap[(layer, "gate_act")] == 0).double().mean()), 0.0)
                for op, v in st.items():
                    acc.setdefault(layer, {}).setdefault(op, []).append(v)
            finals.append(cap[(-1, "in_head")])   # the LM head's input (INT8 codes with lm_head_bits 8 / 4)
            del cap
    mean = lambda v: OpStats(sum(x.sparsity for x in v) / len(v), sum(x.row_skip for x in v) / len(v))  # noqa: E731
    per_layer = {layer: {op: mean(v) for op, v in ops.items()} for layer, ops in acc.items()}
    # the LM head's rows are the last tokens of lm_rows different sequences, in either phase
    return per_layer, _zero_stats(torch.cat(finals).reshape(-1, cfg.dim), lm_rows, per_column=True)


def head_input(cfg: ModelConfig, xn: torch.Tensor) -> torch.Tensor:
    """What the LM head multiplies: the final-norm output, or its INT8 codes (``lm_head_bits`` 8 / 4)."""
    return xn if cfg.lm_head_bits == 16 else quantize_act(xn, "int8", exact=False).recorded()


def _unit_rmsnorm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Unit-gain RMSNorm (the final norm of a random-init model)."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def _block_stats(cfg: ModelConfig, rec: ActivationCapture, layer: int, m_rows: int,
                 positions: torch.Tensor, per_column: bool = False) -> dict[str, OpStats]:
    r = lambda name: rec[(layer, name)]  # noqa: E731
    zs = lambda x: _zero_stats(x, m_rows, per_column)  # noqa: E731
    out: dict[str, OpStats] = {}
    qkv = zs(r("in_qkv"))
    for op in ("q_proj", "k_proj", "v_proj"):
        out[op] = qkv
    out["o_proj"] = zs(r("in_o"))
    ffn = zs(r("in_ffn"))
    out["gate_proj"] = ffn
    if cfg.ffn_kind == "relu2glu":  # gate-first rule (docs/decisions.md 7)
        x_in = r("in_ffn").reshape(-1, cfg.dim)
        gate = r("gate_act").reshape(-1, cfg.ffn_dim)
        nnz_x = (x_in != 0).double().sum(-1)
        nnz_g = (gate != 0).double().sum(-1)
        eff = float((nnz_x * nnz_g).sum() / (x_in.shape[0] * cfg.dim * cfg.ffn_dim))
        if x_in.shape[0] > m_rows and not per_column:   # several groups of m_rows tokens: the W_up fetch of each group
            g = x_in.shape[0] // m_rows
            zx = (x_in[: g * m_rows] == 0).reshape(g, m_rows, -1).all(dim=1).double().mean(-1)
            zg = (gate[: g * m_rows] == 0).reshape(g, m_rows, -1).all(dim=1).double().mean(-1)
            out["up_proj"] = OpStats(1.0 - eff, float((1.0 - (1.0 - zx) * (1.0 - zg)).mean()))
        else:
            gskip = zs(gate).row_skip
            out["up_proj"] = OpStats(1.0 - eff, 1.0 - (1.0 - ffn.row_skip) * (1.0 - gskip))
    else:
        out["up_proj"] = ffn
    out["down_proj"] = zs(r("in_down"))
    out["attn_qk"] = OpStats(float((r("q_attn") == 0).double().mean()), 0.0)
    probs = r("probs")
    S = probs.shape[-1]
    causal = torch.arange(S, device=positions.device)[None, :] <= positions[:, None]
    unmasked = int(causal.sum()) * probs.shape[0] * probs.shape[1]
    zeros = int((probs == 0).sum()) - (probs.numel() - unmasked)
    out["attn_pv"] = OpStats(zeros / unmasked, 0.0)
    return out


def random_stats(cfg: ModelConfig, batch: int, new_tokens: int, context: int, seed: int,
                 layers_measured: int) -> tuple[dict[str, OpStats], str]:
    """:func:`measure_stats`, computed once per input and kept in ``model.stats_cache``.

    The key holds every input of the measurement: the whole config, the workload, the seed, the
    measuring bounds, the source of the code that measures (so an edit never reads an old entry),
    the torch version (whose kernels give the numbers) and the batch rule's committed constants
    (``model.zero_batch``: a trace's ``row_skip`` depends on them).
    """
    parts = dict(cfg=cfg.to_dict(), batch=batch, new_tokens=new_tokens, context=context, seed=seed,
                 layers_measured=layers_measured, stats_rows=STATS_ROWS, kv_stats_elems=KV_STATS_ELEMS,
                 code=_measuring_code_digest(), torch=torch.__version__,
                 batch_rule_fit=zero_batch_module.fit_digest())   # a changed batch rule never meets an old entry

    def compute() -> dict:
        stats, what = measure_stats(cfg, batch, new_tokens, context, seed, layers_measured)
        return dict(stats={op: [s.sparsity, s.row_skip] for op, s in stats.items()}, detail=what)

    doc = stats_cache.cached("random-stats", parts, compute)
    return {op: OpStats(sp, rs) for op, (sp, rs) in doc["stats"].items()}, doc["detail"]


@functools.lru_cache(maxsize=1)
def _measuring_code_digest() -> str:
    """SHA-256 of the source of every module a random-weight measurement runs, and of the batch rule's."""
    return files_digest(mod.__file__ for mod in (sys.modules[__name__], model_module, fq, quant_module,
                                                 baselines_module, config_module, zero_batch_module))
