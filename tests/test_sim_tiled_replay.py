"""The tiled replay of measured GEMM rows: each row on the tile it ran, its split-K and decode form, the L2's
operand re-reads, and the tiles of older runs named by their sweeps."""
from __future__ import annotations

import copy
import dataclasses
import json

import pandas as pd
import pytest
from test_sim_synthetic import gemm_row

import sim
from sim.config import from_dict
from sim.memory import fold_reads
from sim.validation.calibrate import DECODE_FORM_FITS, FILL_FIT, set_param
from sim.validation.floors import reread_gbps
from sim.validation.replay import (
    KernelTile,
    decode_form,
    measured_row_to_trace,
    recorded_tile,
    runs_on_tile,
    tile_accelerator,
    tiled_trace,
    with_swept_tiles,
)

SWAR_TILE = {"BM": 32, "BN": 64, "BK": 256, "num_warps": 4, "num_stages": 4, "SWAP": True, "SPLIT_K": 4,
             "SWAR": True}


def _row(**kw) -> pd.Series:
    base = dict(op="gemm", kernel="ours_w158a8", impl="ours", precision="w1.58a8", M=8, N=4096, K=4096,
                sparsity=0.0, cuda_graph=True, us=10.0, exact=True, date="2026-12-01T00:00:00+00:00", config="",
                bytes=0.0, ops=0.0, gbps=0.0, tops=0.0, gpu="NVIDIA H100 80GB HBM3", torch="2", triton="3", cuda="12")
    base.update(kw)
    return pd.Series(base, name=kw.pop("name", 0))


def test_a_rows_recorded_tile_is_read_and_rows_without_an_output_tile_have_none():
    t = recorded_tile(_row(config=json.dumps(SWAR_TILE)))
    assert t == KernelTile(BM=32, BN=64, split_k=4, swar=True)
    assert recorded_tile(_row(config="")) is None
    assert recorded_tile(_row(config=json.dumps({"BN": 64, "KB": 512}))) is None          # the GEMV path's tiles
    assert recorded_tile(_row(config=json.dumps({"BM": 128, "BN": 32}))).split_k == 1
    # only our ternary GEMMs replay on a tile: a library row or a two-pass row does not, whatever it records
    assert runs_on_tile(_row(kernel="cublas_int8", precision="int8", config=json.dumps(SWAR_TILE))) is None
    assert runs_on_tile(_row(kernel="ours_twopass_w158a8", config=json.dumps(SWAR_TILE))) is None
    assert runs_on_tile(_row(kernel="ours_w158a8_gemv", config=json.dumps(SWAR_TILE))) is None


@pytest.mark.parametrize("config", ["{not json", json.dumps({"BM": 0, "BN": 64}), json.dumps({"BM": 16, "BN": 1.5})])
def test_a_malformed_tile_is_refused_with_the_row_named(config):
    with pytest.raises(ValueError, match="measured row 7"):
        recorded_tile(_row(config=config, name=7))


def test_the_decode_form_follows_the_tiles_swar_flag_and_the_mma_format():
    swar = recorded_tile(_row(config=json.dumps(SWAR_TILE)))
    assert decode_form(_row(), swar) == "swar-int8"
    assert decode_form(_row(precision="w1.58a4-fp8"), swar) == "swar-fp8"
    assert decode_form(_row(), dataclasses.replace(swar, swar=False)) is None
    assert decode_form(_row(), None) is None


def test_the_tiled_array_keeps_the_sms_peak_and_scales_the_promotion_with_its_accumulators():
    cfg = sim.load_accelerator("h100-triton")
    raw = json.loads(json.dumps(dataclasses.asdict(cfg)))
    raw["arrays"][0]["unpack_forms"] = {"swar-int8": 40.0}
    raw["arrays"][0]["promote_every_k"] = {"fp8": 512}
    raw["arrays"][0]["promote_ns"] = {"fp8": 1600.0}
    cfg = from_dict(raw, where="t")
    tile = KernelTile(BM=32, BN=64, split_k=4, swar=True)
    tiled = tile_accelerator(cfg, tile, "swar-int8", M=8)
    a, b = cfg.arrays[0], tiled.arrays[0]
    assert (b.rows, b.cols, b.split_reduction, b.split_balanced) == (32, 64, False, False)
    for p, q in zip(a.pe_ops, b.pe_ops):
        assert q.rate * b.rows * b.cols == pytest.approx(p.rate * a.rows * a.cols)
    assert b.promote_ns["fp8"] == pytest.approx(1600.0 * 32 * 64 / (128 * 128))     # 200 ns: 1/8 the accumulators
    assert b.unpack["ternary"] == 40.0 and a.unpack["ternary"] != 40.0
    assert tiled.arrays[1] == cfg.arrays[1]                                            # the GEMV array untouched
    assert tile_accelerator(cfg, tile, None, M=8).arrays[0].unpack == a.unpack         # broadcast: the array's rate


def test_split_k_replays_as_parts_of_the_same_macs_and_weight_bytes():
    tr = measured_row_to_trace(_row(M=32, N=4096, K=11008))
    parts = tiled_trace(tr, KernelTile(BM=32, BN=64, split_k=4))
    one, split = tr.iloc[0], parts.iloc[0]
    assert (split["count"], split["K"]) == (4, 2752)
    assert split["macs_dense"] == one["macs_dense"] and split["weight_bytes"] == one["weight_bytes"]
    assert split["act_bytes_out"] == 32 * 4096 * 4 * 4                        # four fp32 partial tiles
    assert tiled_trace(tr, KernelTile(BM=32, BN=64)) is tr


def test_fold_reads_of_a_narrow_tile_count_the_activations_once_per_column_fold():
    # hand count, output-stationary 128 x 32 tile, M = 128, N = K = 4096, int8 activations, 2-bit weights:
    # 4096 / 32 = 128 column folds each read all 128 x 4096 activation bytes; one row fold reads the 4 MiB once
    array = dataclasses.replace(sim.load_accelerator("h100-triton").arrays[0], rows=128, cols=32)
    got = fold_reads(array, M=128, N=4096, K=4096, weight_read=4096 * 4096 / 4, act_in=128 * 4096)
    assert got == 128 * (128 * 4096) + 4096 * 4096 / 4


def test_the_fill_bandwidth_bounds_a_gemm_whose_tiles_re_read_the_activations():
    cfg = sim.load_accelerator("h100-triton")
    raw = json.loads(json.dumps(dataclasses.asdict(cfg)))
    raw["sram"]["fill_bandwidth_bytes_per_cycle"] = 1000.0
    slow = from_dict(raw, where="t")
    tile = KernelTile(BM=128, BN=32)
    tr = pd.DataFrame([gemm_row("g", 128, 4096, 4096, wfmt="ternary", wbits=2.0, afmt="int8", abits=8)])
    plain = sim.simulate(tr, tile_accelerator(cfg, tile, None, M=128)).ops.iloc[0]
    bound = sim.simulate(tr, tile_accelerator(slow, tile, None, M=128)).ops.iloc[0]
    fill = (128 * (128 * 4096) + 4096 * 4096 / 4) / 1000.0                    # fold reads / bytes per cycle
    assert plain["compute_cycles"] < fill
    assert bound["compute_cycles"] == pytest.approx(fill, abs=1.0) and bound["bound"] == "sram"


def test_a_negative_fill_bandwidth_or_form_rate_is_refused_naming_the_field():
    raw = json.loads(json.dumps(dataclasses.asdict(sim.load_accelerator("h100-triton"))))
    bad = copy.deepcopy(raw)
    bad["sram"]["fill_bandwidth_bytes_per_cycle"] = -1.0
    with pytest.raises(ValueError, match="sram.fill_bandwidth_bytes_per_cycle"):
        from_dict(bad, where="t")
    bad = copy.deepcopy(raw)
    bad["arrays"][0]["unpack_forms"] = {"swar-int8": "fast"}
    with pytest.raises(ValueError, match="unpack_forms"):
        from_dict(bad, where="t")


def test_set_param_puts_a_decode_form_rate_on_its_array():
    raw = json.loads(json.dumps(dataclasses.asdict(sim.load_accelerator("h100-triton"))))
    set_param(raw, "arrays[tensor_cores].unpack_forms.swar-fp8", 12.5)
    assert from_dict(raw, where="t").arrays[0].unpack_forms == {"swar-fp8": 12.5}


def test_rows_that_record_no_tile_take_their_runs_fastest_exact_swept_tile():
    a, b, c = ({"BM": 16, "BN": n, "BK": 256} for n in (32, 64, 128))
    day, other = "2026-11-01T00:00:00+00:00", "2026-11-02T00:00:00+00:00"
    rows = pd.DataFrame([
        _row(kernel="ours_w158a8_cfg", us=12.0, config=json.dumps(a), date=day),
        _row(kernel="ours_w158a8_cfg", us=11.0, config=json.dumps(b), date=day),
        _row(kernel="ours_w158a8_cfg", us=9.0, config=json.dumps(c), date=day, exact=False),   # wrong: not a pick
        _row(kernel="ours_w158a8_cfg", us=8.0, config=json.dumps(c), date=day, exact=None),    # unchecked: neither
        _row(kernel="ours_w158a8_cfg", us=5.0, config=json.dumps(c), date=other),              # another run's
        _row(kernel="ours_w158a8", us=11.1, config="", date=day),
        _row(kernel="ours_w158a8", us=11.1, config=json.dumps(a), date=day),                    # records its own
        _row(kernel="ours_w158a8", M=16, us=11.1, config="", date=day),                         # no sweep at M = 16
    ]).reset_index(drop=True)
    out = with_swept_tiles(rows)
    assert json.loads(out.loc[5, "config"]) == b
    assert json.loads(out.loc[6, "config"]) == a
    assert out.loc[7, "config"] == ""
    assert (out.loc[:4, "config"] == rows.loc[:4, "config"]).all() and len(out) == len(rows)


def test_the_reread_rate_is_the_slope_of_time_over_the_bytes_each_size_moves():
    rows = []
    for words, gbps in ((131072, 6000.0), (352256, 8000.0), (1000, 5000.0)):
        for p in (132, 264, 528):
            nbytes = p * words * 4
            rows.append(dict(op="floor", kernel="floor_reread", M=p, N=words, bytes=float(nbytes), cuda_graph=True,
                             us=3.0 + nbytes / 1e3 / gbps))
    rows.append(dict(op="floor", kernel="floor_read", M=1, N=10, bytes=40.0, cuda_graph=True, us=1.0))
    got, n = reread_gbps(pd.DataFrame(rows))
    assert got == pytest.approx(6000.0) and n == 9                          # the median of 5000, 6000, 8000
    assert reread_gbps(pd.DataFrame(rows[-1:])) is None


def test_the_decode_forms_are_fitted_on_the_m16_swar_rows_alone():
    rows = pd.DataFrame([_row(M=16, config=json.dumps(SWAR_TILE)), _row(M=8, config=json.dumps(SWAR_TILE)),
                         _row(M=16, config=json.dumps({**SWAR_TILE, "SWAR": False})),
                         _row(M=16, kernel="ours_w158a4_fp8", precision="w1.58a4-fp8",
                              config=json.dumps(SWAR_TILE))])
    int8, fp8 = DECODE_FORM_FITS
    assert int8.param.endswith("swar-int8") and fp8.param.endswith("swar-fp8")
    assert int8.select(rows).tolist() == [True, False, False, False]
    assert fp8.select(rows).tolist() == [False, False, False, True]


def test_the_decode_free_variant_replays_as_one_byte_weights_on_its_tile_and_fits_the_fill():
    row = _row(kernel="ours_int8_nodecode", M=128, config=json.dumps({"BM": 128, "BN": 32, "BK": 128}))
    tr = measured_row_to_trace(row)
    assert (tr.iloc[0]["weight_format"], tr.iloc[0]["weight_bits"]) == ("int8", 8.0)
    assert runs_on_tile(row) == KernelTile(BM=128, BN=32)
    rows = pd.DataFrame([row, _row(kernel="ours_int8_nodecode", M=2048), _row(M=128)])
    assert FILL_FIT.select(rows).tolist() == [True, False, False]


def test_a_row_without_its_tile_replays_without_the_fill_bandwidth():
    from sim.validation import compare_measured
    raw = json.loads(json.dumps(dataclasses.asdict(sim.load_accelerator("h100-triton"))))
    raw["sram"]["fill_bandwidth_bytes_per_cycle"] = 50.0          # so slow that any fold read would show
    slow = from_dict(raw, where="t")
    tiled = _row(M=128, config=json.dumps({"BM": 128, "BN": 32, "BK": 128}))
    rows = pd.DataFrame([tiled, _row(M=128, config="", name=1)])
    with_fill, _ = compare_measured(rows, slow)
    plain, _ = compare_measured(rows, sim.load_accelerator("h100-triton"))
    assert with_fill.loc[1, "sim_us"] == pytest.approx(plain.loc[1, "sim_us"])     # untiled: no fill charged
    assert with_fill.loc[0, "sim_us"] > 10 * plain.loc[0, "sim_us"]                  # tiled: bound by it


def test_a_split_k_tile_pays_the_presets_in_kernel_combine_once_and_an_unsplit_one_none():
    from sim.validation import compare_measured
    cfg = sim.load_accelerator("h100-triton")
    raw = json.loads(json.dumps(dataclasses.asdict(cfg)))
    raw["arrays"][1]["split_combine_ns"] = 2000.0        # the CUDA cores' ticketed combine, as a GPU preset measures it
    combined = from_dict(raw, where="t")
    rows = pd.DataFrame([_row(config=json.dumps({"BM": 16, "BN": 64, "SPLIT_K": 4})),
                         _row(config=json.dumps({"BM": 16, "BN": 64}), name=1)])
    base, _ = compare_measured(rows, cfg)
    tail, _ = compare_measured(rows, combined)
    assert tail.loc[0, "sim_us"] - base.loc[0, "sim_us"] == pytest.approx(2.0, abs=1e-3)   # 2000 ns, once
    assert tail.loc[1, "sim_us"] == pytest.approx(base.loc[1, "sim_us"])
