"""Tensor-parallel decode on the GPUs of one host: collectives at decode sizes and a 70B-shaped layer.

``bitsim bench-tp --out DIR`` starts one process per GPU
for each world size (2, 4, 8: whatever the host has) and, through ``torch.distributed`` with NCCL:

* times all-reduce, all-gather and reduce-scatter from 1 KB to 256 MB, captured in a CUDA graph where
  NCCL allows it (eager otherwise; the row says which), the median of ``--repeats`` repeats with the
  quartiles, min and max across repeats;
* times one tensor-parallel decode step of a Llama-2/3-70B-shaped layer (hidden 8192, 64 query and 8 KV
  heads of 128, FFN 28672): QKV and gate/up split by columns, Wo and Wdown by rows, two all-reduces of
  ``batch x hidden`` FP16 values, at batch 1, 8, 32 and 128, for fp16 (cuBLAS), W8A8-FP8
  (``torch._scaled_mm``) and b1.58 (our ternary kernel on INT8 activations); the GEMMs alone, the
  all-reduces alone and the whole step, each in its own graph. Attention over the KV cache is not part
  of the step (its cost per GPU is the single-GPU attention rows with heads / TP); the attention output
  is stood in for by the query slice of the QKV projection, which has its width.

Each world size is one part file (``part-ws<N>.json``) written when its processes finish, so a run cut
short resumes with the world sizes it lacks. The tables (``measured_collectives``,
``measured_tp_decode``, registered in ``contract.kernels``) carry the GPU name and count, the NVLink
topology (``nvidia-smi topo -m``), versions, date and command. ``--backend gloo --device cpu`` runs the
same code on CPU processes (the tests use it at tiny sizes).
"""
from __future__ import annotations

import argparse
import datetime
import os
import socket
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import model.quant as Q
from contract import write_table
from contract.io import read_json, write_json_atomic
from kernels.baselines import Fp8Linear
from kernels.packing import pack_ternary
from kernels.ternary_gemm import w158_matmul

KB = 1 << 10
DEFAULT_SIZES = tuple(KB << s for s in range(0, 19, 2))          # 1 KB ... 256 MB, x4 steps
DEFAULT_BATCHES = (1, 8, 32, 128)
DATAPATHS = ("fp16", "w8a8-fp8", "b1.58")
COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter")


@dataclass(frozen=True, kw_only=True)
class LayerShape:
    """The linear layers of one decoder block (GQA)."""

    name: str
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int


LLAMA_70B = LayerShape(name="llama-70b", hidden=8192, heads=64, kv_heads=8, head_dim=128, ffn=28672)


@dataclass(frozen=True, kw_only=True)
class Shard:
    """One GEMM of the layer on one rank: ``[batch, K] x [K, N]``; ``split`` is how the full matrix was cut."""

    name: str
    N: int
    K: int
    split: str          # "column" (outputs divided) or "row" (reduction divided; an all-reduce follows)


def shards(shape: LayerShape, tp: int) -> list[Shard]:
    """The per-rank GEMMs of ``shape`` at tensor-parallel degree ``tp`` (Megatron-LM's column/row split)."""
    for what, n in (("heads", shape.heads), ("kv_heads", shape.kv_heads), ("ffn", shape.ffn)):
        if tp < 1 or n % tp:
            raise ValueError(f"tensor-parallel degree {tp} does not divide {what} = {n} of {shape.name}")
    qkv = (shape.heads + 2 * shape.kv_heads) * shape.head_dim // tp
    return [Shard(name="qkv", N=qkv, K=shape.hidden, split="column"),
            Shard(name="wo", N=shape.hidden, K=shape.heads * shape.head_dim // tp, split="row"),
            Shard(name="gate_up", N=2 * shape.ffn // tp, K=shape.hidden, split="column"),
            Shard(name="down", N=shape.hidden, K=shape.ffn // tp, split="row")]


def allreduce_bytes(shape: LayerShape, batch: int) -> int:
    """Bytes of one of the layer's two all-reduces: ``batch x hidden`` FP16 values."""
    return 2 * batch * shape.hidden


# ----------------------------------------------------------------------------- one rank's layer
class ShardedLayer:
    """One rank's weights of the layer for one datapath, and its decode step."""

    def __init__(self, shape: LayerShape, tp: int, rank: int, datapath: str, device: torch.device, seed: int = 0):
        if datapath not in DATAPATHS:
            raise ValueError(f"datapath must be one of {DATAPATHS}, got {datapath!r}")
        self.shape, self.tp, self.datapath, self.device = shape, tp, datapath, device
        self.parts = shards(shape, tp)
        full = full_weights(shape, seed)
        self.weights = {p.name: self._prepare(rank_slice(full[p.name], p, shape, tp, rank)) for p in self.parts}

    def _prepare(self, w: torch.Tensor):
        if self.datapath == "fp16":
            dtype = torch.float16 if self.device.type == "cuda" else torch.float32
            return w.to(self.device, dtype)
        if self.datapath == "w8a8-fp8":
            return Fp8Linear(w.to(self.device))
        q = Q.quantize_ternary(w)
        return q if self.device.type != "cuda" else _pack_for_gpu(q, self.device)

    def linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """``x @ W_name^T`` on this rank with the datapath's arithmetic."""
        w = self.weights[name]
        if self.datapath == "fp16":
            return x.to(w.dtype) @ w.t()
        if self.datapath == "w8a8-fp8":     # cuBLAS FP8 on a GPU, its float32 emulation on a CPU
            return w(x) if self.device.type == "cuda" else w.emulated(x)
        xq = Q.quantize_int8(x.float())
        if self.device.type == "cuda":
            return _ternary_gpu(xq, w)
        return Q.qlinear(xq, w, out_dtype=torch.float32)

    def step(self, x: torch.Tensor, group=None, reduce: bool = True) -> torch.Tensor:
        """One decode step of the layer's linear part; the two row-split GEMMs end in an all-reduce."""
        s = self.shape
        q_width = s.heads * s.head_dim // self.tp
        attn = self.linear("qkv", x)[:, :q_width]
        h = self.linear("wo", attn).to(x.dtype)
        if reduce:
            dist.all_reduce(h, group=group)
        h = h + x
        gu = self.linear("gate_up", h)
        gate, up = gu[:, : gu.shape[1] // 2], gu[:, gu.shape[1] // 2:]
        y = self.linear("down", (torch.relu(gate).square() * up).to(x.dtype)).to(x.dtype)
        if reduce:
            dist.all_reduce(y, group=group)
        return y + h


def full_weights(shape: LayerShape, seed: int) -> dict[str, torch.Tensor]:
    """The unsplit layer's weights (float32, seeded), rows = outputs: qkv is [q heads; k heads; v heads]."""
    g = torch.Generator().manual_seed(seed)
    qkv_rows = (shape.heads + 2 * shape.kv_heads) * shape.head_dim
    dims = {"qkv": (qkv_rows, shape.hidden), "wo": (shape.hidden, shape.heads * shape.head_dim),
            "gate_up": (2 * shape.ffn, shape.hidden), "down": (shape.hidden, shape.ffn)}
    return {k: torch.randn(n, m, generator=g) / m ** 0.5 for k, (n, m) in dims.items()}


def rank_slice(w: torch.Tensor, part: Shard, shape: LayerShape, tp: int, rank: int) -> torch.Tensor:
    """Rank ``rank``'s piece of the full matrix ``w`` of ``part`` (q, k and v cut by heads; gate and up each cut)."""
    if part.name == "qkv":
        hd = shape.head_dim
        q, k, v = w.split([shape.heads * hd, shape.kv_heads * hd, shape.kv_heads * hd])
        return torch.cat([t.chunk(tp)[rank] for t in (q, k, v)])
    if part.name == "gate_up":
        gate, up = w.chunk(2)
        return torch.cat([gate.chunk(tp)[rank], up.chunk(tp)[rank]])
    return w.chunk(tp, dim=1)[rank].contiguous()        # row split: the reduction dimension


def _pack_for_gpu(q: Q.QTensor, device: torch.device):
    return (pack_ternary(q.codes.to(device)), q.scale.to(device).float().reshape(1), q.codes.shape[0])


def _ternary_gpu(xq: Q.QTensor, w) -> torch.Tensor:
    packed, scale, n = w
    return w158_matmul(xq.codes, xq.scale.float().reshape(-1, 1), packed, scale, n)


# ----------------------------------------------------------------------------- timing on one rank
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _graph_or_eager(fn, device: torch.device):
    """``fn`` captured in a CUDA graph (replayed by the returned callable), or ``fn`` itself; and which it is."""
    if device.type != "cuda":
        return fn, False
    try:
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(3):
                fn()
        torch.cuda.current_stream(device).wait_stream(side)
        _sync(device)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            fn()
        return g.replay, True
    except RuntimeError:          # NCCL or the driver refused the capture: time the eager calls
        _sync(device)
        return fn, False


def time_steps(fn, device: torch.device, *, repeats: int, iters: int) -> list[float]:
    """Per-call µs of ``fn`` in ``repeats`` repeats of ``iters`` back-to-back calls, all ranks started together."""
    out = []
    for _ in range(repeats):
        dist.barrier()
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        _sync(device)
        out.append(1e6 * (time.perf_counter() - t0) / iters)
    return out


def _slowest_rank(samples: list[float], device: torch.device) -> list[float]:
    """Each repeat's time on the slowest rank (a collective step is as fast as its slowest member)."""
    t = torch.tensor(samples, dtype=torch.float64, device=device if device.type == "cuda" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.cpu().tolist()


def _spread(samples: list[float]) -> dict:
    s = sorted(samples)
    q = statistics.quantiles(s, n=4, method="inclusive") if len(s) > 1 else [s[0]] * 3
    return dict(us=statistics.median(s), us_p25=q[0], us_p75=q[2], us_min=s[0], us_max=s[-1], repeats=len(s))


def _collective(name: str, nbytes: int, world: int, device: torch.device):
    """A call of collective ``name`` moving ``nbytes`` per rank (FP16 elements; all-gather's input is 1/world)."""
    n = max(nbytes // 2 // world * world, world)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    buf = torch.ones(n, dtype=dtype, device=device)
    if name == "all_reduce":
        return lambda: dist.all_reduce(buf)
    if name == "all_gather":
        part = torch.ones(n // world, dtype=dtype, device=device)
        return lambda: dist.all_gather_into_tensor(buf, part)
    out = torch.empty(n // world, dtype=dtype, device=device)
    return lambda: dist.reduce_scatter_tensor(out, buf)


def collective_rows(world: int, device: torch.device, sizes, repeats: int, iters: int) -> list[dict]:
    rows = []
    for name in COLLECTIVES:
        for nbytes in sizes:
            fn, graphed = _graph_or_eager(_collective(name, nbytes, world, device), device)
            t = _slowest_rank(time_steps(fn, device, repeats=repeats, iters=iters), device)
            rows.append(dict(collective=name, bytes=int(nbytes), world_size=world, cuda_graph=graphed, **_spread(t)))
    return rows


def layer_rows(shape: LayerShape, world: int, rank: int, device: torch.device, *, datapaths, batches,
               repeats: int, iters: int) -> list[dict]:
    rows = []
    for dp in datapaths:
        layer = ShardedLayer(shape, world, rank, dp, device)
        for batch in batches:
            rows += _step_rows(layer, batch, device, repeats=repeats, iters=iters)
    return rows


def _step_rows(layer: ShardedLayer, batch: int, device: torch.device, *, repeats: int, iters: int) -> list[dict]:
    """The layer's GEMMs alone, its two all-reduces alone and the whole step, at one batch."""
    shape = layer.shape
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    x = torch.randn(batch, shape.hidden, generator=torch.Generator().manual_seed(batch)).to(device, dtype)
    h = torch.zeros(batch, shape.hidden, dtype=dtype, device=device)
    parts = {"gemm": lambda: layer.step(x, reduce=False),
             "allreduce": lambda: (dist.all_reduce(h), dist.all_reduce(h)),
             "together": lambda: layer.step(x)}
    rows = []
    for part, fn in parts.items():
        call, graphed = _graph_or_eager(fn, device)
        t = _slowest_rank(time_steps(call, device, repeats=repeats, iters=iters), device)
        rows.append(dict(model=shape.name, datapath=layer.datapath, batch=batch, part=part, world_size=layer.tp,
                         allreduce_bytes=allreduce_bytes(shape, batch), cuda_graph=graphed, **_spread(t)))
    return rows


# ----------------------------------------------------------------------------- processes and outputs
@dataclass(frozen=True, kw_only=True)
class RunPlan:
    """What one world size measures (passed to every rank)."""

    backend: str
    device: str
    sizes: tuple[int, ...]
    batches: tuple[int, ...]
    datapaths: tuple[str, ...]
    shape: LayerShape
    repeats: int
    iters: int
    port: int
    part: str


def _rank_main(rank: int, world: int, plan: RunPlan) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(plan.port),
                      NCCL_NVLS_ENABLE="0")           # NVLink multicast stays off
    dev = torch.device(plan.device, rank) if plan.device == "cuda" else torch.device("cpu")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(plan.backend, rank=rank, world_size=world)
    try:
        coll = collective_rows(world, dev, plan.sizes, plan.repeats, plan.iters)
        layer = layer_rows(plan.shape, world, rank, dev, datapaths=plan.datapaths, batches=plan.batches,
                           repeats=plan.repeats, iters=plan.iters)
        if rank == 0:
            write_json_atomic({"collectives": coll, "layer": layer}, plan.part)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(command: list[str], device: str) -> dict:
    """GPU name and count, NVLink topology, versions, date and command of this run."""
    gpu, count, topo = "cpu", 0, ""
    if device == "cuda" and torch.cuda.is_available():
        gpu, count = torch.cuda.get_device_name(0), torch.cuda.device_count()
        try:
            topo = subprocess.run(["nvidia-smi", "topo", "-m"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            topo = ""
    nccl = ".".join(map(str, torch.cuda.nccl.version())) if device == "cuda" and torch.cuda.is_available() else ""
    return dict(gpu=gpu, gpu_count=count, topology=" ".join(topo.split()), torch=torch.__version__, nccl=nccl,
                cuda=str(torch.version.cuda), date=datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
                command=" ".join(command))


def run(out: Path, *, worlds, plan_kw: dict, command: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Measure every world size in ``worlds`` that has no part file in ``out`` yet, then write the tables."""
    out.mkdir(parents=True, exist_ok=True)
    env = environment(command, plan_kw["device"])
    for world in worlds:
        part = out / f"part-ws{world}.json"
        if part.exists():
            print(f"world size {world}: kept from {part.name}", flush=True)
            continue
        print(f"world size {world}: measuring", flush=True)
        plan = RunPlan(port=_free_port(), part=str(part), **plan_kw)
        mp.spawn(_rank_main, args=(world, plan), nprocs=world, join=True)
    coll, layer = [], []
    for world in worlds:
        doc = read_json(out / f"part-ws{world}.json", what="tensor-parallel part")
        coll += [dict(r, **env) for r in doc["collectives"]]
        layer += [dict(r, **env) for r in doc["layer"]]
    tables = {"measured_collectives": pd.DataFrame(coll), "measured_tp_decode": pd.DataFrame(layer)}
    for name, df in tables.items():
        for suffix in (".csv", ".parquet"):
            write_table(df, out / f"{name}{suffix}", name)
    return tables["measured_collectives"], tables["measured_tp_decode"]


def summary(coll: pd.DataFrame, layer: pd.DataFrame) -> str:
    """The short tables printed last: all-reduce at decode sizes, and the TP step by part."""
    ar = coll[(coll.collective == "all_reduce") & coll.bytes.isin([32 * KB, 1 << 20])]
    a = ar.pivot_table(index="bytes", columns="world_size", values="us").round(1)
    step = layer.pivot_table(index=["datapath", "batch"], columns=["world_size", "part"], values="us").round(1)
    return f"all-reduce (us, median):\n{a.to_string()}\n\nTP decode step of the layer (us):\n{step.to_string()}"


def _ints(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return vals


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="output folder (resumes from its part files)")
    p.add_argument("--world-sizes", type=_ints, default=None, help="e.g. 2,4,8 (default: 2, 4, 8 up to the GPUs)")
    p.add_argument("--sizes", type=_ints, default=DEFAULT_SIZES, help="collective sizes in bytes")
    p.add_argument("--batches", type=_ints, default=DEFAULT_BATCHES)
    p.add_argument("--datapaths", default=",".join(DATAPATHS))
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--iters", type=int, default=20, help="back-to-back calls per repeat")
    p.add_argument("--backend", choices=("nccl", "gloo"), default="nccl")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")


def run_from_args(a: argparse.Namespace, command: list[str]) -> int:
    dps = tuple(d.strip() for d in a.datapaths.split(",") if d.strip())
    bad = sorted(set(dps) - set(DATAPATHS))
    if bad:
        raise ValueError(f"--datapaths: unknown {bad}; known: {list(DATAPATHS)}")
    if a.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA GPU here (use --backend gloo --device cpu for a CPU run)")
    have = torch.cuda.device_count() if a.device == "cuda" else os.cpu_count() or 1
    worlds = a.world_sizes or tuple(w for w in (2, 4, 8) if w <= have)
    if not worlds or max(worlds) > have or min(worlds) < 2:
        raise ValueError(f"--world-sizes {worlds}: this host has {have} {'GPUs' if a.device == 'cuda' else 'CPUs'}; "
                         f"a tensor-parallel run needs 2 to {have}")
    plan_kw = dict(backend=a.backend, device=a.device, sizes=tuple(a.sizes), batches=tuple(a.batches),
                   datapaths=dps, shape=LLAMA_70B, repeats=a.repeats, iters=a.iters)
    coll, layer = run(a.out, worlds=worlds, plan_kw=plan_kw, command=command)
    print(summary(coll, layer))
    return 0

