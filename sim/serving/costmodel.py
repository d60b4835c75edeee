"""The iteration cost model: what one scheduler iteration costs on one tensor-parallel shard.

The serving engine asks one question per iteration: given ``n_decode`` decode requests whose
contexts sum to ``decode_context`` tokens and prefill chunks ``[(new_tokens, context_after), ...]``,
how many seconds does the iteration take and how many joules does it use?  Anything with
:meth:`IterationCostModel.cost` and a :class:`ChipFacts` answers it:

* :class:`LinearCostModel`: a closed form (fixed + per token + per context token + per attention
  pair), for hand-computed checks and quick studies;
* :class:`GridCostModel`: direct evaluations of a chip simulator on a grid, interpolated, with the
  fit's error against direct evaluation at points off the grid (:meth:`GridCostModel.fit_error`).
  The application layer builds one from op traces and ``sim.simulate``.

The seconds are one shard's compute (the tensor-parallel collectives are added by the engine from
the interconnect); the joules are those of all ``tp`` shards together.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np
import pandas as pd

from contract.config import check_number

Chunk = tuple[int, int]          # (new tokens, context after the chunk)


@dataclass(frozen=True, kw_only=True)
class ChipFacts:
    """What the engine needs to know about one chip running one tensor-parallel shard (all layers)."""
    name: str
    tp: int = 1
    model: str = ""                  # model served (for the summary's columns)
    datapath: str = ""
    weight_bytes: float              # byte, weights held by one chip (its shard)
    kv_bytes_per_token: float        # byte, one token's K and V over all layers on one chip
    capacity_bytes: float            # byte, off-chip memory of one chip
    area_mm2: float = 0.0            # mm2, one chip
    hidden: int = 4096               # model width (all-reduce payload per token = hidden x act_bytes)
    n_layers: int = 32
    act_bytes: float = 2.0           # byte per activation element on the wire (FP16)

    def __post_init__(self) -> None:
        check_number(self.tp, "tp", integer=True, lo=1, hi=1024)
        for f in ("weight_bytes", "area_mm2", "act_bytes"):
            check_number(getattr(self, f), f, lo=0)
        check_number(self.kv_bytes_per_token, "kv_bytes_per_token", lo=0, lo_open=True, unit="byte")
        check_number(self.capacity_bytes, "capacity_bytes", lo=0, lo_open=True, unit="byte")
        check_number(self.hidden, "hidden", integer=True, lo=1)
        check_number(self.n_layers, "n_layers", integer=True, lo=1)


class IterationCostModel(Protocol):
    facts: ChipFacts

    def cost(self, n_decode: int, decode_context: int, chunks: Sequence[Chunk]) -> tuple[float, float]:
        """(seconds on one shard, joules of all shards) of one iteration."""


def attention_pairs(new_tokens: int, context_after: int) -> int:
    """Causal query-key pairs of a prefill chunk of ``new_tokens`` ending at ``context_after``."""
    past = context_after - new_tokens
    return new_tokens * past + new_tokens * (new_tokens + 1) // 2


@dataclass(frozen=True, kw_only=True)
class LinearCostModel:
    """``s = fixed + per_token * tokens + per_context * decode_context + per_pair * prefill pairs``;
    joules ``watts * s + joules_per_token * tokens``."""
    facts: ChipFacts
    fixed_s: float = 0.0
    per_token_s: float = 0.0
    per_context_s: float = 0.0
    per_pair_s: float = 0.0
    watts: float = 0.0               # all shards together
    joules_per_token: float = 0.0

    def cost(self, n_decode: int, decode_context: int, chunks: Sequence[Chunk]) -> tuple[float, float]:
        tokens = n_decode + sum(c[0] for c in chunks)
        pairs = sum(attention_pairs(p, c) for p, c in chunks)
        s = self.fixed_s + self.per_token_s * tokens + self.per_context_s * decode_context + self.per_pair_s * pairs
        return s, self.watts * s + self.joules_per_token * tokens


#: evaluate(phase, batch, new_tokens, context) -> (seconds, joules): one direct simulation
Evaluator = Callable[[str, int, int, int], tuple[float, float]]


def _interp1(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """Piecewise-linear through the grid (exact for the piecewise-linear roofline shapes of a step);
    linear extrapolation past its ends.  Plain lists and ``bisect``: called a few times per iteration."""
    if len(xs) == 1:
        return ys[0] * x / xs[0] if xs[0] else ys[0]
    i = min(max(bisect.bisect_left(xs, x) - 1, 0), len(xs) - 2)
    x0, x1 = xs[i], xs[i + 1]
    return ys[i] + (x - x0) / (x1 - x0) * (ys[i + 1] - ys[i])


def _interp_knee(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """Piecewise-linear through the grid, except on a convex stretch -- the slopes of the segments on either side
    bracket the interval's own, as where a step turns from weight-bound to compute-bound between two grid points
    -- where it is the larger of those two neighbouring segments' lines extended into the interval: exact for a
    roofline ``max(flat, slope x)`` whose knee lies anywhere in the interval, where the chord overshoots."""
    i = bisect.bisect_left(xs, x) - 1
    if i < 1 or i + 2 >= len(xs):
        return _interp1(xs, ys, x)
    left, mid, right = ((ys[k + 1] - ys[k]) / (xs[k + 1] - xs[k]) for k in (i - 1, i, i + 1))
    if not left <= mid <= right:
        return _interp1(xs, ys, x)
    return max(ys[i] + left * (x - xs[i]), ys[i + 1] + right * (x - xs[i + 1]))


def _interp_flat(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """Piecewise-linear through the grid, held flat past its ends (for rates, which must not run away)."""
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    return _interp1(xs, ys, x)


def _columns(z: np.ndarray) -> list[list[float]]:
    """``z[len(xs), len(cs)]`` as one plain list per context."""
    return [[float(v) for v in z[:, j]] for j in range(z.shape[1])]


@dataclass
class GridCostModel:
    """Direct evaluations on a grid, memoised, combined additively for a mixed iteration.

    ``linear(T)``: a decode step of batch ``T`` at ``base_context`` (weights, projections, norms);
    ``decode_attn(B, C)``: a decode step of batch B at context C minus the same at ``base_context``;
    ``prefill_attn(P, past)``: a P-token prefill chunk after ``past`` cached tokens minus ``linear(P)``.
    A mixed iteration costs ``linear(B + sum P) + decode_attn(B, mean context) + sum prefill_attn``.
    ``prefill_attn`` is piecewise-linear between grid points (extrapolated linearly past them); so is ``linear``,
    but on a convex stretch of it (a roofline knee between two grid points) it takes the larger of the
    neighbouring segments' lines (:func:`_interp_knee`).  ``decode_attn`` is interpolated per cached context
    token, ``decode_attn / (C - base)``: linear in the batch, extrapolated past the grid's ends (streaming
    every request's KV makes it ``a + b B``, a fixed part per step and a constant cost per token read, where
    the step itself bends with the batch), and held flat over the context past the grid's ends.  A grid point
    whose KV cache exceeds the memory a scheduler may fill (``memory_fraction`` of the chip's) is not
    simulated (no iteration reaches it): it takes the per-token rate of the largest context that fits at its
    batch.
    """
    facts: ChipFacts
    evaluate: Evaluator
    tokens: Sequence[int] = (1, 16, 128, 512, 1024)
    batches: Sequence[int] = (1, 16, 128)
    contexts: Sequence[int] = (512, 4096)
    chunks: Sequence[int] = (128, 1024)
    base_context: int = 16
    memory_fraction: float = 1.0     # of the chip's memory a scheduler may fill (SchedulerConfig.memory_fraction)
    memo: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_number(self.memory_fraction, "memory_fraction", lo=0, lo_open=True, hi=1)
        if min(self.contexts) <= self.base_context:
            raise ValueError(f"grid.contexts: every context must exceed the base context {self.base_context} "
                             f"(the decode attention is measured against it), got {list(self.contexts)}")
        self._fit()

    def direct(self, phase: str, batch: int, new_tokens: int, context: int) -> tuple[float, float]:
        key = (phase, int(batch), int(new_tokens), int(context))
        if key not in self.memo:
            s, j = self.evaluate(*key)
            self.memo[key] = (float(s), float(j))
        return self.memo[key]

    def _fit(self) -> None:
        self._lin_memo: dict = {}
        self._dec_memo: dict = {}
        self._pre_memo: dict = {}
        lin = np.array([self.direct("decode", t, 1, self.base_context) for t in self.tokens])
        self._lin = ([float(t) for t in self.tokens], lin[:, 0].tolist(), lin[:, 1].tolist())
        # (s, J) per context token of the whole batch: the per-request rate times the batch
        dec = np.array([self._decode_rates(b) for b in self.batches]) * np.array(self.batches)[:, None, None]
        cs = [float(c - self.base_context) for c in self.contexts]
        self._dec = ([float(b) for b in self.batches], cs, _columns(dec[..., 0]), _columns(dec[..., 1]))
        pasts = (0, *self.contexts)
        pre = np.array([[np.subtract(self.direct("prefill", 1, p, p + c), self._linear(p)) for c in pasts]
                        for p in self.chunks])
        self._pre = ([float(p) for p in self.chunks], [float(c) for c in pasts],
                     _columns(pre[..., 0]), _columns(pre[..., 1]))

    def fits(self, batch: int, context: int) -> bool:
        """Whether ``batch`` requests of ``context`` tokens of KV fit beside the weights in the share of the
        chip's memory a scheduler may fill (``memory_fraction``): no iteration reaches a point that does not."""
        f = self.facts
        return batch * context * f.kv_bytes_per_token + f.weight_bytes <= f.capacity_bytes * self.memory_fraction

    def _decode_rates(self, batch: int) -> list[tuple[float, float]]:
        """(s, J) per cached token read of a decode step of ``batch`` at each grid context that fits."""
        base = self.direct("decode", batch, 1, self.base_context)
        rates: list[tuple[float, float]] = []
        for c in self.contexts:
            if rates and not self.fits(batch, c):
                rates.append(rates[-1])
                continue
            s, j = np.subtract(self.direct("decode", batch, 1, c), base) / (batch * (c - self.base_context))
            rates.append((float(s), float(j)))
        return rates

    def _linear(self, tokens: int) -> tuple[float, float]:
        hit = self._lin_memo.get(tokens)
        if hit is None:
            lx, s, j = self._lin
            hit = self._lin_memo[tokens] = (_interp_knee(lx, s, tokens), _interp_knee(lx, j, tokens))
        return hit

    @staticmethod
    def _at(memo: dict, grid: tuple, x: int, interp=_interp1) -> tuple[list, list, list]:
        """The values at every grid context for this batch (or chunk), interpolated once and kept."""
        hit = memo.get(x)
        if hit is None:
            xs, cs, s, j = grid
            hit = memo[x] = (cs, [interp(xs, c, x) for c in s], [interp(xs, c, x) for c in j])
        return hit

    def _decode_attn(self, batch: int, mean_context: float) -> tuple[float, float]:
        cs, s, j = self._at(self._dec_memo, self._dec, batch)
        c = mean_context - self.base_context
        return c * _interp_flat(cs, s, c), c * _interp_flat(cs, j, c)

    def _prefill_attn(self, new_tokens: int, context_after: int) -> tuple[float, float]:
        cs, s, j = self._at(self._pre_memo, self._pre, new_tokens)
        past = context_after - new_tokens
        return _interp1(cs, s, past), _interp1(cs, j, past)

    def cost(self, n_decode: int, decode_context: int, chunks: Sequence[Chunk]) -> tuple[float, float]:
        tokens = n_decode + sum(c[0] for c in chunks)
        s, j = self._linear(tokens)
        if n_decode:
            ds, dj = self._decode_attn(n_decode, decode_context / n_decode)
            s, j = s + ds, j + dj
        for p, c in chunks:
            ps, pj = self._prefill_attn(p, c)
            s, j = s + ps, j + pj
        return max(s, 0.0), max(j, 0.0)

    def fit_error(self, points: Sequence[tuple[str, int, int, int]]) -> pd.DataFrame:
        """Fitted vs direct at ``points`` ``(phase, batch, new_tokens, context)``: one row each with the errors."""
        rows = []
        for phase, b, p, c in points:
            ds, dj = self.direct(phase, b, p, c)
            fs, fj = self.cost(b, b * c, ()) if phase == "decode" else self.cost(0, 0, ((p, c),) * b)
            rows.append(dict(phase=phase, batch=b, new_tokens=p, context=c, direct_s=ds, fitted_s=fs,
                             error_s=(fs - ds) / ds if ds else math.nan, direct_j=dj, fitted_j=fj,
                             error_j=(fj - dj) / dj if dj else math.nan))
        return pd.DataFrame(rows)
