"""The tile-config table: launchers use the measured entry of their shape from the table they are
given, every config value is checked before a launch, and sweep files are validated on load."""
import json

import pytest
import torch

from kernels import configs
from kernels.configs import CONFIG_RULES, ConfigTable, check_config, load_config_table
from kernels.kv_attention import QuantKVCache, decode_attention, kv_write
from kernels.packing import pack_ternary
from kernels.sparse_gemv import sparse_gemv
from kernels.ternary_gemm import w158_matmul
from model import quant as Q

DEV = "cuda" if torch.cuda.is_available() else "cpu"


def test_candidates_use_only_known_keys_and_valid_values():
    for kernel, cands in configs.CANDIDATES.items():
        assert cands, kernel
        for cfg in cands:
            check_config(kernel, {k: v for k, v in cfg.items() if k not in configs.SWEEP_KEYS})
    for cfg in configs.SMALL_M_GEMM_CANDIDATES:
        check_config("gemm", cfg)
    for cfg in configs.SERVING_GEMV_CANDIDATES:
        check_config("gemv", cfg)


def test_buckets_and_keys_are_stable():
    assert [configs.gemm_m_bucket(m) for m in (1, 16, 17, 256, 2048, 4097)] == \
        ["M<=16", "M<=16", "M<=64", "M<=256", "M<=4096", "M>4096"]
    assert [configs.gemv_m_bucket(m) for m in (5, 8, 9, 16, 32)] == ["M<=8", "M<=8", "M<=16", "M<=16", "M<=32"]
    with pytest.raises(ValueError, match="at most 32 rows"):
        configs.gemv_m_bucket(33)
    assert configs.ctx_bucket(8192) == "T<=8192" and configs.ctx_bucket(40000) == "T>32768"
    assert configs.shape_key(N=8, K=4, M="M<=16") == "K=4,M=M<=16,N=8"
    with pytest.raises(ValueError, match="unknown kernel"):
        ConfigTable().lookup("conv", N=1)


def _gemm_args(N=24, K=96, M=9):
    g = torch.Generator().manual_seed(3)
    wq = Q.quantize_ternary(torch.randn(N, K, generator=g))
    q = Q.quantize_int8(torch.randn(M, K, generator=g))
    return wq, q, (q.codes.to(DEV), q.scale.to(DEV), pack_ternary(wq.codes).to(DEV), wq.scale.to(DEV), N)


def test_launcher_uses_the_entry_of_its_shape_from_the_table_it_is_given():
    wq, q, args = _gemm_args()
    key = configs.shape_key(M=configs.gemm_m_bucket(9), N=24, K=96, prec="int8")
    small = dict(BM=16, BN=16, BK=32, num_warps=1, num_stages=1)
    table = ConfigTable({"gemm": {key: dict(small, SWAP=True)}})
    assert torch.equal(w158_matmul(*args, tuned=table).cpu(), Q.qlinear(q, wq))      # the tuned tile runs, exactly
    with pytest.raises(ValueError, match="SWAP must be true or false"):
        ConfigTable({"gemm": {key: dict(small, SWAP=7)}})
    with pytest.raises(ValueError, match="BK must be a power of two"):
        w158_matmul(*args, tuned=ConfigTable({"gemm": {key: dict(small, BK=48)}}))


def test_table_is_immutable_and_with_entry_returns_a_new_table():
    t = ConfigTable()
    t2 = t.with_entry("gemv", "K=64,N=8", dict(BN=8, KB=4, num_warps=4))
    assert t.lookup("gemv", N=8, K=64) is None and t2.lookup("gemv", N=8, K=64) == dict(BN=8, KB=4, num_warps=4)
    with pytest.raises(TypeError):
        t2.entries["gemv"]["K=64,N=8"] = {}


@pytest.mark.parametrize("kernel,key,value,msg", [
    ("gemm", "BK", 3, "power of two"), ("gemm", "BM", 0, "positive"), ("gemv", "num_warps", -4, "one of"),
    ("sparse", "BI", 3, "power of two"), ("attention", "S", 0, "positive"), ("gemm", "SWAP", 1, "true or false"),
    ("gemv", "BN", 2.0, "must be an int"), ("gemm", "BN", 4096, "at most"),
    ("sparse_masked", "KS", 3, "power of two"), ("sparse_masked", "COMPACT", 1, "true or false"),
])
def test_bad_config_values_are_refused_naming_the_key(kernel, key, value, msg):
    with pytest.raises(ValueError, match=f"{kernel} config {key} .*{msg}"):
        check_config(kernel, {key: value})


def test_every_launcher_refuses_bad_config_values_before_launching():
    wq, q, args = _gemm_args(N=16, K=64, M=1)
    with pytest.raises(ValueError, match="gemv config BN must be a power of two"):
        w158_matmul(*args, config=dict(BN=3))
    with pytest.raises(ValueError, match="gemm config BM must be a positive int"):
        w158_matmul(*args, path="gemm", config=dict(BM=0))
    codes, xs, wp, ws, N = args
    nzi = torch.arange(64, dtype=torch.int32, device=DEV)
    nnz = torch.tensor([64], dtype=torch.int32, device=DEV)
    with pytest.raises(ValueError, match="sparse config num_warps must be one of"):
        sparse_gemv(codes, nzi, nnz, xs, pack_ternary(wq.codes.t().contiguous()).to(DEV), ws, 16,
                    config=dict(num_warps=-4))
    cache = QuantKVCache.allocate(1, 1, 8, 32, DEV)
    kv_write(cache, torch.randn(1, 1, 4, 32, device=DEV), torch.randn(1, 1, 4, 32, device=DEV), 0)
    with pytest.raises(ValueError, match="attention config BT must be a power of two"):
        decode_attention(torch.randn(1, 1, 32, device=DEV), cache, 4, config=dict(BT=3))


def test_load_config_table_reads_a_sweep_file_and_refuses_bad_ones(tmp_path):
    good = tmp_path / "tuned_configs.json"
    good.write_text(json.dumps({"gemv": {"K=4096,N=4096": {"BN": 8, "KB": 64, "num_warps": 4}}}))
    assert load_config_table(good).lookup("gemv", N=4096, K=4096) == {"BN": 8, "KB": 64, "num_warps": 4}
    for text, msg in ((json.dumps({"conv": {}}), "unknown kernels"), ("{", "not valid JSON"),
                      (json.dumps({"gemv": {"k": {"BN": 3}}}), "power of two"),
                      (json.dumps({"gemv": {"k": {"XX": 1}}}), "unknown config keys"),
                      (json.dumps([1]), "JSON object")):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(ValueError, match=msg):
            load_config_table(bad)
    assert set(CONFIG_RULES) == set(configs.KERNELS)
