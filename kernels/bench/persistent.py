"""The persistent decode block (``kernels.persistent``) beside the per-kernel decode steps, and the
whole 7B token with each datapath's fastest step (b1.58 with a 4-bit KV cache, and a4.8).

A persistent kernel whose programs are not all resident, or whose barrier is wrong, never
returns; so the section first runs every persistent variant once in a child process with a time
limit (``python -m kernels.bench.persistent --check``) and times only the variants that came
back exact (bit for bit against ``decode_fused`` of ``kernels.persistent.reference_plan``: the same
plan per kernel with the persistent step's attention split and warps, twice: the second launch
checks the barrier's reset; on a mismatch the check names the first intermediate row that differs;
the staged launch is checked on the CPU, where each variant does not cost another minute of
compiling).  Rows: ``block_decode`` per plan (graphs over
replicas, as ``kernels.bench.block``); the diagnostic floors of the 1-program x 8-warp persistent plan
(:data:`FLOORS`: the same kernel with parts of the step left out; rows of ``op`` "floor", kernel
``persistent_floor``, ``exact=False``, checked only for coming back); the floors of the same run
(one ``floor_read`` of the block's bytes in one launch, and chains of 9 launches), and
``token_decode`` rows.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import torch

from kernels.bench.block import (
    LLAMA7B,
    DecodeChoice,
    _chains,
    _head,
    _label_parts,
    _plan_name,
    _rel,
    _token_case,
    block_bytes,
)
from kernels.bench.floors import measure_read_rate
from kernels.bench.harness import MeasurementLog, time_graph
from kernels.block import DecodePlan, KernelBlock
from kernels.checks import content_checks
from kernels.configs import NO_TUNING, ConfigTable, load_config_table
from kernels.floor import floor_read
from kernels.persistent import reference_plan

LABELS = ("b1.58-kv4", "a4.8")
#: per label: the fastest per-kernel plan (the committed measurements), then the persistent ones: 8 warps
#: per SM as 2 programs of 4 or 1 of 8 (4-warp programs hold up to 255 registers, two fit an SM)
PLANS = {
    "b1.58-kv4": (DecodePlan(prologue="separate", pdl=True),
                  DecodePlan(persistent=True, programs_per_sm=2),
                  DecodePlan(persistent=True, warps=8)),
    "a4.8": (DecodePlan(prologue="separate", wo="dense", wdown="dense", pdl=True),
             DecodePlan(wo="dense", wdown="dense", persistent=True, programs_per_sm=2),
             DecodePlan(wo="dense", wdown="dense", persistent=True, warps=8),
             DecodePlan(wo="sparse", wdown="sparse", persistent=True, programs_per_sm=2)),
}
#: diagnostic floors of the faster persistent plan (1 program x 8 warps per SM): (what is left out,
#: ``DecodePlan.persistent_skip``, note).  Not the block's output, never a result: each one's time
#: is what the parts left in cost, so the differences say where the exact step's time goes.
FLOORS = (
    ("barriers-only", ("quant", "attention", "gemv"),
     "floor, not exact: the launch and its 4 grid barriers, every stage's work left out"),
    ("gemv-only", ("quant", "attention"),
     "floor, not exact: weight streaming + barriers; quantizer/norm passes and attention left out"),
    ("no-quant", ("quant",),
     "floor, not exact: the per-program quantizer/norm passes left out (the GEMVs read fixed codes)"),
    ("no-attention", ("attention",),
     "floor, not exact: the attention stage (RoPE, cache write, attention, combine) left out"),
)
#: the check child's limit: the exact plans, then the floors (about 10-15 s of compiling each)
CHECK_TIMEOUT_S = 360


def floor_plans(label: str) -> list[tuple[str, DecodePlan, str]]:
    """``(variant, plan, note)`` of every diagnostic floor of ``label``'s 1-program x 8-warp persistent plan."""
    base = next(p for p in PLANS[label] if p.persistent and p.programs_per_sm == 1 and p.warps == 8)
    dp, _ = _label_parts(label)
    return [(f"{_plan_name(base, dp)}_floor_{name}", replace(base, persistent_skip=skip), note)
            for name, skip, note in FLOORS]


def _block(label: str, ctx: int, tuned: ConfigTable, seed: int = 0) -> KernelBlock:
    dp, kv = _label_parts(label)
    blk = KernelBlock(dp, 1, ctx + 1, seed=seed, tuned=tuned, **kv)
    blk.record = False
    blk.fill_cache(ctx - 1)
    return blk


def _first_difference(got: dict, ref: dict) -> str:
    """The first intermediate row (in stage order) where two runs of a block step differ, or ""."""
    for name in ("qkv", "a", "h", "gu", "out"):
        if name in got and name in ref and not torch.equal(got[name].reshape(-1), ref[name].reshape(-1)):
            return name
    return ""


def check_plans(ctx: int, tuned: ConfigTable = NO_TUNING) -> dict[str, dict[str, object]]:
    """Every persistent plan twice on the 7B block, against the per-kernel step with the same attention
    split and warps (``reference_plan``): ``{label/plan: {exact_fused, repeat, rel, first_diff,
    rel_default}}`` (``first_diff``: the first intermediate row that differs; ``rel_default``: against
    the per-kernel step with its own attention config), printed as it goes."""
    out: dict[str, dict[str, object]] = {}
    g = torch.Generator(device="cuda").manual_seed(11)
    x = torch.randn(1, 1, LLAMA7B.d_model, device="cuda", dtype=torch.float16, generator=g)
    n_sms = torch.cuda.get_device_properties(0).multi_processor_count
    for label in LABELS:
        blk = _block(label, ctx, tuned)
        pos = ctx - 1
        dp = blk.dp
        for plan in (p for p in PLANS[label] if p.persistent):
            key = f"{label}/{_plan_name(plan, dp)}"
            try:
                inter_ref: dict = {}
                inter: dict = {}
                ref_plan = reference_plan(plan, n_sms * plan.programs_per_sm, LLAMA7B.n_heads)
                ref = blk.decode_fused(x, pos, ref_plan, buffers=inter_ref).clone()
                inter_ref = {k: v.clone() for k, v in inter_ref.items()}
                default = blk.decode_fused(x, pos, replace(plan, persistent=False)).clone()
                y = blk.decode_fused(x, pos, plan, buffers=inter).clone()
                torch.cuda.synchronize()
                y2 = blk.decode_fused(x, pos, plan).clone()          # a second launch: the barrier reset works
                torch.cuda.synchronize()
                out[key] = dict(exact_fused=bool(torch.equal(y, ref)), repeat=bool(torch.equal(y2, ref)),
                                rel=_rel(y, ref, x), first_diff=_first_difference(inter, inter_ref),
                                rel_default=_rel(y, default, x), reference=str(dict(ref_plan.attention)))
            except Exception as e:  # noqa: BLE001 - report every plan
                out[key] = dict(error=repr(e)[-600:])
            print("RESULT " + json.dumps(out), flush=True)     # so far: a later plan may not come back
    for label in LABELS:        # the floors last: one that does not come back loses no exact plan
        blk = _block(label, ctx, tuned)
        for variant, plan, _ in floor_plans(label):
            out[f"{label}/{variant}"] = _check_floor(blk, x, ctx - 1, plan)
            print("RESULT " + json.dumps(out), flush=True)
    return out


def _check_floor(blk: KernelBlock, x: torch.Tensor, pos: int, plan: DecodePlan) -> dict[str, object]:
    """A floor plan launched twice (its barriers release and reset): ``{returned, finite}`` or ``{error}``."""
    try:
        blk.decode_fused(x, pos, plan)
        torch.cuda.synchronize()
        y = blk.decode_fused(x, pos, plan).clone()
        torch.cuda.synchronize()
        return dict(returned=True, finite=bool(torch.isfinite(y).all()))
    except Exception as e:  # noqa: BLE001 - report every plan
        return dict(error=repr(e)[-600:])


def _checked(log: MeasurementLog, ctx: int, tuned_path: str | None) -> dict[str, dict[str, object]]:
    """:func:`check_plans` in a child process with a time limit (a hung kernel cannot stop the run)."""
    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "kernels.bench.persistent", "--check", "--ctx", str(ctx)]
    if tuned_path:
        cmd += ["--tuned", str(Path(tuned_path).resolve())]
    try:
        p = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)
        stdout, stderr, rc = p.stdout, p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:          # the plans checked before the limit still count
        stdout = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        rc = None
        log.note(what="persistent check timed out", timeout_s=CHECK_TIMEOUT_S)
    lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        log.note(what="persistent check failed", rc=rc, stdout=stdout[-1500:], stderr=stderr[-2500:])
        return {}
    res = json.loads(lines[-1][len("RESULT "):])
    log.note(what="persistent check", rc=rc, **res)
    return res


def _floor_one_launch(log: MeasurementLog, label: str, nbytes: float, ctx: int, R: int = 4) -> None:
    """One ``floor_read`` of the block's bytes in a single launch: the bytes floor measured."""
    dp, _ = _label_parts(label)
    bufs = [torch.empty(int(nbytes) // 4, device="cuda", dtype=torch.int32).random_() for _ in range(R)]
    t = time_graph([lambda b=b: floor_read(b) for b in bufs])
    log.add(op="block_decode", kernel="floor_chain", impl="ours", precision=dp, M=1, N=LLAMA7B.d_model, K=ctx,
            timing=t, bytes=float(nbytes), ops=0.0, exact=True, cuda_graph=True, copies=R, launches=1,
            variant=f"floor_1launch_{label}", note="one floor_read of the block's decode bytes, one launch")
    del bufs


def _time_plans(log: MeasurementLog, label: str, ctx: int, checks: dict, read_gbps: float,
                R: int = 4) -> DecodeChoice | None:
    """Rows of every plan of ``label`` (persistent ones only where the check passed); the fastest exact one."""
    dp, kv = _label_parts(label)
    reps = [_block(label, ctx, log.tuned)]
    reps += [reps[0].replica() for _ in range(1, R)]
    for b in reps[1:]:
        b.fill_cache(ctx - 1)
    pos = ctx - 1
    g = torch.Generator(device="cuda").manual_seed(11)
    x = torch.randn(1, 1, LLAMA7B.d_model, device="cuda", dtype=torch.float16, generator=g)
    y_ref = reps[0].forward(x, pos)
    by = block_bytes(dp, ctx, **kv)
    floor_us = (by["weights"] + by["kv"]) / read_gbps / 1e3
    _floor_one_launch(log, label, by["weights"] + by["kv"], ctx)
    best: DecodeChoice | None = None
    for plan in PLANS[label]:
        name = _plan_name(plan, dp)
        chk = checks.get(f"{label}/{name}", {}) if plan.persistent else {}
        if plan.persistent and not (chk.get("exact_fused") and chk.get("repeat")):
            log.note(what="persistent plan not timed (check)", label=label, plan=name, check=chk)
            continue
        try:
            y = reps[0].decode_fused(x, pos, plan)
            rel = _rel(y, y_ref, x)
            t = time_graph([lambda b=b: b.decode_fused(x, pos, plan) for b in reps])
            log.add(op="block_decode", kernel=f"block_{label}", impl="ours", precision=dp, M=1, N=LLAMA7B.d_model,
                    K=ctx, timing=t, bytes=by["weights"] + by["kv"], ops=0.0, exact=bool(chk.get("exact_fused", False)),
                    cuda_graph=True, copies=R, variant=name, launches=reps[0].launches_fused(plan), rel_err=rel,
                    plan=str(asdict(plan)), floor_us=floor_us, kv_bits=kv.get("kv_bits", 3))
            if rel < 5e-2 and (best is None or t.median < best.us):
                best = DecodeChoice(datapath=dp, variant=name, us=t.median, plan=plan)
        except Exception as e:  # noqa: BLE001 - one plan failing must not lose the others
            log.note(what="plan failed", label=label, plan=name, error=repr(e)[-800:],
                     tb=traceback.format_exc()[-1500:])
    _time_floors(log, label, ctx, checks, reps, x, by["weights"] + by["kv"], floor_us)
    del reps
    torch.cuda.empty_cache()
    return best


def _time_floors(log: MeasurementLog, label: str, ctx: int, checks: dict, reps: list[KernelBlock],
                 x: torch.Tensor, nbytes: float, floor_us: float) -> None:
    """Rows of the diagnostic floors of ``label`` that came back from the check (``exact=False``)."""
    dp, kv = _label_parts(label)
    pos = ctx - 1
    for variant, plan, note in floor_plans(label):
        chk = checks.get(f"{label}/{variant}", {})
        if not chk.get("returned"):
            log.note(what="persistent floor not timed (check)", label=label, plan=variant, check=chk)
            continue
        try:
            t = time_graph([lambda b=b: b.decode_fused(x, pos, plan) for b in reps])
            # op "floor": no goal, report or simulator comparison takes these rows for the block's time
            log.add(op="floor", kernel="persistent_floor", impl="ours", precision=dp, M=1, N=LLAMA7B.d_model,
                    K=ctx, timing=t, bytes=nbytes, ops=0.0, exact=False, cuda_graph=True, copies=len(reps),
                    variant=variant, launches=1, plan=str(asdict(plan)), floor_us=floor_us,
                    kv_bits=kv.get("kv_bits", 3), note=note)
        except Exception as e:  # noqa: BLE001 - one floor failing must not lose the others
            log.note(what="floor failed", label=label, plan=variant, error=repr(e)[-800:],
                     tb=traceback.format_exc()[-1500:])


def persistent_section(log: MeasurementLog, ctx: int = 2048, tokens: bool = True,
                       tuned_path: str | None = None,
                       checkpoint: Callable[[], None] = lambda: None) -> dict[str, DecodeChoice]:
    """Check, then time the block plans and (``tokens``) the whole 7B token with each label's fastest plan,
    and with its fastest per-kernel plan.  ``tuned_path``: the config table ``log.tuned`` came from;
    ``checkpoint`` writes the outputs so far (called after each step: a run cut short keeps them)."""
    read_gbps = measure_read_rate(log)
    checks = _checked(log, ctx, tuned_path)
    checkpoint()
    best: dict[str, DecodeChoice] = {}
    with content_checks(False):
        for label in LABELS:
            choice = _time_plans(log, label, ctx, checks, read_gbps)
            if choice is not None:
                best[label] = choice
                log.note(what="decode choice", datapath=label, variant=choice.variant, us=choice.us)
            checkpoint()
        _chains(log, ctx)
        if tokens:
            head, nw = _head(LLAMA7B.d_model)
            for label, choice in best.items():
                alts = [choice]
                if choice.plan is not None and choice.plan.persistent:      # the per-kernel step beside it
                    alts.append(DecodeChoice(datapath=choice.datapath, variant=_plan_name(PLANS[label][0],
                                             choice.datapath), us=0.0, plan=PLANS[label][0]))
                for c in alts:
                    try:
                        _token_case(log, label, c, 1, ctx, head, nw, read_gbps)
                    except Exception as e:  # noqa: BLE001
                        log.note(what=f"7b token {label} failed", variant=c.variant, error=repr(e)[-800:])
                    torch.cuda.empty_cache()
                    checkpoint()
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="check every persistent decode plan once (child of the benchmark)")
    p.add_argument("--check", action="store_true", required=True)
    p.add_argument("--ctx", type=int, default=2048)
    p.add_argument("--tuned", default=None)
    args = p.parse_args(argv)
    check_plans(args.ctx, load_config_table(args.tuned) if args.tuned else NO_TUNING)
    return 0


if __name__ == "__main__":
    sys.exit(main())
