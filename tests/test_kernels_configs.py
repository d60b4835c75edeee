"""The tile-config table: launchers use a measured (TUNED) entry for their shape, and every
candidate the benchmark sweeps names only keys its launcher knows."""
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from kernels import configs  # noqa: E402
from kernels.packing import pack_ternary  # noqa: E402
from kernels.ternary_gemm import w158_matmul  # noqa: E402
from model import quant as Q  # noqa: E402

DEV = "cuda" if torch.cuda.is_available() else "cpu"
KNOWN = {
    "gemm": {"BM", "BN", "BK", "GROUP_M", "SWAP", "DECODE", "num_warps", "num_stages"},
    "gemv": {"BN", "WB", "ITERS", "num_warps"},
    "sparse": {"WBN", "BI", "num_warps"},
    "attention": {"BT", "S", "S_MUL", "num_warps", "USE_DOT", "FMA"},
}


def test_candidates_use_only_known_keys():
    for kernel, cands in configs.CANDIDATES.items():
        assert cands, kernel
        for cfg in cands:
            assert set(cfg) <= KNOWN[kernel], (kernel, cfg)


def test_buckets_and_keys_are_stable():
    assert [configs.gemm_m_bucket(m) for m in (1, 16, 17, 256, 2048, 4097)] == \
        ["M<=16", "M<=16", "M<=64", "M<=256", "M<=4096", "M>4096"]
    assert configs.ctx_bucket(8192) == "T<=8192" and configs.ctx_bucket(40000) == "T>32768"
    assert configs.shape_key(N=8, K=4, M="M<=16") == "K=4,M=M<=16,N=8"
    with pytest.raises(ValueError, match="unknown kernel"):
        configs.tuned("conv", N=1)


def test_launcher_uses_the_tuned_entry_of_its_shape(monkeypatch):
    N, K, M = 24, 96, 9
    g = torch.Generator().manual_seed(3)
    wq = Q.quantize_ternary(torch.randn(N, K, generator=g))
    q = Q.quantize_int8(torch.randn(M, K, generator=g))
    args = (q.codes.to(DEV), q.scale.to(DEV), pack_ternary(wq.codes).to(DEV), wq.scale.to(DEV), N)
    key = configs.shape_key(M=configs.gemm_m_bucket(M), N=N, K=K, prec="int8")
    small = dict(BM=16, BN=16, BK=32, num_warps=1, num_stages=1)
    monkeypatch.setitem(configs.TUNED, "gemm", {key: dict(small, DECODE=1)})
    assert torch.equal(w158_matmul(*args).cpu(), Q.qlinear(q, wq))          # the tuned tile runs, exactly
    monkeypatch.setitem(configs.TUNED, "gemm", {key: dict(small, DECODE=7)})
    with pytest.raises(ValueError, match="DECODE must be"):                  # ... and it is the one consulted
        w158_matmul(*args)


def test_load_tuned_merges_a_sweep_file_and_refuses_unknown_kernels(tmp_path, monkeypatch):
    import json

    from kernels.benchmark import load_tuned

    for kernel in configs.TUNED:
        monkeypatch.setitem(configs.TUNED, kernel, {})
    good = tmp_path / "tuned_configs.json"
    good.write_text(json.dumps({"gemv": {"K=4096,N=4096": {"BN": 8, "WB": 64, "ITERS": 2, "num_warps": 4}}}))
    load_tuned(good)
    assert configs.tuned("gemv", N=4096, K=4096) == {"BN": 8, "WB": 64, "ITERS": 2, "num_warps": 4}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"conv": {}}))
    with pytest.raises(ValueError, match="keys among"):
        load_tuned(bad)
