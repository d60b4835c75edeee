"""Sparse-activation ternary GEMV reads only listed rows and equals model.quant.qlinear exactly."""

import pytest
import torch

from kernels.checks import content_checks
from kernels.packing import pack_ternary
from kernels.rmsnorm_quant import rmsnorm_quant
from kernels.sparse_gemv import sparse_gemv
from model import quant as Q

DEV = "cuda" if torch.cuda.is_available() else "cpu"
SMALL = dict(WBN=4, BI=8, num_warps=4)


def _case(N, K, sparsity, seed):
    g = torch.Generator().manual_seed(seed)
    wq = Q.quantize_ternary(torch.randn(N, K, generator=g))
    x = torch.randn(1, K, generator=g)
    x[0, torch.randperm(K, generator=g)[: round(sparsity * K)]] = 0.0
    q = Q.quantize_int8(x)
    nz = torch.nonzero(q.codes[0]).flatten().to(torch.int32)
    nzi = torch.zeros(K, dtype=torch.int32)
    nzi[: nz.numel()] = nz
    nnz = torch.tensor([nz.numel()], dtype=torch.int32)
    wtp = pack_ternary(wq.codes.t().contiguous())
    args = [t.to(DEV) for t in (q.codes, nzi, nnz, q.scale, wtp, wq.scale)]
    return wq, q, args


@pytest.mark.parametrize("N,K,sparsity", [(37, 200, 0.84), (130, 96, 0.5), (16, 50, 0.0)])
def test_sparse_gemv_equals_qlinear_and_cleans_its_workspace(N, K, sparsity):
    wq, q, args = _case(N, K, sparsity, seed=N + K)
    ref = Q.qlinear(q, wq)
    for _ in range(2):                               # the second call sees the cleared workspace
        assert torch.equal(sparse_gemv(*args, N, config=SMALL).cpu(), ref)


def test_all_zero_activation_gives_zero_output():
    wq, q, args = _case(40, 64, 1.0, seed=1)
    y = sparse_gemv(*args, 40, config=SMALL).cpu()
    assert torch.equal(y, torch.zeros(1, 40, dtype=torch.float16))


def test_quantizer_nonzero_list_feeds_sparse_gemv():
    # the fused ReLU²GLU + INT8 quantizer's index list drives the sparse GEMV (a4.8 Wdown at decode)
    g = torch.Generator().manual_seed(2)
    up, gate = torch.randn(1, 96, generator=g), torch.randn(1, 96, generator=g)
    wq = Q.quantize_ternary(torch.randn(24, 96, generator=g))
    codes, xs, nzi, nnz = rmsnorm_quant(up.to(DEV), "int8", gate=gate.to(DEV), norm=False, nonzero=True)
    y = sparse_gemv(codes, nzi[0], nnz, xs, pack_ternary(wq.codes.t().contiguous()).to(DEV),
                    wq.scale.to(DEV), 24, config=SMALL).cpu()
    assert torch.equal(y, Q.qlinear(Q.quantize_int8(Q.relu2glu(up, gate)), wq))


def test_bf16_output_matches_scale_acc():
    wq, q, args = _case(20, 64, 0.5, seed=3)
    y = sparse_gemv(*args, 20, out_dtype=torch.bfloat16, config=SMALL).cpu()
    assert torch.equal(y, Q.qlinear(q, wq, out_dtype=torch.bfloat16))


def test_bad_inputs_raise_clear_errors():
    wq, q, (codes, nzi, nnz, xs, wtp, ws) = _case(16, 64, 0.5, seed=4)
    with pytest.raises(ValueError, match=r"must be \[1, K\]"):
        sparse_gemv(codes.repeat(2, 1), nzi, nnz, xs, wtp, ws, 16)
    with pytest.raises(TypeError, match="nz_index must have dtype"):
        sparse_gemv(codes, nzi.long(), nnz, xs, wtp, ws, 16)
    with pytest.raises(ValueError, match="wt_packed must be"):
        sparse_gemv(codes, nzi, nnz, xs, wtp, ws, 200)
    with pytest.raises(ValueError, match="NaN"):
        sparse_gemv(codes, nzi, nnz, torch.full_like(xs, float("inf")), wtp, ws, 16)
    with pytest.raises(TypeError, match="x_codes must have dtype"):
        sparse_gemv(codes.float(), nzi, nnz, xs, wtp, ws, 16)


def test_index_list_is_checked_before_the_launch():
    # an index >= K would read outside the weights, a negative or repeated one or an unlisted
    # non-zero code would give a wrong sum; nnz must lie in [0, K]; all refused, never run
    wq, q, (codes, nzi, nnz, xs, wtp, ws) = _case(16, 64, 0.5, seed=6)
    n = int(nnz[0])
    cases = []
    big = nzi.clone()
    big[0] = 64
    cases.append((big, nnz, "outside"))
    neg = nzi.clone()
    neg[1] = -3
    cases.append((neg, nnz, "outside"))
    dup = nzi.clone()
    dup[1] = dup[0]
    cases.append((dup, nnz, "repeats an index"))
    cases.append((nzi, torch.tensor([65], dtype=torch.int32, device=DEV), "nnz=65 must lie"))
    cases.append((nzi, torch.tensor([-1], dtype=torch.int32, device=DEV), "nnz=-1 must lie"))
    cases.append((nzi, torch.tensor([n - 1], dtype=torch.int32, device=DEV), "list every non-zero code"))
    for index, count, msg in cases:
        with pytest.raises(ValueError, match=msg):
            sparse_gemv(codes, index, count, xs, wtp, ws, 16, config=SMALL)


def test_out_of_range_indices_and_counts_read_nothing_outside_with_checks_off():
    # content checks off (as the benchmark times): the kernel itself ignores an index outside
    # [0, K) and clamps the count to [0, K], so nothing is read outside x or the weights
    wq, q, (codes, nzi, nnz, xs, wtp, ws) = _case(16, 64, 0.5, seed=8)
    n = int(nnz[0])
    bad = nzi.clone()
    dropped = int(bad[0])
    bad[0] = 10 ** 6
    bad[1 % n] = -(10 ** 6) if n > 1 else bad[1 % n]
    kept = q.codes.clone()
    kept[0, dropped] = 0
    if n > 1:
        kept[0, int(nzi[1])] = 0
    with content_checks(False):
        y = sparse_gemv(codes, bad, nnz, xs, wtp, ws, 16, config=SMALL).cpu()
        every = torch.arange(64, dtype=torch.int32, device=DEV)
        y_all = sparse_gemv(codes, every, torch.tensor([10 ** 6], dtype=torch.int32, device=DEV), xs, wtp, ws, 16,
                            config=SMALL).cpu()
    assert torch.equal(y, Q.qlinear(Q.QTensor(kept, q.scale, "int8", 8), wq))
    # a count past K acts as K: a list of every index then gives the dense product
    assert torch.equal(y_all, Q.qlinear(q, wq))


def test_residual_epilogue_adds_like_torch():
    wq, q, args = _case(24, 64, 0.7, seed=7)
    res = torch.randn(1, 24, generator=torch.Generator().manual_seed(1)).half().to(DEV)
    y = sparse_gemv(*args, 24, config=SMALL, residual=res).cpu()
    assert torch.equal(y, (Q.qlinear(q, wq).float() + res.cpu().float()).half())
