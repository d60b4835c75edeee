"""The persistent decode block: its staged launch (the interpreter's path, the same kernel with one
launch per stage) computes the fused decode step bit for bit, and its launcher refuses what it
cannot run."""
from dataclasses import replace

import pytest
import torch

from kernels.block import BlockDims, DecodePlan, KernelBlock
from kernels.configs import ConfigTable, shape_key
from kernels.persistent import STAGES, active_stages, coresident_programs, decode_block_persistent

DEV = "cuda" if torch.cuda.is_available() else "cpu"
TINY = BlockDims(d_model=64, n_heads=2, head_dim=32, d_ffn=96)
_NK = ((192, 64), (64, 64), (64, 96))
TINY_TUNED = ConfigTable({"gemv": {shape_key(N=n, K=k): dict(BN=64, KB=8, num_warps=4) for n, k in _NK}})


def _pair(datapath: str, kv_bits: int | None) -> tuple[KernelBlock, KernelBlock]:
    a, b = (KernelBlock(datapath, 1, 12, dims=TINY, device=DEV, tuned=TINY_TUNED, kv_bits=kv_bits) for _ in range(2))
    for blk in (a, b):
        blk.fill_cache(7)
    return a, b


@pytest.mark.parametrize("datapath,kv_bits,plan", [
    ("b1.58", 4, DecodePlan()),
    ("b1.58", None, DecodePlan()),
    ("a4.8", None, DecodePlan(wo="dense", wdown="dense")),
    ("a4.8", None, DecodePlan(wo="sparse", wdown="sparse", gate_first=False)),
])
def test_staged_persistent_block_equals_the_fused_step_bit_for_bit(datapath, kv_bits, plan):
    a, b = _pair(datapath, kv_bits)
    x = torch.randn(1, 1, 64, generator=torch.Generator().manual_seed(3)).half().to(DEV)
    ref = a.decode_fused(x, 7, plan)
    y = decode_block_persistent(b, x, 7, replace(plan, persistent=True), mode="staged", grid=2)
    assert torch.equal(y, ref)
    assert float((y.double() - x.double()).norm()) > 0.0                  # the block changed the row
    ca, cb = a.cache, b.cache                                              # the new KV row was written alike
    for name, t in vars(ca).items():
        if isinstance(t, torch.Tensor):
            assert torch.equal(t, getattr(cb, name)), name


def test_staged_block_equals_the_fused_step_over_a_split_context():
    # 40 positions in tiles of 16: attention_step splits the context into spans and combines them
    a, b = (KernelBlock("b1.58", 1, 48, dims=TINY, device=DEV, tuned=TINY_TUNED, kv_bits=4) for _ in range(2))
    for blk in (a, b):
        blk.fill_cache(40)
    x = torch.randn(1, 1, 64, generator=torch.Generator().manual_seed(6)).half().to(DEV)
    ref = a.decode_fused(x, 40, DecodePlan())
    assert torch.equal(decode_block_persistent(b, x, 40, DecodePlan(persistent=True), mode="staged", grid=2), ref)


def test_persistent_plan_runs_through_decode_fused_as_one_launch():
    a, b = _pair("a4.8", None)
    x = torch.randn(1, 1, 64, generator=torch.Generator().manual_seed(4)).half().to(DEV)
    plan = DecodePlan(wo="sparse", wdown="dense", persistent=True)
    assert torch.equal(b.decode_fused(x, 7, plan), a.decode_fused(x, 7, replace(plan, persistent=False)))
    assert b.launches_fused(plan) == 1


def test_active_stages_skip_the_quantizer_stages_the_datapath_does_not_need():
    assert [STAGES[s] for s in active_stages(False, False)] == ["qkv", "attention", "wo", "gate_up", "down"]
    assert [STAGES[s] for s in active_stages(True, False)] == ["qkv", "attention", "wo_quant", "wo", "gate_up",
                                                               "down"]
    assert len(active_stages(True, True)) == len(STAGES)


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
