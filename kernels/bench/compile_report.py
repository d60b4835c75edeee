"""Compile the decode and prefill kernels ahead of time for sm_90 (no GPU needed) and report their resources.

``bitsim kernels compile-report`` (or ``python -m kernels.bench.compile_report``) compiles each
kernel variant the benchmark runs with the installed Triton for ``GPUTarget("cuda", 90, 32)``, then
reads registers, spill stores and the stack frame from the cubin (``cuobjdump -res-usage``, the copy
inside Triton's package) and counts a few instructions in the PTX (``dp4a``, ``wgmma``,
``griddepcontrol``): a compile error, a spill or a missing tensor-core instruction shows here before
any device time is spent. Pointer arguments are declared 16-byte aligned, as the launcher's
specialisation declares them for torch tensors.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from kernels.arith import GLU_MODES
from kernels.attention_step import KV_LAYOUTS, _attention_step_kernel
from kernels.floor import _floor_read_kernel
from kernels.persistent import _decode_block_kernel
from kernels.rmsnorm_quant import _norm_quant_chunked_kernel, _norm_quant_kernel
from kernels.sparse_gemv import _sparse_gemv_kernel
from kernels.ternary_gemm import _w158_gemm_kernel, _w158_gemv_fused_kernel, _w158_gemv_kernel

TARGET = GPUTarget("cuda", 90, 32)
#: int arguments that are multiples of 16 on the 7B shapes (the JIT specialises them the same way)
DIV16 = {"N", "K", "K4", "KW", "NW", "T_max", "ws_rows", "up_off", "stride_b", "n", "D"}


def _compile(fn, types: dict[str, str], consts: dict[str, object], **opts):
    sig = {}
    attrs = {}
    # constexprs left out take the kernel's own defaults, as a launch that does not pass them does
    defaults = {p.name: p.default for p in fn.params if p.is_constexpr and p.has_default}
    consts = {**{k: v for k, v in defaults.items() if k not in types}, **consts}
    for i, name in enumerate(fn.arg_names):
        if name in consts:
            sig[name] = "constexpr"
        else:
            sig[name] = types[name]
            if types[name].startswith("*") or name in DIV16 or name.startswith("stride"):
                attrs[(i,)] = [["tt.divisibility", 16]]
    src = ASTSource(fn=fn, signature=sig, constexprs=consts, attrs=attrs)
    return triton.compile(src, target=TARGET, options=opts)


def _resources(cubin: bytes) -> dict:
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(cubin)
        name = f.name
    try:
        out = subprocess.run([str(tool), "-res-usage", name], capture_output=True, text=True, timeout=60).stdout
    finally:
        os.unlink(name)
    m = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", out)
    return dict(regs=int(m[1]), stack=int(m[2]), shared=int(m[3]), local=int(m[4])) if m else {"raw": out[-300:]}


def _counts(ptx: str) -> dict:
    return {k: len(re.findall(p, ptx)) for k, p in
            (("dp4a", r"dp4a"), ("wgmma", r"wgmma\.mma_async"), ("mma", r"\bmma\.sync"),
             ("gdc", r"griddepcontrol"), ("ld.v4", r"ld\.global[.a-z0-9]*\.v4"))}


def variants() -> list[tuple[str, object, dict, dict, dict]]:
    """(label, kernel, argument types, constexprs, compile options) of every variant the benchmark runs."""
    gemv_t = dict(x_ptr="*i32", xs_ptr="*fp32", w_ptr="*i32", ws_ptr="*fp32", res_ptr="*fp16", y_ptr="*fp16",
                  M="i32", N="i32", K4="i32", KW="i32", ws_rows="i32", stride_xm="i32", stride_wn="i32",
                  stride_ym="i32")
    fused_t = dict(src_ptr="*fp16", nw_ptr="*fp16", w_ptr="*i32", ws_ptr="*fp32", res_ptr="*fp16", y_ptr="*fp16",
                   xq_ptr="*i8", xqs_ptr="*fp32", N="i32", K="i32", KW="i32", ws_rows="i32", up_off="i32",
                   stride_wn="i32", eps="fp32")
    base = dict(BM=1, BN=16, KB=256, RES=False, GATE_FIRST=False, USE_ASM=True, PDL=False, NUM_STAGES=1)
    fused = dict(BN=16, KB=256, NORM=True, HAS_NW=True, GLU=0, QMODE=0, RES=False, GATE_FIRST=False,
                 WRITE_Q=False, USE_ASM=True, PDL=True, NUM_STAGES=1)
    out = [
        ("gemv codes", _w158_gemv_kernel, gemv_t, dict(base, M=1), dict(num_warps=8)),
        ("gemv codes pdl", _w158_gemv_kernel, gemv_t, dict(base, M=1, PDL=True), dict(num_warps=8)),
        ("gemv codes gate-first KB128", _w158_gemv_kernel, gemv_t,
         dict(base, M=1, KB=128, GATE_FIRST=True, PDL=True, NUM_STAGES=3), dict(num_warps=4)),
        ("gemv fused int8 pdl", _w158_gemv_fused_kernel, fused_t, fused, dict(num_warps=8)),
        ("gemv fused int4 gate-first", _w158_gemv_fused_kernel, fused_t, dict(fused, QMODE=1, GATE_FIRST=True),
         dict(num_warps=8)),
        ("gemv fused relu2 res K=11008", _w158_gemv_fused_kernel, fused_t,
         dict(fused, GLU=GLU_MODES["relu2"], RES=True), dict(num_warps=8)),
    ]
    step_t = dict(qkv_ptr="*fp16", cos_ptr="*fp16", sin_ptr="*fp16", kc_ptr="*i32", ks_ptr="*fp32", kb_ptr="*i32",
                  vc_ptr="*i32", vs_ptr="*fp32", vb_ptr="*i32", m_ptr="*fp32", l_ptr="*fp32", o_ptr="*fp32",
                  ticket_ptr="*i32", y_ptr="*fp16", pos="i32", T_max="i32", H="i32", chunk="i32", sm_scale="fp32",
                  stride_b="i32")
    step16_t = dict(step_t, kc_ptr="*fp16", ks_ptr="*fp16", kb_ptr="*fp16", vc_ptr="*fp16", vs_ptr="*fp16",
                    vb_ptr="*fp16")
    kv = KV_LAYOUTS
    sc = dict(D=128, BT=16, S=32, SP=32, LN=7, LB=15, PDL=True, NUM_STAGES=1)
    out += [
        ("attention_step kv3", _attention_step_kernel, step_t, dict(sc, KV=kv["nibble"]), dict(num_warps=2)),
        ("attention_step kv3 3 stages", _attention_step_kernel, step_t, dict(sc, KV=kv["nibble"], NUM_STAGES=3),
         dict(num_warps=2)),
        ("attention_step kv3 dense", _attention_step_kernel, step_t, dict(sc, KV=kv["dense3"]), dict(num_warps=2)),
        ("attention_step fp16", _attention_step_kernel, step16_t, dict(sc, KV=kv["fp16"], LN=1, LB=1),
         dict(num_warps=2)),
        ("attention_step fp16 3 stages", _attention_step_kernel, step16_t,
         dict(sc, KV=kv["fp16"], LN=1, LB=1, NUM_STAGES=3), dict(num_warps=2)),
    ]
    sp_t = dict(x_ptr="*i8", nzi_ptr="*i32", nnz_ptr="*i32", xs_ptr="*fp32", wt_ptr="*i32", ws_ptr="*fp32",
                res_ptr="*fp16", y_ptr="*fp16", acc_ptr="*i32", ticket_ptr="*i32", N="i32", K="i32", NW="i32",
                stride_wk="i32")
    out.append(("sparse res pdl", _sparse_gemv_kernel, sp_t, dict(WBN=32, BI=32, RES=True, PDL=True),
                dict(num_warps=4)))
    nq_t = dict(x_ptr="*fp16", gate_ptr="*fp16", w_ptr="*fp16", codes_ptr="*i8", scale_ptr="*fp32", nzi_ptr="*i32",
                nnz_ptr="*i32", D="i32", stride_x="i32", stride_g="i32", stride_c="i32", stride_n="i32", eps="fp32",
                k_top="i32")
    out.append(("norm topk8 nz pdl", _norm_quant_kernel, nq_t,
                dict(BLOCK=4096, NORM=True, HAS_W=True, GLU=0, MODE=2, OUT_FP8=False, WRITE_NZ=True, PDL=True,
                     SEARCH=1), dict(num_warps=8)))
    out.append(("norm silu int8 11008", _norm_quant_kernel, nq_t,
                dict(BLOCK=16384, NORM=True, HAS_W=True, GLU=GLU_MODES["silu"], MODE=0, OUT_FP8=False, WRITE_NZ=False,
                     PDL=True, SEARCH=1), dict(num_warps=32)))
    whole = dict(BLOCK=16384, NORM=True, HAS_W=True, MODE=0, OUT_FP8=False, WRITE_NZ=False, PDL=True, SEARCH=0)
    out.append(("norm relu2 int8 11008", _norm_quant_kernel, nq_t, dict(whole, GLU=GLU_MODES["relu2"]),
                dict(num_warps=32)))
    out.append(("norm topk8 pairs", _norm_quant_kernel, nq_t,
                dict(BLOCK=4096, NORM=True, HAS_W=True, GLU=0, MODE=2, OUT_FP8=False, WRITE_NZ=False, PDL=True,
                     SEARCH=2), dict(num_warps=8)))
    out.append(("norm topk8 interp", _norm_quant_kernel, nq_t,
                dict(BLOCK=4096, NORM=True, HAS_W=True, GLU=0, MODE=2, OUT_FP8=False, WRITE_NZ=False, PDL=True,
                     SEARCH=3), dict(num_warps=8)))
    out.append(("norm topk8 bitwise", _norm_quant_kernel, nq_t,
                dict(BLOCK=4096, NORM=True, HAS_W=True, GLU=0, MODE=2, OUT_FP8=False, WRITE_NZ=False, PDL=True,
                     SEARCH=0), dict(num_warps=8)))
    nqc_t = {k: v for k, v in nq_t.items() if k != "k_top"}
    for glu in ("relu2", "silu"):
        out.append((f"norm {glu} int8 11008 chunks", _norm_quant_chunked_kernel, nqc_t,
                    dict(CHUNK=2048, NORM=True, HAS_W=True, GLU=GLU_MODES[glu], MODE=0, OUT_FP8=False,
                         WRITE_NZ=False, PDL=True), dict(num_warps=8)))
    out.append(("floor_read", _floor_read_kernel, dict(src_ptr="*i32", out_ptr="*i32", n="i32"),
                dict(BLOCK=8192, PDL=False), dict(num_warps=8)))
    gemm_t = dict(x_ptr="*fp8e4nv", xs_ptr="*fp32", w_ptr="*i32", ws_ptr="*fp32", y_ptr="*fp16", part_ptr="*i32",
                  ticket_ptr="*i32", M="i32", N="i32",
                  K="i32", KW="i32", ws_rows="i32", stride_xm="i32", stride_wn="i32", stride_ym="i32")
    for label, cfg, stages in (("gemm fp8 256x128x128", dict(BM=256, BN=128, BK=128, SWAP=False, PACKED=True), 3),
                               ("gemm fp8 swap 128x128x128", dict(BM=128, BN=128, BK=128, SWAP=True, PACKED=True), 3),
                               ("gemm fp8 no-decode 256x128x128",
                                dict(BM=256, BN=128, BK=128, SWAP=False, PACKED=False), 3)):
        t = dict(gemm_t, w_ptr="*fp8e4nv") if not cfg["PACKED"] else gemm_t
        out.append((label, _w158_gemm_kernel, t, dict(cfg, GROUP_M=8, FP8=True, IMPRECISE=0, PROMOTE=512 // cfg["BK"]),
                    dict(num_warps=8, num_stages=stages)))
    out.append(("gemm fp8 swar 256x128x128", _w158_gemm_kernel, gemm_t,
                dict(BM=256, BN=128, BK=128, SWAP=False, PACKED=True, GROUP_M=8, FP8=True, IMPRECISE=0, PROMOTE=4,
                     SWAR=True, USE_ASM=True), dict(num_warps=8, num_stages=3)))
    i8 = dict(gemm_t, x_ptr="*i8")
    out.append(("gemm int8 256x128x128", _w158_gemm_kernel, i8,
                dict(BM=256, BN=128, BK=128, SWAP=False, PACKED=True, GROUP_M=8, FP8=False, IMPRECISE=0, PROMOTE=1),
                dict(num_warps=8, num_stages=3)))
    out.append(("gemm int8 swar 256x128x128", _w158_gemm_kernel, i8,
                dict(BM=256, BN=128, BK=128, SWAP=False, PACKED=True, GROUP_M=8, FP8=False, IMPRECISE=0, PROMOTE=1,
                     SWAR=True, USE_ASM=True), dict(num_warps=8, num_stages=3)))
    out.append(("gemm int8 swar split-K 16x32x256", _w158_gemm_kernel, i8,
                dict(BM=16, BN=32, BK=256, SWAP=False, PACKED=True, GROUP_M=8, FP8=False, IMPRECISE=0, PROMOTE=1,
                     SWAR=True, SPLIT_K=4, USE_ASM=True), dict(num_warps=4, num_stages=4)))
    return out + _persistent_variants()


def _persistent_variants() -> list[tuple[str, object, dict, dict, dict]]:
    """The persistent decode block of b1.58 (4-bit KV) and a4.8 (3-bit KV; dense, and sparse Wo/Wdown),
    at the warps and tile rows the benchmark's plans use."""
    t = {n: "i32" for n in _decode_block_kernel.arg_names}
    t.update({n: "*fp16" for n in ("x_ptr", "qkv_ptr", "a_ptr", "h_ptr", "gu_ptr", "out_ptr", "nw_attn", "nw_o",
                                   "nw_ffn", "nw_down", "cos_ptr", "sin_ptr")})
    t.update({n: "*i32" for n in ("w_qkv", "w_o", "wt_o", "w_gu", "w_down", "wt_down", "qw_ptr", "nzi_ptr",
                                  "nnz_ptr", "sp_acc_ptr", "sp_ticket_ptr", "at_ticket_ptr", "bar_ptr", "kc_ptr",
                                  "vc_ptr", "kb_ptr", "vb_ptr")})
    t.update({n: "*fp32" for n in ("s_qkv", "s_o", "s_gu", "s_down", "qs_ptr", "m_ptr", "l_ptr", "o_ptr",
                                   "ks_ptr", "vs_ptr")})
    t.update(q_ptr="*i8", sm_scale="fp32", eps="fp32")
    base = dict(BN=32, KB=128, KB_DN=128, QB_QKV=2048, QB_O=2048, QB_GU=2048, QB_DN=4096, CH=1024, GEMV_STAGES=3,
                QBLOCK_D=4096, WBN=16, BI=128, D=128, BT=32, S=4, SP=4, KV=KV_LAYOUTS["nibble"], LB=15, ATT_STAGES=3,
                QM_TOPK=2, QM_INT8=0, BARRIER=True, USE_ASM=True, SKIP_Q=False, SKIP_ATT=False, SKIP_GEMV=False)
    b158 = dict(base, A48=False, WO_SPARSE=False, DOWN_SPARSE=False, GATE_FIRST=False, LN=15, QM=0,
                GLU=GLU_MODES["silu"])
    a48 = dict(base, A48=True, WO_SPARSE=False, DOWN_SPARSE=False, GATE_FIRST=True, LN=7, QM=1,
               GLU=GLU_MODES["relu2"])
    out = []
    for warps in (4, 8):
        opts = dict(num_warps=warps, enable_fp_fusion=False)
        out += [(f"persistent block b1.58 kv4 w{warps}", _decode_block_kernel, t, b158, opts),
                (f"persistent block a4.8 dense w{warps}", _decode_block_kernel, t, a48, opts),
                (f"persistent block a4.8 sparse w{warps}", _decode_block_kernel, t,
                 dict(a48, WO_SPARSE=True, DOWN_SPARSE=True), opts)]
    return out


def build_parser(p: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = p or argparse.ArgumentParser(prog="bitsim kernels compile-report", description=__doc__.splitlines()[0])
    p.add_argument("only", nargs="?", default="", help="compile only the variants whose label contains this text")
    return p


def run(args: argparse.Namespace) -> int:
    """Compile every variant (or those matching ``args.only``) and print one line of resources each."""
    print(f"triton {triton.__version__}, target sm_90")
    for label, fn, types, consts, opts in variants():
        if args.only and args.only not in label:
            continue
        try:
            k = _compile(fn, types, consts, **opts)
            res = dict(_resources(k.asm["cubin"]), smem=k.metadata.shared)
            print(f"{label:30s} {res} {_counts(k.asm['ptx'])}", flush=True)
        except Exception as e:  # noqa: BLE001 - report every variant
            print(f"{label:34s} FAILED: {repr(e)[-600:]}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``bitsim kernels compile-report [ONLY]`` (also ``python -m kernels.bench.compile_report``)."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
