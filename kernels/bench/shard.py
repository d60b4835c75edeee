"""One GPU's share of a tensor-parallel 70B decode step at serving batches (section ``shard``).

A tensor-parallel deployment runs on each GPU the same GEMMs cut by the degree ``tp`` (Megatron-LM's
column / row split, :func:`kernels.bench.tensor_parallel.shards`).  Rank 0's share of a Llama-3-70B
layer therefore runs on one GPU with no collective at all, and its time is the compute part of a
tensor-parallel decode iteration: what the serving simulator's per-iteration cost is made of at 70B.
For ``tp`` in :data:`SHARD_TPS` and every batch in :data:`SHARD_MS` (decode batches of 8 to 256 sequences, and
2,048 and 6,144 prompt tokens: a prefill batch runs the same GEMMs with M = its tokens):

* each of the four shard GEMMs (fused QKV, Wo, fused gate/up, Wdown) as cuBLAS FP8 (W8A8, activations
  already quantized per token, per-row weight scales: ``torch._scaled_mm``), in a CUDA graph over
  rotating weight copies (``op`` "gemm", ``regime`` "serving", ``model`` and ``tp`` say whose shard);
* the layer's whole linear part as :class:`~kernels.bench.tensor_parallel.ShardedLayer` runs it with
  the all-reduces left out (the four GEMMs, the per-token FP8 quantization before each, the residual
  adds and the GLU), for W8A8-FP8 and b1.58, one CUDA graph, L2 flushed before each replay (``op``
  "shard_linear"; ``launches`` the kernels one eager call launches, counted by torch.profiler).

Every row carries ``floor_us``, its weight and activation bytes at the run's measured read rate.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from kernels.baselines import Fp8Linear
from kernels.bench.floors import measure_read_rate
from kernels.bench.harness import MeasurementLog, capture_graph, time_rotating, time_us
from kernels.bench.profile import device_events
from kernels.bench.tensor_parallel import LLAMA_70B, ShardedLayer, shards

SHARD_TPS = (2, 8)
SHARD_MS = (8, 32, 64, 128, 256, 2048, 6144)     # decode batches, then prefill batches of prompt tokens
SHARD_DATAPATHS = ("w8a8-fp8", "b1.58")
#: weight bytes per element of each datapath's shard GEMMs (b1.58: 2-bit packed codes)
WEIGHT_BYTES = {"w8a8-fp8": 1.0, "b1.58": 0.25}


def shard_section(log: MeasurementLog, tps=SHARD_TPS, Ms=SHARD_MS, datapaths=SHARD_DATAPATHS,
                  read_gbps: float | None = None, checkpoint: Callable[[], None] = lambda: None) -> None:
    """The shard GEMM rows and the shard layer rows of every degree in ``tps`` at every batch in ``Ms``
    (``read_gbps``: this run's read rate; measured here when None; ``checkpoint`` writes the outputs so far,
    called after each degree: a run cut short keeps them)."""
    read_gbps = read_gbps if read_gbps is not None else measure_read_rate(log)
    for tp in tps:
        for part in shards(LLAMA_70B, tp):
            _gemm_rows(log, tp, part.name, part.N, part.K, Ms, read_gbps)
            torch.cuda.empty_cache()
        for dp in datapaths:
            try:
                _layer_rows(log, tp, dp, Ms, read_gbps)
            except Exception as e:  # noqa: BLE001 - one datapath failing must not lose the others
                log.note(what="shard layer failed", tp=tp, datapath=dp, error=repr(e)[-600:])
            torch.cuda.empty_cache()
        checkpoint()


def _gemm_rows(log: MeasurementLog, tp: int, name: str, N: int, K: int, Ms, read_gbps: float) -> None:
    g = torch.Generator(device="cuda").manual_seed(N + K + tp)
    f8 = Fp8Linear(torch.randn(N, K, device="cuda", generator=g) * K ** -0.5)
    for M in Ms:
        x = torch.randn(M, K, device="cuda", generator=g).to(torch.float16)
        xq, xs = f8.quantize(x)
        t, c = time_rotating(lambda w: torch._scaled_mm(xq, w.t(), scale_a=xs, scale_b=f8.w_scale,
                                                        out_dtype=torch.bfloat16), [f8.wq])
        nbytes = 1.0 * N * K + M * K + 2 * M * N
        log.add(op="gemm", kernel="cublas_fp8_w8a8", impl="baseline", precision="w8a8-fp8", M=M, N=N, K=K,
                timing=t, bytes=nbytes, ops=2.0 * M * N * K, exact=False, floor_us=nbytes / read_gbps / 1e3,
                regime="serving", cuda_graph=True, copies=c, model=LLAMA_70B.name, tp=tp, part=name,
                note=f"rank 0 shard of {LLAMA_70B.name} at TP {tp}: {name}; activations already quantized")


def count_kernels(fn) -> int:
    """CUDA kernels one eager call of ``fn`` launches (torch.profiler's kernel events after a warm call, as
    :func:`kernels.bench.profile.device_events` records them; memcpy / memset left out)."""
    return sum(not name.lower().startswith(("memcpy", "memset")) for name, _ in device_events(fn, calls=1))


def _layer_rows(log: MeasurementLog, tp: int, dp: str, Ms, read_gbps: float) -> None:
    layer = ShardedLayer(LLAMA_70B, tp, 0, dp, torch.device("cuda"))
    wbytes = sum(p.N * p.K for p in layer.parts) * WEIGHT_BYTES[dp]
    for M in Ms:
        x = torch.randn(M, LLAMA_70B.hidden, device="cuda", generator=torch.Generator(device="cuda").manual_seed(M)
                        ).to(torch.float16)
        launches = count_kernels(lambda: layer.step(x, reduce=False))
        graph = capture_graph([lambda: layer.step(x, reduce=False)])
        t = time_us(graph.replay, rep_ms=100)
        nbytes = wbytes + 2.0 * M * sum(p.K + p.N for p in layer.parts)
        log.add(op="shard_linear", kernel=f"70b_tp{tp}_{dp}", impl="ours" if dp == "b1.58" else "baseline",
                precision=dp, M=M, N=LLAMA_70B.hidden, K=LLAMA_70B.ffn // tp, timing=t, bytes=nbytes,
                ops=2.0 * M * sum(p.N * p.K for p in layer.parts), exact=False, cuda_graph=True,
                floor_us=nbytes / read_gbps / 1e3, launches=launches, model=LLAMA_70B.name, tp=tp,
                note=f"rank 0 of {LLAMA_70B.name} at TP {tp}: QKV, Wo, gate/up, Wdown with their activation "
                     f"quantization, residual adds and GLU; all-reduces and attention left out")
        del graph
