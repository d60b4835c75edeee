"""Simulator speed: one 7B a4.8 decode token and one 7B 2048-token prefill.

Targets: decode (32 layers, ctx 2048) <= 1 s and prefill <= 10 s of
simulation on one core; cost linear in layers.  Traces come from
``model.trace.build_trace`` (their build time is not counted) or from stored
op-trace tables given with ``--decode-trace`` / ``--prefill-trace``.

    .venv/bin/python benchmarks/bench_sim.py [--accel a4.8] [--repeat 3]     (or: make bench-sim)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

import sim  # noqa: E402
from contract import read_table  # noqa: E402
from model.trace import build_trace  # noqa: E402


def _trace(path: str | None, phase: str) -> pd.DataFrame:
    if path:
        return read_table(path, schema="op_trace")
    return build_trace("7b", "a4.8", phase=phase, context=2048, batch=1, seed=0,
                       prefill_tokens=2048 if phase == "prefill" else None)


def _time(trace: pd.DataFrame, accel: str, repeat: int) -> tuple[float, sim.SimResult]:
    best, res = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = sim.simulate(trace, accel)
        best = min(best, time.perf_counter() - t0)
    return best, res


def _first_layers(trace: pd.DataFrame, n: int) -> pd.DataFrame:
    out = trace[trace["layer"] < n].reset_index(drop=True)
    out.attrs = dict(trace.attrs)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accel", default="a4.8")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--decode-trace")
    ap.add_argument("--prefill-trace")
    args = ap.parse_args(argv)

    for phase, path, target in (("decode", args.decode_trace, 1.0), ("prefill", args.prefill_trace, 10.0)):
        t0 = time.perf_counter()
        tr = _trace(path, phase)
        built = time.perf_counter() - t0
        secs, res = _time(tr, args.accel, args.repeat)
        s = res.summary.to_dict()
        ok = "OK" if secs <= target else "TOO SLOW"
        print(f"7B a4.8 {phase:7s} on {args.accel}: {len(tr)} ops, simulated in {secs:.3f} s "
              f"(target <= {target:g} s: {ok}); trace built in {built:.1f} s")
        print(f"    -> {s.latency_s * 1e3:.3f} ms, {s.tokens_per_s:.1f} tok/s, "
              f"{s.energy_j_per_token * 1e3:.3f} mJ/token")
        layers = sorted(set(int(x) for x in tr["layer"] if x >= 0))
        n_all = len(layers)
        row = []
        for n in (n_all // 4, n_all // 2, n_all):
            secs_n, _ = _time(_first_layers(tr, n), args.accel, args.repeat)
            row.append(f"{n} layers {secs_n:.3f} s")
        print("    scaling: " + ", ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
