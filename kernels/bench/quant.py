"""The fused RMSNorm + quantizer kernels: checked bit-exact on 7B widths, timed at M = 1 (CUDA graph,
launch gaps of a graph) and M = 2048 (one launch, L2 flushed)."""
from __future__ import annotations

import json

import torch

from kernels.bench.harness import MeasurementLog, time_graph, time_us
from kernels.rmsnorm_quant import TOPK_SEARCHES, reference_quant, rmsnorm_quant

CASES = (("int8", 4096, None), ("int4", 4096, None), ("int4", 4096, "fp8"), ("topk8", 4096, None),
         ("topk8", 4096, "radix"), ("topk8", 4096, "pairs"), ("topk8", 4096, "interp"), ("topk8", 4096, "nz"),
         ("int8", 11008, "glu"), ("int8", 11008, "silu"), ("int8", 11008, "glu_nz"), ("int8", 11008, "glu_chunks"),
         ("int8", 11008, "silu_chunks"))


#: Rows whose whole-row program is also timed at every warp count of :data:`WARPS` (M = 1, rows ``*_cfg``)
WARP_CASES = (("int8", 4096, None), ("topk8", 4096, "interp"), ("int8", 11008, "glu"), ("int8", 11008, "silu"))
WARPS = (4, 8, 16, 32)


def quant_section(log: MeasurementLog, check: bool = True, Ms: tuple[int, ...] = (1, 2048)) -> None:
    for M in Ms:
        for mode, D, extra in CASES:
            _case(log, M, mode, D, extra, check)
    for mode, D, extra in WARP_CASES:
        for warps in WARPS:
            _case(log, 1, mode, D, extra, check, num_warps=warps)


def _case(log: MeasurementLog, M: int, mode: str, D: int, extra: str | None, check: bool,
          num_warps: int | None = None) -> None:
    """One quantizer row checked against the reference and timed (with ``num_warps``: a sweep row)."""
    g = torch.Generator(device="cuda").manual_seed(M * 7 + D)
    x = torch.randn(M, D, device="cuda", generator=g).to(torch.float16)
    w = (torch.rand(D, device="cuda", generator=g) + 0.5).to(torch.float16)
    glu = "silu" if extra and extra.startswith("silu") else "relu2"
    gated = extra in ("glu", "silu", "glu_nz", "glu_chunks", "silu_chunks")
    gate = torch.randn(M, D, device="cuda", generator=g).to(torch.float16) if gated else None
    kw = dict(gate=gate, out_fp8=extra == "fp8", nonzero=extra in ("nz", "glu_nz"), glu=glu,
              topk_search=extra if extra in TOPK_SEARCHES else "bitwise",   # unnamed: bitwise
              row_chunk=2048 if extra and extra.endswith("_chunks") else 0,   # _chunks: three passes
              num_warps=num_warps)
    out = rmsnorm_quant(x, mode, w, **kw)
    exact = False
    if check:
        ref = reference_quant(x, mode, w, gate, glu=glu)
        codes = out[0].float().to(torch.int8) if extra == "fp8" else out[0]
        exact = bool(torch.equal(codes.cpu(), ref.codes) and torch.equal(out[1].cpu(), ref.scale))
        if kw["nonzero"]:
            nzi, nnz = out[2].cpu(), out[3].cpu()
            for r in range(min(M, 4)):
                exact &= bool(torch.equal(nzi[r, :nnz[r]].long(), torch.nonzero(ref.codes[r]).flatten()))
    name = f"ours_norm_{mode}" + (f"_{extra}" if extra else "") + ("_cfg" if num_warps else "")
    nbytes = M * D * 2 * (2 if gate is not None else 1) + 2 * D + M * D + 4 * M
    if M == 1:
        t = time_graph([lambda: rmsnorm_quant(x, mode, w, **kw)] * 8)
    else:
        t = time_us(lambda: rmsnorm_quant(x, mode, w, **kw))
    extra_cols = dict(config=json.dumps({"num_warps": num_warps})) if num_warps else {}
    log.add(op="quant", kernel=name, impl="ours", precision=mode, M=M, N=D, K=0, timing=t, bytes=nbytes,
            ops=0.0, exact=exact, cuda_graph=M == 1, **extra_cols)
