"""Causal prefill, capacity, batch zero skipping, op bound labels and the GEMV-native decode mode,
each against a hand-computed case."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
from test_sim_synthetic import decoder_trace, gemm_row, vector_row

import sim
from sim.compute.systolic import causal_pairs, causal_systolic_cycles, systolic_cycles


def _tiny(dataflow="weight-stationary", pipelined=False, **array):
    """A 2 x 2 array, one copy, 1-cycle weight load, ample SRAM and memory: compute cycles are the systolic ones."""
    cfg = sim.load_accelerator("b1.58")
    a = dataclasses.replace(cfg.arrays[1], rows=2, cols=2, count=1, dataflow=dataflow, weight_load_cycles=1,
                            pipelined_folds=pipelined, **array)
    return cfg.replace(arrays=(cfg.arrays[0], a), offchip=dataclasses.replace(cfg.offchip, bandwidth_gbps=1e5),
                       sram=dataclasses.replace(cfg.sram, bandwidth_bytes_per_cycle=1e6))


def _attn(op, P, C, hd, *, causal=True, count=1):
    M, N, K = (P, C, hd) if op == "attn_qk" else (P, hd, C)
    r = gemm_row(op, M, N, K, phase="prefill", op_class="attention", wfmt="kv-fp16", wbits=16, count=count,
                 kv_read=C * hd * 2 * count)
    if causal:
        r["macs_dense"] = r["macs_effective"] = count * hd * causal_pairs(P, C)
    return pd.DataFrame([r])


# ---------------------------------------------------------------- causal prefill
def test_causal_qk_on_a_2x2_array_skips_masked_queries_by_hand():
    # P = C = 4 queries / keys, head_dim 2; WS: K (2) on rows, the 4 keys on columns in 2 folds
    # [keys 0-1], [keys 2-3], the queries streamed.  Fold 1 needs all 4 queries, fold 2 only queries
    # 2 and 3 (query i sees keys <= i).  Back to back, a fold is L + T + R + C - 2 = 1 + T + 2:
    # full square 2 x (1 + 4 + 2) = 14 cycles; causal (1 + 4 + 2) + (1 + 2 + 2) = 12.
    acc = _tiny()
    a = acc.arrays[1]
    assert systolic_cycles(4, 4, 2, a) == 14
    assert causal_systolic_cycles(4, 4, 2, a, 1.0, 1, "N") == 12
    assert sim.simulate(_attn("attn_qk", 4, 4, 2), acc).ops["compute_cycles"].iloc[0] == 12
    assert sim.simulate(_attn("attn_qk", 4, 4, 2, causal=False), acc).ops["compute_cycles"].iloc[0] == 14
    off = acc.replace(sparsity=dataclasses.replace(acc.sparsity, skip_masked_attention=False))
    assert sim.simulate(_attn("attn_qk", 4, 4, 2), off).ops["compute_cycles"].iloc[0] == 14
    # pipelined folds: L + sum of max(T, L) + skew = 1 + 4 + 2 + 2 = 9 (full square 1 + 2 x 4 + 2 = 11)
    ap = _tiny(pipelined=True).arrays[1]
    assert (causal_systolic_cycles(4, 4, 2, ap, 1.0, 1, "N"), systolic_cycles(4, 4, 2, ap)) == (9, 11)


def test_causal_output_stationary_skips_the_fully_masked_tile_by_hand():
    # OS: queries on rows, keys on columns: 2 x 2 tiles of (queries, keys); the tile (queries 0-1,
    # keys 2-3) is fully masked.  3 tiles of T = head_dim 2 + skew 2 = 4 cycles: 12 (full 16).
    a = _tiny("output-stationary").arrays[1]
    assert (causal_systolic_cycles(4, 4, 2, a, 1.0, 1, "N"), systolic_cycles(4, 4, 2, a)) == (12, 16)


def test_causal_pv_streams_only_the_keys_each_query_block_sees_by_hand():
    # P.V on OS: queries on rows (2 blocks), head_dim on columns, the 4 keys streamed: block 0
    # (queries 0-1) needs keys 0-1, block 1 all 4: (2 + 2) + (4 + 2) = 10 cycles (full 2 x 6 = 12)
    a = _tiny("output-stationary").arrays[1]
    assert (causal_systolic_cycles(4, 2, 4, a, 1.0, 1, "K"), systolic_cycles(4, 2, 4, a)) == (10, 12)


@pytest.mark.parametrize("preset", ["fp16", "b1.58", "a4.8"])
def test_causal_prefill_attention_takes_about_half_the_full_square_cycles(preset):
    cfg = sim.load_accelerator(preset)
    a = cfg.arrays[-1]
    for P in (2048, 8192):
        for op, keys in (("qk", "N"), ("pv", "K")):
            shape = (P, P, 128) if op == "qk" else (P, 128, P)
            ratio = causal_systolic_cycles(*shape, a, 1.0, 32, keys) / systolic_cycles(*shape, a, 1.0, 32)
            assert 0.5 <= ratio <= (0.56 if P == 2048 else 0.52), (preset, P, op, ratio)
    # a decode step (one query) is never masked: identical to the full count
    assert causal_systolic_cycles(1, 2048, 128, a, 1.0, 32, "N") == systolic_cycles(1, 2048, 128, a, 1.0, 32)


def test_causal_prefix_chunk_masks_only_the_new_tokens_triangle():
    # a 256-token chunk after 1792 cached tokens (C = 2048): the keys of the cache are seen by every
    # query, so the saving is only over the last 256 keys
    a = sim.load_accelerator("b1.58").arrays[1]
    full = systolic_cycles(256, 2048, 128, a, 1.0, 32)
    causal = causal_systolic_cycles(256, 2048, 128, a, 1.0, 32, "N")
    assert 0.9 * full < causal < full


# ---------------------------------------------------------------- capacity
def test_a_point_that_does_not_fit_the_chip_is_marked_infeasible():
    big = sim.simulate(decoder_trace("fp16", layers=32, batch=32, context=2048), "fp16").summary
    # hand count: weights 32 x (4h^2 + 3hf) x 2 B + 2 x vocab x h x 2 B (LM head + embedding);
    # KV 32 layers x 2 (K, V) x batch 32 x 2048 x 4096 x 2 B
    w = 32 * (4 * 4096 ** 2 + 3 * 4096 * 11008) * 2 + 2 * 32000 * 4096 * 2
    kv = 32 * 2 * 32 * 2048 * 4096 * 2
    assert big.weight_bytes == pytest.approx(w) and big.kv_bytes == pytest.approx(kv, rel=1e-3)
    assert (w + kv) / 1e9 > 32 and not big.fits_offchip
    assert "exceed the 32 GB off-chip capacity" in big.infeasible_reason and "47.85 GB" in big.infeasible_reason
    small = sim.simulate(decoder_trace("fp16", layers=32, batch=8, context=2048), "fp16").summary
    assert small.fits_offchip and small.infeasible_reason == ""
    assert big.row()["fits_offchip"] is False


def test_decode_runs_from_batch_1_to_256():
    for b in (1, 16, 256):
        s = sim.simulate(decoder_trace("a4.8", layers=1, batch=b, head=False), "a4.8").summary
        assert s.tokens == b


# ---------------------------------------------------------------- zero skipping and the batch
def test_zero_skipping_counts_only_rows_zero_across_the_whole_batch():
    cfg = sim.load_accelerator("a4.8")
    assert cfg.sparsity.skip_weight_fetch and cfg.sparsity.skip_compute
    kw = dict(wfmt="ternary", wbits=2, afmt="int8", abits=8, sparsity=0.5)
    one = sim.simulate(pd.DataFrame([gemm_row("g", 1, 4096, 4096, row_skip=0.5, **kw)]), cfg).ops.iloc[0]
    # 32 tokens, each half zeros, but no weight row is zero for all 32 (row_skip 0): nothing skipped
    b32 = sim.simulate(pd.DataFrame([gemm_row("g", 32, 4096, 4096, row_skip=0.0, **kw)]), cfg).ops.iloc[0]
    dense = sim.simulate(pd.DataFrame([gemm_row("g", 32, 4096, 4096, row_skip=0.0,
                                                **{**kw, "sparsity": 0.0})]), cfg).ops.iloc[0]
    w = 4096 * 4096 * 2 / 8
    assert one["bytes_offchip"] == pytest.approx(w * 0.5)                          # half the weight rows
    assert b32["bytes_offchip"] == dense["bytes_offchip"]                          # all of them
    assert b32["compute_cycles"] == dense["compute_cycles"]                        # the reduction is not shorter
    assert b32["energy_compute_pj"] == pytest.approx(0.5 * dense["energy_compute_pj"])   # zeros still gate adders


# ---------------------------------------------------------------- bound labels and the decode mode
def _gemv(M=1):
    return pd.DataFrame([gemm_row("g", M, 4096, 4096, wfmt="ternary", wbits=2, afmt="int8", abits=8)])


def test_every_op_bound_is_named_memory_compute_weight_load_sram_or_vector():
    b = sim.load_accelerator("b1.58")
    stationary = b.replace(arrays=(dataclasses.replace(b.arrays[0], stream_weights=False), b.arrays[1]))
    fast = dataclasses.replace(b.offchip, bandwidth_gbps=1e5)
    assert sim.simulate(_gemv(), stationary).ops["bound"].iloc[0] == "memory"          # 1.5 TB/s HBM
    assert sim.simulate(_gemv(), stationary.replace(offchip=fast)).ops["bound"].iloc[0] == "weight_load"
    # the GEMV-native mode reads 128 x 128 x 4 ternary weights (16 KiB) per cycle from the weight buffer,
    # plus the DMA writing them in: with unlimited HBM it is bound by the SRAM's 16 KiB/cycle
    assert sim.simulate(_gemv(), b.replace(offchip=fast)).ops["bound"].iloc[0] == "sram"
    wide = dataclasses.replace(b.sram, bandwidth_bytes_per_cycle=1 << 20)
    assert sim.simulate(_gemv(), b.replace(offchip=fast, sram=wide)).ops["bound"].iloc[0] == "compute"
    assert sim.simulate(_gemv(2048), b).ops["bound"].iloc[0] == "compute"
    slow_sram = b.replace(offchip=fast, sram=dataclasses.replace(b.sram, bandwidth_bytes_per_cycle=64))
    assert sim.simulate(_gemv(), slow_sram).ops["bound"].iloc[0] == "sram"
    v = sim.simulate(pd.DataFrame([vector_row("rmsnorm_attn", 2048, 4096)]), b.replace(offchip=fast))
    assert v.ops["bound"].iloc[0] == "vector"
    s = sim.simulate(_gemv(), stationary.replace(offchip=fast)).summary
    assert s.cycles_by_bound["weight_load"] > 0 and s.row()["cycles_weight_load_bound"] > 0


def test_gemv_native_mode_streams_weights_instead_of_loading_folds_by_hand():
    b = sim.load_accelerator("b1.58")
    a = b.arrays[0]
    assert a.stream_weights and a.weight_load_cycles == 8
    # 4096 x 4096 on 4 copies of 128 x 128: 1024 folds, 256 waves; stream M = 1 cycle, skew 254
    assert systolic_cycles(1, 4096, 4096, a) == 1 + 256 * 1 + 254
    held = dataclasses.replace(a, stream_weights=False)
    assert systolic_cycles(1, 4096, 4096, held) == 8 + 256 * 8 + 254
    # prefill (M >= load cycles) is the same in both modes
    assert systolic_cycles(2048, 4096, 4096, a) == systolic_cycles(2048, 4096, 4096, held)


def test_doubling_bandwidth_doubles_memory_bound_decode_only_with_weights_streaming():
    tr = decoder_trace("a4.8", layers=4, head=False)
    a = sim.load_accelerator("a4.8")
    held = a.replace(arrays=(dataclasses.replace(a.arrays[0], stream_weights=False), a.arrays[1]))

    def speedup(cfg):
        x2 = cfg.replace(offchip=dataclasses.replace(cfg.offchip, bandwidth_gbps=2 * cfg.offchip.bandwidth_gbps))
        return sim.simulate(tr, x2).summary.tokens_per_s / sim.simulate(tr, cfg).summary.tokens_per_s

    # not quite 2: a zero-skipping op waits for its producer before fetching, a wait bandwidth cannot shrink
    assert speedup(a) > 1.7
    assert speedup(held) < 1.5
