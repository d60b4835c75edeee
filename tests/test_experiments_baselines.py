"""a4.8 against every baseline: Table 2 rows of the quantized datapaths, W4A16 byte counts, the strongest
baseline per point, the capacity closed form and the report's section."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from bitsim.experiments import baselines as B
from bitsim.experiments.chipmetrics import row_power
from bitsim.experiments.fair import choose_profile
from bitsim.experiments.runs import Chip, Runner, TraceKey, simulate_job
from bitsim.experiments.sizing import TOLERANCE, _solve
from bitsim.experiments.study import StudyConfig
from bitsim.report.conclusions import _quantized_finding
from bitsim.report.document import Document, render_markdown
from bitsim.report.sections import baselines_section
from contract import validate
from model.config import BASELINE_DATAPATHS, get_config
from model.paper_sparsity import PAPER_TABLE2, paper_sparsity
from model.trace import build_trace

CONTEXTS, BATCHES = (64, 256), (1, 4)


@pytest.fixture(scope="module")
def table():
    comp = B.plan_baselines("tiny")
    with Runner(workers=1) as r:
        return B.run_baselines(comp, r, contexts=CONTEXTS, batches=BATCHES, bases=("iso-peak", "iso-area"))


def test_quantized_baselines_take_the_fp16_table2_rows():
    for d in BASELINE_DATAPATHS:
        for preset in PAPER_TABLE2["fp16"]:
            assert paper_sparsity(d, preset) == paper_sparsity("fp16", preset)
    prof, dropped, _why = choose_profile("7b", B.TABLE_DATAPATHS, "auto", data_dir="no-such-dir")
    assert (prof, dropped) == ("paper-table2", {})


def test_w4a16_trace_weight_bytes_match_the_closed_form():
    cfg = get_config("tiny", "w4a16", dim=128, ffn_dim=256)   # every K a multiple of the 128-weight group
    tr = build_trace(cfg, "w4a16", phase="decode", context=16, batch=1)
    proj = tr[tr.op.isin(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])]
    n_weights = float((proj.N * proj.K * proj["count"]).sum())
    d, f, kv = cfg.dim, cfg.ffn_dim, cfg.kv_heads * cfg.hd
    assert n_weights == cfg.n_layers * (2 * d * d + 2 * kv * d + 3 * f * d)
    assert float(proj.weight_bytes.sum()) == n_weights * (4 + 16 / 128) / 8        # 4.125 bits per weight
    head = tr[tr.op == "lm_head"]
    assert float(head.weight_bytes.sum()) == cfg.vocab_size * cfg.dim * 2          # FP16 head


def test_footprint_closed_form_equals_the_simulators():
    key = TraceKey(preset="tiny", datapath="w8a8-int8", phase="decode", context=256, batch=4, kv_bits=4)
    chip = Chip.of("w8a8-int8", {"kv_formats": ["kv-fp16", "kv-int4"]})
    row = simulate_job(key.build(), chip).row
    assert B.footprint_bytes("tiny", "w8a8-int8", 4, 4, 256) == pytest.approx(row["footprint_bytes"], rel=1e-12)


def test_strongest_baseline_is_the_fastest_fitting_one(table):
    validate(table, "study_baselines")
    assert set(table.datapath) == set(B.TABLE_DATAPATHS)
    assert len(table) == len(B.TABLE_DATAPATHS) * 2 * len(CONTEXTS) * len(BATCHES)
    for (basis, batch, ctx), g in table.groupby(["basis", "batch", "context"]):
        best, best_conv, top, top_conv = "", "", -math.inf, -math.inf
        for r in g.itertuples():
            if r.datapath == "a4.8" or not r.fits:
                continue
            if r.tokens_per_s > top:
                best, top = r.datapath, r.tokens_per_s
            if r.datapath != "b1.58" and r.tokens_per_s > top_conv:
                best_conv, top_conv = r.datapath, r.tokens_per_s
        assert set(g.strongest_baseline) == {best} and set(g.strongest_conventional) == {best_conv}
        a = g[g.datapath == "a4.8"].iloc[0]
        for r in g.itertuples():
            assert r.a48_speedup == pytest.approx(a.tokens_per_s / r.tokens_per_s)
            assert r.a48_energy_gain == pytest.approx(r.energy_j_per_token / a.energy_j_per_token)


def test_iso_area_chips_match_the_a48_chip_area(table):
    area = table[table.basis == "iso-area"]
    target = float(area[area.datapath == "a4.8"].area_mm2.iloc[0])
    assert (abs(area.area_mm2 / target - 1) <= 0.01).all()
    assert (table[table.basis == "iso-peak"].array_factor == 1.0).all()


def test_a_point_that_does_not_fit_is_not_simulated(table):
    t = table.copy()
    t.loc[t.datapath == "fp16", "fits"] = False
    t.loc[t.datapath == "fp16", ["tokens_per_s", "energy_j_per_token"]] = math.nan
    out = B.baseline_table(t.drop(columns=["a48_speedup", "a48_energy_gain", "strongest_baseline",
                                           "strongest_conventional", "is_strongest"]))
    assert "fp16" not in set(out.strongest_baseline) and out[out.datapath == "fp16"].a48_speedup.isna().all()


def test_report_section_and_headline_render_the_table(table):
    data = SimpleNamespace(axes={"baselines": table}, tables={"baselines": None}, claims_preset="tiny",
                           profile="paper-table2", config=SimpleNamespace(batch=1, prefill_tokens=2048))
    sec = baselines_section(data)
    md = render_markdown(Document("t", sections=[sec]))
    assert "a4.8 against each baseline" in md and "iso-power left out" in md
    area = float(table[(table.basis == "iso-area") & (table.datapath == "a4.8")].area_mm2.iloc[0])
    assert (f"**iso-area**: every chip's arrays, vector lanes and SRAM bandwidth scaled by one factor so its whole "
            f"chip has the a4.8 chip's area ({area:.1f} mm2), within 1 %") in md
    assert "**iso-peak**: the presets as shipped: the same clock, off-chip memory and SRAM" in md
    for d in B.BASELINES:
        assert f"a4.8 / {d}" in md
    near = B.headline(table)
    assert near["datapath"] in BASELINE_DATAPATHS
    text = _quantized_finding(data)
    assert f"strongest conventional baseline, {near['datapath']}" in text and f"batch {near['batch']}" in text
    assert "paper Table 2 sparsity; chip-model energy (dynamic + static)" in text   # profile and energy basis


def test_study_config_rejects_an_unknown_baseline_basis():
    with pytest.raises(ValueError, match="baseline_bases"):
        StudyConfig(baseline_bases=("iso-volume",))
    with pytest.raises(ValueError, match="bases: unknown"):
        B.size_chips(B.plan_baselines("tiny"), ("iso-volume",))


def test_iso_power_chips_draw_the_a48_chips_prefill_power():
    comp = B.plan_baselines("tiny")
    with Runner(workers=1) as r:
        sized = B.size_chips(comp, ("iso-power",), r, prefill_tokens=256)   # w8a8-fp8 lands between two copy counts
        for d, var in comp.variants.items():
            s = sized[(d, "iso-power")]
            key = TraceKey(preset="tiny", datapath=d, phase="prefill", context=256, batch=1, kv_bits=var.kv_bits,
                           profile=comp.profile)
            power = row_power(simulate_job(r.trace(key), s.chip).row)[0]   # measured again, independently
            assert power == pytest.approx(s.reached, rel=1e-9)
            assert s.within and abs(power / s.target - 1) <= 0.01, (d, power, s.target)
    assert sized[("a4.8", "iso-power")].factor == 1.0 and len({s.target for s in sized.values()}) == 1


def test_sizing_reaches_a_target_between_two_copy_counts():
    """Power jumps where a copy of the main array is added (copies run in parallel, extra rows add little);
    a target inside such a jump is reached by the rows at a fixed copy count."""

    def value(c: Chip) -> float:   # 10 W per copy of the main array, 1 W per 128 rows of a copy
        a = max(c.config().arrays, key=lambda x: x.pes)
        return 10.0 * a.count + a.count * a.rows / 128
    chip = Chip.of("b1.58")
    a0 = max(chip.config().arrays, key=lambda x: x.pes)
    target = 10.0 * (a0.count - 1) + 5.0            # between count - 1 and count copies of 128 rows
    sized, reached = _solve(chip, value, target, 10, 1.0, v1=value(chip))
    assert value(sized) == reached and abs(reached / target - 1) <= TOLERANCE, (reached, target)
