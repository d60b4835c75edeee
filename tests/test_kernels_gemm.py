"""W1.58A8 / W1.58A4 GEMM and GEMV kernels are bit-exact against model.quant.qlinear."""
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from kernels.packing import pack_ternary  # noqa: E402
from kernels.ternary_gemm import GEMV_MAX_M, w158_matmul  # noqa: E402
from model import quant as Q  # noqa: E402

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


def test_gemv_split_k_workspace_cleans_itself_between_calls():
    # K = 2100 spans several K slices (1024 values each): partials meet through int32 atomics
    wq, wp = _weights(24, 2100, seed=3)
    ref = None
    for seed in (1, 2):
        q = _acts(2, 2100, seed=seed)
        ref = Q.qlinear(q, wq)
        assert torch.equal(_run(q, wp, wq, 24, path="gemv"), ref)


@pytest.mark.parametrize("M,N,K", [(1, 37, 200), (GEMV_MAX_M + 1, 40, 300), (20, 70, 256)])
def test_gemm_int8_equals_qlinear_for_ragged_shapes(M, N, K):
    wq, wp = _weights(N, K, seed=N)
    q = _acts(M, K, seed=M)
    assert torch.equal(_run(q, wp, wq, N, path="gemm", config=SMALL), Q.qlinear(q, wq))


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
    y8 = w158_matmul(x8, fp8.scale.to(DEV), wp, wq.scale.to(DEV), N, config=SMALL).cpu()
    assert torch.equal(y8, ref)
    assert torch.equal(_run(q4, wp, wq, N, path="gemm", config=SMALL), ref)    # int4 codes held in int8
    if M <= GEMV_MAX_M:
        assert torch.equal(_run(q4, wp, wq, N, path="gemv"), ref)


@pytest.mark.parametrize("swap", [False, True])
def test_four_codes_per_register_decode_equals_qlinear(swap):
    # DECODE=1 builds the int8 / fp8 weight tile four bytes at a time; both must equal qlinear
    wq, wp = _weights(40, 300, seed=11)
    q8, q4 = _acts(9, 300, seed=11), _acts(9, 300, seed=12, fmt="int4")
    cfg = dict(SMALL, DECODE=1, SWAP=swap)
    assert torch.equal(_run(q8, wp, wq, 40, path="gemm", config=cfg), Q.qlinear(q8, wq))
    x8 = q4.codes.to(torch.float32).to(torch.float8_e4m3fn).to(DEV)
    y = w158_matmul(x8, q4.scale.to(DEV), wp, wq.scale.to(DEV), 40, config=cfg).cpu()
    assert torch.equal(y, Q.qlinear(q4, wq))


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
        w158_matmul(torch.zeros(GEMV_MAX_M + 1, 64, dtype=torch.int8, device=DEV),
                    torch.ones(GEMV_MAX_M + 1, 1, device=DEV), wp, ws, 8, path="gemv")
    with pytest.raises(ValueError, match="2-D"):
        w158_matmul(x[0], xs, wp, ws, 8)
    with pytest.raises(ValueError, match="unknown config keys"):
        w158_matmul(x, xs, wp, ws, 8, path="gemv", config=dict(BM=16))
    with pytest.raises(ValueError, match="DECODE must be"):
        w158_matmul(x, xs, wp, ws, 8, path="gemm", config=dict(SMALL, DECODE=2))
    with pytest.raises(TypeError, match="out_dtype"):
        w158_matmul(x, xs, wp, ws, 8, out_dtype=torch.int32)


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
    for cfg in (None, dict(DECODE=1)) if M > 4 else (None,):      # DECODE=1: the PTX byte-SIMD decode
        assert torch.equal(_run(q8, wp, wq, N, config=cfg), Q.qlinear(q8, wq))
        y = w158_matmul(x8, q4.scale.to(DEV), wp, wq.scale.to(DEV), N, config=cfg).cpu()
        assert torch.equal(y, Q.qlinear(q4, wq))
