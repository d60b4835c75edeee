"""The persistent decode block: its staged launch (the interpreter's path, the same kernel with one
launch per stage) computes the fused decode step with the same attention split bit for bit (also
with the split a GPU's SM count gives), and its launcher refuses what it cannot run."""
from dataclasses import replace

import pytest
import torch

from kernels import persistent
from kernels.block import BlockDims, DecodePlan, KernelBlock
from kernels.configs import ConfigTable, shape_key
from kernels.persistent import (
    STAGES,
    active_stages,
    attention_config,
    coresident_programs,
    decode_block_persistent,
    reference_plan,
)

DEV = "cuda" if torch.cuda.is_available() else "cpu"
TINY = BlockDims(d_model=64, n_heads=2, head_dim=32, d_ffn=96)
_NK = ((192, 64), (64, 64), (64, 96))
TINY_TUNED = ConfigTable({"gemv": {shape_key(N=n, K=k): dict(BN=64, KB=8, num_warps=4) for n, k in _NK}})


def _pair(datapath: str, kv_bits: int | None) -> tuple[KernelBlock, KernelBlock]:
    a, b = (KernelBlock(datapath, 1, 12, dims=TINY, device=DEV, tuned=TINY_TUNED, kv_bits=kv_bits) for _ in range(2))
    for blk in (a, b):
        blk.fill_cache(7)
    return a, b


#: the SM count of the H100 and the H200: the split count the GPU launch uses follows from it
GPU_SMS = 132


@pytest.mark.parametrize("datapath,kv_bits,plan", [
    ("b1.58", 4, DecodePlan()),
    ("b1.58", None, DecodePlan()),
    ("a4.8", None, DecodePlan(wo="dense", wdown="dense")),
    ("a4.8", None, DecodePlan(wo="sparse", wdown="sparse", gate_first=False)),
    ("a4.8", None, DecodePlan(wo="sparse", wdown="dense", tile_rows=16)),
])
def test_staged_persistent_block_equals_the_fused_step_bit_for_bit(datapath, kv_bits, plan):
    a, b = _pair(datapath, kv_bits)
    x = torch.randn(1, 1, 64, generator=torch.Generator().manual_seed(3)).half().to(DEV)
    plan = replace(plan, persistent=True)
    ref = a.decode_fused(x, 7, reference_plan(plan, 3, TINY.n_heads))
    inter: dict = {}
    y = decode_block_persistent(b, x, 7, plan, mode="staged", grid=2, n_sms=3, buffers=inter)
    assert torch.equal(y, ref)
    assert float((y.double() - x.double()).norm()) > 0.0                  # the block changed the row
    assert set(inter) == {"qkv", "a", "h", "gu", "out"} and torch.equal(inter["out"].view(1, 1, 64), y)
    ca, cb = a.cache, b.cache                                              # the new KV row was written alike
    for name, t in vars(ca).items():
        if isinstance(t, torch.Tensor):
            assert torch.equal(t, getattr(cb, name)), name


@pytest.mark.parametrize("datapath,kv_bits,ppsm", [("b1.58", 4, 1), ("b1.58", 4, 2), ("a4.8", None, 1)])
def test_staged_block_with_the_gpus_split_count_equals_the_fused_step(datapath, kv_bits, ppsm):
    # 41 positions in tiles of 8: a 132-SM launch asks for 132 // 2 heads spans (x2 at 2 programs
    # per SM), capped at the 6 tiles the context fills; the staged launch (2 programs here) and the
    # per-kernel reference both use that split
    a, b = (KernelBlock(datapath, 1, 48, dims=TINY, device=DEV, tuned=TINY_TUNED, kv_bits=kv_bits) for _ in range(2))
    for blk in (a, b):
        blk.fill_cache(40)
    x = torch.randn(1, 1, 64, generator=torch.Generator().manual_seed(6)).half().to(DEV)
    plan = DecodePlan(persistent=True, programs_per_sm=ppsm, attention=(("BT", 8),))
    ref_plan = reference_plan(plan, GPU_SMS * ppsm, TINY.n_heads)
    assert dict(ref_plan.attention)["S"] == GPU_SMS * ppsm // TINY.n_heads and not ref_plan.persistent
    ref = a.decode_fused(x, 40, ref_plan)
    assert torch.equal(decode_block_persistent(b, x, 40, plan, mode="staged", grid=2, n_sms=GPU_SMS), ref)


def test_staged_block_quantizes_a_row_in_several_chunks_with_its_index_list(monkeypatch):
    # chunks of 32 values: the 96-wide Wdown input's codes and non-zero list are written in 3 chunks
    # (the list's count carried from chunk to chunk), the 64-wide rows in 2
    monkeypatch.setattr(persistent, "QUANT_CHUNK", 32)
    a, b = _pair("a4.8", None)
    x = torch.randn(1, 1, 64, generator=torch.Generator().manual_seed(8)).half().to(DEV)
    plan = DecodePlan(wo="sparse", wdown="sparse", persistent=True)
    ref = a.decode_fused(x, 7, reference_plan(plan, 3, TINY.n_heads))
    assert torch.equal(decode_block_persistent(b, x, 7, plan, mode="staged", grid=2, n_sms=3), ref)


def test_attention_config_fills_the_grid_once_and_takes_the_plans_overrides():
    plan = DecodePlan(persistent=True, warps=8)
    assert attention_config(132, 32, plan) == dict(BT=32, S=4, num_warps=8, num_stages=3)
    assert attention_config(264, 32, plan)["S"] == 8
    assert attention_config(16, 32, plan)["S"] == 1
    assert attention_config(132, 32, DecodePlan(attention=(("S", 2), ("BT", 8))))["S"] == 2


def test_persistent_plan_runs_through_decode_fused_as_one_launch():
    a, b = _pair("a4.8", None)
    x = torch.randn(1, 1, 64, generator=torch.Generator().manual_seed(4)).half().to(DEV)
    plan = DecodePlan(wo="sparse", wdown="dense", persistent=True)
    assert torch.equal(b.decode_fused(x, 7, plan), a.decode_fused(x, 7, reference_plan(plan, 3, TINY.n_heads)))
    assert b.launches_fused(plan) == 1


def test_every_datapath_runs_the_five_stages_its_quantizers_inside_them():
    assert [STAGES[s] for s in active_stages(False, False)] == ["qkv", "attention", "wo", "gate_up", "down"]
    assert active_stages(True, True) == active_stages(True, False) == active_stages(False, False)


def test_coresident_programs_follows_registers_threads_and_shared_memory():
    # 128 regs x 32 lanes = 4096 per warp; 4 warps -> 16384 per block -> 4 blocks in 65536
    assert coresident_programs(132, 128, 4, 0) == 132 * 4
    # 255 regs round up to 8192 per warp (units of 256): 2 blocks of 4 warps
    assert coresident_programs(132, 255, 4, 0) == 132 * 2
    # shared memory binds first: 228 KiB / 100 KiB = 2; threads: 2048 / (32*16) = 4
    assert coresident_programs(10, 32, 4, 100 * 1024) == 20
    assert coresident_programs(10, 32, 16, 0) == 40
    with pytest.raises(ValueError, match="num_warps"):
        coresident_programs(10, 32, 0, 0)


def test_persistent_launcher_refuses_bad_input():
    _, b = _pair("b1.58", None)
    x = torch.zeros(1, 1, 64, dtype=torch.float16, device=DEV)
    plan = DecodePlan(persistent=True)
    with pytest.raises(TypeError, match="dtype"):
        decode_block_persistent(b, x.float(), 7, plan, mode="staged")
    with pytest.raises(ValueError, match="d_model"):
        decode_block_persistent(b, torch.zeros(1, 1, 32, dtype=torch.float16, device=DEV), 7, plan, mode="staged")
    with pytest.raises(ValueError, match="mode"):
        decode_block_persistent(b, x, 7, plan, mode="fast")
    with pytest.raises(ValueError, match="grid"):
        decode_block_persistent(b, x, 7, plan, mode="staged", grid=0)
    with pytest.raises(ValueError, match="prologue"):
        decode_block_persistent(b, x, 7, DecodePlan(prologue="separate"), mode="staged")
    with pytest.raises(ValueError, match="persistent"):
        DecodePlan(prologue="separate", persistent=True)
    with pytest.raises(ValueError, match="warps"):
        DecodePlan(warps=3)
    with pytest.raises(ValueError, match="tile_rows"):
        DecodePlan(tile_rows=24)
    with pytest.raises(ValueError, match="attention"):
        DecodePlan(attention={"S": 4})
    with pytest.raises(ValueError, match="unknown config keys"):
        DecodePlan(attention=(("splits", 4),))
    with pytest.raises(ValueError, match="n_sms"):
        decode_block_persistent(b, x, 7, plan, mode="staged", n_sms=0)
    with pytest.raises(ValueError, match="b1.58 and a4.8"):
        decode_block_persistent(KernelBlock("fp16", 1, 12, dims=TINY, device=DEV), x, 7, plan, mode="staged")
    if DEV == "cpu":        # the interpreter runs programs one by one: a grid barrier would never release
        with pytest.raises(ValueError, match="interpreter"):
            decode_block_persistent(b, x, 7, plan, mode="persistent")


@pytest.mark.skipif(DEV != "cuda", reason="co-residency is a property of a GPU")
def test_persistent_launcher_refuses_a_grid_larger_than_can_be_resident():
    _, b = _pair("b1.58", None)
    x = torch.zeros(1, 1, 64, dtype=torch.float16, device=DEV)
    n_sms = torch.cuda.get_device_properties(0).multi_processor_count
    with pytest.raises(ValueError, match="resident"):
        decode_block_persistent(b, x, 7, DecodePlan(persistent=True), mode="persistent", grid=64 * n_sms)


def _floor(skip: tuple, seed: int) -> dict:
    _, b = _pair("b1.58", 4)
    x = torch.randn(1, 1, 64, generator=torch.Generator().manual_seed(seed)).half().to(DEV)
    inter: dict = {}
    decode_block_persistent(b, x, 7, DecodePlan(persistent=True, persistent_skip=skip), mode="staged", grid=2,
                            n_sms=3, buffers=inter)
    return inter


def test_floor_without_any_stage_work_leaves_every_row_as_filled():
    inter = _floor(("quant", "attention", "gemv"), 3)
    for name, row in inter.items():
        assert torch.all(row == 0.25), name


def test_floor_without_attention_computes_qkv_exactly_and_leaves_the_attention_row():
    a, _ = _pair("b1.58", 4)
    x = torch.randn(1, 1, 64, generator=torch.Generator().manual_seed(3)).half().to(DEV)
    ref: dict = {}
    a.decode_fused(x, 7, reference_plan(DecodePlan(persistent=True), 3, TINY.n_heads), buffers=ref)
    inter = _floor(("attention",), 3)
    assert torch.equal(inter["qkv"].reshape(-1), ref["qkv"].reshape(-1))
    assert torch.all(inter["a"] == 0.25) and not torch.all(inter["out"] == 0.25)


@pytest.mark.parametrize("skip", [("quant",), ("quant", "attention")])
def test_floor_without_quantizers_runs_its_gemvs_on_codes_that_ignore_the_input(skip):
    one, two = _floor(skip, 3), _floor(skip, 4)
    assert torch.equal(one["qkv"], two["qkv"]) and torch.isfinite(one["qkv"]).all()
    assert not torch.all(one["qkv"] == 0.25)                               # the QKV GEMV ran
    assert not torch.equal(_floor(("attention",), 3)["qkv"], _floor(("attention",), 4)["qkv"])


def test_plan_refuses_an_unknown_skip_naming_the_choices():
    with pytest.raises(ValueError, match="'quant', 'attention', 'gemv'"):
        DecodePlan(persistent=True, persistent_skip=("norm",))
    with pytest.raises(ValueError, match="persistent=True"):
        DecodePlan(persistent_skip=("quant",))
    assert reference_plan(DecodePlan(persistent=True, persistent_skip=("gemv",)), 3, 2).persistent_skip == ()


def test_every_floor_of_the_sparse_a48_step_runs_and_stays_finite():
    x = torch.randn(1, 1, 64, generator=torch.Generator().manual_seed(5)).half().to(DEV)
    for skip in (("quant", "attention", "gemv"), ("quant", "attention"), ("quant",), ("attention",)):
        _, b = _pair("a4.8", None)
        plan = DecodePlan(wo="sparse", wdown="sparse", persistent=True, persistent_skip=skip)
        y = decode_block_persistent(b, x, 7, plan, mode="staged", grid=2, n_sms=3)
        assert torch.isfinite(y).all(), skip
        assert torch.all(y == 0.25) == ("gemv" in skip), skip            # only a GEMV writes the output row
