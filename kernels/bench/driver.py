"""``bitsim bench-kernels`` / ``benchmarks/bench_kernels.py``: check and time every kernel in one call.

Sections run in order (``--sections`` picks a subset); after each one the outputs are written
again (a run cut short keeps what it measured):

``floors``   ceilings (copy, read, cuBLAS 8192³) and ``floor_read`` of every decode operand size
``gemv``     M = 1 GEMVs (codes given; fused norm+quantizer) vs cuBLAS FP16 and floor_read
``attention`` KV3 decode attention and the fused attention step vs SDPA
``block``    7B decoder block decode (graphs) and prefill per datapath, fused variants, torch.compile
``token``    whole 7B decode token (32 blocks + head) per datapath: tokens/s
``persistent`` the persistent decode block (one launch per block) beside the per-kernel steps, checked in a
             child process first; block and whole-token rows for b1.58 (4-bit KV) and a4.8
``energy``   board energy (NVML) of sustained decode tokens and block prefills: J/token
``serving``  decode-step GEMMs at batch 8, 32, 128 vs cuBLAS FP16, cuBLAS FP8 (W8A8), torch INT4 (W4A16)
``batch``    whole 7B decode tokens at batch 8, 32, 64 (every datapath, energy at 32) and at ctx 32k
``sparse``   sparse GEMV vs dense GEMV and the floor of its bytes
``quant``    fused RMSNorm + quantizers
``prefill``  M = 2048 / 8192 GEMMs (A8, A4-int8, A4-FP8, FP8 without the decode, the two-pass route) vs
             cuBLAS
``fp8exact`` where the FP8 accumulator stops being exact without promotion
``shard``    one GPU's share of a tensor-parallel 70B step (TP 2 and 8, batch 8-256, prefill 2048 / 6144): the GEMMs
             as cuBLAS FP8, and the layer's linear part for W8A8-FP8 and b1.58, all-reduces left out
``profile``  the 7B block prefill (fp16, b1.58, a4.8) kernel by kernel under torch.profiler, beside its wall time

Outputs under ``--out``: ``measured_trace.{parquet,csv}``, ``board_energy.{parquet,csv}``,
``bench_log.json`` (rows, notes, environment), ``tuned_configs.json`` (with ``--configs``),
``summary.txt`` (the goals table, printed last).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

import pandas as pd
import torch

import contract.kernels  # noqa: F401 - registers the board_energy table
from contract.io import atomic_path, read_json, write_text_atomic
from kernels.bench import attention, block, energy, floors, gemm, persistent, profile, quant, shard, sparse
from kernels.bench.goals import GOAL_COLUMNS, all_goals, goals_rows, goals_table, token_table
from kernels.bench.harness import MeasurementLog, env_info, scrub_paths, summary_table, write_outputs
from kernels.checks import content_checks
from kernels.configs import NO_TUNING, load_config_table

#: run order: the decode step first (its inputs: floors, GEMV and attention sweeps), then the rest
SECTIONS = ("floors", "gemv", "attention", "block", "token", "persistent", "energy", "serving", "batch", "sparse",
            "quant", "prefill", "fp8exact", "shard", "profile")
SWEEPABLE = ("gemv", "attention", "sparse", "prefill")


def build_parser(p: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = p or argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    p.add_argument("--no-check", action="store_true", help="skip the exactness checks")
    p.add_argument("--configs", nargs="?", const="all", default="",
                   help="check and time every kernels.configs.CANDIDATES entry first (all sections, or a comma "
                        "list of gemv,attention,sparse,prefill); the fastest correct config per shape serves the "
                        "rest of the run; writes tuned_configs.json")
    p.add_argument("--tuned", default=None, help="tuned_configs.json of an earlier --configs run to start from")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile fp16 baseline")
    p.add_argument("--ctx", type=int, default=2048, help="decode context of the block and token sections")
    p.add_argument("--prefill-ms", default=",".join(map(str, gemm.PREFILL_MS)),
                   help="comma-separated token counts M of the prefill section's GEMMs (e.g. 128,256,512,1024 for "
                        "the crossover of the fused kernel and the two-pass route)")
    p.add_argument("--serving-ms", default=",".join(map(str, gemm.SERVING_MS)),
                   help="comma-separated batch sizes M of the serving section's GEMMs (e.g. 128 to sweep one batch)")
    p.add_argument("--budget-s", type=float, default=450.0,
                   help="start no new section after this many seconds (the outputs so far are kept)")
    p.add_argument("--out", default=os.environ.get("OUT", "bench_out"), help="output folder")
    p.add_argument("--resume", default=None,
                   help="bench_log.json of an earlier (cut-short) run: its rows are kept and its finished sections "
                        "are not run again")
    return p


def _token_counts(text: str, flag: str = "--prefill-ms") -> tuple[int, ...]:
    """A ``--prefill-ms`` or ``--serving-ms`` value (``flag``) as token counts: whole numbers in [1, 65536],
    at least one."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts or not all(p.isdigit() and 1 <= int(p) <= 65536 for p in parts):
        raise ValueError(f"{flag} must be comma-separated whole numbers in [1, 65536], got {text!r}")
    return tuple(int(p) for p in parts)


def run_benchmark(args: argparse.Namespace) -> int:
    """Run the chosen sections; write the tables after each; print the goals table last."""
    secs = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = [s for s in secs if s not in SECTIONS]
    if bad:
        raise ValueError(f"unknown sections {bad}; known: {SECTIONS}")
    if not isinstance(args.ctx, int) or not 1 <= args.ctx <= 32768:
        raise ValueError(f"--ctx must be an int in [1, 32768], got {args.ctx!r}")
    prefill_ms = _token_counts(args.prefill_ms)
    serving_ms = _token_counts(args.serving_ms, "--serving-ms")
    tuned = load_config_table(args.tuned) if args.tuned else NO_TUNING
    sweep = set(SWEEPABLE) if args.configs == "all" else {s.strip() for s in args.configs.split(",") if s.strip()}
    if sweep - set(SWEEPABLE):
        raise ValueError(f"--configs takes sections among {SWEEPABLE}, got {sorted(sweep - set(SWEEPABLE))}")
    if not torch.cuda.is_available():
        raise ValueError("bench-kernels needs a CUDA GPU (none visible)")
    out = Path(args.out)
    log = MeasurementLog(env_info(), tuned)
    print("env:", log.env, flush=True)
    check = not args.no_check
    state: dict = {"read_gbps": 4570.0, "ctx": args.ctx}
    done = _resume(log, state, args.resume) if args.resume else set()
    t0 = time.time()
    measured_rate = "floors" in secs or "floors" in done      # else state's read rate is the default

    def ceilings_and_floors():
        state.update(floors.measure_ceilings(log))
        floors.floors_section(log)

    def blocks():
        state["best"] = block.block_section(log, ctx=args.ctx, compile_fp16=not args.no_compile,
                                            read_gbps=state["read_gbps"])

    def tokens():
        state["tokens"] = block.token_section(log, state.get("best", {}), ctx=args.ctx, read_gbps=state["read_gbps"])

    def energies():
        _energy(log, state)

    def batch_tokens():
        state.pop("tokens", None)              # the B = 1 graphs: their memory goes to the batched ones
        torch.cuda.empty_cache()
        meter, idle = _meter(log)
        block.batch_token_section(log, state.get("best", {}), ctx=args.ctx, meter=meter, idle_w=idle,
                                  read_gbps=state["read_gbps"])

    steps = {
        "floors": ceilings_and_floors,
        "gemv": lambda: gemm.gemv_section(log, check=check, configs="gemv" in sweep),
        "prefill": lambda: gemm.prefill_section(log, Ms=prefill_ms, check=check, configs="prefill" in sweep),
        "fp8exact": lambda: gemm.fp8_exactness(log),
        "quant": lambda: quant.quant_section(log, check=check),
        "sparse": lambda: sparse.sparse_section(log, check=check, configs="sparse" in sweep),
        "attention": lambda: attention.attention_section(log, check=check, configs="attention" in sweep),
        "block": blocks,
        "token": tokens,
        "persistent": lambda: persistent.persistent_section(log, ctx=args.ctx, tuned_path=args.tuned,
                                                            checkpoint=lambda: _write(log, out)),
        "energy": energies,
        "serving": lambda: gemm.serving_section(log, Ms=serving_ms, check=check, read_gbps=state["read_gbps"],
                                                checkpoint=lambda: _write(log, out)),
        "batch": batch_tokens,
        "shard": lambda: shard.shard_section(log, read_gbps=state["read_gbps"] if measured_rate else None,
                                             checkpoint=lambda: _write(log, out)),
        "profile": lambda: profile.prefill_profile_section(log),
    }
    for name in SECTIONS:
        if name not in secs or name in done:
            continue
        if time.time() - t0 > args.budget_s:
            log.note(what="section skipped (time budget)", section=name, elapsed_s=round(time.time() - t0))
            continue
        print(f"== {name} ({time.time() - t0:.0f}s)", flush=True)
        try:
            with content_checks(False):     # timed like the baselines: no content scans (they sync)
                steps[name]()
        except Exception as e:  # noqa: BLE001 - one broken section must not lose the others
            log.note(what=f"section {name} failed", error=repr(e)[-1500:], tb=traceback.format_exc()[-2500:])
        else:
            log.note(what="section done", section=name, elapsed_s=round(time.time() - t0))
        _write(log, out)
    log.note(what="done", elapsed_s=round(time.time() - t0, 1))
    _write(log, out)
    goals = all_goals(log.rows)
    short = "\n".join([summary_table(log, keep=lambda r: r["op"] in ("block_decode", "block_prefill", "ceiling")),
                       "", token_table(log.rows), "", goals_table(goals)])
    write_text_atomic("\n".join([summary_table(log), "", short]) + "\n", out / "summary.txt")
    gdf = pd.DataFrame(goals_rows(goals), columns=list(GOAL_COLUMNS))
    for k in ("gpu", "torch", "triton", "cuda", "date"):
        gdf[k] = log.env.get(k, "")
    gdf["command"] = scrub_paths(log.env.get("command", ""), out)      # as the tables record it
    with atomic_path(out / "goals.csv") as tmp:
        gdf.to_csv(tmp, index=False)
    print(f"== done in {time.time() - t0:.0f}s", flush=True)
    print(short)
    return 0


def _resume(log: MeasurementLog, state: dict, path: str) -> set[str]:
    """Rows, notes and energy rows of an earlier run into ``log``; the read rate and the fastest decode
    plans into ``state``; returns the sections that run finished."""
    doc = read_json(path, what="earlier benchmark log", max_bytes=256 * 2 ** 20)
    log.rows.extend(doc.get("rows", []))
    log.notes.extend(doc.get("notes", []))
    log.energy.extend(doc.get("energy", []))
    for n in log.notes:
        if n.get("what") == "ceilings" and "read_gbps" in n:
            state["read_gbps"] = float(n["read_gbps"])
    state["best"] = block.choices_from_rows(log.rows, state["ctx"])
    done = {n["section"] for n in log.notes if n.get("what") == "section done"}
    log.note(what="resumed", source=str(path), rows=len(log.rows), done=sorted(done))
    return done


def _write(log: MeasurementLog, out: Path) -> None:
    try:
        extra = {"board_energy": (pd.DataFrame(log.energy), "board_energy")} if log.energy else {}
        write_outputs(log, out, extra)
    except Exception as e:  # noqa: BLE001 - keep measuring; the JSON log still has everything
        print("write_outputs failed:", repr(e)[-500:], flush=True)


def _meter(log: MeasurementLog):
    """The board meter and the idle power, or ``(None, 0.0)`` where NVML is missing."""
    try:
        meter = energy.BoardMeter()
        return meter, energy.measure_idle(meter)
    except Exception as e:  # noqa: BLE001 - energy is optional; the timings stand
        log.note(what="no board meter", error=repr(e)[-300:])
        return None, 0.0


def _energy(log: MeasurementLog, state: dict) -> None:
    """Sustained 7B decode tokens and block prefills per datapath, with the board's energy counter."""
    meter = energy.BoardMeter()
    idle = energy.measure_idle(meter)
    log.note(what="idle board power", watts=round(idle, 1), counter=meter.has_counter, **meter.clocks())
    for dp, (replay, _keep) in state.get("tokens", {}).items():
        energy.sustained(log, meter, datapath=dp, phase="decode", scope="7b_token", step=replay, tokens_per_step=1,
                         idle_w=idle, layers_per_step=block.LAYERS,
                         note=f"32 blocks + norm + FP16 LM head, B=1, ctx {state.get('ctx', 2048)}, CUDA graph")
    for dp, choice in state.get("best", {}).items():
        if choice.prefill is not None:
            energy.sustained(log, meter, datapath=dp, phase="prefill", scope="block", step=choice.prefill,
                             tokens_per_step=2048, idle_w=idle, layers_per_step=1,
                             note="one 7B decoder block, 2048-token prefill, eager")


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
