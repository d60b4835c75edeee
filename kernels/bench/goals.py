"""The issue's goals, evaluated on one run's rows: each a ratio of two rows measured in that run.

Pure functions of the ``measured_trace`` rows (dicts), so they are tested on the CPU.  A goal
whose rows are missing is reported as "not measured", never as met.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class GoalResult:
    """One goal: what was compared, the measured ratio (or value), the target, and the verdict."""

    goal: str
    measured: str
    value: float
    target: float
    verdict: str          # "met", "missed" or "not measured"


def _find(rows, **want) -> list[dict]:
    return [r for r in rows if all(r.get(k) == v for k, v in want.items())]


def _best(rows, **want) -> dict | None:
    hit = [r for r in _find(rows, **want) if r.get("us", 0) > 0]
    return min(hit, key=lambda r: r["us"]) if hit else None


def _verdict(value: float | None, target: float, higher_is_better: bool = True) -> str:
    if value is None:
        return "not measured"
    ok = value >= target if higher_is_better else value <= target
    return "met" if ok else "missed"


def _goal(goal: str, measured: str, value: float | None, target: float, higher: bool = True) -> GoalResult:
    return GoalResult(goal=goal, measured=measured, value=float("nan") if value is None else float(value),
                      target=target, verdict=_verdict(value, target, higher))


def _ratio(goal: str, ours: dict | None, base: dict | None, target: float, note: str = "") -> GoalResult:
    """``base.us / ours.us`` against ``target`` (higher is better); "not measured" without both rows."""
    if not (ours and base):
        return _goal(goal, "missing rows", None, target)
    measured = f"{ours['kernel']} {ours['us']:.2f} us vs {base['kernel']} {base['us']:.2f} us" + note
    return _goal(goal, measured, base["us"] / ours["us"], target)


def decode_block_goals(rows: list[dict], ctx: int = 2048) -> list[GoalResult]:
    """a4.8 >= 5.5x and b1.58 >= 4x the fp16 torch block (the faster of eager and torch.compile)."""
    out = []
    fp16 = _best(rows, op="block_decode", kernel="block_fp16", K=ctx)
    for dp, target in (("a4.8", 5.5), ("b1.58", 4.0)):
        ours = _best(rows, op="block_decode", kernel=f"block_{dp}", K=ctx)
        if ours is None or fp16 is None:
            out.append(_goal(f"7B block decode {dp} >= {target}x fp16", "missing rows", None, target))
            continue
        ratio = fp16["us"] / ours["us"]
        fp16_floor = fp16.get("floor_us", 0.0)
        out.append(_goal(f"7B block decode {dp} >= {target}x fp16",
                         f"{ours['us']:.1f} us ({ours.get('variant', '')}) vs fp16 {fp16['us']:.1f} us "
                         f"({fp16.get('variant', '')}); bytes floor {ours.get('floor_us', 0):.1f} us; "
                         f"vs fp16 bytes floor {fp16_floor:.1f} us: {fp16_floor / ours['us']:.2f}x",
                         ratio, target))
    return out


def gemv_floor_goals(rows: list[dict], limit: float = 1.25) -> list[GoalResult]:
    """Every M=1 GEMV (codes given, and fused norm+quantizer) within ``limit`` x floor_read of its bytes."""
    out = []
    shapes = sorted({(r["N"], r["K"]) for r in _find(rows, op="gemv", cuda_graph=True) if r["M"] == 1})
    for N, K in shapes:
        floor = _best(rows, op="floor", kernel="floor_read", label=f"packed {N}x{K}", pdl=False)
        for kernel in ("ours_w158a8", "ours_fused_norm_int8_gemv", "ours_fused_norm_int4_gemv"):
            r = _best(rows, op="gemv", kernel=kernel, N=N, K=K, cuda_graph=True)
            if r is None:
                continue
            value = r["us"] / floor["us"] if floor else None
            out.append(_goal(f"GEMV {kernel} {N}x{K} <= {limit}x floor_read",
                             f"{r['us']:.2f} us vs floor {floor['us']:.2f} us" if floor else "no floor row",
                             value, limit, higher=False))
    return out


def attention_goals(rows: list[dict]) -> list[GoalResult]:
    """KV3 decode attention >= 3x SDPA at B=8 (ctx 8k, 32k), >= 1.5x at B=1 (ctx 2k-8k)."""
    out = []
    for B, T, target in ((8, 8192, 3.0), (8, 32768, 3.0), (1, 2048, 1.5), (1, 8192, 1.5)):
        sdpa = _best(rows, op="attention_decode", kernel="torch_sdpa", M=B, K=T)
        cands = [r for r in (_best(rows, op="attention_decode", kernel="ours_kv3", M=B, K=T),
                             _best(rows, op="attention_step", kernel="ours_step_kv3", M=B, K=T)) if r]
        ours = min(cands, key=lambda r: r["us"]) if cands else None
        out.append(_ratio(f"KV3 attention B={B} ctx={T} >= {target}x SDPA", ours, sdpa, target))
    return out


def sparse_goals(rows: list[dict]) -> list[GoalResult]:
    """Sparse GEMV at ~84 % zeros on Wdown >= 2.5x our dense GEMV; on Wo it need only not lose."""
    out = []
    for N, K, target in ((4096, 11008, 2.5), (4096, 4096, 1.0)):
        sp = [r for r in _find(rows, op="sparse_gemv", kernel="ours_sparse_w158a8", N=N, K=K, cuda_graph=True)
              if abs(r.get("sparsity", 0) - 0.84) < 0.02]
        dense = [r for r in _find(rows, op="gemv", kernel="ours_w158a8", N=N, K=K, cuda_graph=True)
                 if "0.84" in str(r.get("note", ""))]
        out.append(_ratio(f"sparse GEMV {N}x{K} at 84% zeros >= {target}x dense", sp[0] if sp else None,
                          dense[0] if dense else None, target))
    return out


def prefill_goals(rows: list[dict]) -> list[GoalResult]:
    """W1.58A4-FP8 >= 1.5x cuBLAS FP16 at M >= 2048; W1.58A8 >= cuBLAS INT8; a4.8 block prefill >= 1.3x fp16."""
    out = []
    shapes = sorted({(r["M"], r["N"], r["K"]) for r in _find(rows, op="gemm", kernel="ours_w158a4_fp8")
                     if r["M"] >= 2048})
    for M, N, K in shapes:
        f8 = _best(rows, op="gemm", kernel="ours_w158a4_fp8", M=M, N=N, K=K)
        a8 = _best(rows, op="gemm", kernel="ours_w158a8", M=M, N=N, K=K)
        c16 = _best(rows, op="gemm", kernel="cublas_fp16", M=M, N=N, K=K)
        ci8 = _best(rows, op="gemm", kernel="cublas_int8", M=M, N=N, K=K)
        cf8 = _best(rows, op="gemm", kernel="cublas_fp8", M=M, N=N, K=K)
        note = f"; cuBLAS FP8 {cf8['us']:.1f} us" if cf8 else ""
        out.append(_ratio(f"prefill A4-FP8 {M}x{N}x{K} >= 1.5x cuBLAS FP16", f8, c16, 1.5, note))
        out.append(_ratio(f"prefill A8 {M}x{N}x{K} >= 1.0x cuBLAS INT8", a8, ci8, 1.0))
    out.append(_ratio("a4.8 block prefill >= 1.3x fp16", _best(rows, op="block_prefill", kernel="block_a4.8"),
                      _best(rows, op="block_prefill", kernel="block_fp16"), 1.3))
    return out


def all_goals(rows: Iterable[dict]) -> list[GoalResult]:
    rows = list(rows)
    return (decode_block_goals(rows) + gemv_floor_goals(rows) + attention_goals(rows) + sparse_goals(rows)
            + prefill_goals(rows))


def goals_table(goals: list[GoalResult]) -> str:
    lines = [f"{'goal':52s} {'value':>7s} {'target':>6s} verdict  measured"]
    for g in goals:
        lines.append(f"{g.goal[:52]:52s} {g.value:7.2f} {g.target:6.2f} {g.verdict:8s} {g.measured}")
    return "\n".join(lines)


def token_table(rows: list[dict]) -> str:
    lines = []
    for r in _find(rows, op="token_decode"):
        lines.append(f"7B decode token {r['precision']:6s} {r['us']:9.1f} us  {r.get('tokens_per_s', 0):8.1f} tok/s "
                     f"({r.get('variant', '')})")
    return "\n".join(lines)
