"""The machine model's fidelity terms: SRAM-resident weights, on-chip network energy, a design's own cost
table in every energy term, the cost of zero-skipping logic, and the shared rules of the ASIC presets."""
from __future__ import annotations

import dataclasses

import pytest
from test_sim_synthetic import decoder_trace

import sim
from sim import energy, sizing


def _streaming_twin(c):
    """The same chip (arrays, node, memory) with its weights streamed from DRAM instead of resident."""
    return c.replace(weight_residency="dram", sram=dataclasses.replace(c.sram, weight_store_mib=0.0))


def _overlay(tmp_path, rows: str):
    p = tmp_path / "mine.csv"
    p.write_text("quantity,node_nm,value,unit,kind,source\n" + rows)
    return p


# ---------------------------------------------------------------- SRAM-resident weights
def test_resident_weights_decode_with_no_dram_weight_bytes_and_beat_the_streaming_twin():
    tr = decoder_trace("b1.58", layers=2, head=False)
    c = sim.load_accelerator("b1.58-sram")
    res, twin = sim.simulate(tr, c), sim.simulate(tr, _streaming_twin(c))
    attn = res.ops["op_class"] == "attention"
    # no weight or table byte off chip: the other ops move only the KV entries they write
    assert res.ops.loc[~attn, "bytes_offchip"].to_numpy() == pytest.approx(tr.loc[~attn, "kv_bytes_write"])
    kv = tr.loc[tr.op_class == "attention", "kv_bytes_read"].sum() + tr["kv_bytes_write"].sum()
    assert res.summary.bytes_offchip == pytest.approx(kv)                     # only the KV cache moves
    weights = tr.loc[tr.op_class == "gemm", "weight_bytes"].sum()
    assert twin.summary.bytes_offchip == pytest.approx(kv + weights)
    assert res.summary.tokens_per_s > 1.5 * twin.summary.tokens_per_s
    # the store's reads replace the DMA's buffer writes: the same SRAM bytes, none off chip
    gemm = res.ops["op_class"] == "gemm"
    assert res.ops.loc[gemm, "bytes_sram"].sum() == pytest.approx(twin.ops.loc[gemm, "bytes_sram"].sum())


def test_a_model_whose_weights_exceed_the_store_is_refused_naming_both():
    tr = decoder_trace("b1.58", layers=44, head=False)                      # 44 x 50.5 MB > 2 GiB
    mib = tr.loc[tr.op_class == "gemm", "weight_bytes"].sum() / 2**20
    with pytest.raises(ValueError, match=rf"{mib:,.1f} MiB of weights do not fit b1.58-sram's resident weight "
                                         r"store \(sram.weight_store_mib = 2048 MiB\)"):
        sim.simulate(tr, "b1.58-sram")
    sim.simulate(tr, _streaming_twin(sim.load_accelerator("b1.58-sram")))   # streamed: no store to fit


def test_resident_weights_skip_the_gather_but_keep_its_index_energy():
    tr = decoder_trace("a4.8", layers=1, head=False)
    c = sim.load_accelerator("b1.58-sram")
    c = c.replace(arrays=sim.load_accelerator("a4.8").arrays, kv_formats=("kv-fp16", "kv-int3"))
    plans = sim.engine.plan_ops(tr, c)
    skipping = [p for p, s in zip(plans, tr["row_skip"]) if s > 0 and p.unit != "vector"]
    assert skipping and all(p.producer == -1 and p.read_efficiency == 1.0 for p in skipping)
    assert all(p.energy_vector_pj > 0 for p in skipping)


# ---------------------------------------------------------------- on-chip network, cost table in force
def test_every_sram_byte_pays_the_bank_access_and_the_on_chip_network():
    c = sim.load_accelerator("fp16")
    res = sim.simulate(decoder_trace("fp16", layers=1, head=False), c)
    noc = 0.1 * 2 / 3 * c.area_mm2 ** 0.5                                   # wire pJ/bit/mm x 2/3 of the side
    assert noc > 0.5
    per_byte = res.ops["energy_sram_pj"] / res.ops["bytes_sram"]
    assert per_byte.to_numpy() == pytest.approx(8 * (c.sram.pj_per_bit + noc))


def test_a_user_cost_table_reaches_vector_and_index_energy(tmp_path):
    p = _overlay(tmp_path, "energy.fp16_add,7,0.32,pJ,assumption,ASSUMPTION: twice the [B1] 7 nm add\n"
                           "energy.fp16_mul,7,0.68,pJ,assumption,ASSUMPTION: twice the [B1] 7 nm multiply\n")
    tr = decoder_trace("a4.8", layers=1, head=False)
    base, mine = sim.simulate(tr, "a4.8"), sim.simulate(tr, sim.load_accelerator("a4.8", costs=p))
    vb, vm = base.summary.energy_j_by_component["vector"], mine.summary.energy_j_by_component["vector"]
    assert vb > 0 and vm == pytest.approx(2 * vb)                           # (0.16 + 0.34) pJ per pass, doubled


# ---------------------------------------------------------------- the cost of zero skipping
def test_zero_skipping_hardware_adds_its_detectors_and_index_buffers_to_the_chip():
    c = sim.load_accelerator("a4.8")
    dense = c.replace(sparsity=dataclasses.replace(c.sparsity, skip_weight_fetch=False))
    with_skip, without = c.chip_costs(), dense.chip_costs()
    rows = 2 * 128 + 2 * 64                                                 # PE rows: 2 main + 2 attention arrays
    det_mm2 = rows * 9 * energy.area_scale(7) / 1e6                         # 9 um^2 at 45 nm per detector
    kib = 4 * 2 * 16384 * 14 / 8 / 1024                                     # 4 arrays x 2 lists x 16384 x 14 bits
    assert with_skip.area_mm2_by_part["pe"] - without.area_mm2_by_part["pe"] == pytest.approx(det_mm2)
    assert with_skip.area_mm2_by_part["sram"] - without.area_mm2_by_part["sram"] == pytest.approx(
        kib * energy.sram_mm2_per_kib(7))
    assert with_skip.area_mm2 > without.area_mm2 and with_skip.static_w > without.static_w


def test_a_skipping_op_pays_for_its_index_list():
    tr = decoder_trace("a4.8", layers=1, head=False)
    c = sim.load_accelerator("a4.8")
    plans = sim.engine.plan_ops(tr, c)
    i = int(tr.index[tr.op == "o_proj"][0])                                # row_skip 0.5: gathered (below)
    K, skip = int(tr.K[i]), float(tr.row_skip[i])
    assert K == 4096 and 0 < skip < 1
    sram_pj_b = 8 * (c.sram.pj_per_bit + c.chip_costs().noc_pj_per_bit)
    list_pj = 2 * K * (1 - skip) * 12 / 8 * sram_pj_b                       # ceil(log2 4096) = 12-bit indices
    assert plans[i].energy_sram_pj == pytest.approx(plans[i].traffic.sram * sram_pj_b + list_pj)
    assert plans[i].energy_vector_pj == pytest.approx(K * 0.5)              # one fp16 add + mul per activation


def test_the_loader_gathers_only_when_the_gather_beats_streaming_every_row():
    c = sim.load_accelerator("a4.8")                                        # HBM3 rule: 32 B bursts, 0.44 ns/page
    o = c.offchip
    eff = 1024 / (1024 + 0.44 * o.bandwidth_gbps * o.sustained_fraction)   # a 1 KiB ternary row (K-row of N=4096)
    assert 0.6 < eff < 0.62
    tr = decoder_trace("a4.8", layers=1, head=False)
    for _, r in tr[tr.op_class == "gemm"].iterrows():
        row_bytes = r.weight_bytes / r.K
        if row_bytes != 1024:
            continue
        assert sim.engine.plan.fetches_survivors(r.to_dict(), c) == (1 - r.row_skip < eff), r.op
    plans = sim.engine.plan_ops(tr, c)
    q, o_ = int(tr.index[tr.op == "q_proj"][0]), int(tr.index[tr.op == "o_proj"][0])
    assert plans[q].traffic.offchip_read == tr.weight_bytes[q] and plans[q].producer == -1    # 12 % zeros: stream
    assert plans[o_].traffic.offchip_read == pytest.approx(0.5 * tr.weight_bytes[o_])         # 50 %: gather
    resident = sim.load_accelerator("b1.58-sram")
    assert sim.engine.plan.fetches_survivors(tr.loc[q].to_dict(), resident)   # a store read skips any zero row


# ---------------------------------------------------------------- the presets' shared rules
ISO_PEAK = ("fp16", "b1.58", "a4.8", "w4a16", "w8a8-int8", "w8a8-fp8", "w4a4-mxfp4")
ASIC = ISO_PEAK + ("edge", "b1.58-sram")
MAIN_PAIR = {"fp16": ("fp16", "fp16"), "b1.58": ("ternary", "int8"), "a4.8": ("ternary", "int4"),
             "w4a16": ("int4", "fp16"), "w8a8-int8": ("int8", "int8"), "w8a8-fp8": ("fp8", "fp8"),
             "w4a4-mxfp4": ("fp4", "fp4")}


@pytest.mark.parametrize("name", ISO_PEAK)
def test_iso_peak_presets_share_the_peak_of_their_main_operation_and_the_side_unit_rule(name):
    c, f = sim.load_accelerator(name), sim.load_accelerator("fp16")
    assert c.comparison == "equal-peak-throughput"
    main = c.arrays[0]
    rate = {(p.weights, p.acts): p.rate for p in main.pe_ops}[MAIN_PAIR[name]]
    macs = main.rows * main.cols * main.count * rate                      # MACs/cycle of the main operation
    assert macs == pytest.approx(128 * 128 * 4, rel=0.01)                 # 65,536: fp16's 4 x 128x128 at rate 1
    assert sizing.peak_main_tops(c) == pytest.approx(2 * macs * c.clock_ghz / 1e3, rel=1e-12)
    assert sizing.peak_main_tops(c) == pytest.approx(sizing.peak_main_tops(f), rel=0.01)
    fp16_side = sum(a.pes * p.rate for a in c.arrays[1:] for p in a.pe_ops if (p.weights, p.acts) == ("fp16", "fp16"))
    sides = sizing.iso_peak_sides(c)
    assert fp16_side == sides["attention_fp16_macs_per_cycle"] == (0 if name == "fp16" else macs / 8)
    assert c.vector.lanes == sides["vector_lanes"] == macs / 128
    assert c.sram.bandwidth_bytes_per_cycle == sides["sram_bytes_per_cycle"] == macs / 4
    assert (c.clock_ghz, c.process_nm, c.offchip, c.sram) == (f.clock_ghz, f.process_nm, f.offchip, f.sram)


@pytest.mark.parametrize("name", ASIC)
def test_every_asic_preset_pays_the_same_sourced_fixed_costs(name):
    c = sim.load_accelerator(name)
    row = {k: energy.cost(f"asic.{k}").value for k in ("op_overhead_ns", "offchip_latency_ns", "burst_bytes",
                                                          "page_bytes", "row_miss_ns", "index_latency_ns")}
    assert c.op_overhead_ns == row["op_overhead_ns"] > 0
    assert c.offchip.latency_ns == row["offchip_latency_ns"] > 0
    assert (c.offchip.burst_bytes, c.offchip.page_bytes) == (row["burst_bytes"], row["page_bytes"])
    assert c.offchip.row_miss_ns == row["row_miss_ns"] == pytest.approx(28 / 64, abs=0.005)   # (tRP + tRCD) / PCs
    assert c.sparsity.index_latency_ns == row["index_latency_ns"] > 0
