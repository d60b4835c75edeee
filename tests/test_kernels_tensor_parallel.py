"""The tensor-parallel benchmark: shard shapes, the sharded layer against the unsplit one, a gloo run."""
from __future__ import annotations

import pytest
import torch

from contract import read_table
from kernels.bench import tensor_parallel as tp

TINY = tp.LayerShape(name="tiny", hidden=32, heads=4, kv_heads=4, head_dim=8, ffn=48)


@pytest.mark.parametrize("degree", [2, 4, 8])
def test_70b_shards_split_heads_and_ffn_evenly_and_cover_the_full_layer(degree):
    s = tp.LLAMA_70B
    parts = {p.name: p for p in tp.shards(s, degree)}
    assert parts["qkv"].N * degree == (64 + 2 * 8) * 128 and parts["qkv"].K == 8192
    assert parts["wo"].K * degree == 8192 and parts["wo"].split == "row"
    assert parts["gate_up"].N * degree == 2 * 28672 and parts["down"].K * degree == 28672
    assert tp.allreduce_bytes(s, 8) == 8 * 8192 * 2


def test_a_degree_that_does_not_divide_the_kv_heads_is_refused():
    with pytest.raises(ValueError, match="does not divide kv_heads = 8"):
        tp.shards(tp.LLAMA_70B, 16)


def _unsplit_step(x: torch.Tensor, shape: tp.LayerShape) -> torch.Tensor:
    """The same step on the full weights in float64 (the reference the shards must add up to)."""
    w = {k: v.double() for k, v in tp.full_weights(shape, seed=0).items()}
    x = x.double()
    attn = (x @ w["qkv"].t())[:, : shape.heads * shape.head_dim]
    h = attn @ w["wo"].t() + x
    gate, up = (h @ w["gate_up"].t()).chunk(2, dim=1)
    return (torch.relu(gate).square() * up) @ w["down"].t() + h


@pytest.mark.parametrize("degree", [2, 4])
def test_sharded_fp_layer_summed_over_ranks_equals_the_unsplit_layer(degree):
    x = torch.randn(3, TINY.hidden, generator=torch.Generator().manual_seed(1))
    cpu = torch.device("cpu")
    ranks = [tp.ShardedLayer(TINY, degree, r, "fp16", cpu) for r in range(degree)]
    # the step without the collectives, reduced by hand: Wo partials summed, then the FFN partials
    attn = [rk.linear("qkv", x)[:, : TINY.heads * TINY.head_dim // degree] for rk in ranks]
    h = sum(rk.linear("wo", a) for rk, a in zip(ranks, attn)) + x
    ffn = []
    for rk in ranks:
        gate, up = rk.linear("gate_up", h).chunk(2, dim=1)
        ffn.append(rk.linear("down", torch.relu(gate).square() * up))
    y = sum(ffn) + h
    torch.testing.assert_close(y.double(), _unsplit_step(x, TINY), rtol=1e-4, atol=1e-4)


def test_gloo_run_writes_both_tables_and_resumes_from_its_part_files(tmp_path):
    plan = dict(backend="gloo", device="cpu", sizes=(1024, 4096), batches=(1, 2), datapaths=("fp16", "b1.58"),
                shape=TINY, repeats=2, iters=1)
    coll, layer = tp.run(tmp_path, worlds=(2,), plan_kw=plan, command=["test"])
    assert set(coll.collective) == set(tp.COLLECTIVES) and set(coll.bytes) == {1024, 4096}
    assert (coll.us > 0).all() and (coll.us_min <= coll.us).all() and (coll.us <= coll.us_max).all()
    assert len(layer) == 2 * 2 * 3 and set(layer.part) == {"gemm", "allreduce", "together"}
    back = read_table(tmp_path / "measured_tp_decode.parquet", "measured_tp_decode")
    assert back.world_size.eq(2).all() and back.gpu.eq("cpu").all()
    part = tmp_path / "part-ws2.json"
    stamp = part.stat().st_mtime_ns
    tp.run(tmp_path, worlds=(2,), plan_kw=plan, command=["test"])      # resumes: nothing re-measured
    assert part.stat().st_mtime_ns == stamp


def test_an_fp8_shard_linear_is_the_fp8_codes_times_both_scales_and_near_the_fp_layer():
    x = torch.randn(3, TINY.hidden, generator=torch.Generator().manual_seed(2))
    cpu = torch.device("cpu")
    fp8 = tp.ShardedLayer(TINY, 2, 0, "w8a8-fp8", cpu)
    ref = tp.ShardedLayer(TINY, 2, 0, "fp16", cpu)
    lin = fp8.weights["qkv"]
    # independently: each operand rounded to e4m3 after its own absmax scale, products summed in float64
    xs = x.abs().amax(dim=1, keepdim=True) / 448.0
    w = tp.rank_slice(tp.full_weights(TINY, 0)["qkv"], fp8.parts[0], TINY, 2, 0)
    ws = w.abs().amax(dim=1, keepdim=True) / 448.0
    xq = (x / xs).to(torch.float8_e4m3fn).double() * xs.double()
    wq = (w / ws).to(torch.float8_e4m3fn).double() * ws.double()
    torch.testing.assert_close(fp8.linear("qkv", x).double(), xq @ wq.t(), rtol=1e-5, atol=1e-5)
    assert lin.wq.dtype == torch.float8_e4m3fn
    # e4m3 keeps 3 mantissa bits: a few per cent off the fp layer, never garbage
    err = (fp8.linear("qkv", x) - ref.linear("qkv", x)).norm() / ref.linear("qkv", x).norm()
    assert 1e-4 < float(err) < 0.1
