"""Sparse-activation ternary GEMVs (on the quantizer's index list, and choosing the rows from the codes)
equal model.quant.qlinear exactly."""

import pytest
import torch

from kernels.checks import content_checks
from kernels.packing import pack_ternary
from kernels.rmsnorm_quant import rmsnorm_quant
from kernels.sparse_gemv import sparse_gemv, sparse_gemv_masked
from model import quant as Q

DEV = "cuda" if torch.cuda.is_available() else "cpu"
SMALL = dict(WBN=4, BI=8, num_warps=4)
# slices of 4 chunks of 8 rows, 64 outputs per column block: the shapes below are multiples of neither
MASKED = dict(WBN=4, BI=8, KS=4, num_warps=4)


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


def _quantized_glu_layer(seed: int):
    g = torch.Generator().manual_seed(seed)
    up, gate = torch.randn(1, 96, generator=g), torch.randn(1, 96, generator=g)
    wq = Q.quantize_ternary(torch.randn(24, 96, generator=g))
    return up, gate, wq, pack_ternary(wq.codes.t().contiguous()).to(DEV)


@pytest.mark.parametrize("masked", [False, True])
def test_the_quantizers_output_feeds_the_sparse_gemv(masked):
    # a4.8's Wdown at decode: the ReLU²GLU + INT8 quantizer's index list drives the listed kernel; with
    # DecodePlan(wdown="masked") the quantizer writes codes only and the masked kernel picks the rows
    up, gate, wq, wtp = _quantized_glu_layer(2 if not masked else 12)
    out = rmsnorm_quant(up.to(DEV), "int8", gate=gate.to(DEV), norm=False, nonzero=not masked)
    if masked:
        y = sparse_gemv_masked(out[0], out[1], wtp, wq.scale.to(DEV), 24, config=MASKED).cpu()
    else:
        codes, xs, nzi, nnz = out
        y = sparse_gemv(codes, nzi[0], nnz, xs, wtp, wq.scale.to(DEV), 24, config=SMALL).cpu()
    assert torch.equal(y, Q.qlinear(Q.quantize_int8(Q.relu2glu(up, gate)), wq))


@pytest.mark.parametrize("masked", [False, True])
def test_bf16_output_matches_scale_acc(masked):
    wq, q, args = _case(20, 64, 0.5, seed=3)
    if masked:
        codes, _, _, xs, wtp, ws = args
        y = sparse_gemv_masked(codes, xs, wtp, ws, 20, out_dtype=torch.bfloat16, config=MASKED).cpu()
    else:
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


def _masked_args(N, K, sparsity, seed):
    wq, q, (codes, _, _, xs, wtp, ws) = _case(N, K, sparsity, seed)
    return wq, q, (codes, xs, wtp, ws)


@pytest.mark.parametrize("compact", [True, False])
@pytest.mark.parametrize("N,K,sparsity", [(37, 200, 0.84), (130, 96, 0.5), (70, 50, 0.0), (40, 72, 1.0)])
def test_masked_sparse_gemv_equals_qlinear_with_and_without_residual_and_cleans_its_workspace(N, K, sparsity,
                                                                                               compact):
    # no index list: each program picks its slice's rows from the codes; 100 % zeros gives y = 0 (or the
    # residual); the workspace is clean after each call, so calls in a row (residual or not) stay exact
    wq, q, args = _masked_args(N, K, sparsity, seed=N + K)
    cfg = dict(MASKED, COMPACT=compact)
    ref = Q.qlinear(q, wq)
    res = torch.randn(1, N, generator=torch.Generator().manual_seed(K)).half()
    if sparsity == 1.0:
        assert torch.equal(ref, torch.zeros(1, N, dtype=torch.float16))
    for residual in (None, res, None):
        y = sparse_gemv_masked(*args, N, config=cfg, residual=None if residual is None else residual.to(DEV)).cpu()
        want = ref if residual is None else (ref.float() + residual.float()).half()
        assert torch.equal(y, want)


def test_masked_and_listed_kernels_share_the_workspace_in_turn():
    # same column blocks: one workspace and ticket row serve both kernels, each leaves it clean
    wq, q, args = _case(37, 200, 0.84, seed=11)
    codes, _, _, xs, wtp, ws = args
    ref = Q.qlinear(q, wq)
    for _ in range(2):
        assert torch.equal(sparse_gemv(*args, 37, config=SMALL).cpu(), ref)
        assert torch.equal(sparse_gemv_masked(codes, xs, wtp, ws, 37, config=MASKED).cpu(), ref)


def test_masked_bad_inputs_raise_errors_naming_the_argument():
    wq, q, (codes, xs, wtp, ws) = _masked_args(16, 64, 0.5, seed=14)
    res = torch.zeros(1, 16, dtype=torch.float16, device=DEV)
    bad_field = wtp.clone()
    bad_field[0, 0] = 3                                  # a packed field holding 3: no ternary code
    cases = [
        (dict(x_codes=codes.repeat(2, 1)), ValueError, r"sparse_gemv_masked is a decode kernel: x_codes must be"),
        (dict(x_codes=codes.float()), TypeError, "x_codes must have dtype"),
        (dict(x_scale=xs.double()), TypeError, "x_scale must have dtype"),
        (dict(x_scale=xs.repeat(2, 1)), ValueError, "x_scale and w_scale must each hold one value"),
        (dict(x_scale=torch.full_like(xs, float("nan"))), ValueError, "x_scale contains NaN"),
        (dict(w_scale=ws.half()), TypeError, "w_scale must have dtype"),
        (dict(wt_packed=wtp.t().contiguous()), ValueError, "wt_packed must be"),
        (dict(wt_packed=bad_field), ValueError, "wt_packed holds the invalid packed field value 3"),
        (dict(N=200), ValueError, "wt_packed must be"),
        (dict(residual=res.float()), TypeError, "residual must have dtype"),
        (dict(residual=res[:, :8]), ValueError, r"residual must have shape \(1, 16\)"),
        (dict(residual=torch.full_like(res, float("inf"))), ValueError, "residual contains NaN or inf"),
        (dict(config=dict(KS=3)), ValueError, "sparse_masked config KS must be a power of two"),
        (dict(config=dict(COMPACT=1)), ValueError, "sparse_masked config COMPACT must be true or false"),
    ]
    for change, err, msg in cases:
        kw = dict(x_codes=codes, x_scale=xs, wt_packed=wtp, w_scale=ws, N=16, config=MASKED)
        kw.update(change)
        with pytest.raises(err, match=msg):
            sparse_gemv_masked(**kw)
