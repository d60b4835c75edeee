"""GPU check + benchmark of every kernel in ``kernels/`` (not a test: needs CUDA).

One call checks (bit-exact against ``model.quant`` on full LLaMA-7B shapes)
and times, side by side in the same process, our kernels and the baselines
(cuBLAS FP16 / INT8 / FP8 through torch, gemlite's ``A8W158_INT_dynamic``,
torch SDPA), plus the ceilings (device copy bandwidth, 8192³ GEMMs).  Times
are ``triton.testing.do_bench`` medians (L2 flushed before every run); M=1
ops are also timed inside CUDA graphs that rotate over enough weight copies
to overflow L2.  Results: a ``measured_trace`` table (Parquet + CSV), a JSON
log, and a short table printed last.  With ``--configs`` every candidate of
``kernels.configs.CANDIDATES`` is checked and timed per shape before that
shape's default rows; the fastest correct one is used for the rest of the run
and written to ``tuned_configs.json`` (the form of ``kernels.configs.TUNED``).

Entry points: ``bitsim bench-kernels`` and ``benchmarks/bench_kernels.py``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path

import torch

from kernels.validate import finite_checks

SHAPES_7B = ((4096, 4096), (11008, 4096), (4096, 11008), (12288, 4096))   # N x K of LLaMA-7B linears
MS = (1, 16, 128, 2048, 8192)


class Recorder:
    """Collects measured_trace rows and the free-form log."""

    def __init__(self, env: dict):
        self.env = env
        self.rows: list[dict] = []
        self.log: list[dict] = []
        self.tuned: dict[str, dict[str, dict]] = {}

    def add(self, op: str, kernel: str, impl: str, precision: str, M: int, N: int, K: int, us: float,
            bytes_: float, ops: float, exact: bool, sparsity: float = 0.0, cuda_graph: bool = False,
            **extra) -> dict:
        row = dict(op=op, kernel=kernel, impl=impl, precision=precision, M=int(M), N=int(N), K=int(K),
                   sparsity=float(sparsity), cuda_graph=bool(cuda_graph), us=float(us), bytes=float(bytes_),
                   ops=float(ops), gbps=float(bytes_ / us / 1e3) if us > 0 else float("nan"),
                   tops=float(ops / us / 1e6) if us > 0 else float("nan"), exact=bool(exact),
                   gpu=self.env["gpu"], torch=self.env["torch"], triton=self.env["triton"],
                   cuda=self.env["cuda"], date=self.env["date"])
        row.update(extra)
        self.rows.append(row)
        print(f"  {op:16s} {kernel:22s} {precision:12s} M={M:<5d} N={N:<6d} K={K:<6d} "
              f"{us:9.2f} us {row['gbps']:8.1f} GB/s {row['tops']:8.1f} TOPS exact={exact}", flush=True)
        return row

    def pick(self, kernel: str, key: str, results: list) -> None:
        """Keep the fastest correct ``(us, ok, config)`` of a sweep as ``tuned[kernel][key]``.

        The winner also goes into ``kernels.configs.TUNED`` for the rest of this process, so the
        default-config rows timed after a sweep (and the block section) run the measured best.
        """
        from kernels import configs

        good = [r for r in results if r[1]]
        if good:
            us, _, cfg = min(good, key=lambda r: r[0])
            self.tuned.setdefault(kernel, {})[key] = cfg
            configs.TUNED[kernel][key] = dict(cfg)      # later default-config calls of this run use it
            self.note(what="best config", kernel=kernel, key=key, us=us, config=cfg)

    def note(self, **kv) -> None:
        self.log.append(kv)
        print("  note:", json.dumps(kv, default=str), flush=True)


def env_info() -> dict:
    import triton

    p = torch.cuda.get_device_properties(0)
    return dict(gpu=p.name, sms=p.multi_processor_count, torch=torch.__version__, triton=triton.__version__,
                cuda=str(torch.version.cuda), date=datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds"), command=" ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
                l2_mb=getattr(p, "L2_cache_size", 0) / 2 ** 20)


def bench_us(fn, reps_ms: int = 100) -> float:
    """Median time in µs of ``fn()`` (do_bench: L2 flushed before each run)."""
    import triton.testing

    return float(triton.testing.do_bench(fn, warmup=25, rep=reps_ms, return_mode="median")) * 1e3


def bench_graph_us(fns: list, reps_ms: int = 100) -> float:
    """Capture ``fns`` (one op on rotating inputs) in one CUDA graph; µs per op."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for f in fns:
            f()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for f in fns:
            f()
    torch.cuda.synchronize()
    return bench_us(g.replay, reps_ms) / len(fns)


def n_copies(bytes_one: float, target: float = 160e6, cap: int = 16) -> int:
    """How many input copies to rotate so one graph replay overflows the 50 MB L2."""
    return int(max(1, min(cap, math.ceil(target / max(bytes_one, 1.0)))))


# ----------------------------------------------------------------------------- ceilings
def measure_ceilings(rec: Recorder) -> dict:
    dev = "cuda"
    n = 1 << 28                                              # 256 Mi fp32 = 1 GiB
    a = torch.empty(n, device=dev, dtype=torch.float32).uniform_()
    b = torch.empty_like(a)
    us = bench_us(lambda: b.copy_(a))
    copy_gbps = 2 * a.numel() * 4 / us / 1e3
    rec.add("ceiling", "copy", "baseline", "fp32", 1, n, 1, us, 2 * n * 4, 0.0, True)
    del a, b
    S = 8192
    out = {"copy_gbps": copy_gbps}
    x = torch.randn(S, S, device=dev, dtype=torch.float16)
    w = torch.randn(S, S, device=dev, dtype=torch.float16)
    us = bench_us(lambda: x @ w.t())
    out["fp16_tflops"] = 2 * S ** 3 / us / 1e6
    rec.add("ceiling", "cublas_fp16", "baseline", "fp16", S, S, S, us, 3 * S * S * 2, 2 * S ** 3, True)
    xi = torch.randint(-127, 128, (S, S), device=dev, dtype=torch.int8)
    wi = torch.randint(-127, 128, (S, S), device=dev, dtype=torch.int8)
    us = bench_us(lambda: torch._int_mm(xi, wi.t()))
    out["int8_tops"] = 2 * S ** 3 / us / 1e6
    rec.add("ceiling", "cublas_int8", "baseline", "int8", S, S, S, us, 2 * S * S + 4 * S * S, 2 * S ** 3, True)
    xf, wf = x.to(torch.float8_e4m3fn), w.to(torch.float8_e4m3fn)
    one = torch.ones((), device=dev)
    us = bench_us(lambda: torch._scaled_mm(xf, wf.t(), scale_a=one, scale_b=one, out_dtype=torch.float16))
    out["fp8_tflops"] = 2 * S ** 3 / us / 1e6
    rec.add("ceiling", "cublas_fp8", "baseline", "fp8", S, S, S, us, 2 * S * S + 2 * S * S, 2 * S ** 3, True)
    del x, w, xi, wi, xf, wf
    torch.cuda.empty_cache()
    return out


# ----------------------------------------------------------------------------- GEMM / GEMV
def _ternary_weight(N: int, K: int, seed: int):
    from model import quant as Q

    g = torch.Generator(device="cuda").manual_seed(seed)
    return Q.quantize_ternary(torch.randn(N, K, device="cuda", generator=g))


def _acts(M: int, K: int, seed: int):
    g = torch.Generator(device="cuda").manual_seed(seed)
    return torch.randn(M, K, device="cuda", generator=g)


def gemm_section(rec: Recorder, shapes, Ms, check: bool, configs: bool, graphs: bool) -> None:
    from model import quant as Q
    from kernels.packing import pack_ternary
    from kernels.ternary_gemm import w158_matmul

    for (N, K) in shapes:
        wq = _ternary_weight(N, K, seed=N + K)
        wp = pack_ternary(wq.codes)
        ws = wq.scale.reshape(1)
        w16 = (wq.codes.to(torch.float16) * wq.scale.to(torch.float16)).contiguous()
        wi8 = wq.codes.contiguous()                                   # [N, K] row-major; pass .t()
        wf8 = wq.codes.to(torch.float8_e4m3fn).contiguous()
        packed_bytes = wp.numel() * 4
        for M in Ms:
            try:
                _gemm_one(rec, Q, w158_matmul, wq, wp, ws, w16, wi8, wf8, packed_bytes, M, N, K, check, configs,
                          graphs)
            except Exception as e:  # noqa: BLE001 - one failing shape must not lose the others
                rec.note(what="gemm shape failed", M=M, N=N, K=K, error=repr(e)[-800:],
                         tb=traceback.format_exc()[-1200:])
        del wq, wp, w16, wi8, wf8
        torch.cuda.empty_cache()


def _gemm_one(rec, Q, w158_matmul, wq, wp, ws, w16, wi8, wf8, packed_bytes, M, N, K, check, configs, graphs):
    """Check and time one (M, N, K): ours next to cuBLAS FP16 / INT8 / FP8."""
    x = _acts(M, K, seed=M)
    q8 = Q.quantize_int8(x)
    q4 = Q.quantize_int4(x)
    x4f8 = q4.codes.to(torch.float8_e4m3fn)
    sweep = configs and M in (1, 128, 2048, 8192)
    ref8 = ref4 = None
    if check or sweep:                             # fp64 references, computed once per shape
        ref8, ref4 = Q.qlinear(q8, wq), Q.qlinear(q4, wq)
    if sweep:                                      # first: the rows below then run the winner
        _config_sweep(rec, ref8, ref4, q8, q4, x4f8, wp, ws, M, N, K, packed_bytes)
    ops = 2.0 * M * N * K
    out_b = 2.0 * M * N
    exact8 = exact4 = exact4f = True
    if check:
        exact8 = torch.equal(w158_matmul(q8.codes, q8.scale, wp, ws, N), ref8)
        exact4 = torch.equal(w158_matmul(q4.codes, q4.scale, wp, ws, N), ref4)
        exact4f = torch.equal(w158_matmul(x4f8, q4.scale, wp, ws, N), ref4)
    del ref8, ref4
    op = "gemv" if M <= 8 else "gemm"
    us = bench_us(lambda: w158_matmul(q8.codes, q8.scale, wp, ws, N))
    rec.add(op, "ours_w158a8", "ours", "w1.58a8", M, N, K, us, packed_bytes + M * K + out_b + 4 * M,
            ops, exact8)
    us = bench_us(lambda: w158_matmul(q4.codes, q4.scale, wp, ws, N))
    rec.add(op, "ours_w158a4_int8", "ours", "w1.58a4-int8", M, N, K, us,
            packed_bytes + M * K + out_b + 4 * M, ops, exact4)
    if M > 8:
        us = bench_us(lambda: w158_matmul(x4f8, q4.scale, wp, ws, N))
        rec.add(op, "ours_w158a4_fp8", "ours", "w1.58a4-fp8", M, N, K, us,
                packed_bytes + M * K + out_b + 4 * M, ops, exact4f)
    x16 = x.to(torch.float16)
    us = bench_us(lambda: x16 @ w16.t())
    rec.add(op, "cublas_fp16", "baseline", "fp16", M, N, K, us, 2.0 * N * K + 2 * M * K + out_b, ops, False)
    if M >= 17:
        us = bench_us(lambda: torch._int_mm(q8.codes, wi8.t()))
        rec.add(op, "cublas_int8", "baseline", "int8", M, N, K, us, 1.0 * N * K + M * K + 4 * M * N, ops, False)
    if M >= 16:
        one = torch.ones((), device="cuda")
        try:
            us = bench_us(lambda: torch._scaled_mm(x4f8, wf8.t(), scale_a=one, scale_b=one,
                                                   out_dtype=torch.float16))
            rec.add(op, "cublas_fp8", "baseline", "fp8", M, N, K, us, 1.0 * N * K + M * K + out_b, ops, False)
        except Exception as e:  # noqa: BLE001 - record and go on
            rec.note(what="cublas_fp8 failed", M=M, N=N, K=K, error=repr(e)[:200])
    if graphs and M == 1:
        _graph_m1(rec, wq, q8, N, K)


def _graph_m1(rec, wq, q8, N, K):
    from kernels.packing import pack_ternary
    from kernels.ternary_gemm import w158_matmul

    wp = pack_ternary(wq.codes)
    ws = wq.scale.reshape(1)
    c = n_copies(wp.numel() * 4)
    wps = [wp.clone() for _ in range(c)]
    fns = [lambda i=i: w158_matmul(q8.codes, q8.scale, wps[i], ws, N) for i in range(c)]
    us = bench_graph_us(fns)
    rec.add("gemv", "ours_w158a8", "ours", "w1.58a8", 1, N, K, us, wp.numel() * 4 + K + 2 * N, 2.0 * N * K,
            True, cuda_graph=True, copies=c)
    w16 = (wq.codes.to(torch.float16) * wq.scale.to(torch.float16))
    c16 = n_copies(w16.numel() * 2)
    w16s = [w16.clone() for _ in range(c16)]
    x16 = torch.randn(1, K, device="cuda", dtype=torch.float16)
    us = bench_graph_us([lambda i=i: x16 @ w16s[i].t() for i in range(c16)])
    rec.add("gemv", "cublas_fp16", "baseline", "fp16", 1, N, K, us, 2.0 * N * K + 2 * K + 2 * N, 2.0 * N * K,
            False, cuda_graph=True, copies=c16)
    del wps, w16s


def _config_sweep(rec, ref8, ref4, q8, q4, x4f8, wp, ws, M, N, K, packed_bytes):
    """Time every ``kernels.configs.CANDIDATES`` entry (checked bit-exact against the int8 / int4
    references ``ref8``, ``ref4`` first); keep the fastest correct one per shape."""
    from kernels.configs import CANDIDATES, gemm_m_bucket, shape_key
    from kernels.ternary_gemm import w158_matmul

    ops = 2.0 * M * N * K
    if M == 1:
        ref = ref8
        c = n_copies(packed_bytes)
        wps = [wp.clone() for _ in range(c)]
        results = []
        for cfg in CANDIDATES["gemv"]:
            try:
                exact = bool(torch.equal(w158_matmul(q8.codes, q8.scale, wp, ws, N, config=cfg), ref))
                us = bench_graph_us([lambda i=i: w158_matmul(q8.codes, q8.scale, wps[i], ws, N, config=cfg)
                                     for i in range(c)])
                rec.add("gemv", "ours_w158a8_cfg", "ours", "w1.58a8", M, N, K, us, packed_bytes + K + 2 * N,
                        ops, exact, config=json.dumps(cfg), cuda_graph=True, copies=c)
                results.append((us, exact, cfg))
            except Exception as e:  # noqa: BLE001
                rec.note(what="gemv config failed", cfg=cfg, error=repr(e)[-300:])
        rec.pick("gemv", shape_key(N=N, K=K), results)
        del wps
        return
    for fp8, xx, xs, ref in ((False, q8.codes, q8.scale, ref8), (True, x4f8, q4.scale, ref4)):
        results = []
        for cfg in CANDIDATES["gemm"]:
            try:
                exact = bool(torch.equal(w158_matmul(xx, xs, wp, ws, N, config=cfg), ref))
                us = bench_us(lambda: w158_matmul(xx, xs, wp, ws, N, config=cfg))
                rec.add("gemm", "ours_w158a4_fp8_cfg" if fp8 else "ours_w158a8_cfg", "ours",
                        "w1.58a4-fp8" if fp8 else "w1.58a8", M, N, K, us, packed_bytes + M * K + 2 * M * N,
                        ops, exact, config=json.dumps(cfg))
                results.append((us, exact, cfg))
            except Exception as e:  # noqa: BLE001
                rec.note(what="gemm config failed", fp8=fp8, cfg=cfg, error=repr(e)[-600:])
        rec.pick("gemm", shape_key(M=gemm_m_bucket(M), N=N, K=K, prec="fp8" if fp8 else "int8"), results)


def _gemlite_layer(rec, wq, N, K):
    try:
        import gemlite
        from gemlite.helper import A8W158_INT_dynamic

        lin = A8W158_INT_dynamic(device="cuda:0", dtype=torch.float16).from_weights(
            weight=wq.codes.to(torch.float16), weight_scale=wq.scale)
        rec.note(what="gemlite loaded", version=getattr(gemlite, "__version__", "?"), N=N, K=K)
        return lin
    except Exception as e:  # noqa: BLE001
        rec.note(what="gemlite unavailable", error=repr(e)[:300], tb=traceback.format_exc()[-600:])
        return None


def _bench_gemlite(rec, lin, x16, M, N, K, packed_bytes, ops, graph):
    try:
        us = bench_us(lambda: lin(x16))
        rec.add("gemv" if M <= 8 else "gemm", "gemlite_a8w158", "baseline", "w1.58a8", M, N, K, us,
                packed_bytes + 2 * M * K + 2 * M * N, ops, False)
        if graph:
            us = bench_graph_us([lambda: lin(x16)] * 4)
            rec.add("gemv", "gemlite_a8w158", "baseline", "w1.58a8", M, N, K, us,
                    packed_bytes + 2 * M * K + 2 * M * N, ops, False, cuda_graph=True)
    except Exception as e:  # noqa: BLE001
        rec.note(what="gemlite failed", M=M, N=N, K=K, error=repr(e)[:300])


def gemlite_section(rec: Recorder, graphs: bool, shapes=((11008, 4096),), Ms=(1, 16, 2048)) -> None:
    """gemlite's A8W158_INT_dynamic on the anchor shape (its whole call: activation quant + GEMM)."""
    for (N, K) in shapes:
        wq = _ternary_weight(N, K, seed=N + K)
        lin = _gemlite_layer(rec, wq, N, K)
        if lin is None:
            return
        packed_bytes = N * K / 4
        for M in Ms:
            x16 = _acts(M, K, seed=M).to(torch.float16)
            _bench_gemlite(rec, lin, x16, M, N, K, packed_bytes, 2.0 * M * N * K, graphs and M == 1)
        del lin, wq
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------- FP8 exactness study
def fp8_exactness(rec: Recorder, Ks=(256, 1024, 2048, 4096, 8192, 11008, 16384, 32768)) -> None:
    """Where does the FP8 wgmma accumulator stop being exact on integer data?

    Adversarial data: every product is +8 for half the rows, so the partial
    sums grow linearly to 8·K; random data otherwise.  Compares with and
    without promotion (max_num_imprecise_acc).
    """
    from kernels.packing import pack_ternary
    from kernels.ternary_gemm import w158_matmul

    M, N = 256, 256
    for K in Ks:
        g = torch.Generator(device="cuda").manual_seed(K)
        xc = torch.randint(-8, 8, (M, K), device="cuda", generator=g, dtype=torch.int32)
        wc = torch.randint(-1, 2, (N, K), device="cuda", generator=g, dtype=torch.int32)
        xc[: M // 2] = -8
        xc[: M // 2, ::5] = -7                 # odd products too, so low bits of the sums are live
        wc[: N // 2] = -1                      # rows/cols 0..127: products +8/+7, sums up to ~7.8K
        ref = (xc.double() @ wc.double().t())
        xs = torch.ones(M, 1, device="cuda")
        ws = torch.ones(1, device="cuda")
        wp = pack_ternary(wc.to(torch.int8))
        xf8 = xc.to(torch.float8_e4m3fn)
        for imp in (1 << 30, 32, 64, 128):           # 1<<30 > BK: no promotion at all
            try:
                y = w158_matmul(xf8, xs, wp, ws, N, out_dtype=torch.float32, imprecise_acc=imp)
                err = (y.double() - ref).abs()
                rec.note(what="fp8_exactness", K=K, imprecise_acc=imp, max_abs_sum=float(ref.abs().max()),
                         exact=bool(err.max() == 0), max_err=float(err.max()),
                         wrong_frac=float((err > 0).double().mean()))
            except Exception as e:  # noqa: BLE001
                rec.note(what="fp8_exactness failed", K=K, imprecise_acc=imp, error=repr(e)[:300])


# ----------------------------------------------------------------------------- driver
SECTIONS = ("ceilings", "gemm", "quant", "sparse", "attention", "fp8exact", "block", "gemlite")


def summary_table(rec: Recorder, ceil: dict) -> str:
    """Short table (one line per timed op, tuning variants left out), printed last."""
    lines = [f"{'op':15s} {'kernel':20s} {'M':>5s} {'N':>6s} {'K':>6s} g {'us':>9s} {'GB/s':>7s} "
             f"{'TOPS':>7s} ex"]
    for r in rec.rows:
        if r["kernel"].endswith("_cfg"):
            continue
        lines.append(f"{r['op'][:15]:15s} {r['kernel'][:20]:20s} {r['M']:5d} {r['N']:6d} {r['K']:6d} "
                     f"{'G' if r['cuda_graph'] else '-'} {r['us']:9.2f} {r['gbps']:7.0f} {r['tops']:7.1f} "
                     f"{'Y' if r['exact'] else '-'}")
    lines.append("ceilings: " + json.dumps({k: round(v, 1) for k, v in ceil.items()}))
    return "\n".join(lines)


def table_from_rows(rows: list[dict]):
    """measured_trace DataFrame from recorded rows (extra columns filled: no NaN in str/num columns)."""
    import pandas as pd
    from bitsim.tables import MEASURED_TRACE

    df = pd.DataFrame(rows)
    known = {c.name for c in MEASURED_TRACE}
    for col in df.columns:
        if col in known:
            continue
        if pd.api.types.is_numeric_dtype(df[col]) and not pd.api.types.is_bool_dtype(df[col]):
            df[col] = df[col].fillna(0)
        else:
            df[col] = df[col].fillna("").astype(str)
    return df


def write_outputs(rec: Recorder, ceil: dict, out_dir: Path) -> None:
    """JSON log first (rows included, needs nothing but json), then Parquet + CSV tables."""
    from bitsim.tables import write_table

    out_dir.mkdir(parents=True, exist_ok=True)
    meta = dict(rec.env, ceilings=ceil, source="kernels/benchmark.py")
    with open(out_dir / "bench_log.json", "w") as f:
        json.dump(dict(meta=meta, notes=rec.log, rows=rec.rows, tuned=rec.tuned), f, indent=1, default=str)
    if rec.tuned:       # winners of --configs, in the form of kernels.configs.TUNED
        with open(out_dir / "tuned_configs.json", "w") as f:
            json.dump(rec.tuned, f, indent=1, sort_keys=True)
    if rec.rows:
        df = table_from_rows(rec.rows)
        write_table(df, out_dir / "measured_trace.parquet", "measured_trace", meta)
        write_table(df, out_dir / "measured_trace.csv", "measured_trace", meta)


def build_parser(p: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = p or argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"comma-separated subset of {SECTIONS}")
    p.add_argument("--shapes", default="7b", help="'7b' (all four N×K) or e.g. '11008x4096,4096x4096'")
    p.add_argument("--ms", default=",".join(map(str, MS)), help="comma-separated M values")
    p.add_argument("--no-check", action="store_true", help="skip the bit-exactness checks")
    p.add_argument("--configs", action="store_true",
                   help="sweep kernels.configs.CANDIDATES (each checked first), run the fastest correct "
                        "config per shape for the rest of the run, write tuned_configs.json")
    p.add_argument("--no-graphs", action="store_true", help="skip CUDA-graph timings")
    p.add_argument("--tuned", default=None,
                   help="tuned_configs.json of an earlier --configs run: its winners serve this run")
    p.add_argument("--out", default=os.environ.get("OUT", "bench_out"), help="output folder")
    return p


def load_tuned(path: Path) -> None:
    """Merge an earlier sweep's ``tuned_configs.json`` into ``kernels.configs.TUNED`` (this process)."""
    from kernels import configs

    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, dict) or not set(data) <= set(configs.TUNED):
        raise ValueError(f"{path}: expected a JSON object with keys among {sorted(configs.TUNED)}")
    for kernel, table in data.items():
        if not isinstance(table, dict) or not all(isinstance(c, dict) for c in table.values()):
            raise ValueError(f"{path}: {kernel!r} must map shape keys to config objects")
        configs.TUNED[kernel].update({k: dict(c) for k, c in table.items()})


def run(args: argparse.Namespace) -> int:
    if not torch.cuda.is_available():
        raise ValueError("bench-kernels needs a CUDA GPU (none visible)")
    secs = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = [s for s in secs if s not in SECTIONS]
    if bad:
        raise ValueError(f"unknown sections {bad}; known: {SECTIONS}")
    shapes = SHAPES_7B if args.shapes == "7b" else tuple(
        tuple(int(v) for v in s.lower().split("x")) for s in args.shapes.split(","))
    Ms = tuple(int(m) for m in args.ms.split(","))
    if args.tuned:
        load_tuned(Path(args.tuned))
    rec = Recorder(env_info())
    print("env:", json.dumps(rec.env), flush=True)
    ceil: dict = {}
    t0 = time.time()
    steps = []
    if "ceilings" in secs:
        steps.append(("ceilings", lambda: ceil.update(measure_ceilings(rec))))
    if "gemm" in secs:
        steps.append(("gemm", lambda: gemm_section(rec, shapes, Ms, not args.no_check, args.configs,
                                                   not args.no_graphs)))
    steps += _extra_sections(secs, args, rec)
    if "fp8exact" in secs:
        steps.append(("fp8exact", lambda: fp8_exactness(rec)))
    if "block" in secs:
        from kernels.block import bench_block
        steps.append(("block", lambda: bench_block(rec)))
    if "gemlite" in secs:
        steps.append(("gemlite", lambda: gemlite_section(rec, not args.no_graphs)))
    for name, fn in steps:
        print(f"== {name} ({time.time() - t0:.0f}s)", flush=True)
        try:
            with finite_checks(False):      # timed like the baselines: no NaN scans (they sync)
                fn()
        except Exception as e:  # noqa: BLE001 - one broken section must not lose the others
            rec.note(what=f"section {name} failed", error=repr(e)[-1500:], tb=traceback.format_exc()[-1500:])
        try:
            write_outputs(rec, ceil, Path(args.out))
        except Exception as e:  # noqa: BLE001 - keep measuring; the log still has everything
            print("write_outputs failed:", repr(e)[-500:], flush=True)
    print(f"== done in {time.time() - t0:.0f}s", flush=True)
    print(summary_table(rec, ceil))
    return 0


def _extra_sections(secs, args, rec):
    """Sections implemented beside their kernels (quant, sparse, attention)."""
    from kernels.kv_attention import bench_attention
    from kernels.rmsnorm_quant import bench_quant
    from kernels.sparse_gemv import bench_sparse

    out = []
    if "quant" in secs:
        out.append(("quant", lambda: bench_quant(rec, not args.no_check)))
    if "sparse" in secs:
        out.append(("sparse", lambda: bench_sparse(rec, not args.no_check, args.configs)))
    if "attention" in secs:
        out.append(("attention", lambda: bench_attention(rec, not args.no_check, args.configs)))
    return out


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
