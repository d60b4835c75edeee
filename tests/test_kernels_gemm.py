"""W1.58A8 / W1.58A4 GEMM and GEMV kernels are bit-exact against model.quant.qlinear."""

import pytest
import torch

from kernels.checks import content_checks
from kernels.packing import pack_ternary
from kernels.rmsnorm_quant import rmsnorm_quant
from kernels.ternary_gemm import (
    GEMV_ACC_BUDGET,
    GEMV_MAX_M,
    GEMV_PATH_MAX_M,
    gemv_config,
    gemv_key,
    scale_epilogue,
    w158_decode_weights,
    w158_gemv_fused,
    w158_matmul,
    w158_matmul_reference,
    w158_matmul_two_pass,
    w158_matmul_unpacked,
)
from kernels.tickets import ticket_counters
from model import quant as Q

DEV = "cuda" if torch.cuda.is_available() else "cpu"
SMALL = dict(BM=16, BN=32, BK=64, num_warps=4, num_stages=1)   # small tiles: fast under the interpreter


def _weights(N, K, seed):
    g = torch.Generator().manual_seed(seed)
    wq = Q.quantize_ternary(torch.randn(N, K, generator=g))
    return wq, pack_ternary(wq.codes).to(DEV)


def _acts(M, K, seed, fmt="int8"):
    g = torch.Generator().manual_seed(seed + 7)
    x = torch.randn(M, K, generator=g) * 3
    return Q.quantize_int8(x) if fmt == "int8" else Q.quantize_int4(x)


def _run(q, wp, wq, N, **kw):
    return w158_matmul(q.codes.to(DEV), q.scale.to(DEV), wp, wq.scale.to(DEV), N, **kw).cpu()


@pytest.mark.parametrize("M,N,K", [(1, 37, 200), (GEMV_MAX_M, 64, 130), (1, 16, 16)])
def test_gemv_int8_equals_qlinear_for_ragged_k(M, N, K):
    wq, wp = _weights(N, K, seed=K)
    q = _acts(M, K, seed=M)
    assert torch.equal(_run(q, wp, wq, N, path="gemv"), Q.qlinear(q, wq))


def test_gemv_over_several_k_chunks_is_exact_on_repeated_calls():
    # K = 600 with chunks of 8 words (128 values): 5 chunks, the last one ragged
    wq, wp = _weights(24, 600, seed=3)
    for seed in (1, 2):
        q = _acts(2, 600, seed=seed)
        assert torch.equal(_run(q, wp, wq, 24, path="gemv", config=dict(BN=8, KB=8, num_warps=4)), Q.qlinear(q, wq))


@pytest.mark.parametrize("M,fmt", [(8, "int8"), (13, "int4"), (GEMV_PATH_MAX_M, "int8")])
def test_batched_gemv_equals_qlinear_for_int8_and_int4_codes(M, fmt):
    # a decode batch on the CUDA-core GEMV: A8 codes, and A4 codes held in int8 (a4.8's batch route)
    wq, wp = _weights(40, 300, seed=M)
    q = _acts(M, 300, seed=M, fmt=fmt)
    assert torch.equal(_run(q, wp, wq, 40, path="gemv"), Q.qlinear(q, wq))
    assert torch.equal(_run(q, wp, wq, 40, path="gemv", config=dict(BN=8, KB=8, num_warps=2, num_stages=2)),
                       Q.qlinear(q, wq))


def test_batched_gemv_tiles_keep_the_accumulator_budget_and_their_own_key():
    for M in (1, 2, 4, 8, 16, 32):
        cfg = gemv_config(M, 4096)
        rows = 1 if M == 1 else 1 << (M - 1).bit_length()
        assert rows * cfg["BN"] * cfg["KB"] <= max(GEMV_ACC_BUDGET, rows * cfg["BN"] * 8)
    assert gemv_config(1, 4096)["KB"] == 128 and gemv_config(32, 4096)["KB"] == 8
    assert gemv_key(GEMV_MAX_M, 4096, 11008) == dict(N=4096, K=11008)        # the M = 1 tiles' key
    assert gemv_key(GEMV_MAX_M + 1, 4096, 11008) == dict(M="M<=8", N=4096, K=11008)
    assert gemv_key(32, 4096, 11008)["M"] == "M<=32"


@pytest.mark.parametrize("M,N,K", [(1, 37, 200), (GEMV_MAX_M + 1, 40, 300), (20, 70, 256)])
def test_gemm_int8_equals_qlinear_for_ragged_shapes(M, N, K):
    wq, wp = _weights(N, K, seed=N)
    q = _acts(M, K, seed=M)
    assert torch.equal(_run(q, wp, wq, N, path="gemm", config=SMALL), Q.qlinear(q, wq))


@pytest.mark.parametrize("swap", [False, True])
def test_gemm_on_unsigned_weight_fields_equals_qlinear(swap):
    # UCODE: the MMA multiplies code + 1 and each row's sum(x) comes off the int32 sums; ragged K and M
    wq, wp = _weights(40, 300, seed=11)
    q = _acts(9, 300, seed=11)
    y = _run(q, wp, wq, 40, path="gemm", config=dict(SMALL, SWAP=swap, UCODE=True))
    assert torch.equal(y, Q.qlinear(q, wq))
    x8 = q.codes.to(torch.float32).clamp(-8, 7).to(torch.float8_e4m3fn).to(DEV)
    with pytest.raises(ValueError, match="UCODE"):
        w158_matmul(x8, q.scale.to(DEV), wp, wq.scale.to(DEV), 40, config=dict(SMALL, UCODE=True))


@pytest.mark.parametrize("swap,ucode", [(False, False), (True, False), (False, True)])
def test_split_k_gemm_equals_qlinear_with_empty_splits_and_repeated_calls(swap, ucode):
    # K = 300 in BK = 64 tiles is 5 K steps: 2 and 3 splits are uneven, 8 leaves three splits empty;
    # the second call with new activations shows that the tickets reset themselves
    wq, wp = _weights(40, 300, seed=13)
    for split in (2, 3, 8):
        for seed in (1, 2):
            q = _acts(9, 300, seed=seed)
            cfg = dict(SMALL, SWAP=swap, UCODE=ucode, SPLIT_K=split)
            assert torch.equal(_run(q, wp, wq, 40, path="gemm", config=cfg), Q.qlinear(q, wq))
    assert not ticket_counters(DEV, 1 * 2, "w158_gemm").any()   # 1 M tile x 2 N tiles of 32: all back at 0


@pytest.mark.parametrize("imprecise", [None, 64])
def test_split_k_fp8_gemm_is_exact_with_promotion_steps(imprecise):
    # FP8 codes: each split's fp32 partial holds an exact integer; the default promotes every
    # 512 values (steps of 8 tiles), so K = 1100 has 3 steps to split
    N, K, M = 33, 1100, 9
    wq, wp = _weights(N, K, seed=17)
    q4 = _acts(M, K, seed=17, fmt="int4")
    x8 = q4.codes.to(torch.float32).to(torch.float8_e4m3fn).to(DEV)
    for split in (2, 3):
        y = w158_matmul(x8, q4.scale.to(DEV), wp, wq.scale.to(DEV), N, imprecise_acc=imprecise,
                        config=dict(SMALL, SPLIT_K=split)).cpu()
        assert torch.equal(y, Q.qlinear(q4, wq))


@pytest.mark.parametrize("extra", [{}, {"SWAP": True}, {"UCODE": True}, {"SPLIT_K": 3}])
def test_joined_weight_decode_equals_qlinear(extra):
    # JOIN builds the K-ordered code tile by joins of per-field tensors: same codes, ragged K and M
    wq, wp = _weights(40, 300, seed=19)
    q = _acts(9, 300, seed=19)
    assert torch.equal(_run(q, wp, wq, 40, path="gemm", config=dict(SMALL, JOIN=True, **extra)), Q.qlinear(q, wq))
    if not extra:
        q4 = _acts(9, 300, seed=19, fmt="int4")
        x8 = q4.codes.to(torch.float32).to(torch.float8_e4m3fn).to(DEV)
        y = w158_matmul(x8, q4.scale.to(DEV), wp, wq.scale.to(DEV), 40, config=dict(SMALL, JOIN=True)).cpu()
        assert torch.equal(y, Q.qlinear(q4, wq))


SWAR = dict(BM=16, BN=32, BK=128, num_warps=1, num_stages=1, SWAR=True)


@pytest.mark.parametrize("extra,K", [({}, 1100), ({"SWAP": True}, 1100), ({"SPLIT_K": 3}, 1100), ({}, 1536),
                                     ({"SPLIT_K": 2}, 640), ({"BK": 512}, 1100)])
def test_swar_weight_decode_equals_qlinear_for_int8_and_fp8_codes(extra, K):
    # SWAR: four fields per byte, each against its own gathered activation columns.  K = 1100 is ragged (not a
    # multiple of 16 or of BK); 1536 a multiple of the FP8 path's 512-step (no K masks), 640 of the INT8 tile
    # only (the FP8 steps of 4 tiles run past it, masked); BK = 512: one FP8 step of four MMAs of 128, each
    # promoting its own sum
    N, M = 40, 9
    wq, wp = _weights(N, K, seed=23)
    q = _acts(M, K, seed=23)
    assert torch.equal(_run(q, wp, wq, N, path="gemm", config=dict(SWAR, **extra)), Q.qlinear(q, wq))
    q4 = _acts(M, K, seed=23, fmt="int4")
    x8 = q4.codes.to(torch.float32).to(torch.float8_e4m3fn).to(DEV)
    y = w158_matmul(x8, q4.scale.to(DEV), wp, wq.scale.to(DEV), N, config=dict(SWAR, **extra)).cpu()
    assert torch.equal(y, Q.qlinear(q4, wq))


def _run_ptx(asm: str, word: int) -> list[int]:
    """The four outputs of a straight-line PTX block of shr / and / mul.lo / xor / mov on .b32 registers."""
    regs, mask = {"$4": word}, 0xFFFFFFFF
    ops = {"shr.b32": lambda a, b: a >> b, "and.b32": lambda a, b: a & b, "mul.lo.u32": lambda a, b: a * b,
           "xor.b32": lambda a, b: a ^ b}
    for line in asm.replace("{", "").replace("}", "").split(";"):
        line = line.strip()
        if not line or line.startswith(".reg"):
            continue
        op, args = line.split(None, 1)
        dst, *src = [a.strip() for a in args.split(",")]
        vals = [regs[a] if a in regs else int(a, 0) for a in src]
        regs[dst] = (vals[0] if op == "mov.b32" else ops[op](*vals)) & mask
    return [regs[f"${i}"] for i in range(4)]


def test_swar_ptx_decodes_each_byte_of_a_register_on_its_own():
    # the GPU-only PTX, run by a small interpreter: field i of byte b of the input lands in byte b of output i,
    # as code + 1 (int8) or as the e4m3 bits of 0, 1, 2; no carry between bytes, whatever the other bytes hold
    from kernels.ternary_gemm import _SWAR_ASM_FP8, _SWAR_ASM_INT8
    e4m3 = {0: 0x00, 1: 0x38, 2: 0x40}
    g = torch.Generator().manual_seed(3)
    fields = torch.randint(0, 3, (200, 4, 4), generator=g)          # words x bytes x fields, values 0..2
    for w in fields.tolist():
        word = sum(sum(f << (2 * i) for i, f in enumerate(byte)) << (8 * b) for b, byte in enumerate(w))
        for asm, enc in ((_SWAR_ASM_INT8.value, lambda f: f), (_SWAR_ASM_FP8.value, e4m3.get)):
            out = _run_ptx(asm, word)
            assert out == [sum(enc(w[b][i]) << (8 * b) for b in range(4)) for i in range(4)]
    assert torch.tensor(0x40, dtype=torch.uint8).view(torch.float8_e4m3fn).float().item() == 2.0


def test_swar_config_is_refused_where_it_cannot_run():
    wq, wp = _weights(40, 300, seed=2)
    q = _acts(4, 300, seed=2)
    for cfg, msg in ((dict(SWAR, BK=64), "BK >= 128"), (dict(SWAR, UCODE=True), "drop JOIN and UCODE"),
                     (dict(SWAR, BN=16, num_warps=8), "four per thread")):
        with pytest.raises(ValueError, match=msg):
            _run(q, wp, wq, 40, path="gemm", config=cfg)
    with pytest.raises(ValueError, match="need packed weights"):
        w158_matmul_unpacked(q.codes.to(DEV), q.scale.to(DEV), wq.codes.to(DEV), wq.scale.to(DEV), config=SWAR)


def test_ticket_counters_are_zeroed_once_and_refuse_an_empty_count():
    t = ticket_counters(DEV, 5, "test")
    assert t.dtype == torch.int32 and not t.any() and ticket_counters(DEV, 5, "test") is t
    assert ticket_counters(DEV, 5, "other") is not t          # one launch may use two owners' tickets
    with pytest.raises(ValueError, match="positive count"):
        ticket_counters(DEV, 0, "test")


def test_gemm_swapped_operands_equal_qlinear():
    wq, wp = _weights(40, 300, seed=5)
    q = _acts(9, 300, seed=5)
    y = _run(q, wp, wq, 40, path="gemm", config=dict(SMALL, SWAP=True))
    assert torch.equal(y, Q.qlinear(q, wq))


@pytest.mark.parametrize("M,N,K", [(1, 33, 200), (9, 40, 300)])
def test_w158a4_fp8_and_int8_unpack_paths_equal_qlinear(M, N, K):
    wq, wp = _weights(N, K, seed=K + 1)
    q4 = _acts(M, K, seed=M, fmt="int4")
    ref = Q.qlinear(q4, wq)
    fp8 = Q.QTensor(q4.codes, q4.scale, "int4", 4)
    x8 = q4.codes.to(torch.float32).to(torch.float8_e4m3fn).to(DEV)           # every int in [-8,7] is e4m3
    for imp in (None, 64, 128):     # promoted every 512 (default), every tile, every two tiles
        y8 = w158_matmul(x8, fp8.scale.to(DEV), wp, wq.scale.to(DEV), N, config=SMALL, imprecise_acc=imp).cpu()
        assert torch.equal(y8, ref)
    with pytest.raises(ValueError, match="multiple of it"):
        w158_matmul(x8, fp8.scale.to(DEV), wp, wq.scale.to(DEV), N, config=SMALL, imprecise_acc=100)
    assert torch.equal(_run(q4, wp, wq, N, path="gemm", config=SMALL), ref)    # int4 codes held in int8
    if M <= GEMV_MAX_M:
        assert torch.equal(_run(q4, wp, wq, N, path="gemv"), ref)


@pytest.mark.parametrize("out_dtype", [torch.bfloat16, torch.float32])
def test_output_dtypes_match_scale_acc_cast(out_dtype):
    wq, wp = _weights(24, 100, seed=9)
    q = _acts(3, 100, seed=9)
    ref = Q.qlinear(q, wq, out_dtype=out_dtype)
    assert torch.equal(_run(q, wp, wq, 24, out_dtype=out_dtype, path="gemv"), ref)
    assert torch.equal(_run(q, wp, wq, 24, out_dtype=out_dtype, path="gemm", config=SMALL), ref)


def test_extreme_codes_accumulate_exactly():
    # every product is -128 * -1 (or 127 * 1): the int32 sums reach 128*K
    K, N = 320, 20
    wc = torch.ones(N, K, dtype=torch.int8)
    wc[::2] = -1
    wq = Q.QTensor(wc, torch.tensor(0.5), "ternary", 2)
    xc = torch.full((2, K), -128, dtype=torch.int8)
    xc[1] = 127
    q = Q.QTensor(xc, torch.tensor([[1.0], [0.25]]), "int8", 8)
    wp = pack_ternary(wc).to(DEV)
    ref = Q.qlinear(q, wq, out_dtype=torch.float32)
    assert float(ref.abs().max()) == 128 * K * 0.5
    for path, cfg in (("gemv", None), ("gemm", SMALL)):
        assert torch.equal(_run(q, wp, wq, N, out_dtype=torch.float32, path=path, config=cfg), ref)


def test_bad_operands_raise_clear_errors():
    wq, wp = _weights(8, 64, seed=0)
    q = _acts(2, 64, seed=0)
    xs, ws = q.scale.to(DEV), wq.scale.to(DEV)
    x = q.codes.to(DEV)
    with pytest.raises(TypeError, match="x must have dtype"):
        w158_matmul(x.float(), xs, wp, ws, 8)
    with pytest.raises(ValueError, match="w_packed must have shape"):
        w158_matmul(x, xs, wp[:, :4].contiguous(), ws, 8)
    with pytest.raises(ValueError, match="w_packed must have shape"):
        w158_matmul(x, xs, wp, ws, 9)
    with pytest.raises(ValueError, match="x_scale must have shape"):
        w158_matmul(x, xs[:1], wp, ws, 8)
    with pytest.raises(ValueError, match="contiguous"):
        w158_matmul(torch.zeros(64, 2, dtype=torch.int8, device=DEV).t(), xs, wp, ws, 8)
    with pytest.raises(ValueError, match="NaN"):
        w158_matmul(x, torch.full_like(xs, float("nan")), wp, ws, 8)
    with pytest.raises(ValueError, match="GEMV path"):
        w158_matmul(torch.zeros(GEMV_PATH_MAX_M + 1, 64, dtype=torch.int8, device=DEV),
                    torch.ones(GEMV_PATH_MAX_M + 1, 1, device=DEV), wp, ws, 8, path="gemv")
    with pytest.raises(ValueError, match="2-D"):
        w158_matmul(x[0], xs, wp, ws, 8)
    with pytest.raises(ValueError, match="unknown config keys"):
        w158_matmul(x, xs, wp, ws, 8, path="gemv", config=dict(BM=16))
    with pytest.raises(ValueError, match="BK must be a power of two"):
        w158_matmul(x, xs, wp, ws, 8, path="gemm", config=dict(SMALL, BK=3))
    with pytest.raises(TypeError, match="out_dtype"):
        w158_matmul(x, xs, wp, ws, 8, out_dtype=torch.int32)


def test_packed_field_value_three_is_refused_before_the_launch():
    wq, wp = _weights(8, 64, seed=0)
    q = _acts(1, 64, seed=0)
    bad = wp.clone()
    bad[3, 1] |= 0x3 << 10                       # one field of row 3 set to 3 (no ternary code)
    with pytest.raises(ValueError, match="invalid packed field value 3"):
        w158_matmul(q.codes.to(DEV), q.scale.to(DEV), bad, wq.scale.to(DEV), 8)
    with content_checks(False):                  # the content checks can be turned off (the benchmark times so)
        w158_matmul(q.codes.to(DEV), q.scale.to(DEV), wp, wq.scale.to(DEV), 8)


def test_k_mismatch_inside_one_pad_group_is_refused():
    # weights packed for K=250 and activations of K=200 pad to the same 256 columns: the shapes
    # agree, but the codes in 200..249 would be dropped; packed for K=200 they are zero padding
    wq250, wp250 = _weights(8, 250, seed=2)
    q = _acts(1, 200, seed=2)
    with pytest.raises(ValueError, match="packed for a longer axis than 200"):
        w158_matmul(q.codes.to(DEV), q.scale.to(DEV), wp250, wq250.scale.to(DEV), 8)
    wq200, wp200 = _weights(8, 200, seed=2)
    assert torch.equal(_run(q, wp200, wq200, 8), Q.qlinear(q, wq200))


def test_one_scale_per_sub_matrix_of_a_fused_matrix():
    # fused QKV: three sub-matrices, each with its own ternary scale (docs/decisions.md 4)
    parts = [Q.quantize_ternary(torch.randn(16, 96, generator=torch.Generator().manual_seed(i))) for i in range(3)]
    wp = pack_ternary(torch.cat([p.codes for p in parts])).to(DEV)
    ws = torch.stack([p.scale.reshape(()) for p in parts]).to(DEV)
    for M in (1, 9):
        q = _acts(M, 96, seed=M)
        ref = torch.cat([Q.qlinear(q, p) for p in parts], dim=1)
        cfg = None if M == 1 else SMALL
        assert torch.equal(w158_matmul(q.codes.to(DEV), q.scale.to(DEV), wp, ws, 48, config=cfg).cpu(), ref)
    with pytest.raises(ValueError, match="one per equal sub-matrix"):
        w158_matmul(q.codes.to(DEV), q.scale.to(DEV), wp, torch.ones(5, device=DEV), 48)


def test_a_per_row_weight_scale_is_refused():
    # 48 rows with 48 scales divides evenly, but the ternary arithmetic has one scale per (sub-)matrix
    wq, wp = _weights(48, 96, seed=3)
    q = _acts(1, 96, seed=3)
    for ws in (torch.ones(48, device=DEV), torch.ones(16, device=DEV), torch.ones(1, 1, device=DEV)):
        with pytest.raises(ValueError, match="w_scale must be a scalar or 1-D"):
            w158_matmul(q.codes.to(DEV), q.scale.to(DEV), wp, ws, 48)


def test_fp8_activations_must_hold_int4_codes():
    wq, wp = _weights(16, 64, seed=4)
    q = _acts(5, 64, seed=4, fmt="int4")
    x8 = q.codes.to(torch.float8_e4m3fn)
    ok = w158_matmul(x8.to(DEV), q.scale.to(DEV), wp, wq.scale.to(DEV), 16, config=SMALL).cpu()
    assert torch.equal(ok, Q.qlinear(q, wq))
    for bad in (0.5, 9.0, -10.0):                       # not an integer / outside [-8, 7]
        xb = x8.clone()
        xb[2, 7] = bad
        with pytest.raises(ValueError, match="must hold INT4 codes"):
            w158_matmul(xb.to(DEV), q.scale.to(DEV), wp, wq.scale.to(DEV), 16, config=SMALL)


def test_gemm_with_the_weight_decode_left_out_equals_the_packed_kernel():
    wq, wp = _weights(40, 300, seed=13)
    q4 = _acts(9, 300, seed=13, fmt="int4")
    x8 = q4.codes.float().to(torch.float8_e4m3fn).to(DEV)
    y = w158_matmul_unpacked(x8, q4.scale.to(DEV), wq.codes.float().to(torch.float8_e4m3fn).to(DEV),
                             wq.scale.reshape(1).to(DEV), config=SMALL).cpu()
    assert torch.equal(y, Q.qlinear(q4, wq))
    assert torch.equal(w158_matmul_reference(q4.codes, q4.scale, wp.cpu(), wq.scale.reshape(1), 40), Q.qlinear(q4, wq))


FUSED = dict(BN=8, KB=8, num_warps=4)


@pytest.mark.parametrize("mode,glu,K", [("int8", None, 300), ("int4", None, 256), ("int8", "relu2", 200),
                                        ("int8", "silu", 128)])
def test_fused_norm_quant_gemv_gives_the_quantizer_codes_and_the_gemv_result(mode, glu, K):
    g = torch.Generator().manual_seed(K)
    N = 24
    x = (torch.randn(1, 2 * K if glu else K, generator=g) * 2).half().to(DEV)
    nw = (torch.rand(K, generator=g) + 0.5).half().to(DEV)
    wq, wp = _weights(N, K, seed=K)
    ws = wq.scale.reshape(1).to(DEV)
    y, codes, scale = w158_gemv_fused(x, wp, ws, N, mode=mode, norm_weight=nw, glu=glu, config=FUSED,
                                      return_codes=True)
    if glu == "relu2":
        ref_c, ref_s = rmsnorm_quant(x[:, K:], mode, nw, gate=x[:, :K])
    elif glu == "silu":
        a = (torch.nn.functional.silu(x[:, :K].float()).half().float() * x[:, K:].float()).half()
        ref_c, ref_s = rmsnorm_quant(a, mode, nw)
    else:
        ref_c, ref_s = rmsnorm_quant(x, mode, nw)
    assert torch.equal(codes, ref_c) and torch.equal(scale, ref_s)
    assert torch.equal(y.cpu(), Q.qlinear(Q.QTensor(ref_c.cpu(), ref_s.cpu(), mode, 8), wq))


def test_fused_gemv_residual_and_gate_first_epilogues():
    g = torch.Generator().manual_seed(5)
    K, N = 256, 32
    x = torch.randn(1, K, generator=g).half().to(DEV)
    parts = [Q.quantize_ternary(torch.randn(N // 2, K, generator=g)) for _ in range(2)]   # gate, up
    wp = pack_ternary(torch.cat([p.codes for p in parts])).to(DEV)
    ws = torch.stack([p.scale.reshape(()) for p in parts]).to(DEV)
    c, s = rmsnorm_quant(x, "int4")
    full = w158_matmul(c, s, wp, ws, N)
    res = torch.randn(1, N, generator=g).half().to(DEV)
    y = w158_gemv_fused(x, wp, ws, N, mode="int4", residual=res, config=FUSED)
    assert torch.equal(y, (full.float() + res.float()).half())
    yg = w158_gemv_fused(x, wp, ws, N, mode="int4", gate_first=True, config=FUSED)
    gate = full[:, : N // 2]
    expect = torch.cat((gate, torch.where(gate > 0, full[:, N // 2:], torch.zeros_like(gate))), dim=1)
    assert 0 < int((gate > 0).sum()) < N // 2 and torch.equal(yg, expect)      # some up rows skipped, the rest exact


def test_fused_gemv_refuses_bad_inputs():
    wq, wp = _weights(8, 64, seed=0)
    ws = wq.scale.reshape(1).to(DEV)
    x = torch.randn(1, 64).half().to(DEV)
    with pytest.raises(ValueError, match="one token"):
        w158_gemv_fused(x.repeat(2, 1), wp, ws, 8)
    with pytest.raises(ValueError, match="mode must be"):
        w158_gemv_fused(x, wp, ws, 8, mode="int3")
    with pytest.raises(ValueError, match="glu must be"):
        w158_gemv_fused(x, wp, ws, 8, glu="gelu")
    with pytest.raises(ValueError, match="residual must have shape"):
        w158_gemv_fused(x, wp, ws, 8, residual=torch.zeros(1, 9, dtype=torch.float16, device=DEV))
    with pytest.raises(ValueError, match="NaN"):
        w158_gemv_fused(torch.full_like(x, float("nan")), wp, ws, 8)


@pytest.mark.skipif(DEV != "cpu", reason="device check only meaningful without a GPU")
def test_cpu_tensors_without_interpreter_are_refused(monkeypatch):
    wq, wp = _weights(8, 64, seed=0)
    q = _acts(1, 64, seed=0)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="CUDA tensor"):
        w158_matmul(q.codes, q.scale, wp, wq.scale, 8)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("M", [1, 4, 64, 300])
def test_gpu_default_configs_equal_qlinear_on_7b_width(M):
    N, K = 512, 4096
    wq, wp = _weights(N, K, seed=M)
    q8, q4 = _acts(M, K, seed=M), _acts(M, K, seed=M, fmt="int4")
    x8 = q4.codes.float().to(torch.float8_e4m3fn).to(DEV)
    for cfg in (None, dict(SWAP=True)) if M > 4 else (None,):
        assert torch.equal(_run(q8, wp, wq, N, config=cfg), Q.qlinear(q8, wq))
        y = w158_matmul(x8, q4.scale.to(DEV), wp, wq.scale.to(DEV), N, config=cfg).cpu()
        assert torch.equal(y, Q.qlinear(q4, wq))


def test_decoded_weights_are_the_codes_one_per_byte():
    wq, wp = _weights(40, 200, seed=9)
    d = w158_decode_weights(wp).cpu()
    assert d.shape == (40, 256) and torch.equal(d[:, :200], wq.codes) and not bool(d[:, 200:].any())
    d8 = w158_decode_weights(wp, fp8=True).cpu()
    assert d8.dtype == torch.float8_e4m3fn and torch.equal(d8[:, :200].float(), wq.codes.float())


def test_two_pass_prefill_equals_qlinear():
    wq, wp = _weights(48, 256, seed=10)
    q = _acts(40, 256, seed=10)
    y = w158_matmul_two_pass(q.codes.to(DEV), q.scale.to(DEV), wp, wq.scale.to(DEV), 48).cpu()
    assert torch.equal(y, Q.qlinear(q, wq))
    with pytest.raises(ValueError, match="two-pass route needs M > 16"):
        w158_matmul_two_pass(q.codes[:8].to(DEV), q.scale[:8].to(DEV), wp, wq.scale.to(DEV), 48)


@pytest.mark.parametrize("acc_dtype, shards, out_dtype", [(torch.int32, 1, torch.float16),
                                                          (torch.float32, 3, torch.float16),
                                                          (torch.int32, 3, torch.bfloat16)])
def test_the_one_pass_epilogue_equals_scale_acc_bit_for_bit(acc_dtype, shards, out_dtype):
    g = torch.Generator().manual_seed(31)
    M, N = 37, 3 * 48
    acc = torch.randint(-2 ** 20, 2 ** 20, (M, N), generator=g, dtype=torch.int32).to(acc_dtype)
    xs = torch.rand(M, 1, generator=g) * 0.07 + 1e-3
    ws = torch.rand(shards, generator=g) * 0.9 + 0.05
    ref = Q.scale_acc(acc, xs, ws.repeat_interleave(N // shards).reshape(1, N), out_dtype)
    y = scale_epilogue(acc.to(DEV), xs.to(DEV), ws.to(DEV), N // shards, out_dtype).cpu()
    assert y.dtype == out_dtype and torch.equal(y, ref)


def test_the_epilogue_refuses_scales_that_do_not_cover_the_sums():
    acc = torch.zeros(4, 96, dtype=torch.int32, device=DEV)
    with pytest.raises(ValueError, match="one scale per row"):
        scale_epilogue(acc, torch.ones(3, device=DEV), torch.ones(1, device=DEV), 96)
    with pytest.raises(ValueError, match="must cover N=96"):
        scale_epilogue(acc, torch.ones(4, device=DEV), torch.ones(2, device=DEV), 32)
    with pytest.raises(TypeError):
        scale_epilogue(acc.to(torch.int16), torch.ones(4, device=DEV), torch.ones(1, device=DEV), 96)
