"""The kernel goals, evaluated on one run's rows: each a ratio of two rows measured in that run.

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
    floor: str = ""       # the floor or anchor measured beside it, in words


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


def _goal(goal: str, measured: str, value: float | None, target: float, higher: bool = True,
          floor: str = "") -> GoalResult:
    return GoalResult(goal=goal, measured=measured, value=float("nan") if value is None else float(value),
                      target=target, verdict=_verdict(value, target, higher), floor=floor)


def _fastest(rows, kernels: Iterable[str], **want) -> dict | None:
    """The fastest row among several kernels (the variant shipped per shape)."""
    hits = [r for r in (_best(rows, kernel=k, **want) for k in kernels) if r]
    return min(hits, key=lambda r: r["us"]) if hits else None


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
    for B, T, target in ((8, 32768, 2.0), (8, 8192, 3.0), (1, 2048, 1.5), (1, 8192, 1.5)):
        sdpa = _best(rows, op="attention_decode", kernel="torch_sdpa", M=B, K=T)
        # the kernels a decode step can ship: only rows checked within the attention tolerance in the same run
        cands = [r for r in (_best(rows, op="attention_decode", kernel="ours_kv3", M=B, K=T, exact=True),
                             _best(rows, op="attention_decode", kernel="ours_kv3_dense", M=B, K=T, exact=True),
                             _best(rows, op="attention_step", kernel="ours_step_kv3", M=B, K=T, exact=True),
                             _best(rows, op="attention_step", kernel="ours_step_kv3_dense", M=B, K=T, exact=True))
                 if r]
        ours = min(cands, key=lambda r: r["us"]) if cands else None
        g = _ratio(f"KV3 attention B={B} ctx={T} >= {target}x SDPA", ours, sdpa, target)
        nib = _best(rows, op="floor", kernel="floor_read", label=f"kv3 nibble B={B} ctx={T}")
        dense = _best(rows, op="floor", kernel="floor_read", label=f"kv3 dense B={B} ctx={T}")
        if nib and dense:
            g = GoalResult(**{**g.__dict__, "floor": f"read floor nibble layout {nib['us']:.1f} us, dense 3-bit "
                                                     f"layout {dense['us']:.1f} us"})
        out.append(g)
    return out


def sparse_goals(rows: list[dict]) -> list[GoalResult]:
    """Sparse GEMV at ~84 % zeros on Wdown >= 1.8x our dense GEMV; on Wo it need only not lose."""
    out = []
    for N, K, target in ((4096, 11008, 1.8), (4096, 4096, 1.0)):
        sp = [r for r in _find(rows, op="sparse_gemv", kernel="ours_sparse_w158a8", N=N, K=K, cuda_graph=True)
              if abs(r.get("sparsity", 0) - 0.84) < 0.02]
        dense = [r for r in _find(rows, op="gemv", kernel="ours_w158a8", N=N, K=K, cuda_graph=True)
                 if "0.84" in str(r.get("note", ""))]
        g = _ratio(f"sparse GEMV {N}x{K} at 84% zeros >= {target}x dense", sp[0] if sp else None,
                   dense[0] if dense else None, target)
        floor = _best(rows, op="floor", kernel="floor_read", K=1, label=f"sparse rows {N}x{K} s=0.84")
        dense_floor = _best(rows, op="floor", kernel="floor_read", label=f"packed {N}x{K}", pdl=False)
        if floor and dense_floor:
            g = GoalResult(**{**g.__dict__, "floor": f"read of the kept rows alone {floor['us']:.2f} us = "
                                                      f"{dense_floor['us'] / floor['us']:.2f}x the dense read"})
        out.append(g)
    return out


def prefill_goals(rows: list[dict]) -> list[GoalResult]:
    """W1.58A4-FP8 >= 1.5x cuBLAS FP16 at M >= 2048; W1.58A8 >= cuBLAS INT8; a4.8 block prefill >= 1.3x fp16."""
    out = []
    shapes = sorted({(r["M"], r["N"], r["K"]) for r in _find(rows, op="gemm", kernel="ours_w158a4_fp8")
                     if r["M"] >= 2048})
    for M, N, K in shapes:     # ours: the faster of the fused kernel and the two-pass route, per shape
        f8 = _fastest(rows, ("ours_w158a4_fp8", "ours_twopass_w158a4_fp8"), op="gemm", M=M, N=N, K=K)
        a8 = _fastest(rows, ("ours_w158a8", "ours_twopass_w158a8"), op="gemm", M=M, N=N, K=K)
        c16 = _best(rows, op="gemm", kernel="cublas_fp16", M=M, N=N, K=K)
        ci8 = _best(rows, op="gemm", kernel="cublas_int8", M=M, N=N, K=K)
        cf8 = _best(rows, op="gemm", kernel="cublas_fp8", M=M, N=N, K=K)
        note = f"; cuBLAS FP8 {cf8['us']:.1f} us" if cf8 else ""
        g = _ratio(f"prefill A4-FP8 {M}x{N}x{K} >= 1.5x cuBLAS FP16", f8, c16, 1.5, note)
        out.append(_with_two_pass_floor(g, rows, cf8, c16, M, N, K))
        g = _ratio(f"prefill A8 {M}x{N}x{K} >= 1.0x cuBLAS INT8", a8, ci8, 1.0)
        out.append(_with_two_pass_floor(g, rows, ci8, ci8, M, N, K))
    out.append(_ratio("a4.8 block prefill >= 1.3x fp16", _best(rows, op="block_prefill", kernel="block_a4.8"),
                      _best(rows, op="block_prefill", kernel="block_fp16"), 1.3))
    return out


def _with_two_pass_floor(g: GoalResult, rows: list[dict], lib: dict | None, base: dict | None,
                         M: int, N: int, K: int) -> GoalResult:
    """``g`` with the two-pass route's floor in the same run: its decode pass alone + the library GEMM it calls
    (``lib``) + its epilogue alone, and the ratio to ``base`` that floor allows."""
    dec = _best(rows, op="gemm", kernel="ours_twopass_decode_only", M=M, N=N, K=K)
    epi = _best(rows, op="gemm", kernel="ours_twopass_epilogue_only", M=M, N=N, K=K)
    if not (dec and epi and lib and base):
        return g
    floor = dec["us"] + lib["us"] + epi["us"]
    return GoalResult(**{**g.__dict__, "floor": f"two-pass floor {dec['us']:.1f} + {lib['kernel']} {lib['us']:.1f} "
                                                f"+ {epi['us']:.1f} = {floor:.1f} us (at best "
                                                f"{base['us'] / floor:.2f}x)"})


SERVING_OURS = ("ours_w158a8", "ours_w158a4_fp8", "ours_w158a8_gemv", "ours_w158a4_gemv")
SERVING_BASELINES = ("cublas_fp16", "cublas_fp8_w8a8", "torch_int4_w4a16")


def serving_goals(rows: list[dict]) -> list[GoalResult]:
    """Decode-step GEMMs at batch M: ours >= 1.5x the best of cuBLAS FP16, FP8 W8A8 and INT4 W4A16
    at M <= 32 and >= 1.0x at M = 128, on every shape measured."""
    out = []
    served = [r for r in rows if r.get("regime") == "serving" and r.get("op") == "gemm"]
    for M, N, K in sorted({(r["M"], r["N"], r["K"]) for r in served}):
        target = 1.5 if M <= 32 else 1.0
        ours = _fastest(served, SERVING_OURS, M=M, N=N, K=K)
        base = _fastest(served, SERVING_BASELINES, M=M, N=N, K=K)
        g = _ratio(f"serving GEMM M={M} {N}x{K} >= {target}x best baseline", ours, base, target)
        if ours and ours.get("floor_us"):
            g = GoalResult(**{**g.__dict__, "floor": f"ours' weight bytes at the read rate {ours['floor_us']:.2f} us"
                                                     f" (best possible {base['us'] / ours['floor_us']:.2f}x)"
                              if base else ""})
        out.append(_with_decode_free(g, served, M, N, K))
    return out


def _with_decode_free(g: GoalResult, served: list[dict], M: int, N: int, K: int) -> GoalResult:
    """``g`` with the stage left out in the same run, where measured: the A8 kernel without its weight decode
    (ours' tile, and its fastest tile) and cuBLAS INT8 on the same one-byte codes."""
    same = _best(served, op="gemm", kernel="ours_int8_nodecode", M=M, N=N, K=K, exact=True)
    tiles = _best(served, op="gemm", kernel="ours_int8_nodecode_cfg", M=M, N=N, K=K, exact=True)
    ci8 = _best(served, op="gemm", kernel="cublas_int8", M=M, N=N, K=K)
    parts = [f"{what} {r['us']:.2f} us" for what, r in (("decode left out, same tile", same),
                                                        ("decode left out, fastest tile", tiles),
                                                        ("cuBLAS INT8 on the codes", ci8)) if r]
    if not parts:
        return g
    return GoalResult(**{**g.__dict__, "floor": "; ".join(p for p in (g.floor, *parts) if p)})


def _tokens(rows, label: str, B: int, ctx: int) -> dict | None:
    hit = [r for r in _find(rows, op="token_decode", kernel=f"7b_{label}", M=B, K=ctx) if r.get("us", 0) > 0]
    return min(hit, key=lambda r: r["us"]) if hit else None


#: a4.8's token rows: its 3-bit cache in nibbles or stored densely (the faster one is a4.8's)
A48_LABELS = ("a4.8", "a4.8-dense3")


def _fastest_tokens(rows, labels: Iterable[str], B: int, ctx: int) -> dict | None:
    return _fastest(rows, [f"7b_{lb}" for lb in labels], op="token_decode", M=B, K=ctx)


def _a48_labels(rows) -> tuple[str, ...]:
    """a4.8's token labels a goal may take: the dense-cache one only where the rows checked the attention
    step its decode block runs on that cache (``ours_step_kv3_dense``) against the float64 reference and
    every check passed (the token rows themselves are not checked)."""
    dense = [r for r in rows if r.get("kernel") == "ours_step_kv3_dense"]
    return A48_LABELS if dense and all(r.get("exact") for r in dense) else A48_LABELS[:1]


def token_goals(rows: list[dict], ctx: int = 2048, long_ctx: int = 32768) -> list[GoalResult]:
    """Whole 7B decode token at B = 1: a4.8 >= 1500 tok/s and >= 70 % of its bytes floor, b1.58 >= 1400,
    a4.8 >= 1.15x the strongest b1.58 (its faster KV cache) at ``ctx`` and >= 1.3x at ``long_ctx``."""
    out = []
    for label, target in (("a4.8", 1500.0), ("b1.58", 1400.0)):
        r = _fastest_tokens(rows, _a48_labels(rows) if label == "a4.8" else (label, f"{label}-kv4"), 1, ctx)
        floor = f"bytes floor {1e6 / r['floor_us']:.0f} tok/s" if r and r.get("floor_us") else ""
        out.append(_goal(f"7B token B=1 ctx={ctx} {label} >= {target:.0f} tok/s",
                         f"{r['kernel']} {1e6 / r['us']:.0f} tok/s ({r.get('variant', '')})" if r else "missing rows",
                         1e6 / r["us"] if r else None, target, floor=floor))
    r = _fastest_tokens(rows, _a48_labels(rows), 1, ctx)
    if r and r.get("floor_us"):
        out.append(_goal(f"7B token B=1 ctx={ctx} a4.8 >= 70% of its bytes floor",
                         f"{r['us']:.0f} us vs floor {r['floor_us']:.0f} us", r["floor_us"] / r["us"], 0.7,
                         floor=f"{r['bytes'] / 1e9:.2f} GB/token"))
    for c, target in ((ctx, 1.15), (long_ctx, 1.3)):
        out.append(_ratio(f"7B token B=1 ctx={c} a4.8 >= {target}x strongest b1.58",
                          _fastest_tokens(rows, _a48_labels(rows), 1, c),
                          _fastest_tokens(rows, ("b1.58", "b1.58-kv4"), 1, c), target))
    return out


def batch_token_goals(rows: list[dict], ctx: int = 2048) -> list[GoalResult]:
    """Serving regime, whole token: a4.8 and b1.58 against the best torch datapath (fp16, W8A8-FP8,
    W4A16) at each batch measured (tokens/s ratio; no target in the plan beyond not losing)."""
    out = []
    batches = sorted({r["M"] for r in _find(rows, op="token_decode", K=ctx) if r["M"] > 1})
    for B in batches:
        base = [r for r in (_tokens(rows, lb, B, ctx) for lb in ("fp16", "w8a8-fp8", "w4a16")) if r]
        best_base = min(base, key=lambda r: r["us"]) if base else None
        for label in ("a4.8", "b1.58-kv4"):
            out.append(_ratio(f"7B token B={B} ctx={ctx} {label} >= 1.0x best torch baseline",
                              _tokens(rows, label, B, ctx), best_base, 1.0))
    return out


def _same_bytes_chain(rows, ours: dict, dp: str, ctx: int) -> dict | None:
    """The fastest floor chain of ``dp`` with the launches and (within 5 %) the bytes of ``ours``;
    rows without a launch count match any count."""
    chains = [r for r in _find(rows, op="block_decode", kernel="floor_chain", precision=dp, K=ctx)
              if r.get("us", 0) > 0 and abs(r["bytes"] - ours["bytes"]) <= 0.05 * ours["bytes"]
              and (not ours.get("launches") or r.get("launches") == ours["launches"])]
    return min(chains, key=lambda r: r["us"]) if chains else None


def launch_floor_goals(rows: list[dict], ctx: int = 2048) -> list[GoalResult]:
    """The fastest fused decode block within 1.5x of its launch floor (one read kernel per launch of
    the same bytes, as many launches as the step) and how far that floor sits above the bytes floor."""
    out = []
    for label in ("b1.58", "b1.58-kv4", "a4.8"):
        dp = label.split("-")[0]
        ours = _best(rows, op="block_decode", kernel=f"block_{label}", K=ctx)
        chain = _same_bytes_chain(rows, ours, dp, ctx) if ours else None
        goal = f"7B block decode {label} <= 1.5x same-bytes-same-launches floor"
        if not (ours and chain):
            if label != "b1.58-kv4" or ours:
                out.append(_goal(goal, "missing rows", None, 1.5, higher=False))
            continue
        out.append(_goal(goal, f"{ours['us']:.1f} us ({ours.get('variant', '')}) vs chain {chain['us']:.1f} us "
                               f"({chain.get('launches', 0)} launches)", ours["us"] / chain["us"], 1.5, higher=False,
                         floor=f"bytes floor {ours.get('floor_us', 0):.1f} us"))
    return out


def persistent_goals(rows: list[dict], ctx: int = 2048) -> list[GoalResult]:
    """The persistent decode block (one launch) against the fastest per-kernel step of the same label."""
    out = []
    for label in ("b1.58-kv4", "a4.8"):
        blocks = [r for r in _find(rows, op="block_decode", kernel=f"block_{label}", K=ctx) if r.get("us", 0) > 0]
        pers = [r for r in blocks if str(r.get("variant", "")).startswith("persistent")]
        other = [r for r in blocks if not str(r.get("variant", "")).startswith("persistent")]
        if not (pers or other):
            continue
        out.append(_ratio(f"7B block decode {label} persistent >= 1.0x per-kernel step",
                          min(pers, key=lambda r: r["us"]) if pers else None,
                          min(other, key=lambda r: r["us"]) if other else None, 1.0))
    return out


def all_goals(rows: Iterable[dict]) -> list[GoalResult]:
    rows = list(rows)
    return (token_goals(rows) + decode_block_goals(rows) + launch_floor_goals(rows) + persistent_goals(rows)
            + serving_goals(rows)
            + batch_token_goals(rows) + gemv_floor_goals(rows) + attention_goals(rows) + sparse_goals(rows)
            + prefill_goals(rows))


GOAL_COLUMNS = ("goal", "measured", "floor", "value", "target", "verdict")


def goals_rows(goals: list[GoalResult]) -> list[dict]:
    """The goals as table rows (goal, measured, floor, value, target, verdict)."""
    return [{c: getattr(g, c) for c in GOAL_COLUMNS} for g in goals]


def goals_table(goals: list[GoalResult]) -> str:
    lines = [f"{'goal':56s} {'value':>7s} {'target':>7s} verdict  measured | floor"]
    for g in goals:
        lines.append(f"{g.goal[:56]:56s} {g.value:7.2f} {g.target:7.2f} {g.verdict:8s} {g.measured}"
                     + (f" | {g.floor}" if g.floor else ""))
    return "\n".join(lines)


def token_table(rows: list[dict]) -> str:
    lines = []
    for r in _find(rows, op="token_decode"):
        lines.append(f"7B decode token {r['kernel'][3:]:10s} B={r['M']:<3d} ctx={r['K']:<6d} {r['us']:9.1f} us "
                     f"{r.get('tokens_per_s', 0):9.1f} tok/s ({r.get('variant', '')})")
    return "\n".join(lines)
